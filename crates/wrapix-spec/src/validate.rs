//! Layers → [`Spec`]. Every check happens here, once, before anything is created on the host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::error::{Location, SpecError};
use crate::layer::{ConfigFile, Layers, Origin};
use crate::problem::{BackendError, DeployKeyError, DestError, SourceError};
use crate::raw::RawConfig;
use crate::spec::{
    Agent, AgentHome, BackendKind, BackendName, DeployKey, HostUser, Mount, Profile, Spec,
};
use crate::types::{
    check_env_value, check_key_name, parse_project_relative, split_env_flag, split_mount_flag,
    EnvName, MountMode, SandboxPath,
};

/// Backends (and aliases) wrapix has, which a build may lack: a macOS build has only `apple`
/// (the others are Linux-only; `wrapix_sandbox::backend::REGISTRY`).
const LATER_BACKENDS: &[&str] = &["bwrap", "bubblewrap", "podman", "nspawn", "qemu", "apple"];
/// Paths that no mount may cover, replace or sit inside.
const RESERVED_INSIDE: &[&str] = &["/workspace", "/proc", "/dev", "/sys", "/run/wrapix"];
/// System folders that no mount may replace (a mount below them is allowed).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/tmp", "/run",
];
/// Protected by default (read-only inside when they exist): what git runs on the host, and
/// the project's own wrapix config. `[workspace] protect` adds to it; `unprotect` (trusted)
/// removes from it.
pub const DEFAULT_PROTECT: &[&str] = &[
    ".git/hooks",
    ".git/config",
    ".git/config.worktree",
    ".git/commondir",
    ".git/modules",
    ".git/worktrees",
    crate::layer::PROJECT_FILE,
    // What other host tools run when they open the project (see HOST_TOOL_CONFIGS).
    ".vscode",
    ".devcontainer",
    ".idea",
    ".envrc",
    "mise.toml",
    ".mise.toml",
    "mise.local.toml",
    ".mise.local.toml",
    ".mise",
    ".pre-commit-config.yaml",
    ".husky",
    "lefthook.yml",
    ".lefthook.yml",
    "lefthook-local.yml",
    ".lefthook-local.yml",
    ".lefthook",
    ".zed",
    ".helix",
    ".nvim.lua",
    ".exrc",
];

/// Files and folders that host tools read from a project and can run commands from when they
/// open it (an editor's tasks, a dev container's `initializeCommand`, a shell hook's
/// environment, a pre-commit hook's config), with the tool. Protected by default when they
/// exist; one the sandbox creates is named after the run.
pub const HOST_TOOL_CONFIGS: &[(&str, &str)] = &[
    (
        ".vscode",
        "VS Code (tasks that run when the folder opens, interpreter paths)",
    ),
    (
        ".devcontainer",
        "dev containers (initializeCommand runs on the host)",
    ),
    (
        ".idea",
        "JetBrains IDEs (run configurations, startup tasks)",
    ),
    (
        ".envrc",
        "direnv (runs when you cd into the project, once allowed)",
    ),
    (
        "mise.toml",
        "mise (hooks and env run when you cd into the project)",
    ),
    (
        ".mise.toml",
        "mise (hooks and env run when you cd into the project)",
    ),
    (
        "mise.local.toml",
        "mise (hooks and env run when you cd into the project)",
    ),
    (
        ".mise.local.toml",
        "mise (hooks and env run when you cd into the project)",
    ),
    (
        ".mise",
        "mise (hooks and env run when you cd into the project)",
    ),
    (
        ".pre-commit-config.yaml",
        "pre-commit (hooks it runs at your next commit)",
    ),
    (".husky", "husky (its hooks run at your next commit)"),
    (
        "lefthook.yml",
        "lefthook (the commands it runs at your next commit)",
    ),
    (
        ".lefthook.yml",
        "lefthook (the commands it runs at your next commit)",
    ),
    (
        "lefthook-local.yml",
        "lefthook (the commands it runs at your next commit)",
    ),
    (
        ".lefthook-local.yml",
        "lefthook (the commands it runs at your next commit)",
    ),
    (
        ".lefthook",
        "lefthook (scripts it runs at your next commit)",
    ),
    (
        ".zed",
        "Zed (tasks and language-server commands of the project's settings)",
    ),
    (
        ".helix",
        "Helix (language-server commands in languages.toml)",
    ),
    (
        ".nvim.lua",
        "Neovim (exrc: run when the folder opens, once trusted)",
    ),
    (
        ".exrc",
        "Vim and Neovim (exrc: run when the folder opens, once trusted)",
    ),
];
pub const DEFAULT_AGENT: &[&str] = &["claude", "--dangerously-skip-permissions"];

/// Everything validation needs from the host, passed in so that it stays a pure function of
/// its inputs (apart from checking that sources exist).
#[derive(Debug, Clone)]
pub struct HostContext {
    pub user: HostUser,
    /// Canonical, existing project folder.
    pub project: PathBuf,
    /// The current directory, for relative `--mount` sources.
    pub cwd: PathBuf,
    /// The sha256 of the project config the user trusted (`wrapix trust`), if any.
    pub trusted: Option<String>,
    /// The backends this build has (`wrapix_sandbox::backend::names()`).
    pub backends: Vec<BackendName>,
}

/// A value with where it came from.
struct Picked<'a, T> {
    value: &'a T,
    origin: Origin,
    location: Location,
}

fn pick<'a, T>(
    layers: &'a Layers,
    get: impl Fn(&'a RawConfig) -> Option<&'a Spanned<T>>,
) -> Option<Picked<'a, T>> {
    let mut out = None;
    for file in layers.files() {
        if let Some(v) = get(&file.raw) {
            out = Some(Picked {
                value: v.get_ref(),
                origin: file.origin(),
                location: file.at(v.span()),
            });
        }
    }
    out
}

fn pick_str<'a>(
    layers: &'a Layers,
    flag: &'a Option<String>,
    flag_name: &'static str,
    get: impl Fn(&'a RawConfig) -> Option<&'a Spanned<String>>,
) -> Option<Picked<'a, String>> {
    match flag {
        Some(v) => Some(Picked {
            value: v,
            origin: Origin::Flag(flag_name),
            location: Location::Flag(flag_name.to_owned()),
        }),
        None => pick(layers, get),
    }
}

pub fn validate(layers: &Layers, host: &HostContext) -> Result<Spec, SpecError> {
    let mut origins = BTreeMap::new();
    let flags = &layers.flags;

    let backend = match pick_str(layers, &flags.backend, "--backend", |r| r.backend.as_ref()) {
        None => BackendKind::Auto,
        Some(p) => {
            origins.insert("backend", p.origin);
            parse_backend(p.value, &host.backends)
                .map_err(|e| SpecError::at(p.location, "backend", e))?
        }
    };

    let require_kvm = require_kvm(layers, &backend, &mut origins)?;

    let selected = pick_str(layers, &flags.profile, "--profile", |r| r.profile.as_ref()).map(|p| {
        origins.insert("profile", p.origin);
        (p.value.as_str(), p.location)
    });
    let profile = profiles::resolve(layers, selected, &mut origins)?;
    let resources = profiles::resources(layers, &mut origins)?;

    let network = network::network(layers, &host.user.home, &host.project, &mut origins)?;

    let mut env = env(layers, &mut origins)?;
    if let Profile::Image(img) = &profile {
        // The profile's env is the default; [env] and -e win.
        for (k, v) in &img.env {
            if let Ok(name) = EnvName::parse(k) {
                env.entry(name).or_insert_with(|| v.clone());
            }
        }
    }
    let mounts = mounts(layers, host, &mut origins)?;

    let deploy_key = match pick_str(layers, &flags.deploy_key, "--deploy-key", |r| {
        r.deploy_key.as_ref()
    }) {
        None => None,
        Some(p) => {
            origins.insert("deploy_key", p.origin);
            Some(
                deploy_key(p.value, &host.user.home)
                    .map_err(|e| SpecError::at(p.location, "deploy_key", e))?,
            )
        }
    };

    let agent = agent(layers, &mut origins)?;
    let forward = forward::forward(layers, &host.user.home, &network, &mut origins)?;
    let protect = protect(layers, &mut origins)?;
    let mcp = mcp::servers(layers, &host.user.sandbox_home(), &mut origins)?;
    let mut profile = profile;
    if let Profile::Image(img) = &mut profile {
        // What the servers need is part of the image (and so of its hash).
        for need in mcp.values().flat_map(|s| &s.needs) {
            if let Ok(p) = wrapix_image::Package::parse(need.package) {
                img.packages.insert(p);
            }
        }
    }

    // Last, so that a bad value is reported as such before the file is trusted.
    if let Some(project) = &layers.project {
        check_project_trust(project, layers.user.as_ref(), host)?;
    }

    Ok(Spec {
        project: host.project.clone(),
        backend,
        profile,
        network,
        env,
        mounts,
        deploy_key,
        agent,
        protect,
        resources,
        mcp,
        forward,
        user: host.user.clone(),
        require_kvm,
        origins,
    })
}

/// `--require-kvm` or `require_kvm = true` in either file: any layer that asks for it gets it
/// (a project file can make the run stricter, never laxer). The flag names the qemu backend's
/// behaviour, so it needs that backend; the key, which a user config may set for every
/// project, is ignored by the backends that run no VM.
fn require_kvm(
    layers: &Layers,
    backend: &BackendKind,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<bool, SpecError> {
    if layers.flags.require_kvm {
        if *backend != BackendKind::Named("qemu") {
            return Err(SpecError::invalid(
                Location::Flag("--require-kvm".to_owned()),
                "require_kvm",
                format!("--require-kvm is for the qemu backend, and the backend is {backend}"),
                "add --backend qemu, or drop --require-kvm",
            ));
        }
        origins.insert("require_kvm", Origin::Flag("--require-kvm"));
        return Ok(true);
    }
    for file in layers.files() {
        if let Some(v) = &file.raw.require_kvm {
            if *v.get_ref() {
                origins.insert("require_kvm", file.origin());
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A project file may narrow the sandbox freely; what widens it needs the user's trust in
/// this exact content, and `backend = "none"` is never taken from it.
fn check_project_trust(
    file: &ConfigFile,
    user: Option<&ConfigFile>,
    host: &HostContext,
) -> Result<(), SpecError> {
    if let Some(b) = file.raw.backend.as_ref().filter(|b| b.get_ref() == "none") {
        return Err(SpecError::invalid(
            file.at(b.span()),
            "backend",
            "backend \"none\" (no sandbox) is never taken from a project's wrapix.toml, trusted or not",
            "remove it; to run without a sandbox on purpose, pass --backend none or set it in ~/.config/wrapix/config.toml",
        ));
    }
    let widening = crate::trust::widening_over(&file.text, user.map(|u| &u.raw));
    if widening.is_empty() || host.trusted.as_deref() == Some(file.sha256.as_str()) {
        return Ok(());
    }
    Err(SpecError::Untrusted {
        path: file.path.clone(),
        project: host.project.clone(),
        keys: widening.into_iter().map(|w| w.key).collect(),
        changed: host.trusted.is_some(),
    })
}

fn parse_backend(s: &str, known: &[BackendName]) -> Result<BackendKind, BackendError> {
    if let Some(b) = known.iter().find(|b| b.name == s || b.aliases.contains(&s)) {
        return Ok(BackendKind::Named(b.name));
    }
    let names = || {
        let mut n = vec!["auto"];
        n.extend(known.iter().map(|b| b.name));
        n.push("none");
        n
    };
    match s {
        "auto" => Ok(BackendKind::Auto),
        "none" => Ok(BackendKind::None),
        later if LATER_BACKENDS.contains(&later) => Err(BackendError::Later {
            name: later.to_owned(),
            known: names(),
        }),
        other => Err(BackendError::Unknown {
            name: other.to_owned(),
            known: names(),
        }),
    }
}

fn env(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<BTreeMap<EnvName, String>, SpecError> {
    let mut out = BTreeMap::new();
    for file in layers.files() {
        let Some(table) = &file.raw.env else { continue };
        for (name, value) in table.get_ref() {
            let loc = file.at(value.span());
            let key = format!("env.{name}");
            let name = EnvName::parse(name).map_err(|e| SpecError::at(loc.clone(), &key, e))?;
            check_env_value(value.get_ref()).map_err(|e| SpecError::at(loc, &key, e))?;
            out.insert(name, value.get_ref().clone());
            origins.insert("env", file.origin());
        }
    }
    for flag in &layers.flags.env {
        let loc = Location::Flag(format!("--env {flag:?}"));
        let (name, value) =
            split_env_flag(flag).map_err(|e| SpecError::at(loc.clone(), "env", e))?;
        let name = EnvName::parse(name).map_err(|e| SpecError::at(loc.clone(), "env", e))?;
        check_env_value(value).map_err(|e| SpecError::at(loc, "env", e))?;
        out.insert(name, value.to_owned());
        origins.insert("env", Origin::Flag("--env"));
    }
    Ok(out)
}

fn mounts(
    layers: &Layers,
    host: &HostContext,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Vec<Mount>, SpecError> {
    let home = host.user.sandbox_home();
    let mut out: Vec<Mount> = Vec::new();
    let mut push = |m: Mount, loc: Location, key: &str| -> Result<(), SpecError> {
        if let Some(prev) = out.iter().find(|o| o.dest == m.dest) {
            return Err(SpecError::invalid(
                loc,
                key,
                format!(
                    "dest {} is already used by the mount of {}",
                    m.dest,
                    prev.source.display()
                ),
                "give each mount its own dest",
            ));
        }
        out.push(m);
        Ok(())
    };
    for file in layers.files() {
        for (i, m) in file.raw.mounts.iter().enumerate() {
            let key = format!("mounts[{i}]");
            let m = m.get_ref();
            let base = match file.kind {
                crate::layer::FileKind::Project => Some(host.project.as_path()),
                crate::layer::FileKind::User => None,
            };
            let source = resolve_source(m.source.get_ref(), &host.user.home, base, &host.project)
                .map_err(|e| {
                SpecError::at(file.at(m.source.span()), format!("{key}.source"), e)
            })?;
            let dest = check_dest(m.dest.get_ref(), &home)
                .map_err(|e| SpecError::at(file.at(m.dest.span()), format!("{key}.dest"), e))?;
            let mode = match &m.mode {
                None => MountMode::ReadOnly,
                Some(mode) => MountMode::parse(mode.get_ref())
                    .map_err(|e| SpecError::at(file.at(mode.span()), format!("{key}.mode"), e))?,
            };
            push(
                Mount { source, dest, mode },
                file.at(m.dest.span()),
                &format!("{key}.dest"),
            )?;
            origins.insert("mounts", file.origin());
        }
    }
    for flag in &layers.flags.mounts {
        let loc = Location::Flag(format!("--mount {flag:?}"));
        let (src, dest, mode) =
            split_mount_flag(flag).map_err(|e| SpecError::at(loc.clone(), "mount", e))?;
        let source = resolve_source(src, &host.user.home, Some(&host.cwd), &host.project)
            .map_err(|e| SpecError::at(loc.clone(), "mount", e))?;
        let dest = check_dest(dest, &home).map_err(|e| SpecError::at(loc.clone(), "mount", e))?;
        push(Mount { source, dest, mode }, loc, "mount")?;
        origins.insert("mounts", Origin::Flag("--mount"));
    }
    Ok(out)
}

/// `~` expansion, relative paths against `base`, and existence. The result has no symlink
/// left in it; a symlink inside the project (which the agent can plant) is an error.
fn resolve_source(
    s: &str,
    host_home: &Path,
    base: Option<&Path>,
    project: &Path,
) -> Result<PathBuf, SourceError> {
    if s.contains('\0') {
        return Err(SourceError::Nul);
    }
    let path = if s == "~" {
        host_home.to_owned()
    } else if let Some(rest) = s.strip_prefix("~/") {
        host_home.join(rest)
    } else if Path::new(s).is_absolute() {
        PathBuf::from(s)
    } else if let Some(base) = base {
        base.join(s)
    } else {
        return Err(SourceError::Relative(s.to_owned()));
    };
    resolve_without_project_links(&path, project)
}

/// Resolves `path` like `realpath`, one name at a time, except that a symlink at or below
/// `project` is an error: the agent writes the project, so a link there (`data` replaced by a
/// link to `~`) would turn a mount the user approved into one of something else.
fn resolve_without_project_links(path: &Path, project: &Path) -> Result<PathBuf, SourceError> {
    use std::collections::VecDeque;
    use std::path::Component;
    let missing = |p: &Path, source: std::io::Error| SourceError::Missing {
        path: p.to_owned(),
        source,
    };
    let mut todo: VecDeque<PathBuf> = path
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        match part.components().next() {
            Some(Component::RootDir) => resolved = PathBuf::from("/"),
            Some(Component::ParentDir) => {
                resolved.pop();
            }
            Some(Component::Normal(name)) => {
                let next = resolved.join(name);
                let meta = std::fs::symlink_metadata(&next).map_err(|e| missing(path, e))?;
                if !meta.file_type().is_symlink() {
                    resolved = next;
                    continue;
                }
                if next.starts_with(project) {
                    return Err(SourceError::ProjectLink {
                        path: path.to_owned(),
                        link: next,
                    });
                }
                links += 1;
                if links > 40 {
                    return Err(missing(
                        path,
                        std::io::Error::other("too many symbolic links"),
                    ));
                }
                let target = std::fs::read_link(&next).map_err(|e| missing(path, e))?;
                for c in target.components().rev() {
                    todo.push_front(PathBuf::from(c.as_os_str()));
                }
            }
            _ => {}
        }
    }
    // Checked once more as a whole: it must exist.
    std::fs::metadata(&resolved).map_err(|e| missing(path, e))?;
    Ok(resolved)
}

fn check_dest(s: &str, home: &SandboxPath) -> Result<SandboxPath, DestError> {
    let dest = SandboxPath::parse(s, home)?;
    let root = SandboxPath::from_static("/");
    if dest == root {
        return Err(DestError::Root);
    }
    if &dest == home {
        return Err(DestError::Home(dest));
    }
    for &reserved in RESERVED_INSIDE {
        let r = SandboxPath::from_static(reserved);
        if dest.is_within(&r) || r.is_within(&dest) {
            return Err(DestError::Reserved { dest, reserved });
        }
    }
    for &system in SYSTEM_DIRS {
        let s = SandboxPath::from_static(system);
        if s.is_within(&dest) {
            return Err(DestError::System { dest, system });
        }
    }
    Ok(dest)
}

fn deploy_key(name: &str, host_home: &Path) -> Result<DeployKey, DeployKeyError> {
    check_key_name(name)?;
    let dir = host_home.join(".ssh/deploy_keys");
    let private_key = dir.join(name);
    if !private_key.is_file() {
        return Err(DeployKeyError::Missing {
            name: name.to_owned(),
            path: private_key,
        });
    }
    let public = dir.join(format!("{name}.pub"));
    Ok(DeployKey {
        name: name.to_owned(),
        private_key,
        public_key: public.is_file().then_some(public),
    })
}

fn agent(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Agent, SpecError> {
    let mut command: Vec<String> = DEFAULT_AGENT.iter().map(|s| (*s).to_owned()).collect();
    let mut home = AgentHome::Project;
    let mut forward_api_key = false;
    for file in layers.files() {
        let Some(a) = &file.raw.agent else { continue };
        if let Some(c) = &a.command {
            if c.get_ref().is_empty() || c.get_ref()[0].is_empty() {
                return Err(SpecError::invalid(
                    file.at(c.span()),
                    "agent.command",
                    "the agent command is empty",
                    "write the program and its arguments, e.g. [\"claude\"]",
                ));
            }
            if let Some(bad) = c.get_ref().iter().find(|a| a.contains('\0')) {
                return Err(SpecError::invalid(
                    file.at(c.span()),
                    "agent.command",
                    format!("argument {bad:?} contains a NUL byte"),
                    "remove the NUL byte",
                ));
            }
            command = c.get_ref().clone();
            origins.insert("agent.command", file.origin());
        }
        if let Some(h) = &a.home {
            home = match h.get_ref().as_str() {
                "project" => AgentHome::Project,
                "host" => AgentHome::Host,
                other => {
                    return Err(SpecError::invalid(
                        file.at(h.span()),
                        "agent.home",
                        format!("unknown agent home {other:?}"),
                        "use \"project\" or \"host\"",
                    ))
                }
            };
            origins.insert("agent.home", file.origin());
        }
        if let Some(f) = &a.forward_api_key {
            forward_api_key = *f.get_ref();
            origins.insert("agent.forward_api_key", file.origin());
        }
    }
    Ok(Agent {
        command,
        home,
        forward_api_key,
    })
}

fn protect(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Vec<PathBuf>, SpecError> {
    let mut out: Vec<PathBuf> = DEFAULT_PROTECT.iter().map(PathBuf::from).collect();
    let parse = |file: &ConfigFile, list: &Spanned<Vec<String>>, key: &str| {
        list.get_ref()
            .iter()
            .map(|s| {
                parse_project_relative(s).map_err(|e| SpecError::at(file.at(list.span()), key, e))
            })
            .collect::<Result<Vec<PathBuf>, SpecError>>()
    };
    for file in layers.files() {
        let Some(ws) = &file.raw.workspace else {
            continue;
        };
        if let Some(list) = &ws.protect {
            for p in parse(file, list, "workspace.protect")? {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            origins.insert("workspace.protect", file.origin());
        }
        if let Some(list) = &ws.unprotect {
            let remove = parse(file, list, "workspace.unprotect")?;
            out.retain(|p| !remove.contains(p));
            origins.insert("workspace.protect", file.origin());
        }
    }
    Ok(out)
}

mod forward;
mod mcp;
mod network;
mod profiles;
pub use profiles::{user_profiles, UserProfile};

#[cfg(test)]
mod tests;
