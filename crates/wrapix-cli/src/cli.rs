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

// `defer`: a subcommand's arguments are built only when it is the one given (the whole tree
// was ~0.3 ms of every launch, bench/launch.sh); `--help` lists the names and summaries,
// which are built at once.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
    /// Trust this project's wrapix.toml: show what it asks for beyond the default sandbox and
    /// approve that exact content (any change needs trust again).
    Trust(TrustArgs),
    /// Check this host: start a throw-away sandbox for each backend and network mode, and say
    /// what is missing and how to fix it. Exit status 0 only when the default (bubblewrap,
    /// network open) really starts.
    Doctor {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Save the private display (display = "xvfb") of a running sandbox as PNG.
    Screenshot {
        /// The PNG to write. Default: ID.png in the current folder.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The sandbox: its id (`wrapix ps`), a prefix of it, or its project folder's name or
        /// path. Default: the only running sandbox with a private display.
        #[arg(value_name = "SANDBOX")]
        sandbox: Option<String>,
    },
    /// List the running sandboxes that forward something (a display, an agent, ports).
    Ps,
    /// The egress proxy of network allowlists: its decisions.
    Net {
        #[command(subcommand)]
        command: NetCmd,
    },
    /// Manage deploy keys (~/.ssh/deploy_keys/NAME) for `git push` from the sandbox.
    DeployKey {
        #[command(subcommand)]
        command: DeployKeyCmd,
    },
    /// MCP servers (stdio), registered in the agent's settings by `[mcp.NAME]` in wrapix.toml.
    Mcp {
        #[command(subcommand)]
        command: McpCmd,
    },
    /// Send a desktop notification to the host's `wrapix notifyd` (in a sandbox; also `wrapix-notify`).
    Notify(NotifyArgs),
    /// Show notifications from sandboxes on this desktop (a foreground daemon).
    Notifyd(NotifydArgs),
    /// Build, list, remove and export the images profiles run from.
    Image {
        #[command(subcommand)]
        command: ImageCmd,
    },
    /// List profiles, or show the resolved package set of one.
    Profile {
        #[command(subcommand)]
        command: ProfileCmd,
    },
    /// The spec-driven agent loop (also installed as `ralph`): every agent run in the sandbox.
    Ralph {
        #[command(subcommand)]
        command: crate::ralph::RalphCmd,
    },
    /// The remote sandbox manager (a daemon): agent sessions in sandboxes, each with a private
    /// display and a tmux session, behind a JSON API and a dashboard (docs/manager.md).
    Manager(ManagerArgs),
    /// Drive a `wrapix manager` on another machine over SSH (docs/manager.md).
    Remote(crate::remote::RemoteArgs),
    /// (internal) The remote side of `wrapix remote`: pipe stdin and stdout to the manager's socket.
    #[command(name = "__manager-proxy", hide = true)]
    ManagerProxy {
        #[arg(long, value_name = "DIR", env = "MANAGER_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Print the manager's TCP address and token as JSON instead (for `wrapix remote ui`).
        #[arg(long)]
        info: bool,
    },
    /// (internal) The remote side of `wrapix remote attach`: attach to a session's tmux.
    #[command(name = "__manager-attach", hide = true)]
    ManagerAttach {
        #[arg(long, value_name = "DIR", env = "MANAGER_STATE_DIR")]
        state_dir: Option<PathBuf>,
        id: String,
    },
    /// The Linux builder for Nix remote builds: a container with sshd and a Nix daemon
    /// (docs/builder.md).
    Builder {
        #[command(subcommand)]
        command: BuilderCmd,
    },
    /// (internal) Report this process's PID as `{"child-pid": N}` on FD, then exec COMMAND.
    #[command(name = "__exec-info", hide = true)]
    ExecInfo {
        fd: i32,
        #[arg(last = true, required = true)]
        command: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetCmd {
    /// Print the egress decisions (one JSON line each: time, sandbox, host, port, verdict,
    /// rule, kind, bytes_up, bytes_down) from wrapix's state folder.
    Log {
        /// Keep printing new decisions as they are made.
        #[arg(short, long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The project folder. Default: the current folder.
    #[arg(short = 'C', long = "project", value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Withdraw the trust given to this project's wrapix.toml.
    #[arg(long, conflicts_with = "list")]
    pub revoke: bool,
    /// List every trusted project and when it was trusted.
    #[arg(long)]
    pub list: bool,
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
pub enum McpCmd {
    /// tmux panes for the agent: run a server in one, send requests from another, read both.
    TmuxDebug(wrapix_mcp::TmuxDebugArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build the image of the configured profile (or --profile); an existing image is
    /// verified file by file and rebuilt if anything changed.
    Build {
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// List cached images.
    List,
    /// Remove images by hash (or hash prefix).
    Rm {
        #[arg(required = true)]
        hashes: Vec<String>,
    },
    /// Remove every image except the one the current config uses, and build leftovers.
    Gc {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// Remove the current config's image too.
        #[arg(long)]
        all: bool,
    },
    /// Write the configured profile's image as an OCI archive (for `podman load`, Apple's `container`).
    Export {
        #[command(flatten)]
        sandbox: SandboxArgs,
        /// The archive to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// Built-in and configured profiles.
    List {
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// The resolved package set and env of NAME.
    Show {
        name: String,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Start the builder (building its image on first use): sshd on 127.0.0.1:PORT only.
    Start {
        /// The host port sshd is published on (127.0.0.1 only). Default: the last one, else 2222.
        #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1024..))]
        port: Option<u16>,
    },
    /// Stop the builder; its store and keys stay.
    Stop,
    /// Whether it runs, its port, store size and key fingerprints.
    Status {
        /// Print the result as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Log in to the builder, or run COMMAND (after `--`) there.
    Ssh {
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Print the nix.conf `builders` line, the /etc/nix/machines entry, the nix-darwin
    /// `nix.buildMachines` snippet and the SSH Host block.
    Config,
    /// Add the Host block to ~/.ssh/config (a backup beside it) and print what needs sudo.
    Setup,
}

#[derive(Debug, Subcommand)]
pub enum DeployKeyCmd {
    /// Generate an ed25519 key ~/.ssh/deploy_keys/NAME and print the public key.
    Create { name: String },
}

// Options shared by everything that starts (or describes) a sandbox. (Not a doc comment: clap
// would take it for the `about` of each deferred subcommand that flattens these.)
#[derive(Debug, Args, Default, Clone)]
pub struct SandboxArgs {
    /// The project folder (mounted at /workspace). Default: the current folder.
    #[arg(short = 'C', long = "project", value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Backend: auto | bwrap | podman | nspawn | qemu | none (none = NO sandbox).
    #[arg(long, value_name = "NAME", env = "WRAPIX_BACKEND")]
    pub backend: Option<String>,
    /// With --backend qemu: refuse to run when KVM is not usable, instead of emulating the
    /// VM with TCG (slow). Also `require_kvm = true` in a config file.
    #[arg(long)]
    pub require_kvm: bool,
    /// Profile: host | base | rust | python | browser | one of [profiles.NAME].
    #[arg(long, value_name = "NAME", env = "WRAPIX_PROFILE")]
    pub profile: Option<String>,
    /// Network: open | none (an allowlist comes from `network = { allow = [...] }` or
    /// --allow-host).
    #[arg(long, value_name = "POLICY")]
    pub network: Option<String>,
    /// Allow this host through wrapix's egress proxy (repeatable): `github.com`,
    /// `*.example.org` (subdomains only), an IP address, or `@SET`. Adds to the config's
    /// allowlist, or makes one: everything else is refused.
    #[arg(long = "allow-host", value_name = "DOMAIN")]
    pub allow_hosts: Vec<String>,
    /// Set an environment variable in the sandbox (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Mount a host path (repeatable); the mode defaults to ro.
    #[arg(long = "mount", value_name = "SRC:DEST[:ro|rw]")]
    pub mounts: Vec<String>,
    /// Use ~/.ssh/deploy_keys/NAME for git over SSH.
    #[arg(long = "deploy-key", value_name = "NAME")]
    pub deploy_key: Option<String>,
    /// Forward something of the host (repeatable; docs/desktop.md): display=x11|wayland|xvfb
    /// (or just x11, wayland, xvfb), ssh_agent, ssh_agent=KEY[,KEY…], git_config, audio,
    /// dbus=NAME[,NAME…], nix, gpu.
    #[arg(long = "forward", value_name = "NAME[=VALUE]")]
    pub forward: Vec<String>,
    /// Publish a sandbox port on this host's loopback (repeatable): HOST:SANDBOX, or
    /// ADDRESS:HOST:SANDBOX for another address of the host. Needs --network open.
    #[arg(short = 'p', long = "publish", value_name = "[ADDR:]HOST:SANDBOX")]
    pub ports: Vec<String>,
    /// Keep the git files the tripwire would quarantine after the run (new `commondir`,
    /// nested repositories that run code, `.git` files): for when you meant them.
    #[arg(long)]
    pub keep_git_changes: bool,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// The title (default: "wrapix · PROJECT").
    #[arg(long, value_name = "T")]
    pub title: Option<String>,
    /// A sound name (macOS: Ping, Glass, …; Linux: a freedesktop sound name).
    #[arg(long, value_name = "S")]
    pub sound: Option<String>,
    /// Build the message from Claude Code's hook input on stdin (Stop, Notification).
    #[arg(long, value_name = "EVENT")]
    pub hook: Option<String>,
    /// The message.
    #[arg(value_name = "MESSAGE", required_unless_present = "hook")]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct NotifydArgs {
    /// Print a systemd user unit that runs this daemon, and exit.
    #[arg(long, conflicts_with = "print_launchd_plist")]
    pub print_systemd_unit: bool,
    /// Print a launchd agent (macOS) that runs this daemon, and exit.
    #[arg(long)]
    pub print_launchd_plist: bool,
    /// Also listen on TCP at ADDR[:PORT] (port 5959 by default): the host side of a VM's
    /// network (Apple container: 192.168.64.1), never all interfaces; only peers on that
    /// address's /24 (IPv6: /64) are accepted.
    #[arg(long, visible_alias = "listen-tcp", value_name = "ADDR[:PORT]")]
    pub tcp: Option<String>,
    /// The Unix socket (default: $XDG_RUNTIME_DIR/wrapix/notify.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Run PROG ARGS... for each notification instead of the desktop's notifications (the
    /// message on stdin; WRAPIX_NOTIFY_TITLE, WRAPIX_NOTIFY_SOUND, WRAPIX_SESSION_ID set).
    /// Must come last.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "PROG ARGS")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ManagerArgs {
    /// Also listen on TCP at ADDR (e.g. 127.0.0.1:3000); every TCP request needs the token
    /// in DIR/token. Default: the Unix socket DIR/manager.sock only.
    #[arg(long, value_name = "ADDR", env = "MANAGER_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// The state folder (database, token, socket). Default: $XDG_STATE_HOME/wrapix/manager.
    #[arg(long, value_name = "DIR", env = "MANAGER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Project folders must be under one of these (repeatable). Default: your home.
    #[arg(long = "allow-root", value_name = "DIR")]
    pub allow_roots: Vec<PathBuf>,
    /// Serve the dashboard's assets from this folder instead of the binary.
    #[arg(long, value_name = "DIR", env = "MANAGER_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Print a hardened systemd user unit that runs the manager with these options, and exit.
    #[arg(long, conflicts_with = "stop_all")]
    pub print_systemd_unit: bool,
    /// End every session of this state folder (the daemon's SIGTERM leaves them running).
    #[arg(long)]
    pub stop_all: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own consistency checks, over every subcommand (deferred ones are built for it).
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Deferred subcommands keep their own summary: a flattened struct's doc comment would
    /// replace it (`run --help` said "Options shared by …" when `SandboxArgs` had one).
    #[test]
    fn every_subcommand_keeps_its_own_summary() {
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(
                !about.is_empty() && !about.starts_with("Options shared"),
                "{}: {about:?}",
                sub.get_name()
            );
        }
        let run = cli
            .find_subcommand("run")
            .map(|c| c.get_about().map(|a| a.to_string()));
        assert_eq!(
            run,
            Some(Some(
                "Start the agent, or run COMMAND (after `--`) in the sandbox".to_string()
            ))
        );
    }

    /// `wrapix run` parses as before with deferred subcommands: the sandbox options, the
    /// command after `--`, and an unknown option as an error naming it.
    #[test]
    fn run_parses_with_deferred_subcommands() {
        let cli = Cli::try_parse_from(["wrapix", "run", "--network", "none", "--", "true", "x"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Cmd::Run {
            command, dry_run, ..
        }) = cli.command
        else {
            panic!("not a run: {:?}", cli.command)
        };
        assert_eq!(command, ["true", "x"]);
        assert!(!dry_run);
        let err = Cli::try_parse_from(["wrapix", "run", "--bogus"]).map(|_| ());
        let err = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--bogus"), "{err}");
    }
}
