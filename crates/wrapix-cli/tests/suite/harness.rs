//! How the suite runs wrapix: the real binary, as an unprivileged user (as root: the user
//! `$WRAPIX_TEST_USER`, default `ci`, through `setpriv`), with a clean environment, a
//! per-test host home and project under /tmp, and a timeout.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use super::proc::output;
pub use super::proc::{host_procs_with, local_ipv4s, wait_for, Out, Running};

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

/// bwrap arguments of the smoke test: the namespaces wrapix uses, running `true`.
const SMOKE: &str = "--unshare-user --unshare-ipc --unshare-pid --unshare-uts --unshare-net \
    --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
    --symlink usr/lib64 /lib64 --proc /proc --dev /dev -- /usr/bin/true";

static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Prints the reason a test does not run; a skip is never silent.
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
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

fn detect() -> Result<Env, String> {
    let (user, uid, gid, via_setpriv) = if is_root() {
        let name = std::env::var("WRAPIX_TEST_USER").unwrap_or_else(|_| "ci".into());
        let u = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| format!("running as root and the test user `{name}` does not exist (useradd -m {name}, or set WRAPIX_TEST_USER)"))?;
        if !Path::new("/usr/bin/setpriv").exists() && !Path::new("/bin/setpriv").exists() {
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
    let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("bubblewrap (bwrap) is not installed")?;
    let bin = copy_binary()?;
    let env = Env {
        bin,
        user,
        uid,
        gid,
        via_setpriv,
    };
    let smoke_args: Vec<&str> = SMOKE.split_whitespace().collect();
    let smoke = env.as_user(bwrap, &smoke_args);
    match output(smoke, Path::new("/"), None) {
        Ok(o) if o.code == 0 => Ok(env),
        Ok(o) => Err(format!(
            "a bwrap smoke test failed as user {}: {}",
            env.user,
            o.stderr.trim()
        )),
        Err(e) => Err(format!("cannot run bwrap as user {}: {e}", env.user)),
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
    extra_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Case {
    /// A fresh case, or `None` (after printing `SKIP: …`) when sandboxes cannot run here.
    pub fn new() -> Option<Case> {
        let env = match env() {
            Ok(e) => e,
            Err(reason) => {
                skip(reason);
                return None;
            }
        };
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
            extra_env: Vec::new(),
            _dir: dir,
        };
        case.give(&case.root);
        Some(case)
    }

    /// Adds a variable to the host environment wrapix runs with.
    pub fn host_env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.into(), value.into()));
        self
    }

    /// Hands `path` (recursively, links not followed) to the test user.
    pub fn give(&self, path: &Path) {
        if !self.env.via_setpriv {
            return;
        }
        let (uid, gid) = (Some(self.env.uid), Some(self.env.gid));
        std::os::unix::fs::lchown(path, uid, gid).unwrap();
        if path.is_dir() && !path.is_symlink() {
            for e in std::fs::read_dir(path).unwrap() {
                self.give(&e.unwrap().path());
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
