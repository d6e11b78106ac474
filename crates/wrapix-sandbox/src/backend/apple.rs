//! The Apple `container` backend (macOS 26+, Apple silicon): each sandbox is a lightweight
//! Linux VM started by `container run`.
//!
//! Planning is platform-independent and tested on Linux; only [`Apple::locate`]'s
//! `cfg!(target_os = "macos")` and the image load in [`Apple::stage`] depend on the Mac. On
//! any other system the backend is refused (fail closed) and `wrapix doctor` says why.
//!
//! Isolation is the VM: its own kernel, only the shared folders of the host. Inside, the
//! entrypoint ([`entrypoint`]) runs as root, then drops to the host user's UID/GID with no
//! capabilities and `no_new_privs`.
//!
//! virtio-fs, as `container` uses it, has limits that the original design worked around and
//! so does this backend:
//! - only folders can be shared: generated files are staged in a per-run folder (shared
//!   read-only at `/mnt/wrapix/stage`) and copied into place; a single-file mount shares its
//!   parent folder at `/mnt/wrapix/file-N`, the file is bound inside the VM, and the staging
//!   folder is detached before the command runs;
//! - shared files appear owned by root: the home is the VM's own folder, owned by the user;
//! - Unix sockets do not pass: notifications go over TCP to the host gateway (port 5959),
//!   where `wrapix notifyd --listen-tcp` listens on the Mac;
//! - nested read-only mounts inside the workspace (protected paths) are made inside the VM
//!   (`mount --bind` + `remount,ro`), where the dropped user cannot undo them.
//!
//! Network: `open` is the VM's vmnet network (`--network default`). `none` cannot be
//! expressed by the `container` CLI (every container gets a vmnet interface), so it is
//! refused. DNS: the host's resolvers unless they are loopback addresses (unreachable from
//! the VM); then the CLI's default, the gateway's resolver.
//!
//! Resources: `--cpus`, `--memory` (the VM's size); `pids` as `prlimit --nproc` on the user's
//! processes in the VM.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, Network};

use super::{find_program, Backend, Check, Probe};
use crate::error::SandboxError;
use crate::plan::{LaunchPlan, SignalTarget};
use crate::prepare::Prepared;

pub mod entrypoint;

use entrypoint::{Copy, Entrypoint, InBind};

/// The shim's fd for the CLI's PID (as podman's).
const INFO_FD: i32 = 4;
/// Where the staged folder (entrypoint, generated files) is shared in the VM.
const STAGE_IN_VM: &str = "/mnt/wrapix/stage";
/// Where a Linux build of wrapix is shared in the VM.
const LINUX_BIN_IN_VM: &str = "/mnt/wrapix/bin";
/// The port `wrapix notifyd --listen-tcp` listens on by default.
pub const NOTIFY_PORT: u16 = 5959;

/// Host variables the `container` CLI needs.
const CONTAINER_ENV: &[&str] = &["HOME", "PATH", "USER", "LOGNAME", "TMPDIR"];

/// What a bind's source is on the host (virtio-fs shares folders only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Dir,
    File,
}

fn host_kind(p: &Path) -> Option<SourceKind> {
    let m = std::fs::metadata(p).ok()?;
    Some(if m.is_dir() {
        SourceKind::Dir
    } else {
        SourceKind::File
    })
}

#[derive(Debug, Clone)]
pub struct Apple {
    /// Apple's `container` CLI.
    pub container: Option<PathBuf>,
    /// This host is a Mac (the backend refuses to plan elsewhere).
    pub on_macos: bool,
    /// Per-run folder for the entrypoint, generated files and the env file.
    pub stage: PathBuf,
    /// Container name, stable for the run.
    pub name: String,
    /// The host's resolvers that the VM can reach (not loopback).
    pub dns: Vec<IpAddr>,
    /// A folder holding a Linux build of `wrapix` (for notifications and ralph inside), shared
    /// read-only: `$WRAPIX_LINUX_BIN`, else `$XDG_DATA_HOME/wrapix/linux-bin` when it exists.
    pub linux_bin: Option<PathBuf>,
    /// The CLI's own environment (from the host).
    pub host_env: Vec<(String, String)>,
    /// Whether a bind source is a folder or a file (the host's metadata; replaced in tests).
    pub kind: fn(&Path) -> Option<SourceKind>,
}

/// The registry's entry ([`super::REGISTRY`]).
pub const ENTRY: super::Entry = super::Entry {
    name: wrapix_spec::BackendName {
        name: "apple",
        aliases: &["apple-container"],
    },
    summary: "Apple container (macOS 26+, Apple silicon)",
    locate: |at| Box::new(Apple::locate(at.env, at.uid, at.project)),
};

fn unavailable(problem: impl Into<String>, fix: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable {
        backend: "apple",
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Why the backend cannot run on this system, when it is not a Mac.
const NOT_MACOS: &str = "the apple backend runs Apple's `container` CLI, which exists only on macOS 26 or later on Apple silicon; this host is not a Mac";
const NOT_MACOS_FIX: &str = "use --backend bwrap (the default on Linux), podman or nspawn";

impl Apple {
    pub fn locate(env: &BTreeMap<String, String>, uid: u32, project: &Path) -> Self {
        let home = env
            .get("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/"));
        let state = wrapix_spec::state::root(&home, env).join("apple");
        let base: String = project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(32)
            .collect();
        let name = format!("wrapix-{}-{}", base.trim_matches('-'), std::process::id());
        let data = env
            .get("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".local/share"));
        let linux_bin = env
            .get("WRAPIX_LINUX_BIN")
            .map(PathBuf::from)
            .or_else(|| Some(data.join("wrapix/linux-bin")))
            .filter(|d| d.join("wrapix").is_file());
        let dns = std::fs::read_to_string("/etc/resolv.conf")
            .map(|c| reachable_resolvers(&c))
            .unwrap_or_default();
        Apple {
            container: find_program("container", env.get("PATH").map(String::as_str)),
            on_macos: cfg!(target_os = "macos"),
            stage: state.join(format!("run-{uid}")).join(&name),
            name,
            dns,
            linux_bin,
            host_env: CONTAINER_ENV
                .iter()
                .filter_map(|k| env.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect(),
            kind: host_kind,
        }
    }

    fn share(&self) -> PathBuf {
        self.stage.join("share")
    }

    fn env_file(&self) -> PathBuf {
        self.stage.join("env")
    }

    /// The image's name in `container`'s store (tagged so by [`Apple::stage`]).
    fn image_ref(run: &Prepared) -> Result<String, SandboxError> {
        let rootfs = run.root.image.as_deref().ok_or_else(|| {
            unavailable(
                "the apple backend runs from an image, and the profile is \"host\"",
                "set profile = \"base\" (or another image profile)",
            )
        })?;
        let hash = rootfs
            .parent()
            .and_then(Path::file_name)
            .map(|h| h.to_string_lossy().into_owned())
            .ok_or_else(|| {
                unavailable(
                    format!("{} is not in the image cache", rootfs.display()),
                    "rebuild the image: wrapix image build",
                )
            })?;
        Ok(format!("localhost/wrapix:{hash}"))
    }

    /// The environment file's text: the sandbox's environment, minus the Unix socket
    /// (notifications go over TCP here).
    fn env_text(run: &Prepared) -> Result<String, SandboxError> {
        let mut env = String::new();
        for (k, v) in &run.env {
            if k == "WRAPIX_NOTIFY_SOCKET" {
                continue;
            }
            if v.contains(['\n', '\r']) {
                return Err(SandboxError::Missing {
                    what: format!(
                        "the variable {k} has a line break, which container's --env-file cannot hold"
                    ),
                    fix: "remove the line break from its value".into(),
                });
            }
            env.push_str(&format!("{k}={v}\n"));
        }
        Ok(env)
    }

    /// The argv and the entrypoint script.
    pub fn build(&self, run: &Prepared) -> Result<(Vec<OsString>, Entrypoint), SandboxError> {
        if !self.on_macos {
            return Err(unavailable(NOT_MACOS, NOT_MACOS_FIX));
        }
        let container = self.container.clone().ok_or_else(|| {
            unavailable(
                "Apple's `container` CLI is not installed",
                "install it from https://github.com/apple/container/releases, then run `container system start`",
            )
        })?;
        if run.network == Network::None {
            return Err(unavailable(
                "network = \"none\" cannot be expressed with Apple's `container` CLI: every container gets a vmnet network interface",
                "use network = \"open\" on macOS, or run this project on Linux (bwrap or podman) for network = \"none\"",
            ));
        }
        let image = Self::image_ref(run)?;
        let user = &run.spec.user;
        let ws = wrapix_spec::Spec::WORKSPACE;
        let home = run.home.as_path().to_string_lossy().into_owned();
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: String| a.push(s.into());
        push("__exec-info".into());
        push(INFO_FD.to_string());
        push("--".into());
        push(container.to_string_lossy().into_owned());
        push("run".into());
        push("--rm".into());
        push(format!("--name={}", self.name));
        push("--interactive".into());
        if run.terminal {
            push("--tty".into());
        }
        let res = run.spec.resources;
        if let Some(c) = res.cpus {
            push(format!("--cpus={c}"));
        }
        if let Some(m) = res.memory_mb {
            push(format!("--memory={m}M"));
        }
        push("--network=default".into());
        for d in &self.dns {
            push(format!("--dns={d}"));
        }
        push(format!("--env-file={}", self.env_file().display()));
        // The entrypoint changes to /workspace once the mounts are there.
        push("--workdir=/".into());

        let mut ep = Entrypoint {
            root: String::new(),
            uid: user.uid,
            gid: user.gid,
            user: user.name.clone(),
            home: home.clone(),
            home_dirs: Vec::new(),
            copies: Vec::new(),
            binds: Vec::new(),
            detach: Vec::new(),
            linux_bin: None,
            pids: res.pids.map(|p| p as u32),
            notify_port: NOTIFY_PORT,
        };
        let mount = |src: &Path, dst: &str, ro: bool| -> Result<String, SandboxError> {
            let s = mount_path(src)?;
            let d = mount_path(Path::new(dst))?;
            Ok(format!(
                "--mount=type=bind,source={},target={}{}",
                s.display(),
                d.display(),
                if ro { ",readonly" } else { "" }
            ))
        };
        push(mount(&self.share(), STAGE_IN_VM, true)?);
        if let Some(src) = &run.home_source {
            push(mount(src, &home, false)?);
        }
        // Generated files: copied from the share. resolv.conf is the CLI's (--dns).
        let mut home_dirs: Vec<String> = Vec::new();
        for (i, f) in run.files.iter().enumerate() {
            let dest = f.dest.as_path();
            if dest == Path::new("/etc/resolv.conf") {
                continue;
            }
            add_home_dirs(&mut home_dirs, run.home.as_path(), dest);
            ep.copies.push(Copy {
                from: format!("{STAGE_IN_VM}/files/{i}"),
                to: dest.to_string_lossy().into_owned(),
                writable: f.writable,
            });
        }
        // Binds, in mount order.
        let ws_source = run
            .binds
            .iter()
            .find(|b| b.dest.as_path() == Path::new(ws))
            .map(|b| b.source.clone());
        let mut file_dirs: Vec<(PathBuf, String)> = Vec::new();
        for b in &run.binds {
            let dest = b.dest.as_path();
            let ro = b.mode == MountMode::ReadOnly;
            if dest == Path::new(ws) {
                push(mount(&b.source, ws, false)?);
                continue;
            }
            // Inside the workspace: already shared; bound on itself inside the VM.
            if let (Ok(rel), Some(wsrc)) = (dest.strip_prefix(ws), ws_source.as_ref()) {
                if b.source == wsrc.join(rel) {
                    let d = dest.to_string_lossy().into_owned();
                    ep.binds.push(InBind {
                        from: d.clone(),
                        to: d,
                        read_only: ro,
                        create_file: false,
                    });
                    continue;
                }
            }
            match (self.kind)(&b.source) {
                Some(SourceKind::Dir) => push(mount(&b.source, &dest.to_string_lossy(), ro)?),
                Some(SourceKind::File) => {
                    let (parent, name) = match (b.source.parent(), b.source.file_name()) {
                        (Some(p), Some(n)) => (p.to_path_buf(), n.to_string_lossy().into_owned()),
                        _ => {
                            return Err(unavailable(
                                format!("cannot share the file {}", b.source.display()),
                                "mount its folder instead",
                            ))
                        }
                    };
                    let staging = match file_dirs.iter().find(|(p, _)| *p == parent) {
                        Some((_, s)) => s.clone(),
                        None => {
                            let s = format!("/mnt/wrapix/file-{}", file_dirs.len());
                            // Read-write only when a read-write file needs it.
                            let any_rw = run.binds.iter().any(|o| {
                                o.source.parent() == Some(parent.as_path())
                                    && o.mode == MountMode::ReadWrite
                            });
                            push(mount(&parent, &s, !any_rw)?);
                            file_dirs.push((parent, s.clone()));
                            ep.detach.push(s.clone());
                            s
                        }
                    };
                    add_home_dirs(&mut home_dirs, run.home.as_path(), dest);
                    ep.binds.push(InBind {
                        from: format!("{staging}/{name}"),
                        to: dest.to_string_lossy().into_owned(),
                        read_only: ro,
                        create_file: true,
                    });
                }
                None => {
                    return Err(SandboxError::Missing {
                        what: format!("the mount source {} does not exist", b.source.display()),
                        fix: "create it, or remove the mount".into(),
                    })
                }
            }
        }
        ep.home_dirs = home_dirs;
        if let Some(dir) = &self.linux_bin {
            push(mount(dir, LINUX_BIN_IN_VM, true)?);
            ep.linux_bin = Some(LINUX_BIN_IN_VM.into());
        }
        push("--entrypoint=/bin/sh".into());
        push(image);
        push(format!("{STAGE_IN_VM}/entrypoint.sh"));
        for c in &run.command {
            push(c.clone());
        }
        Ok((a, ep))
    }
}

/// Folders between the home (exclusive) and `dest`'s parent, parents first, once each.
fn add_home_dirs(out: &mut Vec<String>, home: &Path, dest: &Path) {
    let Ok(rel) = dest.strip_prefix(home) else {
        return;
    };
    let mut at = home.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(c);
        let s = at.to_string_lossy().into_owned();
        if !out.contains(&s) {
            out.push(s);
        }
    }
}

/// `--mount` splits on `,` and `=`; a path with either (or a line break) cannot be passed.
fn mount_path(p: &Path) -> Result<&Path, SandboxError> {
    let s = p.to_string_lossy();
    if s.contains([',', '=', '\n']) {
        return Err(unavailable(
            format!("the path {s:?} contains `,`, `=` or a line break, which container's --mount cannot take"),
            "rename it",
        ));
    }
    Ok(p)
}

/// The nameservers of a resolv.conf that a VM can reach (not loopback).
pub fn reachable_resolvers(conf: &str) -> Vec<IpAddr> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect()
}

impl Backend for Apple {
    fn name(&self) -> &'static str {
        "apple"
    }

    fn probe(&self) -> Probe {
        let mut checks = Vec::new();
        if !self.on_macos {
            checks.push(Check::fail("macOS", NOT_MACOS, NOT_MACOS_FIX));
            return Probe {
                backend: "apple",
                checks,
            };
        }
        checks.push(macos::version_check());
        match &self.container {
            Some(c) => {
                checks.push(Check::pass("container", c.display().to_string()));
                checks.push(macos::system_check(c));
            }
            None => checks.push(Check::fail(
                "container",
                "Apple's `container` CLI is not on PATH",
                "install it from https://github.com/apple/container/releases",
            )),
        }
        Probe {
            backend: "apple",
            checks,
        }
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        let (args, _) = self.build(run)?;
        Ok(LaunchPlan {
            backend: "apple",
            program: run.self_exe.clone(),
            args,
            env: self
                .host_env
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            fds: Vec::new(),
            pass: Vec::new(),
            info_fd: Some(INFO_FD),
            // The entrypoint exits 125 when the set-up fails; the command's own codes pass.
            not_started: None,
            block_fd: None,
            pid_file: None,
            holder_in_child: None,
            release_fifo: None,
            guard_backend: false,
            pin_mounts: Vec::new(),
            network: None,
            terminal: run.terminal,
            // The CLI passes signals into the container.
            signals: SignalTarget::Process,
            // A killed CLI leaves the container's VM running.
            after_kill: self.container.as_ref().map(|c| {
                vec![
                    c.as_os_str().to_owned(),
                    "delete".into(),
                    "--force".into(),
                    self.name.clone().into(),
                ]
            }),
        })
    }

    /// Writes the entrypoint, the generated files and the env file, and loads the image into
    /// `container`'s store when it is not there yet.
    fn stage(&self, run: &Prepared) -> Result<(), SandboxError> {
        let (_, ep) = self.build(run)?;
        let env = Self::env_text(run)?;
        super::stage::private_dir(&self.stage)?;
        let write = super::stage::write_file;
        let share = self.share();
        let files = share.join("files");
        for d in [&share, &files] {
            std::fs::create_dir_all(d)
                .map_err(|e| SandboxError::io(format!("create {}", d.display()), e))?;
        }
        write(&share.join("entrypoint.sh"), ep.render().as_bytes(), 0o555)?;
        for (i, f) in run.files.iter().enumerate() {
            write(&files.join(i.to_string()), &f.contents, 0o444)?;
        }
        write(&self.env_file(), env.as_bytes(), 0o600)?;
        if let Some(c) = &self.container {
            macos::load_image(c, run, &Self::image_ref(run)?, &self.stage)?;
        }
        Ok(())
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.stage);
    }

    fn needs_image(&self) -> bool {
        true
    }
}

mod macos;

/// Loads a cached image into Apple `container`'s store as `reference` unless it is there
/// (`wrapix builder` on macOS uses it too).
pub use macos::load as load_image;

#[cfg(test)]
mod tests;
