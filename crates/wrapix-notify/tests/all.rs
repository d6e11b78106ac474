//! Integration tests with the real pieces: a D-Bus session bus and a notification server on it,
//! Xvfb, tmux, the `wrapix` binary and bubblewrap sandboxes, another user. A test that cannot
//! run on this host prints `SKIP: <reason>` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
