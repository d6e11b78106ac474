//! The qemu backend: the sandbox is a micro-VM with a kernel of its own (`--backend qemu`).
//!
//! Isolation: a guest kernel (the Debian cloud kernel, `linux-image-cloud-amd64`) in
//! `qemu-system-x86_64 -M pc`, KVM when `/dev/kvm` works, else TCG (slow; refused with
//! `--require-kvm`, `require_kvm = true` or `WRAPIX_REQUIRE_KVM=1`). The guest sees only what is shared with it: each bind source (and
//! each root folder) is a virtiofs share served by its own `virtiofsd` (the Rust one: it has
//! `--readonly`, and runs unprivileged), read-only unless the bind is writable. PID 1 in the
//! guest ([`crate::vm::guest`], from an initramfs built here and cached by content) mounts the
//! shares, builds the root as bubblewrap's is built (read-only; tmpfs `/tmp`, `/run`, home),
//! and runs wrapix's init there as the user's UID/GID with no capabilities, `no_new_privs`,
//! wrapix's seccomp filter and the run's environment. No NIC for `network = "none"` (for an
//! allowlist, only the user-mode NIC that leads to the egress proxy, below). For
//! `open`, a virtio-net NIC whose other end is passt, running on the host in a network
//! namespace of its own behind the same pasta as every other backend's, with the host's
//! addresses prohibited there ([`crate::vm::passt`]): the guest reaches the outside, never the
//! host's own addresses or services, even with its kernel compromised.
//!
//! The executor starts `wrapix-init __vm` ([`crate::vm::host`]), which starts virtiofsd and
//! qemu (both die with it), relays stdio over virtio-serial ports, forwards signals as one byte
//! on a port, and exits with the code the guest reports.
//!
//! `[resources]`: `cpus` are the VM's vCPUs, `memory_mb` and `pids` a cgroup in the guest
//! for the command (the VM's memory is the limit plus room for the guest's kernel and root).
//! Published ports: a second NIC, qemu's user-mode network with `restrict=on` (the guest
//! reaches nothing through it) whose `hostfwd` listeners on the host's address are the only way
//! in (passt's inbound forwarding in Debian 12 loses the guest's first bytes).
//!
//! A network allowlist: no passt NIC; the user-mode NIC's one way out is a `guestfwd` to the
//! egress proxy, whose relay qemu runs on the host per connection ([`crate::vm::egress`]); the
//! sandbox's side is every backend's (the variables, wrapix's init relaying 127.0.0.1:3128 to
//! `/run/wrapix/egress/proxy.sock`, where the guest's PID 1 listens).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, Network};

use super::{find_program, Backend, Probe};
use crate::error::SandboxError;
use crate::plan::{LaunchPlan, SignalTarget};
use crate::prepare::{
    Prepared, SANDBOX_BIN_DIR, SANDBOX_NOTIFY_DIR, SANDBOX_NOTIFY_LINK, SANDBOX_NOTIFY_SOCKET,
};
use crate::root::RootEntry;
use crate::seccomp::{default_filter_bytes, SeccompOptions};
use crate::vm::{
    GuestConfig, GuestLimits, GuestMount, GuestNet, GuestNic, GuestShare, CONFIG_FILE, CONSOLE_FD,
    FIRST_PORT_FD, NET_FD, PORTS, RUN_TAG,
};

pub mod initramfs;

/// Read-only files up to this size that no share holds are copied into the guest's config.
const SMALL_FILE: u64 = 1 << 20;

/// The guest's memory.
const MEMORY_MB: u64 = 512;
/// With `[resources] memory_mb`: the guest's memory is the limit plus this, for its kernel,
/// init and the tmpfs root (the limit itself is the command's cgroup in the guest).
const MEMORY_OVERHEAD_MB: u64 = 192;

/// The user-mode NIC (published ports in, the egress proxy's forward out): its MAC (the guest
/// finds it by it), the guest's address on it and the user-mode network's subnet (not the
/// passt NIC's).
const PORTS_MAC: &str = "52:54:00:77:70:01";
const PORTS_ADDRESS: &str = "10.0.3.15";
const PORTS_NET: &str = "10.0.3.0/24";
const PORTS_HOST: &str = "10.0.3.2";

/// The user-mode netdev: `user` with `restrict=on` (nothing out but its `guestfwd`; no DNS,
/// no DHCP use), one `hostfwd` per published port on the host's address, and with a network
/// allowlist the `guestfwd` that runs `egress` (the relay command, [`guestfwd_cmd`]) for each
/// connection to the proxy's forward; `None` without either.
fn user_netdev(run: &Prepared, egress: Option<&str>) -> Result<Option<String>, SandboxError> {
    let ports = &run.spec.forward.ports;
    if ports.is_empty() && egress.is_none() {
        return Ok(None);
    }
    let mut s = format!("user,id=ports,restrict=on,ipv6=off,net={PORTS_NET},host={PORTS_HOST}");
    for p in ports {
        let std::net::IpAddr::V4(addr) = p.host_address else {
            return Err(Qemu::unavailable(
                format!(
                    "a published port on the IPv6 address {} is not supported by the qemu backend (its forwarder listens on IPv4)",
                    p.host_address
                ),
                "publish it on 127.0.0.1 or another IPv4 address of the host, or use the bwrap backend",
            ));
        };
        s.push_str(&format!(
            ",hostfwd=tcp:{addr}:{}-{PORTS_ADDRESS}:{}",
            p.host, p.sandbox
        ));
    }
    if let Some(cmd) = egress {
        s.push_str(&format!(
            ",guestfwd=tcp:{}:{}-cmd:{cmd}",
            crate::vm::egress::ADDRESS,
            crate::egress::PORT
        ));
    }
    Ok(Some(s))
}

/// The command qemu runs for each connection to the egress forward, as `guestfwd=…-cmd:`
/// takes it: one string that glib splits into words as a shell would (`g_shell_parse_argv`;
/// no shell runs), each word single-quoted here, then every `,` doubled for qemu's option
/// syntax. Words are wrapix's own paths; one with a control character is refused.
fn guestfwd_cmd(words: &[&std::ffi::OsStr]) -> Result<String, SandboxError> {
    let mut out = Vec::new();
    for w in words {
        let w = w.to_str().filter(|w| !w.chars().any(char::is_control)).ok_or_else(|| {
            Qemu::unavailable(
                format!(
                    "the path {w:?} is not UTF-8 or has a control character, which qemu's guestfwd command cannot take (a network allowlist)"
                ),
                "move wrapix (or XDG_RUNTIME_DIR) to a plain path, or use the bwrap backend",
            )
        })?;
        out.push(format!("'{}'", w.replace('\'', "'\\''")));
    }
    Ok(out.join(" ").replace(',', ",,"))
}

/// The supervisor's fd of the executor's release pipe (`network = "open"`), which it hands to
/// the network holder.
const NET_WAIT_FD: i32 = 3;
/// The guest's address, prefix and gateway behind passt (passt translates them: neither is
/// an address of the host's).
const GUEST_ADDRESS: &str = "10.0.2.15";
const GUEST_PREFIX: u8 = 24;
const GUEST_GATEWAY: &str = "10.0.2.2";

/// The kernel and its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub image: PathBuf,
    pub modules: PathBuf,
}

/// Where the programs are on this host, and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qemu {
    pub qemu: Option<PathBuf>,
    pub virtiofsd: Option<PathBuf>,
    /// For `network = "open"`: pasta (in front of the holder's namespace) and passt.
    pub pasta: Option<PathBuf>,
    pub passt: Option<PathBuf>,
    /// The guest kernel, or why there is none.
    pub kernel: Result<Kernel, String>,
    /// `/dev/kvm` works (and is not the paravirtual `kvm_pvm`, on which stock kernels hang).
    pub kvm: bool,
    /// `WRAPIX_REQUIRE_KVM=1`: refuse TCG.
    pub require_kvm: bool,
    /// Per-run folder: the run share, virtiofsd's sockets, the console log, the initramfs link.
    pub stage: PathBuf,
    /// Where built initramfs archives are kept.
    pub cache: PathBuf,
    pub uid: u32,
    /// `WRAPIX_QEMU_KEEP=1`: leave the stage (console log, config) for debugging.
    pub keep_stage: bool,
    /// `WRAPIX_QEMU_TIMING=1`: the supervisor prints the boot's breakdown to stderr.
    pub timing: bool,
}

/// The registry's entry ([`super::REGISTRY`]).
pub const ENTRY: super::Entry = super::Entry {
    name: wrapix_spec::BackendName {
        name: "qemu",
        aliases: &["vm"],
    },
    summary: "qemu (micro-VM)",
    locate: |at| Box::new(Qemu::locate(at)),
};

/// Finds the newest `vmlinuz-*-cloud-amd64` in `boot` with its modules in `lib_modules`.
pub fn find_kernel(
    env: &std::collections::BTreeMap<String, String>,
    boot: &Path,
    lib_modules: &Path,
) -> Result<Kernel, String> {
    let (image, release) = match env.get("WRAPIX_QEMU_KERNEL").filter(|k| !k.is_empty()) {
        Some(k) => {
            let p = PathBuf::from(k);
            let release = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .unwrap_or_default()
                .to_owned();
            (p, release)
        }
        None => {
            let mut found: Vec<String> = std::fs::read_dir(boot)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                        .filter_map(|n| n.strip_prefix("vmlinuz-").map(str::to_owned))
                        .filter(|r| r.ends_with("-cloud-amd64"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort_by_key(|r| version_key(r));
            let release = found
                .pop()
                .ok_or_else(|| format!("no {}/vmlinuz-*-cloud-amd64", boot.display()))?;
            (boot.join(format!("vmlinuz-{release}")), release)
        }
    };
    let modules = match env.get("WRAPIX_QEMU_MODULES").filter(|m| !m.is_empty()) {
        Some(m) => PathBuf::from(m),
        None => lib_modules.join(&release),
    };
    if std::fs::File::open(&image).is_err() {
        return Err(format!("{} cannot be read", image.display()));
    }
    if !modules.join("modules.dep").is_file() {
        return Err(format!("{} has no modules.dep", modules.display()));
    }
    Ok(Kernel { image, modules })
}

fn version_key(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether KVM can run a stock kernel here.
fn kvm_usable() -> bool {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    open && !Path::new("/sys/module/kvm_pvm").exists()
}

impl Qemu {
    pub fn locate(at: &super::Locate<'_>) -> Self {
        let path = at.env.get("PATH").map(String::as_str);
        let home = at
            .env
            .get("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/"));
        let runtime = at
            .env
            .get("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .unwrap_or_else(|| wrapix_spec::state::root(&home, at.env).join("qemu"));
        let virtiofsd = at
            .env
            .get("WRAPIX_VIRTIOFSD")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| find_program("virtiofsd", path))
            .or_else(|| Some(home.join(".cargo/bin/virtiofsd")).filter(|p| p.is_file()))
            .or_else(|| Some(PathBuf::from("/usr/libexec/virtiofsd")).filter(|p| p.is_file()));
        let cache = at
            .env
            .get("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".cache"))
            .join("wrapix/qemu");
        Qemu {
            qemu: find_program("qemu-system-x86_64", path),
            virtiofsd,
            pasta: find_program("pasta", path),
            passt: find_program("passt", path),
            kernel: find_kernel(at.env, Path::new("/boot"), Path::new("/lib/modules")),
            kvm: kvm_usable(),
            require_kvm: at.env.get("WRAPIX_REQUIRE_KVM").is_some_and(|v| v == "1"),
            stage: runtime
                .join(format!("wrapix-{}", at.uid))
                .join(format!("qemu-{}", std::process::id())),
            cache,
            uid: at.uid,
            keep_stage: at.env.get("WRAPIX_QEMU_KEEP").is_some_and(|v| v == "1"),
            timing: at.env.get("WRAPIX_QEMU_TIMING").is_some_and(|v| v == "1"),
        }
    }

    fn unavailable(problem: impl Into<String>, fix: impl Into<String>) -> SandboxError {
        SandboxError::Unavailable {
            backend: "qemu",
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.stage.join("run")
    }

    fn initramfs_link(&self) -> PathBuf {
        self.stage.join("initramfs")
    }

    /// The network holder's PID file ([`crate::vm::passt`]).
    fn net_pid_file(&self) -> PathBuf {
        self.stage.join("net.pid")
    }

    /// The kernel, or the refusal that says how to get one.
    fn kernel(&self) -> Result<&Kernel, SandboxError> {
        self.kernel.as_ref().map_err(|why| {
            Self::unavailable(
                format!("no guest kernel: {why}"),
                "sudo apt-get install linux-image-cloud-amd64 (or set WRAPIX_QEMU_KERNEL to a vmlinuz with its modules in /lib/modules/RELEASE)",
            )
        })
    }

    /// The binary the VM runs as PID 1 (and the supervisor): `wrapix-init`, else `wrapix`.
    fn init_binary(run: &Prepared) -> &Path {
        run.init_exe.as_deref().unwrap_or(&run.self_exe)
    }
}

/// The shares and the guest's root for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// (tag, host folder, read-only), besides the run's own share.
    pub shares: Vec<(String, PathBuf, bool)>,
    pub config: GuestConfig,
    /// The host's notification socket (in the published folder), which the supervisor sends
    /// the guest's frames to: a socket does not cross virtiofs.
    pub notify_socket: Option<PathBuf>,
    /// The egress proxy's socket on the host (a network allowlist), which the relay qemu runs
    /// for each forwarded connection connects to ([`crate::vm::egress`]).
    pub egress_socket: Option<PathBuf>,
}

impl Layout {
    /// The share that holds `source` (a new one when none does): (tag, path below it).
    fn place(&mut self, source: &Path, read_only: bool) -> (String, String) {
        for (tag, dir, ro) in &self.shares {
            if (read_only || !*ro) && source.starts_with(dir) {
                let sub = source.strip_prefix(dir).unwrap_or(source);
                return (tag.clone(), sub.to_string_lossy().into_owned());
            }
        }
        // A folder is shared itself; a file through its folder.
        let is_file = std::fs::metadata(source).is_ok_and(|m| !m.is_dir());
        let (dir, sub) = match (is_file, source.parent(), source.file_name()) {
            (true, Some(parent), Some(name)) => {
                (parent.to_owned(), name.to_string_lossy().into_owned())
            }
            _ => (source.to_owned(), String::new()),
        };
        let tag = format!("s{}", self.shares.len());
        self.shares.push((tag.clone(), dir, read_only));
        (tag, sub)
    }

    fn bind(&mut self, source: &Path, dest: &Path, read_only: bool) -> GuestMount {
        // A small read-only file outside every share (a live `/etc` file, a user's mount of
        // one) goes in by value: sharing its folder would show the guest the whole folder.
        let shared = self
            .shares
            .iter()
            .any(|(_, dir, ro)| (read_only || !*ro) && source.starts_with(dir));
        if read_only && !shared {
            if let Ok(m) = std::fs::metadata(source) {
                if m.is_file() && m.len() <= SMALL_FILE {
                    if let Ok(data) = std::fs::read(source) {
                        return GuestMount::File {
                            data,
                            dest: dest.to_string_lossy().into_owned(),
                            writable: false,
                        };
                    }
                }
            }
        }
        let (tag, sub) = self.place(source, read_only);
        GuestMount::Bind {
            tag,
            sub,
            dest: dest.to_string_lossy().into_owned(),
            read_only,
        }
    }
}

/// Where the run share's files appear in the guest.
const SECCOMP_INSIDE: &str = "/run/wrapix/seccomp.bpf";
const ENV_INSIDE: &str = "/run/wrapix/env";

/// The shares and the guest's root: the same pieces, in the same order, as bubblewrap's.
/// Reads whether each bind source is a file (a file is shared through its folder).
pub fn layout(run: &Prepared) -> Layout {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let filtered = matches!(run.network, Network::Filtered(_));
    let mut l = Layout {
        notify_socket: None,
        egress_socket: None,
        shares: Vec::new(),
        config: GuestConfig {
            shares: Vec::new(),
            root: Vec::new(),
            uid: run.spec.user.uid,
            gid: run.spec.user.gid,
            cwd: wrapix_spec::Spec::WORKSPACE.into(),
            argv: Vec::new(),
            hostname: "wrapix".into(),
            net: (run.network == Network::Open).then(|| GuestNet {
                address: GUEST_ADDRESS.into(),
                prefix: GUEST_PREFIX,
                gateway: GUEST_GATEWAY.into(),
            }),
            limits: GuestLimits {
                memory_mb: run.spec.resources.memory_mb,
                pids: run.spec.resources.pids,
            },
            ports_nic: (!run.spec.forward.ports.is_empty() || filtered).then(|| GuestNic {
                mac: PORTS_MAC.into(),
                address: PORTS_ADDRESS.into(),
                prefix: 24,
            }),
        },
    };
    let mut root = Vec::new();
    for e in &run.root.entries {
        root.push(match e {
            RootEntry::RoBind { source, dest } => l.bind(source, dest, true),
            RootEntry::Symlink { target, dest } => GuestMount::Symlink {
                target: s(target),
                dest: s(dest),
            },
            RootEntry::Dir { dest } => GuestMount::Dir { dest: s(dest) },
        });
    }
    root.push(GuestMount::Proc {
        dest: "/proc".into(),
    });
    root.push(GuestMount::Dev {
        dest: "/dev".into(),
    });
    for (dest, mode) in [("/tmp", 0o1777), ("/var/tmp", 0o1777), ("/run", 0o755)] {
        root.push(GuestMount::Tmpfs {
            dest: dest.into(),
            mode,
            owned: false,
        });
    }
    root.push(match &run.home_source {
        Some(src) => l.bind(src, run.home.as_path(), false),
        None => GuestMount::Tmpfs {
            dest: s(run.home.as_path()),
            mode: 0o700,
            owned: true,
        },
    });
    for f in &run.files {
        root.push(GuestMount::File {
            data: f.contents.clone(),
            dest: f.dest.to_string(),
            writable: f.writable,
        });
    }
    for b in &run.binds {
        if b.dest.as_path() == Path::new(SANDBOX_NOTIFY_DIR) {
            l.notify_socket = Some(b.source.join(wrapix_notify::paths::PUBLISHED_NAME));
            root.push(GuestMount::NotifyRelay {
                dest: b.dest.to_string(),
            });
            continue;
        }
        // The egress proxy's socket folder: PID 1 listens on the socket inside and relays to
        // the forward on the user-mode NIC (a socket does not cross virtiofs either).
        if filtered && b.dest.as_path() == Path::new(crate::egress::SANDBOX_DIR) {
            let name = Path::new(crate::egress::SANDBOX_SOCKET)
                .strip_prefix(crate::egress::SANDBOX_DIR)
                .unwrap_or(Path::new("proxy.sock"));
            l.egress_socket = Some(b.source.join(name));
            root.push(GuestMount::EgressRelay {
                socket: crate::egress::SANDBOX_SOCKET.into(),
                to: format!("{}:{}", crate::vm::egress::ADDRESS, crate::egress::PORT),
            });
            continue;
        }
        let m = l.bind(&b.source, b.dest.as_path(), b.mode == MountMode::ReadOnly);
        root.push(m);
    }
    let bin = Path::new(SANDBOX_BIN_DIR);
    root.push(l.bind(&run.self_exe, &bin.join("wrapix"), true));
    if let Some(serve) = &run.serve_exe {
        root.push(l.bind(serve, &bin.join("wrapix-serve"), true));
    }
    let mut argv: Vec<String> = match &run.init_exe {
        Some(exe) => {
            root.push(l.bind(exe, &bin.join("wrapix-init"), true));
            vec![s(&bin.join("wrapix-init"))]
        }
        None => vec![s(&bin.join("wrapix")), "__init".into()],
    };
    for (name, target) in [("wrapix-notify", "wrapix"), ("ralph", "wrapix")] {
        root.push(GuestMount::Symlink {
            target: target.into(),
            dest: s(&bin.join(name)),
        });
    }
    root.push(GuestMount::Symlink {
        target: SANDBOX_NOTIFY_LINK.into(),
        dest: SANDBOX_NOTIFY_SOCKET.into(),
    });
    for (file, inside) in [("seccomp.bpf", SECCOMP_INSIDE), ("env", ENV_INSIDE)] {
        root.push(GuestMount::Bind {
            tag: RUN_TAG.into(),
            sub: file.into(),
            dest: inside.into(),
            read_only: true,
        });
    }
    argv.extend(["--seccomp", SECCOMP_INSIDE, "--env-file", ENV_INSIDE, "--"].map(String::from));
    argv.extend(run.command.iter().cloned());
    l.config.root = root;
    l.config.argv = argv;
    l.config.shares = l
        .shares
        .iter()
        .map(|(tag, _, ro)| GuestShare {
            tag: tag.clone(),
            read_only: *ro,
        })
        .collect();
    l
}

/// The environment file: `KEY=VALUE` entries separated by NUL bytes (wrapix's init reads it).
fn env_file(run: &Prepared) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &run.env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

impl Backend for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    /// Published ports (through passt); the desktop forwards are bubblewrap's.
    fn forwards(&self, forward: &str) -> bool {
        forward == "ports"
    }

    fn filters_egress(&self) -> bool {
        true
    }

    fn probe(&self) -> Probe {
        probe::probe(self)
    }

    fn stage(&self, run: &Prepared) -> Result<(), SandboxError> {
        super::stage::private_dir(&self.stage)?;
        let kernel = self.kernel()?;
        // The initramfs, from the cache (built when its inputs changed).
        let init = initramfs::small_init(Self::init_binary(run), &self.cache)?;
        let members = initramfs::members(&init, &kernel.modules)?;
        let key = initramfs::key(&members)?;
        let cached = self.cache.join(format!("initramfs-{key}.cpio"));
        if !cached.is_file() {
            std::fs::create_dir_all(&self.cache)
                .map_err(|e| SandboxError::io(format!("create {}", self.cache.display()), e))?;
            let tmp = self
                .cache
                .join(format!(".initramfs-{key}.{}", std::process::id()));
            super::stage::write_file(&tmp, &initramfs::archive(&members)?, 0o644)?;
            std::fs::rename(&tmp, &cached)
                .map_err(|e| SandboxError::io(format!("store {}", cached.display()), e))?;
        }
        std::os::unix::fs::symlink(&cached, self.initramfs_link())
            .map_err(|e| SandboxError::io("link the initramfs", e))?;
        // The run share: the guest's config, the filter, the environment (the user's alone).
        let dir = self.run_dir();
        std::fs::create_dir(&dir)
            .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
        let config = serde_json::to_vec(&layout(run).config)
            .map_err(|e| SandboxError::io("write the VM's config", std::io::Error::other(e)))?;
        super::stage::write_file(&dir.join(CONFIG_FILE), &config, 0o444)?;
        let seccomp = default_filter_bytes(SeccompOptions::default())?;
        super::stage::write_file(&dir.join("seccomp.bpf"), &seccomp, 0o444)?;
        let env = dir.join("env");
        super::stage::write_file(&env, &env_file(run), 0o400)?;
        let user = &run.spec.user;
        std::os::unix::fs::lchown(&env, Some(user.uid), Some(user.gid))
            .map_err(|e| SandboxError::io(format!("chown {}", env.display()), e))?;
        Ok(())
    }

    fn cleanup(&self) {
        if self.keep_stage {
            eprintln!(
                "wrapix: qemu: kept {} (WRAPIX_QEMU_KEEP=1)",
                self.stage.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.stage);
    }

    fn plan(&self, run: &Prepared) -> Result<LaunchPlan, SandboxError> {
        let qemu = self.qemu.clone().ok_or_else(|| {
            Self::unavailable(
                "qemu-system-x86_64 is not installed",
                "sudo apt-get install qemu-system-x86",
            )
        })?;
        let virtiofsd = self.virtiofsd.clone().ok_or_else(|| {
            Self::unavailable(
                "virtiofsd (the Rust one, with --readonly and unprivileged use) is not installed; qemu's old C virtiofsd cannot share read-only",
                "cargo install virtiofsd (needs libseccomp-dev libcap-ng-dev), or set WRAPIX_VIRTIOFSD",
            )
        })?;
        let kernel = self.kernel()?;
        if !self.kvm && (self.require_kvm || run.spec.require_kvm) {
            return Err(Self::unavailable(
                "KVM is not usable here (no /dev/kvm you can open, or the paravirtual kvm_pvm), and --require-kvm (require_kvm = true, or WRAPIX_REQUIRE_KVM=1) refuses TCG",
                "enable virtualisation and join the kvm group, or drop --require-kvm / require_kvm / WRAPIX_REQUIRE_KVM to run under TCG (slow)",
            ));
        }
        let l = layout(run);
        let stage = self.stage.to_string_lossy().into_owned();
        // An allowlist: no NIC but the user-mode one, whose only way out is the proxy's
        // forward (its relay command, run by qemu per connection).
        let egress = match run.network {
            Network::Filtered(_) => {
                let socket = l.egress_socket.as_ref().ok_or_else(|| {
                    Self::unavailable(
                        "a network allowlist was asked for and the egress proxy's socket folder is not bound",
                        "report this bug",
                    )
                })?;
                Some(guestfwd_cmd(&[
                    Self::init_binary(run).as_os_str(),
                    "__vm-egress".as_ref(),
                    "--slots".as_ref(),
                    self.stage.as_os_str(),
                    socket.as_os_str(),
                ])?)
            }
            Network::None | Network::Open => None,
        };
        // `open`: pasta attached by the executor to the holder's namespace, then passt there.
        let network = match run.network {
            Network::None | Network::Filtered(_) => None,
            Network::Open => {
                let (Some(pasta), Some(passt)) = (self.pasta.clone(), self.passt.clone()) else {
                    return Err(Self::unavailable(
                        "network = \"open\" needs passt and pasta (the passt package), and they are not installed",
                        "sudo apt-get install passt, or run with --network none",
                    ));
                };
                Some((
                    crate::network::pasta(
                        pasta,
                        run.dns_forward.as_deref(),
                        run.spec.user.uid,
                        &[],
                    ),
                    passt,
                ))
            }
        };
        let mut a: Vec<OsString> = vec!["__vm".into(), "--stage".into(), stage.clone().into()];
        a.push("--virtiofsd".into());
        a.push(virtiofsd.into());
        let mut shares = vec![(RUN_TAG.to_owned(), self.run_dir(), true)];
        shares.extend(l.shares.iter().cloned());
        for (tag, dir, ro) in &shares {
            a.push("--share".into());
            a.push(format!("{tag}:{}:{}", if *ro { "ro" } else { "rw" }, dir.display()).into());
        }
        if let Some((_, passt)) = &network {
            a.push("--net-pid-file".into());
            a.push(self.net_pid_file().into());
            a.push("--net-wait-fd".into());
            a.push(NET_WAIT_FD.to_string().into());
            a.push("--passt".into());
            a.push(passt.into());
            // IPv4 only; no ports in, no gateway mapped to the host, no DHCP/NDP (the guest's
            // address is fixed); passt's messages to a file in the stage.
            for arg in [
                "--foreground",
                "--quiet",
                "--one-off",
                "--ipv4-only",
                "--no-map-gw",
                "--tcp-ports",
                "none",
                "--udp-ports",
                "none",
                "--no-dhcp",
                "--no-dhcpv6",
                "--no-ndp",
                "--no-ra",
                "--address",
                GUEST_ADDRESS,
                "--netmask",
                &GUEST_PREFIX.to_string(),
                "--gateway",
                GUEST_GATEWAY,
                "--log-file",
                &format!("{stage}/passt.log"),
                "--fd",
                &crate::vm::passt::PASST_FD.to_string(),
            ] {
                a.push("--passt-arg".into());
                a.push(arg.into());
            }
        }
        if let Some(sock) = &l.notify_socket {
            a.push("--notify".into());
            a.push(sock.into());
        }
        if self.timing {
            a.push("--timing".into());
        }
        if self.keep_stage {
            a.push("--console-log".into());
            a.push(format!("{stage}/console.log").into());
        }
        if !self.kvm {
            a.push("--tcg-notice".into());
        }
        a.push("--".into());
        let accel = if self.kvm { "kvm" } else { "tcg" };
        // `[resources]`: `cpus` as the VM's vCPUs; `memory_mb` and `pids` in the guest
        // ([`GuestConfig::limits`]), with the VM's memory above the limit.
        let res = &run.spec.resources;
        let cpus = res.cpus.unwrap_or(1);
        let memory = res
            .memory_mb
            .map_or(MEMORY_MB, |m| m.saturating_add(MEMORY_OVERHEAD_MB));
        let cpu = if self.kvm { "host" } else { "max" };
        let q = |v: &mut Vec<OsString>, items: &[&str]| v.extend(items.iter().map(OsString::from));
        a.push(qemu.into());
        q(
            &mut a,
            &[
                "-M",
                "pc,memory-backend=mem",
                "-accel",
                accel,
                "-cpu",
                cpu,
                "-smp",
                &cpus.to_string(),
                "-m",
                &format!("{memory}M"),
                "-object",
                &format!("memory-backend-memfd,id=mem,size={memory}M,share=on"),
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-kernel",
                &kernel.image.to_string_lossy(),
                "-initrd",
                &self.initramfs_link().to_string_lossy(),
                "-append",
                if self.keep_stage {
                    "console=ttyS0 loglevel=7 panic=-1 reboot=t"
                } else {
                    "console=ttyS0 quiet loglevel=3 panic=-1 reboot=t"
                },
                "-serial",
                "chardev:console",
                "-chardev",
                &format!("socket,id=console,fd={CONSOLE_FD}"),
                "-device",
                "virtio-serial-pci,max_ports=8",
            ],
        );
        for (i, name) in PORTS.iter().enumerate() {
            q(
                &mut a,
                &[
                    "-chardev",
                    &format!("socket,id=port{i},fd={}", FIRST_PORT_FD + i as i32),
                    "-device",
                    &format!("virtserialport,chardev=port{i},name={name}"),
                ],
            );
        }
        if network.is_some() {
            q(
                &mut a,
                &[
                    "-netdev",
                    &format!("socket,id=net0,fd={NET_FD}"),
                    "-device",
                    "virtio-net-pci,netdev=net0,romfile=",
                ],
            );
        }
        if let Some(fwd) = user_netdev(run, egress.as_deref())? {
            q(
                &mut a,
                &[
                    "-netdev",
                    &fwd,
                    "-device",
                    &format!("virtio-net-pci,netdev=ports,mac={PORTS_MAC},romfile="),
                ],
            );
        }
        for (tag, _, _) in &shares {
            q(
                &mut a,
                &[
                    "-chardev",
                    &format!("socket,id=fs-{tag},path={stage}/{tag}.sock"),
                    "-device",
                    &format!("vhost-user-fs-pci,chardev=fs-{tag},tag={tag}"),
                ],
            );
        }
        let (program, args) = match &run.init_exe {
            Some(exe) => (exe.clone(), a),
            None => (run.self_exe.clone(), a),
        };
        Ok(LaunchPlan {
            backend: "qemu",
            program,
            args,
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            fds: Vec::new(),
            pass: Vec::new(),
            info_fd: None,
            // The guest's init reports a command that cannot start (127/126) itself.
            not_started: None,
            block_fd: network.as_ref().map(|_| NET_WAIT_FD),
            pid_file: network.as_ref().map(|_| self.net_pid_file()),
            holder_in_child: None,
            release_fifo: None,
            guard_backend: false,
            pin_mounts: Vec::new(),
            network: network.map(|(pasta, _)| pasta),
            // On a terminal, a fresh pty for the supervisor, which relays it raw to a pty in the
            // guest (never the user's own terminal, which qemu's process group could not read).
            terminal: true,
            signals: SignalTarget::Process,
            after_kill: None,
        })
    }
}

mod probe;
#[cfg(test)]
mod tests;
