//! The config file as written (`wrapix.toml`, `~/.config/wrapix/config.toml`).
//! Unknown keys are rejected; values are checked later, in [`crate::validate`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub profile: Option<Spanned<String>>,
    pub backend: Option<Spanned<String>>,
    /// The qemu backend refuses to run under TCG (emulation) when KVM is not usable.
    pub require_kvm: Option<Spanned<bool>>,
    /// `"open"`, `"none"`, or a table (`allow`, `deny`, `sets`, `notify_denied`,
    /// `credentials`): checked in validation ([`crate::validate`]'s `network`).
    /// Not `Spanned`: serde has no span for a table made of `[network.sets]` headers
    /// ([`crate::layer::ConfigFile::at_key`] finds the line).
    pub network: Option<toml::Value>,
    pub deploy_key: Option<Spanned<String>>,
    pub env: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    pub mounts: Vec<Spanned<RawMount>>,
    pub agent: Option<RawAgent>,
    pub workspace: Option<RawWorkspace>,
    /// Extra packages for the image (Debian names, `npm:`, `pip:`).
    pub packages: Option<Spanned<Vec<Spanned<String>>>>,
    pub profiles: Option<BTreeMap<String, Spanned<RawProfile>>>,
    pub resources: Option<RawResources>,
    /// `[mcp.NAME]`: MCP servers registered with the agent. The keys of each table depend on
    /// the server (see [`crate::mcp`]), so they are checked in validation.
    pub mcp: Option<BTreeMap<String, Spanned<RawMcpServer>>>,
    /// `[ralph]`: the agent loop's settings (see [`crate::ralph`]).
    pub ralph: Option<RawRalph>,
    /// `[forward]`: host and desktop integrations (see [`crate::forward`]).
    pub forward: Option<RawForward>,
    /// `[[ports]]`: sandbox ports published on the host.
    #[serde(default)]
    pub ports: Vec<Spanned<RawPort>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    pub display: Option<Spanned<String>>,
    /// `true`, `false`, or a list of private key files: checked in validation.
    pub ssh_agent: Option<Spanned<toml::Value>>,
    pub git_config: Option<Spanned<bool>>,
    pub audio: Option<Spanned<bool>>,
    /// A list of bus names: checked in validation.
    pub dbus: Option<Spanned<Vec<String>>>,
    pub nix: Option<Spanned<bool>>,
    pub gpu: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub host: Spanned<i64>,
    pub sandbox: Spanned<i64>,
    pub host_address: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRalph {
    pub agent: Option<Spanned<Vec<String>>>,
    pub print_args: Option<Spanned<Vec<String>>>,
    pub check: Option<Spanned<Vec<String>>>,
    pub require_clean: Option<Spanned<bool>>,
    pub tracker: Option<Spanned<String>>,
}

/// One `[mcp.NAME]` table: its keys depend on the server.
pub type RawMcpServer = BTreeMap<String, Spanned<toml::Value>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub extends: Option<Spanned<String>>,
    pub packages: Option<Spanned<Vec<Spanned<String>>>>,
    pub env: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub cpus: Option<Spanned<i64>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub pids: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMount {
    pub source: Spanned<String>,
    pub dest: Spanned<String>,
    pub mode: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub command: Option<Spanned<Vec<String>>>,
    pub home: Option<Spanned<String>>,
    pub forward_api_key: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkspace {
    /// Paths added to the built-in protected list.
    pub protect: Option<Spanned<Vec<String>>>,
    /// Built-in protected paths made writable (a widening: needs trust in a project file).
    pub unprotect: Option<Spanned<Vec<String>>>,
}
