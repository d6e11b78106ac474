//! Backends translate a [`Prepared`] run into a [`LaunchPlan`]; they do not execute.
//! `probe` says whether this host can run the backend and, if not, what to do about it.

pub mod apple;
#[cfg(target_os = "linux")]
pub mod bwrap;
pub mod limits;
#[cfg(target_os = "linux")]
pub mod nspawn;
#[cfg(target_os = "linux")]
pub mod podman;
#[cfg(target_os = "linux")]
pub mod qemu;
pub mod stage;

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

/// One way to run a sandbox. A backend is one module: it finds its programs and reads the
/// host facts it needs when it is located ([`Entry::locate`]), says what the host lacks
/// ([`Backend::probe`]), writes the files it needs before a launch and removes them after
/// ([`Backend::stage`], [`Backend::cleanup`]), and turns a prepared run into a plan
/// ([`Backend::plan`], pure: everything it reads was detected before). How the executor waits
/// for the sandbox, signals it and tells a command that never started from one that failed is
/// part of the plan ([`LaunchPlan::info_fd`], [`LaunchPlan::pid_file`],
/// [`LaunchPlan::signals`], [`LaunchPlan::not_started`]), so one executor runs them all.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// Checks the host (may run programs; used by `wrapix doctor`, not on the launch path).
    fn probe(&self) -> Probe;
    /// The launch plan for a prepared run. Pure: reads nothing but its inputs and what
    /// [`Entry::locate`] detected.
    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError>;
    /// Writes what the plan refers to on the host (generated files a backend cannot take by
    /// fd), right before the launch. Undone by [`Backend::cleanup`]; see [`Staged`].
    fn stage(&self, run: &Prepared) -> Result<(), SandboxError> {
        let _ = run;
        Ok(())
    }
    /// Removes what [`Backend::stage`] wrote. Safe to call when nothing was staged.
    fn cleanup(&self) {}
    /// Whether the backend runs from an image only (the `host` profile is refused): `wrapix
    /// doctor` tries it with the `base` image.
    fn needs_image(&self) -> bool {
        false
    }
    /// Whether [`Backend::plan`] carries out the `[forward]` key or `ports` named `forward`
    /// (as [`wrapix_spec::Forward::names`] names them). Off unless a backend says so: [`plan`]
    /// refuses a run that asks for one on a backend that does not, so a new backend cannot drop
    /// them silently.
    fn forwards(&self, forward: &str) -> bool {
        let _ = forward;
        false
    }
    /// Whether [`Backend::plan`] enforces a network allowlist (`network = { allow = [...] }`):
    /// the sandbox in a network namespace of its own with no route out, and the egress proxy
    /// ([`crate::egress`]) its only way out. Off unless a backend says so: [`plan`] refuses an
    /// allowlist on a backend that does not (fail closed: never `open` instead, nor `none`).
    fn filters_egress(&self) -> bool {
        false
    }
}

/// The backend's plan for `run`, refused when the run asks for forwards the backend does not
/// carry out (fail closed: never a run without what the config asked for).
pub fn plan(backend: &dyn Backend, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
    refuse_forwards(backend, run)?;
    // Fail closed: where the proxy is not wired, an allowlist would have to become `open`
    // (too wide) or `none` (not what was asked).
    if matches!(run.network, wrapix_spec::Network::Filtered(_)) && !backend.filters_egress() {
        return Err(SandboxError::Unavailable {
            backend: backend.name(),
            problem: format!(
                "a network allowlist (network = {{ allow = [...] }}, --allow-host) is enforced by wrapix's egress proxy, which the {} backend does not wire in (bubblewrap, podman, nspawn and qemu do)",
                backend.name()
            ),
            fix: "use another --backend, or network = \"none\" / \"open\" with this backend".into(),
        });
    }
    backend.plan(run)
}

/// What locating a backend may look at: the host's environment and user, the project, and
/// the run's `[resources]` (whose host support is detected here, so that planning is pure).
#[derive(Debug, Clone)]
pub struct Locate<'a> {
    pub env: &'a std::collections::BTreeMap<String, String>,
    /// The user wrapix runs as.
    pub uid: u32,
    /// The project folder (or, for `wrapix doctor`, the home folder).
    pub project: &'a std::path::Path,
    /// The limits the run asks for (none for `wrapix doctor`).
    pub resources: wrapix_spec::Resources,
}

/// A backend in the registry.
pub struct Entry {
    pub name: wrapix_spec::BackendName,
    /// One line for `wrapix doctor`'s section title.
    pub summary: &'static str,
    /// Finds the backend's programs and reads the host facts its plans need.
    pub locate: fn(&Locate<'_>) -> Box<dyn Backend>,
}

/// Every backend this build has. Adding a backend is its module and one line here.
#[cfg(target_os = "linux")]
pub const REGISTRY: &[Entry] = &[
    bwrap::ENTRY,
    podman::ENTRY,
    nspawn::ENTRY,
    qemu::ENTRY,
    apple::ENTRY,
];
/// Elsewhere (macOS): the apple backend only, the others are Linux-only (a config that names
/// one is refused by its validation, saying so).
#[cfg(not(target_os = "linux"))]
pub const REGISTRY: &[Entry] = &[apple::ENTRY];

/// The backend `auto` means on this host: Apple's `container` on macOS.
pub const DEFAULT: &str = if cfg!(target_os = "macos") {
    "apple"
} else {
    "bwrap"
};

/// The names configs may use, for [`wrapix_spec::validate::HostContext::backends`].
pub fn names() -> Vec<wrapix_spec::BackendName> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The backend a spec chose (`auto`: [`DEFAULT`]); `None` for `backend = "none"` (no sandbox),
/// which the caller handles on its own, loudly.
pub fn select(kind: &wrapix_spec::BackendKind, at: &Locate<'_>) -> Option<Box<dyn Backend>> {
    let name = match kind {
        wrapix_spec::BackendKind::None => return None,
        wrapix_spec::BackendKind::Auto => DEFAULT,
        wrapix_spec::BackendKind::Named(n) => n,
    };
    REGISTRY
        .iter()
        .find(|e| e.name.name == name)
        .map(|e| (e.locate)(at))
}

/// What a backend staged for a run, removed when this is dropped (also on errors and panics).
pub struct Staged<'a> {
    backend: &'a dyn Backend,
}

impl<'a> Staged<'a> {
    /// Stages `run` for `backend`; on failure whatever was written is removed again.
    pub fn new(backend: &'a dyn Backend, run: &Prepared) -> Result<Self, SandboxError> {
        let staged = Staged { backend };
        backend.stage(run)?;
        Ok(staged)
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        self.backend.cleanup();
    }
}

/// `[forward]` and `[[ports]]` are built for bubblewrap (and ports for qemu): a backend
/// refuses a run that asks for one it does not carry out (fail closed), naming them.
pub fn refuse_forwards(backend: &dyn Backend, run: &Prepared) -> Result<(), SandboxError> {
    let names: Vec<&str> = run
        .spec
        .forward
        .names()
        .into_iter()
        .filter(|f| !backend.forwards(f))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let backend = backend.name();
    Err(SandboxError::Unavailable {
        backend,
        problem: format!(
            "the {backend} backend does not forward {} yet (bubblewrap does)",
            names.join(", ")
        ),
        fix: "use --backend bwrap, or remove the [forward] keys and ports".into(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(env: &std::collections::BTreeMap<String, String>) -> Locate<'_> {
        Locate {
            env,
            uid: 1000,
            project: std::path::Path::new("/tmp/project"),
            resources: Default::default(),
        }
    }

    #[test]
    fn every_name_and_alias_is_one_backend() {
        let mut seen = vec!["auto", "none"];
        for e in REGISTRY {
            for n in std::iter::once(&e.name.name).chain(e.name.aliases) {
                assert!(!seen.contains(n), "{n} is taken twice");
                seen.push(n);
            }
        }
        assert!(REGISTRY.iter().any(|e| e.name.name == DEFAULT));
        assert_eq!(names().len(), REGISTRY.len());
    }

    #[test]
    fn every_backend_with_a_network_namespace_enforces_allowlists() {
        let env = std::collections::BTreeMap::new();
        for e in REGISTRY {
            let b = (e.locate)(&at(&env));
            assert_eq!(
                b.filters_egress(),
                e.name.name != "apple",
                "{}",
                e.name.name
            );
        }
    }

    #[test]
    fn select_locates_the_named_backend_and_none_is_no_backend() {
        let env = std::collections::BTreeMap::new();
        for e in REGISTRY {
            let kind = wrapix_spec::BackendKind::Named(e.name.name);
            let b = select(&kind, &at(&env)).unwrap_or_else(|| panic!("{} missing", e.name.name));
            assert_eq!(b.name(), e.name.name);
        }
        let auto = select(&wrapix_spec::BackendKind::Auto, &at(&env));
        assert_eq!(auto.map(|b| b.name()), Some(DEFAULT));
        assert!(select(&wrapix_spec::BackendKind::None, &at(&env)).is_none());
    }
}
