//! wrapix images: profiles ([`profile`]), package specs ([`package`]), the content-addressed
//! cache under `$XDG_DATA_HOME/wrapix/images/<hash>/` ([`store`]), the mmdebstrap builder
//! ([`build`]) that streams the root filesystem into the cache while recording a manifest
//! ([`manifest`]), and the OCI archive export ([`oci`]).

pub mod build;
pub mod error;
pub mod manifest;
pub mod oci;
pub mod package;
pub mod profile;
pub mod progress;
pub mod store;

pub use error::ImageError;
pub use package::Package;
pub use profile::{ImageSpec, ProfileDef};
pub use store::{Image, Store};
