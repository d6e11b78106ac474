//! Host checks for `wrapix doctor`; the same facts decide whether a backend may start.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::backend::bwrap::{self, Bwrap};
use crate::backend::{find_program, Check, Probe};

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Kernel support for unprivileged user namespaces.
pub fn userns_checks() -> Vec<Check> {
    let mut out = Vec::new();
    match read_trim("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok()) {
        Some(0) => out.push(Check::fail(
            "user namespaces",
            "user.max_user_namespaces = 0",
            "sudo sysctl -w user.max_user_namespaces=15000",
        )),
        Some(n) => out.push(Check::pass(
            "user namespaces",
            format!("user.max_user_namespaces = {n}"),
        )),
        None => out.push(Check::fail(
            "user namespaces",
            "the kernel has no user namespaces",
            "use a kernel built with CONFIG_USER_NS=y",
        )),
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        if v == "0" {
            out.push(Check::fail(
                "unprivileged user namespaces",
                "kernel.unprivileged_userns_clone = 0",
                "sudo sysctl -w kernel.unprivileged_userns_clone=1",
            ));
        }
    }
    if read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        out.push(
            Check::fail(
                "AppArmor user namespace restriction",
                "kernel.apparmor_restrict_unprivileged_userns = 1 (bwrap needs an AppArmor profile)",
                "install the distribution's bwrap AppArmor profile (apparmor-profiles) or sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
            )
            .optional(),
        );
    }
    out
}

/// Everything the bubblewrap backend needs, including a real start of an empty sandbox.
pub fn probe_bwrap(b: &Bwrap) -> Probe {
    let mut checks = userns_checks();
    match &b.bwrap {
        None => checks.push(Check::fail(
            "bwrap",
            "not installed",
            "sudo apt-get install bubblewrap",
        )),
        Some(path) => {
            let version = bwrap::version(path).unwrap_or_default();
            checks.push(Check::pass(
                "bwrap",
                format!("{} ({version})", path.display()),
            ));
            checks.push(smoke_test(path));
        }
    }
    checks.push(pasta_check(b.pasta.as_deref()));
    checks.push(tun_check());
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

/// pasta, which both backends attach to the sandbox for `network = "open"`.
fn pasta_check(pasta: Option<&Path>) -> Check {
    match pasta {
        Some(p) => Check::pass("pasta (network = \"open\")", p.display().to_string()),
        None => Check::fail(
            "pasta (network = \"open\")",
            "not installed: only network = \"none\" can run",
            "sudo apt-get install passt",
        )
        .optional(),
    }
}

fn tun_check() -> Check {
    let name = "/dev/net/tun (network = \"open\")";
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => Check::pass(name, "readable and writable"),
        Err(e) => Check::fail(
            name,
            format!("cannot be opened: {e}"),
            "sudo chmod 0666 /dev/net/tun",
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

/// Backends of the design that this version does not run yet, reported for completeness.
pub fn other_checks(path_env: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    let _ = path_env;
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    out.push(match kvm {
        Ok(_) => Check::pass("KVM (qemu backend, not available yet)", "/dev/kvm usable").optional(),
        Err(e) => Check::fail(
            "KVM (qemu backend, not available yet)",
            format!("/dev/kvm: {e}"),
            "enable virtualisation and add yourself to the kvm group",
        )
        .optional(),
    });
    out
}

/// What rootless Podman needs on this host, and the image builder (doctor only; runs programs).
pub fn probe_podman(p: &crate::backend::podman::Podman) -> Probe {
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
    checks.push(pasta_check(p.pasta.as_deref()));
    checks.push(tun_check());
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

/// The image builder's tools.
pub fn builder_checks(path_env: Option<&str>) -> Vec<Check> {
    let mut out = vec![match find_program("mmdebstrap", path_env) {
        Some(m) => Check::pass("mmdebstrap (image builder)", m.display().to_string()),
        None => Check::fail(
            "mmdebstrap (image builder)",
            "not installed",
            "sudo apt-get install mmdebstrap uidmap",
        )
        .optional(),
    }];
    out.push(match find_program("npm", path_env) {
        Some(m) => Check::pass("npm (npm: packages, Claude Code)", m.display().to_string()),
        None => Check::fail(
            "npm (npm: packages, Claude Code)",
            "not installed: images with npm: packages (every built-in profile) cannot be built",
            "install Node.js 20 and npm",
        )
        .optional(),
    });
    out
}
