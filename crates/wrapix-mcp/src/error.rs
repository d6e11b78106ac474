//! Errors of the MCP server. Tool-level problems (unknown pane, a limit) are not errors of
//! this kind: they are MCP tool results with `isError: true` and a recovery hint.

use std::path::PathBuf;

/// A tmux invocation that failed.
#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// tmux ran and failed; carries its stderr.
    #[error("tmux {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

impl TmuxError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TmuxError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    #[error("cannot open the audit {what} {}: {source} (fix: point {env} or [mcp.tmux-debug] {key} at a writable place, e.g. under /workspace)", path.display())]
    Audit {
        what: &'static str,
        key: &'static str,
        env: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("MCP protocol: {0}")]
    Protocol(String),
}
