//! How the suite runs wrapix: the real binary, as an unprivileged user (as root: the user
//! `$WRAPIX_TEST_USER`, default `ci`, through `setpriv`), with a clean environment, a
//! per-test host home and project under /tmp, and a timeout.
//!
//! The escape suite ([`Case::escape`]) runs against the backend named by `WRAPIX_TEST_BACKEND`:
//! `bwrap` (the default, with the `host` profile) or `podman` (rootless, from the image profile
//! `escape` of [`ESCAPE_PROFILE_CONFIG`], built once per machine into the shared store
//! [`IMAGE_STORE`]).
//! The rest of the suite tests the CLI with the default backend ([`Case::new`]).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub use super::proc::{host_procs_with, local_ipv4s, wait_for, Out, Running};
use super::proc::{output, output_within};

/// What every test home holds outside the project.
pub const SECRET: &str = "wrapix-host-secret-6f1c";

/// Facts decided once per test process.
pub struct Env {
    /// The wrapix binary, copied somewhere the test user can run it.
    pub bin: PathBuf,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Root runs wrapix through `setpriv` as `user`.
    pub via_setpriv: bool,
}

/// The backend the escape suite runs against (`WRAPIX_TEST_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// bubblewrap with the `host` profile (the default).
    Bwrap,
    /// Rootless podman with the image profile `escape`.
    Podman,
    /// systemd-nspawn with the `host` profile; root only (the root pass).
    Nspawn,
    /// The qemu micro-VM with the `host` profile, as the user (TCG where KVM is unusable).
    Qemu,
}

/// bwrap arguments of the smoke test: the namespaces wrapix uses, running `true`.
const SMOKE: &str = "--unshare-user --unshare-ipc --unshare-pid --unshare-uts --unshare-net \
    --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
    --symlink usr/lib64 /lib64 --proc /proc --dev /dev -- /usr/bin/true";

/// The shared image store (`XDG_DATA_HOME` of image runs); its images belong to the test user.
pub const IMAGE_STORE: &str = "/tmp/wrapix-test-images";
/// The image profile of podman cases, in their user config (so a project `wrapix.toml` written
/// by a test keeps it); `WRAPIX_PROFILE` selects it. Debian's essential packages bring what the
/// probes run (sh, bash, coreutils, util-linux, perl-base with Socket); git is for the `.git`
/// probes, curl for the egress tests. A new package list means a new image build (a minute or
/// two, once per machine).
pub const ESCAPE_PROFILE_CONFIG: &str = "[profiles.escape]\npackages = [\"git\", \"curl\"]\n";
const ESCAPE_PROFILE: &str = "escape";
/// A cold image build (mmdebstrap) takes a minute or two; this bounds a hung one.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Why the backend under test cannot be used: the host lacks it (skip), or wrapix failed
/// to prepare it (a failure, never a skip).
enum Unready {
    Skip(String),
    Broken(String),
}

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
static BWRAP: OnceLock<Result<(), String>> = OnceLock::new();
/// The `escape` image's root folder, built once per test process (the store's lock orders
/// concurrent test processes).
static PODMAN: OnceLock<Result<PathBuf, Unready>> = OnceLock::new();
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The backend the escape suite runs against: `WRAPIX_TEST_BACKEND` = `bwrap` (default) or
/// `podman`; anything else is a mistake, not a reason to test something else.
pub fn backend() -> Backend {
    match std::env::var("WRAPIX_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("bwrap") => Backend::Bwrap,
        Ok("podman") => Backend::Podman,
        Ok("nspawn") => Backend::Nspawn,
        Ok("qemu") => Backend::Qemu,
        Ok(other) => {
            panic!("WRAPIX_TEST_BACKEND={other:?}: expected bwrap, podman, nspawn or qemu")
        }
    }
}

/// Whether this host can run the qemu backend: qemu, the Rust virtiofsd, a cloud kernel.
pub fn qemu_ready() -> Result<(), String> {
    let on_path = |p: &str| {
        ["/usr/local/bin", "/usr/bin", "/usr/libexec"]
            .iter()
            .any(|d| Path::new(d).join(p).is_file())
    };
    if !on_path("qemu-system-x86_64") {
        return Err(
            "qemu backend: no qemu-system-x86_64 (sudo apt-get install qemu-system-x86)".into(),
        );
    }
    if !on_path("virtiofsd") {
        return Err("qemu backend: no Rust virtiofsd (cargo install virtiofsd)".into());
    }
    let kernel = std::fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("-cloud-amd64"))
        })
        .unwrap_or(false);
    if !kernel {
        return Err(
            "qemu backend: no cloud kernel (sudo apt-get install linux-image-cloud-amd64)".into(),
        );
    }
    Ok(())
}

/// Prints the reason a test does not run; a skip is never silent. With
/// `WRAPIX_TEST_SKIP_LOG=FILE` (scripts/test.sh) it is also appended to FILE, with the test's
/// name and the backend, so the run's summary can list it. With `WRAPIX_TEST_NO_SKIP=1` (CI)
/// an escape test may not skip: it fails with the reason ([`skip_fails`]).
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
    let test = current_test();
    if skip_fails(std::env::var("WRAPIX_TEST_NO_SKIP").ok().as_deref(), &test) {
        panic!("{test}: an escape test may not skip under WRAPIX_TEST_NO_SKIP=1: {reason}");
    }
    let Some(log) = std::env::var_os("WRAPIX_TEST_SKIP_LOG") else {
        return;
    };
    let root = if std::env::var("WRAPIX_TEST_AS_ROOT").as_deref() == Ok("1") {
        ", as root"
    } else {
        ""
    };
    let backend = format!("{:?}{root}", backend()).to_lowercase();
    let line = format!("[{backend}] {test}: {reason}\n");
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
}

/// The running test's name (libtest names its thread after it), without `suite::`.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("?")
        .trim_start_matches("suite::")
        .to_owned()
}

/// Whether a skip fails the test: `WRAPIX_TEST_NO_SKIP` is `1` and the test is an escape
/// test (its name contains `escape`), whose skip would hide an untested sandbox.
fn skip_fails(no_skip: Option<&str>, test: &str) -> bool {
    no_skip == Some("1") && test.contains("escape")
}

#[test]
fn a_skip_fails_only_in_escape_tests_under_the_ci_flag() {
    assert!(skip_fails(
        Some("1"),
        "escape_persist::pid_1_cannot_be_traced_or_read"
    ));
    assert!(skip_fails(Some("1"), "escape::cannot_see_host_processes"));
    assert!(!skip_fails(
        Some("1"),
        "run::deploy_key_is_created_and_mounted"
    ));
    assert!(!skip_fails(None, "escape::cannot_see_host_processes"));
    assert!(!skip_fails(Some("0"), "escape::cannot_see_host_processes"));
    assert!(!skip_fails(Some(""), "escape::cannot_see_host_processes"));
    // The name skip() sees is the test thread's.
    let named = std::thread::Builder::new()
        .name("suite::escape_net::x".into())
        .spawn(current_test)
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(named, "escape_net::x");
}

/// Says why a test has nothing to check with the backend under test (the other backend's
/// pass checks it). Not a skip: `WRAPIX_TEST_NO_SKIP` does not fail it.
pub fn not_applicable(reason: &str) {
    eprintln!("N/A: {reason}");
}

/// A name no other test (in this or a concurrent test process) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn env() -> Result<&'static Env, &'static str> {
    ENV.get_or_init(detect).as_ref().map_err(String::as_str)
}

fn have(prog: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin"]
        .iter()
        .any(|d| Path::new(d).join(prog).exists())
}

fn detect() -> Result<Env, String> {
    let as_root = std::env::var("WRAPIX_TEST_AS_ROOT").as_deref() == Ok("1");
    if as_root && !is_root() {
        return Err("WRAPIX_TEST_AS_ROOT=1 but the suite does not run as root".into());
    }
    let (user, uid, gid, via_setpriv) = if as_root {
        // The root pass (scripts/test.sh): wrapix itself runs as root.
        ("root".to_owned(), 0, 0, false)
    } else if is_root() {
        let name = std::env::var("WRAPIX_TEST_USER").unwrap_or_else(|_| "ci".into());
        let u = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| format!("running as root and the test user `{name}` does not exist (useradd -m {name}, or set WRAPIX_TEST_USER)"))?;
        if !have("setpriv") {
            return Err("running as root and setpriv (util-linux) is missing".into());
        }
        (name, u.uid.as_raw(), u.gid.as_raw(), true)
    } else {
        let uid = nix::unistd::getuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "wrapix".into());
        (name, uid.as_raw(), nix::unistd::getgid().as_raw(), false)
    };
    Ok(Env {
        bin: copy_binary()?,
        user,
        uid,
        gid,
        via_setpriv,
    })
}

/// bubblewrap works here for the test user: a smoke test with the namespaces wrapix uses.
fn bwrap_ready(env: &Env) -> Result<(), &'static str> {
    let check = || {
        let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("bubblewrap (bwrap) is not installed")?;
        let smoke_args: Vec<&str> = SMOKE.split_whitespace().collect();
        let smoke = env.as_user(bwrap, &smoke_args);
        match output(smoke, Path::new("/"), None) {
            Ok(o) if o.code == 0 => Ok(()),
            Ok(o) => Err(format!(
                "a bwrap smoke test failed as user {}: {}",
                env.user,
                o.stderr.trim()
            )),
            Err(e) => Err(format!("cannot run bwrap as user {}: {e}", env.user)),
        }
    };
    BWRAP
        .get_or_init(check)
        .as_ref()
        .map_err(String::as_str)
        .copied()
}

/// systemd-nspawn can run here: root (the root pass) and the program installed.
fn nspawn_ready(env: &Env) -> Result<(), String> {
    if env.uid != 0 {
        return Err(
            "systemd-nspawn runs only as root (the root pass: WRAPIX_TEST_AS_ROOT=1)".into(),
        );
    }
    if !have("systemd-nspawn") {
        return Err(
            "systemd-nspawn is not installed (sudo apt-get install systemd-container)".into(),
        );
    }
    Ok(())
}

/// The `escape` image for podman cases: built (or verified) with `wrapix image build` as the
/// test user, then a raw `podman run` from it as the smoke test.
fn podman_ready(env: &Env) -> Result<&'static Path, &'static Unready> {
    PODMAN
        .get_or_init(|| prepare_podman(env))
        .as_ref()
        .map(PathBuf::as_path)
}

fn prepare_podman(env: &Env) -> Result<PathBuf, Unready> {
    for (tool, fix) in [
        ("podman", "podman runc uidmap"),
        ("mmdebstrap", "mmdebstrap uidmap"),
    ] {
        if !have(tool) {
            return Err(Unready::Skip(format!(
                "{tool} is not installed (sudo apt-get install {fix})"
            )));
        }
    }
    let broken = |what: &str, e: &dyn std::fmt::Display| Unready::Broken(format!("{what}: {e}"));
    let store = Path::new(IMAGE_STORE);
    std::fs::create_dir_all(store).map_err(|e| broken(IMAGE_STORE, &e))?;
    let home = env.bin.with_file_name("podman-home");
    let config = home.join(".config/wrapix/config.toml");
    std::fs::create_dir_all(config.parent().unwrap_or(&home))
        .and_then(|()| std::fs::write(&config, ESCAPE_PROFILE_CONFIG))
        .map_err(|e| broken("writing the build's user config", &e))?;
    if env.via_setpriv {
        let (uid, gid) = (Some(env.uid), Some(env.gid));
        for p in [
            store,
            &home,
            &home.join(".config"),
            &home.join(".config/wrapix"),
            &config,
        ] {
            std::os::unix::fs::lchown(p, uid, gid).map_err(|e| broken("chown", &e))?;
        }
    }
    let as_user = |program: &str, args: &[&str]| {
        let mut cmd = env.as_user(program, args);
        cmd.env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("USER", &env.user)
            .env("XDG_DATA_HOME", IMAGE_STORE)
            .env("WRAPIX_PROFILE", ESCAPE_PROFILE);
        cmd
    };
    let build = as_user(&env.bin.to_string_lossy(), &["image", "build"]);
    let out = output_within(build, &home, None, BUILD_TIMEOUT)
        .map_err(|e| broken("running wrapix image build", &e))?;
    if out.code != 0 {
        return Err(broken("wrapix image build (profile escape)", &out));
    }
    let rootfs = PathBuf::from(out.stdout.trim()).join("rootfs");
    let rootfs_o = format!("{}:O", rootfs.display());
    let smoke = as_user(
        "podman",
        &[
            "run",
            "--rm",
            "--network=none",
            "--userns=keep-id",
            "--rootfs",
            &rootfs_o,
            "/bin/true",
        ],
    );
    match output(smoke, &home, None) {
        Ok(o) if o.code == 0 => Ok(rootfs),
        Ok(o) => Err(Unready::Skip(format!(
            "rootless podman cannot run as user {} here ({}); wrapix doctor names the fix",
            env.user,
            o.stderr.trim()
        ))),
        Err(e) => Err(Unready::Skip(format!("cannot run podman: {e}"))),
    }
}

/// Copies the binary to /tmp/wrapix-it-PID/wrapix (0755): the target folder may be unreadable
/// for the test user. Folders of earlier test processes that are gone are removed.
fn copy_binary() -> Result<PathBuf, String> {
    if let Ok(entries) = std::fs::read_dir("/tmp") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("wrapix-it-")
                .and_then(|p| p.parse::<u32>().ok())
            {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = PathBuf::from(format!("/tmp/wrapix-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let err =
        |e: std::io::Error| format!("cannot copy the wrapix binary to {}: {e}", dir.display());
    std::fs::create_dir(&dir).map_err(err)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    let bin = dir.join("wrapix");
    std::fs::copy(env!("CARGO_BIN_EXE_wrapix"), &bin).map_err(err)?;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    // The small init, installed beside wrapix as it is by `cargo install` and the quick start;
    // `WRAPIX_TEST_INIT=FILE` puts another build of it there (scripts/test.sh: the static one
    // that scripts/static-init.sh links, so that the later passes run what the quick start
    // installs).
    let init = dir.join("wrapix-init");
    let init_src = std::env::var_os("WRAPIX_TEST_INIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wrapix-init")));
    std::fs::copy(&init_src, &init).map_err(err)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    // And the servers' binary (`wrapix notifyd`, `wrapix mcp`).
    let serve = dir.join("wrapix-serve");
    std::fs::copy(env!("CARGO_BIN_EXE_wrapix-serve"), &serve).map_err(err)?;
    std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    Ok(bin)
}

impl Env {
    /// The argv that runs `program args` as the test user (through setpriv when root).
    pub fn user_argv(&self, program: &str, args: &[&str]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if self.via_setpriv {
            let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
            argv.extend(
                [
                    "setpriv",
                    "--reuid",
                    &uid,
                    "--regid",
                    &gid,
                    "--init-groups",
                    "--",
                ]
                .map(OsString::from),
            );
        }
        argv.push(program.into());
        argv.extend(args.iter().map(OsString::from));
        argv
    }

    /// `program args` as the test user.
    pub fn as_user(&self, program: &str, args: &[&str]) -> Command {
        let argv = self.user_argv(program, args);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }
}

/// One test's host: `<root>/home` (the host HOME, with `secret.txt`) and `<home>/project`.
pub struct Case {
    pub env: &'static Env,
    pub root: PathBuf,
    pub home: PathBuf,
    pub project: PathBuf,
    /// The backend wrapix runs with (bwrap unless from [`Case::escape`] under podman).
    pub backend: Backend,
    /// The image root the sandbox runs from (podman cases), as a host folder.
    pub rootfs: Option<&'static Path>,
    extra_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Case {
    /// A fresh case for bubblewrap with the `host` profile, or `None` (after printing
    /// `SKIP: …`) when bubblewrap cannot run here.
    pub fn new() -> Option<Case> {
        let env = Self::env_or_skip()?;
        if let Err(reason) = bwrap_ready(env) {
            skip(reason);
            return None;
        }
        Some(Self::fresh(env))
    }

    /// A fresh case for the escape suite, against the backend under test ([`backend`]), or
    /// `None` (after printing `SKIP: …`) when that backend cannot run here. A podman case runs
    /// wrapix with `WRAPIX_BACKEND=podman`, `WRAPIX_PROFILE=escape` (defined in the case's
    /// user config) and the shared image store, with the same defaults as a bwrap case
    /// (`network = "open"`); failing to prepare the image fails the test.
    pub fn escape() -> Option<Case> {
        match backend() {
            Backend::Bwrap => Case::new(),
            Backend::Nspawn => {
                let env = Self::env_or_skip()?;
                if let Err(reason) = nspawn_ready(env) {
                    skip(&reason);
                    return None;
                }
                let mut c = Self::fresh(env);
                c.backend = Backend::Nspawn;
                Some(c.host_env("WRAPIX_BACKEND", "nspawn"))
            }
            Backend::Qemu => {
                let env = Self::env_or_skip()?;
                if let Err(reason) = qemu_ready() {
                    skip(&reason);
                    return None;
                }
                let mut c = Self::fresh(env);
                c.backend = Backend::Qemu;
                Some(c.host_env("WRAPIX_BACKEND", "qemu"))
            }
            Backend::Podman => {
                let env = Self::env_or_skip()?;
                let rootfs = match podman_ready(env) {
                    Ok(r) => r,
                    Err(Unready::Skip(reason)) => {
                        skip(reason);
                        return None;
                    }
                    Err(Unready::Broken(e)) => panic!("preparing the podman backend: {e}"),
                };
                let mut c = Self::fresh(env);
                c.backend = Backend::Podman;
                c.rootfs = Some(rootfs);
                c.write(
                    &c.home.join(".config/wrapix/config.toml"),
                    ESCAPE_PROFILE_CONFIG,
                );
                Some(
                    c.host_env("XDG_DATA_HOME", IMAGE_STORE)
                        .host_env("WRAPIX_BACKEND", "podman")
                        .host_env("WRAPIX_PROFILE", ESCAPE_PROFILE),
                )
            }
        }
    }

    fn env_or_skip() -> Option<&'static Env> {
        match env() {
            Ok(e) => Some(e),
            Err(reason) => {
                skip(reason);
                None
            }
        }
    }

    fn fresh(env: &'static Env) -> Case {
        let dir = tempfile::Builder::new()
            .prefix("wrapix-case-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = root.join("home");
        let project = home.join("project");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(home.join("secret.txt"), SECRET).unwrap();
        let case = Case {
            env,
            root,
            home,
            project,
            backend: Backend::Bwrap,
            rootfs: None,
            extra_env: Vec::new(),
            _dir: dir,
        };
        case.give(&case.root);
        case
    }

    /// Adds a variable to the host environment wrapix runs with.
    pub fn host_env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    /// Hands `path` (recursively, links not followed) to the test user. Entries that vanish
    /// meanwhile are skipped: the shared image store changes under concurrent tests.
    pub fn give(&self, path: &Path) {
        if !self.env.via_setpriv {
            return;
        }
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let (uid, gid) = (Some(self.env.uid), Some(self.env.gid));
        match std::os::unix::fs::lchown(path, uid, gid) {
            Err(e) if gone(&e) => return,
            r => r.unwrap(),
        }
        if path.is_dir() && !path.is_symlink() {
            let entries = match std::fs::read_dir(path) {
                Err(e) if gone(&e) => return,
                r => r.unwrap(),
            };
            for e in entries {
                match e {
                    Err(e) if gone(&e) => {}
                    e => self.give(&e.unwrap().path()),
                }
            }
        }
    }

    /// Writes a file (creating its folders) owned by the test user.
    pub fn write(&self, path: &Path, contents: &str) {
        let parent = path.parent().unwrap();
        std::fs::create_dir_all(parent).unwrap();
        std::fs::write(path, contents).unwrap();
        self.give(&self.root);
    }

    /// [`Case::write`], executable (0755): a script or a stand-in for a host program.
    pub fn write_executable(&self, path: &Path, contents: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(path, contents);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The sandbox user's home inside: `/root` in the root pass, else `/home/USER`.
    pub fn sandbox_home(&self) -> String {
        if self.env.uid == 0 {
            "/root".to_owned()
        } else {
            format!("/home/{}", self.env.user)
        }
    }

    /// Writes the project's `wrapix.toml` and trusts it (`wrapix trust`), as a user who
    /// wrote it would.
    pub fn config(&self, text: &str) {
        self.write(&self.project.join("wrapix.toml"), text);
        self.trust();
    }

    /// The project's folder in wrapix's state folder (`~/.local/state/wrapix/projects/ID`):
    /// the only one there (each case has its own home).
    pub fn state_dir(&self) -> PathBuf {
        let projects = self.home.join(".local/state/wrapix/projects");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&projects)
            .unwrap_or_else(|e| panic!("{}: {e}", projects.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.pop().unwrap()
    }

    /// `wrapix trust` on the project's current `wrapix.toml`.
    pub fn trust(&self) {
        let out = self.run(&["trust"]);
        assert_eq!(out.code, 0, "wrapix trust failed:\n{out}");
    }

    /// The host command line that runs `wrapix args` as the test user.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.as_user(&self.env.bin.to_string_lossy(), args);
        self.clean_env(&mut cmd);
        cmd
    }

    /// A clean host environment: HOME, PATH, USER, TERM and the test's extras.
    pub fn clean_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("USER", &self.env.user)
            .env("TERM", "dumb")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.project);
    }

    pub fn run(&self, args: &[&str]) -> Out {
        output(self.command(args), &self.project, None).unwrap()
    }

    /// Starts `wrapix args` and returns without waiting.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Running::start(cmd).unwrap()
    }

    /// `wrapix run -- /bin/sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Out {
        self.sh_with(&[], script)
    }

    /// `wrapix run FLAGS -- /bin/sh -c SCRIPT`.
    pub fn sh_with(&self, flags: &[&str], script: &str) -> Out {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        self.run(&args)
    }

    /// A host program run directly (not sandboxed) as the test user, in the project.
    pub fn host_as_user(&self, program: &str, args: &[&str]) -> Out {
        let mut cmd = self.env.as_user(program, args);
        self.clean_env(&mut cmd);
        output(cmd, &self.project, None).unwrap()
    }

    /// The host's `git -C DIR ARGS` as the test user, with an identity and local submodule
    /// clones allowed (not run through a sandbox).
    pub fn host_git(&self, dir: &Path, args: &[&str]) -> Out {
        let dir = dir.to_string_lossy();
        let mut all = vec![
            "-C",
            dir.as_ref(),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "protocol.file.allow=always",
        ];
        all.extend_from_slice(args);
        self.host_as_user("git", &all)
    }

    /// `dir` made a repository on the host, with everything in it committed.
    pub fn host_repo(&self, dir: &Path) {
        self.host_git(dir, &["init", "-q"]).ok();
        self.host_git(dir, &["add", "."]).ok();
        self.host_git(dir, &["commit", "-q", "-m", "a"]).ok();
    }

    /// Every path below `dir` (relative, sorted): to show that nothing was created.
    pub fn listing(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap_or(&p).display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }
}
