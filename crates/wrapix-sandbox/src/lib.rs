//! The wrapix sandbox core: roots, backends, launch plans, the executor, seccomp, doctor.
//!
//! `Spec` (from `wrapix-spec`) → [`prepare::prepare`] → [`prepare::Prepared`] →
//! [`backend::Backend::plan`] → [`plan::LaunchPlan`] → [`exec::execute`].

//!
//! On macOS only the portable part is compiled: preparing a run, the apple backend's planning
//! and its Mac layer, the roots, the tripwire. The Linux sandboxes (bubblewrap, podman, nspawn,
//! qemu), the seccomp filters, the sandbox's init, the egress proxy and the executor are
//! `cfg(target_os = "linux")` (docs/macos.md, "What is compiled for macOS").

pub mod agent;
pub mod backend;
pub mod deploy_key;
pub mod dns;
pub mod doctor;
pub mod egress;
pub mod error;
#[cfg(target_os = "linux")]
pub mod exec;
#[cfg(not(target_os = "linux"))]
#[path = "exec_posix.rs"]
pub mod exec;
mod exec_api;
/// The macOS executor, built and unit-tested on Linux too.
#[cfg(all(test, target_os = "linux"))]
mod exec_posix;
pub mod forward;
pub mod gitid;
#[cfg(target_os = "linux")]
pub mod init;
#[cfg(target_os = "linux")]
pub mod network;
pub mod plan;
pub mod prepare;
pub mod pty;
pub mod root;
#[cfg(target_os = "linux")]
pub mod seccomp;
pub mod tripwire;
#[cfg(target_os = "linux")]
pub mod vm;

pub use backend::Backend;
pub use error::SandboxError;
pub use plan::LaunchPlan;
pub use prepare::{prepare, HostFacts, Prepared, RunMode};
