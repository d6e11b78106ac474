//! The one launch path: config → [`wrapix_spec::Spec`] → prepare → plan → execute, as library
//! calls. `wrapix run`, `wrapix shell` and every agent run of ralph start sandboxes here.

use wrapix_sandbox::exec::{ExecOptions, Outcome};
use wrapix_sandbox::{HostFacts, RunMode, SandboxError};

use super::{beside, images, run_unconfined, tripwire, Failure, SERVE_BIN};
use crate::cli::SandboxArgs;
use crate::context::{host_env, load_spec};

/// One sandbox run.
pub struct Launch<'a> {
    pub args: &'a SandboxArgs,
    pub mode: RunMode,
    /// Print the launch plan instead of running it.
    pub dry_run: bool,
    /// Whether the sandbox gets a terminal; `None`: whether wrapix runs on one.
    pub interactive: Option<bool>,
    /// Replaces `[agent] command` (ralph's `[ralph] agent`): the agent's wiring follows it.
    pub agent: Option<Vec<String>>,
    /// `backend = "none"` runs without a sandbox (with a warning) instead of failing.
    pub allow_unconfined: bool,
    pub exec: ExecOptions,
}

impl<'a> Launch<'a> {
    /// `wrapix run`'s defaults.
    pub fn new(args: &'a SandboxArgs, mode: RunMode) -> Self {
        Launch {
            args,
            mode,
            dry_run: false,
            interactive: None,
            agent: None,
            allow_unconfined: true,
            exec: ExecOptions::default(),
        }
    }
}

/// Starts the sandbox and waits for it. A sandbox that cannot start is an error (exit 125),
/// never a run on the host.
pub fn launch(l: Launch<'_>) -> Result<Outcome, Failure> {
    let Launch {
        args,
        mode,
        dry_run,
        interactive,
        agent,
        allow_unconfined,
        exec,
    } = l;
    let env = host_env();
    let mut spec = load_spec(args, &env)?;
    if let Some(agent) = agent {
        spec.agent.command = agent;
    }
    let at = wrapix_sandbox::backend::Locate {
        env: &env,
        uid: spec.user.uid,
        project: &spec.project,
        resources: spec.resources,
    };
    let Some(backend) = wrapix_sandbox::backend::select(&spec.backend, &at) else {
        if !allow_unconfined {
            return Err(Failure::usage(
                "backend \"none\" runs without a sandbox, which this command never does: choose a sandbox backend (--backend auto)",
            ));
        }
        return run_unconfined(&spec, &mode).map(|code| Outcome {
            code,
            stopped: None,
        });
    };
    // Notifications: register this terminal for focus checks, create the folder the host
    // daemon publishes its socket in (a dry run only names it).
    let notify = (!dry_run).then(|| wrapix_notify::app::launch(&env, &spec.project));
    let self_exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Failure::from(SandboxError::io("find the wrapix binary", e)))?;
    // [forward]: the host checked and the helpers (a private Xvfb, ssh-agent) started; they
    // stop when `_helpers` is dropped, after the run.
    let (_helpers, forwarded) = wrapix_sandbox::forward::start(&spec, &env, dry_run)?;
    let facts = HostFacts {
        forwarded,
        env: env.clone(),
        interactive: interactive.unwrap_or_else(wrapix_sandbox::pty::interactive),
        self_exe: self_exe.clone(),
        init_exe: beside(&self_exe, "wrapix-init"),
        serve_exe: beside(&self_exe, SERVE_BIN),
        dry_run,
        notify_dir: match &notify {
            Some(n) => n.dir.clone(),
            None => Some(wrapix_notify::paths::published_dir(
                &wrapix_notify::paths::host_socket(&env),
            )),
        },
        session_id: notify
            .as_ref()
            .and_then(|n| n.registration.as_ref())
            .map(|r| r.session_id().to_owned()),
    };
    if !dry_run {
        images::ensure_for_run(&spec, &env)?;
    }
    let prepared = wrapix_sandbox::prepare(&spec, &mode, &facts)?;
    let plan = wrapix_sandbox::backend::plan(backend.as_ref(), &prepared)?;
    if dry_run {
        print!("{}", plan.render());
        return Ok(Outcome {
            code: 0,
            stopped: None,
        });
    }
    for n in &prepared.notices {
        // Notices name files the agent may have named (a migrated folder's entries).
        eprintln!("wrapix: {}", wrapix_spec::error::escape_controls(n));
    }
    let _staged = wrapix_sandbox::backend::Staged::new(backend.as_ref(), &prepared)?;
    let armed = tripwire::arm(&spec, &env)?;
    let outcome = wrapix_sandbox::exec::execute_with(&plan, exec);
    let after = wrapix_sandbox::agent::after_exit(&prepared.after_exit);
    // Whatever happened to the run, the project is checked before wrapix returns.
    let checked = armed.check(args.keep_git_changes);
    let outcome = outcome?;
    after?;
    checked?;
    Ok(outcome)
}
