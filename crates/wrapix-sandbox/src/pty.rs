//! A fresh pseudo-terminal for interactive runs.
//!
//! The sandbox never gets the user's own terminal: wrapix opens a pty, gives its slave side to
//! the sandbox (where the init makes it the controlling terminal, so shells get job control),
//! puts the user's terminal in raw mode and relays bytes both ways. Keystrokes injected with
//! `TIOCSTI` inside (already refused by seccomp) could only reach this pty, and terminal
//! settings the agent changes die with it. Window-size changes are copied on SIGWINCH.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::thread::JoinHandle;

use nix::pty::{openpty, Winsize};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::error::SandboxError;

/// The host side of an interactive run.
pub struct Pty {
    master: OwnedFd,
    saved: Termios,
    output: Option<JoinHandle<()>>,
}

/// True when both stdin and stdout are terminals (an interactive run).
pub fn interactive() -> bool {
    nix::unistd::isatty(0).unwrap_or(false) && nix::unistd::isatty(1).unwrap_or(false)
}

#[allow(unsafe_code)]
fn get_winsize(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: one TIOCGWINSZ ioctl on an open fd, writing into a Winsize we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(ws)
}

#[allow(unsafe_code)]
fn set_winsize(fd: BorrowedFd<'_>, ws: &Winsize) {
    // SAFETY: one TIOCSWINSZ ioctl on an open fd, reading a Winsize we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

impl Pty {
    /// Opens a pty shaped like the user's terminal; returns it and the slave for the child.
    pub fn open() -> Result<(Pty, OwnedFd), SandboxError> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd())
            .map_err(|e| SandboxError::sys("read the terminal settings", e))?;
        let ws = get_winsize(stdin.as_fd());
        let pair = openpty(ws.as_ref(), Some(&saved))
            .map_err(|e| SandboxError::sys("open a pseudo-terminal", e))?;
        Ok((
            Pty {
                master: pair.master,
                saved,
                output: None,
            },
            pair.slave,
        ))
    }

    /// Puts the user's terminal in raw mode and starts relaying. Call after the child started.
    pub fn start(&mut self) -> Result<(), SandboxError> {
        let mut raw = self.saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &raw)
            .map_err(|e| SandboxError::sys("put the terminal in raw mode", e))?;
        let mut to_master = File::from(
            self.master
                .try_clone()
                .map_err(|e| SandboxError::io("dup the pty", e))?,
        );
        // Input: lives until the process exits (a blocking read on the user's terminal).
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut from_master = File::from(
            self.master
                .try_clone()
                .map_err(|e| SandboxError::io("dup the pty", e))?,
        );
        // Output: ends when every process holding the slave is gone (read gives EIO).
        self.output = Some(std::thread::spawn(move || {
            let mut stdout = std::io::stdout();
            let mut buf = [0u8; 8192];
            while let Ok(n) = from_master.read(&mut buf) {
                if n == 0
                    || stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .is_err()
                {
                    break;
                }
            }
        }));
        Ok(())
    }

    /// Copies the user's window size to the pty (the kernel then signals the sandbox).
    pub fn resize(&self) {
        if let Some(ws) = get_winsize(std::io::stdin().as_fd()) {
            set_winsize(self.master.as_fd(), &ws);
        }
    }

    /// A handle for the signal thread.
    pub fn resizer(&self) -> Result<Resizer, SandboxError> {
        Ok(Resizer(
            self.master
                .try_clone()
                .map_err(|e| SandboxError::io("dup the pty", e))?,
        ))
    }

    /// Drains the remaining output and restores the user's terminal.
    pub fn finish(mut self) {
        if let Some(h) = self.output.take() {
            let _ = h.join();
        }
        self.restore();
    }

    fn restore(&self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSAFLUSH, &self.saved);
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Copies window-size changes to the pty from the signal-forwarding thread.
pub struct Resizer(OwnedFd);

impl Resizer {
    pub fn resize(&self) {
        if let Some(ws) = get_winsize(std::io::stdin().as_fd()) {
            set_winsize(self.0.as_fd(), &ws);
        }
    }
}
