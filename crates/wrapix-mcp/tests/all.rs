//! Integration tests: the real server (the `tmux-debug-mcp` binary, and `wrapix mcp
//! tmux-debug`), real tmux, driven by rmcp's client, raw JSON-RPC and the official Python SDK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod suite;
