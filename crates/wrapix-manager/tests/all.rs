//! wrapix-manager's integration tests: the API through the router (no server).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod suite;
