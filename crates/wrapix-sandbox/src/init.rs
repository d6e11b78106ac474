//! `wrapix __init`: PID 1 inside every sandbox (bubblewrap's, podman's and nspawn's). It makes
//! itself non-dumpable (so that the agent, the same user, cannot ptrace it or write its
//! memory), starts the command in its own process group, passes on every signal wrapix forwards
//! (bubblewrap's own init does not), reaps orphans, and exits with the command's status. When it
//! exits, the kernel ends every process left in the sandbox's PID namespace: no strays.
//!
//! Usage: `wrapix __init [OPTIONS] [--] COMMAND ARGS…` (or `wrapix-init …`). Options, for
//! backends that cannot do these themselves:
//! - `--wait-fd FD` / `--wait-file FIFO`: first read one byte from FD (or the FIFO), which the
//!   executor writes once the sandbox's network is in place (podman passes a pipe; nspawn passes
//!   no fds, so it binds a FIFO; bubblewrap holds the sandbox itself with `--block-fd`).
//!   End-of-file instead of the byte means the set-up failed or wrapix died: the init exits 125
//!   without running the command.
//! - `--seccomp FILE`: install wrapix's seccomp filter (the raw BPF program bubblewrap takes on
//!   `--seccomp FD`), with `no_new_privs`, before anything else runs: nspawn's own filter takes
//!   only syscall names, not wrapix's argument checks. A filter that cannot be installed stops
//!   the sandbox (125).
//! - `--env-file FILE`: the command's whole environment, `KEY=VALUE` entries separated by NUL
//!   bytes (nspawn's `--setenv` would put the values in its world-readable argv).

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
    // The qemu backend's two halves live in the same small binary ([`crate::vm`]).
    if args.first().is_some_and(|a| a == "__vm") {
        return crate::vm::host::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "__vm-net") {
        return crate::vm::passt::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "__vm-egress") {
        return crate::vm::egress::host_main(&args[1..]);
    }
    // Not dumpable: the agent runs as the same user, and could otherwise ptrace this PID 1,
    // read or write its memory through /proc/1/mem, and hang or take over its own run. The
    // command gets the default back when it execs.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("wrapix: init: cannot make PID 1 non-dumpable: {e}");
        return NOT_RELEASED;
    }
    let (opts, command) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("wrapix: init: {e}");
            return NOT_RELEASED;
        }
    };
    // The filter first: nothing the sandbox runs may start before it.
    if let Some(path) = &opts.seccomp {
        if let Err(e) = install_seccomp(path) {
            eprintln!("wrapix: init: {e}; not running the command");
            return NOT_RELEASED;
        }
    }
    let env = match &opts.env_file {
        Some(path) => match read_env_file(path) {
            Ok(env) => Some(env),
            Err(e) => {
                eprintln!("wrapix: init: {e}; not running the command");
                return NOT_RELEASED;
            }
        },
        None => None,
    };
    let released = match (&opts.wait_fd, &opts.wait_file) {
        (Some(fd), _) => wait_for_release(*fd),
        (None, Some(fifo)) => open_release(fifo).and_then(wait_for_release),
        (None, None) => Ok(()),
    };
    if let Err(e) = released {
        eprintln!("wrapix: init: {e}; not running the command");
        return NOT_RELEASED;
    }
    run_with(command, env.as_deref())
}

/// What the init was asked to do before running the command.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    wait_fd: Option<i32>,
    wait_file: Option<std::path::PathBuf>,
    seccomp: Option<std::path::PathBuf>,
    env_file: Option<std::path::PathBuf>,
}

/// `[OPTIONS] [--] COMMAND…` → (options, COMMAND…). The first argument that is not an option
/// starts the command.
fn parse(args: &[OsString]) -> Result<(Options, &[OsString]), String> {
    let mut rest = args;
    let mut o = Options::default();
    while let Some(flag) = rest.first().and_then(|a| a.to_str()) {
        let value = || rest.get(1).ok_or(format!("{flag} needs a value"));
        match flag {
            "--wait-fd" => {
                let fd = value()?
                    .to_str()
                    .and_then(|a| a.parse::<i32>().ok())
                    .filter(|fd| *fd >= 3)
                    .ok_or("--wait-fd needs a file descriptor number of 3 or more")?;
                o.wait_fd = Some(fd);
            }
            "--wait-file" => o.wait_file = Some(value()?.into()),
            "--seccomp" => o.seccomp = Some(value()?.into()),
            "--env-file" => o.env_file = Some(value()?.into()),
            _ => break,
        }
        rest = &rest[2..];
    }
    while rest.first().is_some_and(|a| a == "--") {
        rest = &rest[1..];
    }
    Ok((o, rest))
}

/// The most an env file or a filter may hold.
const MAX_FILE: u64 = 1 << 20;

fn read_small(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut data = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() as u64 > MAX_FILE {
        return Err(format!(
            "{} is larger than {MAX_FILE} bytes",
            path.display()
        ));
    }
    Ok(data)
}

/// `KEY=VALUE\0…` → pairs; an entry without `=` or with an empty key is an error.
fn read_env_file(path: &std::path::Path) -> Result<Vec<(OsString, OsString)>, String> {
    use std::os::unix::ffi::OsStrExt;
    let data = read_small(path)?;
    let mut out = Vec::new();
    for entry in data.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let eq = entry
            .iter()
            .position(|b| *b == b'=')
            .filter(|i| *i > 0)
            .ok_or_else(|| format!("{}: an entry is not KEY=VALUE", path.display()))?;
        out.push((
            std::ffi::OsStr::from_bytes(&entry[..eq]).to_owned(),
            std::ffi::OsStr::from_bytes(&entry[eq + 1..]).to_owned(),
        ));
    }
    Ok(out)
}

/// Sets `no_new_privs` and installs the raw BPF program in `path` for this process and
/// everything it starts.
#[allow(unsafe_code)]
fn install_seccomp(path: &std::path::Path) -> Result<(), String> {
    let data = read_small(path)?;
    let size = std::mem::size_of::<libc::sock_filter>();
    if data.is_empty() || data.len() % size != 0 || data.len() / size > u16::MAX as usize {
        return Err(format!("{} is not a seccomp filter", path.display()));
    }
    let filter: Vec<libc::sock_filter> = data
        .chunks_exact(size)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments; seccomp with a pointer to `prog`, which points
    // into `filter`, both alive for the call (the kernel copies the program).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!(
                "cannot set no_new_privs: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(format!(
                "cannot install the seccomp filter: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Opens the release FIFO for reading, as a raw fd for [`wait_for_release`]. wrapix holds it
/// open for writing from before the sandbox starts, so this does not block.
fn open_release(path: &std::path::Path) -> Result<i32, String> {
    use std::os::fd::IntoRawFd;
    std::fs::File::open(path)
        .map(|f| f.into_raw_fd())
        .map_err(|e| format!("cannot open the release {}: {e}", path.display()))
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
    run_with(argv, None)
}

/// [`run`], with the command's whole environment when `env` is given.
fn run_with(argv: &[OsString], env: Option<&[(OsString, OsString)]>) -> i32 {
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
    // An allowlist: the loopback relay to the host's egress proxy, ready before the command
    // starts (its threads inherit the blocked signals, which only this thread waits for).
    let egress = match env {
        Some(env) => env
            .iter()
            .find(|(k, _)| k == crate::egress::SOCKET_ENV)
            .map(|(_, v)| v.clone()),
        None => std::env::var_os(crate::egress::SOCKET_ENV),
    };
    if let Some(sock) = egress {
        if let Err(e) = crate::egress::relay::start(sock.into()) {
            eprintln!(
                "wrapix: init: cannot start the egress relay on 127.0.0.1:{}: {e}",
                crate::egress::PORT
            );
            return 125;
        }
    }
    let mut cmd = Command::new(prog);
    cmd.args(args).process_group(0);
    if let Some(env) = env {
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
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
        let fd = |n| Options {
            wait_fd: Some(n),
            ..Options::default()
        };
        for (args, want) in [
            (os(&["--", "sh", "-c", "true"]), Options::default()),
            (os(&["sh", "-c", "true"]), Options::default()),
            (os(&["--wait-fd", "3", "--", "sh", "-c", "true"]), fd(3)),
            (os(&["--wait-fd", "7", "sh", "-c", "true"]), fd(7)),
            (
                os(&[
                    "--seccomp",
                    "/s",
                    "--env-file",
                    "/e",
                    "--wait-file",
                    "/w",
                    "--",
                    "sh",
                    "-c",
                    "true",
                ]),
                Options {
                    wait_fd: None,
                    wait_file: Some("/w".into()),
                    seccomp: Some("/s".into()),
                    env_file: Some("/e".into()),
                },
            ),
        ] {
            let (got, rest) = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!((got, rest), (want, cmd.as_slice()), "{args:?}");
        }
        // A command's own `--wait-fd` after `--` is the command's.
        let args = os(&["--", "--wait-fd", "3"]);
        assert_eq!(parse(&args).ok(), Some((Options::default(), &args[1..])));
        for bad in [
            &["--wait-fd"][..],
            &["--wait-fd", "x", "--", "true"],
            &["--wait-fd", "1", "--", "true"],
            &["--seccomp"],
            &["--env-file"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_files_are_nul_separated_and_strict() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("env");
        std::fs::write(&p, b"A=1\0B=two\nlines\0C=\0").unwrap_or_else(|e| panic!("{e}"));
        let env = read_env_file(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env,
            [("A", "1"), ("B", "two\nlines"), ("C", "")]
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        );
        for bad in [&b"NOEQUALS\0"[..], b"=v\0"] {
            std::fs::write(&p, bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(read_env_file(&p).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_file_that_is_no_filter_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("bpf");
        for bad in [&b""[..], b"123"] {
            std::fs::write(&p, bad).unwrap_or_else(|e| panic!("{e}"));
            let e = install_seccomp(&p).err().unwrap_or_default();
            assert!(e.contains("not a seccomp filter"), "{e}");
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
