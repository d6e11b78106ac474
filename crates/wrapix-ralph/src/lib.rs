//! ralph's host-independent parts: the task tracker under `.ralph/`, the prompt templates,
//! the agent's completion signals and the verdict of a step. The command line and the agent
//! runs (always in a sandbox) live in `wrapix-cli`.
//!
//! Everything under `.ralph/` and `specs/` is written by the agent too (it runs `ralph task
//! add` inside the sandbox, and can write any file there), so every file is read through
//! [`wrapix_hostfs::Dir`] (no symlink followed, sizes bounded), parsed strictly, and a bad
//! file is an error naming the file and line, never a reset.

pub mod beads;
pub mod error;
pub mod project;
pub mod signal;
pub mod template;
pub mod tracker;
pub mod verdict;
pub mod verified;

pub use error::RalphError;
pub use project::Project;
pub use signal::Signal;
pub use tracker::{Status, Task, Tracker};
