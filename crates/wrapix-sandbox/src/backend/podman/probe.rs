//! What rootless (or root) Podman needs on this host (`wrapix doctor`; runs programs).

use std::path::Path;
use std::process::{Command, Stdio};

use super::Podman;
use crate::backend::{find_program, Check, Probe};
use crate::doctor;

/// What rootless Podman needs on this host, and the image builder (doctor only; runs programs).
pub fn probe(p: &Podman) -> Probe {
    let mut checks = Vec::new();
    let Some(podman) = &p.podman else {
        checks.push(Check::fail(
            "podman",
            "not installed",
            "sudo apt-get install podman runc uidmap fuse-overlayfs",
        ));
        return Probe {
            backend: "podman",
            checks,
        };
    };
    let version = Command::new(podman)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    checks.push(Check::pass(
        "podman",
        format!("{} ({version})", podman.display()),
    ));
    if p.rootless {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        for file in ["/etc/subuid", "/etc/subgid"] {
            let has = std::fs::read_to_string(file)
                .map(|t| {
                    t.lines()
                        .any(|l| l.split(':').next() == Some(user.as_str()))
                })
                .unwrap_or(false);
            checks.push(if has {
                Check::pass(format!("{file} range"), format!("{user} has one"))
            } else {
                Check::fail(
                    format!("{file} range"),
                    format!("no range for {user}"),
                    format!("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"),
                )
            });
        }
        for helper in ["newuidmap", "newgidmap"] {
            checks.push(match find_program(helper, None) {
                Some(h) => Check::pass(helper, h.display().to_string()),
                None => Check::fail(helper, "not installed", "sudo apt-get install uidmap"),
            });
        }
    }
    let info = Command::new(podman)
        .args(["info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}}"])
        .stdin(Stdio::null())
        .output();
    match info {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            let f: Vec<&str> = text.split_whitespace().collect();
            let (runtime, manager, cgroups, driver) = (
                f.first().copied().unwrap_or(""),
                f.get(1).copied().unwrap_or(""),
                f.get(2).copied().unwrap_or(""),
                f.get(3).copied().unwrap_or(""),
            );
            let hybrid = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
            checks.push(if runtime == "crun" && hybrid {
                Check::fail(
                    "OCI runtime",
                    "crun on hybrid cgroups (\"cgroups in hybrid mode not supported\")",
                    "sudo apt-get install runc; set runtime = \"runc\" under [engine] in /etc/containers/containers.conf",
                )
            } else {
                Check::pass("OCI runtime", runtime.to_owned())
            });
            checks.push(if manager == "systemd" && !Path::new("/run/systemd/system").exists() {
                Check::fail(
                    "cgroup manager",
                    "systemd, but systemd is not running",
                    "set cgroup_manager = \"cgroupfs\" under [engine] in /etc/containers/containers.conf",
                )
            } else {
                Check::pass("cgroup manager", format!("{manager} (cgroups {cgroups})"))
            });
            checks.push(if driver == "overlay" {
                Check::pass("storage driver", "overlay")
            } else {
                Check::fail(
                    "storage driver",
                    format!("{driver}: every run copies the image"),
                    "set driver = \"overlay\" in /etc/containers/storage.conf, then podman system reset -f",
                )
                .optional()
            });
        }
        Ok(o) => checks.push(Check::fail(
            "podman info",
            String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            "see the message; /etc/containers/containers.conf needs runtime = \"runc\" and cgroup_manager = \"cgroupfs\" on hosts without systemd",
        )),
        Err(e) => checks.push(Check::fail("podman info", e.to_string(), "reinstall podman")),
    }
    checks.push(doctor::pasta_check(p.pasta.as_deref()));
    checks.push(doctor::tun_check());
    checks.push(if p.limits_enforceable {
        Check::pass("[resources] limits", "enforceable")
    } else {
        Check::fail(
            "[resources] limits",
            "rootless podman cannot enforce them here (no delegated cgroup v2): runs with [resources] are refused",
            "use cgroup v2 with systemd delegation, or leave [resources] unset",
        )
        .optional()
    });
    Probe {
        backend: "podman",
        checks,
    }
}
