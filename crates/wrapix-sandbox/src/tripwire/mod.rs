//! The tripwire: what in the project could make git run code on the host, before and after a
//! run, and what to do about what the agent planted.
//!
//! Some of git's execution surface cannot be mounted read-only without breaking git in the
//! sandbox (nested repositories, the index, a `.git` file). So wrapix takes a [`snapshot`] when
//! a run starts, [`check`]s after the sandbox exits, and [`neutralise`]s what appeared: moved
//! into a quarantine folder (never deleted), or put back as it was. All access goes through
//! [`wrapix_hostfs::Dir`]: no symlink the agent planted is ever followed.

mod compare;
mod gitconfig;
mod index;
mod quarantine;
mod surface;
mod walk;

use std::path::PathBuf;

use wrapix_hostfs::Dir;

pub use surface::Snapshot;

/// The paths a repository's config (`bytes`, e.g. `.git/config`) names that git reads more
/// config or runs hooks from (`core.hooksPath`, `include.path`, `includeIf.*.path`), as
/// (key, value as written). An error (a phrase) when the file is not plain enough to read
/// safely.
pub fn config_code_paths(bytes: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    gitconfig::code_paths(bytes)
}

/// One thing that changed in git's execution surface during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Project-relative.
    pub path: PathBuf,
    /// One human line, e.g. "new nested repository whose config sets core.fsmonitor".
    pub what: String,
    pub action: Action,
}

/// What [`neutralise`] does with a [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Move it into the quarantine folder (or rename it in place when that is on another
    /// filesystem).
    Quarantine,
    /// Move the agent's version into quarantine and put back the bytes from before the run.
    Restore,
    /// Move the pieces of a folder that make git take it for a repository and that run code
    /// (`HEAD`, `config`, `commondir`, `config.worktree`, `hooks`) into the quarantine
    /// folder; the folder itself, and everything else in it, stays.
    Disarm,
    /// Only say it: nothing in it runs code, or it cannot be undone safely.
    Report,
    /// Could not be checked (an error reading it): nothing is done, and the check as a whole
    /// counts as failed, so that the user is told not to run git there before looking.
    Unchecked,
}

#[derive(Debug, thiserror::Error)]
pub enum TripwireError {
    #[error("tripwire: could not read:\n  {}", paths.join("\n  "))]
    Unreadable {
        /// One line per path, with why.
        paths: Vec<String>,
    },
    #[error("tripwire: could not neutralise everything the agent planted:\n  {}{}",
        failed.join("\n  "),
        if done.is_empty() { String::new() } else { format!("\nwhat was done:\n  {}", done.join("\n  ")) })]
    Incomplete {
        /// One line per thing that was moved or put back.
        done: Vec<String>,
        /// One line per thing that could not be, with why.
        failed: Vec<String>,
    },
}

/// How many threads search the work tree: two already keep a disk or the page cache busy.
fn threads() -> usize {
    // Asked once per process: the answer reads the cgroup's CPU quota (a handful of files),
    // and the check after the run would ask again.
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

/// What git's execution surface in `project` looks like now. Strict: anything in it that
/// cannot be read is an error (before a run, a snapshot with holes would hide what the run
/// changes there).
pub fn snapshot(project: &Dir) -> Result<Snapshot, TripwireError> {
    strict(surface::take(project, threads()))
}

/// [`snapshot`] on exactly `threads` threads (for the benchmark).
#[doc(hidden)]
pub fn snapshot_with_threads(project: &Dir, threads: usize) -> Result<Snapshot, TripwireError> {
    strict(surface::take(project, threads))
}

fn strict(s: Snapshot) -> Result<Snapshot, TripwireError> {
    let errors = s.errors();
    if errors.is_empty() {
        return Ok(s);
    }
    Err(TripwireError::Unreadable {
        paths: errors
            .into_iter()
            .map(|(p, why)| format!("{}: {why}", p.display()))
            .collect(),
    })
}

/// Takes a snapshot now and says what appeared or changed since `before`. Removals are not
/// findings. Never gives up half-way: what cannot be read is an [`Action::Unchecked`]
/// finding for its path, and everything else is still checked.
pub fn check(project: &Dir, before: &Snapshot) -> Vec<Finding> {
    let after = surface::take(project, threads());
    compare::findings(before, &after)
}

/// Moves what `findings` say into `quarantine` (keeping project-relative paths) and puts back
/// changed files; returns one line per thing done, naming where it went. Never deletes.
pub fn neutralise(
    project: &Dir,
    before: &Snapshot,
    findings: &[Finding],
    quarantine: &Dir,
) -> Result<Vec<String>, TripwireError> {
    quarantine::neutralise(project, before, findings, quarantine)
}

// Linux only: they drop root with `set_thread_res_uid`; macOS binaries cannot run here.
#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests;
