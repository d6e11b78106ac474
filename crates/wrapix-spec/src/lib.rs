//! Configuration for wrapix.
//!
//! Data flows one way: config files + command-line flags → [`raw`] (serde, unknown keys rejected)
//! → [`layer`] (user < project < flag, each value remembering where it came from) → [`validate`]
//! → [`Spec`], a type that cannot hold a bad value. Everything downstream takes a [`Spec`].

pub mod egress;
pub mod error;
pub mod forward;
pub mod layer;
pub mod mcp;
pub mod problem;
pub mod ralph;
pub mod raw;
pub mod spec;
pub mod state;
pub mod trust;
pub mod types;
pub mod validate;

pub use egress::{Decision, Egress, Host, HostPattern};
pub use error::{Location, SpecError};
pub use forward::{Display, Forward, Port, SshAgent};
pub use layer::{ConfigFile, Layers, Origin, Overrides};
pub use mcp::McpServer;
pub use problem::Problem;
pub use spec::{
    Agent, AgentHome, BackendKind, BackendName, DeployKey, HostUser, Mount, Network, Profile,
    Resources, Spec,
};
pub use types::{EnvName, MountMode, SandboxPath};
pub use validate::validate;
