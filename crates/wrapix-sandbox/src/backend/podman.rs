//! The rootless Podman backend.
//!
//! Isolation: Podman's user namespace with `--userns=keep-id` (the host user's UID inside, so
//! `/workspace` files stay the user's), `--cap-drop=all`, `--security-opt no-new-privileges`,
//! the image's root read-only (`--read-only`, tmpfs on `/tmp`, `/var/tmp`, `/run`), wrapix's
//! own seccomp policy (the one bubblewrap gets, as an OCI profile: `podman/seccomp.rs`;
//! Podman's default profile lets a container create user namespaces, use keyrings and
//! `TIOCSTI`), new PID/IPC/UTS/mount/network namespaces, and wrapix's own init as PID 1.
//!
//! Network: always `--network=none`. A network allowlist stays so (loopback only): the egress
//! proxy's socket folder is bound at `/run/wrapix/egress` and wrapix's init relays its
//! loopback port to it, as with bubblewrap ([`crate::egress`]). For `open`, the executor attaches pasta to the container's
//! network namespace from outside, as for bubblewrap ([`crate::network`]: no port forwarding,
//! `--no-map-gw`, a `prohibit` route for every host address, the DNS forward), while the
//! container's init waits: Podman writes the init's host PID to `--pidfile` once the namespaces
//! exist, and `--preserve-fds=1` hands the init the read end of the executor's release pipe as
//! fd 3 (`__init --wait-fd 3`); on end-of-file instead of the release byte it exits 125 without
//! running the command. Podman 4.3 has no pasta network mode, and slirp4netns would let the
//! sandbox reach host services listening on all addresses.
//!
//! Image delivery: `--rootfs <image>/rootfs:O` — the cache directory itself, read-only, under a
//! throw-away overlay: without `:O`, the runtime creates missing mount points (the home, a
//! mount's destination) and `/etc/mtab` *in the cache*, owned by a subordinate UID. A
//! `podman load` would copy the image into Podman's storage once per storage (per user and
//! `$HOME`), doubling disk use and adding seconds per new image, and the cache would stop being
//! the single source of truth that bubblewrap also runs from. The OCI archive (`wrapix image
//! export`) remains for `podman load` and Apple's `container`.
//!
//! Generated files and the environment cannot travel on memfds through Podman, so
//! [`Podman::stage`] writes them to a private per-run folder (mode 0700) that the plan binds
//! read-only; the environment goes in an `--env-file`, never on the command line. Podman cannot
//! make symlinks either, so `/run/wrapix` is a staged folder too (bound read-only), holding the
//! links `notify.sock -> notify.d/notify.sock` and `bin/wrapix-notify`, `bin/ralph -> wrapix` and the empty
//! mount points the plan binds wrapix, the notification folder and anything else below
//! `/run/wrapix` onto (the egress proxy's socket folder; Podman mounts parents before children).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, Network};

use super::{find_program, Backend, Probe};
use crate::error::SandboxError;
use crate::plan::{LaunchPlan, SignalTarget};
use crate::prepare::{Prepared, SANDBOX_BIN_DIR, SANDBOX_NOTIFY_LINK};

/// The release pipe, in podman and (`--preserve-fds=1`) in the container: the first fd
/// Podman passes on.
const BLOCK_FD: i32 = 3;
/// The shim's fd for podman's PID (closed before podman starts).
const INFO_FD: i32 = 4;

/// `/run/wrapix` inside the sandbox; staged by [`Podman::stage`].
const SANDBOX_RUN_DIR: &str = "/run/wrapix";

/// The staged `/run/wrapix`, relative to it, parents first.
use super::stage::RunDirEntry;

const RUN_DIR_ENTRIES: &[(&str, RunDirEntry)] = &[
    ("", RunDirEntry::Dir),
    ("bin", RunDirEntry::Dir),
    ("bin/wrapix", RunDirEntry::File),
    ("bin/wrapix-notify", RunDirEntry::Symlink("wrapix")),
    ("bin/ralph", RunDirEntry::Symlink("wrapix")),
    ("notify.d", RunDirEntry::Dir),
    ("notify.sock", RunDirEntry::Symlink(SANDBOX_NOTIFY_LINK)),
];

/// Host variables Podman itself needs (not passed into the sandbox).
const PODMAN_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "XDG_RUNTIME_DIR",
    "XDG_DATA_HOME",
    "XDG_CONFIG_HOME",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "TMPDIR",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Podman {
    pub podman: Option<PathBuf>,
    /// For `network = "open"`.
    pub pasta: Option<PathBuf>,
    /// Per-run folder for generated files and the env file.
    pub stage: PathBuf,
    /// Podman's own environment (from the host).
    pub host_env: Vec<(String, String)>,
    pub rootless: bool,
    /// The host can enforce `[resources]` for this user (root, or a delegated cgroup v2).
    pub limits_enforceable: bool,
    /// Container name, stable for the run.
    pub name: String,
}

/// The registry's entry ([`super::REGISTRY`]).
pub const ENTRY: super::Entry = super::Entry {
    name: wrapix_spec::BackendName {
        name: "podman",
        aliases: &[],
    },
    summary: "podman (rootless)",
    locate: |at| Box::new(Podman::locate(at.env, at.uid, at.project)),
};

impl Podman {
    pub fn locate(
        env: &std::collections::BTreeMap<String, String>,
        uid: u32,
        project: &Path,
    ) -> Self {
        // The user's runtime folder, else wrapix's state folder: never a predictable path in a
        // shared /tmp, where another user could plant the folder first.
        let runtime = env
            .get("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .unwrap_or_else(|| {
                let home = env
                    .get("HOME")
                    .map(PathBuf::from)
                    .filter(|h| h.is_absolute())
                    .unwrap_or_else(|| PathBuf::from("/"));
                wrapix_spec::state::root(&home, env).join("podman")
            });
        let base = project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base: String = base
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
        let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let delegated = std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
            .map(|c| c.contains("memory") && c.contains("pids") && c.contains("cpu"))
            .unwrap_or(false);
        Podman {
            podman: find_program("podman", env.get("PATH").map(String::as_str)),
            pasta: find_program("pasta", env.get("PATH").map(String::as_str)),
            stage: runtime.join(format!("wrapix-{uid}")).join(&name),
            host_env: PODMAN_ENV
                .iter()
                .filter_map(|k| env.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect(),
            rootless: uid != 0,
            limits_enforceable: uid == 0 || (cgroup2 && delegated),
            name,
        }
    }

    fn unavailable(problem: impl Into<String>, fix: impl Into<String>) -> SandboxError {
        SandboxError::Unavailable {
            backend: "podman",
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn file_path(&self, i: usize) -> PathBuf {
        self.stage.join(format!("file-{i}"))
    }

    fn env_file(&self) -> PathBuf {
        self.stage.join("env")
    }

    /// Where Podman writes the container init's host PID (`--pidfile`).
    fn pid_file(&self) -> PathBuf {
        self.stage.join("pid")
    }

    /// The seccomp profile ([`seccomp::profile_json`]).
    fn seccomp_file(&self) -> PathBuf {
        self.stage.join("seccomp.json")
    }

    /// The staged `/run/wrapix`.
    fn run_dir(&self) -> PathBuf {
        self.stage.join("run-wrapix")
    }

    /// Builds [`Podman::run_dir`]: the symlinks of `/run/wrapix` and the empty mount points
    /// for wrapix and the notification folder ([`RUN_DIR_ENTRIES`]).
    fn stage_run_dir(&self) -> Result<(), SandboxError> {
        super::stage::run_dir(&self.run_dir(), RUN_DIR_ENTRIES)
    }
}

fn arg(args: &mut Vec<OsString>, parts: &[&dyn AsRef<OsStr>]) {
    args.extend(parts.iter().map(|p| p.as_ref().to_owned()));
}

/// `-v` splits on `:` and `,`; a path with either cannot be passed safely.
fn mount_path(p: &Path) -> Result<&Path, SandboxError> {
    let s = p.to_string_lossy();
    if s.contains([':', ',']) || s.contains('\n') {
        return Err(Podman::unavailable(
            format!("the path {s:?} contains `:`, `,` or a newline, which podman's -v cannot take"),
            "rename it, or use the bwrap backend",
        ));
    }
    Ok(p)
}

impl Backend for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn filters_egress(&self) -> bool {
        true
    }

    fn probe(&self) -> Probe {
        probe::probe(self)
    }

    /// Writes the generated files, the seccomp profile and the env file. Call before
    /// `execute`; remove [`Podman::stage`] afterwards.
    fn stage(&self, run: &Prepared) -> Result<(), SandboxError> {
        // podman reads the env file by path: a value with a line break would become a second
        // variable.
        if let Some((k, _)) = run.env.iter().find(|(_, v)| v.contains(['\n', '\r'])) {
            return Err(SandboxError::Missing {
                what: format!(
                    "the variable {k} has a line break, which podman's env file cannot hold"
                ),
                fix: "remove the line break from its value, or use the bwrap backend".into(),
            });
        }
        super::stage::private_dir(&self.stage)?;
        let write = super::stage::write_file;
        self.stage_run_dir()?;
        super::stage::run_dir_mount_points(&self.run_dir(), SANDBOX_RUN_DIR, run)?;
        let profile = seccomp::profile_json(std::env::consts::ARCH)?;
        write(&self.seccomp_file(), profile.as_bytes(), 0o600)?;
        for (i, f) in run.files.iter().enumerate() {
            write(
                &self.file_path(i),
                &f.contents,
                if f.writable { 0o600 } else { 0o444 },
            )?;
        }
        let mut env = String::new();
        for (k, v) in &run.env {
            env.push_str(&format!("{k}={v}\n"));
        }
        write(&self.env_file(), env.as_bytes(), 0o600)
    }

    /// Removes the per-run folder.
    fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.stage);
    }

    fn needs_image(&self) -> bool {
        true
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        let podman = self.podman.clone().ok_or_else(|| {
            Self::unavailable(
                "podman is not installed",
                "sudo apt-get install podman runc uidmap fuse-overlayfs",
            )
        })?;
        let rootfs = run.root.image.clone().ok_or_else(|| {
            Self::unavailable(
                "the podman backend runs from an image, and the profile is \"host\"",
                "set profile = \"base\" (or another image profile), or use the bwrap backend",
            )
        })?;
        let res = run.spec.resources;
        if res.any() && !self.limits_enforceable {
            return Err(Self::unavailable(
                "[resources] limits cannot be enforced by rootless podman on this host (cgroup v1/hybrid, or cgroup v2 without delegated cpu, memory and pids controllers)",
                "remove [resources], or enable cgroup v2 with delegation (systemd: Delegate=yes for user@.service)",
            ));
        }
        let user = &run.spec.user;
        // `open`: pasta, attached by the executor while the init waits on BLOCK_FD.
        let network = match run.network {
            // An allowlist: loopback only, like `none`; the way out is the proxy's socket
            // folder (bound by prepare at /run/wrapix/egress) and the init's loopback relay
            // to it, started from the environment (`WRAPIX_EGRESS_SOCKET`).
            Network::None | Network::Filtered(_) => None,
            Network::Open => {
                let pasta = self.pasta.clone().ok_or_else(|| {
                    Self::unavailable(
                        "network = \"open\" needs pasta for userspace networking, and it is not installed",
                        "sudo apt-get install passt, or run with --network none",
                    )
                })?;
                Some(crate::network::pasta(
                    pasta,
                    run.dns_forward.as_deref(),
                    user.uid,
                    &[],
                ))
            }
        };
        let mut a: Vec<OsString> = Vec::new();
        // wrapix's shim reports podman's PID on INFO_FD (for signal forwarding), closes it and
        // execs podman, so that fd 3 is the release pipe alone when there is one.
        let info_fd = INFO_FD;
        arg(
            &mut a,
            &[&"__exec-info", &info_fd.to_string(), &"--", &podman],
        );
        arg(&mut a, &[&"run", &"--rm", &"--name", &self.name]);
        arg(&mut a, &[&"--interactive"]);
        if run.terminal {
            arg(&mut a, &[&"--tty"]);
        }
        if self.rootless {
            arg(&mut a, &[&"--userns=keep-id"]);
        }
        arg(
            &mut a,
            &[
                &format!("--user={}:{}", user.uid, user.gid),
                &"--cap-drop=all",
                &"--security-opt=no-new-privileges",
                &format!("--security-opt=seccomp={}", self.seccomp_file().display()),
                &"--hostname=wrapix",
                &"--init=false",
                &"--pull=never",
                &"--log-driver=none",
                &"--read-only",
                &"--read-only-tmpfs=true",
            ],
        );
        // Never Podman's own networking: pasta joins this namespace from outside (`open`).
        arg(&mut a, &[&"--network=none"]);
        if network.is_some() {
            // The init's host PID once the namespaces exist (the container is still in `runc
            // init` then), and the release pipe as fd 3 inside.
            arg(
                &mut a,
                &[
                    &format!("--pidfile={}", self.pid_file().display()),
                    &"--preserve-fds=1",
                ],
            );
        }
        if let Some(c) = res.cpus {
            arg(&mut a, &[&format!("--cpus={c}")]);
        }
        if let Some(m) = res.memory_mb {
            arg(&mut a, &[&format!("--memory={m}m")]);
        }
        if let Some(p) = res.pids {
            arg(&mut a, &[&format!("--pids-limit={p}")]);
        }
        arg(
            &mut a,
            &[&format!("--env-file={}", self.env_file().display())],
        );

        // Home: a private tmpfs owned by the user, or the host folder for `[agent] home = "host"`.
        let home = run.home.as_path();
        match &run.home_source {
            Some(src) => arg(
                &mut a,
                &[&format!(
                    "--volume={}:{}:rw",
                    mount_path(src)?.display(),
                    mount_path(home)?.display()
                )],
            ),
            None => arg(
                &mut a,
                // `U`: owned by the container user (keep-id: you).
                &[&format!(
                    "--tmpfs={}:rw,nosuid,nodev,mode=0700,U",
                    mount_path(home)?.display(),
                )],
            ),
        }
        // /run/wrapix: the staged folder with its symlinks (the notification socket, through
        // the folder the daemon publishes it in, mounted with the binds; wrapix-notify).
        arg(
            &mut a,
            &[&format!(
                "--volume={}:{}:ro",
                mount_path(&self.run_dir())?.display(),
                SANDBOX_RUN_DIR
            )],
        );
        // Generated files (passwd, group, git identity, known hosts, and resolv.conf when
        // pasta forwards DNS to a loopback host resolver); otherwise Podman writes its own
        // /etc/resolv.conf (the host's resolvers).
        for (i, f) in run.files.iter().enumerate() {
            if f.dest.as_path() == Path::new("/etc/resolv.conf")
                && (network.is_none() || run.dns_forward.is_none())
            {
                continue;
            }
            let mode = if f.writable { "rw" } else { "ro" };
            arg(
                &mut a,
                &[&format!(
                    "--volume={}:{}:{mode}",
                    self.file_path(i).display(),
                    mount_path(f.dest.as_path())?.display()
                )],
            );
        }
        // Workspace, protected paths, user mounts, agent state: in this order.
        for b in &run.binds {
            let mode = match b.mode {
                MountMode::ReadOnly => "ro",
                MountMode::ReadWrite => "rw",
            };
            arg(
                &mut a,
                &[&format!(
                    "--volume={}:{}:{mode}",
                    mount_path(&b.source)?.display(),
                    mount_path(b.dest.as_path())?.display()
                )],
            );
        }
        let init = Path::new(SANDBOX_BIN_DIR).join("wrapix");
        arg(
            &mut a,
            &[&format!(
                "--volume={}:{}:ro",
                mount_path(&run.self_exe)?.display(),
                init.display()
            )],
        );
        // wrapix's MCP servers (`wrapix mcp …` execs it), when the config enables one.
        if let Some(serve) = &run.serve_exe {
            let inside = Path::new(SANDBOX_BIN_DIR).join("wrapix-serve");
            arg(
                &mut a,
                &[&format!(
                    "--volume={}:{}:ro",
                    mount_path(serve)?.display(),
                    inside.display()
                )],
            );
        }
        arg(
            &mut a,
            &[&format!("--workdir={}", wrapix_spec::Spec::WORKSPACE)],
        );
        // `:O`: mount points the runtime must create go to a throw-away overlay, not the cache.
        let rootfs = format!("{}:O", mount_path(&rootfs)?.display());
        arg(&mut a, &[&"--rootfs", &rootfs]);
        arg(&mut a, &[&init, &"__init"]);
        if network.is_some() {
            arg(&mut a, &[&"--wait-fd", &BLOCK_FD.to_string()]);
        }
        arg(&mut a, &[&"--"]);
        for c in &run.command {
            a.push(c.into());
        }
        Ok(LaunchPlan {
            backend: "podman",
            program: run.self_exe.clone(),
            args: a,
            env: self
                .host_env
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            fds: Vec::new(),
            // Podman binds by path (`-v`): it has no bind-by-fd.
            pass: Vec::new(),
            info_fd: Some(info_fd),
            // wrapix's init reports a command that cannot start (127/126) itself.
            not_started: None,
            block_fd: network.as_ref().map(|_| BLOCK_FD),
            pid_file: network.as_ref().map(|_| self.pid_file()),
            holder_in_child: None,
            release_fifo: None,
            guard_backend: false,
            pin_mounts: Vec::new(),
            network,
            terminal: run.terminal,
            // The reported PID is podman's, which passes signals into the container.
            signals: SignalTarget::Process,
            after_kill: None,
        })
    }
}

mod seccomp;

mod probe;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod run_dir_tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::prepare::{SANDBOX_NOTIFY_DIR, SANDBOX_NOTIFY_SOCKET};

    #[test]
    fn staged_run_dir_has_the_links_and_mount_points_the_plan_needs() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = Podman {
            podman: None,
            pasta: None,
            stage: t.path().join("stage"),
            host_env: Vec::new(),
            rootless: true,
            limits_enforceable: false,
            name: "wrapix-t-1".into(),
        };
        p.stage_run_dir().unwrap_or_else(|e| panic!("{e}"));
        // Twice: staging again replaces, never fails on what is there.
        p.stage_run_dir().unwrap_or_else(|e| panic!("{e}"));
        let at = |sandbox: &str| {
            let rel = Path::new(sandbox)
                .strip_prefix(SANDBOX_RUN_DIR)
                .unwrap_or_else(|e| panic!("{sandbox}: {e}"));
            p.run_dir().join(rel)
        };
        let link = |s: &str| std::fs::read_link(at(s)).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(
            link(SANDBOX_NOTIFY_SOCKET),
            Path::new("notify.d/notify.sock")
        );
        assert_eq!(
            at(SANDBOX_NOTIFY_SOCKET)
                .parent()
                .map(|d| d.join(SANDBOX_NOTIFY_LINK)),
            Some(at(SANDBOX_NOTIFY_DIR).join("notify.sock"))
        );
        assert!(at(SANDBOX_NOTIFY_DIR).is_dir());
        assert_eq!(link("/run/wrapix/bin/wrapix-notify"), Path::new("wrapix"));
        assert_eq!(link("/run/wrapix/bin/ralph"), Path::new("wrapix"));
        let init = Path::new(SANDBOX_BIN_DIR).join("wrapix");
        assert!(at(&init.to_string_lossy()).is_file());
        let mode = std::fs::metadata(p.run_dir())
            .map(|m| m.mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o755));
    }
}
