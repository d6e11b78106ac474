//! Command-line arguments.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "wrapix",
    version,
    about = "Run an AI coding agent in a sandbox: the project at /workspace, nothing else of the host",
    long_about = "Run an AI coding agent in a sandbox: the project at /workspace, nothing else of the host.\n\n\
                  With no subcommand, `wrapix` starts the agent (Claude Code by default) in the current folder.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start the agent, or run COMMAND (after `--`) in the sandbox.
    Run {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Print the launch plan (program and arguments) instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// The command to run instead of the agent.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Open an interactive shell in the sandbox.
    Shell {
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Check this host: user namespaces, bubblewrap, pasta, /dev/net/tun, …
    Doctor,
    /// Manage deploy keys (~/.ssh/deploy_keys/NAME) for `git push` from the sandbox.
    DeployKey {
        #[command(subcommand)]
        command: DeployKeyCmd,
    },
    /// (internal) The sandbox's init process.
    #[command(name = "__init", hide = true)]
    Init {
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective, validated spec and where each value came from.
    Show {
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeployKeyCmd {
    /// Generate an ed25519 key ~/.ssh/deploy_keys/NAME and print the public key.
    Create { name: String },
}

/// Options shared by everything that starts (or describes) a sandbox.
#[derive(Debug, Args, Default, Clone)]
pub struct SandboxArgs {
    /// The project folder (mounted at /workspace). Default: the current folder.
    #[arg(short = 'C', long = "project", value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Backend: auto | bwrap | none (none = NO sandbox).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Profile: host.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Network: open | none.
    #[arg(long, value_name = "POLICY")]
    pub network: Option<String>,
    /// Set an environment variable in the sandbox (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Mount a host path (repeatable); the mode defaults to ro.
    #[arg(long = "mount", value_name = "SRC:DEST[:ro|rw]")]
    pub mounts: Vec<String>,
    /// Use ~/.ssh/deploy_keys/NAME for git over SSH.
    #[arg(long = "deploy-key", value_name = "NAME")]
    pub deploy_key: Option<String>,
}
