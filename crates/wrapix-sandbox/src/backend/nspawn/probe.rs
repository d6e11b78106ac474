//! What the nspawn backend needs on this host (`wrapix doctor`; runs programs).

use std::path::Path;
use std::process::{Command, Stdio};

use super::Nspawn;
use crate::backend::{Check, Probe};
use crate::doctor;

/// The oldest systemd whose nspawn has the `idmap` bind option.
const MIN_VERSION: u32 = 250;

pub fn probe(n: &Nspawn) -> Probe {
    let mut checks = Vec::new();
    checks.push(if n.root {
        Check::pass("root", "wrapix runs as root")
    } else {
        Check::fail(
            "root",
            "systemd-nspawn runs only as root",
            "sudo wrapix --backend nspawn …, or use the bwrap backend",
        )
    });
    match &n.nspawn {
        None => checks.push(Check::fail(
            "systemd-nspawn",
            "not installed",
            "sudo apt-get install systemd-container",
        )),
        Some(p) => {
            let out = Command::new(p)
                .arg("--version")
                .stdin(Stdio::null())
                .output();
            let text = out
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let version = text
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u32>().ok());
            checks.push(match version {
                Some(v) if v >= MIN_VERSION => {
                    Check::pass("systemd-nspawn", format!("{} (systemd {v})", p.display()))
                }
                Some(v) => Check::fail(
                    "systemd-nspawn",
                    format!("systemd {v}: idmapped binds need {MIN_VERSION} or later"),
                    "upgrade systemd-container (Debian 12 has 252)",
                ),
                None => Check::fail(
                    "systemd-nspawn",
                    format!("{} --version did not say its version", p.display()),
                    "reinstall systemd-container",
                ),
            });
        }
    }
    // Without a tmpfs there, every start prints a warning about its propagation folder.
    let propagate = Path::new("/run/systemd/nspawn");
    let tmpfs = nix::sys::statfs::statfs(propagate)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false);
    checks.push(if tmpfs {
        Check::pass("/run/systemd/nspawn", "a tmpfs")
    } else {
        Check::fail(
            "/run/systemd/nspawn",
            "not a tmpfs (/run is not one here): nspawn warns at every start",
            "sudo mkdir -p /run/systemd/nspawn && sudo mount -t tmpfs tmpfs /run/systemd/nspawn",
        )
        .optional()
    });
    checks.push(doctor::pasta_check(n.pasta.as_deref()));
    checks.push(doctor::tun_check());
    let all = wrapix_spec::Resources {
        cpus: Some(1),
        memory_mb: Some(1),
        pids: Some(1),
    };
    let host = crate::backend::limits::Host {
        systemd_run: n.systemd_run.clone(),
        uid: 0,
        runtime_dir: None,
        cgroup2: Path::new(crate::backend::limits::CGROUP2),
        system_socket: Path::new(crate::backend::limits::SYSTEM_SOCKET),
    };
    checks.push(match crate::backend::limits::detect(&host, &all) {
        Ok(_) => Check::pass("[resources] limits", "enforceable (systemd scope)"),
        Err(why) => Check::fail(
            "[resources] limits",
            format!("{why}: runs with [resources] are refused"),
            "run where systemd is the service manager with cgroup v2, or leave [resources] unset",
        )
        .optional(),
    });
    Probe {
        backend: "nspawn",
        checks,
    }
}
