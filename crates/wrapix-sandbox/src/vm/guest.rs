//! `__vm-guest`: PID 1 of the qemu backend's VM, started by the kernel from the initramfs
//! (`/init -- __vm-guest`). It runs as root in the guest (the guest kernel is the boundary
//! here, not namespaces), builds the command's root and runs wrapix's init there as the user:
//! no capabilities (bounding set emptied), `no_new_privs`, then wrapix's seccomp filter and
//! environment through the init's `--seccomp` and `--env-file`. Whatever happens, it reports an
//! exit code on the `wrapix.exit` port (125: the set-up failed, its message is on stderr) and
//! powers the VM off.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{GuestConfig, GuestLimits, GuestMount, CONFIG_FILE, PORTS, RUN_TAG};

/// Where the shares are mounted in the initramfs, and where the command's root is built.
const SHARES: &str = "/shares";
const NEWROOT: &str = "/newroot";
/// Generated files, before they are bound into the root.
const FILES: &str = "/files";

/// Runs PID 1 and powers off; never returns.
pub fn main() -> ! {
    let mut ports = Ports::default();
    let mut times = Times::default();
    let code = match run(&mut ports, &mut times) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wrapix: vm: {e}");
            125
        }
    };
    // Nothing of the sandbox outlives the command.
    // SAFETY: kill and reap with integer arguments.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-1, libc::SIGKILL);
        while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
        libc::sync();
    }
    if let Some(mut f) = ports.exit.take() {
        let _ = write!(
            f,
            "{code}\n{} {} {}\n",
            times.init, times.mounted, times.exec
        );
        let _ = f.flush();
        drop(f);
    }
    power_off()
}

#[derive(Default)]
struct Ports {
    exit: Option<File>,
}

/// Milliseconds since the guest kernel started: at init, with the root built, at the exec.
#[derive(Default)]
struct Times {
    init: u64,
    mounted: u64,
    exec: u64,
}

#[allow(unsafe_code)]
fn uptime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[allow(unsafe_code)]
fn power_off() -> ! {
    // SAFETY: reboot(2) with constant commands. The micro-VM has no ACPI (its timers hang
    // the cloud kernel under TCG with it): a reset (`reboot=t`, qemu's -no-reboot) ends it.
    unsafe {
        libc::reboot(libc::LINUX_REBOOT_CMD_RESTART);
        libc::reboot(libc::LINUX_REBOOT_CMD_POWER_OFF);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

#[allow(unsafe_code)]
fn mount(
    src: &str,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let (s, t) = (cstr(src)?, cstr(target)?);
    let f = fstype.map(cstr).transpose()?;
    let d = data.map(cstr).transpose()?;
    // SAFETY: NUL-terminated strings alive for the call, or null.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            d.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr() as *const libc::c_void),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount {src} on {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn run(ports: &mut Ports, times: &mut Times) -> Result<i32, String> {
    times.init = uptime_ms();
    let _ = std::fs::create_dir_all("/dev");
    let _ = mount("devtmpfs", "/dev", Some("devtmpfs"), 0, None);
    // For the command's pty (/dev/ptmx finds its instance at /dev/pts).
    let _ = std::fs::create_dir_all("/dev/pts");
    let _ = mount(
        "devpts",
        "/dev/pts",
        Some("devpts"),
        0,
        Some("ptmxmode=0666,mode=0620"),
    );
    std::fs::create_dir_all("/proc").map_err(|e| format!("create /proc: {e}"))?;
    mount("proc", "/proc", Some("proc"), 0, None)?;
    std::fs::create_dir_all("/sys").map_err(|e| format!("create /sys: {e}"))?;
    mount("sysfs", "/sys", Some("sysfs"), 0, None)?;
    load_modules()?;
    let found = find_ports()?;
    let open = |i: usize, write: bool| -> Result<File, String> {
        std::fs::OpenOptions::new()
            .read(!write)
            .write(write)
            .open(&found[i])
            .map_err(|e| format!("open {}: {e}", found[i].display()))
    };
    let stdin = open(0, false)?;
    let stdout = open(1, true)?;
    let stderr = open(2, true)?;
    ports.exit = Some(open(3, true)?);
    let signals = open(4, false)?;
    let notify = open(5, true)?;
    // From here the init's own messages reach the user's stderr.
    {
        use std::os::fd::AsRawFd;
        let _ = nix::unistd::dup2(stderr.as_raw_fd(), 2);
    }

    let run_share = Path::new(SHARES).join(RUN_TAG);
    std::fs::create_dir_all(&run_share)
        .map_err(|e| format!("create {}: {e}", run_share.display()))?;
    mount_virtiofs(RUN_TAG, &run_share, true)?;
    let config: GuestConfig = {
        let p = run_share.join(CONFIG_FILE);
        let data = std::fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
        serde_json::from_slice(&data).map_err(|e| format!("{}: {e}", p.display()))?
    };
    for s in &config.shares {
        let at = Path::new(SHARES).join(&s.tag);
        std::fs::create_dir_all(&at).map_err(|e| format!("create {}: {e}", at.display()))?;
        mount_virtiofs(&s.tag, &at, s.read_only)?;
    }
    super::guest_net::configure(config.net.as_ref(), config.ports_nic.as_ref())?;
    let _ = nix::unistd::sethostname(&config.hostname);
    let listeners = build_root(&config)?;
    if let Some(listener) = listeners.notify {
        std::thread::spawn(move || relay_notifications(&listener, notify));
    }
    if let Some((listener, to)) = listeners.egress {
        std::thread::spawn(move || super::egress::guest_relay(listener, to));
    }
    times.mounted = uptime_ms();

    let (prog, args) = config
        .argv
        .split_first()
        .ok_or("the config has no command")?;
    let (uid, gid) = (config.uid, config.gid);
    // Nothing runs before the host says go (with `open`, only once the host's addresses are
    // blocked); a signal first means the run was stopped before it started. A window size
    // before it means wrapix runs on a terminal.
    let mut signals = signals;
    let size = match super::guest_tty::read_go(&mut signals) {
        Ok(size) => size,
        Err(Some(sig)) => return Ok(128 + i32::from(sig)),
        Err(None) => return Err("the host never released the run".into()),
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env("PATH", crate::prepare::SANDBOX_PATH);
    let mut pty = None;
    let mut output = None;
    match size {
        Some(size) => {
            let (master, slave) = super::guest_tty::open(size, uid, gid)?;
            let dup = || slave.try_clone().map_err(|e| format!("dup the pty: {e}"));
            cmd.stdin(dup()?).stdout(dup()?).stderr(slave);
            output = Some(super::guest_tty::relay(&master, stdin, stdout)?);
            drop(stderr);
            pty = Some(master);
        }
        None => {
            cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        }
    }
    let root = cstr(NEWROOT)?;
    let cwd = cstr(&config.cwd)?;
    if let Some(procs) = limits_cgroup(&config.limits)? {
        join_cgroup_at_exec(&mut cmd, procs);
    }
    drop_privileges_at_exec(&mut cmd, root, cwd, uid, gid);
    times.exec = uptime_ms();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {prog} in the sandbox: {e}"))?;
    // Our copies of the pty's slave side: the relay ends once the sandbox's are closed.
    drop(cmd);
    let pid = child.id() as i32;
    // Signals from the host: one byte each, the signal's number, to wrapix's init (which passes
    // them on to the command's group); SIGWINCH carries the window size, set on the pty (whose
    // kernel signals the foreground group) or, without one, passed on as a signal.
    std::thread::spawn(move || {
        let mut signals = signals;
        let mut b = [0u8; 1];
        while let Ok(1) = signals.read(&mut b) {
            if i32::from(b[0]) == libc::SIGWINCH {
                let mut rc = [0u8; 4];
                if signals.read_exact(&mut rc).is_err() {
                    break;
                }
                if let Some(master) = &pty {
                    let r = u16::from_be_bytes([rc[0], rc[1]]);
                    let c = u16::from_be_bytes([rc[2], rc[3]]);
                    super::guest_tty::resize(master, (r, c));
                    continue;
                }
            }
            // SAFETY: kill with integers.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::c_int::from(b[0]));
            }
        }
    });
    let code = wait_for(pid)?;
    if let Some(output) = output {
        // What the terminal still holds reaches the user before the exit code: first nothing
        // of the sandbox may keep the slave open.
        // SAFETY: kill and reap with integer arguments (PID 1 is not signalled by -1).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(-1, libc::SIGKILL);
            while libc::waitpid(-1, std::ptr::null_mut(), 0) > 0 {}
        }
        let _ = output.join();
    }
    Ok(code)
}

/// `[resources]`: a cgroup for the command with the memory (no swap) and process limits; its
/// `cgroup.procs`, open (close-on-exec) for the command to join itself before its exec.
fn limits_cgroup(l: &GuestLimits) -> Result<Option<File>, String> {
    if !l.any() {
        return Ok(None);
    }
    let top = "/sys/fs/cgroup";
    mount("cgroup2", top, Some("cgroup2"), 0, None)?;
    let write = |p: &Path, v: &str| {
        std::fs::write(p, v)
            .map_err(|e| format!("[resources]: write {v:?} to {}: {e}", p.display()))
    };
    write(
        &Path::new(top).join("cgroup.subtree_control"),
        "+memory +pids",
    )?;
    let g = Path::new(top).join("sandbox");
    std::fs::create_dir(&g).map_err(|e| format!("create {}: {e}", g.display()))?;
    if let Some(mb) = l.memory_mb {
        write(&g.join("memory.max"), &(mb * 1024 * 1024).to_string())?;
        // The guest has no swap; where a kernel has some, none for the command.
        let _ = std::fs::write(g.join("memory.swap.max"), "0");
    }
    if let Some(n) = l.pids {
        write(&g.join("pids.max"), &n.to_string())?;
    }
    let procs = g.join("cgroup.procs");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&procs)
        .map(Some)
        .map_err(|e| format!("open {}: {e}", procs.display()))
}

/// Between fork and exec: the command moves itself into its cgroup ("0" is the writer).
#[allow(unsafe_code)]
fn join_cgroup_at_exec(cmd: &mut Command, procs: File) {
    use std::os::fd::AsRawFd;
    // SAFETY: one write(2) on an fd the closure owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reaps children until `pid` exits; its exit code (128+N for a signal).
fn wait_for(pid: i32) -> Result<i32, String> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes into `status`.
        #[allow(unsafe_code)]
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got < 0 {
            return Err("lost the command (no child left)".into());
        }
        if got == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
    }
}

/// Between fork and exec: into the root, as the user, with no capability left and
/// `no_new_privs`.
#[allow(unsafe_code)]
fn drop_privileges_at_exec(cmd: &mut Command, root: CString, cwd: CString, uid: u32, gid: u32) {
    // SAFETY: only async-signal-safe calls on values moved in.
    unsafe {
        cmd.pre_exec(move || {
            let err = std::io::Error::last_os_error;
            // A session of its own: wrapix's init takes a terminal it is given.
            libc::setsid();
            if libc::chroot(root.as_ptr()) != 0 {
                return Err(err());
            }
            if libc::chdir(cwd.as_ptr()) != 0 && libc::chdir(c"/".as_ptr()) != 0 {
                return Err(err());
            }
            for cap in 0..64 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(gid, gid, gid) != 0
                || libc::setresuid(uid, uid, uid) != 0
            {
                return Err(err());
            }
            // Nothing left (also when the user is root, uid 0).
            #[repr(C)]
            struct Header {
                version: u32,
                pid: i32,
            }
            #[repr(C)]
            struct Data {
                effective: u32,
                permitted: u32,
                inheritable: u32,
            }
            let mut h = Header {
                version: 0x2008_0522,
                pid: 0,
            };
            let d = [
                Data {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                },
                Data {
                    effective: 0,
                    permitted: 0,
                    inheritable: 0,
                },
            ];
            if libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()) != 0 {
                return Err(err());
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(err());
            }
            Ok(())
        });
    }
}

/// Loads `/modules/*.ko` in name order (the initramfs lists them dependencies first), with
/// the kernel command line's `NAME.PARAM=…` for each (as modprobe would).
#[allow(unsafe_code)]
fn load_modules() -> Result<(), String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir("/modules") {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => return Ok(()),
    };
    files.sort();
    for f in files {
        let stem = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let name = stem.split_once('-').map_or(stem.as_str(), |(_, n)| n);
        let prefix = format!("{}.", name.replace('-', "_"));
        let params: Vec<&str> = cmdline
            .split_whitespace()
            .filter_map(|t| t.strip_prefix(&prefix))
            .collect();
        let params = cstr(&params.join(" "))?;
        let file = File::open(&f).map_err(|e| format!("open {}: {e}", f.display()))?;
        use std::os::fd::AsRawFd;
        // SAFETY: finit_module with an open fd and a NUL-terminated string.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(format!("load {}: {e}", f.display()));
            }
        }
    }
    Ok(())
}

/// The device of each of [`PORTS`], once the kernel has them (bounded).
fn find_ports() -> Result<Vec<PathBuf>, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut found: Vec<Option<PathBuf>> = vec![None; PORTS.len()];
        if let Ok(dir) = std::fs::read_dir("/sys/class/virtio-ports") {
            for e in dir.flatten() {
                let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
                if let Some(i) = PORTS.iter().position(|p| *p == name.trim()) {
                    let dev = Path::new("/dev").join(e.file_name());
                    if dev.exists() {
                        found[i] = Some(dev);
                    }
                }
            }
        }
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        if std::time::Instant::now() > deadline {
            let seen: Vec<String> = std::fs::read_dir("/sys/bus/virtio/devices")
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "the VM's virtio-serial ports did not appear (virtio devices: {seen:?}; command line: {})",
                std::fs::read_to_string("/proc/cmdline").unwrap_or_default().trim()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Mounts virtiofs `tag` at `at` (waiting, bounded, for the device to be probed).
fn mount_virtiofs(tag: &str, at: &Path, read_only: bool) -> Result<(), String> {
    let at = at.to_str().ok_or("a share's mount point is not UTF-8")?;
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match mount(tag, at, Some("virtiofs"), flags, None) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

fn in_root(dest: &str) -> PathBuf {
    Path::new(NEWROOT).join(dest.trim_start_matches('/'))
}

/// Makes `p` (a folder, or an empty file) unless something is there.
fn mount_point(p: &Path, dir: bool) -> Result<(), String> {
    if std::fs::symlink_metadata(p).is_ok() {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    let made = if dir {
        std::fs::create_dir(p)
    } else {
        std::fs::write(p, b"")
    };
    made.map_err(|e| format!("create the mount point {}: {e}", p.display()))
}

fn bind(src: &Path, target: &Path, read_only: bool) -> Result<(), String> {
    let (s, t) = (
        src.to_str().ok_or("a path is not UTF-8")?,
        target.to_str().ok_or("a path is not UTF-8")?,
    );
    mount(s, t, None, libc::MS_BIND | libc::MS_REC, None)?;
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    mount("none", t, None, flags, None)
}

#[allow(unsafe_code)]
fn mknod(p: &Path, major: u32, minor: u32) -> Result<(), String> {
    let c = cstr(p.to_str().unwrap_or_default())?;
    // SAFETY: mknod with a NUL-terminated path.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mknod {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        ));
    }
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666));
    Ok(())
}

/// Each connection to the guest's notification socket: one frame (a JSON line, as `wrapix
/// notify` sends it, at most [`wrapix_notify::frame::MAX_FRAME`] bytes), read within a few
/// seconds, written with its newline to the `wrapix.notify` port. The host's daemon decodes
/// and judges it as any sandbox's; a few connections at a time, the others closed unread.
fn relay_notifications(listener: &std::os::unix::net::UnixListener, port: File) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let port = Arc::new(Mutex::new(port));
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= 8 {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (port, open) = (Arc::clone(&port), Arc::clone(&open));
        std::thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let limit = wrapix_notify::frame::MAX_FRAME as u64 + 1;
            let mut line = Vec::new();
            let _ = (&conn).take(limit).read_to_end(&mut line);
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let fits = !line.is_empty()
                && line.len() <= wrapix_notify::frame::MAX_FRAME
                && !line.contains(&b'\n');
            if fits {
                line.push(b'\n');
                if let Ok(mut p) = port.lock() {
                    let _ = p.write_all(&line).and_then(|()| p.flush());
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The sockets PID 1 serves in the command's root.
#[derive(Default)]
struct Listeners {
    notify: Option<std::os::unix::net::UnixListener>,
    /// The egress proxy's socket, and where its connections go.
    egress: Option<(std::os::unix::net::UnixListener, std::net::SocketAddr)>,
}

/// Builds the command's root; the listeners of the sockets it has.
fn build_root(c: &GuestConfig) -> Result<Listeners, String> {
    let mut listeners = Listeners::default();
    std::fs::create_dir_all(NEWROOT).map_err(|e| format!("create {NEWROOT}: {e}"))?;
    mount(
        "tmpfs",
        NEWROOT,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    std::fs::create_dir_all(FILES).map_err(|e| format!("create {FILES}: {e}"))?;
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(c.uid), Some(c.gid))
            .map_err(|e| format!("chown {}: {e}", p.display()))
    };
    for (i, m) in c.root.iter().enumerate() {
        match m {
            GuestMount::Bind {
                tag,
                sub,
                dest,
                read_only,
            } => {
                let src = Path::new(SHARES)
                    .join(tag)
                    .join(sub.trim_start_matches('/'));
                let dir = std::fs::metadata(&src)
                    .map_err(|e| format!("{}: {e}", src.display()))?
                    .is_dir();
                let t = in_root(dest);
                mount_point(&t, dir)?;
                bind(&src, &t, *read_only)?;
            }
            GuestMount::Dir { dest } => {
                let p = in_root(dest);
                std::fs::create_dir_all(&p).map_err(|e| format!("create {}: {e}", p.display()))?;
            }
            GuestMount::Symlink { target, dest } => {
                let p = in_root(dest);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("create {}: {e}", parent.display()))?;
                }
                let _ = std::fs::remove_file(&p);
                std::os::unix::fs::symlink(target, &p)
                    .map_err(|e| format!("create {}: {e}", p.display()))?;
            }
            GuestMount::Tmpfs { dest, mode, owned } => {
                let p = in_root(dest);
                mount_point(&p, true)?;
                let mut data = format!("mode={mode:o}");
                if *owned {
                    data.push_str(&format!(",uid={},gid={}", c.uid, c.gid));
                }
                let t = p.to_str().ok_or("a path is not UTF-8")?;
                mount(
                    "tmpfs",
                    t,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&data),
                )?;
            }
            GuestMount::File {
                data,
                dest,
                writable,
            } => {
                let src = Path::new(FILES).join(i.to_string());
                let mode = if *writable { 0o600 } else { 0o444 };
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&src)
                    .and_then(|mut f| f.write_all(data))
                    .map_err(|e| format!("write {}: {e}", src.display()))?;
                if *writable {
                    chown(&src)?;
                }
                let t = in_root(dest);
                mount_point(&t, false)?;
                bind(&src, &t, !*writable)?;
            }
            GuestMount::Proc { dest } => {
                let p = in_root(dest);
                mount_point(&p, true)?;
                let t = p.to_str().ok_or("a path is not UTF-8")?;
                mount(
                    "proc",
                    t,
                    Some("proc"),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    None,
                )?;
                // The kernel lets uid 0 write sysctls by its UID alone, capabilities or not:
                // with wrapix run as root, the command (uid 0, no capabilities) could set
                // `kernel.core_pattern` to a program of its own, run as the guest's root with
                // every capability outside the root, the seccomp filter and the cgroup. The
                // same files bubblewrap covers are read-only.
                for sub in ["sys", "sysrq-trigger", "irq", "bus"] {
                    let q = p.join(sub);
                    if std::fs::symlink_metadata(&q).is_ok() {
                        bind(&q, &q, true)?;
                    }
                }
            }
            GuestMount::Dev { dest } => make_dev(&in_root(dest))?,
            GuestMount::NotifyRelay { dest } => {
                let dir = in_root(dest);
                mount_point(&dir, true)?;
                let sock = dir.join("notify.sock");
                let l = std::os::unix::net::UnixListener::bind(&sock)
                    .map_err(|e| format!("listen on {}: {e}", sock.display()))?;
                chown(&sock)?;
                std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("chmod {}: {e}", sock.display()))?;
                listeners.notify = Some(l);
            }
            GuestMount::EgressRelay { socket, to } => {
                let to: std::net::SocketAddr = to
                    .parse()
                    .map_err(|_| format!("the egress forward {to:?} is not ADDRESS:PORT"))?;
                let sock = in_root(socket);
                if let Some(dir) = sock.parent() {
                    mount_point(dir, true)?;
                }
                let l = std::os::unix::net::UnixListener::bind(&sock)
                    .map_err(|e| format!("listen on {}: {e}", sock.display()))?;
                chown(&sock)?;
                std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| format!("chmod {}: {e}", sock.display()))?;
                listeners.egress = Some((l, to));
            }
        }
    }
    mount(
        "none",
        NEWROOT,
        None,
        libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )?;
    Ok(listeners)
}

fn make_dev(p: &Path) -> Result<(), String> {
    mount_point(p, true)?;
    let t = p.to_str().ok_or("a path is not UTF-8")?;
    mount(
        "tmpfs",
        t,
        Some("tmpfs"),
        libc::MS_NOSUID,
        Some("mode=0755"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        mknod(&p.join(name), major, minor)?;
    }
    let pts = p.join("pts");
    mount_point(&pts, true)?;
    mount(
        "devpts",
        pts.to_str().unwrap_or_default(),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = p.join("shm");
    mount_point(&shm, true)?;
    mount(
        "tmpfs",
        shm.to_str().unwrap_or_default(),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, p.join(name))
            .map_err(|e| format!("create /dev/{name}: {e}"))?;
    }
    Ok(())
}
