//! `__vm`: the qemu backend's supervisor on the host, the process the executor starts and
//! signals. `__vm --stage DIR --virtiofsd PROG [--share TAG:ro|rw:PATH]… [--timing]
//! [--net-pid-file PATH --net-wait-fd N --passt PROG [--passt-arg ARG]…] -- QEMU ARGS…`
//!
//! It dies with wrapix (`PR_SET_PDEATHSIG`), and everything it starts dies with it (virtiofsd
//! for each share, qemu): no VM outlives a killed wrapix. The command's stdio and exit code
//! travel over virtio-serial ports ([`super::PORTS`]) whose host ends are sockets handed to qemu
//! at fixed fds; a forwarded signal is one byte on the `wrapix.signal` port. With `--passt`
//! (`network = "open"`) it first starts the network holder ([`super::passt`]), which runs
//! passt in a network namespace of its own once wrapix has attached pasta to it; the VM's NIC
//! is a socket pair between qemu (at [`super::NET_FD`]) and passt.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

use super::{CONSOLE_FD, FIRST_PORT_FD, NET_FD, PORTS};
use crate::exec::FORWARDED;

/// The exit code when the VM could not run the command.
const FAILED: i32 = 125;

/// The end of the console kept in memory, for the message when the VM stops without an exit.
const CONSOLE_TAIL: usize = 64 * 1024;
/// The console file's limit (`WRAPIX_QEMU_KEEP=1`): the guest decides how much it writes.
const CONSOLE_FILE_MAX: u64 = 16 << 20;

/// The first byte on the signal port: the guest may run the command (no signal is 0).
pub const GO: u8 = 0;

struct Share {
    tag: String,
    read_only: bool,
    path: PathBuf,
}

struct Args {
    stage: PathBuf,
    virtiofsd: PathBuf,
    shares: Vec<Share>,
    timing: bool,
    /// The host's notification socket, for the frames the guest relays.
    notify: Option<PathBuf>,
    /// `WRAPIX_QEMU_KEEP=1`: the console also goes to this file (at most [`CONSOLE_FILE_MAX`]).
    console_log: Option<PathBuf>,
    /// `network = "open"`: the helper's PID file, the release fd it waits on, passt's argv.
    net: Option<Net>,
    qemu: Vec<OsString>,
}

struct Net {
    pid_file: PathBuf,
    wait_fd: i32,
    passt: Vec<OsString>,
}

fn parse(args: &[OsString]) -> Result<Args, String> {
    let mut a = Args {
        stage: PathBuf::new(),
        virtiofsd: PathBuf::new(),
        shares: Vec::new(),
        timing: false,
        notify: None,
        console_log: None,
        net: None,
        qemu: Vec::new(),
    };
    let mut net_pid_file = None;
    let mut net_wait_fd = None;
    let mut passt: Vec<OsString> = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag:?} needs a value"));
        match flag.to_str() {
            Some("--stage") => a.stage = value()?.into(),
            Some("--virtiofsd") => a.virtiofsd = value()?.into(),
            Some("--timing") => a.timing = true,
            Some("--notify") => a.notify = Some(PathBuf::from(value()?)),
            Some("--console-log") => a.console_log = Some(PathBuf::from(value()?)),
            Some("--net-pid-file") => net_pid_file = Some(PathBuf::from(value()?)),
            Some("--net-wait-fd") => {
                net_wait_fd = Some(
                    value()?
                        .to_str()
                        .and_then(|v| v.parse::<i32>().ok())
                        .filter(|fd| *fd > 2 && *fd != super::passt::PASST_FD)
                        .ok_or("--net-wait-fd needs a number above 2 (not passt's)")?,
                )
            }
            Some("--passt") => passt.push(value()?),
            Some("--passt-arg") => passt.push(value()?),
            Some("--tcg-notice") => eprintln!(
                "wrapix: qemu: KVM is not usable here; the VM runs under TCG (emulated, slow)"
            ),
            Some("--share") => {
                let v = value()?;
                let v = v.to_str().ok_or("--share is not UTF-8")?;
                let mut parts = v.splitn(3, ':');
                let (tag, mode, path) = match (parts.next(), parts.next(), parts.next()) {
                    (Some(t), Some(m), Some(p)) => (t, m, p),
                    _ => return Err(format!("--share {v}: not TAG:ro|rw:PATH")),
                };
                a.shares.push(Share {
                    tag: tag.to_owned(),
                    read_only: mode != "rw",
                    path: path.into(),
                });
            }
            Some("--") => {
                a.qemu = it.cloned().collect();
                break;
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if a.qemu.is_empty() || a.stage.as_os_str().is_empty() {
        return Err("usage: __vm --stage DIR --virtiofsd PROG [--share …] -- QEMU ARGS…".into());
    }
    a.net = match (net_pid_file, net_wait_fd, passt.is_empty()) {
        (Some(pid_file), Some(wait_fd), false) => Some(Net {
            pid_file,
            wait_fd,
            passt,
        }),
        (None, None, true) => None,
        _ => return Err("--net-pid-file, --net-wait-fd and --passt go together".into()),
    };
    Ok(a)
}

/// The supervisor; returns the command's exit code.
pub fn main(args: &[OsString]) -> i32 {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() == 1 {
        return FAILED;
    }
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wrapix: vm: {e}");
            return FAILED;
        }
    };
    let mut children: Vec<Child> = Vec::new();
    let mut groups: Vec<nix::unistd::Pid> = Vec::new();
    let code = run(&args, &mut children, &mut groups).unwrap_or_else(|e| {
        eprintln!("wrapix: vm: {e}");
        FAILED
    });
    // Each virtiofsd's whole group: its namespace sandbox forks a child that is PID 1 of a
    // namespace of its own, which ignores the SIGTERM its parent's death sends it (and keeps
    // the run's stdio open); SIGKILL from here reaches it.
    for g in &groups {
        let _ = nix::sys::signal::killpg(*g, Signal::SIGKILL);
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    code
}

/// The window size of the terminal on stdin: (rows, columns).
#[allow(unsafe_code)]
fn window_size() -> Option<(u16, u16)> {
    let mut ws = nix::pty::Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: one TIOCGWINSZ ioctl on fd 0, writing into a Winsize we own.
    let r = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some((ws.ws_row, ws.ws_col))
}

/// In the child between fork and exec: die with the supervisor.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl with integers only.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            Ok(())
        });
    }
}

/// Moves `fds` to `first`, `first`+1, … in the child (without close-on-exec).
#[allow(unsafe_code)]
fn place_fds(cmd: &mut Command, fds: Vec<i32>, first: i32) {
    // SAFETY: fcntl/dup2 on integers, between fork and exec; the vector was allocated
    // before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0i32; 16];
            if fds.len() > high.len() {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().take(fds.len()).enumerate() {
                if libc::dup2(*fd, first + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Starts the network holder ([`super::passt`]) with `release` (a pipe's read end; this
/// process writes its byte once wrapix has released the run) at `net.wait_fd` and passt's end
/// of the VM's network socket at [`super::passt::PASST_FD`].
fn start_net(net: &Net, release: &OwnedFd, passt_end: &OwnedFd) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("find this program: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("__vm-net")
        .arg("--pid-file")
        .arg(&net.pid_file)
        .arg("--wait-fd")
        .arg(net.wait_fd.to_string())
        .arg("--")
        .args(&net.passt)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // wait_fd is never PASST_FD (parse): each placed at its own number.
    place_fds(&mut cmd, vec![release.as_raw_fd()], net.wait_fd);
    place_fds(
        &mut cmd,
        vec![passt_end.as_raw_fd()],
        super::passt::PASST_FD,
    );
    cmd.spawn()
        .map_err(|e| format!("start the network holder: {e}"))
}

/// The executor's release pipe (at `net.wait_fd` here), taken over with close-on-exec so that
/// nothing this process starts inherits it.
fn take_release(net: &Net) -> Result<std::fs::File, String> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl on an integer; the executor placed the pipe there for this process.
    #[allow(unsafe_code)]
    let dup = unsafe { libc::fcntl(net.wait_fd, libc::F_DUPFD_CLOEXEC, 10) };
    if dup < 0 {
        return Err(format!(
            "the release pipe (fd {}): {}",
            net.wait_fd,
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: closing the original number, which this process owns; `dup` is fresh.
    #[allow(unsafe_code)]
    unsafe {
        libc::close(net.wait_fd);
        Ok(std::fs::File::from_raw_fd(dup))
    }
}

/// The serial console (the guest kernel's and PID 1's early messages): its last
/// [`CONSOLE_TAIL`] bytes, returned at its end; with `log`, also written there up to
/// [`CONSOLE_FILE_MAX`] (a guest cannot fill the host's disk).
fn read_console(mut console: UnixStream, log: Option<PathBuf>) -> Vec<u8> {
    let mut file = log.and_then(|p| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
            .ok()
    });
    let mut written = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) | Err(_) => return tail,
            Ok(n) => n,
        };
        if let Some(f) = &mut file {
            let room = CONSOLE_FILE_MAX.saturating_sub(written) as usize;
            let part = &buf[..n.min(room)];
            if f.write_all(part).is_err() || part.len() < n {
                let _ = f.write_all(b"\n[wrapix: the console log stops here: 16 MiB]\n");
                file = None;
            }
            written += part.len() as u64;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * CONSOLE_TAIL {
            tail.drain(..tail.len() - CONSOLE_TAIL);
        }
    }
}

/// The frames the guest relays (one line each, untrusted: a compromised guest kernel writes
/// what it wants): each decoded as the daemon would and sent to the host's socket as a
/// sandbox's `wrapix notify` would; a line past the frame limit is skipped whole. Without a
/// socket (no daemon published one), drained.
fn relay_notifications(port: UnixStream, socket: Option<PathBuf>) {
    use std::io::BufRead;
    use wrapix_notify::frame::MAX_FRAME;
    let mut r = std::io::BufReader::new(port);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut r)
            .take(MAX_FRAME as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            // Too long: skip to the end of this line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut r).take(64 * 1024).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            continue;
        }
        line.pop();
        let (Some(socket), Ok(frame)) = (&socket, wrapix_notify::Frame::decode(&line)) else {
            continue;
        };
        let _ = wrapix_notify::client::send(
            &frame,
            &wrapix_notify::client::Target::Unix(socket.clone()),
            Duration::from_secs(2),
        );
    }
}

fn run(
    a: &Args,
    children: &mut Vec<Child>,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<i32, String> {
    let start = Instant::now();
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.thread_block()
        .map_err(|e| format!("block signals: {e}"))?;
    // The network first: the executor sets it up while the shares and the VM start. The
    // guest runs nothing before the go byte ([`GO`]), which this process sends once the
    // executor has released the run (`open`: pasta attached, the host's addresses blocked);
    // it then passes the release on to the holder, which only then starts passt.
    let mut qemu_fds: Vec<OwnedFd> = Vec::new();
    let mut release = None;
    if let Some(net) = &a.net {
        let from_executor = take_release(net)?;
        let (qemu_end, passt_end) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let (to_holder_r, to_holder_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
        children.push(start_net(net, &to_holder_r, &OwnedFd::from(passt_end))?);
        drop(to_holder_r);
        qemu_fds.push(qemu_end.into());
        release = Some((from_executor, std::fs::File::from(to_holder_w)));
    }
    for s in &a.shares {
        let sock = a.stage.join(format!("{}.sock", s.tag));
        let _ = std::fs::remove_file(&sock);
        let mut cmd = Command::new(&a.virtiofsd);
        cmd.arg("--socket-path")
            .arg(&sock)
            .arg("--shared-dir")
            .arg(&s.path)
            .args(["--cache", "auto", "--log-level", "error"])
            // Its own mount namespace (a user namespace too when unprivileged) with the
            // shared folder as `/`, so that a FUSE lookup of `..` from a compromised guest
            // kernel ends at the share. The sandbox forks a child that stays when its parent
            // is killed: each virtiofsd gets a process group of its own, which `main` kills
            // whole.
            .args(["--sandbox", "namespace"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if s.read_only {
            cmd.arg("--readonly");
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("start {}: {e}", a.virtiofsd.display()))?;
        groups.push(nix::unistd::Pid::from_raw(child.id() as i32));
        children.push(child);
    }
    // Every socket before qemu, which connects at its start.
    let deadline = Instant::now() + Duration::from_secs(10);
    for s in &a.shares {
        let sock = a.stage.join(format!("{}.sock", s.tag));
        while !sock.exists() {
            for c in children.iter_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!(
                        "virtiofsd for {} exited ({st}; its message is above)",
                        s.path.display()
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("virtiofsd for {} did not start", s.path.display()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let shares_ready = start.elapsed();

    let mut ours: Vec<UnixStream> = Vec::new();
    let mut theirs: Vec<OwnedFd> = Vec::new();
    for _ in PORTS {
        let (o, t) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        ours.push(o);
        theirs.push(t.into());
    }
    let (console_ours, console_theirs) =
        UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    theirs.push(console_theirs.into());
    debug_assert_eq!(FIRST_PORT_FD + theirs.len() as i32, NET_FD);
    debug_assert_eq!(FIRST_PORT_FD + PORTS.len() as i32, CONSOLE_FD);
    let console_log = a.console_log.clone();
    let console = std::thread::spawn(move || read_console(console_ours, console_log));
    let (prog, qargs) = a.qemu.split_first().ok_or("no qemu command")?;
    let mut cmd = Command::new(prog);
    cmd.args(qargs).stdin(Stdio::null()).stdout(Stdio::null());
    die_with_parent(&mut cmd);
    place_fds(
        &mut cmd,
        theirs
            .iter()
            .chain(qemu_fds.iter())
            .map(|f| f.as_raw_fd())
            .collect(),
        FIRST_PORT_FD,
    );
    let mut qemu = cmd
        .spawn()
        .map_err(|e| format!("start {}: {e}", Path::new(prog).display()))?;
    drop(theirs);
    drop(qemu_fds);

    let mut ours = ours.into_iter();
    let (stdin_port, stdout_port, stderr_port, exit_port, signal_port, notify_port) = match (
        ours.next(),
        ours.next(),
        ours.next(),
        ours.next(),
        ours.next(),
        ours.next(),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)) => (a, b, c, d, e, f),
        _ => return Err("internal: ports".into()),
    };
    let notify = a.notify.clone();
    std::thread::spawn(move || relay_notifications(notify_port, notify));
    // stdin: copied until it ends (a terminal may never end: the thread dies with us).
    std::thread::spawn(move || {
        let mut port = stdin_port;
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut port);
        let _ = port.shutdown(std::net::Shutdown::Write);
    });
    let out = std::thread::spawn(move || {
        let mut port = stdout_port;
        let mut buf = [0u8; 16384];
        let mut stdout = std::io::stdout().lock();
        while let Ok(n) = port.read(&mut buf) {
            if n == 0
                || stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
            {
                break;
            }
        }
    });
    let err = std::thread::spawn(move || {
        let mut port = stderr_port;
        let mut buf = [0u8; 16384];
        let mut stderr = std::io::stderr().lock();
        while let Ok(n) = port.read(&mut buf) {
            if n == 0 || stderr.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let exit = std::thread::spawn(move || {
        // The guest's word (untrusted under the qemu threat model: a compromised guest
        // kernel writes what it wants): an exit code is a few bytes.
        let mut s = String::new();
        let _ = exit_port.take(4096).read_to_string(&mut s);
        s
    });
    // On a terminal (the executor's throw-away pty: `LaunchPlan::terminal`), raw bytes both
    // ways; the guest opens a pty of its own for the command (see `guest_tty`).
    let terminal =
        nix::unistd::isatty(0).unwrap_or(false) && nix::unistd::isatty(1).unwrap_or(false);
    if terminal {
        let stdin = std::io::stdin();
        if let Ok(mut t) = nix::sys::termios::tcgetattr(&stdin) {
            nix::sys::termios::cfmakeraw(&mut t);
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
        }
    }
    let winsize =
        move || super::guest_tty::winsize_message(if terminal { window_size() } else { None });
    // The window size (on a terminal), the go byte once released, then forwarded signals: one
    // byte each, into the guest (SIGWINCH with the size).
    std::thread::spawn(move || {
        let mut port = signal_port;
        if terminal && port.write_all(&winsize()).is_err() {
            return;
        }
        if let Some((mut from_executor, mut to_holder)) = release {
            let mut b = [0u8; 1];
            // End-of-file: wrapix gave up (it stops this process): never the go byte.
            if !matches!(from_executor.read(&mut b), Ok(1)) || to_holder.write_all(&b).is_err() {
                return;
            }
        }
        if port.write_all(&[GO]).is_err() {
            return;
        }
        while let Ok(sig) = set.wait() {
            let sent = if sig == Signal::SIGWINCH {
                port.write_all(&winsize())
            } else {
                port.write_all(&[sig as i32 as u8])
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let status = qemu.wait().map_err(|e| format!("wait for qemu: {e}"))?;
    let ran = start.elapsed();
    let report = exit.join().unwrap_or_default();
    let _ = out.join();
    let _ = err.join();
    let mut lines = report.lines();
    let code = lines.next().and_then(|l| l.trim().parse::<i32>().ok());
    if a.timing {
        let t: Vec<u64> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [init, mounted, exec] = t[..] {
            eprintln!(
                "wrapix: vm timing: virtiofsd ready {} ms; guest kernel to init {init} ms, init to root built {} ms, to exec {} ms (guest clock); start to VM exit {} ms",
                shares_ready.as_millis(),
                mounted.saturating_sub(init),
                exec.saturating_sub(init),
                ran.as_millis()
            );
        }
    }
    match code {
        Some(c) => Ok(c),
        None => {
            // qemu has exited: the console's end is in.
            let tail = console_tail(&console.join().unwrap_or_default());
            Err(format!(
                "the VM stopped ({status}) without reporting the command's exit; the end of its console:\n{tail}"
            ))
        }
    }
}

/// The console's last 15 lines for an error message. The guest wrote these bytes: control
/// characters (terminal escapes) are shown escaped, never sent to the user's terminal.
fn console_tail(console: &[u8]) -> String {
    let text = String::from_utf8_lossy(console);
    let mut tail: Vec<String> = text
        .lines()
        .rev()
        .take(15)
        .map(wrapix_spec::error::escape_controls)
        .collect();
    tail.reverse();
    tail.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_tail_is_the_last_lines_with_controls_escaped() {
        let mut console = String::new();
        for i in 0..20 {
            console.push_str(&format!("line {i}\n"));
        }
        console.push_str("\x1b]0;owned\x07\x1b[2J\rend\n");
        let tail = console_tail(console.as_bytes());
        assert!(
            !tail.chars().any(|c| c.is_control() && c != '\n'),
            "{tail:?}"
        );
        assert!(tail.starts_with("line 6\n"), "{tail:?}");
        assert!(
            tail.ends_with("\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\rend"),
            "{tail:?}"
        );
    }

    /// A guest that writes without end: the kept tail and the console file stay bounded, and
    /// the tail holds the last bytes written.
    #[test]
    fn the_console_is_bounded_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("console.log");
        let (mut guest, host) = UnixStream::pair().unwrap_or_else(|e| panic!("{e}"));
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || read_console(host, Some(log)))
        };
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            guest.write_all(&chunk).unwrap_or_else(|e| panic!("{e}"));
        }
        guest
            .write_all(b"the end\n")
            .unwrap_or_else(|e| panic!("{e}"));
        drop(guest);
        let tail = reader.join().unwrap_or_default();
        assert!(tail.len() <= 2 * CONSOLE_TAIL, "{}", tail.len());
        assert!(tail.ends_with(b"the end\n"));
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert!(
            (CONSOLE_FILE_MAX..CONSOLE_FILE_MAX + 100).contains(&size),
            "{size}"
        );
    }
}
