//! `tmux-debug-mcp`: the `tmux-debug` MCP server alone (the same as `wrapix mcp tmux-debug`).
#![deny(clippy::print_stdout)]

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "tmux-debug-mcp",
    version,
    about = "MCP server: tmux panes for agents, over stdio"
)]
struct Cli {
    #[command(flatten)]
    args: wrapix_mcp::TmuxDebugArgs,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WRAPIX_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .without_time()
        .init();
    if let Err(e) = wrapix_mcp::run_tmux_debug(&cli.args) {
        eprintln!("tmux-debug-mcp: error: {e}");
        std::process::exit(1);
    }
}
