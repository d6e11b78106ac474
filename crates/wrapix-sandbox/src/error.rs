//! Errors of the sandbox core. Each names the operation that failed and what to do.

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the agent `{program}` is not installed in the sandbox (fix: install it, set [agent] command in wrapix.toml, or use `wrapix shell`)")]
    AgentMissing { program: String },

    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },

    #[error("cannot start the {backend} sandbox: {problem} (fix: {fix})")]
    Unavailable {
        backend: &'static str,
        problem: String,
        fix: String,
    },

    /// Something the configuration needs inside the sandbox is not there.
    #[error("{what} (fix: {fix})")]
    Missing { what: String, fix: String },

    #[error("could not set up the sandbox network: {detail} (fix: {fix})")]
    Network { detail: String, fix: String },

    #[cfg(target_os = "linux")]
    #[error("seccomp filter: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),

    /// A file the sandbox can write that wrapix refuses to use as it is (a planted symlink,
    /// a FIFO, an oversized file): the message names the path.
    #[error(transparent)]
    HostFs(#[from] wrapix_hostfs::HostFsError),

    /// wrapix's own state folder cannot be used.
    #[error("wrapix's state folder: {0}")]
    State(#[from] wrapix_spec::state::StateError),

    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
}

impl SandboxError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        SandboxError::Sys {
            what: what.into(),
            source,
        }
    }
}
