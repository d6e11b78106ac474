//! The executor on hosts other than Linux (macOS, where the apple backend's plan runs Apple's
//! `container` CLI through `wrapix __exec-info`): POSIX calls only, [`crate::exec`]'s
//! interface. The Linux executor (`exec.rs`) is built on Linux calls (signalfd, pidfds, memfd,
//! `close_range`, `PR_SET_PDEATHSIG`, mount namespaces) and does the network and pinning work
//! only Linux backends ask for; this one runs a plan that needs none of that and refuses any
//! other. It is compiled and unit-tested on Linux too (as `exec_posix`), with real processes.
//!
//! - **Start**: the plan's program with exactly its environment, wrapix's stdio (or the
//!   caller's), and the info fd (a pipe's write end at the plan's number) on which
//!   `__exec-info` reports the PID that becomes the backend's.
//! - **Signals**: TERM, HUP, QUIT, INT, USR1, USR2 and WINCH are blocked before any thread
//!   starts and taken by a forwarding thread (`sigwait`), which ends with the run (woken by
//!   a thread-directed SIGALRM). On a terminal the backend shares
//!   wrapix's foreground process group (it reads the terminal), so what the terminal sends (INT,
//!   QUIT, WINCH) reaches it directly and is not sent twice; without one the backend gets a
//!   process group of its own and every signal is forwarded. After TERM, HUP or QUIT (and INT
//!   with [`ExecOptions::interrupt_ends`]) the backend is killed if it has not exited within
//!   the grace.
//! - **No signal reaches a reused PID**: without pidfds, the backend is waited for with
//!   `waitid(WNOWAIT)` first; it stays a zombie (its PID taken) until the forwarder has been
//!   told it ended, and only then is it reaped.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::error::SandboxError;
pub use crate::exec_api::{exit_code, ExecOptions, Outcome, Stopped, FORWARDED, STOP_GRACE};
use crate::plan::{LaunchPlan, SignalTarget};

/// Runs the plan and waits for it; the exit code to pass on.
pub fn execute(plan: &LaunchPlan) -> Result<i32, SandboxError> {
    execute_with(plan, ExecOptions::default()).map(|o| o.code)
}

/// [`execute`] with stdio, a deadline and the meaning of Ctrl-C chosen by the caller.
pub fn execute_with(plan: &LaunchPlan, opts: ExecOptions) -> Result<Outcome, SandboxError> {
    refuse_linux_only(plan)?;
    let ExecOptions {
        stdin,
        stdout,
        stderr,
        deadline,
        interrupt_ends,
        grace,
    } = opts;
    // Blocked here, before the threads below exist, so that they inherit the mask and only
    // the forwarder's `sigwait` takes these signals. The backend gets an empty mask (std's
    // spawn resets it).
    let set = forwarded_set();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(|e| SandboxError::io("block the forwarded signals", e.into()))?;

    let mut cmd = Command::new(&plan.program);
    cmd.args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)));
    if let Some(s) = stdin {
        cmd.stdin(s);
    }
    if let Some(s) = stdout {
        cmd.stdout(s);
    }
    if let Some(s) = stderr {
        cmd.stderr(s);
    }
    // Without a terminal: a process group of its own, so that a signal to wrapix's group
    // (a Ctrl-C in a pipeline's terminal) reaches it once, through the forwarder.
    if !plan.terminal {
        cmd.process_group(0);
    }
    let info = match plan.info_fd {
        Some(target) => {
            let (read, write) = cloexec_pipe()?;
            place_on(&mut cmd, write.as_raw_fd(), target);
            Some((read, write))
        }
        None => None,
    };
    let mut child = cmd.spawn().map_err(|e| SandboxError::Unavailable {
        backend: plan.backend,
        problem: format!("cannot start {}: {e}", plan.program.display()),
        fix: "run `wrapix doctor`".into(),
    })?;
    let own = i32::try_from(child.id()).unwrap_or(0);
    // The PID signals go to: the one `__exec-info` reported (it execs the backend), else the
    // child itself.
    let target = match info {
        Some((read, write)) => {
            drop(write);
            reported_pid(read).unwrap_or(own)
        }
        None => own,
    };
    let shared = Arc::new(Shared {
        ended: Mutex::new(false),
        stopped: Mutex::new(None),
        target: Pid::from_raw(target),
        killed: std::sync::atomic::AtomicBool::new(false),
    });
    let forwarder = Forwarder {
        shared: shared.clone(),
        set,
        terminal: plan.terminal,
        interrupt_ends,
        grace: grace.unwrap_or(STOP_GRACE),
    };
    let forwarding = std::thread::spawn(move || forwarder.run());
    if let Some(at) = deadline {
        let shared = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if shared.signal(Signal::SIGKILL) {
                shared.record(Stopped::Deadline);
            }
        });
    }
    wait_unreaped(own).map_err(|e| SandboxError::io("wait for the sandbox", e))?;
    if let Ok(mut ended) = shared.ended.lock() {
        *ended = true;
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::io("wait for the sandbox", e))?;
    // The forwarder ends at its wake signal, so that a signal after the run stays pending for
    // wrapix (ralph reads them between runs) instead of being taken by a stale forwarder.
    stop_forwarder(forwarding);
    if shared.killed.load(std::sync::atomic::Ordering::SeqCst) {
        if let Some(argv) = &plan.after_kill {
            after_kill(argv);
        }
    }
    let stopped = shared.stopped.lock().map(|s| *s).unwrap_or(None);
    Ok(Outcome {
        code: exit_code(status),
        stopped,
    })
}

/// Runs the clean-up of a killed backend (at most [`AFTER_KILL_LIMIT`]; it is killed after),
/// its output discarded; a failure is logged, not returned: the run's outcome stands.
fn after_kill(argv: &[std::ffi::OsString]) {
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("the clean-up after a kill did not start: {e}");
            return;
        }
    };
    let until = Instant::now() + AFTER_KILL_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if !status.success() => {
                tracing::warn!("the clean-up after a kill failed ({status})");
                return;
            }
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!("the clean-up after a kill did not finish in time");
                return;
            }
        }
    }
}

/// How long the clean-up of a killed backend may take.
const AFTER_KILL_LIMIT: Duration = Duration::from_secs(30);

/// Whether one of `set`'s signals (blocked in this thread) is pending, for this thread or the
/// process; if so it is taken (`sigwait` returns at once). For ralph, between runs.
#[allow(unsafe_code)]
pub fn take_pending(set: &SigSet) -> bool {
    // SAFETY: sigpending writes into the zeroed set; sigismember only reads it.
    let waiting = unsafe {
        let mut p: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut p) == 0
            && set
                .iter()
                .any(|s| libc::sigismember(&p, s as libc::c_int) == 1)
    };
    waiting && set.wait().is_ok()
}

/// What only the Linux executor can do: a plan that asks for it is refused before anything
/// starts (fail closed: a part of the isolation would silently be missing).
fn refuse_linux_only(plan: &LaunchPlan) -> Result<(), SandboxError> {
    let needs = [
        (plan.network.is_some(), "a network set-up (pasta)"),
        (!plan.fds.is_empty(), "data passed on descriptors"),
        (!plan.pass.is_empty(), "handles passed at fixed numbers"),
        (!plan.pin_mounts.is_empty(), "pinned mounts"),
        (plan.block_fd.is_some(), "a release descriptor"),
        (plan.release_fifo.is_some(), "a release FIFO"),
        (plan.pid_file.is_some(), "a PID file"),
        (
            plan.holder_in_child.is_some(),
            "a namespace holder under /proc",
        ),
        (plan.guard_backend, "a parent-death signal"),
        (
            plan.signals != SignalTarget::Process,
            "signals to a process group or holder",
        ),
    ];
    match needs.iter().find(|(needed, _)| *needed) {
        Some((_, what)) => Err(SandboxError::Unavailable {
            backend: plan.backend,
            problem: format!("its plan needs {what}, which only the Linux executor provides"),
            fix: "run this backend on a Linux host".into(),
        }),
        None => Ok(()),
    }
}

/// The signal that wakes the forwarder to end (sent to its thread only): nothing in wrapix
/// uses `alarm`.
const WAKE: Signal = Signal::SIGALRM;

/// What the forwarder waits for: the forwarded signals and its wake signal.
fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(WAKE);
    set
}

#[allow(unsafe_code)]
fn stop_forwarder(thread: std::thread::JoinHandle<()>) {
    use std::os::unix::thread::JoinHandleExt;
    if thread.is_finished() {
        return;
    }
    // SAFETY: the thread is alive until joined (the handle is not detached); a thread-directed
    // signal that it blocks and waits for in `sigwait`.
    let sent = unsafe { libc::pthread_kill(thread.as_pthread_t(), WAKE as libc::c_int) } == 0;
    if sent {
        let _ = thread.join();
    }
}

/// A pipe with both ends close-on-exec (macOS has no `pipe2`).
fn cloexec_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let err = |e: nix::Error| SandboxError::io("create the info pipe", e.into());
    let (r, w) = nix::unistd::pipe().map_err(err)?;
    for fd in [&r, &w] {
        nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(err)?;
    }
    Ok((r, w))
}

/// Puts `fd` at `target` in the child, without close-on-exec.
#[allow(unsafe_code)]
fn place_on(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) on integers.
    unsafe {
        cmd.pre_exec(move || {
            let r = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The `{"child-pid": N}` line `__exec-info` writes; `None` when the child ended (or wrote
/// something else) first.
fn reported_pid(read: OwnedFd) -> Option<i32> {
    let mut f = std::fs::File::from(read);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = buf.split(|b| *b == b'\n').next()?;
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("child-pid")
        .and_then(|p| p.as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// Waits until `pid` has exited, leaving it unreaped (`waitid(WEXITED | WNOWAIT)`).
#[allow(unsafe_code)]
fn wait_unreaped(pid: i32) -> std::io::Result<()> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter; waitid writes only into it.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// What the forwarder, the timers and the waiting thread share.
struct Shared {
    /// Set once the backend has exited (before it is reaped): nothing is sent after.
    ended: Mutex<bool>,
    stopped: Mutex<Option<Stopped>>,
    target: Pid,
    /// A SIGKILL was sent: the plan's [`LaunchPlan::after_kill`] runs once it is reaped.
    killed: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Sends `sig` to the backend unless it has ended; whether it was sent.
    fn signal(&self, sig: Signal) -> bool {
        let sent = match self.ended.lock() {
            Ok(ended) if !*ended => kill(self.target, sig).is_ok(),
            _ => false,
        };
        if sent && sig == Signal::SIGKILL {
            self.killed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        sent
    }

    fn record(&self, why: Stopped) {
        if let Ok(mut s) = self.stopped.lock() {
            s.get_or_insert(why);
        }
    }
}

struct Forwarder {
    shared: Arc<Shared>,
    set: SigSet,
    terminal: bool,
    interrupt_ends: bool,
    grace: Duration,
}

impl Forwarder {
    fn run(self) {
        let mut killer_started = false;
        loop {
            let Ok(sig) = self.set.wait() else {
                return;
            };
            if sig == WAKE || !self.handle(sig, &mut killer_started) {
                return;
            }
        }
    }

    /// One signal: passed on (unless the terminal sent it to the backend too), and the grace
    /// timer started for an ending one. `false` once the backend has ended.
    fn handle(&self, sig: Signal, killer_started: &mut bool) -> bool {
        if self.shared.ended.lock().map(|e| *e).unwrap_or(true) {
            return false;
        }
        let from_terminal = matches!(sig, Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH);
        if !(self.terminal && from_terminal) {
            self.shared.signal(sig);
        }
        let ends = matches!(sig, Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT)
            || (self.interrupt_ends && sig == Signal::SIGINT);
        if ends {
            self.shared.record(Stopped::Signal(sig));
            if !*killer_started {
                *killer_started = true;
                let shared = self.shared.clone();
                let grace = self.grace;
                std::thread::spawn(move || {
                    std::thread::sleep(grace);
                    shared.signal(Signal::SIGKILL);
                });
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    fn plan(script: &str) -> LaunchPlan {
        LaunchPlan {
            backend: "apple",
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("WRAPIX_T".into(), "planned".into()),
            ],
            fds: Vec::new(),
            pass: Vec::new(),
            info_fd: None,
            not_started: None,
            block_fd: None,
            pid_file: None,
            holder_in_child: None,
            release_fifo: None,
            guard_backend: false,
            pin_mounts: Vec::new(),
            network: None,
            terminal: false,
            signals: SignalTarget::Process,
            after_kill: None,
        }
    }

    fn output(p: &LaunchPlan) -> (Outcome, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let f = std::fs::File::create(&path).unwrap();
        let o = execute_with(
            p,
            ExecOptions {
                stdout: Some(f.into()),
                ..Default::default()
            },
        )
        .unwrap();
        (o, std::fs::read_to_string(&path).unwrap())
    }

    #[test]
    fn the_exit_code_and_only_the_plans_environment_pass() {
        let (o, out) = output(&plan("env; exit 7"));
        assert_eq!(
            o,
            Outcome {
                code: 7,
                stopped: None
            }
        );
        assert!(out.contains("WRAPIX_T=planned"), "{out}");
        // Nothing of the test's own environment (cargo sets CARGO_* for every test).
        assert!(!out.contains("CARGO"), "{out}");
    }

    #[test]
    fn a_signal_death_is_128_plus_the_signal() {
        // (Not as the script's last command: dash would exec procps's `kill` for it.)
        let (o, _) = output(&plan("kill -TERM $$; sleep 5"));
        assert_eq!(o.code, 128 + 15);
    }

    #[test]
    fn the_info_fd_is_the_plans_number_and_the_reported_pid_is_killed_at_the_deadline() {
        // The shell reports its PID on fd 5 and sleeps: the deadline kills what it reported.
        let mut p = plan("echo \"{\\\"child-pid\\\": $$}\" >&5 && exec sleep 30");
        p.info_fd = Some(5);
        let start = Instant::now();
        let o = execute_with(
            &p,
            ExecOptions {
                deadline: Some(Instant::now() + Duration::from_millis(300)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            o,
            Outcome {
                code: 128 + 9,
                stopped: Some(Stopped::Deadline)
            }
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    /// A backend killed at the deadline (or after the grace) gets its clean-up command run
    /// once it is reaped; one that exits by itself does not.
    #[test]
    fn the_clean_up_runs_after_a_kill_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("cleaned");
        let clean = vec![
            OsString::from("/bin/sh"),
            "-c".into(),
            "echo \"$1\" >> \"$2\"".into(),
            "sh".into(),
            "delete --force wrapix-x".into(),
            marker.clone().into_os_string(),
        ];
        let mut p = plan("exec sleep 30");
        p.after_kill = Some(clean.clone());
        let o = execute_with(
            &p,
            ExecOptions {
                deadline: Some(Instant::now() + Duration::from_millis(200)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(o.stopped, Some(Stopped::Deadline));
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap(),
            "delete --force wrapix-x\n"
        );
        std::fs::remove_file(&marker).unwrap();
        let mut p = plan("exit 4");
        p.after_kill = Some(clean);
        assert_eq!(execute(&p).unwrap(), 4);
        assert!(!marker.exists());
    }

    #[test]
    fn a_child_that_reports_nothing_is_still_waited_for() {
        let mut p = plan("exec 5>&-; exit 3");
        p.info_fd = Some(5);
        assert_eq!(execute(&p).unwrap(), 3);
    }

    #[test]
    fn plans_that_need_the_linux_executor_are_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let script = format!("touch '{}'", marker.display());
        let mut cases: Vec<LaunchPlan> = Vec::new();
        let mut p = plan(&script);
        p.block_fd = Some(7);
        cases.push(p);
        let mut p = plan(&script);
        p.pid_file = Some(dir.path().join("pid"));
        cases.push(p);
        let mut p = plan(&script);
        p.signals = SignalTarget::Group;
        cases.push(p);
        let mut p = plan(&script);
        p.guard_backend = true;
        cases.push(p);
        for p in cases {
            let e = execute(&p).unwrap_err().to_string();
            assert!(e.contains("only the Linux executor"), "{e}");
        }
        assert!(!marker.exists());
    }

    #[test]
    fn the_forwarder_ends_when_woken() {
        // A forwarder left in `sigwait` after the run would take the signals ralph reads
        // between runs: the wake signal ends it.
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&forwarded_set()), None).unwrap();
        let f = Forwarder {
            shared: Arc::new(Shared {
                ended: Mutex::new(false),
                stopped: Mutex::new(None),
                target: Pid::from_raw(i32::MAX),
                killed: std::sync::atomic::AtomicBool::new(false),
            }),
            set: forwarded_set(),
            terminal: false,
            interrupt_ends: false,
            grace: STOP_GRACE,
        };
        let h = std::thread::spawn(move || f.run());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            stop_forwarder(h);
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn a_pending_held_signal_is_seen_once() {
        let mut set = SigSet::empty();
        set.add(Signal::SIGUSR2);
        set.thread_block().unwrap();
        assert!(!take_pending(&set));
        #[allow(unsafe_code)]
        // SAFETY: a thread-directed signal to this thread, which blocks it.
        unsafe {
            libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2);
        }
        assert!(take_pending(&set));
        assert!(!take_pending(&set));
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let mut p = plan("");
        p.program = PathBuf::from("/nonexistent/container");
        p.args = Vec::<OsString>::new();
        let e = execute(&p).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/container"), "{e}");
    }

    /// The forwarder's decisions, on a real process: TERM is passed on and recorded; on a
    /// terminal INT is not sent again (the terminal sent it to the backend's group itself).
    #[test]
    fn the_forwarder_passes_on_signals_and_records_the_ending_one() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let shared = Arc::new(Shared {
            ended: Mutex::new(false),
            stopped: Mutex::new(None),
            target: Pid::from_raw(child.id() as i32),
            killed: std::sync::atomic::AtomicBool::new(false),
        });
        let f = Forwarder {
            shared: shared.clone(),
            set: forwarded_set(),
            terminal: true,
            interrupt_ends: false,
            grace: Duration::from_secs(30),
        };
        let mut killer = false;
        assert!(f.handle(Signal::SIGINT, &mut killer));
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "INT was sent again");
        assert!(!killer);
        assert!(f.handle(Signal::SIGTERM, &mut killer));
        let status = child.wait().unwrap();
        assert_eq!(exit_code(status), 128 + 15);
        assert!(killer);
        assert_eq!(
            *shared.stopped.lock().unwrap(),
            Some(Stopped::Signal(Signal::SIGTERM))
        );
        *shared.ended.lock().unwrap() = true;
        assert!(!f.handle(Signal::SIGTERM, &mut killer));
    }
}
