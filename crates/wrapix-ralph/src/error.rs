//! One error type; [`RalphError::is_usage`] separates bad input (exit 2) from failures.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RalphError {
    /// A file under `.ralph/` or `specs/` that does not parse.
    #[error("{file}:{line}: {message} ({fix})")]
    Malformed {
        file: String,
        line: usize,
        message: String,
        fix: String,
    },
    /// Bad input from the command line or the project (not a file's syntax).
    #[error("{message} ({fix})")]
    Usage { message: String, fix: String },
    #[error("{op} {path}: {source}")]
    Fs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: wrapix_hostfs::HostFsError,
    },
    /// Another process holds a lock for too long, or ralph runs twice.
    #[error("{0}")]
    Busy(String),
}

impl RalphError {
    pub fn usage(message: impl Into<String>, fix: impl Into<String>) -> Self {
        RalphError::Usage {
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn malformed(
        file: impl Into<String>,
        line: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        RalphError::Malformed {
            file: file.into(),
            line,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn fs(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: wrapix_hostfs::HostFsError,
    ) -> Self {
        RalphError::Fs {
            op,
            path: path.into(),
            source,
        }
    }

    /// Bad input: exit 2, nothing changed.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RalphError::Malformed { .. } | RalphError::Usage { .. }
        )
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
