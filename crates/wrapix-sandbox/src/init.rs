//! `wrapix __init`: PID 1 inside the sandbox. It starts the command in its own process group,
//! passes on every signal wrapix forwards (bubblewrap's own init does not), reaps orphans, and
//! exits with the command's status. When it exits, the kernel ends every process left in the
//! sandbox's PID namespace: no strays.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::exec::FORWARDED;

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
