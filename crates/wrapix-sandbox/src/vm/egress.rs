//! A network allowlist in the qemu backend's VM. A Unix socket does not cross virtiofs, so the
//! proxy's socket reaches the guest through the user-mode NIC (qemu's `-netdev user` with
//! `restrict=on`: the guest reaches nothing through it but its `guestfwd` targets):
//!
//! ```text
//! guest:  tool ──▶ 127.0.0.1:3128 (wrapix's init, egress::relay, as in every sandbox)
//!              ──▶ /run/wrapix/egress/proxy.sock (PID 1 listens there: guest_relay)
//!              ──▶ 10.0.3.4:3128 on the user-mode NIC (guestfwd)
//! host:   qemu runs `wrapix-init __vm-egress --slots STAGE SOCKET` for each connection, its
//!         stdin and stdout the connection (host_main) ──▶ the proxy's Unix socket
//! ```
//! The guest has no other NIC, no route and no DNS server: as in every other backend, the
//! proxy is the only way out, and the sandbox's side is the same (variables, relay, socket
//! path). A guest, even with its kernel compromised, can open connections to the forward only:
//! each costs a host process, so at most [`SLOTS`] run at once (the proxy serves 256).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The forward's address on the user-mode NIC (its network is 10.0.3.0/24; `.2` is qemu's
/// host, `.3` its DNS server, neither reachable with `restrict=on`).
pub const ADDRESS: &str = "10.0.3.4";
/// At most this many forwarded connections (host processes) at once; more are closed at once.
pub const SLOTS: usize = 128;
/// At most this many connections through PID 1's relay in the guest at once.
const GUEST_CONNECTIONS: usize = 256;

/// `__vm-egress --slots DIR SOCKET`: relays stdin/stdout (one connection of the guest's, which
/// qemu hands over as a socket on fds 0, 1 and 2) to the proxy's Unix socket `SOCKET`, while
/// it holds one of [`SLOTS`] lock files in `DIR` (the run's private stage). Prints nothing:
/// its stderr is the guest's connection.
pub fn host_main(args: &[OsString]) -> i32 {
    // stderr is the connection too: nothing of ours may reach the guest.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 2);
    }
    // A peer gone is an error to handle, not a signal (wrapix-init keeps SIGPIPE's default).
    // SAFETY: setting a signal's disposition to "ignore"; no handler runs.
    #[allow(unsafe_code)]
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    let (slots, socket) = match args {
        [flag, dir, socket] if flag == "--slots" => (PathBuf::from(dir), PathBuf::from(socket)),
        _ => return 2,
    };
    let Some(_slot) = take_slot(&slots) else {
        return 1;
    };
    let Ok(proxy) = UnixStream::connect(&socket) else {
        return 1;
    };
    // SAFETY: fds 0 and 1 are this process's, handed over by qemu; each is owned once here.
    #[allow(unsafe_code)]
    let (guest_in, guest_out) = unsafe {
        (
            std::fs::File::from(OwnedFd::from_raw_fd(0)),
            std::fs::File::from(OwnedFd::from_raw_fd(1)),
        )
    };
    let Ok(proxy_w) = proxy.try_clone() else {
        return 1;
    };
    let up = std::thread::spawn(move || {
        let mut w = proxy_w;
        let _ = copy(guest_in, &mut w);
        let _ = w.shutdown(Shutdown::Write);
    });
    let mut out = guest_out;
    let _ = copy(proxy, &mut out);
    let _ = nix::sys::socket::shutdown(out.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    let _ = up.join();
    0
}

/// One of [`SLOTS`] lock files in `dir`, held (locked) while the returned lock lives.
fn take_slot(dir: &Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let start = std::process::id() as usize;
    (0..SLOTS).find_map(|i| {
        let p = dir.join(format!("egress-slot-{}", (start + i) % SLOTS));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p)
            .ok()?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
    })
}

/// Copies until end-of-file (or an error) in 64 KiB pieces.
fn copy(mut from: impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

/// In the guest's PID 1: each connection to `listener` (the sandbox's
/// `/run/wrapix/egress/proxy.sock`) relayed to the forward at `to`, at most
/// [`GUEST_CONNECTIONS`] at once (the others closed at once).
pub fn guest_relay(listener: UnixListener, to: SocketAddr) {
    let open = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= GUEST_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let count = Arc::clone(&open);
        let spawned = std::thread::Builder::new()
            .name("egress-conn".into())
            .spawn(move || {
                pipe(conn, to);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The thread (and its decrement) never ran.
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn pipe(unix: UnixStream, to: SocketAddr) {
    let Ok(tcp) = TcpStream::connect_timeout(&to, Duration::from_secs(10)) else {
        return;
    };
    let (Ok(mut unix_r), Ok(mut tcp_w)) = (unix.try_clone(), tcp.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = copy(&mut unix_r, &mut tcp_w);
        let _ = tcp_w.shutdown(Shutdown::Write);
    });
    let (tcp_r, mut unix_w) = (tcp, unix);
    let _ = copy(tcp_r, &mut unix_w);
    let _ = unix_w.shutdown(Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_when_closed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let held: Vec<_> = (0..SLOTS).filter_map(|_| take_slot(dir.path())).collect();
        assert_eq!(held.len(), SLOTS);
        assert!(take_slot(dir.path()).is_none(), "one more than SLOTS");
        drop(held);
        assert!(take_slot(dir.path()).is_some());
    }
}
