//! The validated spec: the complete description of one sandbox run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::layer::Origin;
use crate::types::{EnvName, MountMode, SandboxPath};

/// Which backend turns the spec into a launch plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendKind {
    /// The best backend this host can run (bubblewrap on Linux).
    Auto,
    /// A backend of this build, by its canonical name (see [`BackendName`]).
    Named(&'static str),
    /// No sandbox at all; only by explicit choice, with a warning.
    None,
}

impl BackendKind {
    /// The backend's name, `auto` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Named(name) => name,
            BackendKind::None => "none",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend this build has, as configs name it. The list comes from the backend registry
/// (`wrapix_sandbox::backend::names()`), so the config parser needs no change when a backend
/// is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendName {
    pub name: &'static str,
    /// Other names accepted for it (`bubblewrap` for `bwrap`).
    pub aliases: &'static [&'static str],
}

/// What the sandbox's root filesystem is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// The host's system folders, read-only.
    Host,
    /// An image built from a profile (plus the config's extra packages).
    Image(wrapix_image::ImageSpec),
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Profile::Host => f.write_str("host"),
            Profile::Image(img) => f.write_str(&img.profile),
        }
    }
}

/// `[resources]`: limits the backend must enforce (or refuse to start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub pids: Option<u64>,
}

impl Resources {
    pub fn any(&self) -> bool {
        self.cpus.is_some() || self.memory_mb.is_some() || self.pids.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Outbound TCP/UDP through userspace networking; no inbound, no host loopback.
    Open,
    /// Loopback only.
    None,
    /// Loopback only, plus wrapix's host-side proxy, which lets through what the allowlist
    /// allows (`network = { allow = [...] }`, `--allow-host`).
    Filtered(crate::egress::Egress),
}

impl Network {
    /// The allowlist, for `Filtered`.
    pub fn egress(&self) -> Option<&crate::egress::Egress> {
        match self {
            Network::Filtered(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Open => f.write_str("open"),
            Network::None => f.write_str("none"),
            Network::Filtered(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Canonical host path; exists.
    pub source: PathBuf,
    pub dest: SandboxPath,
    pub mode: MountMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployKey {
    pub name: String,
    pub private_key: PathBuf,
    pub public_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentHome {
    /// Agent state in `<project>/.wrapix/agent/`, seeded by copying from the host.
    Project,
    /// The host's `~/.claude` read-write; `~/.claude.json` copied in and back.
    Host,
}

impl fmt::Display for AgentHome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgentHome::Project => "project",
            AgentHome::Host => "host",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// argv of the agent; never empty.
    pub command: Vec<String>,
    pub home: AgentHome,
    /// Pass the host's `ANTHROPIC_API_KEY` into the sandbox.
    pub forward_api_key: bool,
}

impl Agent {
    /// True when the agent is Claude Code, which gets its config dir, login and hooks wired.
    pub fn is_claude(&self) -> bool {
        self.command
            .first()
            .map(|c| c.rsplit('/').next() == Some("claude"))
            .unwrap_or(false)
    }
}

/// The host user the sandbox user mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUser {
    pub uid: u32,
    pub gid: u32,
    /// A safe login name (`[a-z_][a-z0-9_-]*`), `wrapix` when the host's is not.
    pub name: String,
    /// The host home folder (used for `~` in mount sources and for agent/git config).
    pub home: PathBuf,
}

impl HostUser {
    /// The sandbox user's home.
    pub fn sandbox_home(&self) -> SandboxPath {
        if self.uid == 0 {
            SandboxPath::from_static("/root")
        } else {
            SandboxPath::from_static(&format!("/home/{}", self.name))
        }
    }
}

/// The complete, validated description of one sandbox run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Canonical project folder, mounted at `/workspace`.
    pub project: PathBuf,
    pub backend: BackendKind,
    pub profile: Profile,
    pub network: Network,
    pub env: BTreeMap<EnvName, String>,
    pub mounts: Vec<Mount>,
    pub deploy_key: Option<DeployKey>,
    pub agent: Agent,
    /// Project-relative paths mounted read-only inside `/workspace`.
    pub protect: Vec<PathBuf>,
    pub resources: Resources,
    /// `[mcp.NAME]`: MCP servers registered with the agent, by name.
    pub mcp: BTreeMap<String, crate::mcp::McpServer>,
    /// `[forward]` and `[[ports]]`: what of the host is forwarded (nothing by default).
    pub forward: crate::forward::Forward,
    pub user: HostUser,
    /// `require_kvm` / `--require-kvm`: the qemu backend refuses TCG (other backends run no
    /// VM and ignore it).
    pub require_kvm: bool,
    /// Where each top-level value came from.
    pub origins: BTreeMap<&'static str, Origin>,
}

impl Spec {
    pub const WORKSPACE: &'static str = "/workspace";

    pub fn origin(&self, key: &str) -> &Origin {
        self.origins.get(key).unwrap_or(&Origin::Default)
    }
}
