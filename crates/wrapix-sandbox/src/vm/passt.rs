//! `__vm-net`: the qemu backend's network holder on the host, for `network = "open"`.
//! `__vm-net --pid-file PATH --wait-fd N -- PASST ARGS…`
//!
//! passt never runs in the host's network namespace. This helper (started by the supervisor,
//! [`super::host`]) first moves into a network namespace of its own (with a user namespace
//! of its own, mapping only the user, also root), writes its PID to `--pid-file`
//! (the executor waits for it, [`crate::plan::LaunchPlan::pid_file`]) and waits on
//! `--wait-fd`. Meanwhile the executor attaches the same pasta as for every other backend to
//! that namespace (no port forwarding, `--no-map-gw`) and adds a `prohibit` route and rule for
//! each of the host's addresses there ([`crate::network::attach`]); then it writes the release
//! byte and the helper execs passt, which serves the VM's NIC over an inherited socket. So the
//! rules that keep the host's own addresses and services out of reach live in a namespace on
//! the host that nothing in the guest can change: a guest whose kernel is compromised still
//! only reaches what that namespace reaches. End-of-file on `--wait-fd` (wrapix gave up, or
//! died) means: do not start passt.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

/// The exit code when the helper could not start passt.
const FAILED: i32 = 125;

/// The fd of the VM's network socket in passt (passt's `--fd`): the supervisor puts it there.
pub const PASST_FD: i32 = 4;

struct Args {
    pid_file: PathBuf,
    wait_fd: i32,
    passt: Vec<OsString>,
}

fn parse(args: &[OsString]) -> Result<Args, String> {
    let mut a = Args {
        pid_file: PathBuf::new(),
        wait_fd: -1,
        passt: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag:?} needs a value"));
        match flag.to_str() {
            Some("--pid-file") => a.pid_file = value()?.into(),
            Some("--wait-fd") => {
                a.wait_fd = value()?
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .filter(|fd| *fd > 2)
                    .ok_or("--wait-fd needs a number above 2")?
            }
            Some("--") => {
                a.passt = it.cloned().collect();
                break;
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if a.passt.is_empty() || a.pid_file.as_os_str().is_empty() || a.wait_fd < 0 {
        return Err("usage: __vm-net --pid-file PATH --wait-fd N -- PASST ARGS…".into());
    }
    Ok(a)
}

/// The helper; returns only on failure (with the exit code).
pub fn main(args: &[OsString]) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    match run(args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("wrapix: vm network: {e}");
            FAILED
        }
    }
}

fn run(args: &[OsString]) -> Result<std::convert::Infallible, String> {
    let a = parse(args)?;
    // SAFETY: the supervisor placed the executor's block pipe at this number for us alone.
    #[allow(unsafe_code)]
    let mut wait = unsafe { std::fs::File::from_raw_fd(a.wait_fd) };
    unshare_net()?;
    // Whole (a temporary name, then a rename): the executor never reads a partial number.
    let tmp = a.pid_file.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &a.pid_file))
        .map_err(|e| format!("write {}: {e}", a.pid_file.display()))?;
    let mut byte = [0u8; 1];
    match wait.read(&mut byte) {
        Ok(1) => {}
        _ => return Err("not released (wrapix stopped before the network was set up)".into()),
    }
    drop(wait);
    let (prog, rest) = a.passt.split_first().ok_or("no passt command")?;
    let e = Command::new(prog).args(rest).exec();
    Err(format!("start {}: {e}", prog.to_string_lossy()))
}

/// A network namespace of our own, in a user namespace of our own that maps only the user
/// (and its group) as uid 0: wrapix joins it (same user) with `nsenter --preserve-credentials`
/// to add the routes, and `ip` keeps the capabilities it needs across its exec only as uid 0
/// there. Nothing else of the host is mapped. Also as root (mapping root alone): pasta, which
/// gives up its capabilities, may open a namespace whose user namespace it owns, but not one
/// of a process holding root's full capabilities in the host's (the ptrace rule that the
/// caller's capabilities cover the target's); and passt then has no capability on the host.
fn unshare_net() -> Result<(), String> {
    use nix::sched::CloneFlags;
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("create a user and network namespace: {e}"))?;
    for (file, text) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("0 {uid} 1")),
        ("/proc/self/gid_map", format!("0 {gid} 1")),
    ] {
        std::fs::write(file, text).map_err(|e| format!("write {file}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let v = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        let a = parse(&v(&[
            "--pid-file",
            "/s/net.pid",
            "--wait-fd",
            "3",
            "--",
            "passt",
            "-f",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.wait_fd, 3);
        assert_eq!(a.passt, v(&["passt", "-f"]));
        assert!(parse(&v(&["--pid-file", "/p", "--wait-fd", "1", "--", "passt"])).is_err());
        assert!(parse(&v(&["--pid-file", "/p", "--", "passt"])).is_err());
        assert!(parse(&v(&["--bogus"])).is_err());
    }
}
