//! One function per subcommand; all sandbox starts go through `start`.

use std::fmt::Write as _;

use wrapix_sandbox::{RunMode, SandboxError};
use wrapix_spec::{Spec, SpecError};

use crate::cli::{Cli, Cmd, ConfigCmd, DeployKeyCmd, McpCmd, NetCmd, SandboxArgs};
use crate::context::{host_env, host_user, load_spec};
use crate::{EXIT_NO_SANDBOX, EXIT_USAGE};

mod builder;
mod doctor;
mod images;
pub(crate) mod launch;
mod manager;
mod net;
mod screenshot;
mod tripwire;
mod trust;

/// A boxed error that can cross threads, as [`Failure`] keeps it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with the exit code it maps to: `message` is the line printed, `source` the error
/// it came from (with that error's own sources), kept for the chain.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub source: Option<BoxError>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            source: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(EXIT_USAGE, message)
    }

    /// Something on the host failed (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure::new(1, message)
    }

    /// `error`'s own message, with `error` kept as the source.
    pub fn from_error(code: i32, error: impl Into<BoxError>) -> Self {
        let error = error.into();
        Failure {
            code,
            message: error.to_string(),
            source: Some(error),
        }
    }

    /// Keeps `error` as the source of a failure whose message says it already.
    pub fn caused_by(self, error: impl Into<BoxError>) -> Self {
        Failure {
            source: Some(error.into()),
            ..self
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Self {
        Failure::from_error(EXIT_USAGE, e)
    }
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        let code = match e {
            SandboxError::AgentMissing { .. } => 127,
            _ => EXIT_NO_SANDBOX,
        };
        Failure::from_error(code, e)
    }
}

/// Runs the parsed command line. `SERVE`: see [`crate::main`].
pub fn run<const SERVE: bool>(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        None => start(&cli.sandbox, RunMode::Agent, false),
        Some(Cmd::Run {
            sandbox,
            dry_run,
            command,
        }) => {
            let mode = if command.is_empty() {
                RunMode::Agent
            } else {
                RunMode::Command(command)
            };
            start(&sandbox, mode, dry_run)
        }
        Some(Cmd::Shell { sandbox }) => start(&sandbox, RunMode::Shell, false),
        Some(Cmd::Config {
            command: ConfigCmd::Show { sandbox },
        }) => config_show(&sandbox),
        Some(Cmd::Trust(args)) => trust::trust(&args),
        Some(Cmd::Doctor { json }) => Ok(doctor::doctor(json)),
        Some(Cmd::DeployKey {
            command: DeployKeyCmd::Create { name },
        }) => deploy_key_create(&name),
        Some(Cmd::Mcp { .. } | Cmd::Notifyd(_) | Cmd::Screenshot { .. } | Cmd::Manager(_))
            if !SERVE =>
        {
            Err(exec_serve())
        }
        Some(Cmd::Screenshot { output, sandbox }) => {
            screenshot::screenshot(output.as_deref(), sandbox.as_deref())
        }
        Some(Cmd::Ps) => screenshot::ps(),
        Some(Cmd::Manager(a)) => manager::manager(a),
        Some(Cmd::Remote(a)) => crate::remote::run(a),
        Some(Cmd::ManagerProxy { state_dir, info }) => crate::remote::proxy(state_dir, info),
        Some(Cmd::ManagerAttach { state_dir, id }) => crate::remote::attach_here(state_dir, &id),
        Some(Cmd::Net {
            command: NetCmd::Log { follow },
        }) => net::log(follow),
        Some(Cmd::Mcp {
            command: McpCmd::TmuxDebug(args),
        }) => wrapix_mcp::run_tmux_debug(&args)
            .map(|()| 0)
            .map_err(|e| Failure::from_error(1, e)),
        Some(Cmd::Notify(a)) => Ok(notify(a)),
        Some(Cmd::Notifyd(a)) => notifyd(a),
        Some(Cmd::Image { command }) => images::image(command),
        Some(Cmd::Profile { command }) => images::profile(command),
        Some(Cmd::ExecInfo { fd, command }) => images::exec_info(fd, &command),
        Some(Cmd::Ralph { command }) => crate::ralph::run(command),
        Some(Cmd::Builder { command }) => builder::builder(command),
    }
}

/// The binary with the servers linked in, installed beside `wrapix` (see [`crate::main`]).
pub const SERVE_BIN: &str = "wrapix-serve";

/// `wrapix notifyd` and `wrapix mcp …` in `wrapix`: exec [`SERVE_BIN`] beside this binary with
/// the same arguments. Returns only on failure.
fn exec_serve() -> Failure {
    use std::os::unix::process::CommandExt;
    let serve = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(SERVE_BIN),
        Err(e) => {
            return Failure::usage(format!("cannot find the wrapix binary: {e}")).caused_by(e)
        }
    };
    let err = std::process::Command::new(&serve)
        .args(std::env::args_os().skip(1))
        .exec();
    Failure::new(
        127,
        format!(
            "cannot run {}: {err} (it comes with wrapix and belongs beside it: `cargo install --path crates/wrapix-cli` installs both{})",
            serve.display(),
            if std::env::var_os("WRAPIX").is_some() {
                "; inside a sandbox it is there when wrapix.toml enables an [mcp.NAME] server of wrapix's"
            } else {
                ""
            }
        ),
    )
    .caused_by(err)
}

fn start(args: &SandboxArgs, mode: RunMode, dry_run: bool) -> Result<i32, Failure> {
    launch::launch(launch::Launch {
        dry_run,
        ..launch::Launch::new(args, mode)
    })
    .map(|o| o.code)
}

/// `name` (`wrapix-init`, `wrapix-serve`) beside the wrapix binary (installed with it), if it
/// is there and executable.
pub(crate) fn beside(self_exe: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = self_exe.with_file_name(name);
    std::fs::metadata(&path)
        .ok()
        .filter(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .map(|_| path)
}

/// `--backend none`: the only way to run without a sandbox, and it says so loudly.
pub(crate) fn run_unconfined(spec: &Spec, mode: &RunMode) -> Result<i32, Failure> {
    eprintln!("wrapix: WARNING: backend \"none\": running WITHOUT a sandbox, with full access to this machine");
    let argv = match mode {
        RunMode::Command(c) => c.clone(),
        RunMode::Shell => vec![std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into())],
        RunMode::Agent => spec.agent.command.clone(),
    };
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(&spec.project)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .status()
        .map_err(|e| Failure::new(127, format!("cannot run `{}`: {e}", argv[0])).caused_by(e))?;
    Ok(wrapix_sandbox::exec::exit_code(status))
}

fn config_show(args: &SandboxArgs) -> Result<i32, Failure> {
    let env = host_env();
    let spec = load_spec(args, &env)?;
    let mut out = String::new();
    let mut row = |key: &str, value: String, origin: String| {
        let _ = writeln!(out, "{key:<18} {value:<50} ({origin})");
    };
    row(
        "project",
        spec.project.display().to_string(),
        "-C/--project or the current folder".into(),
    );
    row(
        "backend",
        spec.backend.to_string(),
        spec.origin("backend").to_string(),
    );
    row(
        "profile",
        spec.profile.to_string(),
        spec.origin("profile").to_string(),
    );
    row(
        "network",
        spec.network.to_string(),
        spec.origin("network").to_string(),
    );
    let envs: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    row(
        "env",
        if envs.is_empty() {
            "(none)".into()
        } else {
            envs.join(" ")
        },
        spec.origin("env").to_string(),
    );
    if spec.mounts.is_empty() {
        row("mounts", "(none)".into(), spec.origin("mounts").to_string());
    }
    for m in &spec.mounts {
        row(
            "mount",
            format!("{} -> {} ({})", m.source.display(), m.dest, m.mode),
            spec.origin("mounts").to_string(),
        );
    }
    row(
        "deploy_key",
        spec.deploy_key
            .as_ref()
            .map(|k| k.private_key.display().to_string())
            .unwrap_or_else(|| "(none)".into()),
        spec.origin("deploy_key").to_string(),
    );
    row(
        "agent",
        spec.agent.command.join(" "),
        spec.origin("agent.command").to_string(),
    );
    row(
        "agent.home",
        spec.agent.home.to_string(),
        spec.origin("agent.home").to_string(),
    );
    if spec.mcp.is_empty() {
        row("mcp", "(none)".into(), spec.origin("mcp").to_string());
    }
    for (name, server) in &spec.mcp {
        let env: Vec<String> = server
            .env
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        row(
            "mcp",
            format!("{name}: {}{}", server.command.join(" "), env.concat()),
            spec.origin("mcp").to_string(),
        );
    }
    let fw = &spec.forward;
    row(
        "forward.display",
        fw.display
            .map(|d| d.to_string())
            .unwrap_or_else(|| "(off)".into()),
        spec.origin("forward.display").to_string(),
    );
    row(
        "forward.ssh_agent",
        match &fw.ssh_agent {
            None => "(off)".into(),
            Some(wrapix_spec::SshAgent::Host) => "your agent ($SSH_AUTH_SOCK), every key".into(),
            Some(wrapix_spec::SshAgent::Keys(keys)) => format!(
                "a private agent with {}",
                keys.iter()
                    .map(|k| k.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        spec.origin("forward.ssh_agent").to_string(),
    );
    row(
        "forward.git_config",
        if fw.git_config { "on" } else { "(off)" }.into(),
        spec.origin("forward.git_config").to_string(),
    );
    row(
        "forward.audio",
        if fw.audio {
            "on (your PipeWire/PulseAudio socket)"
        } else {
            "(off)"
        }
        .into(),
        spec.origin("forward.audio").to_string(),
    );
    row(
        "forward.dbus",
        if fw.dbus.is_empty() {
            "(off)".into()
        } else {
            format!("through xdg-dbus-proxy, talk to {}", fw.dbus.join(", "))
        },
        spec.origin("forward.dbus").to_string(),
    );
    row(
        "forward.nix",
        if fw.nix {
            "on (/nix/store read-only, the daemon socket)"
        } else {
            "(off)"
        }
        .into(),
        spec.origin("forward.nix").to_string(),
    );
    row(
        "forward.gpu",
        if fw.gpu {
            "on (/dev/dri render nodes, NVIDIA nodes)"
        } else {
            "(off)"
        }
        .into(),
        spec.origin("forward.gpu").to_string(),
    );
    if fw.ports.is_empty() {
        row("ports", "(none)".into(), spec.origin("ports").to_string());
    }
    for p in &fw.ports {
        row("port", p.to_string(), spec.origin("ports").to_string());
    }
    row(
        "protect",
        if spec.protect.is_empty() {
            "(nothing)".into()
        } else {
            spec.protect
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        spec.origin("workspace.protect").to_string(),
    );
    row(
        "user",
        format!(
            "{} ({}:{}) home {}",
            spec.user.name,
            spec.user.uid,
            spec.user.gid,
            spec.user.sandbox_home()
        ),
        "host".into(),
    );
    print!("{out}");
    Ok(0)
}

/// The binaries installed beside `wrapix`: optional (wrapix runs sandboxes without them), but
/// each missing one costs something.
pub(crate) fn install_checks() -> Vec<wrapix_sandbox::backend::Check> {
    use wrapix_sandbox::backend::Check;
    let exe = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    [
        ("wrapix-init", "PID 1 of every sandbox, fast to start"),
        (SERVE_BIN, "wrapix notifyd, wrapix mcp"),
    ]
    .into_iter()
    .map(|(name, what)| {
        let label = format!("{name} ({what})");
        match exe.as_deref().and_then(|e| beside(e, name)) {
            Some(p) => Check::pass(label, p.display().to_string()),
            None => Check::fail(
                label,
                "not installed beside wrapix",
                "install wrapix, wrapix-init and wrapix-serve together: `cargo install --path crates/wrapix-cli`, or copy all three from target/release",
            )
            .optional(),
        }
    })
    .collect()
}

pub(crate) fn print_checks(checks: &[wrapix_sandbox::backend::Check]) {
    for c in checks {
        let mark = match (c.ok, c.required) {
            (true, _) => "ok  ",
            (false, true) => "FAIL",
            (false, false) => "warn",
        };
        println!("  [{mark}] {:<36} {}", c.name, c.detail);
        if let Some(fix) = c.fix.as_ref().filter(|_| !c.ok) {
            println!("         fix: {fix}");
        }
    }
}

fn deploy_key_create(name: &str) -> Result<i32, Failure> {
    let env = host_env();
    let user = host_user(&env);
    let key = wrapix_sandbox::deploy_key::create(name, &user.home)
        .map_err(|e| Failure::from_error(EXIT_USAGE, e))?;
    eprintln!("wrapix: created {}", key.private_key.display());
    eprintln!("wrapix: add this public key to the repository's deploy keys (with write access for git push):");
    print!("{}", key.public_text);
    eprintln!("wrapix: then set deploy_key = \"{name}\" in wrapix.toml");
    Ok(0)
}

fn notify(a: crate::cli::NotifyArgs) -> i32 {
    let args = wrapix_notify::client::NotifyArgs {
        title: a.title,
        sound: a.sound,
        hook: a.hook,
        message: a.message,
    };
    wrapix_notify::client::run(&args, &host_env())
}

fn notifyd(a: crate::cli::NotifydArgs) -> Result<i32, Failure> {
    let opts = wrapix_notify::app::NotifydOptions {
        print_systemd_unit: a.print_systemd_unit,
        print_launchd_plist: a.print_launchd_plist,
        tcp: a.tcp,
        socket: a.socket,
        command: a.command,
    };
    // `wrapix notifyd` (not this wrapix-serve) in the service files it prints.
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map(|e| match e.with_file_name("wrapix") {
            wrapix if wrapix.is_file() => wrapix,
            _ => e,
        })
        .map_err(|e| Failure::usage(format!("cannot find the wrapix binary: {e}")).caused_by(e))?;
    wrapix_notify::app::notifyd(&opts, &exe, &host_env())
        .map(|()| 0)
        .map_err(|e| Failure::from_error(1, e))
}
