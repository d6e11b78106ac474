//! Integration tests: the real `wrapix` binary, run as an unprivileged user, against real
//! bubblewrap sandboxes. See `suite/harness.rs` for how tests are run and skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// They start Linux sandboxes: compiled and run on Linux only (docs/macos.md).
#![cfg(target_os = "linux")]

mod suite;
