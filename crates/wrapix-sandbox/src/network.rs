//! Userspace networking for `network = "open"`, attached to the sandbox's own network
//! namespace from outside once the backend (bubblewrap, or Podman with `--network=none`) has
//! created it, while the sandbox is still held before its command.
//!
//! pasta proxies the sandbox's connections through host sockets. With no port forwarding and
//! `--no-map-gw`, host loopback and the gateway address stay unreachable, but a connection to
//! any *other* address of the host would still land on host services bound to `0.0.0.0`. So,
//! before the sandbox is released, wrapix adds a `prohibit` route inside the namespace for every
//! address the host has (from a user namespace above the sandbox's, for CAP_NET_ADMIN there);
//! the sandbox holds no capabilities and cannot remove them.
//!
//! pasta runs in the foreground as wrapix's child, in a session of its own, with SIGKILL as its
//! parent-death signal: it lives exactly as long as wrapix unless stopped earlier, even when
//! wrapix itself is killed (pasta does not notice that a namespace given as `/proc/PID/ns/net`
//! is gone, and holds it alive).

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::SandboxError;
use crate::plan::NetworkSetup;

/// How long userspace networking may take to come up before the run is abandoned.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often pasta's PID file is looked at while it comes up.
const POLL: Duration = Duration::from_millis(2);

/// A running pasta (wrapix's child), stopped when the sandbox is done or this is dropped.
#[derive(Debug)]
pub struct Attached {
    pasta: Child,
}

impl Attached {
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // pasta ignores SIGTERM in some states; it keeps no state worth a graceful stop. Its
        // exit frees large buffers (~40 ms, measured with bench/launch.sh): wrapix does not wait
        // for that on its way out; SIGKILL cannot be ignored, and the exited pasta is reaped by
        // whoever inherits it when wrapix exits.
        let _ = self.pasta.kill();
        let _ = self.pasta.try_wait();
    }
}

/// A private, pre-created file for pasta's PID (named after wrapix's PID and the sandbox's),
/// removed on drop.
struct PidFile {
    path: std::path::PathBuf,
}

impl PidFile {
    fn create(sandbox_pid: i32) -> Result<Self, SandboxError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!(
            "wrapix-pasta-{}-{sandbox_pid}.pid",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| SandboxError::io(format!("create {}", path.display()), e))?;
        Ok(PidFile { path })
    }

    fn read(&self) -> Option<i32> {
        std::fs::read_to_string(&self.path)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// pasta for the sandbox's namespace: configure it (`--config-net`), forward no ports in
/// either direction but the published ones (`ports`: the host's `ADDRESS:HOST` to the
/// sandbox's port, TCP), keep the gateway address from reaching the host (`--no-map-gw`), and
/// map only UDP/53 of `dns_forward` to a loopback host resolver. The same for every backend.
pub fn pasta(
    program: PathBuf,
    dns_forward: Option<&str>,
    uid: u32,
    ports: &[wrapix_spec::Port],
) -> NetworkSetup {
    let inbound = if ports.is_empty() {
        "none".to_owned()
    } else {
        ports
            .iter()
            .map(|p| format!("{}/{}:{}", p.host_address, p.host, p.sandbox))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut args: Vec<OsString> = [
        "--config-net",
        "--quiet",
        "--no-map-gw",
        "-t",
        inbound.as_str(),
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
    ]
    .map(OsString::from)
    .into();
    if let Some(addr) = dns_forward {
        args.extend(["--dns-forward", addr].map(OsString::from));
    }
    if uid == 0 {
        // As root, pasta would switch to `nobody` and lose access to the namespace.
        args.extend(["--runas", "0:0"].map(OsString::from));
    }
    NetworkSetup {
        program,
        args,
        join_userns: false,
        await_loopback: false,
    }
}

/// Every address of the host except loopback, which the namespace has its own copy of. An
/// error when the addresses cannot be listed: the open network is then refused, never started
/// without the routes that keep the host out of reach.
pub fn host_addresses() -> Result<BTreeSet<IpAddr>, SandboxError> {
    let mut out = BTreeSet::new();
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| SandboxError::Network {
        detail: format!(
            "the host's addresses cannot be listed ({e}), so they cannot be blocked inside"
        ),
        fix: "run with --network none".into(),
    })?;
    {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            let ip = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            if !ip.is_loopback() && !ip.is_unspecified() {
                out.insert(ip);
            }
        }
    }
    Ok(out)
}

/// `ip -batch` input adding a prohibit route per address.
pub fn prohibit_routes(addrs: &BTreeSet<IpAddr>) -> String {
    addrs
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("route add prohibit {v4}/32\n"),
            IpAddr::V6(v6) => format!("route add prohibit {v6}/128\n"),
        })
        .collect()
}

/// `ip -batch` input adding a `prohibit` policy rule per address of one family (`ip -batch`
/// takes no family per line; a rule's family comes from the command line). Routes alone are
/// not enough: a lookup with an output device (a socket bound with `SO_BINDTODEVICE`, an IPv6
/// link-local address with a scope id) passes over a `prohibit` route, while a rule applies to
/// every lookup. The rules come after the `local` table's (the sandbox's own addresses, some
/// of which pasta copied from the host, stay its own).
pub fn prohibit_rules(addrs: &BTreeSet<IpAddr>, v6: bool) -> String {
    addrs
        .iter()
        .filter(|ip| ip.is_ipv6() == v6)
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("rule add to {v4}/32 prohibit\n"),
            IpAddr::V6(v6) => format!("rule add to {v6}/128 prohibit\n"),
        })
        .collect()
}

/// `ip -batch` input making each IPv4 address an address of the sandbox's own on each of
/// `interfaces` (`scope host`: never chosen as a source). IPv4 has a fallback that neither
/// routes nor rules stop: when the lookup for a socket bound to a device fails, the kernel
/// takes the destination to be on that link, and pasta would carry the connection to the
/// host. An address of the interface itself is matched first, so the connection stays inside.
pub fn local_v4_addresses(addrs: &BTreeSet<IpAddr>, interfaces: &[String]) -> String {
    let mut out = String::new();
    for ifname in interfaces {
        for ip in addrs {
            if let IpAddr::V4(v4) = ip {
                out.push_str(&format!("addr replace {v4}/32 dev {ifname} scope host\n"));
            }
        }
    }
    out
}

/// The interfaces of the network namespace `pid` is in, except `lo`.
fn interfaces_of(pid: i32) -> Result<Vec<String>, SandboxError> {
    let path = format!("/proc/{pid}/net/dev");
    let text =
        std::fs::read_to_string(&path).map_err(|e| SandboxError::io(format!("read {path}"), e))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .filter(|n| {
            !n.is_empty()
                && n != "lo"
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        })
        .collect())
}

fn block_host_addresses(
    userns_path: Option<&str>,
    netns_path: &str,
    pid: i32,
) -> Result<(), SandboxError> {
    let addrs = host_addresses()?;
    if addrs.is_empty() {
        return Ok(());
    }
    let interfaces = interfaces_of(pid)?;
    for (v6, family) in [(false, "-4"), (true, "-6")] {
        let of_family: BTreeSet<IpAddr> = addrs
            .iter()
            .filter(|ip| ip.is_ipv6() == v6)
            .copied()
            .collect();
        if of_family.is_empty() {
            continue;
        }
        let mut input = prohibit_routes(&of_family);
        input.push_str(&prohibit_rules(&of_family, v6));
        if !v6 {
            input.push_str(&local_v4_addresses(&of_family, &interfaces));
        }
        run_ip_batch(userns_path, netns_path, family, &input)?;
    }
    Ok(())
}

/// `ip FAMILY -batch -` with `input`, in the sandbox's network namespace.
fn run_ip_batch(
    userns_path: Option<&str>,
    netns_path: &str,
    family: &str,
    input: &str,
) -> Result<(), SandboxError> {
    let fail = |detail: String| SandboxError::Network {
        detail,
        fix: "install util-linux (nsenter) and iproute2 (ip), or run with --network none".into(),
    };
    let mut nsenter = Command::new("nsenter");
    if let Some(userns_path) = userns_path {
        nsenter
            .arg("--preserve-credentials")
            .arg(format!("--user={userns_path}"));
    }
    let mut child = nsenter
        .arg(format!("--net={netns_path}"))
        .args(["--", "ip", family, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "cannot start nsenter to block the host's addresses ({e})"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(format!("cannot write routes to ip ({e})")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("nsenter/ip did not finish ({e})")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "blocking the host's addresses failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Starts pasta on the sandbox's network namespace, waits until it is configured, and makes the
/// host's own addresses unreachable from inside.
pub fn attach(net: &NetworkSetup, pid: i32) -> Result<Attached, SandboxError> {
    let netns_path = format!("/proc/{pid}/ns/net");
    let netns =
        File::open(&netns_path).map_err(|e| SandboxError::io(format!("open {netns_path}"), e))?;
    let userns = entry_userns(&netns)?;
    if net.await_loopback {
        wait_for_loopback(pid)?;
    }
    // As root, pasta joins the network namespace from root's own user namespace, which holds
    // every namespace (it could not open wrapix's /proc/<pid>/fd/N once it has given up its
    // capabilities, and the sandbox's own /proc/PID/ns/user changes under it while bubblewrap
    // sets up a nested one for --disable-userns). The prohibit routes are added the same way.
    let root = nix::unistd::geteuid().is_root();
    let userns_path = userns
        .as_ref()
        .filter(|_| !root)
        .map(|u| format!("/proc/{}/fd/{}", std::process::id(), u.as_raw_fd()));
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun");
    if let Err(e) = tun {
        return Err(SandboxError::Network {
            detail: format!("/dev/net/tun cannot be opened ({e})"),
            fix: "sudo chmod 0666 /dev/net/tun (it is 0600 on some hosts), or run with --network none".into(),
        });
    }
    let log = memfd_create(
        &CString::new("pasta-log").unwrap_or_default(),
        MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| SandboxError::sys("create a memfd for pasta's log", e))?;
    let mut log = File::from(log);
    let log_for_child = log
        .try_clone()
        .map_err(|e| SandboxError::io("dup pasta's log", e))?;
    // In the foreground, pasta writes its PID file once the namespace is configured (a regular
    // file: pasta writes it after joining the user namespace, where /proc/<wrapix>/fd is out
    // of reach).
    let pidfile = PidFile::create(pid)?;
    let mut cmd = Command::new(&net.program);
    cmd.args(&net.args)
        .arg("--foreground")
        .arg("--pid")
        .arg(&pidfile.path)
        .arg("--netns")
        .arg(&netns_path);
    // As root, by path: pasta cannot open wrapix's /proc/<pid>/fd/N once it has given up its
    // capabilities.
    let pasta_userns = match (&userns_path, net.join_userns) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(format!("/proc/{pid}/ns/user")),
        (None, false) => None,
    };
    if let Some(userns_path) = &pasta_userns {
        cmd.arg("--userns").arg(userns_path);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_for_child));
    tie_to_wrapix(&mut cmd);
    let child = cmd.spawn().map_err(|e| SandboxError::Network {
        detail: format!("cannot start {} ({e})", net.program.display()),
        fix: "sudo apt-get install passt, or run with --network none".into(),
    })?;
    // From here on, an early return stops pasta (Attached's drop).
    let mut attached = Attached { pasta: child };
    let want = i32::try_from(attached.pasta.id()).ok();
    let start = Instant::now();
    while pidfile.read() != want {
        let status = attached
            .pasta
            .try_wait()
            .map_err(|e| SandboxError::io("wait for pasta", e))?;
        if let Some(status) = status {
            let mut msg = String::new();
            let _ = log.rewind().and_then(|()| log.read_to_string(&mut msg));
            // One line: the error printer escapes control characters, so a newline would
            // show as a literal `\n`.
            let msg: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            return Err(SandboxError::Network {
                detail: format!("pasta failed ({status}): {}", msg.join("; ")),
                fix: "pasta must be able to open /dev/net/tun (sudo chmod 0666 /dev/net/tun) and join the sandbox's namespaces (Debian's passt package); `wrapix doctor` tries it, or run with --network none".into(),
            });
        }
        if start.elapsed() >= NETWORK_TIMEOUT {
            return Err(SandboxError::Network {
                detail: format!("pasta did not come up within {} s", NETWORK_TIMEOUT.as_secs()),
                fix: "check /dev/net/tun (sudo chmod 0666 /dev/net/tun) and `wrapix doctor`, or run with --network none".into(),
            });
        }
        std::thread::sleep(POLL);
    }
    block_host_addresses(userns_path.as_deref(), &netns_path, pid)?;
    drop(userns);
    drop(netns);
    Ok(attached)
}

/// Waits until the loopback of `pid`'s network namespace has 127.0.0.1 (an address shows in
/// the namespace's `fib_trie` as soon as it is added, before the link is up).
fn wait_for_loopback(pid: i32) -> Result<(), SandboxError> {
    let path = format!("/proc/{pid}/net/fib_trie");
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&path).map_err(|e| SandboxError::Network {
            detail: format!("the sandbox ended before its network was set up (read {path}: {e})"),
            fix: "the backend's own message above says why; `wrapix doctor` tries the open network"
                .into(),
        })?;
        if text.lines().any(|l| l.trim() == "|-- 127.0.0.1") {
            return Ok(());
        }
        if start.elapsed() >= NETWORK_TIMEOUT {
            return Err(SandboxError::Network {
                detail: format!(
                    "the sandbox's loopback got no address within {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                fix: "run `wrapix doctor`, or run with --network none".into(),
            });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// pasta's process set-up: SIGKILL when wrapix dies (checked once more after setting it, in
/// case wrapix died first), a session of its own (a Ctrl-C or hang-up on wrapix's terminal is
/// wrapix's to handle), and none of the signals wrapix blocks left blocked.
#[allow(unsafe_code)]
pub(crate) fn tie_to_wrapix(cmd: &mut Command) {
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: runs between fork and exec; only async-signal-safe calls (prctl, getppid,
    // setsid, sigemptyset, sigprocmask) on stack values, no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            libc::setsid();
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// The user namespace pasta and nsenter join to reach the sandbox's network namespace: of
/// the namespaces from the namespace's owner up to wrapix's own, the one just below wrapix's
/// (its holder has every capability in it and in all below). That is the owner itself for
/// bwrap (its outer namespace; the sandbox sits in a nested one) and rootless Podman's
/// namespace for a container (the owner is the container's, a child of Podman's: joining
/// only that one, pasta could not open `/proc/PID/ns/net` of the still undumpable `runc
/// init`, whose memory belongs to Podman's namespace). `None` when the owner is wrapix's own
/// (root with rootful Podman): there is nothing to join.
fn entry_userns(netns: &File) -> Result<Option<OwnedFd>, SandboxError> {
    let ours = nix::sys::stat::stat("/proc/self/ns/user")
        .map_err(|e| SandboxError::sys("stat /proc/self/ns/user", e))?;
    let is_ours = |ns: &OwnedFd| {
        nix::sys::stat::fstat(ns.as_raw_fd())
            .is_ok_and(|s| s.st_dev == ours.st_dev && s.st_ino == ours.st_ino)
    };
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    const NS_GET_PARENT: libc::c_ulong = 0xb702;
    let mut ns = ns_ioctl(netns.as_raw_fd(), NS_GET_USERNS).map_err(|e| {
        SandboxError::io(
            "find the user namespace of the sandbox's network namespace",
            e,
        )
    })?;
    if is_ours(&ns) {
        return Ok(None);
    }
    // A handful of levels at most; the bound only guards against a kernel surprise.
    for _ in 0..32 {
        match ns_ioctl(ns.as_raw_fd(), NS_GET_PARENT) {
            Ok(parent) if is_ours(&parent) => return Ok(Some(ns)),
            Ok(parent) => ns = parent,
            // EPERM: the parent is outside wrapix's view; `ns` is as high as it can go.
            Err(_) => return Ok(Some(ns)),
        }
    }
    Ok(Some(ns))
}

/// One namespace ioctl (`NS_GET_USERNS`, `NS_GET_PARENT`) that returns a new fd.
#[allow(unsafe_code)]
fn ns_ioctl(fd: std::os::fd::RawFd, request: libc::c_ulong) -> std::io::Result<OwnedFd> {
    // SAFETY: one ioctl on a valid, open namespace fd; it returns a new fd or -1.
    let new = unsafe { libc::ioctl(fd, request as _) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: the ioctl returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ipv4_addresses_become_the_interfaces_own() {
        let addrs: BTreeSet<IpAddr> = ["10.1.2.3", "fd00::5"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        assert_eq!(
            local_v4_addresses(&addrs, &["eth0".to_owned()]),
            "addr replace 10.1.2.3/32 dev eth0 scope host\n"
        );
    }

    #[test]
    fn rules_are_per_family() {
        let addrs: BTreeSet<IpAddr> = ["10.1.2.3", "fd00::5", "fe80::1"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        assert_eq!(
            prohibit_rules(&addrs, false),
            "rule add to 10.1.2.3/32 prohibit\n"
        );
        assert_eq!(
            prohibit_rules(&addrs, true),
            "rule add to fd00::5/128 prohibit\nrule add to fe80::1/128 prohibit\n"
        );
    }

    #[test]
    fn routes_cover_both_families() {
        let addrs: BTreeSet<IpAddr> = ["10.1.2.3", "fd00::5"]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        assert_eq!(
            prohibit_routes(&addrs),
            "route add prohibit 10.1.2.3/32\nroute add prohibit fd00::5/128\n"
        );
    }

    #[test]
    fn host_addresses_skip_loopback() {
        assert!(host_addresses().unwrap().iter().all(|a| !a.is_loopback()));
    }
}
