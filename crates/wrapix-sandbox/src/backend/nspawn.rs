//! The systemd-nspawn backend (root only: `sudo wrapix --backend nspawn …`).
//!
//! Isolation: a user namespace of its own (`--private-users=pick`: a fresh 64 K range, so root
//! inside is an unprivileged, unused UID outside), new mount, PID, IPC, UTS and network
//! namespaces (`--private-network`: loopback only; a network allowlist adds the egress proxy's
//! socket folder and wrapix's init relays its loopback port to it, as with bubblewrap), every capability dropped
//! (`--drop-capability=all`), `no_new_privs`, nspawn's own seccomp allow-list **and** wrapix's
//! filter (installed by wrapix's init with `--seccomp`, since nspawn takes only syscall names),
//! the root read-only, and wrapix's init as PID 1 (non-dumpable). The agent runs as the user's
//! own UID inside (`--user`), and every bind is idmapped (`:idmap`), so files keep their host
//! owners: what the agent creates in `/workspace` belongs to the user who ran wrapix.
//!
//! The root is a per-run skeleton folder (nspawn writes into its root before remounting it
//! read-only, so it is never the image cache or the host's `/`): the mount points and links of
//! the run's root entries, onto which the image's (or the host's) top-level folders are bound
//! read-only. Generated files under the home are written into the per-run home folder (a
//! tmpfs mounted by nspawn would belong to the namespace's root, not to the user); the others,
//! the environment (`--setenv` would put it in nspawn's world-readable argv), the seccomp
//! filter and the release FIFO are in a staged `/run/wrapix`.
//!
//! nspawn reports nothing and passes no descriptors: the executor finds the container's first
//! process as nspawn's child in a network namespace of its own, forwards signals to it (nspawn
//! would die of SIGHUP and leave its container running; it is started ignoring those, and
//! with a parent-death signal), attaches pasta to it for `network = "open"` while the init
//! waits on the FIFO, and takes the exit code from nspawn.
//!
//! `[resources]`: nspawn's `--property` does nothing without machine registration (which needs
//! the system bus), so limits go through a systemd scope as with bubblewrap, or are refused.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, Network};

use super::stage::{self, RunDirEntry};
use super::{find_program, Backend, Probe};
use crate::error::SandboxError;
use crate::plan::{LaunchPlan, PassFd, PinMount, SignalTarget};
use crate::prepare::{Prepared, SANDBOX_BIN_DIR, SANDBOX_NOTIFY_LINK};
use crate::root::RootEntry;
use crate::seccomp::{default_filter_bytes, SeccompOptions};

/// Where the helper programs are on this host, and what it can enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nspawn {
    pub nspawn: Option<PathBuf>,
    pub pasta: Option<PathBuf>,
    pub systemd_run: Option<PathBuf>,
    /// wrapix runs as root (nspawn refuses everyone else).
    pub root: bool,
    /// Per-run folder ([`STAGE_PARENT`]): the skeleton root, the home, the staged
    /// `/run/wrapix`, generated files.
    pub stage: PathBuf,
    /// For a run with `[resources]`: the scope that enforces them, or why there is none.
    pub limits: Option<Result<super::limits::Scope, String>>,
}

/// The registry's entry ([`super::REGISTRY`]).
pub const ENTRY: super::Entry = super::Entry {
    name: wrapix_spec::BackendName {
        name: "nspawn",
        aliases: &["systemd-nspawn"],
    },
    summary: "nspawn (root)",
    locate: |at| Box::new(Nspawn::locate(at)),
};

/// Where the per-run folders are: root's own, never below a home that a project (or a user
/// mount) could contain, since nspawn cannot idmap a bind whose tree holds its own root.
const STAGE_PARENT: &str = "/run/wrapix-nspawn";

/// The first fd number of the pinned bind sources passed to nspawn's parent.
const FIRST_PIN_FD: i32 = 10;

/// `/run/wrapix` inside the sandbox.
const SANDBOX_RUN_DIR: &str = "/run/wrapix";
/// wrapix's seccomp filter, the environment and the release FIFO, inside.
const SECCOMP_INSIDE: &str = "/run/wrapix/seccomp.bpf";
const ENV_INSIDE: &str = "/run/wrapix/env";
const RELEASE_INSIDE: &str = "/run/wrapix/release";

/// The staged `/run/wrapix`, relative to it, parents first (the data files are written after).
const RUN_DIR_ENTRIES: &[(&str, RunDirEntry)] = &[
    ("", RunDirEntry::Dir),
    ("bin", RunDirEntry::Dir),
    ("bin/wrapix", RunDirEntry::File),
    ("bin/wrapix-init", RunDirEntry::File),
    ("bin/wrapix-serve", RunDirEntry::File),
    ("bin/wrapix-notify", RunDirEntry::Symlink("wrapix")),
    ("bin/ralph", RunDirEntry::Symlink("wrapix")),
    ("notify.d", RunDirEntry::Dir),
    ("notify.sock", RunDirEntry::Symlink(SANDBOX_NOTIFY_LINK)),
];

/// Folders every root needs before nspawn mounts over them.
const SKELETON_DIRS: &[&str] = &["dev", "proc", "sys", "tmp", "run", "root", "var/tmp"];

/// Where a generated file goes.
enum FilePlace {
    /// Written into the per-run home folder at this path below it.
    Home(PathBuf),
    /// Bound from `files/N` at its destination.
    Bound,
}

impl Nspawn {
    pub fn locate(at: &super::Locate<'_>) -> Self {
        let path = at.env.get("PATH").map(String::as_str);
        let systemd_run = find_program("systemd-run", path);
        let limits = at.resources.any().then(|| {
            super::limits::detect(
                &super::limits::Host {
                    systemd_run: systemd_run.clone(),
                    uid: at.uid,
                    runtime_dir: None,
                    cgroup2: Path::new(super::limits::CGROUP2),
                    system_socket: Path::new(super::limits::SYSTEM_SOCKET),
                },
                &at.resources,
            )
        });
        Nspawn {
            nspawn: find_program("systemd-nspawn", path),
            pasta: find_program("pasta", path),
            systemd_run,
            root: at.uid == 0,
            stage: Path::new(STAGE_PARENT).join(format!("nspawn-{}", std::process::id())),
            limits,
        }
    }

    fn unavailable(problem: impl Into<String>, fix: impl Into<String>) -> SandboxError {
        SandboxError::Unavailable {
            backend: "nspawn",
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn root_dir(&self) -> PathBuf {
        self.stage.join("root")
    }

    fn home_dir(&self) -> PathBuf {
        self.stage.join("home")
    }

    fn run_dir(&self) -> PathBuf {
        self.stage.join("run-wrapix")
    }

    fn file_path(&self, i: usize) -> PathBuf {
        self.stage.join(format!("file-{i}"))
    }

    /// Where the `k`th pinned bind source is bound in nspawn's mount namespace.
    fn pin_path(&self, k: usize) -> PathBuf {
        self.stage.join(format!("pin-{k}"))
    }

    /// The binds whose source is held open since it was checked (protected paths in the
    /// project), in mount order, with that handle.
    fn pinned(run: &Prepared) -> Vec<(&crate::prepare::Bind, &crate::prepare::Pinned)> {
        run.binds
            .iter()
            .filter_map(|b| {
                run.pinned
                    .iter()
                    .find(|p| p.source == b.source)
                    .map(|p| (b, p))
            })
            .collect()
    }

    /// Where each generated file goes: into the per-run home when it is below the home (and
    /// the home is that folder), else bound from the stage.
    fn file_places(run: &Prepared) -> Vec<FilePlace> {
        run.files
            .iter()
            .map(|f| {
                match (
                    &run.home_source,
                    f.dest.as_path().strip_prefix(run.home.as_path()),
                ) {
                    (None, Ok(rel)) if !rel.as_os_str().is_empty() => {
                        FilePlace::Home(rel.to_owned())
                    }
                    _ => FilePlace::Bound,
                }
            })
            .collect()
    }

    /// Every path nspawn mounts something on, in mount order, as (inside path, is a folder).
    fn mount_points(run: &Prepared) -> Vec<(PathBuf, bool)> {
        let mut out: Vec<(PathBuf, bool)> = Vec::new();
        for e in &run.root.entries {
            if let RootEntry::RoBind { source, dest } = e {
                out.push((dest.clone(), source.is_dir()));
            }
        }
        out.push((run.home.as_path().to_owned(), true));
        for (f, place) in run.files.iter().zip(Self::file_places(run)) {
            if let FilePlace::Bound = place {
                out.push((f.dest.as_path().to_owned(), false));
            }
        }
        for b in &run.binds {
            out.push((b.dest.as_path().to_owned(), b.source.is_dir()));
        }
        out
    }

    /// Where the mount point for the `i`th of `points` must be made: in the skeleton when no
    /// earlier mount covers it, in the per-run home when the home does (and is that folder),
    /// nowhere otherwise (the mounted folder brings it, or nspawn says it is missing).
    fn mount_point_place(
        run: &Prepared,
        points: &[(PathBuf, bool)],
        i: usize,
    ) -> Option<FilePlace> {
        let dest = &points[i].0;
        let cover = points[..i]
            .iter()
            .rev()
            .find(|(d, dir)| *dir && dest != d && dest.starts_with(d));
        match cover {
            None => Some(FilePlace::Bound),
            Some((d, _)) if d == run.home.as_path() && run.home_source.is_none() => dest
                .strip_prefix(d)
                .ok()
                .map(|rel| FilePlace::Home(rel.to_owned())),
            Some(_) => None,
        }
    }

    /// The environment file: `KEY=VALUE` entries separated by NUL bytes.
    fn env_file(run: &Prepared) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &run.env {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    /// The skeleton root: standard folders, the root entries' folders and links, and a mount
    /// point for everything bound.
    fn stage_root(&self, run: &Prepared) -> Result<(), SandboxError> {
        let root = self.root_dir();
        let io = |what: &str, p: &Path, e| SandboxError::io(format!("{what} {}", p.display()), e);
        let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        std::fs::create_dir(&root).map_err(|e| io("create", &root, e))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("protect", &root, e))?;
        for d in SKELETON_DIRS {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
        }
        for e in &run.root.entries {
            match e {
                RootEntry::Dir { dest } => {
                    let p = inside(dest);
                    std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
                }
                RootEntry::Symlink { target, dest } => {
                    let p = inside(dest);
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
                    }
                    std::os::unix::fs::symlink(target, &p).map_err(|e| io("create", &p, e))?;
                }
                RootEntry::RoBind { .. } => {}
            }
        }
        let points = Self::mount_points(run);
        for (i, (dest, dir)) in points.iter().enumerate() {
            let p = match Self::mount_point_place(run, &points, i) {
                Some(FilePlace::Bound) => inside(dest),
                // Made with the home (see `stage`).
                Some(FilePlace::Home(_)) | None => continue,
            };
            if std::fs::symlink_metadata(&p).is_ok() {
                continue;
            }
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
            }
            let made = if *dir {
                std::fs::create_dir(&p)
            } else {
                std::fs::write(&p, b"")
            };
            made.map_err(|e| io("create", &p, e))?;
        }
        Ok(())
    }
}

fn arg(args: &mut Vec<OsString>, parts: &[&dyn AsRef<OsStr>]) {
    args.extend(parts.iter().map(|p| p.as_ref().to_owned()));
}

/// nspawn's `--bind=SRC:DEST[:OPTIONS]` splits on `:`; a path with one cannot be passed.
fn bind_path(p: &Path) -> Result<String, SandboxError> {
    let s = p.to_string_lossy();
    if s.contains(':') || s.contains('\n') {
        return Err(Nspawn::unavailable(
            format!("the path {s:?} contains `:` or a newline, which systemd-nspawn's --bind cannot take"),
            "rename it, or use the bwrap backend",
        ));
    }
    Ok(s.into_owned())
}

/// `--bind=SRC:DEST:OPTS` (or `--bind-ro`).
fn bind(
    a: &mut Vec<OsString>,
    mode: MountMode,
    src: &Path,
    dest: &Path,
    opts: &str,
) -> Result<(), SandboxError> {
    let flag = match mode {
        MountMode::ReadOnly => "--bind-ro",
        MountMode::ReadWrite => "--bind",
    };
    let mut v = format!("{flag}={}:{}", bind_path(src)?, bind_path(dest)?);
    if !opts.is_empty() {
        v.push(':');
        v.push_str(opts);
    }
    a.push(v.into());
    Ok(())
}

impl Backend for Nspawn {
    fn name(&self) -> &'static str {
        "nspawn"
    }

    fn filters_egress(&self) -> bool {
        true
    }

    fn probe(&self) -> Probe {
        probe::probe(self)
    }

    fn stage(&self, run: &Prepared) -> Result<(), SandboxError> {
        remove_stale(Path::new(STAGE_PARENT));
        stage::private_dir(&self.stage)?;
        self.stage_root(run)?;
        let user = &run.spec.user;
        // The home: the user's own folder, with the generated files below it.
        if run.home_source.is_none() {
            let home = self.home_dir();
            std::fs::create_dir(&home)
                .map_err(|e| SandboxError::io(format!("create {}", home.display()), e))?;
            for (f, place) in run.files.iter().zip(Self::file_places(run)) {
                if let FilePlace::Home(rel) = place {
                    let p = home.join(&rel);
                    make_dirs_as(
                        &home,
                        rel.parent().unwrap_or(Path::new("")),
                        user.uid,
                        user.gid,
                    )?;
                    stage::write_file(&p, &f.contents, if f.writable { 0o600 } else { 0o444 })?;
                    chown(&p, user.uid, user.gid)?;
                }
            }
            // Mount points below the home (the agent's state folder, a deploy key's folder).
            let points = Self::mount_points(run);
            for (i, (_, dir)) in points.iter().enumerate() {
                if let Some(FilePlace::Home(rel)) = Self::mount_point_place(run, &points, i) {
                    let p = home.join(&rel);
                    if std::fs::symlink_metadata(&p).is_ok() {
                        continue;
                    }
                    make_dirs_as(
                        &home,
                        rel.parent().unwrap_or(Path::new("")),
                        user.uid,
                        user.gid,
                    )?;
                    let made = if *dir {
                        std::fs::create_dir(&p)
                    } else {
                        std::fs::write(&p, b"")
                    };
                    made.map_err(|e| SandboxError::io(format!("create {}", p.display()), e))?;
                    chown(&p, user.uid, user.gid)?;
                }
            }
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| SandboxError::io(format!("protect {}", home.display()), e))?;
            chown(&home, user.uid, user.gid)?;
        }
        for (i, (f, place)) in run.files.iter().zip(Self::file_places(run)).enumerate() {
            if let FilePlace::Bound = place {
                let p = self.file_path(i);
                // Readable inside (where the host's root is nobody); the stage is 0700.
                stage::write_file(&p, &f.contents, if f.writable { 0o600 } else { 0o444 })?;
                if f.writable {
                    chown(&p, user.uid, user.gid)?;
                }
            }
        }
        // Mount points for the pinned sources, of their kind (the handle's, not the path's).
        for (k, (_, pin)) in Self::pinned(run).into_iter().enumerate() {
            let p = self.pin_path(k);
            let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&*pin.fd))
                .map_err(|e| SandboxError::sys(format!("inspect {}", pin.source.display()), e))?;
            let made = if nix::sys::stat::SFlag::from_bits_truncate(st.st_mode)
                .contains(nix::sys::stat::SFlag::S_IFDIR)
            {
                std::fs::create_dir(&p)
            } else {
                std::fs::write(&p, b"")
            };
            made.map_err(|e| SandboxError::io(format!("create {}", p.display()), e))?;
        }
        // /run/wrapix: links, mount points, the filter, the environment, the release FIFO.
        let run_dir = self.run_dir();
        stage::run_dir(&run_dir, RUN_DIR_ENTRIES)?;
        stage::run_dir_mount_points(&run_dir, SANDBOX_RUN_DIR, run)?;
        let seccomp = default_filter_bytes(SeccompOptions::default())?;
        stage::write_file(&run_dir.join("seccomp.bpf"), &seccomp, 0o444)?;
        // The user's own environment (the API key, when forwarded), readable by the user only.
        let env = run_dir.join("env");
        stage::write_file(&env, &Self::env_file(run), 0o400)?;
        chown(&env, user.uid, user.gid)?;
        if run.network == Network::Open {
            let fifo = run_dir.join("release");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .map_err(|e| SandboxError::sys(format!("create {}", fifo.display()), e))?;
        }
        Ok(())
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.stage);
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        let nspawn = self.nspawn.clone().ok_or_else(|| {
            Self::unavailable(
                "systemd-nspawn is not installed",
                "sudo apt-get install systemd-container",
            )
        })?;
        if !self.root {
            return Err(Self::unavailable(
                "systemd-nspawn runs only as root",
                "run `sudo wrapix --backend nspawn …`, or use the bwrap backend (unprivileged)",
            ));
        }
        let user = &run.spec.user;
        let mut a: Vec<OsString> = Vec::new();
        arg(
            &mut a,
            &[
                &"--quiet",
                &"--register=no",
                &"--keep-unit",
                &"--timezone=off",
                &"--resolv-conf=off",
                &"--link-journal=no",
                &format!("--directory={}", bind_path(&self.root_dir())?),
                &"--read-only",
                &"--private-users=pick",
                &"--private-network",
                &"--drop-capability=all",
                // nspawn's own filter denies these without CAP_SYS_PTRACE; bubblewrap allows
                // them (strace, gdb), and PID 1 is not dumpable either way.
                &"--system-call-filter=ptrace process_vm_readv process_vm_writev",
                &"--no-new-privileges=yes",
                &"--console=pipe",
                &"--hostname=wrapix",
                &format!("--user={}", user.name),
                &format!("--chdir={}", wrapix_spec::Spec::WORKSPACE),
            ],
        );
        // The root's read-only folders (the image's, or the host's /usr and /etc).
        for e in &run.root.entries {
            if let RootEntry::RoBind { source, dest } = e {
                bind(&mut a, MountMode::ReadOnly, source, dest, "")?;
            }
        }
        arg(
            &mut a,
            &[&"--tmpfs=/tmp:mode=1777", &"--tmpfs=/var/tmp:mode=1777"],
        );
        // The home: the per-run folder, or the host folder for `[agent] home = "host"`.
        let home = match &run.home_source {
            Some(src) => src.clone(),
            None => self.home_dir(),
        };
        bind(
            &mut a,
            MountMode::ReadWrite,
            &home,
            run.home.as_path(),
            "idmap",
        )?;
        // Generated files outside the home.
        for (i, (f, place)) in run.files.iter().zip(Self::file_places(run)).enumerate() {
            if let FilePlace::Bound = place {
                let mode = if f.writable {
                    MountMode::ReadWrite
                } else {
                    MountMode::ReadOnly
                };
                bind(&mut a, mode, &self.file_path(i), f.dest.as_path(), "idmap")?;
            }
        }
        // Workspace, protected paths, user mounts, agent state: in this order (nspawn mounts
        // parents before children). Idmapped: host owners stay the owners inside. A source
        // held open since it was checked (a protected path in the project) is bound through
        // its handle: the executor binds the handle onto a staged path in nspawn's mount
        // namespace, so a link swapped in meanwhile (by another sandbox of the project) cannot
        // make root bind something else.
        // When the sandbox user is root (wrapix run as root, `sudo wrapix`), root inside stands
        // for each source's owner (`rootidmap`): in a project of yours, run with sudo, the
        // agent writes your files and what it creates is yours, though it has no capabilities
        // to override permissions. Otherwise every uid is itself (`idmap`).
        let map = if user.uid == 0 { "rootidmap" } else { "idmap" };
        let pinned = Self::pinned(run);
        let mut pass = Vec::new();
        let mut pin_mounts = Vec::new();
        for b in &run.binds {
            match pinned.iter().position(|(pb, _)| std::ptr::eq(*pb, b)) {
                Some(k) => {
                    let fd = FIRST_PIN_FD + k as i32;
                    pass.push(PassFd {
                        fd,
                        what: b.source.display().to_string(),
                        file: pinned[k].1.fd.clone(),
                    });
                    pin_mounts.push(PinMount {
                        fd,
                        target: self.pin_path(k),
                    });
                    bind(&mut a, b.mode, &self.pin_path(k), b.dest.as_path(), map)?;
                }
                None => bind(&mut a, b.mode, &b.source, b.dest.as_path(), map)?,
            }
        }
        // /run/wrapix, then wrapix onto its mount points there.
        // Idmapped: the env file is the user's alone.
        bind(
            &mut a,
            MountMode::ReadOnly,
            &self.run_dir(),
            Path::new(SANDBOX_RUN_DIR),
            "idmap",
        )?;
        let wrapix = Path::new(SANDBOX_BIN_DIR).join("wrapix");
        bind(&mut a, MountMode::ReadOnly, &run.self_exe, &wrapix, "")?;
        if let Some(serve) = &run.serve_exe {
            let inside = Path::new(SANDBOX_BIN_DIR).join("wrapix-serve");
            bind(&mut a, MountMode::ReadOnly, serve, &inside, "")?;
        }
        let init_comm = if run.init_exe.is_some() {
            "wrapix-init"
        } else {
            "wrapix"
        };
        let mut init: Vec<OsString> = match &run.init_exe {
            Some(exe) => {
                let inside = Path::new(SANDBOX_BIN_DIR).join("wrapix-init");
                bind(&mut a, MountMode::ReadOnly, exe, &inside, "")?;
                vec![inside.into()]
            }
            None => vec![wrapix.into(), "__init".into()],
        };
        arg(
            &mut init,
            &[&"--seccomp", &SECCOMP_INSIDE, &"--env-file", &ENV_INSIDE],
        );

        let network = match run.network {
            // An allowlist: loopback only (`--private-network`), like `none`; the way out is
            // the proxy's socket folder (bound by prepare at /run/wrapix/egress) and the
            // init's loopback relay to it, started from the env file (`WRAPIX_EGRESS_SOCKET`).
            Network::None | Network::Filtered(_) => None,
            Network::Open => {
                let pasta = self.pasta.clone().ok_or_else(|| {
                    Self::unavailable(
                        "network = \"open\" needs pasta for userspace networking, and it is not installed",
                        "sudo apt-get install passt, or run with --network none",
                    )
                })?;
                let mut net =
                    crate::network::pasta(pasta, run.dns_forward.as_deref(), user.uid, &[]);
                net.join_userns = true;
                arg(&mut init, &[&"--wait-file", &RELEASE_INSIDE]);
                Some(net)
            }
        };
        a.push("--".into());
        a.extend(init);
        a.push("--".into());
        for c in &run.command {
            a.push(c.into());
        }

        let (program, args) = if run.spec.resources.any() {
            let refuse = |why: &str| {
                Self::unavailable(
                    format!("[resources] limits cannot be enforced for nspawn here: {why}"),
                    "run on a host where systemd is the service manager with cgroup v2 (nspawn's own --property needs machine registration), or remove [resources]",
                )
            };
            let scope = match &self.limits {
                Some(Ok(scope)) => scope,
                Some(Err(why)) => return Err(refuse(why)),
                None => return Err(refuse("the host was not checked for them")),
            };
            let mut s: Vec<OsString> = super::limits::scope_args(scope, &run.spec.resources)
                .into_iter()
                .map(OsString::from)
                .collect();
            s.push(nspawn.into());
            s.extend(a);
            (scope.systemd_run.clone(), s)
        } else {
            (nspawn, a)
        };
        Ok(LaunchPlan {
            backend: "nspawn",
            program,
            args,
            // nspawn's own: the sandbox's comes from the env file.
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            fds: Vec::new(),
            pass,
            info_fd: None,
            // wrapix's init reports a command that cannot start (127/126) itself.
            not_started: None,
            block_fd: None,
            pid_file: None,
            holder_in_child: Some(init_comm.to_owned()),
            release_fifo: network.as_ref().map(|_| self.run_dir().join("release")),
            guard_backend: true,
            pin_mounts,
            network,
            terminal: run.terminal,
            signals: SignalTarget::Holder,
            after_kill: None,
        })
    }
}

/// Removes the per-run folders of wrapix processes that are gone (killed before they could
/// clean up). Nothing of a gone run is mounted anywhere: its mounts lived in nspawn's own
/// mount namespace.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("nspawn-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Creates `rel`'s folders below `base` (which exists), each owned by `uid:gid`.
fn make_dirs_as(base: &Path, rel: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    let mut dir = base.to_owned();
    for c in rel.components() {
        dir.push(c);
        if std::fs::symlink_metadata(&dir).is_err() {
            std::fs::create_dir(&dir)
                .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
            chown(&dir, uid, gid)?;
        }
    }
    Ok(())
}

fn chown(p: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .map_err(|e| SandboxError::io(format!("chown {}", p.display()), e))
}

mod probe;
#[cfg(test)]
mod tests;
