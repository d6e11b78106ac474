//! wrapix's MCP servers, spoken over stdio with [rmcp].
//!
//! `tmux-debug` ([`server::TmuxDebug`]) gives an agent tmux panes inside the sandbox: run a
//! server in one, send requests from another, read both. One private tmux server per MCP
//! process (its own socket in a private folder, so the user's tmux is never touched), stopped
//! when the client disconnects or the process is signalled.
//!
//! Stdout carries only MCP frames: nothing here prints (`clippy::print_stdout` is denied);
//! logs go to stderr through `tracing`.
#![deny(clippy::print_stdout)]

pub mod audit;
pub mod error;
pub mod keys;
pub mod server;
pub mod text;
pub mod tmux;

use std::path::PathBuf;

use rmcp::ServiceExt;
use tokio::signal::unix::{signal, SignalKind};

pub use error::{McpError, TmuxError};
pub use server::TmuxDebug;

/// Options of `wrapix mcp tmux-debug` (`[mcp.tmux-debug]` in wrapix.toml, passed as env).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TmuxDebugArgs {
    /// Append one JSON line per tool call to this file.
    #[arg(long, value_name = "PATH", env = "TMUX_DEBUG_AUDIT")]
    pub audit: Option<PathBuf>,
    /// Also write every capture to DIR/<pane>-capture-NNN.txt.
    #[arg(long = "audit-full", value_name = "DIR", env = "TMUX_DEBUG_AUDIT_FULL")]
    pub audit_full: Option<PathBuf>,
}

/// Runs the `tmux-debug` server on stdin/stdout until the client disconnects or a signal
/// (SIGTERM, SIGINT, SIGHUP) arrives; then stops tmux and every pane.
pub fn run_tmux_debug(args: &TmuxDebugArgs) -> Result<(), McpError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| McpError::Io {
            what: "start the async runtime".into(),
            source,
        })?;
    let result = rt.block_on(serve_tmux_debug(args));
    // A blocked read of stdin must not keep the process alive.
    rt.shutdown_background();
    result
}

async fn serve_tmux_debug(args: &TmuxDebugArgs) -> Result<(), McpError> {
    let audit = audit::Audit::open(args.audit.clone(), args.audit_full.clone())?;
    let cwd = std::env::current_dir().map_err(|source| McpError::Io {
        what: "find the current folder".into(),
        source,
    })?;
    let tmux = tmux::Tmux::new(&cwd)?;
    let handler = TmuxDebug::new(tmux, audit);
    let mut signals = Vec::new();
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
    ] {
        signals.push(signal(kind).map_err(|source| McpError::Io {
            what: "install a signal handler".into(),
            source,
        })?);
    }
    let [term, int, hup] = &mut signals[..] else {
        return Err(McpError::Protocol("signal setup".into()));
    };
    tracing::debug!(tmux_dir = %handler.tmux_dir().display(), "tmux-debug: serving on stdio");
    let result = tokio::select! {
        r = serve_until_closed(handler.clone()) => r,
        _ = term.recv() => { tracing::info!("SIGTERM: stopping"); Ok(()) }
        _ = int.recv() => { tracing::info!("SIGINT: stopping"); Ok(()) }
        _ = hup.recv() => { tracing::info!("SIGHUP: stopping"); Ok(()) }
    };
    handler.shutdown();
    result
}

async fn serve_until_closed(handler: TmuxDebug) -> Result<(), McpError> {
    let service = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Protocol(e.to_string()))?;
    let reason = service
        .waiting()
        .await
        .map_err(|e| McpError::Protocol(e.to_string()))?;
    tracing::debug!(?reason, "client disconnected");
    Ok(())
}
