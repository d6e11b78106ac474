//! The wrapix sandbox core: roots, backends, launch plans, the executor, seccomp, doctor.
//!
//! `Spec` (from `wrapix-spec`) → [`prepare::prepare`] → [`prepare::Prepared`] →
//! [`backend::Backend::plan`] → [`plan::LaunchPlan`] → [`exec::execute`].

pub mod agent;
pub mod backend;
pub mod deploy_key;
pub mod dns;
pub mod doctor;
pub mod egress;
pub mod error;
pub mod exec;
pub mod forward;
pub mod gitid;
pub mod init;
pub mod network;
pub mod plan;
pub mod prepare;
pub mod pty;
pub mod root;
pub mod seccomp;
pub mod tripwire;
pub mod vm;

pub use backend::Backend;
pub use error::SandboxError;
pub use plan::LaunchPlan;
pub use prepare::{prepare, HostFacts, Prepared, RunMode};
