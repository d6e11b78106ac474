//! Backends translate a [`Prepared`] run into a [`LaunchPlan`]; they do not execute.
//! `probe` says whether this host can run the backend and, if not, what to do about it.

pub mod bwrap;
pub mod limits;
pub mod podman;

use crate::error::SandboxError;
use crate::plan::LaunchPlan;
use crate::prepare::Prepared;

/// One host check, as `wrapix doctor` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// The command or change that fixes it, when not ok.
    pub fix: Option<String>,
    /// Whether the backend can run without it (e.g. pasta is only needed for `network = "open"`).
    pub required: bool,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            required: true,
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            required: true,
        }
    }

    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }
}

/// The result of probing one backend.
#[derive(Debug, Clone)]
pub struct Probe {
    pub backend: &'static str,
    pub checks: Vec<Check>,
}

impl Probe {
    pub fn usable(&self) -> bool {
        self.checks.iter().all(|c| c.ok || !c.required)
    }
}

pub trait Backend {
    fn name(&self) -> &'static str;
    /// Checks the host (may run programs; used by `wrapix doctor`, not on the launch path).
    fn probe(&self) -> Probe;
    /// The launch plan for a prepared run. Pure apart from reading the plan's inputs.
    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError>;
}

/// Every backend this build has, for enum dispatch.
#[derive(Debug, Clone)]
pub enum AnyBackend {
    Bwrap(bwrap::Bwrap),
    Podman(podman::Podman),
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        match self {
            AnyBackend::Bwrap(b) => b.name(),
            AnyBackend::Podman(p) => p.name(),
        }
    }

    fn probe(&self) -> Probe {
        match self {
            AnyBackend::Bwrap(b) => b.probe(),
            AnyBackend::Podman(p) => p.probe(),
        }
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        match self {
            AnyBackend::Bwrap(b) => b.plan(run),
            AnyBackend::Podman(p) => p.plan(run),
        }
    }
}

/// Finds `name` on the host's `PATH` (or the standard system folders).
pub fn find_program(name: &str, path_env: Option<&str>) -> Option<std::path::PathBuf> {
    let default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    path_env
        .unwrap_or(default)
        .split(':')
        .chain(default.split(':'))
        .filter(|d| d.starts_with('/'))
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}
