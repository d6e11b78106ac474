//! One error style for every bad input: `WHERE: key `K`: WHAT (fix: HOW)`, on one line.
//! WHAT and HOW come from a typed [`Problem`]; this module adds WHERE and K.

use std::fmt;
use std::path::PathBuf;

use crate::problem::Problem;

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A config file, with a 1-based line and column when known.
    File {
        path: PathBuf,
        line: Option<(usize, usize)>,
    },
    /// A command-line flag such as `--mount`.
    Flag(String),
    /// Something the host provided (the project folder, the user database).
    Host,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File {
                path,
                line: Some((l, c)),
            } => write!(f, "{}:{l}:{c}", path.display()),
            Location::File { path, line: None } => write!(f, "{}", path.display()),
            Location::Flag(flag) => write!(f, "{flag}"),
            Location::Host => write!(f, "host"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A value that is present but wrong. Always user-fixable: exit code 2.
    #[error("{location}: key `{key}`: {problem} (fix: {fix})", fix = .problem.fix())]
    Invalid {
        location: Location,
        key: String,
        /// Boxed: a Problem is large, and a SpecError travels in every `Result`.
        #[source]
        problem: Box<Problem>,
    },
    /// A project config that widens the sandbox, whose content the user has not trusted.
    #[error("{}: this project's wrapix.toml asks for more than the default sandbox ({}), and {} (fix: review it, then run `wrapix trust -C {}`, which lists what each key allows; a changed file needs trust again)", path.display(), keys.join(", "), if *changed { "it changed since you trusted it" } else { "this content is not trusted" }, escape_controls(&project.display().to_string()))]
    Untrusted {
        path: PathBuf,
        project: PathBuf,
        keys: Vec<String>,
        /// A record exists, for other content.
        changed: bool,
    },
    /// A config file that wrapix refuses to read as it is (a symlink, a FIFO, too large).
    #[error("cannot read config file: {0}")]
    Unsafe(#[from] wrapix_hostfs::HostFsError),
    /// wrapix's trust record cannot be read.
    #[error("cannot read the trust record: {0}")]
    TrustRecord(#[from] crate::state::StateError),
    /// A config file that exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SpecError {
    /// The value of `key` at `location` has `problem`.
    pub fn at(location: Location, key: impl Into<String>, problem: impl Into<Problem>) -> Self {
        SpecError::Invalid {
            location,
            key: escape_controls(&key.into()),
            problem: Box::new(problem.into()),
        }
    }

    /// [`SpecError::at`] for a check made in one place only, with its message and fix.
    pub fn invalid(
        location: Location,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::at(
            location,
            key,
            Problem::Other {
                message: message.into(),
                fix: fix.into(),
            },
        )
    }
}

/// Replaces control characters with visible escapes, so that a hostile config file cannot
/// write terminal escape sequences through an error message.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}]0;x\u{7}b\0"),
            "a\\u{1b}]0;x\\u{7}b\\u{0}"
        );
        assert_eq!(escape_controls("plain é"), "plain é");
    }

    #[test]
    fn invalid_is_one_line_and_keeps_its_problem_as_source() {
        use std::error::Error as _;
        let e = SpecError::at(
            Location::Flag("--env \"A\"".into()),
            "env\u{1b}",
            crate::problem::EnvFlagError("A".into()),
        );
        assert_eq!(
            e.to_string(),
            "--env \"A\": key `env\\u{1b}`: \"A\" has no `=`; write KEY=VALUE (fix: write -e KEY=VALUE)"
        );
        let source = e.source().map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("\"A\" has no `=`; write KEY=VALUE"));
    }

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
