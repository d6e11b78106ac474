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
    match &b.pasta {
        Some(p) => checks.push(Check::pass(
            "pasta (network = \"open\")",
            p.display().to_string(),
        )),
        None => checks.push(
            Check::fail(
                "pasta (network = \"open\")",
                "not installed: only network = \"none\" can run",
                "sudo apt-get install passt",
            )
            .optional(),
        ),
    }
    checks.push(tun_check());
    Probe {
        backend: "bwrap",
        checks,
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
    match find_program("podman", path_env) {
        Some(p) => out.push(
            Check::pass(
                "podman (backend not available yet)",
                p.display().to_string(),
            )
            .optional(),
        ),
        None => out.push(
            Check::fail(
                "podman (backend not available yet)",
                "not installed",
                "sudo apt-get install podman",
            )
            .optional(),
        ),
    }
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
