//! The one executor: spawns any [`LaunchPlan`], finishes the sandbox's set-up (network),
//! forwards signals to the sandbox's init, and returns the exit code.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{pipe2, Pid};

use crate::error::SandboxError;
pub use crate::exec_api::{exit_code, ExecOptions, Outcome, Stopped, FORWARDED, STOP_GRACE};
use crate::plan::{LaunchPlan, SignalTarget};

/// Runs `plan` to completion and returns the exit code to pass on (128+N for a signal).
pub fn execute(plan: &LaunchPlan) -> Result<i32, SandboxError> {
    execute_with(plan, ExecOptions::default()).map(|o| o.code)
}

/// [`execute`] with stdio, a deadline and the meaning of Ctrl-C chosen by the caller.
pub fn execute_with(plan: &LaunchPlan, opts: ExecOptions) -> Result<Outcome, SandboxError> {
    if plan.after_kill.is_some() {
        // Never silently skipped: no Linux backend asks for it, so a plan that does is wrong.
        return Err(SandboxError::Unavailable {
            backend: plan.backend,
            problem: "its plan has a clean-up after a kill, which only the macOS executor runs"
                .into(),
            fix: "run this backend on the host it is for".into(),
        });
    }
    let ExecOptions {
        stdin,
        stdout,
        stderr,
        deadline,
        interrupt_ends,
        grace,
    } = opts;
    // Free the fd numbers the plan uses, if wrapix inherited something there (see place_fds).
    let highest = plan
        .fds
        .iter()
        .map(|d| d.fd)
        .chain(plan.pass.iter().map(|p| p.fd))
        .chain(plan.info_fd)
        .chain(plan.block_fd)
        .max();
    close_inherited_below(highest.unwrap_or(2));
    // Data fds: one memfd each, mapped to the plan's fd numbers in the child.
    let mut maps: Vec<(OwnedFd, RawFd)> = Vec::new();
    for d in &plan.fds {
        let name = CString::new("wrapix").unwrap_or_default();
        let fd = memfd_create(&name, MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| SandboxError::sys(format!("create a memfd for {}", d.what), e))?;
        let mut f = File::from(fd);
        f.write_all(&d.data)
            .and_then(|()| f.rewind())
            .map_err(|e| SandboxError::io(format!("write {}", d.what), e))?;
        maps.push((OwnedFd::from(f), d.fd));
    }
    // Open handles (bind sources held since they were checked): a duplicate each.
    for p in &plan.pass {
        let dup = p
            .file
            .try_clone()
            .map_err(|e| SandboxError::io(format!("pass {} to the backend", p.what), e))?;
        maps.push((dup, p.fd));
    }
    let info = match plan.info_fd {
        Some(target) => {
            let (r, w) = pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SandboxError::sys("create the info pipe", e))?;
            maps.push((w, target));
            Some(File::from(r))
        }
        None => None,
    };
    let block = match (plan.block_fd, &plan.release_fifo) {
        (Some(target), _) => {
            let (r, w) = pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| SandboxError::sys("create the block pipe", e))?;
            maps.push((r, target));
            Some(File::from(w))
        }
        // Read and write: never blocks for want of a reader, and the init's read end sees
        // end-of-file once this is closed without the byte.
        (None, Some(fifo)) => Some(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(fifo)
                .map_err(|e| SandboxError::io(format!("open {}", fifo.display()), e))?,
        ),
        (None, None) => None,
    };

    // Block the forwarded signals in this process before spawning, so that none is lost
    // between the spawn and the forwarding thread; the child starts with an empty mask.
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.thread_block()
        .map_err(|e| SandboxError::sys("block signals", e))?;
    // Read by the forwarding thread, which ends with the run (a later run in the same
    // process, as ralph's, gets its own).
    let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| SandboxError::sys("create a signalfd", e))?;

    // A PID file left by an earlier run (same folder, same wrapix PID) must never be read.
    if let Some(path) = &plan.pid_file {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SandboxError::io(format!("remove {}", path.display()), e)),
        }
    }

    let mut pty = match plan.terminal && crate::pty::interactive() {
        true => Some(crate::pty::Pty::open()?),
        false => None,
    };

    let mut cmd = Command::new(&plan.program);
    if let Some((_, slave)) = &pty {
        let dup = || {
            slave
                .try_clone()
                .map_err(|e| SandboxError::io("dup the pty", e))
        };
        cmd.stdin(dup()?).stdout(dup()?).stderr(dup()?);
    }
    if let Some(io) = stdin {
        cmd.stdin(io);
    }
    if let Some(io) = stdout {
        cmd.stdout(io);
    }
    if let Some(io) = stderr {
        cmd.stderr(io);
    }
    cmd.args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)));
    // Own process group: a Ctrl-C on the terminal reaches wrapix only, which forwards it to
    // the agent instead of killing bwrap (and with it the sandbox) outright.
    cmd.process_group(0);
    let pairs: Vec<(RawFd, RawFd)> = maps
        .iter()
        .map(|(fd, target)| (fd.as_raw_fd(), *target))
        .collect();
    // Nothing wrapix inherited reaches the backend, and through it the sandbox: an open
    // directory fd would be a way out (`openat(fd, "..")`).
    mark_fds_cloexec().map_err(|e| SandboxError::io("mark inherited fds close-on-exec", e))?;
    // The fds at their numbers already, here: the child inherits them with no pre-exec hook,
    // so the backend starts through posix_spawn (vfork), without a copy of wrapix's address
    // space. Otherwise (a number is taken) the child moves them between fork and exec.
    let placed = place_fds(&pairs);
    if placed.is_none() {
        map_fds_in_child(&mut cmd, pairs)?;
    }
    if plan.guard_backend {
        guard_backend(&mut cmd);
    }
    if !plan.pin_mounts.is_empty() {
        pin_mounts(&mut cmd, &plan.pin_mounts)?;
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::io(format!("start {}", plan.program.display()), e))?;
    // Our copies of the child's ends (the Command holds the pty slave copies).
    drop(cmd);
    drop(placed);
    drop(maps);
    let mut pty = pty.take().map(|(p, _slave)| p);

    let mut reports = info.map(Reports::new);
    let sandbox_pid = match &mut reports {
        Some(r) => match r.child_pid() {
            Some(pid) => Some(pid),
            None => {
                let status = child
                    .wait()
                    .map_err(|e| SandboxError::io(format!("wait for {}", plan.backend), e))?;
                return Err(SandboxError::Unavailable {
                    backend: plan.backend,
                    problem: format!(
                        "{} could not create the sandbox ({status}; its message is above)",
                        plan.backend
                    ),
                    fix: "run `wrapix doctor` to see what this host is missing".into(),
                });
            }
        },
        // Nothing reported: the backend itself.
        None => i32::try_from(child.id()).ok(),
    };

    let mut network = None;
    let mut held_pid = None;
    // The process whose network namespace is the sandbox's: the one the backend reported on
    // --info-fd (bwrap), the one in its PID file (podman, whose own PID is reported), or the
    // backend's child in a namespace of its own (nspawn).
    let find_holder = |child: &mut Child| {
        if let Some(comm) = &plan.holder_in_child {
            let parent = i32::try_from(child.id()).unwrap_or(0);
            wait_for_netns_child(plan.backend, parent, comm, child, SANDBOX_START_TIMEOUT)
        } else if let Some(path) = &plan.pid_file {
            wait_for_pid_file(path, child, SANDBOX_START_TIMEOUT)
        } else {
            sandbox_pid.ok_or_else(|| SandboxError::Network {
                detail: "the backend reported no sandbox PID".into(),
                fix: "run `wrapix doctor`, or run with --network none".into(),
            })
        }
    };
    if plan.network.is_none() && plan.signals == SignalTarget::Holder {
        match find_holder(&mut child) {
            Ok(pid) => held_pid = Some(pid),
            // The sandbox ended (or never started) before it could be found: nothing to
            // forward to; its exit status says the rest.
            Err(e) => tracing::debug!("no sandbox process to forward signals to: {e}"),
        }
    }
    if let Some(net) = &plan.network {
        let held = find_holder(&mut child);
        let attached = match held {
            Ok(pid) => crate::network::attach(net, pid)
                .map(|a| (a, pid))
                .map_err(|e| (e, Some(pid))),
            Err(e) => Err((e, None)),
        };
        match attached {
            Ok((a, pid)) => {
                network = Some(a);
                held_pid = Some(pid);
            }
            Err((e, held)) => {
                abandon(child, held, block);
                return Err(e);
            }
        }
    }
    if let Some(mut block) = block {
        if let Err(e) = block.write_all(b"1") {
            // The held process is gone (nothing reads the pipe): stop what was set up for it.
            drop(network);
            abandon(child, held_pid.or(sandbox_pid), None);
            return Err(SandboxError::io("release the sandbox", e));
        }
    }

    let resizer = match &mut pty {
        Some(p) => {
            p.start()?;
            Some(p.resizer()?)
        }
        None => None,
    };
    let stopped = Arc::new(Mutex::new(None));
    if let Some(pid) = sandbox_pid {
        // pidfds: a signal never reaches another process that got a reused PID.
        let by_pidfd = |pid: Option<i32>| match pid.and_then(pidfd) {
            Some(fd) => Target::Process(fd),
            // Already gone: nothing to forward to.
            None => Target::Gone,
        };
        let target = match plan.signals {
            SignalTarget::Process => by_pidfd(Some(pid)),
            SignalTarget::Group => Target::Group(pid),
            SignalTarget::Holder => by_pidfd(held_pid),
        };
        let backend = pidfd(child.id() as i32);
        let sees_the_end = backend.is_some();
        let forward = Forward {
            signals,
            target,
            backend,
            pty: resizer,
            deadline,
            interrupt_ends,
            grace: grace.unwrap_or(STOP_GRACE),
            stopped: stopped.clone(),
        };
        if sees_the_end {
            // Here, until the backend's pidfd says it ended (no thread: starting one is
            // ~0.1 ms of every launch); the wait below then reaps it at once.
            forward.run();
        } else {
            // Without the backend's pidfd, `run` cannot see the end: a thread of its own,
            // left running, while this one waits.
            std::thread::spawn(move || forward.run());
        }
    }
    let status = child
        .wait()
        .map_err(|e| SandboxError::io("wait for the sandbox", e));
    let stopped = stopped.lock().map(|s| *s).unwrap_or(None);
    let outcome = |code| Outcome { code, stopped };
    if let Some(p) = pty {
        p.finish();
    }
    if let Some(n) = network {
        n.stop();
    }
    let status = status?;
    // bubblewrap exits 1 both when the command does and when the command never started (set-up
    // or exec failed, its message is above); only in the first case did it report an exit code.
    if let (Some(code), Some(r), Some(1)) = (plan.not_started, &mut reports, status.code()) {
        if !r.command_exited() {
            return Ok(outcome(code));
        }
    }
    Ok(outcome(exit_code(status)))
}

/// Closes the fds from 3 to `last` that lack close-on-exec: wrapix opens everything
/// close-on-exec, so these were inherited from its parent, and nothing uses them.
fn close_inherited_below(last: RawFd) {
    for fd in 3..=last {
        if let Ok(flags) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD) {
            if flags & libc::FD_CLOEXEC == 0 {
                let _ = nix::unistd::close(fd);
            }
        }
    }
}

/// Duplicates each source onto its target number in this process (no close-on-exec), never
/// replacing an open fd: `None` when a target is taken (nothing is left open then).
#[allow(unsafe_code)]
fn place_fds(pairs: &[(RawFd, RawFd)]) -> Option<Vec<OwnedFd>> {
    use std::os::fd::FromRawFd;
    let mut placed = Vec::with_capacity(pairs.len());
    for &(src, target) in pairs {
        // The lowest free number from `target` on: `target` itself unless it is taken.
        let fd = nix::fcntl::fcntl(src, nix::fcntl::FcntlArg::F_DUPFD(target)).ok()?;
        // SAFETY: `fd` was just created by F_DUPFD and is owned by nothing else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if fd != target {
            return None;
        }
        placed.push(owned);
    }
    Some(placed)
}

/// Marks every fd above stderr close-on-exec (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`,
/// Linux 5.11+; older kernels get a loop over the fd table's size). Also safe between fork
/// and exec: no allocation.
#[allow(unsafe_code)]
fn mark_fds_cloexec() -> std::io::Result<()> {
    // SAFETY: raw syscalls on integers only.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        ) == 0
        {
            return Ok(());
        }
        let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
            m if m > 0 => m.min(1 << 20) as RawFd,
            _ => 1 << 16,
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0
                && flags & libc::FD_CLOEXEC == 0
                && libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// The backend's JSON reports on the info fd: `{"child-pid": N}` first; bubblewrap's
/// `--json-status-fd` adds `{"exit-code": N}` once the command it started has exited.
struct Reports {
    file: File,
    buf: Vec<u8>,
}

impl Reports {
    fn new(file: File) -> Self {
        Reports {
            file,
            buf: Vec::new(),
        }
    }

    /// The next report; `None` at end of file or on anything that is not JSON.
    fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            let mut it =
                serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
            match it.next() {
                Some(Ok(v)) => {
                    let used = it.byte_offset();
                    self.buf.drain(..used);
                    return Some(v);
                }
                Some(Err(e)) if !e.is_eof() => return None,
                _ => {}
            }
            let mut chunk = [0u8; 1024];
            match self.file.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The sandbox's PID (the first report); `None` if the backend exited before creating it.
    fn child_pid(&mut self) -> Option<i32> {
        self.next()?
            .get("child-pid")
            .and_then(|p| p.as_i64())
            .and_then(|p| i32::try_from(p).ok())
    }

    /// Whether a later report says the command exited (read to the end: the backend is gone).
    fn command_exited(&mut self) -> bool {
        while let Some(v) = self.next() {
            if v.get("exit-code").is_some() {
                return true;
            }
        }
        false
    }
}

/// How long a backend that reports its sandbox through a PID file may take to create it.
/// Podman needs a fraction of a second; its first run for a user (storage, pause process)
/// takes longer.
pub const SANDBOX_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the PID file is looked at.
const PID_FILE_POLL: Duration = Duration::from_millis(2);
/// How long a backend gets to clean up after its held sandbox was killed (Podman removes the
/// container) before it is killed too.
const ABANDON_GRACE: Duration = Duration::from_secs(5);

/// Waits until `path` holds a PID, while the backend (`child`) runs: an error if it exits
/// first or `timeout` passes.
fn wait_for_pid_file(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
) -> Result<i32, SandboxError> {
    let start = Instant::now();
    loop {
        // runc writes the file whole (a temporary name, then a rename), so a partial number is
        // never read; an empty or unparsable file would be read again.
        let pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 1);
        if let Some(pid) = pid {
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SandboxError::Network {
                detail: format!(
                    "the sandbox ended before it started ({status}; its message is above)"
                ),
                fix: "run `wrapix doctor`".into(),
            });
        }
        if start.elapsed() >= timeout {
            return Err(SandboxError::Network {
                detail: format!(
                    "the sandbox did not start within {} s ({} was not written)",
                    timeout.as_secs(),
                    path.display()
                ),
                fix: "run `wrapix doctor`, or run with --network none".into(),
            });
        }
        std::thread::sleep(PID_FILE_POLL);
    }
}

/// Waits until the backend process `parent` has a child in a network namespace other than
/// wrapix's that runs `comm` (the sandbox's first process, set up), while the backend runs: an
/// error if it exits first or `timeout` passes. Only a different namespace counts, so the
/// host's own is never returned.
fn wait_for_netns_child(
    backend: &'static str,
    parent: i32,
    comm: &str,
    child: &mut Child,
    timeout: Duration,
) -> Result<i32, SandboxError> {
    let ns = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let own = ns("self").ok_or_else(|| SandboxError::Network {
        detail: "cannot read this process's network namespace".into(),
        fix: "mount /proc".into(),
    })?;
    let start = Instant::now();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{parent}/task"))
            .into_iter()
            .flatten()
            .flatten();
        for task in tasks {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in children.split_whitespace() {
                let runs = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim_end() == comm);
                if runs && ns(pid).is_some_and(|n| n != own) {
                    if let Ok(pid) = pid.parse::<i32>() {
                        return Ok(pid);
                    }
                }
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SandboxError::Unavailable {
                backend,
                problem: format!(
                    "the sandbox ended before it started ({status}; its message is above)"
                ),
                fix: "run `wrapix doctor`".into(),
            });
        }
        if start.elapsed() >= timeout {
            return Err(SandboxError::Unavailable {
                backend,
                problem: format!("the sandbox did not start within {} s", timeout.as_secs()),
                fix: "run `wrapix doctor`".into(),
            });
        }
        std::thread::sleep(PID_FILE_POLL);
    }
}

/// The backend dies with wrapix (SIGTERM, on which nspawn kills its container) and ignores the
/// signals that would kill it without stopping its container; the sandbox's init gets them
/// from wrapix instead ([`SignalTarget::Holder`]).
#[allow(unsafe_code)]
fn guard_backend(cmd: &mut Command) {
    // SAFETY: between fork and exec; prctl and signal with integer arguments only.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for sig in [
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGWINCH,
            ] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
}

/// In the child, before exec: a detached copy of each handle's mount (`open_tree`, taken in
/// the host's mount namespace, where the handle's mount is), then a mount namespace of its own
/// (no propagation back to the host) into which each copy is moved onto its target: the
/// checked object itself, whatever its path holds now.
#[allow(unsafe_code)]
fn pin_mounts(cmd: &mut Command, pins: &[crate::plan::PinMount]) -> Result<(), SandboxError> {
    use std::os::unix::ffi::OsStrExt;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let cstr = |b: &[u8]| {
        std::ffi::CString::new(b).map_err(|_| {
            SandboxError::io(
                "pin a bind source",
                std::io::Error::other("a path with a NUL byte"),
            )
        })
    };
    // Built before the fork: nothing may be allocated between fork and exec.
    let pins: Vec<(RawFd, CString)> = pins
        .iter()
        .map(|p| Ok((p.fd, cstr(p.target.as_os_str().as_bytes())?)))
        .collect::<Result<_, SandboxError>>()?;
    if pins.len() > MAX_MAPPED_FDS {
        return Err(SandboxError::io(
            "pin bind sources",
            std::io::Error::other(format!("more than {MAX_MAPPED_FDS}")),
        ));
    }
    let root = cstr(b"/")?;
    let empty = cstr(b"")?;
    // SAFETY: between fork and exec; open_tree, unshare, mount and move_mount with pointers
    // into `pins`, `root` and `empty`, which the closure owns and which live until exec; the
    // tree fds go into a fixed array (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            let mut trees = [-1 as RawFd; MAX_MAPPED_FDS];
            for (i, (fd, _)) in pins.iter().enumerate() {
                let t = libc::syscall(
                    libc::SYS_open_tree,
                    *fd,
                    empty.as_ptr(),
                    OPEN_TREE_CLONE
                        | libc::AT_EMPTY_PATH as libc::c_uint
                        | libc::O_CLOEXEC as libc::c_uint,
                );
                if t < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                trees[i] = t as RawFd;
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            for (i, (_, target)) in pins.iter().enumerate() {
                if libc::syscall(
                    libc::SYS_move_mount,
                    trees[i],
                    empty.as_ptr(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(trees[i]);
            }
            Ok(())
        });
    }
    Ok(())
}

/// Stops a sandbox whose set-up failed, never letting its command run: the held process (if
/// known) is killed while it still waits for the release; the backend then gets
/// [`ABANDON_GRACE`] to exit and clean up (Podman removes the container), or is killed. The
/// release pipe is closed last: bubblewrap would take end-of-file as the release, wrapix's
/// init (podman) exits 125 on it without running the command.
fn abandon(mut child: Child, held: Option<i32>, block: Option<File>) {
    let exited = match held {
        Some(pid) => {
            // By pidfd: the held process is the backend's, not ours, and its PID could have
            // been reused once it is gone.
            if let Some(fd) = pidfd(pid) {
                send(&fd, Signal::SIGKILL);
            }
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(None) if start.elapsed() < ABANDON_GRACE => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Ok(None) => break false,
                    Ok(Some(_)) | Err(_) => break true,
                }
            }
        }
        None => false,
    };
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
    drop(block);
}

/// The most fds a plan may pass when they have to be moved in the child (a fixed array:
/// nothing may be allocated between fork and exec).
const MAX_MAPPED_FDS: usize = 32;

#[allow(unsafe_code)]
fn map_fds_in_child(cmd: &mut Command, pairs: Vec<(RawFd, RawFd)>) -> Result<(), SandboxError> {
    if pairs.len() > MAX_MAPPED_FDS {
        // Never drop one silently: a missing seccomp filter or status fd is a different sandbox.
        return Err(SandboxError::io(
            format!(
                "pass {} file descriptors to the backend (at most {MAX_MAPPED_FDS})",
                pairs.len()
            ),
            std::io::Error::other("too many for the fd table fallback"),
        ));
    }
    let mut fixed = [(0 as RawFd, 0 as RawFd); MAX_MAPPED_FDS];
    let n = pairs.len();
    fixed[..n].copy_from_slice(&pairs[..n]);
    // SAFETY: runs between fork and exec; uses only async-signal-safe calls (fcntl, dup2,
    // close, close_range, sigprocmask) on a fixed-size array captured by value, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Move every source above the target range first, so no dup2 clobbers a source.
            let mut high = [0 as RawFd; MAX_MAPPED_FDS];
            for i in 0..n {
                let fd = libc::fcntl(fixed[i].0, libc::F_DUPFD, 200);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = fd;
            }
            // As in the parent (see `execute`): everything above stderr close-on-exec; the
            // dup2 targets below are made afterwards and stay open.
            mark_fds_cloexec()?;
            for i in 0..n {
                if libc::dup2(high[i], fixed[i].1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high[i]);
            }
            // wrapix blocks the signals it forwards; the child must not inherit that.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    Ok(())
}

/// Where forwarded signals go.
enum Target {
    /// One process, by pidfd.
    Process(OwnedFd),
    /// A process group (its leader's PID); groups have no pidfd.
    Group(i32),
    /// The process was gone before forwarding started.
    Gone,
}

/// A pidfd for `pid`, if it is still there.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

fn send(fd: &OwnedFd, sig: Signal) {
    if let Some(sig) = rustix::process::Signal::from_named_raw(sig as i32) {
        let _ = rustix::process::pidfd_send_signal(fd, sig);
    }
}

/// The forwarding thread of one run: passes the signals wrapix receives to [`Target`],
/// enforces the deadline, and ends when the backend exits.
struct Forward {
    signals: SignalFd,
    target: Target,
    /// The backend's pidfd: readable once it exited. Without one the thread lives on.
    backend: Option<OwnedFd>,
    pty: Option<crate::pty::Resizer>,
    deadline: Option<Instant>,
    interrupt_ends: bool,
    grace: Duration,
    stopped: Arc<Mutex<Option<Stopped>>>,
}

impl Forward {
    /// After TERM, HUP or QUIT (and INT with `interrupt_ends`) the backend, whose death takes
    /// the whole PID namespace with it, is killed if it has not exited within the grace: an
    /// agent that ignores the signal (an interactive shell ignores SIGTERM) must not outlive
    /// the request.
    fn run(self) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut kill_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wake = [self.deadline, kill_at].into_iter().flatten().min();
            if let Some(at) = wake.filter(|at| *at <= now) {
                if Some(at) == self.deadline {
                    self.record(Stopped::Deadline);
                }
                self.kill_all();
                return;
            }
            let timeout = wake.map(|at| {
                let left = at.saturating_duration_since(now);
                Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                }
            });
            let mut fds = vec![PollFd::new(&self.signals, PollFlags::IN)];
            if let Some(b) = &self.backend {
                fds.push(PollFd::new(b, PollFlags::IN));
            }
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
            if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
                return;
            }
            let Ok(Some(info)) = self.signals.read_signal() else {
                continue;
            };
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match (&self.pty, sig) {
                // On a pty, the kernel signals the sandbox's foreground job itself.
                (Some(p), Signal::SIGWINCH) => p.resize(),
                _ => self.forward(sig),
            }
            let ends = matches!(sig, Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT)
                || (self.interrupt_ends && sig == Signal::SIGINT);
            if ends {
                self.record(Stopped::Signal(sig));
                if kill_at.is_none() && self.backend.is_some() {
                    kill_at = Some(Instant::now() + self.grace);
                }
            }
        }
    }

    fn forward(&self, sig: Signal) {
        match &self.target {
            Target::Process(fd) => send(fd, sig),
            Target::Group(pgid) => {
                let _ = kill(Pid::from_raw(-pgid), sig);
            }
            Target::Gone => {}
        }
    }

    /// The sandbox and its backend, at once.
    fn kill_all(&self) {
        self.forward(Signal::SIGKILL);
        if let Some(b) = &self.backend {
            send(b, Signal::SIGKILL);
        }
    }

    fn record(&self, why: Stopped) {
        if let Ok(mut s) = self.stopped.lock() {
            s.get_or_insert(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn fds_are_placed_only_on_free_numbers() {
        let (r, w) = nix::unistd::pipe().unwrap_or_else(|e| panic!("{e}"));
        // Two free numbers far above anything the test harness opens.
        let placed = place_fds(&[(r.as_raw_fd(), 900), (w.as_raw_fd(), 901)])
            .unwrap_or_else(|| panic!("900 and 901 are free"));
        let numbers: Vec<RawFd> = placed.iter().map(|f| f.as_raw_fd()).collect();
        assert_eq!(numbers, [900, 901]);
        // Placed fds are inherited by children (no close-on-exec).
        let flags = nix::fcntl::fcntl(900, nix::fcntl::FcntlArg::F_GETFD).unwrap_or(-1);
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        // Both are taken now: no placement, and nothing is left open on the way.
        assert!(place_fds(&[(r.as_raw_fd(), 901), (w.as_raw_fd(), 900)]).is_none());
        drop(placed);
        assert!(nix::fcntl::fcntl(901, nix::fcntl::FcntlArg::F_GETFD).is_err());
        assert!(nix::fcntl::fcntl(902, nix::fcntl::FcntlArg::F_GETFD).is_err());
    }
}
