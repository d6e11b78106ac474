//! The one executor: spawns any [`LaunchPlan`], finishes the sandbox's set-up (network),
//! forwards signals to the sandbox's init, and returns the exit code.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::{pipe2, Pid};

use crate::error::SandboxError;
use crate::plan::LaunchPlan;

/// Signals the user sends to "the agent": forwarded to the sandbox's init, which passes them on.
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Runs `plan` to completion and returns the exit code to pass on (128+N for a signal).
pub fn execute(plan: &LaunchPlan) -> Result<i32, SandboxError> {
    // Data fds: one memfd each, mapped to the plan's fd numbers in the child.
    let mut maps: Vec<(OwnedFd, RawFd)> = Vec::new();
    for d in &plan.fds {
        let name = CString::new("wrapix").unwrap_or_default();
        let fd = memfd_create(&name, MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| SandboxError::sys(format!("create a memfd for {}", d.what), e))?;
        let mut f = File::from(fd);
        f.write_all(&d.data)
            .and_then(|()| f.rewind())
            .map_err(|e| SandboxError::io(format!("write {}", d.what), e))?;
        maps.push((OwnedFd::from(f), d.fd));
    }
    let info = match plan.info_fd {
        Some(target) => {
            let (r, w) = pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SandboxError::sys("create the info pipe", e))?;
            maps.push((w, target));
            Some(File::from(r))
        }
        None => None,
    };
    let block = match plan.block_fd {
        Some(target) => {
            let (r, w) = pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SandboxError::sys("create the block pipe", e))?;
            maps.push((r, target));
            Some(File::from(w))
        }
        None => None,
    };

    // Block the forwarded signals in this process before spawning, so that none is lost
    // between the spawn and the forwarding thread; the child starts with an empty mask.
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.thread_block()
        .map_err(|e| SandboxError::sys("block signals", e))?;

    let mut pty = match plan.terminal && crate::pty::interactive() {
        true => Some(crate::pty::Pty::open()?),
        false => None,
    };

    let mut cmd = Command::new(&plan.program);
    if let Some((_, slave)) = &pty {
        let dup = || {
            slave
                .try_clone()
                .map_err(|e| SandboxError::io("dup the pty", e))
        };
        cmd.stdin(dup()?).stdout(dup()?).stderr(dup()?);
    }
    cmd.args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)));
    // Own process group: a Ctrl-C on the terminal reaches wrapix only, which forwards it to
    // the agent instead of killing bwrap (and with it the sandbox) outright.
    cmd.process_group(0);
    let pairs: Vec<(RawFd, RawFd)> = maps
        .iter()
        .map(|(fd, target)| (fd.as_raw_fd(), *target))
        .collect();
    map_fds_in_child(&mut cmd, pairs);
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::io(format!("start {}", plan.program.display()), e))?;
    // Our copies of the child's ends (the Command holds the pty slave copies).
    drop(cmd);
    drop(maps);
    let mut pty = pty.take().map(|(p, _slave)| p);

    let sandbox_pid = match info {
        Some(mut info) => {
            match read_child_pid(&mut info) {
                Some(pid) => Some(pid),
                None => {
                    let status = child
                        .wait()
                        .map_err(|e| SandboxError::io("wait for bwrap", e))?;
                    return Err(SandboxError::Unavailable {
                    backend: "bwrap",
                    problem: format!("bubblewrap could not create the sandbox ({status}; its message is above)"),
                    fix: "run `wrapix doctor` to see what this host is missing".into(),
                });
                }
            }
        }
        None => None,
    };

    let mut network = None;
    if let (Some(net), Some(pid)) = (&plan.network, sandbox_pid) {
        match crate::network::attach(net, pid) {
            Ok(a) => network = Some(a),
            Err(e) => {
                // Kill the sandbox's init first: it is still held on --block-fd, and closing
                // that fd (on return) must never let the command run.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
    }
    if let Some(mut block) = block {
        block
            .write_all(b"1")
            .map_err(|e| SandboxError::io("release the sandbox", e))?;
    }

    let resizer = match &mut pty {
        Some(p) => {
            p.start()?;
            Some(p.resizer()?)
        }
        None => None,
    };
    if let Some(pid) = sandbox_pid {
        let bwrap_pid = child.id() as i32;
        std::thread::spawn(move || forward_signals(set, pid, bwrap_pid, resizer));
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::io("wait for the sandbox", e));
    if let Some(p) = pty {
        p.finish();
    }
    if let Some(n) = network {
        n.stop();
    }
    Ok(exit_code(status?))
}

/// 128+N for a signal, as shells report it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[allow(unsafe_code)]
fn map_fds_in_child(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) {
    let mut fixed = [(0 as RawFd, 0 as RawFd); 32];
    let n = pairs.len().min(fixed.len());
    fixed[..n].copy_from_slice(&pairs[..n]);
    // SAFETY: runs between fork and exec; uses only async-signal-safe calls (fcntl, dup2,
    // close, sigprocmask) on a fixed-size array captured by value, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source above the target range first, so no dup2 clobbers a source.
            let mut high = [0 as RawFd; 32];
            for i in 0..n {
                let fd = libc::fcntl(fixed[i].0, libc::F_DUPFD, 200);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = fd;
            }
            for i in 0..n {
                if libc::dup2(high[i], fixed[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high[i]);
            }
            // wrapix blocks the signals it forwards; the child must not inherit that.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Reads bwrap's `--info-fd` JSON; `None` if bwrap exited before creating the sandbox.
fn read_child_pid(info: &mut File) -> Option<i32> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match info.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            return v
                .get("child-pid")
                .and_then(|p| p.as_i64())
                .and_then(|p| i32::try_from(p).ok());
        }
    }
}

/// How long the agent has to exit after SIGTERM/SIGHUP/SIGQUIT before the sandbox is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

fn forward_signals(set: SigSet, pid: i32, bwrap_pid: i32, pty: Option<crate::pty::Resizer>) {
    let mut stopping = false;
    while let Ok(sig) = set.wait() {
        match (&pty, sig) {
            // On a pty, the kernel signals the sandbox's foreground job itself.
            (Some(p), Signal::SIGWINCH) => p.resize(),
            _ => {
                let _ = kill(Pid::from_raw(pid), sig);
            }
        }
        let ends = matches!(sig, Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT);
        if ends && !stopping {
            stopping = true;
            // An agent that ignores the signal (an interactive shell ignores SIGTERM) must
            // not outlive the request: killing bwrap takes the whole PID namespace with it.
            std::thread::spawn(move || {
                std::thread::sleep(STOP_GRACE);
                let _ = kill(Pid::from_raw(bwrap_pid), Signal::SIGKILL);
            });
        }
    }
}
