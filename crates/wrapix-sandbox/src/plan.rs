//! A launch plan: the only thing the executor runs. Backends produce plans from a
//! [`crate::Prepared`] without touching the system, so a plan can be compared whole in tests.

use std::ffi::OsString;
use std::path::PathBuf;

/// Bytes the executor puts on file descriptor `fd` in the child (via a sealed memfd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdData {
    pub fd: i32,
    /// What the data is, for errors and snapshots.
    pub what: String,
    pub data: Vec<u8>,
}

/// An open file descriptor the executor passes to the backend at `fd` (an `O_PATH` handle of
/// a checked path, bound by fd so that it cannot be swapped for a link in between).
#[derive(Debug, Clone)]
pub struct PassFd {
    pub fd: i32,
    /// What it is, for errors and snapshots.
    pub what: String,
    pub file: std::sync::Arc<std::os::fd::OwnedFd>,
}

impl PartialEq for PassFd {
    fn eq(&self, other: &Self) -> bool {
        self.fd == other.fd && self.what == other.what
    }
}

impl Eq for PassFd {}

/// A passed handle bound onto a path in the backend's mount namespace ([`LaunchPlan::pin_mounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMount {
    pub fd: i32,
    pub target: PathBuf,
}

/// Userspace networking attached to the sandbox's network namespace once it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSetup {
    pub program: PathBuf,
    /// Arguments before the namespace options the executor adds (`--netns`, `--userns`).
    pub args: Vec<OsString>,
    /// Join the user namespace that owns the sandbox's network namespace even as root
    /// (systemd-nspawn's: pasta drops its capabilities before it opens the namespace).
    pub join_userns: bool,
    /// Start pasta only once the namespace's loopback has its IPv4 address. pasta brings `lo`
    /// up, which makes the kernel add 127.0.0.1 itself; bubblewrap sets up its loopback in
    /// parallel with the executor and fails on an address that already exists.
    pub await_loopback: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// The backend's name, for errors.
    pub backend: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment of the program (the host's is not inherited).
    pub env: Vec<(OsString, OsString)>,
    pub fds: Vec<FdData>,
    /// Open handles passed at fixed numbers (bubblewrap's `--bind-fd`).
    pub pass: Vec<PassFd>,
    /// fd on which the backend reports the sandbox's pid as JSON (`{"child-pid": N}`), and
    /// for bubblewrap (`--json-status-fd`) later `{"exit-code": N}` when the command exited.
    pub info_fd: Option<i32>,
    /// The exit code when the backend exits 1 without having reported the command's exit:
    /// the command never started (see [`crate::Prepared::not_started_code`]). `None` when the
    /// backend reports no exits.
    pub not_started: Option<i32>,
    /// fd the sandbox blocks on until the executor has finished setting it up. The executor
    /// puts a pipe's read end there and writes one byte to release the sandbox; the sandbox
    /// must treat end-of-file (the executor gave up or died) as "do not run the command".
    pub block_fd: Option<i32>,
    /// A file the backend writes the PID of the sandbox's first process to, once its
    /// namespaces exist (Podman's `--pidfile`): that process's network namespace is the
    /// sandbox's. Without it, the PID reported on `info_fd` is used. The executor removes
    /// the file before starting the plan and waits for it (bounded) only when there is
    /// network set-up to do.
    pub pid_file: Option<PathBuf>,
    /// The sandbox's first process is the backend's child that has a network namespace of its
    /// own and runs the program with this name (its `comm`: wrapix's init, which then waits
    /// for the release; systemd-nspawn reports nothing, and its child is not ready to be
    /// joined before it execs). The executor finds it under `/proc`, for the network set-up
    /// and for [`SignalTarget::Holder`].
    pub holder_in_child: Option<String>,
    /// A FIFO the sandbox's init waits on (`--wait-file`) instead of [`LaunchPlan::block_fd`],
    /// for a backend that passes no descriptors: the executor opens it for writing before the
    /// start and writes the release byte (or closes it: "do not run").
    pub release_fifo: Option<PathBuf>,
    /// Start the backend with `PR_SET_PDEATHSIG` = SIGTERM and SIGHUP, SIGQUIT, SIGUSR1,
    /// SIGUSR2 and SIGWINCH ignored: systemd-nspawn dies of those and leaves its container
    /// running; on SIGTERM it kills the container.
    pub guard_backend: bool,
    /// Before the backend starts, in a mount namespace of its own: bind each passed handle
    /// ([`LaunchPlan::pass`], by its fd number) onto a path, so that a backend that binds by
    /// path (nspawn) binds exactly the object that was checked, not whatever a link put at the
    /// checked path in between. Needs root.
    pub pin_mounts: Vec<PinMount>,
    pub network: Option<NetworkSetup>,
    /// Give the sandbox a fresh pseudo-terminal (when wrapix runs on a terminal).
    pub terminal: bool,
    /// Where the executor sends the signals it forwards (the PID reported on `info_fd`).
    pub signals: SignalTarget,
    /// A command the executor runs (bounded, its output discarded) after it had to SIGKILL the
    /// backend: Apple's `container delete --force NAME`, since the container's VM outlives a
    /// killed CLI. Only the POSIX executor (macOS) runs it; the Linux one refuses a plan that
    /// has one (no Linux backend needs it).
    pub after_kill: Option<Vec<OsString>>,
}

/// Where forwarded signals go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// The reported PID itself: wrapix's init as the sandbox's PID 1 (bubblewrap), which
    /// passes them on to the command's group, or podman, which passes them into the container.
    Process,
    /// The process group of the sandbox's PID 1: bubblewrap's own init starts the command in
    /// its own session and group and ignores signals from outside (the kernel delivers
    /// nothing to a PID namespace's init that has no handler), so the group is the command
    /// and whatever it started.
    Group,
    /// The sandbox's first process found by the executor ([`LaunchPlan::holder_in_child`]):
    /// wrapix's init, which passes them on; the backend itself is not told.
    Holder,
}

impl LaunchPlan {
    /// The argv as one string per line, for snapshots and `wrapix run --dry-run`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.program.to_string_lossy());
        for a in &self.args {
            let a = a.to_string_lossy();
            if a.starts_with("--") {
                out.push('\n');
            } else {
                out.push(' ');
            }
            out.push_str(&a);
        }
        out.push('\n');
        out
    }
}
