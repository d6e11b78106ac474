//! `[resources]` for bubblewrap: the run goes into a transient systemd scope
//! (`systemd-run [--user] --scope`) whose cgroup carries the limits.
//!
//! Unprivileged bubblewrap has no cgroup of its own, and rlimits are per process or per user,
//! not per sandbox. A scope of the user's own service manager is the one place an unprivileged
//! user can get a cgroup with limits: it needs cgroup v2 and a user manager that was delegated
//! the controllers (`memory` and `pids`; `cpu` for `cpus`). Where that is missing (cgroup v1 or
//! hybrid hosts, no systemd, containers without a user manager), [`detect`] says why and the
//! run is refused: limits that cannot be enforced are never silently dropped.
//!
//! In scope mode `systemd-run` moves itself into the new scope and then execs bwrap, so bwrap
//! keeps the executor's fds and its PID, and everything in the sandbox inherits the limits.

use std::path::{Path, PathBuf};

use wrapix_spec::Resources;

/// The cgroup v2 mount.
pub const CGROUP2: &str = "/sys/fs/cgroup";

/// The system manager's private socket.
pub const SYSTEM_SOCKET: &str = "/run/systemd/private";

/// A service manager that can put a run in a scope with limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub systemd_run: PathBuf,
    /// `--user` (the user's manager) or the system manager (root).
    pub user: bool,
    /// The manager's runtime folder, which `systemd-run --user` finds it by (XDG_RUNTIME_DIR).
    pub runtime_dir: Option<PathBuf>,
}

/// Facts [`detect`] reads, passed in for tests.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    pub systemd_run: Option<PathBuf>,
    pub uid: u32,
    pub runtime_dir: Option<&'a Path>,
    /// Where cgroup v2 is mounted (`/sys/fs/cgroup`).
    pub cgroup2: &'a Path,
    /// Where the system manager's private socket is ([`SYSTEM_SOCKET`]).
    pub system_socket: &'a Path,
}

/// The controllers `res` needs.
pub fn controllers(res: &Resources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if res.memory_mb.is_some() {
        out.push("memory");
    }
    if res.pids.is_some() {
        out.push("pids");
    }
    if res.cpus.is_some() {
        out.push("cpu");
    }
    out
}

/// Whether this host can enforce `res` for bubblewrap, and through which manager; `Err` says
/// what is missing.
pub fn detect(host: &Host<'_>, res: &Resources) -> Result<Scope, String> {
    let systemd_run = host
        .systemd_run
        .clone()
        .ok_or("systemd-run is not installed (no systemd)")?;
    let enabled = std::fs::read_to_string(host.cgroup2.join("cgroup.controllers"))
        .map_err(|_| "the host does not use cgroup v2 alone (cgroup v1 or hybrid)".to_owned())?;
    let (user, runtime_dir, delegated) = if host.uid == 0 {
        if !host.system_socket.exists() {
            return Err("systemd is not the service manager here".into());
        }
        (false, None, enabled)
    } else {
        let rt = host
            .runtime_dir
            .ok_or("XDG_RUNTIME_DIR is not set, so there is no systemd user manager to ask")?;
        if !rt.join("systemd/private").exists() {
            return Err(format!(
                "no systemd user manager runs for this user ({} is missing)",
                rt.join("systemd/private").display()
            ));
        }
        let service = host.cgroup2.join(format!(
            "user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers",
            uid = host.uid
        ));
        let delegated = std::fs::read_to_string(&service).map_err(|e| {
            format!(
                "cannot read the user manager's controllers ({}: {e})",
                service.display()
            )
        })?;
        (true, Some(rt.to_owned()), delegated)
    };
    let have: Vec<&str> = delegated.split_whitespace().collect();
    let missing: Vec<&str> = controllers(res)
        .into_iter()
        .filter(|c| !have.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the service manager was not delegated the {} controller{}",
            missing.join(", "),
            if missing.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(Scope {
        systemd_run,
        user,
        runtime_dir,
    })
}

/// `systemd-run` arguments that run `program args…` in a scope with `res`.
pub fn scope_args(scope: &Scope, res: &Resources) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if scope.user {
        a.push("--user".into());
    }
    a.extend(["--scope", "--quiet", "--collect"].map(String::from));
    if let Some(mb) = res.memory_mb {
        a.push(format!("--property=MemoryMax={mb}M"));
        // Without this the limit only moves the excess to swap.
        a.push("--property=MemorySwapMax=0".into());
    }
    if let Some(n) = res.pids {
        a.push(format!("--property=TasksMax={n}"));
    }
    if let Some(c) = res.cpus {
        a.push(format!("--property=CPUQuota={}%", u64::from(c) * 100));
    }
    a.push("--".into());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.path(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(Path::new("/")))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn res() -> Resources {
        Resources {
            cpus: Some(2),
            memory_mb: Some(512),
            pids: Some(100),
        }
    }

    #[test]
    fn a_delegated_user_manager_is_used() {
        let f = Fixture::new();
        let cg = f.path("cg");
        let rt = f.path("rt");
        f.write("cg/cgroup.controllers", "cpuset cpu io memory pids\n");
        f.write("rt/systemd/private", "");
        let host = Host {
            systemd_run: Some("/usr/bin/systemd-run".into()),
            uid: 1000,
            runtime_dir: Some(&rt),
            cgroup2: &cg,
            system_socket: &f.path("none"),
        };
        // The user manager has memory and pids, not cpu.
        f.write(
            "cg/user.slice/user-1000.slice/user@1000.service/cgroup.controllers",
            "memory pids\n",
        );
        let no_cpu = Resources {
            cpus: None,
            ..res()
        };
        let scope = detect(&host, &no_cpu).unwrap_or_else(|e| panic!("{e}"));
        assert!(scope.user);
        assert_eq!(scope.runtime_dir.as_deref(), Some(rt.as_path()));
        assert_eq!(
            detect(&host, &res()),
            Err("the service manager was not delegated the cpu controller".into())
        );
        assert_eq!(
            scope_args(&scope, &res()),
            [
                "--user",
                "--scope",
                "--quiet",
                "--collect",
                "--property=MemoryMax=512M",
                "--property=MemorySwapMax=0",
                "--property=TasksMax=100",
                "--property=CPUQuota=200%",
                "--"
            ]
        );
    }

    #[test]
    fn each_missing_piece_is_named() {
        let f = Fixture::new();
        let cg = f.path("cg");
        let rt = f.path("rt");
        let mut host = Host {
            systemd_run: None,
            uid: 1000,
            runtime_dir: Some(&rt),
            cgroup2: &cg,
            system_socket: &f.path("none"),
        };
        let err = |h: &Host<'_>| detect(h, &res()).err().unwrap_or_default();
        assert!(err(&host).contains("systemd-run is not installed"));
        host.systemd_run = Some("/usr/bin/systemd-run".into());
        assert!(err(&host).contains("cgroup v1 or hybrid"));
        f.write("cg/cgroup.controllers", "cpu memory pids\n");
        assert!(err(&host).contains("no systemd user manager"));
        f.write("rt/systemd/private", "");
        assert!(err(&host).contains("user manager's controllers"));
        host.runtime_dir = None;
        assert!(err(&host).contains("XDG_RUNTIME_DIR is not set"));
        // Root uses the system manager.
        host.uid = 0;
        assert!(err(&host).contains("systemd is not the service manager"));
        f.write("private", "");
        let sock = f.path("private");
        host.system_socket = &sock;
        let scope = detect(&host, &res()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!scope.user);
        assert_eq!(
            scope_args(&scope, &Resources::default()),
            ["--scope", "--quiet", "--collect", "--"]
        );
    }
}
