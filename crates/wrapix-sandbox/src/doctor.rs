//! Host checks for `wrapix doctor` that no one backend owns (user namespaces, pasta and
//! `/dev/net/tun`, the image builder); each backend's own checks are its `probe` module.

use std::path::Path;

use crate::backend::{find_program, Check};

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

/// pasta, which both backends attach to the sandbox for `network = "open"`.
pub fn pasta_check(pasta: Option<&Path>) -> Check {
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

pub fn tun_check() -> Check {
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

/// The image builder's tools: the host's mmdebstrap and npm, or with `in_container` (the
/// container CLI that runs the build, `WRAPIX_IMAGE_BUILDER=container`) that CLI alone.
pub fn builder_checks(path_env: Option<&str>, in_container: Option<&Path>) -> Vec<Check> {
    if let Some(cli) = in_container {
        let name = "container (image builder: mmdebstrap in a Linux container)";
        return vec![if cli.is_file() {
            Check::pass(name, cli.display().to_string())
        } else {
            Check::fail(
                name,
                "not installed",
                "install Apple's container CLI (https://github.com/apple/container/releases), or set WRAPIX_IMAGE_BUILDER=host where mmdebstrap is installed",
            )
            .optional()
        }];
    }
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
