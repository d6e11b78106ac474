//! `[forward]`: what of the host a sandbox gets on request, and the helpers wrapix starts for
//! it (a private Xvfb, a private ssh-agent). [`start`] checks the host and starts the helpers
//! before the sandbox; what the sandbox gets is plain data ([`Provided`]: binds, generated
//! files, environment) that [`crate::prepare`] adds to the run, so every backend sees one
//! description. Fail closed: a forward the host cannot provide is an error that names the fix,
//! never skipped.
//!
//! Helpers live exactly as long as [`Helpers`] (killed and reaped on drop), and with
//! `PR_SET_PDEATHSIG` when wrapix itself is killed. Their sockets are in the run's private
//! folder ([`runtime::RunDir`]), which also holds the record `wrapix screenshot` reads.

use std::collections::BTreeMap;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;

use wrapix_spec::Spec;
#[cfg(target_os = "linux")]
use wrapix_spec::{Display, MountMode, SandboxPath, SshAgent};

use crate::error::SandboxError;
use crate::prepare::{Bind, GeneratedFile};

// The helpers and the host's sockets and devices are Linux-only; macOS has no forwards (the
// apple backend carries out none: `start` refuses them there).
#[cfg(target_os = "linux")]
pub mod audio;
#[cfg(target_os = "linux")]
pub mod dbus;
#[cfg(target_os = "linux")]
pub mod gpu;
#[cfg(target_os = "linux")]
pub mod nix;
pub mod runtime;
#[cfg(target_os = "linux")]
pub mod ssh;
#[cfg(target_os = "linux")]
pub mod wayland;
#[cfg(target_os = "linux")]
pub mod x11;
pub mod xauth;

/// Where the sandbox finds the Xauthority file of its display.
pub const SANDBOX_XAUTHORITY: &str = "/run/wrapix/Xauthority";
/// Where the sandbox finds its SSH agent's socket.
pub const SANDBOX_SSH_AUTH_SOCK: &str = "/run/wrapix/ssh-agent.sock";
/// The X sockets' folder, in the sandbox as on the host.
pub const X11_DIR: &str = "/tmp/.X11-unix";

/// What the sandbox gets from the forwards: added to the run by [`crate::prepare`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provided {
    pub binds: Vec<Bind>,
    pub files: Vec<GeneratedFile>,
    pub env: BTreeMap<String, String>,
    /// Device nodes bound as devices (`gpu = true`), at the same path inside.
    pub devices: Vec<PathBuf>,
    pub notices: Vec<String>,
    /// Set by [`start`] when the spec forwards anything: [`crate::prepare`] refuses a spec
    /// with forwards that never went through it.
    pub started: bool,
    /// Set when the egress proxy of an allowlist runs ([`crate::egress`]): [`crate::prepare`]
    /// refuses an allowlist without it.
    pub egress: bool,
    /// The CA certificate the sandbox trusts when credentials are injected (PEM; empty in a
    /// dry run): [`crate::prepare`] writes the bundle.
    pub egress_ca: Option<String>,
    /// The credentials' secrets: [`crate::prepare`] refuses a sandbox environment that
    /// holds one.
    pub secrets: crate::egress::Secrets,
}

/// The helpers started for a run (and its private folder), stopped and removed on drop.
#[derive(Debug, Default)]
pub struct Helpers {
    children: Vec<(String, Child)>,
    /// Pipes whose closing tells a helper to exit (`xdg-dbus-proxy --fd`): closed after the
    /// helpers are killed.
    fds: Vec<std::os::fd::OwnedFd>,
    /// The egress proxy (stopped before the run's folder goes).
    pub egress: Option<crate::egress::Proxy>,
    pub run_dir: Option<runtime::RunDir>,
}

#[cfg(target_os = "linux")]
impl Helpers {
    fn adopt(&mut self, what: &str, child: Child) {
        self.children.push((what.to_owned(), child));
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        self.egress.take();
        for (what, child) in &mut self.children {
            if let Err(e) = child.kill() {
                tracing::debug!("stopping {what}: {e}");
            }
            if let Err(e) = child.wait() {
                tracing::debug!("reaping {what}: {e}");
            }
        }
        self.children.clear();
        self.fds.clear();
        if let Some(dir) = self.run_dir.take() {
            dir.remove();
        }
    }
}

/// A forward that this host cannot provide, with the fix.
pub(crate) fn missing(what: impl Into<String>, fix: impl Into<String>) -> SandboxError {
    SandboxError::Missing {
        what: what.into(),
        fix: fix.into(),
    }
}

/// Checks the host for each forward of `spec`, starts the helpers, and says what the sandbox
/// gets. `dry_run`: starts nothing and writes nothing; the binds name where things would be.
#[cfg(target_os = "linux")]
pub fn start(
    spec: &Spec,
    env: &BTreeMap<String, String>,
    dry_run: bool,
) -> Result<(Helpers, Provided), SandboxError> {
    let fw = &spec.forward;
    let mut helpers = Helpers::default();
    let mut out = Provided::default();
    let egress = spec.network.egress();
    if !fw.any() && egress.is_none() {
        return Ok((helpers, out));
    }
    out.started = fw.any();
    let needs_dir = fw.display == Some(Display::Xvfb)
        || matches!(fw.ssh_agent, Some(SshAgent::Keys(_)))
        || !fw.ports.is_empty()
        || !fw.dbus.is_empty()
        || egress.is_some();
    if needs_dir {
        helpers.run_dir = Some(runtime::RunDir::create(env, &spec.project, dry_run)?);
    }
    if let Some(egress) = egress {
        let dir = run_dir(&helpers)?;
        let sock_dir = dir.subdir("egress")?;
        let mut ca_pem = (!egress.credentials.is_empty()).then(String::new);
        if !dry_run {
            let log = crate::egress::log::path(&spec.user.home, env);
            let ca_dir = crate::egress::ca::dir(&wrapix_spec::state::root(&spec.user.home, env));
            let proxy = crate::egress::start(egress, &dir.id, &sock_dir, &log, &ca_dir, env)?;
            ca_pem = proxy.ca_pem.clone();
            out.secrets = proxy.secrets.clone();
            helpers.egress = Some(proxy);
        }
        crate::egress::provide(&mut out, &sock_dir, ca_pem.as_deref());
    }
    match fw.display {
        None => {}
        Some(Display::X11) => x11::host_display(env, &spec.user.home, &mut out)?,
        Some(Display::Xvfb) => {
            let dir = run_dir(&helpers)?;
            let (child, display) = x11::start_xvfb(env, dir, dry_run)?;
            if let Some(child) = child {
                helpers.adopt("Xvfb", child);
            }
            x11::provide(&display, &mut out);
        }
        Some(Display::Wayland) => wayland::provide(env, &mut out)?,
    }
    match &fw.ssh_agent {
        None => {}
        Some(SshAgent::Host) => ssh::host_agent(env, &mut out)?,
        Some(SshAgent::Keys(keys)) => {
            let dir = run_dir(&helpers)?;
            let (child, sock) = ssh::private_agent(env, dir, keys, dry_run)?;
            if let Some(child) = child {
                helpers.adopt("ssh-agent", child);
            }
            out.binds.push(Bind {
                source: sock,
                dest: SandboxPath::from_static(SANDBOX_SSH_AUTH_SOCK),
                mode: MountMode::ReadOnly,
            });
            out.env
                .insert("SSH_AUTH_SOCK".into(), SANDBOX_SSH_AUTH_SOCK.into());
        }
    }
    if fw.git_config {
        git_config(&spec.user.home, &spec.user.sandbox_home(), &mut out);
    }
    if fw.audio {
        audio::provide(env, &mut out)?;
    }
    if !fw.dbus.is_empty() {
        let dir = run_dir(&helpers)?;
        if let Some((child, fd)) = dbus::start(env, dir, &fw.dbus, dry_run, &mut out)? {
            helpers.adopt("xdg-dbus-proxy", child);
            helpers.fds.push(fd);
        }
    }
    if fw.nix {
        nix::provide(nix::check(Path::new("/"))?, &mut out);
    }
    if fw.gpu {
        gpu::provide(gpu::host_devices(), &mut out)?;
    }
    if let Some(dir) = &helpers.run_dir {
        if !dry_run {
            dir.write_record(spec)?;
        }
    }
    Ok((helpers, out))
}

/// macOS: forwards and network allowlists are Linux-only (the helpers, the egress proxy; the
/// apple backend carries out neither), refused before anything starts.
#[cfg(not(target_os = "linux"))]
pub fn start(
    spec: &Spec,
    env: &BTreeMap<String, String>,
    dry_run: bool,
) -> Result<(Helpers, Provided), SandboxError> {
    let _ = (env, dry_run);
    let mut asked: Vec<&str> = spec.forward.names();
    if spec.network.egress().is_some() {
        asked.push("a network allowlist");
    }
    if asked.is_empty() {
        return Ok((Helpers::default(), Provided::default()));
    }
    Err(SandboxError::Unavailable {
        backend: crate::backend::DEFAULT,
        problem: format!(
            "{} {} Linux-only: wrapix's helpers and egress proxy run on Linux hosts",
            asked.join(", "),
            if asked.len() == 1 { "is" } else { "are" }
        ),
        fix: "remove the [forward] keys, ports and allowlist from the config, or run on Linux"
            .into(),
    })
}

#[cfg(target_os = "linux")]
fn run_dir(helpers: &Helpers) -> Result<&runtime::RunDir, SandboxError> {
    helpers.run_dir.as_ref().ok_or_else(|| {
        missing(
            "the run's private folder was not created",
            "report this bug",
        )
    })
}

/// `git_config = true`: `~/.gitconfig` and `~/.config/git/` read-only, those that exist.
#[cfg(target_os = "linux")]
fn git_config(host_home: &Path, home: &SandboxPath, out: &mut Provided) {
    let mut found = false;
    for (rel, inside) in [(".gitconfig", ".gitconfig"), (".config/git", ".config/git")] {
        let source: PathBuf = host_home.join(rel);
        if source.exists() {
            found = true;
            out.binds.push(Bind {
                source,
                dest: home.join(inside),
                mode: MountMode::ReadOnly,
            });
        }
    }
    if !found {
        out.notices.push(format!(
            "git_config = true, but neither {0}/.gitconfig nor {0}/.config/git exists: nothing to forward",
            host_home.display()
        ));
    }
}

/// A check failed with `e`'s own problem and fix (a [`missing`] error), else `fix`.
#[cfg(target_os = "linux")]
fn failed(label: &str, e: SandboxError, fix: &str) -> crate::backend::Check {
    match e {
        SandboxError::Missing { what, fix } => crate::backend::Check::fail(label, what, fix),
        other => crate::backend::Check::fail(label, other.to_string(), fix),
    }
}

/// `wrapix doctor`: what this host can forward (each optional: only a config that asks for
/// a forward needs it). None on macOS, which has no forwards.
#[cfg(not(target_os = "linux"))]
pub fn doctor_checks(env: &BTreeMap<String, String>) -> Vec<crate::backend::Check> {
    let _ = env;
    Vec::new()
}

/// `wrapix doctor`: what this host can forward (each optional: only a config that asks for
/// a forward needs it).
#[cfg(target_os = "linux")]
pub fn doctor_checks(env: &BTreeMap<String, String>) -> Vec<crate::backend::Check> {
    use crate::backend::{find_program, Check};
    let path = env.get("PATH").map(String::as_str);
    let mut out = Vec::new();
    let x11 = match env.get("DISPLAY").filter(|d| !d.is_empty()) {
        None => Check::fail(
            "display = \"x11\"",
            "DISPLAY is not set",
            "run from a desktop session, or use display = \"xvfb\"",
        ),
        Some(d) => match x11::local_display_number(d) {
            None => Check::fail(
                "display = \"x11\"",
                format!("DISPLAY={d} is not a local display"),
                "use a local display (:N) or display = \"xvfb\"",
            ),
            Some(n) => {
                let sock = Path::new(X11_DIR).join(format!("X{n}"));
                if sock.exists() {
                    Check::pass(
                        "display = \"x11\"",
                        format!("DISPLAY={d}, {}", sock.display()),
                    )
                } else {
                    Check::fail(
                        "display = \"x11\"",
                        format!("no socket {}", sock.display()),
                        "start the X server with its Unix socket, or use display = \"xvfb\"",
                    )
                }
            }
        },
    };
    out.push(x11.optional());
    let have = |name: &str, label: &str, fix: &str| match find_program(name, path) {
        Some(p) => Check::pass(label, p.display().to_string()),
        None => Check::fail(label, format!("{name} is not installed"), fix).optional(),
    };
    out.push(
        match wayland::host_socket(env) {
            Ok(p) => Check::pass("display = \"wayland\"", p.display().to_string()),
            Err(e) => failed(
                "display = \"wayland\"",
                e,
                "run from your Wayland session, or use display = \"xvfb\"",
            ),
        }
        .optional(),
    );
    out.push(have(
        "Xvfb",
        "display = \"xvfb\"",
        "sudo apt-get install xvfb",
    ));
    out.push(
        match env.get("SSH_AUTH_SOCK").filter(|s| Path::new(s).exists()) {
            Some(s) => Check::pass("ssh_agent = true", format!("SSH_AUTH_SOCK={s}")),
            None => Check::fail(
                "ssh_agent = true",
                "no agent (SSH_AUTH_SOCK unset or gone)",
                "eval $(ssh-agent); ssh-add, or use ssh_agent = [\"~/.ssh/KEY\"]",
            ),
        }
        .optional(),
    );
    out.push(have(
        "ssh-agent",
        "ssh_agent = [keys]",
        "sudo apt-get install openssh-client",
    ));
    out.push(have(
        "pasta",
        "[[ports]] / -p",
        "sudo apt-get install passt",
    ));
    out.push(match dbus::session_bus(env) {
        None => Check::fail(
            "dbus = [names]",
            "no session bus (DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus)",
            "run from your desktop session",
        )
        .optional(),
        Some(a) => match find_program("xdg-dbus-proxy", path) {
            Some(p) => Check::pass("dbus = [names]", format!("{a} through {}", p.display())),
            None => Check::fail(
                "dbus = [names]",
                "xdg-dbus-proxy is not installed (the filtering proxy dbus goes through)",
                "sudo apt-get install xdg-dbus-proxy",
            )
            .optional(),
        },
    });
    out.push(match nix::check(Path::new("/")) {
        Ok(_) => Check::pass(
            "nix = true",
            format!("{} and {}", nix::STORE, nix::DAEMON_SOCKET),
        ),
        Err(e) => failed("nix = true", e, "install Nix in multi-user mode (--daemon)").optional(),
    });
    let gpus = gpu::host_devices();
    out.push(if gpus.is_empty() {
        Check::fail(
            "gpu = true",
            "no /dev/dri/renderD*, no /dev/nvidia*",
            "install the GPU's kernel driver",
        )
        .optional()
    } else {
        Check::pass(
            "gpu = true",
            gpus.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    });
    out.push(
        match (audio::pulse_socket(env), audio::pipewire_socket(env)) {
            (Err(e), _) => failed("audio = true", e, "unset PULSE_SERVER or fix it"),
            (Ok(None), None) => Check::fail(
                "audio = true",
                "no PulseAudio or PipeWire socket ($XDG_RUNTIME_DIR/pulse/native, pipewire-0)",
                "run from your desktop session with its sound server (pulseaudio --start)",
            ),
            (Ok(pulse), pw) => Check::pass(
                "audio = true",
                pulse
                    .iter()
                    .chain(pw.iter())
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
        .optional(),
    );
    out
}
