//! What is wrong with a value, and how to fix it.
//!
//! One error type per check, each variant carrying the data it names; its `Display` is the
//! message and its `fix()` the way out. [`SpecError::Invalid`](crate::SpecError::Invalid) adds
//! where the value came from and prints `WHERE: key `K`: WHAT (fix: HOW)`.

use std::borrow::Cow;
use std::path::PathBuf;

use wrapix_image::package::BadPackage;

use crate::types::SandboxPath;

/// Any value problem: what [`SpecError::Invalid`](crate::SpecError::Invalid) holds.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    EnvName(#[from] EnvNameError),
    #[error(transparent)]
    EnvValue(#[from] EnvValueError),
    #[error(transparent)]
    EnvFlag(#[from] EnvFlagError),
    #[error(transparent)]
    KeyName(#[from] KeyNameError),
    #[error(transparent)]
    McpName(#[from] McpNameError),
    #[error(transparent)]
    McpOptionPath(#[from] McpOptionPathError),
    #[error(transparent)]
    MountMode(#[from] MountModeError),
    #[error(transparent)]
    MountFlag(#[from] MountFlagError),
    #[error(transparent)]
    ProjectPath(#[from] ProjectPathError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Dest(#[from] DestError),
    #[error(transparent)]
    DeployKey(#[from] DeployKeyError),
    #[error(transparent)]
    Package(#[from] BadPackage),
    /// A check made in one place only (a config syntax error, an unknown `network`, …),
    /// written out where it is made.
    #[error("{message}")]
    Other { message: String, fix: String },
}

impl Problem {
    /// How the user gets past it.
    pub fn fix(&self) -> Cow<'static, str> {
        match self {
            Problem::EnvName(e) => e.fix().into(),
            Problem::EnvValue(e) => e.fix().into(),
            Problem::EnvFlag(e) => e.fix().into(),
            Problem::KeyName(e) => e.fix().into(),
            Problem::McpName(e) => e.fix().into(),
            Problem::McpOptionPath(e) => e.fix().into(),
            Problem::MountMode(e) => e.fix().into(),
            Problem::MountFlag(e) => e.fix().into(),
            Problem::ProjectPath(e) => e.fix().into(),
            Problem::Backend(e) => e.fix().into(),
            Problem::Source(e) => e.fix().into(),
            Problem::Dest(e) => e.fix(),
            Problem::DeployKey(e) => e.fix(),
            Problem::Package(e) => e.fix.clone().into(),
            Problem::Other { fix, .. } => fix.clone().into(),
        }
    }
}

/// An environment variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvNameError {
    #[error("environment variable name {0:?} contains a NUL byte")]
    Nul(String),
    #[error("environment variable name {0:?} contains `=`")]
    Equals(String),
    #[error("{0:?} is not a valid environment variable name (letters, digits and `_`, not starting with a digit)")]
    Invalid(String),
}

impl EnvNameError {
    pub fn fix(&self) -> &'static str {
        "use letters, digits and `_` in the name"
    }
}

/// An environment value with a NUL byte, which no environment can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value contains a NUL byte")]
pub struct EnvValueError;

impl EnvValueError {
    pub fn fix(&self) -> &'static str {
        "remove the NUL byte"
    }
}

/// An `--env` flag that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} has no `=`; write KEY=VALUE")]
pub struct EnvFlagError(pub String);

impl EnvFlagError {
    pub fn fix(&self) -> &'static str {
        "write -e KEY=VALUE"
    }
}

/// A deploy key name that is not a plain file name under `~/.ssh/deploy_keys/`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deploy key name {0:?} is not a plain file name")]
pub struct KeyNameError(pub String);

impl KeyNameError {
    pub fn fix(&self) -> &'static str {
        "use letters, digits, `.`, `_` and `-`"
    }
}

/// An `[mcp.NAME]` table whose name is not a plain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MCP server name {0:?} is not a plain name (letters, digits, `-`, `_`)")]
pub struct McpNameError(pub String);

impl McpNameError {
    pub fn fix(&self) -> &'static str {
        "name the table [mcp.NAME] with letters, digits, `-` and `_`"
    }
}

/// A built-in MCP server's path option that is not a path inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source}")]
pub struct McpOptionPathError {
    pub source: SandboxPathError,
    /// What the option is for.
    pub help: &'static str,
}

impl McpOptionPathError {
    pub fn fix(&self) -> String {
        format!("write an absolute path or ~/… ({})", self.help)
    }
}

/// A mount mode other than `ro` and `rw`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mount mode {0:?} is neither \"ro\" nor \"rw\"")]
pub struct MountModeError(pub String);

impl MountModeError {
    pub fn fix(&self) -> &'static str {
        "use \"ro\" or \"rw\""
    }
}

/// A `--mount` flag that is not `SRC:DEST[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountFlagError {
    #[error("{0:?} is not SRC:DEST[:ro|rw]")]
    Shape(String),
    #[error(transparent)]
    Mode(#[from] MountModeError),
}

impl MountFlagError {
    pub fn fix(&self) -> &'static str {
        "write --mount SRC:DEST[:ro|rw]"
    }
}

/// A path inside the sandbox that is not absolute (or `~/…`) and normal. It has no fix of its
/// own: what to write depends on the key ([`DestError::Path`], [`McpOptionPathError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxPathError {
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("{0:?} is relative; write an absolute path or ~/…")]
    Relative(String),
    #[error("{0:?} contains `..`")]
    Parent(String),
}

/// A `[workspace] protect` entry that is not a relative path inside the project.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectPathError {
    #[error("{0:?} is not a relative path inside the project")]
    NotRelative(String),
    #[error("{0:?} leaves the project (`..`)")]
    Leaves(String),
    #[error("{0:?} names the project itself")]
    Project(String),
}

impl ProjectPathError {
    pub fn fix(&self) -> &'static str {
        "list paths relative to the project, e.g. \".envrc\""
    }
}

/// A `backend` this build does not have. `known` lists what it has, `auto` and `none`
/// included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("backend {name:?} is not in this build of wrapix (bubblewrap, podman, nspawn and qemu are Linux-only: a macOS build has apple only)")]
    Later {
        name: String,
        known: Vec<&'static str>,
    },
    #[error("unknown backend {name:?}")]
    Unknown {
        name: String,
        known: Vec<&'static str>,
    },
}

impl BackendError {
    pub fn fix(&self) -> String {
        let (BackendError::Later { known, .. } | BackendError::Unknown { known, .. }) = self;
        format!("use one of: {}", known.join(", "))
    }
}

/// A mount source that cannot be mounted.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the source path contains a NUL byte")]
    Nul,
    /// Relative, in a file that has no folder to be relative to (the user config).
    #[error("source {0:?} is relative")]
    Relative(String),
    #[error("source {} does not exist or cannot be read ({source})", path.display())]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The path passes through `link`, a symlink the agent can change.
    #[error("source {} passes through {}, a symbolic link inside the project, which the agent can change", path.display(), link.display())]
    ProjectLink { path: PathBuf, link: PathBuf },
}

impl SourceError {
    pub fn fix(&self) -> &'static str {
        match self {
            SourceError::Nul => "remove the NUL byte",
            SourceError::Relative(_) => "write an absolute path or ~/… in the user config",
            SourceError::Missing { .. } => "create it first or correct the path",
            SourceError::ProjectLink { .. } => {
                "mount the link's target directly, or replace the link with a folder"
            }
        }
    }
}

/// A mount dest that would hide part of the sandbox wrapix builds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    #[error(transparent)]
    Path(#[from] SandboxPathError),
    #[error("dest / would replace the whole sandbox")]
    Root,
    #[error("dest {0} would replace the sandbox home")]
    Home(SandboxPath),
    #[error("dest {dest} would shadow {reserved}")]
    Reserved {
        dest: SandboxPath,
        reserved: &'static str,
    },
    #[error("dest {dest} would replace the system folder {system}")]
    System {
        dest: SandboxPath,
        system: &'static str,
    },
}

impl DestError {
    pub fn fix(&self) -> Cow<'static, str> {
        match self {
            DestError::Path(_) => "write an absolute path or ~/… for dest".into(),
            DestError::Root => "mount into a folder".into(),
            DestError::Home(_) => "mount into a folder under ~/".into(),
            DestError::Reserved { reserved, .. } => {
                format!("choose a dest outside {reserved}").into()
            }
            DestError::System { .. } => "choose a dest that is not a system folder".into(),
        }
    }
}

/// A `deploy_key` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployKeyError {
    #[error(transparent)]
    Name(#[from] KeyNameError),
    #[error("deploy key {} does not exist", path.display())]
    Missing { name: String, path: PathBuf },
}

impl DeployKeyError {
    pub fn fix(&self) -> Cow<'static, str> {
        match self {
            DeployKeyError::Name(e) => e.fix().into(),
            DeployKeyError::Missing { name, .. } => format!(
                "run `wrapix deploy-key create {name}` and add the printed key to the forge"
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message and fix, word for word: they are what users read (and what
    /// `tests/suite/badinput.rs` looks for).
    #[test]
    fn messages_and_fixes() {
        let path = || SandboxPath::from_static("/home/u");
        let known = vec!["auto", "bwrap", "none"];
        let cases: Vec<(Problem, &str, &str)> = vec![
            (
                EnvNameError::Nul("A\0".into()).into(),
                "environment variable name \"A\\0\" contains a NUL byte",
                "use letters, digits and `_` in the name",
            ),
            (
                EnvNameError::Equals("A=B".into()).into(),
                "environment variable name \"A=B\" contains `=`",
                "use letters, digits and `_` in the name",
            ),
            (
                EnvNameError::Invalid("1X".into()).into(),
                "\"1X\" is not a valid environment variable name (letters, digits and `_`, not starting with a digit)",
                "use letters, digits and `_` in the name",
            ),
            (
                EnvValueError.into(),
                "the value contains a NUL byte",
                "remove the NUL byte",
            ),
            (
                EnvFlagError("A".into()).into(),
                "\"A\" has no `=`; write KEY=VALUE",
                "write -e KEY=VALUE",
            ),
            (
                KeyNameError("../x".into()).into(),
                "deploy key name \"../x\" is not a plain file name",
                "use letters, digits, `.`, `_` and `-`",
            ),
            (
                McpNameError("a b".into()).into(),
                "MCP server name \"a b\" is not a plain name (letters, digits, `-`, `_`)",
                "name the table [mcp.NAME] with letters, digits, `-` and `_`",
            ),
            (
                McpOptionPathError {
                    source: SandboxPathError::Relative("x".into()),
                    help: "a log file",
                }
                .into(),
                "\"x\" is relative; write an absolute path or ~/…",
                "write an absolute path or ~/… (a log file)",
            ),
            (
                MountModeError("rx".into()).into(),
                "mount mode \"rx\" is neither \"ro\" nor \"rw\"",
                "use \"ro\" or \"rw\"",
            ),
            (
                MountFlagError::Shape("/a".into()).into(),
                "\"/a\" is not SRC:DEST[:ro|rw]",
                "write --mount SRC:DEST[:ro|rw]",
            ),
            (
                MountFlagError::Mode(MountModeError("rx".into())).into(),
                "mount mode \"rx\" is neither \"ro\" nor \"rw\"",
                "write --mount SRC:DEST[:ro|rw]",
            ),
            (
                ProjectPathError::NotRelative("/etc".into()).into(),
                "\"/etc\" is not a relative path inside the project",
                "list paths relative to the project, e.g. \".envrc\"",
            ),
            (
                ProjectPathError::Leaves("../x".into()).into(),
                "\"../x\" leaves the project (`..`)",
                "list paths relative to the project, e.g. \".envrc\"",
            ),
            (
                ProjectPathError::Project(".".into()).into(),
                "\".\" names the project itself",
                "list paths relative to the project, e.g. \".envrc\"",
            ),
            (
                BackendError::Later {
                    name: "qemu".into(),
                    known: known.clone(),
                }
                .into(),
                "backend \"qemu\" is not in this build of wrapix (bubblewrap, podman, nspawn and qemu are Linux-only: a macOS build has apple only)",
                "use one of: auto, bwrap, none",
            ),
            (
                BackendError::Unknown {
                    name: "docker".into(),
                    known,
                }
                .into(),
                "unknown backend \"docker\"",
                "use one of: auto, bwrap, none",
            ),
            (
                SourceError::Nul.into(),
                "the source path contains a NUL byte",
                "remove the NUL byte",
            ),
            (
                SourceError::Relative("data".into()).into(),
                "source \"data\" is relative",
                "write an absolute path or ~/… in the user config",
            ),
            (
                SourceError::Missing {
                    path: "/nope".into(),
                    source: std::io::Error::other("gone"),
                }
                .into(),
                "source /nope does not exist or cannot be read (gone)",
                "create it first or correct the path",
            ),
            (
                SourceError::ProjectLink {
                    path: "/p/data/x".into(),
                    link: "/p/data".into(),
                }
                .into(),
                "source /p/data/x passes through /p/data, a symbolic link inside the project, which the agent can change",
                "mount the link's target directly, or replace the link with a folder",
            ),
            (
                DestError::Path(SandboxPathError::Parent("/a/../b".into())).into(),
                "\"/a/../b\" contains `..`",
                "write an absolute path or ~/… for dest",
            ),
            (
                DestError::Path(SandboxPathError::Nul).into(),
                "the path contains a NUL byte",
                "write an absolute path or ~/… for dest",
            ),
            (
                DestError::Root.into(),
                "dest / would replace the whole sandbox",
                "mount into a folder",
            ),
            (
                DestError::Home(path()).into(),
                "dest /home/u would replace the sandbox home",
                "mount into a folder under ~/",
            ),
            (
                DestError::Reserved {
                    dest: SandboxPath::from_static("/proc/x"),
                    reserved: "/proc",
                }
                .into(),
                "dest /proc/x would shadow /proc",
                "choose a dest outside /proc",
            ),
            (
                DestError::System {
                    dest: SandboxPath::from_static("/usr"),
                    system: "/usr",
                }
                .into(),
                "dest /usr would replace the system folder /usr",
                "choose a dest that is not a system folder",
            ),
            (
                DeployKeyError::Name(KeyNameError(".k".into())).into(),
                "deploy key name \".k\" is not a plain file name",
                "use letters, digits, `.`, `_` and `-`",
            ),
            (
                DeployKeyError::Missing {
                    name: "k".into(),
                    path: "/h/.ssh/deploy_keys/k".into(),
                }
                .into(),
                "deploy key /h/.ssh/deploy_keys/k does not exist",
                "run `wrapix deploy-key create k` and add the printed key to the forge",
            ),
            (
                Problem::Other {
                    message: "m".into(),
                    fix: "f".into(),
                },
                "m",
                "f",
            ),
        ];
        for (problem, message, fix) in cases {
            assert_eq!(problem.to_string(), message);
            assert_eq!(problem.fix(), fix, "{message}");
        }
    }
}
