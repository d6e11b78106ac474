//! The bubblewrap backend (unprivileged; the default on Linux).
//!
//! Isolation: new user, mount, PID, IPC, UTS, cgroup and network namespaces; the host user's
//! UID/GID inside; all capabilities dropped; no new user namespaces (`--disable-userns` and the
//! seccomp filter); `--new-session` (no TIOCSTI); `--die-with-parent`; the root read-only.
//! Network `open` attaches pasta to the sandbox's own network namespace from outside
//! (outbound only, no port forwarding, host loopback unreachable); it is never the host's.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use wrapix_spec::{MountMode, Network};

use super::{find_program, Backend, Probe};
use crate::error::SandboxError;
use crate::plan::{FdData, LaunchPlan, PassFd, SignalTarget};
use crate::prepare::{Prepared, SANDBOX_BIN_DIR, SANDBOX_NOTIFY_LINK, SANDBOX_NOTIFY_SOCKET};
use crate::root::RootEntry;
use crate::seccomp::{default_filter_bytes, SeccompOptions};

/// Where the helper programs are on this host, and what it can enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bwrap {
    pub bwrap: Option<PathBuf>,
    pub pasta: Option<PathBuf>,
    /// `systemd-run`, for `[resources]` ([`super::limits`]).
    pub systemd_run: Option<PathBuf>,
    /// The host's `XDG_RUNTIME_DIR`, where `systemd-run --user` finds the user's manager.
    pub runtime_dir: Option<PathBuf>,
    /// For a run with `[resources]`: the scope that enforces them, or why this host has none
    /// (detected when located, so that planning reads nothing). `None`: no limits asked for.
    pub limits: Option<Result<super::limits::Scope, String>>,
}

/// The registry's entry ([`super::REGISTRY`]).
pub const ENTRY: super::Entry = super::Entry {
    name: wrapix_spec::BackendName {
        name: "bwrap",
        aliases: &["bubblewrap"],
    },
    summary: "bwrap",
    locate: |at| Box::new(Bwrap::locate_for(at)),
};

/// First fd number used for data passed to bwrap.
const FIRST_FD: i32 = 10;

impl Bwrap {
    /// Locates `bwrap` and `pasta` on the host's `PATH`.
    pub fn locate(path_env: Option<&str>) -> Self {
        Bwrap {
            bwrap: find_program("bwrap", path_env),
            pasta: find_program("pasta", path_env),
            systemd_run: find_program("systemd-run", path_env),
            runtime_dir: None,
            limits: None,
        }
    }

    /// [`Bwrap::locate`] with the host environment, and whether the run's `[resources]` can
    /// be enforced here.
    pub fn locate_for(at: &super::Locate<'_>) -> Self {
        let mut b = Bwrap {
            runtime_dir: at
                .env
                .get("XDG_RUNTIME_DIR")
                .filter(|d| d.starts_with('/'))
                .map(PathBuf::from),
            ..Self::locate(at.env.get("PATH").map(String::as_str))
        };
        if at.resources.any() {
            let host = super::limits::Host {
                systemd_run: b.systemd_run.clone(),
                uid: at.uid,
                runtime_dir: b.runtime_dir.as_deref(),
                cgroup2: Path::new(super::limits::CGROUP2),
                system_socket: Path::new(super::limits::SYSTEM_SOCKET),
            };
            b.limits = Some(super::limits::detect(&host, &at.resources));
        }
        b
    }

    fn unavailable(problem: &str, fix: &str) -> SandboxError {
        SandboxError::Unavailable {
            backend: "bwrap",
            problem: problem.to_owned(),
            fix: fix.to_owned(),
        }
    }
}

impl Bwrap {
    /// `[resources]`: bwrap run by `systemd-run` in a scope that carries the limits, or a
    /// refusal that says what the host lacks.
    fn in_scope(
        &self,
        run: &Prepared,
        bwrap: PathBuf,
        bwrap_args: Vec<OsString>,
        env: &mut Vec<(OsString, OsString)>,
    ) -> Result<(PathBuf, Vec<OsString>), SandboxError> {
        let refuse = |why: &str| {
            Self::unavailable(
                &format!("[resources] limits cannot be enforced for bubblewrap here: {why}"),
                "run on a host with cgroup v2 and a systemd user manager (controllers delegated), use --backend podman where it can enforce them, or remove [resources]",
            )
        };
        let scope = match &self.limits {
            Some(Ok(scope)) => scope,
            Some(Err(why)) => return Err(refuse(why)),
            None => return Err(refuse("the host was not checked for them")),
        };
        let mut a: Vec<OsString> = super::limits::scope_args(scope, &run.spec.resources)
            .into_iter()
            .map(OsString::from)
            .collect();
        a.push(bwrap.into());
        if let Some(rt) = &scope.runtime_dir {
            // systemd-run finds the user's manager through XDG_RUNTIME_DIR; bwrap drops it
            // again unless the sandbox's own environment sets it.
            if !env.iter().any(|(k, _)| k == "XDG_RUNTIME_DIR") {
                env.push(("XDG_RUNTIME_DIR".into(), rt.into()));
                a.extend(["--unsetenv", "XDG_RUNTIME_DIR"].map(OsString::from));
            }
        }
        a.extend(bwrap_args);
        Ok((scope.systemd_run.clone(), a))
    }
}

fn arg(args: &mut Vec<OsString>, parts: &[&dyn AsRef<OsStr>]) {
    args.extend(parts.iter().map(|p| p.as_ref().to_owned()));
}

impl Backend for Bwrap {
    fn name(&self) -> &'static str {
        "bwrap"
    }

    fn forwards(&self, _: &str) -> bool {
        true
    }

    fn filters_egress(&self) -> bool {
        true
    }

    fn probe(&self) -> Probe {
        probe::probe(self)
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        let bwrap = self.bwrap.clone().ok_or_else(|| {
            Self::unavailable(
                "bubblewrap (bwrap) is not installed",
                "sudo apt-get install bubblewrap",
            )
        })?;
        let user = &run.spec.user;
        let mut a: Vec<OsString> = Vec::new();
        let mut fds: Vec<FdData> = Vec::new();
        let mut next_fd = FIRST_FD;
        let add_fd = |fds: &mut Vec<FdData>, next: &mut i32, what: String, data: Vec<u8>| {
            let fd = *next;
            *next += 1;
            fds.push(FdData { fd, what, data });
            fd.to_string()
        };

        // Namespaces and identity.
        arg(
            &mut a,
            &[
                &"--unshare-user",
                &"--unshare-ipc",
                &"--unshare-pid",
                &"--unshare-uts",
                &"--unshare-cgroup",
                &"--unshare-net",
                &"--disable-userns",
            ],
        );
        arg(
            &mut a,
            &[
                &"--uid",
                &user.uid.to_string(),
                &"--gid",
                &user.gid.to_string(),
            ],
        );
        arg(&mut a, &[&"--hostname", &"wrapix"]);
        arg(&mut a, &[&"--die-with-parent", &"--new-session"]);
        // PID 1: wrapix's init, always. It is not dumpable, so the agent (the same user)
        // cannot ptrace it or write its memory; bubblewrap's own init would be. On a terminal
        // it also makes the sandbox's pty the command's controlling terminal.
        a.push("--as-pid-1".into());
        arg(&mut a, &[&"--cap-drop", &"ALL"]);

        // The root, read-only.
        for e in &run.root.entries {
            match e {
                RootEntry::RoBind { source, dest } => arg(&mut a, &[&"--ro-bind", source, dest]),
                RootEntry::Symlink { target, dest } => arg(&mut a, &[&"--symlink", target, dest]),
                RootEntry::Dir { dest } => arg(&mut a, &[&"--dir", dest]),
            }
        }
        arg(&mut a, &[&"--proc", &"/proc", &"--dev", &"/dev"]);
        arg(
            &mut a,
            &[
                &"--tmpfs",
                &"/tmp",
                &"--tmpfs",
                &"/var/tmp",
                &"--tmpfs",
                &"/run",
            ],
        );
        match &run.home_source {
            Some(src) => arg(&mut a, &[&"--bind", src, &run.home.as_path()]),
            None => arg(
                &mut a,
                &[&"--perms", &"0700", &"--tmpfs", &run.home.as_path()],
            ),
        }

        // Generated files (passwd, group, git identity, known hosts).
        for f in &run.files {
            let fd = add_fd(
                &mut fds,
                &mut next_fd,
                f.dest.to_string(),
                f.contents.clone(),
            );
            if f.writable {
                arg(
                    &mut a,
                    &[&"--perms", &"0600", &"--file", &fd, &f.dest.as_path()],
                );
            } else {
                arg(&mut a, &[&"--ro-bind-data", &fd, &f.dest.as_path()]);
            }
        }

        // Workspace, protected paths, user mounts, agent state: in this order.
        // A source held open since it was checked (a protected path in the project) is bound
        // by fd: the agent of another sandbox of the same project cannot swap it for a link
        // between the check and the mount.
        let mut pass: Vec<PassFd> = Vec::new();
        for b in &run.binds {
            let pinned = run.pinned.iter().find(|p| p.source == b.source);
            match pinned {
                Some(p) => {
                    let fd = next_fd;
                    next_fd += 1;
                    pass.push(PassFd {
                        fd,
                        what: b.source.display().to_string(),
                        file: p.fd.clone(),
                    });
                    let flag = match b.mode {
                        MountMode::ReadOnly => "--ro-bind-fd",
                        MountMode::ReadWrite => "--bind-fd",
                    };
                    arg(&mut a, &[&flag, &fd.to_string(), &b.dest.as_path()]);
                }
                None => {
                    let flag = match b.mode {
                        MountMode::ReadOnly => "--ro-bind",
                        MountMode::ReadWrite => "--bind",
                    };
                    arg(&mut a, &[&flag, &b.source, &b.dest.as_path()]);
                }
            }
        }

        // Device nodes (`gpu = true`): bound as devices (a plain bind would be nodev).
        for d in &run.devices {
            arg(&mut a, &[&"--dev-bind", d, d]);
        }

        // wrapix itself, as `wrapix` on PATH, and wrapix's init when it is PID 1:
        // `wrapix-init` (a small binary, faster to start) when it is installed beside wrapix,
        // else `wrapix __init`.
        let wrapix = Path::new(SANDBOX_BIN_DIR).join("wrapix");
        arg(&mut a, &[&"--ro-bind", &run.self_exe, &wrapix]);
        // wrapix's MCP servers (`wrapix mcp …` execs it), when the config enables one.
        if let Some(serve) = &run.serve_exe {
            let inside = Path::new(SANDBOX_BIN_DIR).join("wrapix-serve");
            arg(&mut a, &[&"--ro-bind", serve, &inside]);
        }
        let init: Vec<OsString> = match &run.init_exe {
            Some(exe) => {
                let inside = Path::new(SANDBOX_BIN_DIR).join("wrapix-init");
                arg(&mut a, &[&"--ro-bind", exe, &inside]);
                vec![inside.into(), "--".into()]
            }
            None => vec![wrapix.into(), "__init".into(), "--".into()],
        };
        // `wrapix-notify` is the same binary (main.rs dispatches on argv[0]).
        let notify = Path::new(SANDBOX_BIN_DIR).join("wrapix-notify");
        arg(&mut a, &[&"--symlink", &"wrapix", &notify]);
        // And `ralph` (its `ralph task …` commands edit /workspace/.ralph).
        let ralph = Path::new(SANDBOX_BIN_DIR).join("ralph");
        arg(&mut a, &[&"--symlink", &"wrapix", &ralph]);
        // The notification socket, through the folder the daemon publishes it in (mounted
        // with the binds when the launcher has it): a restarted daemon is reachable at once.
        arg(
            &mut a,
            &[&"--symlink", &SANDBOX_NOTIFY_LINK, &SANDBOX_NOTIFY_SOCKET],
        );
        arg(&mut a, &[&"--remount-ro", &"/"]);

        let seccomp = default_filter_bytes(SeccompOptions::default())?;
        let fd = add_fd(&mut fds, &mut next_fd, "seccomp filter".into(), seccomp);
        arg(&mut a, &[&"--seccomp", &fd]);

        let info_fd = next_fd;
        next_fd += 1;
        // The sandbox's PID, and later whether the command ran and exited.
        arg(&mut a, &[&"--json-status-fd", &info_fd.to_string()]);

        let (block_fd, network) = match run.network {
            // An allowlist: loopback only, like `none`; the way out is the proxy's socket
            // (bound by prepare) and the init's loopback relay to it.
            Network::None | Network::Filtered(_) => (None, None),
            Network::Open => {
                let pasta = self.pasta.clone().ok_or_else(|| {
                    Self::unavailable(
                        "network = \"open\" needs pasta for userspace networking, and it is not installed",
                        "sudo apt-get install passt, or run with --network none",
                    )
                })?;
                let block = next_fd;
                arg(&mut a, &[&"--block-fd", &block.to_string()]);
                let mut net = crate::network::pasta(
                    pasta,
                    run.dns_forward.as_deref(),
                    user.uid,
                    &run.spec.forward.ports,
                );
                // bubblewrap adds 127.0.0.1 itself after it reported the PID, and fails if
                // pasta's bringing `lo` up has already added it.
                net.await_loopback = true;
                (Some(block), Some(net))
            }
        };

        arg(&mut a, &[&"--chdir", &wrapix_spec::Spec::WORKSPACE]);
        a.push("--".into());
        a.extend(init);
        for c in &run.command {
            a.push(c.into());
        }

        let mut env: Vec<(OsString, OsString)> =
            run.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let (program, a) = if run.spec.resources.any() {
            self.in_scope(run, bwrap, a, &mut env)?
        } else {
            (bwrap, a)
        };
        Ok(LaunchPlan {
            backend: "bwrap",
            program,
            args: a,
            env,
            fds,
            pass,
            info_fd: Some(info_fd),
            not_started: Some(run.not_started_code()),
            block_fd,
            pid_file: None,
            holder_in_child: None,
            release_fifo: None,
            guard_backend: false,
            pin_mounts: Vec::new(),
            network,
            terminal: run.terminal,
            signals: SignalTarget::Process,
            after_kill: None,
        })
    }
}

/// `bwrap --version`, for doctor.
pub fn version(bwrap: &Path) -> Option<String> {
    let out = Command::new(bwrap).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

mod probe;
#[cfg(test)]
mod tests;
