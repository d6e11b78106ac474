//! What the bubblewrap backend needs on this host, including a real start of an empty sandbox
//! (`wrapix doctor`; not on the launch path).

use std::path::Path;
use std::process::{Command, Stdio};

use super::Bwrap;
use crate::backend::{Check, Probe};
use crate::doctor;

/// Everything the bubblewrap backend needs, including a real start of an empty sandbox.
pub fn probe(b: &Bwrap) -> Probe {
    let mut checks = doctor::userns_checks();
    match &b.bwrap {
        None => checks.push(Check::fail(
            "bwrap",
            "not installed",
            "sudo apt-get install bubblewrap",
        )),
        Some(path) => {
            let version = super::version(path).unwrap_or_default();
            checks.push(Check::pass(
                "bwrap",
                format!("{} ({version})", path.display()),
            ));
            checks.push(smoke_test(path));
        }
    }
    checks.push(doctor::pasta_check(b.pasta.as_deref()));
    checks.push(doctor::tun_check());
    checks.push(bwrap_limits_check(b));
    Probe {
        backend: "bwrap",
        checks,
    }
}

/// Whether `[resources]` (all three limits) can be enforced for bubblewrap: a systemd scope.
fn bwrap_limits_check(b: &Bwrap) -> Check {
    let host = crate::backend::limits::Host {
        systemd_run: b.systemd_run.clone(),
        uid: nix::unistd::geteuid().as_raw(),
        runtime_dir: b.runtime_dir.as_deref(),
        cgroup2: Path::new(crate::backend::limits::CGROUP2),
        system_socket: Path::new(crate::backend::limits::SYSTEM_SOCKET),
    };
    let all = wrapix_spec::Resources {
        cpus: Some(1),
        memory_mb: Some(1),
        pids: Some(1),
    };
    match crate::backend::limits::detect(&host, &all) {
        Ok(_) => Check::pass("[resources] limits", "enforceable (systemd scope)"),
        Err(why) => Check::fail(
            "[resources] limits",
            format!("{why}: runs with [resources] are refused"),
            "use cgroup v2 with a systemd user manager (controllers delegated), or leave [resources] unset",
        )
        .optional(),
    }
}

/// Starts `bwrap` with the namespaces wrapix uses and runs `true`.
fn smoke_test(bwrap: &Path) -> Check {
    let out = Command::new(bwrap)
        .args([
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup",
            "--unshare-net",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "/usr/bin/true",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Check::pass("bwrap sandbox", "an empty sandbox started and exited"),
        Ok(o) => Check::fail(
            "bwrap sandbox",
            format!("bwrap failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
            "enable unprivileged user namespaces (see the checks above) or install bubblewrap ≥ 0.8",
        ),
        Err(e) => Check::fail("bwrap sandbox", format!("cannot run bwrap: {e}"), "sudo apt-get install bubblewrap"),
    }
}
