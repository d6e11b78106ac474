//! The command's terminal in the guest, when wrapix runs on one: the host's supervisor says
//! so by sending the window size before the go byte ([`read_go`]); PID 1 then opens a pty in
//! the guest, gives its slave side to wrapix's init (which makes it the controlling terminal,
//! as under bubblewrap) and relays raw bytes between the master and the stdin/stdout ports.
//! The host's side is the throw-away pty wrapix's executor opened, in raw mode: keystrokes
//! reach the guest's line discipline unchanged, and what the guest's terminal writes reaches
//! the user's unchanged. A window-size change is `SIGWINCH` followed by four bytes (rows,
//! columns, big-endian) on the signal port; the guest sets it on its pty, whose kernel then
//! signals the foreground group.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::pty::Winsize;

/// The signal port's message for a window size (or none: zeros).
pub fn winsize_message(size: Option<(u16, u16)>) -> [u8; 5] {
    let (r, c) = size.unwrap_or((0, 0));
    let (r, c) = (r.to_be_bytes(), c.to_be_bytes());
    [libc::SIGWINCH as u8, r[0], r[1], c[0], c[1]]
}

/// Reads the signal port up to the go byte: `Ok(Some(size))` with a terminal, `Ok(None)`
/// without, `Err(Some(sig))` when a signal came first (stopped before it started), `Err(None)`
/// when the port ended.
#[allow(clippy::type_complexity)]
pub fn read_go(port: &mut File) -> Result<Option<(u16, u16)>, Option<u8>> {
    let mut size = None;
    loop {
        let mut b = [0u8; 1];
        if !matches!(port.read(&mut b), Ok(1)) {
            return Err(None);
        }
        match b[0] {
            super::host::GO => return Ok(size),
            s if i32::from(s) == libc::SIGWINCH => {
                let mut rc = [0u8; 4];
                port.read_exact(&mut rc).map_err(|_| None)?;
                size = Some((
                    u16::from_be_bytes([rc[0], rc[1]]),
                    u16::from_be_bytes([rc[2], rc[3]]),
                ));
            }
            s => return Err(Some(s)),
        }
    }
}

/// A pty of the guest's: (master, slave), the slave owned by the user.
pub fn open(size: (u16, u16), uid: u32, gid: u32) -> Result<(OwnedFd, OwnedFd), String> {
    let ws = Winsize {
        ws_row: size.0,
        ws_col: size.1,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let p = nix::pty::openpty(Some(&ws), None).map_err(|e| format!("open a pty: {e}"))?;
    nix::unistd::fchown(
        p.slave.as_raw_fd(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| format!("chown the pty: {e}"))?;
    Ok((p.master, p.slave))
}

/// Sets the window size of the pty behind `master`.
#[allow(unsafe_code)]
pub fn resize(master: &OwnedFd, size: (u16, u16)) {
    let ws = Winsize {
        ws_row: size.0,
        ws_col: size.1,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: one TIOCSWINSZ ioctl on an open fd, reading a Winsize we own.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Relays `stdin` (port) → master in a thread that lives as long as the VM, and master →
/// `stdout` (port) in one that ends when every slave is closed; returns the latter.
pub fn relay(
    master: &OwnedFd,
    stdin: File,
    stdout: File,
) -> Result<std::thread::JoinHandle<()>, String> {
    let dup = |what| {
        master
            .try_clone()
            .map(File::from)
            .map_err(|e| format!("dup the pty for {what}: {e}"))
    };
    let (mut to_pty, mut from_pty) = (dup("input")?, dup("output")?);
    std::thread::spawn(move || {
        let mut stdin = stdin;
        let _ = std::io::copy(&mut stdin, &mut to_pty);
    });
    Ok(std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut buf = [0u8; 16384];
        // EIO once the last slave is closed.
        while let Ok(n) = from_pty.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }))
}
