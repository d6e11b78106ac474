//! From flags and the host to a validated spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wrapix_spec::layer::{ConfigFile, FileKind, Layers, Overrides};
use wrapix_spec::validate::HostContext;
use wrapix_spec::{HostUser, Location, Spec, SpecError};

use crate::cli::SandboxArgs;
use crate::commands::Failure;

pub fn host_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The host user, with a login name safe to write into passwd and paths.
pub fn host_user(env: &BTreeMap<String, String>) -> HostUser {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let pw = nix::unistd::User::from_uid(uid).ok().flatten();
    let name = pw
        .as_ref()
        .map(|u| u.name.clone())
        .filter(|n| {
            let mut c = n.chars();
            matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f == '_')
                && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
                && n.len() <= 32
        })
        .unwrap_or_else(|| "wrapix".to_owned());
    let home = env
        .get("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(|| pw.map(|u| u.dir))
        .unwrap_or_else(|| PathBuf::from("/"));
    HostUser {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        name,
        home,
    }
}

/// The user-level config: `$WRAPIX_USER_CONFIG` when set to an absolute path (the Nix
/// `mkSandbox` wrapper points it at the `wrapix.toml` it generated), else
/// `$XDG_CONFIG_HOME/wrapix/config.toml`.
pub fn user_config_path(user: &HostUser, env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(p) = env
        .get("WRAPIX_USER_CONFIG")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return p;
    }
    env.get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| user.home.join(".config"))
        .join("wrapix/config.toml")
}

/// Resolves the project folder: must exist and be a folder.
pub fn project_dir(arg: Option<&Path>) -> Result<PathBuf, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("cannot read the current folder: {e}")).caused_by(e))?;
    let raw = arg.map(|p| cwd.join(p)).unwrap_or(cwd);
    let bad = |msg: String| {
        Failure::from(SpecError::invalid(
            Location::Flag("-C/--project".into()),
            "project",
            msg,
            "pass an existing folder with -C DIR, or cd into the project",
        ))
    };
    match std::fs::canonicalize(&raw) {
        Ok(p) if p == Path::new("/") => Err(bad("the project folder is / (the whole host)".into())),
        Ok(p) if p.is_dir() => Ok(p),
        Ok(p) => Err(bad(format!("{} is not a folder", p.display()))),
        Err(e) => Err(bad(format!(
            "project folder {} does not exist ({e})",
            raw.display()
        ))),
    }
}

/// Both config files and the flags, unvalidated.
pub fn load_layers(args: &SandboxArgs, env: &BTreeMap<String, String>) -> Result<Layers, Failure> {
    let project = project_dir(args.project.as_deref())?;
    layers_for(args, env, &project, &host_user(env))
}

/// [`load_layers`] for a project folder and host user already resolved.
fn layers_for(
    args: &SandboxArgs,
    env: &BTreeMap<String, String>,
    project: &Path,
    user: &HostUser,
) -> Result<Layers, Failure> {
    Ok(Layers {
        user: ConfigFile::load(&user_config_path(user, env), FileKind::User)?,
        project: ConfigFile::load_project(project)?,
        flags: Overrides {
            backend: args.backend.clone(),
            require_kvm: args.require_kvm,
            profile: args.profile.clone(),
            network: args.network.clone(),
            allow_hosts: args.allow_hosts.clone(),
            env: args.env.clone(),
            mounts: args.mounts.clone(),
            deploy_key: args.deploy_key.clone(),
            forward: args.forward.clone(),
            ports: args.ports.clone(),
        },
    })
}

/// Loads both config files and validates them with the flags. The project folder and the
/// host user are resolved once (each is a `canonicalize` and a passwd lookup).
pub fn load_spec(args: &SandboxArgs, env: &BTreeMap<String, String>) -> Result<Spec, Failure> {
    let project = project_dir(args.project.as_deref())?;
    let user = host_user(env);
    let layers = layers_for(args, env, &project, &user)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| project.clone());
    let trusted = wrapix_spec::trust::load(&state_root(&user, env), &project)
        .map_err(SpecError::TrustRecord)?
        .map(|r| r.sha256);
    let host = HostContext {
        user,
        project,
        cwd,
        trusted,
        backends: wrapix_sandbox::backend::names(),
    };
    Ok(wrapix_spec::validate(&layers, &host)?)
}

/// wrapix's own state folder (`$XDG_STATE_HOME/wrapix`), outside every sandbox.
pub fn state_root(user: &HostUser, env: &BTreeMap<String, String>) -> PathBuf {
    wrapix_spec::state::root(&user.home, env)
}
