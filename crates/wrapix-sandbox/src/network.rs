//! Userspace networking for `network = "open"`, attached to the sandbox's own network
//! namespace from outside once bubblewrap has created it.
//!
//! pasta proxies the sandbox's connections through host sockets. With no port forwarding and
//! `--no-map-gw`, host loopback and the gateway address stay unreachable, but a connection to
//! any *other* address of the host would still land on host services bound to `0.0.0.0`. So,
//! before the sandbox is released, wrapix adds a `prohibit` route inside the namespace for every
//! address the host has (taking the namespace's owner user namespace for CAP_NET_ADMIN there);
//! the sandbox holds no capabilities and cannot remove them.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::SandboxError;
use crate::plan::NetworkSetup;

/// How long userspace networking may take to come up before the run is abandoned.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// A running pasta, stopped when the sandbox is done (it also quits by itself when the
/// namespace goes away, unless it could not watch for that).
#[derive(Debug)]
pub struct Attached {
    pasta: Option<i32>,
}

impl Attached {
    pub fn stop(&self) {
        let Some(pid) = self.pasta else { return };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if matches!(comm.trim(), "pasta" | "passt" | "pasta.avx2" | "passt.avx2") {
            // pasta ignores SIGTERM in some states; it keeps no state worth a graceful stop.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A private, pre-created file for pasta's PID, removed on drop.
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

/// Every address of the host except loopback, which the namespace has its own copy of.
pub fn host_addresses() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
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
    out
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

fn block_host_addresses(userns_path: &str, netns_path: &str) -> Result<(), SandboxError> {
    let addrs = host_addresses();
    if addrs.is_empty() {
        return Ok(());
    }
    let fail = |detail: String| SandboxError::Network {
        detail,
        fix: "install util-linux (nsenter) and iproute2 (ip), or run with --network none".into(),
    };
    let mut child = Command::new("nsenter")
        .arg("--preserve-credentials")
        .arg(format!("--user={userns_path}"))
        .arg(format!("--net={netns_path}"))
        .args(["--", "ip", "-batch", "-"])
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
            .write_all(prohibit_routes(&addrs).as_bytes())
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
    // The namespace belongs to bwrap's outer user namespace; the sandbox itself already sits in
    // a nested one, so ask the kernel for the owner instead of reading /proc/PID/ns/user.
    let userns = owner_userns(&netns)?;
    let userns_path = format!("/proc/{}/fd/{}", std::process::id(), userns.as_raw_fd());
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
    // pasta does not notice on its own that a namespace given as /proc/PID/ns/net is gone, so
    // wrapix stops it; the PID comes from a file pasta writes after daemonizing (a regular
    // file: pasta writes it from inside the sandbox's user namespace, where /proc/<wrapix>/fd
    // is out of reach).
    let pidfile = PidFile::create(pid)?;
    let mut cmd = Command::new(&net.program);
    cmd.args(&net.args)
        .arg("--pid")
        .arg(&pidfile.path)
        .arg("--netns")
        .arg(&netns_path)
        .arg("--userns")
        .arg(&userns_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_for_child));
    let child = cmd.spawn().map_err(|e| SandboxError::Network {
        detail: format!("cannot start {} ({e})", net.program.display()),
        fix: "sudo apt-get install passt, or run with --network none".into(),
    })?;
    // pasta forks into the background once the namespace is configured; its first process
    // exiting 0 is the readiness signal.
    let status = wait_with_timeout(child, NETWORK_TIMEOUT)?;
    let attached = Attached {
        pasta: pidfile.read(),
    };
    if !status.success() {
        let mut msg = String::new();
        let _ = log.rewind().and_then(|()| log.read_to_string(&mut msg));
        return Err(SandboxError::Network {
            detail: format!("pasta failed ({status}): {}", msg.trim()),
            fix: "run `wrapix doctor`, or run with --network none".into(),
        });
    }
    if let Err(e) = block_host_addresses(&userns_path, &netns_path) {
        attached.stop();
        return Err(e);
    }
    drop(userns);
    drop(netns);
    Ok(attached)
}

#[allow(unsafe_code)]
fn owner_userns(netns: &File) -> Result<OwnedFd, SandboxError> {
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    // SAFETY: one ioctl on a valid, open namespace fd; it returns a new fd or -1.
    let fd = unsafe { libc::ioctl(netns.as_raw_fd(), NS_GET_USERNS as _) };
    if fd < 0 {
        return Err(SandboxError::io(
            "find the user namespace of the sandbox's network namespace",
            std::io::Error::last_os_error(),
        ));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: the ioctl returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn wait_with_timeout(
    mut child: Child,
    timeout: Duration,
) -> Result<std::process::ExitStatus, SandboxError> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(SandboxError::io("wait for pasta", e)),
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Err(SandboxError::Network {
                detail: format!("pasta did not come up within {} s", timeout.as_secs()),
                fix: "check /dev/net/tun (sudo chmod 0666 /dev/net/tun) and `wrapix doctor`, or run with --network none".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(host_addresses().iter().all(|a| !a.is_loopback()));
    }
}
