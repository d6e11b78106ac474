//! Spec → [`Prepared`]: everything a backend needs, resolved on the host. This is the one place
//! where wrapix changes the host before a run (agent state in wrapix's state folder, a missing
//! `.git/hooks`, `.git/modules` or `.git/worktrees` so that they can be protected), and it
//! happens only after the spec has been validated. Paths in the project are looked at through
//! [`wrapix_hostfs::Dir`]: a protected path that is (or runs through) a symlink stops the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, Network, SandboxPath, Spec};

use crate::agent;
use crate::error::SandboxError;
use crate::root::RootFs;

/// What the sandbox runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// The configured agent (falls back to a shell when it is not installed and we are on a TTY).
    Agent,
    /// An interactive shell.
    Shell,
    /// A command given after `--`.
    Command(Vec<String>),
}

/// A bind mount the backend must make, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub dest: SandboxPath,
    pub mode: MountMode,
}

/// A bind source held open since it was checked.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub source: PathBuf,
    pub fd: std::sync::Arc<std::os::fd::OwnedFd>,
}

/// A file created inside the sandbox from bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub dest: SandboxPath,
    pub contents: Vec<u8>,
    pub writable: bool,
}

/// Facts about the host process that [`prepare`] needs (passed in for testability).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The host environment of the `wrapix` process.
    pub env: BTreeMap<String, String>,
    /// stdin and stdout are a terminal: the sandbox gets a pty, and a missing agent falls
    /// back to a shell.
    pub interactive: bool,
    /// The `wrapix` binary, mounted into the sandbox (`wrapix notify`, `wrapix mcp`, and the
    /// init when there is no [`HostFacts::init_exe`]).
    pub self_exe: PathBuf,
    /// `wrapix-init` beside it, when installed: the small binary the sandbox starts as PID 1.
    pub init_exe: Option<PathBuf>,
    /// `wrapix-serve` beside it, when installed: the binary with wrapix's MCP servers, which
    /// `wrapix mcp …` execs (mounted only into sandboxes whose config enables one).
    pub serve_exe: Option<PathBuf>,
    /// Only describe the run (`--dry-run`): change nothing on the host.
    pub dry_run: bool,
    /// The host folder the notification daemon publishes its socket in
    /// (`$XDG_RUNTIME_DIR/wrapix/notify.d`, created by the launcher): mounted read-only at
    /// [`SANDBOX_NOTIFY_DIR`], where the backend's [`SANDBOX_NOTIFY_SOCKET`] symlink points.
    pub notify_dir: Option<PathBuf>,
    /// The session id the launcher registered for focus-aware notifications.
    pub session_id: Option<String>,
    /// What `[forward]` gives the sandbox, from [`crate::forward::start`] (which checked the
    /// host and started the helpers).
    pub forwarded: crate::forward::Provided,
}

/// Everything a backend needs to build a plan, with no decisions left.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub spec: Spec,
    pub root: RootFs,
    pub home: SandboxPath,
    /// Host folder used as the sandbox home instead of a private tmpfs (`[agent] home = "host"`).
    pub home_source: Option<PathBuf>,
    /// Binds in mount order: workspace, pinned parents, protected paths, user mounts, agent.
    pub binds: Vec<Bind>,
    /// Device nodes bound as devices, at the same path (`gpu = true`; bubblewrap only).
    pub devices: Vec<PathBuf>,
    /// `O_PATH` handles of bind sources inside the project (protected paths and their pinned
    /// parents), opened without following links when they were checked: a backend that can
    /// bind by fd binds exactly these objects.
    pub pinned: Vec<Pinned>,
    pub files: Vec<GeneratedFile>,
    /// The complete environment inside the sandbox.
    pub env: BTreeMap<String, String>,
    /// argv inside the sandbox.
    pub command: Vec<String>,
    pub network: Network,
    /// For `network = "open"`: the address pasta maps to a loopback host resolver.
    pub dns_forward: Option<String>,
    /// Run on a fresh pseudo-terminal.
    pub terminal: bool,
    pub self_exe: PathBuf,
    /// `wrapix-init`, when installed beside `wrapix` (see [`HostFacts::init_exe`]).
    pub init_exe: Option<PathBuf>,
    /// `wrapix-serve`, mounted at `/run/wrapix/bin/wrapix-serve`: set when the config enables
    /// one of wrapix's own MCP servers and it is installed (see [`HostFacts::serve_exe`]).
    pub serve_exe: Option<PathBuf>,
    /// The `host` profile's assembled `/etc` ([`crate::root::etc`]), which [`Prepared::root`]
    /// binds: held for the run so that no other wrapix process removes it meanwhile.
    pub etc: Option<crate::root::etc::AssembledEtc>,
    /// Things to tell the user before the run (e.g. the agent was not found).
    pub notices: Vec<String>,
    /// Work to do after the sandbox exits (copy agent state back).
    pub after_exit: Vec<agent::AfterExit>,
}

impl Prepared {
    /// The exit code for a run whose command never started (the backend reported no exit of
    /// it; its own message says why): 127 when the program is not in the sandbox, 126 when it
    /// is there but not executable, else 125 (the sandbox's set-up failed). Looked up on the
    /// host through the binds, the home and the root, as `execvp` inside would search.
    pub fn not_started_code(&self) -> i32 {
        use std::os::unix::fs::PermissionsExt;
        let Some(prog) = self.command.first() else {
            return 127;
        };
        let candidates: Vec<PathBuf> = if prog.contains('/') {
            vec![Path::new(wrapix_spec::Spec::WORKSPACE).join(prog)]
        } else {
            let path = self.env.get("PATH").map_or(SANDBOX_PATH, String::as_str);
            path.split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| Path::new(d).join(prog))
                .collect()
        };
        let mut found = false;
        for inside in candidates {
            let Some(host) = self.host_path(&inside) else {
                continue;
            };
            match std::fs::metadata(host) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return 125,
                Ok(m) if m.is_file() => found = true,
                _ => {}
            }
        }
        if found {
            126
        } else {
            127
        }
    }

    /// The host path behind a sandbox path: the last bind that covers it (later binds shadow
    /// earlier ones), else the home folder's source, else the root. In wrapix's own folder
    /// (`/run/wrapix/bin`), `wrapix`, `wrapix-notify` and `ralph` are the wrapix binary.
    fn host_path(&self, inside: &Path) -> Option<PathBuf> {
        if inside.parent() == Some(Path::new(SANDBOX_BIN_DIR)) {
            let name = inside.file_name().and_then(|n| n.to_str());
            return match name {
                Some("wrapix" | "wrapix-notify" | "ralph") => Some(self.self_exe.clone()),
                Some("wrapix-serve") => self.serve_exe.clone(),
                _ => None,
            };
        }
        for b in self.binds.iter().rev() {
            if let Ok(rest) = inside.strip_prefix(b.dest.as_path()) {
                return Some(b.source.join(rest));
            }
        }
        if let (Some(src), Ok(rest)) = (&self.home_source, inside.strip_prefix(self.home.as_path()))
        {
            return Some(src.join(rest));
        }
        self.root.host_path(inside)
    }
}

/// Where wrapix's own binary appears inside the sandbox.
pub const SANDBOX_BIN_DIR: &str = "/run/wrapix/bin";
/// Where the host's notification socket appears inside the sandbox: a symlink (made by every
/// backend) to [`SANDBOX_NOTIFY_LINK`], so a restarted daemon's new socket is seen at once.
pub const SANDBOX_NOTIFY_SOCKET: &str = "/run/wrapix/notify.sock";
/// Where the folder holding the daemon's socket is mounted.
pub const SANDBOX_NOTIFY_DIR: &str = "/run/wrapix/notify.d";
/// The target of the [`SANDBOX_NOTIFY_SOCKET`] symlink, relative to its folder.
pub const SANDBOX_NOTIFY_LINK: &str = "notify.d/notify.sock";
pub const SANDBOX_PATH: &str =
    "/run/wrapix/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host variables copied into the sandbox when set (nothing secret): the terminal, the
/// locale (`LANG`, `LANGUAGE` and every `LC_*`, see [`is_locale_var`]) and the timezone.
const PASSTHROUGH_ENV: &[&str] = &["TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "NO_COLOR"];

/// `LC_ALL`, `LC_CTYPE`, `LC_TIME`, …: a locale category variable.
fn is_locale_var(name: &str) -> bool {
    name.strip_prefix("LC_")
        .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
}

pub fn prepare(spec: &Spec, mode: &RunMode, host: &HostFacts) -> Result<Prepared, SandboxError> {
    // git answers while the rest is prepared.
    let git_identity = crate::gitid::start(&host.env, &spec.project, !host.dry_run);
    let mut root = match &spec.profile {
        // Its /etc comes below, assembled or entry by entry.
        wrapix_spec::Profile::Host => RootFs::host_without_etc(Path::new("/")),
        wrapix_spec::Profile::Image(img) => {
            crate::root::image_root(img, &host.env, &spec.user.home)?
        }
    };
    let home = spec.user.sandbox_home();
    let mut notices = Vec::new();
    let builtin_mcp: Vec<&str> = spec
        .mcp
        .iter()
        .filter(|(_, s)| s.builtin)
        .map(|(n, _)| n.as_str())
        .collect();
    let serve_exe = match (&host.serve_exe, builtin_mcp.is_empty()) {
        (_, true) => None,
        (Some(exe), false) => Some(exe.clone()),
        (None, false) => {
            notices.push(format!(
                "wrapix-serve is not installed beside wrapix, so the MCP server {} cannot start \
                 (`cargo install --path crates/wrapix-cli` installs it)",
                builtin_mcp.join(", ")
            ));
            None
        }
    };
    if resolve_existing(&spec.user.home).starts_with(&spec.project) {
        notices.push(format!(
            "the project folder {} contains your home folder: the agent can read and change everything in it",
            spec.project.display()
        ));
    }

    let shell = if root
        .find_executable("bash", &["/usr/bin", "/bin"])
        .is_some()
    {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let command = match mode {
        RunMode::Command(argv) => argv.clone(),
        RunMode::Shell => vec![shell.to_owned(), "-l".to_owned()],
        RunMode::Agent => {
            let prog = &spec.agent.command[0];
            let found = if prog.contains('/') {
                true
            } else {
                root.find_executable(prog, &path_dirs()).is_some()
            };
            if found {
                spec.agent.command.clone()
            } else if host.interactive {
                notices.push(format!(
                    "the agent `{prog}` is not installed in the sandbox; starting a shell instead \
                     (install it on the host, e.g. `npm install -g @anthropic-ai/claude-code`, or set [agent] command)"
                ));
                vec![shell.to_owned(), "-l".to_owned()]
            } else {
                return Err(SandboxError::AgentMissing {
                    program: prog.clone(),
                });
            }
        }
    };

    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), SANDBOX_PATH.to_owned());
    env.insert("HOME".to_owned(), home.to_string());
    env.insert("USER".to_owned(), spec.user.name.clone());
    env.insert("LOGNAME".to_owned(), spec.user.name.clone());
    env.insert("SHELL".to_owned(), shell.to_owned());
    env.insert("WRAPIX".to_owned(), "1".to_owned());
    env.insert("TERM".to_owned(), "xterm-256color".to_owned());
    env.insert("LANG".to_owned(), "C.UTF-8".to_owned());
    for name in PASSTHROUGH_ENV {
        if let Some(v) = host.env.get(*name) {
            env.insert((*name).to_owned(), v.clone());
        }
    }
    for (k, v) in &host.env {
        if is_locale_var(k) {
            env.insert(k.clone(), v.clone());
        }
    }

    let mut binds = vec![Bind {
        source: spec.project.clone(),
        dest: SandboxPath::from_static(Spec::WORKSPACE),
        mode: MountMode::ReadWrite,
    }];
    // wrapix's own folders inside the project (a project that is, or contains, the home
    // folder): its config and state (trust records, agent state, the manager's sockets), the
    // image store and the assembled /etc every later sandbox runs from. Hidden behind an empty
    // read-only folder (created first when missing, so that there is a mount point): no run
    // can change what later runs trust or run on, nor connect to a socket wrapix keeps there
    // (a read-only mount still lets a Unix socket be connected to).
    let protect = spec.protect.clone();
    let mut hidden = Vec::new();
    for own in own_folders(&spec.user.home, &host.env) {
        // Compared as the kernel sees them: HOME or an XDG variable may name them through a
        // link (`/home -> /data/home`), the project path has none.
        let own = resolve_existing(&own);
        let Ok(rel) = own.strip_prefix(&spec.project) else {
            continue;
        };
        if rel.as_os_str().is_empty() || hidden.iter().any(|h: &PathBuf| h == rel) {
            continue;
        }
        if !host.dry_run {
            wrapix_hostfs::Dir::open(&spec.project)?.create_dir_all(rel, 0o700)?;
        }
        hidden.push(rel.to_owned());
    }
    let (protected, mut pinned) = protect_binds(
        &spec.project,
        &protect,
        &spec.user.home,
        host.dry_run,
        &mut notices,
    )?;
    binds.extend(protected);
    if !hidden.is_empty() {
        let empty = if host.dry_run {
            crate::forward::runtime::base(&host.env).with_file_name("empty")
        } else {
            crate::forward::runtime::empty_dir(&host.env)?
        };
        let ws = SandboxPath::from_static(Spec::WORKSPACE);
        for rel in &hidden {
            binds.push(Bind {
                source: empty.clone(),
                dest: ws.join(&rel.to_string_lossy()),
                mode: MountMode::ReadOnly,
            });
        }
    }
    for m in &spec.mounts {
        // A source in the project was checked for links when the spec was validated; another
        // sandbox of the project could swap it for one before the backend mounts it. Held
        // open now (no link followed), so a backend that binds by handle binds what was checked.
        if let Ok(rel) = m.source.strip_prefix(&spec.project) {
            if !pinned.iter().any(|p| p.source == m.source) {
                match wrapix_hostfs::Dir::open(&spec.project)?.open_path(rel)? {
                    Some((fd, _)) => pinned.push(Pinned {
                        source: m.source.clone(),
                        fd: std::sync::Arc::new(fd),
                    }),
                    None => {
                        return Err(SandboxError::Missing {
                            what: format!("the mount source {} is gone", m.source.display()),
                            fix: "check what changed it (another sandbox of the project?)".into(),
                        })
                    }
                }
            }
        }
        binds.push(Bind {
            source: m.source.clone(),
            dest: m.dest.clone(),
            mode: m.mode,
        });
    }

    let passwd = format!(
        "{name}:x:{uid}:{gid}:{name}:{home}:{shell}\n",
        name = spec.user.name,
        uid = spec.user.uid,
        gid = spec.user.gid,
    );
    let group = format!("{}:x:{}:\n", spec.user.name, spec.user.gid);
    let mut files = Vec::new();
    let etc = match &spec.profile {
        wrapix_spec::Profile::Host => host_etc(spec, host, &passwd, &group),
        wrapix_spec::Profile::Image(_) => None,
    };
    match &etc {
        Some(etc) => root.use_assembled_etc(etc),
        None => {
            if spec.profile == wrapix_spec::Profile::Host {
                root.bind_host_etc(Path::new("/"));
            }
            for (dest, text) in [("/etc/passwd", passwd), ("/etc/group", group)] {
                files.push(GeneratedFile {
                    dest: SandboxPath::from_static(dest),
                    contents: text.into_bytes(),
                    writable: false,
                });
            }
        }
    }
    if let Some(git) = crate::gitid::gitconfig_for_sandbox(git_identity) {
        files.push(GeneratedFile {
            dest: home.join(".gitconfig"),
            contents: git.into_bytes(),
            writable: true,
        });
    }

    if let Some(key) = &spec.deploy_key {
        let dir = home.join(".ssh/deploy_keys");
        let private = dir.join(&key.name);
        binds.push(Bind {
            source: key.private_key.clone(),
            dest: private.clone(),
            mode: MountMode::ReadOnly,
        });
        if let Some(public) = &key.public_key {
            binds.push(Bind {
                source: public.clone(),
                dest: dir.join(&format!("{}.pub", key.name)),
                mode: MountMode::ReadOnly,
            });
        }
        let known_hosts = home.join(".ssh/known_hosts");
        files.push(GeneratedFile {
            dest: known_hosts.clone(),
            contents: crate::deploy_key::KNOWN_HOSTS.as_bytes().to_vec(),
            writable: false,
        });
        env.insert(
            "GIT_SSH_COMMAND".to_owned(),
            format!(
                "ssh -i {private} -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
            ),
        );
    }

    let mut dns_forward = None;
    if spec.network == Network::Open {
        let host_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if let crate::dns::Dns::Forward { resolv_conf } = crate::dns::plan(&host_conf) {
            files.push(GeneratedFile {
                dest: SandboxPath::from_static("/etc/resolv.conf"),
                contents: resolv_conf.into_bytes(),
                writable: false,
            });
            // The generated one replaces the host's: no need to bind that first.
            root.entries.retain(|e| {
                !matches!(e, crate::root::RootEntry::RoBind { dest, .. } if dest == Path::new("/etc/resolv.conf"))
            });
            dns_forward = Some(crate::dns::FORWARD_ADDR.to_owned());
        }
    }

    let mut after_exit = Vec::new();
    let mut home_source = None;
    if spec.agent.is_claude() && runs_agent(spec, mode) {
        let wiring = agent::wire_claude(spec, &home, &host.env, host.dry_run)?;
        binds.extend(wiring.binds);
        env.extend(wiring.env);
        after_exit.extend(wiring.after_exit);
        notices.extend(wiring.notices);
        home_source = wiring.home_source;
    }
    if !spec.mcp.is_empty() && runs_agent(spec, mode) {
        if spec.agent.is_claude() {
            check_mcp_needs(spec, &root)?;
        } else {
            notices.push(format!(
                "[mcp] servers are configured, but the agent `{}` is not Claude Code: wrapix only \
                 registers MCP servers with Claude Code, so they are not registered",
                spec.agent.command[0]
            ));
        }
    }

    // Notifications: `wrapix notify` inside reaches the host daemon through the folder the
    // daemon publishes its socket in (the folder, not the socket: a restarted daemon binds a
    // new socket, which a mount of the old one would never see).
    if let Some(dir) = &host.notify_dir {
        binds.push(Bind {
            source: dir.clone(),
            dest: SandboxPath::from_static(SANDBOX_NOTIFY_DIR),
            mode: MountMode::ReadOnly,
        });
    }
    env.insert("WRAPIX_NOTIFY_SOCKET".into(), SANDBOX_NOTIFY_SOCKET.into());
    if let Some(id) = &host.session_id {
        env.insert("WRAPIX_SESSION_ID".into(), id.clone());
    }
    if let Some(name) = spec.project.file_name() {
        env.insert("WRAPIX_PROJECT".into(), name.to_string_lossy().into_owned());
    }

    // [forward]: checked on the host and its helpers started by forward::start.
    if spec.forward.any() && !host.forwarded.started {
        // Fail closed: a spec that asks for a forward is never run without it.
        return Err(SandboxError::Missing {
            what: format!(
                "[forward] {} was asked for and not set up",
                spec.forward.names().join(", ")
            ),
            fix: "report this bug".into(),
        });
    }
    if matches!(spec.network, Network::Filtered(_)) && !host.forwarded.egress {
        // Fail closed: an allowlist is never run without the proxy that enforces it.
        return Err(SandboxError::Missing {
            what: "a network allowlist was asked for and its egress proxy was not set up".into(),
            fix: "report this bug".into(),
        });
    }
    binds.extend(host.forwarded.binds.iter().cloned());
    let devices = host.forwarded.devices.clone();
    files.extend(host.forwarded.files.iter().cloned());
    env.extend(host.forwarded.env.clone());
    notices.extend(host.forwarded.notices.iter().cloned());

    // The user's [env] wins over everything wrapix sets.
    for (k, v) in &spec.env {
        env.insert(k.to_string(), v.clone());
    }
    if let Some(ca) = &host.forwarded.egress_ca {
        files.extend(ca_files(&root, ca));
    }
    // Credential injection keeps the secret on the host: a run whose environment would
    // carry it anyway ([env], agent.forward_api_key) does not start.
    if let Some((var, cred_host)) = host.forwarded.secrets.leaked_in(&env) {
        return Err(SandboxError::Network {
            detail: format!(
                "the sandbox's variable {var} would hold the secret of the [[network.credentials]] entry for {cred_host}, which the proxy adds on the way out so that the sandbox never holds it"
            ),
            fix: format!(
                "drop {var} from [env] (or set it to a placeholder such as \"injected-by-wrapix\"), and set agent.forward_api_key = false if it is ANTHROPIC_API_KEY"
            ),
        });
    }

    // Mount points the backend must create inside a read-only bound folder of the root (a user
    // mount at /opt/x of an image that has /opt).
    for dest in binds
        .iter()
        .map(|b| &b.dest)
        .chain(files.iter().map(|f| &f.dest))
    {
        root.make_room(dest.as_path());
    }

    Ok(Prepared {
        spec: spec.clone(),
        root,
        home,
        home_source,
        binds,
        devices,
        pinned,
        files,
        env,
        command,
        network: spec.network.clone(),
        dns_forward,
        terminal: host.interactive,
        self_exe: host.self_exe.clone(),
        init_exe: host.init_exe.clone(),
        serve_exe,
        etc,
        notices,
        after_exit,
    })
}

/// Credential injection's CA inside: the certificate alone ([`egress::SANDBOX_CA`], for
/// `NODE_EXTRA_CA_CERTS`), and the sandbox's own system bundle plus the certificate, at
/// [`egress::SANDBOX_BUNDLE`] and over the system bundle itself when the root has one (for
/// tools that ignore the variables). All read-only.
fn ca_files(root: &RootFs, ca: &str) -> Vec<GeneratedFile> {
    use crate::egress;
    let system_path = root.host_path(Path::new(egress::SYSTEM_BUNDLE));
    // The root is the host's or a wrapix image's, never a folder the sandbox writes.
    let system = system_path
        .as_ref()
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .and_then(|p| {
            use std::io::Read;
            let mut s = Vec::new();
            std::fs::File::open(p)
                .and_then(|f| f.take(16 << 20).read_to_end(&mut s))
                .ok()
                .map(|_| s)
        });
    let mut bundle = system.clone().unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(ca.as_bytes());
    let file = |dest: &'static str, contents: Vec<u8>| GeneratedFile {
        dest: SandboxPath::from_static(dest),
        contents,
        writable: false,
    };
    let mut out = vec![
        file(egress::SANDBOX_CA, ca.as_bytes().to_vec()),
        file(egress::SANDBOX_BUNDLE, bundle.clone()),
    ];
    if system.is_some() {
        out.push(file(egress::SYSTEM_BUNDLE, bundle));
    }
    out
}

/// The `host` profile's `/etc` with `passwd` and `group`, assembled in the user's cache
/// ([`crate::root::etc`]), or `None` to bind the entries one by one: when the cache cannot be
/// written (read-only home, no space), which only makes the start slower, and in a dry run
/// that finds none (a dry run never builds it).
fn host_etc(
    spec: &Spec,
    host: &HostFacts,
    passwd: &str,
    group: &str,
) -> Option<crate::root::etc::AssembledEtc> {
    use crate::root::etc;
    let cache = etc::cache_root(&host.env, &spec.user.home);
    let generated = [("passwd", passwd.as_bytes()), ("group", group.as_bytes())];
    match etc::assemble(
        Path::new("/"),
        &cache,
        crate::root::HOST_ETC,
        &generated,
        !host.dry_run,
    ) {
        Ok(Some(assembled)) => Some(assembled),
        Ok(None) => {
            tracing::debug!(
                "no assembled /etc in {} yet (a dry run does not build it): binding /etc entries one by one",
                cache.display()
            );
            None
        }
        Err(e) => {
            tracing::debug!(
                "cannot assemble /etc in {} ({e}): binding /etc entries one by one",
                cache.display()
            );
            None
        }
    }
}

/// Whether this run starts the agent (or a shell a user starts it from): only then are its
/// state and login wired in, so `wrapix run -- make` gets neither.
fn runs_agent(spec: &Spec, mode: &RunMode) -> bool {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    match mode {
        RunMode::Agent | RunMode::Shell => true,
        RunMode::Command(argv) => argv
            .first()
            .is_some_and(|p| base(p) == base(&spec.agent.command[0])),
    }
}

/// Every program an `[mcp.NAME]` server needs must be in the sandbox's root. Image profiles
/// get them built in (validation adds their packages); the `host` profile uses the host's.
fn check_mcp_needs(spec: &Spec, root: &RootFs) -> Result<(), SandboxError> {
    for (name, server) in &spec.mcp {
        for need in &server.needs {
            if root.find_executable(need.program, &path_dirs()).is_some() {
                continue;
            }
            let fix = match &spec.profile {
                wrapix_spec::Profile::Host => format!(
                    "the host profile uses the host's /usr: install it with `sudo apt install {}`, \
                     or use an image profile (e.g. profile = \"base\"), which gets it built in",
                    need.package
                ),
                wrapix_spec::Profile::Image(_) => format!(
                    "rebuild the image (`wrapix image rm` it, then run again) or add \"{}\" to packages",
                    need.package
                ),
            };
            return Err(SandboxError::Missing {
                what: format!(
                    "the MCP server [mcp.{name}] needs `{}` in the sandbox, and the {} profile has none",
                    need.program, spec.profile
                ),
                fix,
            });
        }
    }
    Ok(())
}

fn path_dirs() -> Vec<&'static str> {
    SANDBOX_PATH
        .split(':')
        .filter(|d| *d != SANDBOX_BIN_DIR)
        .collect()
}

/// Folders git runs code from that wrapix creates (empty) in a repository that lacks them, so
/// that they are protected: an agent cannot plant them afterwards.
const CREATE_IF_MISSING: &[&str] = &[".git/hooks", ".git/modules", ".git/worktrees"];

/// Read-only binds for `[workspace] protect`, after pinning each protected path's parents
/// (a rw bind of a folder on itself makes it a mount point, which cannot be renamed or
/// removed, so the agent cannot move `.git` aside and plant a fresh one). A `.git` that is a
/// file (a linked worktree, a submodule checkout) is protected itself. A protected path that
/// is a symlink, or that a symlink leads to, stops the run: it is never followed.
fn protect_binds(
    project: &Path,
    protect: &[PathBuf],
    home: &Path,
    dry_run: bool,
    notices: &mut Vec<String>,
) -> Result<(Vec<Bind>, Vec<Pinned>), SandboxError> {
    use wrapix_hostfs::Kind;
    let dir = wrapix_hostfs::Dir::open(project)?;
    let git_kind = dir.meta(Path::new(".git"))?.map(|m| m.kind);
    let mut wanted: Vec<PathBuf> = protect.to_vec();
    match git_kind {
        Some(Kind::File) => wanted.push(PathBuf::from(".git")),
        Some(Kind::Symlink) => {
            return Err(SandboxError::HostFs(wrapix_hostfs::HostFsError::Symlink {
                path: project.join(".git"),
            }))
        }
        _ => {}
    }
    let mut made: Vec<PathBuf> = Vec::new();
    if git_kind == Some(Kind::Dir) {
        for (rel, is_dir) in config_code_paths(&dir, project, home, notices)? {
            if dir.meta(&rel)?.is_none() && !dry_run {
                // Created empty, so that the agent cannot plant hooks or config there.
                if is_dir {
                    dir.create_dir_all(&rel, 0o755)?;
                } else if let Some(parent) = rel.parent() {
                    let parent = dir.create_dir_all(parent, 0o755)?;
                    if let Some(name) = rel.file_name() {
                        parent.create_new(Path::new(name), b"", 0o644)?;
                    }
                }
            }
            made.push(rel.clone());
            wanted.push(rel);
        }
    }
    let mut pins: Vec<PathBuf> = Vec::new();
    let mut ro: Vec<PathBuf> = Vec::new();
    for rel in &wanted {
        let meta = match dir.meta(rel) {
            Ok(m) => m,
            // A file where a folder on the way should be (`.git` is a file): nothing below it.
            Err(wrapix_hostfs::HostFsError::NotDir { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        match meta.map(|m| m.kind) {
            Some(Kind::Symlink) => {
                return Err(SandboxError::HostFs(wrapix_hostfs::HostFsError::Symlink {
                    path: project.join(rel),
                }))
            }
            Some(_) => {}
            None if made.contains(rel) => {}
            None => {
                let create = git_kind == Some(Kind::Dir)
                    && CREATE_IF_MISSING.iter().any(|c| Path::new(c) == rel);
                if !create {
                    continue;
                }
                if !dry_run {
                    dir.create_dir_all(rel, 0o755)?;
                }
            }
        }
        let mut parent = rel.parent();
        while let Some(p) = parent {
            if !p.as_os_str().is_empty() && !pins.iter().any(|x| x == p) {
                pins.push(p.to_owned());
            }
            parent = p.parent();
        }
        if !ro.contains(rel) {
            ro.push(rel.clone());
        }
    }
    pins.sort_by_key(|p| p.components().count());
    let ws = SandboxPath::from_static(Spec::WORKSPACE);
    let to_bind = |rel: &PathBuf, mode| Bind {
        source: project.join(rel),
        dest: ws.join(&rel.to_string_lossy()),
        mode,
    };
    let mut out: Vec<Bind> = pins
        .iter()
        .map(|p| to_bind(p, MountMode::ReadWrite))
        .collect();
    out.extend(ro.iter().map(|p| to_bind(p, MountMode::ReadOnly)));
    // Each source held open from here on (no link followed): the backend binds these objects,
    // not whatever the path leads to when it gets to it.
    let mut pinned = Vec::new();
    for rel in pins.iter().chain(ro.iter()) {
        if let Some((fd, _)) = dir.open_path(rel)? {
            pinned.push(Pinned {
                source: project.join(rel),
                fd: std::sync::Arc::new(fd),
            });
        }
    }
    Ok((out, pinned))
}

/// How deep includes are followed (git's own limit is 10).
const MAX_INCLUDE_DEPTH: usize = 10;

/// The places inside the project that the repository's config makes git run hooks from
/// (`core.hooksPath`, e.g. husky's `.husky`) or read more config from (`include.path`,
/// `includeIf.*.path`), project-relative, with whether each is a folder. They are protected
/// like `.git/hooks`. The config is `.git/config` and `.git/config.worktree`, and, in turn,
/// every file inside the project that they include (a committed `.gitconfig` that includes a
/// `.gitconfig.local`, or sets `core.hooksPath`): git reads those too. Paths outside the
/// project are not the agent's to write.
fn config_code_paths(
    dir: &wrapix_hostfs::Dir,
    project: &Path,
    home: &Path,
    notices: &mut Vec<String>,
) -> Result<Vec<(PathBuf, bool)>, SandboxError> {
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    // (config file, depth): each read once; a relative include is relative to the folder of
    // the file that names it.
    let mut todo: Vec<(PathBuf, usize)> = vec![
        (PathBuf::from(".git/config"), 0),
        (PathBuf::from(".git/config.worktree"), 0),
    ];
    let mut seen: Vec<PathBuf> = Vec::new();
    while let Some((file, depth)) = todo.pop() {
        if seen.contains(&file) || depth > MAX_INCLUDE_DEPTH {
            continue;
        }
        seen.push(file.clone());
        // Only a plain file is read; a link (or a link on the way) is refused by the
        // protection of the path itself, which stops the run.
        if !matches!(dir.meta(&file), Ok(Some(m)) if m.kind == wrapix_hostfs::Kind::File) {
            continue;
        }
        let Some(bytes) = dir.read(&file, 1024 * 1024)? else {
            continue;
        };
        let paths = match crate::tripwire::config_code_paths(&bytes) {
            Ok(p) => p,
            Err(why) => {
                notices.push(format!(
                    "{}/{} could not be read for hooks or includes inside the project ({why}); \
                     if core.hooksPath or an include points into the project, add it to [workspace] protect",
                    project.display(),
                    file.display()
                ));
                continue;
            }
        };
        let base = project.join(file.parent().unwrap_or(Path::new("")));
        for (key, value) in paths {
            let is_dir = key == "core.hooksPath";
            let path = if value == "~" {
                home.to_owned()
            } else if let Some(rest) = value.strip_prefix("~/") {
                home.join(rest)
            } else if Path::new(&value).is_absolute() {
                PathBuf::from(&value)
            } else if is_dir {
                project.join(&value)
            } else {
                base.join(&value)
            };
            let Some(rel) = lexical_normal(&path)
                .and_then(|p| p.strip_prefix(project).ok().map(Path::to_owned))
                .filter(|r| !r.as_os_str().is_empty())
            else {
                continue;
            };
            // husky 9 sets core.hooksPath = .husky/_, whose hooks are shims that run
            // .husky/<hook> one folder up: that folder is where the hooks really are.
            if is_dir && rel.file_name() == Some(std::ffi::OsStr::new("_")) {
                if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                    out.push((parent.to_owned(), true));
                }
            }
            if !is_dir {
                todo.push((rel.clone(), depth + 1));
            }
            if !out.iter().any(|(r, _)| *r == rel) {
                out.push((rel, is_dir));
            }
        }
    }
    Ok(out)
}

/// `path` with `.` and `..` resolved by name only (no symlink is looked at); `None` when it
/// climbs above `/`.
fn lexical_normal(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// Every folder of wrapix's own under the home that a later run reads or runs from: the
/// config, the state (trust records, agent state), the image store and the assembled `/etc`,
/// both where the XDG variables of this run put them and where they are without the
/// variables (a later run may be started without them).
fn own_folders(home: &Path, env: &BTreeMap<String, String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (var, default) in [
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
    ] {
        out.push(home.join(default).join("wrapix"));
        if let Some(p) = env.get(var).map(PathBuf::from).filter(|p| p.is_absolute()) {
            out.push(p.join("wrapix"));
        }
    }
    out
}

/// `path` with its longest existing ancestor resolved (symlinks followed: these are the
/// user's own paths, named by HOME and the XDG variables), and the rest appended by name.
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut cur = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                cur = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Includes are followed from `.git/config` and `.git/config.worktree` through every file
    /// inside the project, each relative to the file that names it; a cycle ends; what is
    /// outside the project is left alone.
    #[test]
    fn config_code_paths_follow_includes_in_turn() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = std::fs::canonicalize(t.path()).unwrap_or_else(|e| panic!("{e}"));
        let w = |rel: &str, text: &str| {
            let f = p.join(rel);
            std::fs::create_dir_all(f.parent().unwrap_or(&p)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(f, text).unwrap_or_else(|e| panic!("{e}"));
        };
        w(".git/config", "[include]\n\tpath = ../conf/shared\n");
        w(
            "conf/shared",
            "[include]\n\tpath = local\n[includeIf \"gitdir:/x/\"]\n\tpath = /etc/elsewhere\n\
             [core]\n\thooksPath = .githooks\n",
        );
        w("conf/local", "[include]\n\tpath = ../.git/config\n");
        w(".git/config.worktree", "[core]\n\thooksPath = .husky/_\n");
        let dir = wrapix_hostfs::Dir::open(&p).unwrap_or_else(|e| panic!("{e}"));
        let mut notices = Vec::new();
        let mut got = config_code_paths(&dir, &p, Path::new("/home/u"), &mut notices)
            .unwrap_or_else(|e| panic!("{e}"));
        got.sort();
        let want: Vec<(PathBuf, bool)> = [
            (".git/config", false),
            (".githooks", true),
            (".husky", true),
            (".husky/_", true),
            ("conf/local", false),
            ("conf/shared", false),
        ]
        .iter()
        .map(|(r, d)| (PathBuf::from(r), *d))
        .collect();
        assert_eq!(got, want);
        assert!(notices.is_empty(), "{notices:?}");
    }
}
