//! The executor on hosts other than Linux (macOS): [`crate::exec`]'s interface, refusing to
//! start anything. The Linux executor (`exec.rs`) is built on Linux calls (signalfd, memfd,
//! `close_range`, `PR_SET_PDEATHSIG`, mount namespaces); a macOS one that runs the apple
//! backend's plans (info fd, terminal, signals) is still to be written (docs/macos.md). Until
//! then a Mac builds, checks and shows plans (`wrapix run --dry-run`), and says why it stops.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::SandboxError;
use crate::plan::LaunchPlan;

/// How a run is wired and bounded beyond its plan (as on Linux, see `exec.rs`).
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
    pub stderr: Option<Stdio>,
    pub deadline: Option<Instant>,
    pub interrupt_ends: bool,
    pub grace: Option<Duration>,
}

/// Why a run ended early, besides its own exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Deadline,
    Signal(Signal),
}

/// The result of [`execute_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stopped: Option<Stopped>,
}

/// Refused: see the module's documentation.
pub fn execute(plan: &LaunchPlan) -> Result<i32, SandboxError> {
    execute_with(plan, ExecOptions::default()).map(|o| o.code)
}

/// Refused: see the module's documentation.
pub fn execute_with(plan: &LaunchPlan, opts: ExecOptions) -> Result<Outcome, SandboxError> {
    let _ = opts;
    Err(SandboxError::Unavailable {
        backend: plan.backend,
        problem: "the executor that starts it is Linux-only in this build of wrapix (a macOS one is not written yet)".into(),
        fix: "use `wrapix run --dry-run` to see the plan, or run wrapix on a Linux host".into(),
    })
}

/// 128+N for a signal, as shells report it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
