//! The qemu backend's two halves that run outside wrapix's own process: `__vm` on the host (the
//! supervisor the executor starts: it starts virtiofsd for each share and qemu, relays the
//! command's stdio and signals over virtio-serial ports, and exits with the command's code) and
//! PID 1 inside the VM (`/init` in the initramfs: loads the virtio modules, mounts the
//! shares, builds the root, runs wrapix's init in it as the user, reports the exit code and
//! powers off). The plan ([`crate::backend::qemu`]) writes a [`GuestConfig`] onto the run's own
//! share; the host half takes everything on its command line, so a plan shows the whole qemu
//! argv.

use serde::{Deserialize, Serialize};

pub mod egress;
pub mod guest;
mod guest_net;
pub(crate) mod guest_tty;
pub mod host;
pub mod passt;

/// Whether this process is PID 1 of the qemu backend's VM: the kernel started it as `/init`
/// (from the initramfs). In other sandboxes wrapix's init is PID 1 under another name.
pub fn is_guest_init(argv0: Option<&std::ffi::OsStr>) -> bool {
    argv0.is_some_and(|a| a == "/init") && std::process::id() == 1
}

/// The virtiofs tag of the run's own share (the config, the seccomp filter, the environment).
pub const RUN_TAG: &str = "wrapix";
/// The config's name on the run share.
pub const CONFIG_FILE: &str = "vm.json";
/// The virtio-serial ports, by name (`/sys/class/virtio-ports/*/name` in the guest), in the
/// order of the fds the supervisor hands qemu (3, 4, …).
pub const PORTS: [&str; 6] = [
    "wrapix.stdin",
    "wrapix.stdout",
    "wrapix.stderr",
    "wrapix.exit",
    "wrapix.signal",
    "wrapix.notify",
];
/// The fd of the first port's socket in qemu.
pub const FIRST_PORT_FD: i32 = 3;
/// The fd of the serial console's socket in qemu (the kernel's messages), after the ports'.
pub const CONSOLE_FD: i32 = FIRST_PORT_FD + PORTS.len() as i32;
/// The fd of the NIC's socket in qemu (`-netdev socket,fd=…`), after the console's.
pub const NET_FD: i32 = CONSOLE_FD + 1;

/// What PID 1 in the guest does, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestConfig {
    /// Shares mounted at `/shares/TAG` in the initramfs (outside the command's root).
    pub shares: Vec<GuestShare>,
    /// The command's root, built on a tmpfs, in order; then remounted read-only.
    pub root: Vec<GuestMount>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    /// Exec'd in the root as the user (wrapix's init and the command).
    pub argv: Vec<String>,
    pub hostname: String,
    /// Bring up `eth0` with this address/prefix and default gateway (`network = "open"`).
    pub net: Option<GuestNet>,
    /// `[resources]` that the guest's kernel enforces on the command (a cgroup of its own);
    /// `cpus` is the VM's number of vCPUs instead.
    #[serde(default)]
    pub limits: GuestLimits,
    /// Published ports and a network allowlist: a second NIC, qemu's user-mode network with
    /// `restrict=on` (nothing out but the egress proxy's forward, only its `hostfwd` listeners
    /// in), found by its MAC.
    #[serde(default)]
    pub ports_nic: Option<GuestNic>,
}

/// A NIC the guest finds by its MAC address and gives an address, without a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNic {
    pub mac: String,
    pub address: String,
    pub prefix: u8,
}

/// The command's cgroup in the guest: `memory.max` (no swap) and `pids.max`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLimits {
    pub memory_mb: Option<u64>,
    pub pids: Option<u64>,
}

impl GuestLimits {
    pub fn any(&self) -> bool {
        self.memory_mb.is_some() || self.pids.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNet {
    pub address: String,
    pub prefix: u8,
    pub gateway: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestShare {
    pub tag: String,
    pub read_only: bool,
}

/// One piece of the command's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GuestMount {
    /// `/shares/TAG/SUB` bound at `dest`.
    Bind {
        tag: String,
        sub: String,
        dest: String,
        read_only: bool,
    },
    Dir {
        dest: String,
    },
    Symlink {
        target: String,
        dest: String,
    },
    /// A tmpfs with `mode`, owned by the user when `owned`.
    Tmpfs {
        dest: String,
        mode: u32,
        owned: bool,
    },
    /// A file made from bytes (0444, or the user's 0600 when writable) bound at `dest`.
    File {
        data: Vec<u8>,
        dest: String,
        writable: bool,
    },
    Proc {
        dest: String,
    },
    /// A minimal `/dev`: null, zero, full, random, urandom, tty, pts, shm.
    Dev {
        dest: String,
    },
    /// The notification socket's folder: PID 1 listens on `dest/notify.sock` (the user's, 0600)
    /// and relays each frame (one JSON line per connection, as `wrapix notify` sends it) over
    /// the `wrapix.notify` port to the supervisor, which hands it to the host's daemon.
    NotifyRelay {
        dest: String,
    },
    /// The egress proxy's socket (a network allowlist), where every sandbox has it: PID 1
    /// listens there (the user's, 0600) and relays each connection to `to` (`ADDRESS:PORT`),
    /// the proxy's forward on the user-mode NIC ([`egress`]).
    EgressRelay {
        socket: String,
        to: String,
    },
}
