//! `wrapix __init`: PID 1 inside every sandbox (bubblewrap's and podman's). It makes itself
//! non-dumpable (so that the agent, the same user, cannot ptrace it or write its memory), starts
//! the command in its own process group,
//! passes on every signal wrapix forwards (bubblewrap's own init does not), reaps orphans, and
//! exits with the command's status. When it exits, the kernel ends every process left in the
//! sandbox's PID namespace: no strays.
//!
//! Usage: `wrapix __init [--wait-fd FD] [--] COMMAND ARGS…` (or `wrapix-init …`). With
//! `--wait-fd`, the init first reads one byte from FD, which the executor writes once the
//! sandbox's network is in place (podman; bubblewrap holds the sandbox itself with
//! `--block-fd`). End-of-file instead of the byte means the set-up failed or wrapix died: the
//! init exits 125 without running the command.

use std::ffi::OsString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::exec::FORWARDED;

/// The exit code when the sandbox was not released, or the init's arguments are wrong.
const NOT_RELEASED: i32 = 125;

/// The init's arguments after `__init` (or after `wrapix-init`'s own name): parses them, waits for
/// the release if asked to, runs the command, and returns the exit code for the sandbox.
pub fn main(args: &[OsString]) -> i32 {
    // Not dumpable: the agent runs as the same user, and could otherwise ptrace this PID 1,
    // read or write its memory through /proc/1/mem, and hang or take over its own run. The
    // command gets the default back when it execs.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("wrapix: init: cannot make PID 1 non-dumpable: {e}");
        return NOT_RELEASED;
    }
    let (wait_fd, command) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wrapix: init: {e}");
            return NOT_RELEASED;
        }
    };
    if let Some(fd) = wait_fd {
        if let Err(e) = wait_for_release(fd) {
            eprintln!("wrapix: init: {e}; not running the command");
            return NOT_RELEASED;
        }
    }
    run(command)
}

/// `[--wait-fd FD] [--] COMMAND…` → (FD, COMMAND…).
fn parse(args: &[OsString]) -> Result<(Option<i32>, &[OsString]), String> {
    let mut rest = args;
    let mut wait_fd = None;
    if rest.first().is_some_and(|a| a == "--wait-fd") {
        let fd = rest
            .get(1)
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse::<i32>().ok())
            .filter(|fd| *fd >= 3)
            .ok_or("--wait-fd needs a file descriptor number of 3 or more")?;
        wait_fd = Some(fd);
        rest = &rest[2..];
    }
    while rest.first().is_some_and(|a| a == "--") {
        rest = &rest[1..];
    }
    Ok((wait_fd, rest))
}

/// Reads the release byte from `fd` and closes it (the command must not inherit it).
#[allow(unsafe_code)]
fn wait_for_release(fd: i32) -> Result<(), String> {
    use std::io::Read;
    if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(format!("--wait-fd {fd} is not open"));
    }
    // SAFETY: the fd is open (checked above) and nothing else in this process uses it; the
    // File closes it when dropped.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut byte = [0u8; 1];
    loop {
        match f.read(&mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err("the sandbox was not released (its set-up failed)".into()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting for the release on fd {fd}: {e}")),
        }
    }
}

/// Runs `argv` and returns the exit code for the sandbox.
pub fn run(argv: &[OsString]) -> i32 {
    let Some((prog, args)) = argv.split_first() else {
        eprintln!("wrapix: nothing to run");
        return 2;
    };
    // If bwrap (our parent) is killed, so are we, and with us the whole PID namespace.
    // bubblewrap's own --die-with-parent does not survive its switch of credentials here.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    if let Err(e) = set.thread_block() {
        eprintln!("wrapix: init: cannot block signals: {e}");
        return 125;
    }
    let mut cmd = Command::new(prog);
    cmd.args(args).process_group(0);
    child_setup(&mut cmd, take_terminal());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wrapix: cannot run `{}`: {e}", prog.to_string_lossy());
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let main = Pid::from_raw(child.id() as i32);
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // To the command's whole process group, else to the command alone.
            if kill(Pid::from_raw(-main.as_raw()), sig).is_err() {
                let _ = kill(main, sig);
            }
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == main => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == main => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}

/// Makes stdin our controlling terminal when it is a terminal no other session owns (the
/// pty wrapix opened); the user's own terminal is refused by the kernel, which is fine.
#[allow(unsafe_code)]
fn take_terminal() -> bool {
    if !nix::unistd::isatty(0).unwrap_or(false) {
        return false;
    }
    // SAFETY: one TIOCSCTTY ioctl on fd 0 with arg 0 (never steal a terminal).
    unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) == 0 }
}

/// In the child before exec: with a terminal, the command's process group becomes its
/// foreground group (shells get job control, Ctrl-C reaches the command); always, the signal
/// mask init uses for itself is cleared (a forked child inherits it).
#[allow(unsafe_code)]
fn child_setup(cmd: &mut Command, terminal: bool) {
    // SAFETY: between fork and exec; only async-signal-safe calls (sigprocmask, getpid,
    // tcsetpgrp) on stack values.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if terminal {
                libc::sigaddset(&mut set, libc::SIGTTOU);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                libc::tcsetpgrp(0, libc::getpid());
                libc::sigemptyset(&mut set);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::IntoRawFd;

    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_old_and_the_new_argv() {
        let cmd = os(&["sh", "-c", "true"]);
        for (args, fd) in [
            (os(&["--", "sh", "-c", "true"]), None),
            (os(&["sh", "-c", "true"]), None),
            (os(&["--wait-fd", "3", "--", "sh", "-c", "true"]), Some(3)),
            (os(&["--wait-fd", "7", "sh", "-c", "true"]), Some(7)),
        ] {
            let (got_fd, got) = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!((got_fd, got), (fd, cmd.as_slice()), "{args:?}");
        }
        // A command's own `--wait-fd` after `--` is the command's.
        let args = os(&["--", "--wait-fd", "3"]);
        assert_eq!(parse(&args).ok(), Some((None, &args[1..])));
        for bad in [
            &["--wait-fd"][..],
            &["--wait-fd", "x", "--", "true"],
            &["--wait-fd", "1", "--", "true"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn end_of_file_is_no_release() {
        let (r, w) = nix::unistd::pipe().unwrap_or_else(|e| panic!("{e}"));
        drop(w);
        let e = wait_for_release(r.into_raw_fd());
        assert!(e.is_err_and(|e| e.contains("not released")));
    }

    #[test]
    fn a_byte_releases() {
        let (r, w) = nix::unistd::pipe().unwrap_or_else(|e| panic!("{e}"));
        std::fs::File::from(w)
            .write_all(b"1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wait_for_release(r.into_raw_fd()), Ok(()));
    }
}
