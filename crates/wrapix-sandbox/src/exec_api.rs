//! What both executors share (`exec.rs` on Linux, `exec_posix.rs` elsewhere): the options
//! of a run, its outcome, the signals forwarded and the grace after an ending one. Both
//! re-export it as `crate::exec::…`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Signals the user sends to "the agent": forwarded into the sandbox ([`SignalTarget`]).
pub const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// How a run is wired and bounded beyond its plan. The default is `wrapix run`'s: the
/// terminal's stdio, no deadline, Ctrl-C forwarded to the agent only.
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// The backend's (and so the sandbox command's) stdio; `None` inherits wrapix's.
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
    pub stderr: Option<Stdio>,
    /// When the sandbox is killed (SIGKILL to the sandbox and the backend), whatever it is doing.
    pub deadline: Option<Instant>,
    /// SIGINT ends the run as SIGTERM does: forwarded, then the sandbox is killed after the
    /// grace. For non-interactive runs (ralph), where Ctrl-C means "stop", not "tell the agent".
    pub interrupt_ends: bool,
    /// How long the sandbox has to exit after an ending signal; default [`STOP_GRACE`].
    pub grace: Option<Duration>,
}

/// Why a run ended early, besides its own exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// [`ExecOptions::deadline`] passed and the sandbox was killed.
    Deadline,
    /// wrapix received this signal (forwarded into the sandbox).
    Signal(Signal),
}

/// The result of [`execute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code to pass on (128+N for a signal).
    pub code: i32,
    /// The first reason the run was stopped from outside, if any.
    pub stopped: Option<Stopped>,
}

/// How long the agent has to exit after SIGTERM/SIGHUP/SIGQUIT before the sandbox is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// 128+N for a signal, as shells report it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
