//! Desktop notifications for wrapix.
//!
//! * [`frame`]: the wire format (one JSON line, versioned, bounded).
//! * [`client`]: `wrapix notify` inside the sandbox; never blocks or fails the agent.
//! * [`daemon`]: `wrapix notifyd` on the host: Unix socket (peer UID checked), optional TCP for
//!   VM backends, a bounded queue, and a [`sink::Sink`] that shows the notification.
//! * [`publish`]: the daemon's socket as sandboxes see it, in a folder they mount, so a
//!   restarted daemon is reachable from sandboxes that are already running.
//! * [`focus`] and [`session`]: the launcher registers each sandbox's terminal; the daemon
//!   suppresses a notification while that terminal (or tmux pane) has the focus.
//! * [`app`]: the `notify`/`notifyd` commands and the launcher's side.
//! * [`install`]: systemd and launchd service files.

pub mod app;
pub mod client;
pub mod daemon;
pub mod focus;
pub mod frame;
pub mod install;
pub mod paths;
pub mod publish;
pub mod session;
pub mod sink;

use std::path::PathBuf;

pub use frame::Frame;

/// Errors of this crate; each names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to use {path}: {problem}")]
    Insecure { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot show the notification: {0}")]
    Sink(String),
}

impl NotifyError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        NotifyError::Io {
            what: what.into(),
            source,
        }
    }
}
