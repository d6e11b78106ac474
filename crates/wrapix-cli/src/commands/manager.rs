//! `wrapix manager`: the daemon of [`wrapix_manager`], with the launch path as its
//! [`wrapix_manager::Launcher`]: a session's window runs `wrapix run` (config → Spec → prepare
//! → plan → execute) in the project folder, with the session's choices as flags and the
//! private display (`--forward display=xvfb`); the request is checked first by loading and
//! validating the same configs (with the project's trust) that run will.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wrapix_manager::daemon::Options;
use wrapix_manager::model::{Network, NewSession};

use super::Failure;
use crate::cli::{ManagerArgs, SandboxArgs};
use crate::context::{host_env, host_user, load_spec, state_root};

/// The launch path, for the manager.
pub struct Launch {
    /// The `wrapix` binary the windows run.
    pub wrapix: PathBuf,
}

/// The flags of `wrapix run` for a session's choices.
fn sandbox_args(s: &NewSession) -> SandboxArgs {
    SandboxArgs {
        project: Some(s.project_dir.clone()),
        backend: (s.backend != "auto").then(|| s.backend.clone()),
        profile: s.profile.clone(),
        network: s.network.map(|n| n.as_str().to_owned()),
        forward: vec!["display=xvfb".to_owned()],
        ..SandboxArgs::default()
    }
}

impl wrapix_manager::Launcher for Launch {
    fn check(&self, s: &NewSession) -> Result<(), String> {
        let spec = load_spec(&sandbox_args(s), &host_env()).map_err(|e| e.message)?;
        if matches!(spec.backend, wrapix_spec::BackendKind::None) {
            return Err(
                "backend \"none\" runs without a sandbox, which the manager never does: choose a sandbox backend"
                    .into(),
            );
        }
        Ok(())
    }

    fn argv(&self, s: &NewSession) -> Vec<OsString> {
        let a = sandbox_args(s);
        let mut v: Vec<OsString> = vec![self.wrapix.clone().into(), "run".into()];
        v.push("--project".into());
        v.push(s.project_dir.clone().into());
        if let Some(b) = a.backend {
            v.extend(["--backend".into(), b.into()]);
        }
        if let Some(p) = a.profile {
            v.extend(["--profile".into(), p.into()]);
        }
        if let Some(n) = s.network {
            let n = match n {
                Network::Open => "open",
                Network::None => "none",
            };
            v.extend(["--network".into(), n.into()]);
        }
        v.extend(["--forward".into(), "display=xvfb".into()]);
        v
    }

    fn transcripts(&self, project: &Path) -> Option<PathBuf> {
        let env = host_env();
        let root = state_root(&host_user(&env), &env);
        Some(wrapix_spec::state::project_dir(&root, project).join("claude/projects"))
    }
}

/// The state folder: --state-dir, else `$XDG_STATE_HOME/wrapix/manager`.
pub fn state_dir(arg: Option<PathBuf>) -> PathBuf {
    let env = host_env();
    arg.unwrap_or_else(|| state_root(&host_user(&env), &env).join("manager"))
}

/// The `wrapix` binary beside this one (the daemon runs as `wrapix-serve`).
fn wrapix_exe() -> Result<PathBuf, Failure> {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map(|e| match e.with_file_name("wrapix") {
            w if w.is_file() => w,
            _ => e,
        })
        .map_err(|e| Failure::usage(format!("cannot find the wrapix binary: {e}")).caused_by(e))
}

pub fn manager(a: ManagerArgs) -> Result<i32, Failure> {
    let wrapix = wrapix_exe()?;
    if a.print_systemd_unit {
        let mut args = Vec::new();
        if let Some(l) = a.listen {
            args.extend(["--listen".to_owned(), l.to_string()]);
        }
        if let Some(d) = &a.state_dir {
            args.extend(["--state-dir".to_owned(), d.display().to_string()]);
        }
        for r in &a.allow_roots {
            args.extend(["--allow-root".to_owned(), r.display().to_string()]);
        }
        print!("{}", wrapix_manager::daemon::systemd_unit(&wrapix, &args));
        return Ok(0);
    }
    let env = host_env();
    let home = host_user(&env).home;
    let roots = if a.allow_roots.is_empty() {
        vec![home]
    } else {
        a.allow_roots.clone()
    };
    for r in &roots {
        if !r.is_absolute() {
            return Err(Failure::usage(format!(
                "--allow-root {}: give an absolute path",
                r.display()
            )));
        }
    }
    let opts = Options {
        listen: a.listen,
        state_dir: state_dir(a.state_dir),
        roots,
        static_dir: a.static_dir,
    };
    let launcher = Arc::new(Launch { wrapix });
    if a.stop_all {
        let n = wrapix_manager::daemon::stop_all(&opts, launcher).map_err(Failure::failed)?;
        eprintln!("wrapix manager: stopped {n} session(s)");
        return Ok(0);
    }
    wrapix_manager::daemon::run(opts, launcher).map_err(Failure::failed)?;
    Ok(0)
}
