//! `display = "x11"`: the host's X socket of `$DISPLAY` only, with that display's cookie only.
//! `display = "xvfb"`: a private Xvfb, started by wrapix in a bubblewrap of its own (a private
//! `/tmp` and network namespace, so its only socket is the one in the run's folder: no
//! abstract socket, no TCP, no lock file in the host's `/tmp`), with a fresh cookie.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wrapix_spec::{MountMode, SandboxPath};

use super::runtime::RunDir;
use super::{missing, xauth, Provided, SANDBOX_XAUTHORITY, X11_DIR};
use crate::error::SandboxError;
use crate::prepare::{Bind, GeneratedFile};

/// How long a private Xvfb may take to come up.
const XVFB_TIMEOUT: Duration = Duration::from_secs(10);
/// The private display's size.
pub const XVFB_SCREEN: &str = "1280x1024x24";

/// A display for the sandbox: its number, socket on the host, and Xauthority bytes.
#[derive(Debug, Clone)]
pub struct Display {
    pub number: u32,
    pub socket: PathBuf,
    /// `None`: no cookie (the server accepts local clients without one).
    pub xauthority: Option<Vec<u8>>,
}

/// The display number of a local `DISPLAY` (`:N`, `:N.S`, `unix:N`); `None` for TCP ones.
pub fn local_display_number(display: &str) -> Option<u32> {
    let (host, rest) = display.rsplit_once(':')?;
    if !(host.is_empty() || host == "unix") {
        return None;
    }
    let number = rest.split('.').next()?;
    number.parse().ok()
}

/// `display = "x11"`: checks `$DISPLAY`, its socket and its cookie.
pub fn host_display(
    env: &BTreeMap<String, String>,
    host_home: &Path,
    out: &mut Provided,
) -> Result<(), SandboxError> {
    let value = env.get("DISPLAY").filter(|d| !d.is_empty()).ok_or_else(|| {
        missing(
            "display = \"x11\" forwards the X server of $DISPLAY, and DISPLAY is not set",
            "run wrapix from your desktop session (DISPLAY=:0), or use display = \"xvfb\" for a private display",
        )
    })?;
    let number = local_display_number(value).ok_or_else(|| {
        missing(
            format!("DISPLAY={value} is not a local display: only a local X socket is forwarded"),
            "use a local display (DISPLAY=:N), or display = \"xvfb\"",
        )
    })?;
    let socket = Path::new(X11_DIR).join(format!("X{number}"));
    let is_socket = std::fs::metadata(&socket)
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    if !is_socket {
        return Err(missing(
            format!(
                "the X server of DISPLAY={value} has no socket {} (one listening only on TCP or an abstract socket cannot be forwarded)",
                socket.display()
            ),
            "start the X server with its Unix socket, or use display = \"xvfb\"",
        ));
    }
    let file = env
        .get("XAUTHORITY")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| host_home.join(".Xauthority"));
    let entries = match std::fs::read(&file) {
        Ok(bytes) => xauth::parse(&bytes).ok_or_else(|| {
            missing(
                format!("{} is not an Xauthority file", file.display()),
                "point XAUTHORITY at your X session's cookie file",
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(SandboxError::io(format!("read {}", file.display()), e)),
    };
    let mine = xauth::for_display(&entries, number);
    if mine.is_empty() {
        out.notices.push(format!(
            "display = \"x11\": {} has no cookie for display :{number}; the sandbox connects without one (your X server must allow that)",
            file.display()
        ));
    }
    provide(
        &Display {
            number,
            socket,
            xauthority: (!mine.is_empty()).then(|| xauth::write(&mine)),
        },
        out,
    );
    Ok(())
}

/// The socket at `/tmp/.X11-unix/XN`, the cookie at [`SANDBOX_XAUTHORITY`], `DISPLAY=:N`.
pub fn provide(d: &Display, out: &mut Provided) {
    out.binds.push(Bind {
        source: d.socket.clone(),
        dest: SandboxPath::from_static(&format!("{X11_DIR}/X{}", d.number)),
        mode: MountMode::ReadOnly,
    });
    if let Some(bytes) = &d.xauthority {
        out.files.push(GeneratedFile {
            dest: SandboxPath::from_static(SANDBOX_XAUTHORITY),
            contents: bytes.clone(),
            writable: false,
        });
        out.env
            .insert("XAUTHORITY".into(), SANDBOX_XAUTHORITY.into());
    }
    out.env.insert("DISPLAY".into(), format!(":{}", d.number));
}

/// `display = "xvfb"`: starts Xvfb as display `:0` of a private `/tmp/.X11-unix` (the run's
/// `x11` folder) and waits until it reports ready (`-displayfd`). `None` as the child in a
/// dry run.
pub fn start_xvfb(
    env: &BTreeMap<String, String>,
    dir: &RunDir,
    dry_run: bool,
) -> Result<(Option<Child>, Display), SandboxError> {
    let path = env.get("PATH").map(String::as_str);
    let xvfb = crate::backend::find_program("Xvfb", path).ok_or_else(|| {
        missing(
            "display = \"xvfb\" needs Xvfb on the host, and it is not installed",
            "sudo apt-get install xvfb",
        )
    })?;
    let bwrap = crate::backend::find_program("bwrap", path).ok_or_else(|| {
        missing(
            "display = \"xvfb\" runs Xvfb in a bubblewrap of its own, and bwrap is not installed",
            "sudo apt-get install bubblewrap",
        )
    })?;
    let mut cookie = [0u8; 16];
    if !dry_run {
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut cookie))
            .map_err(|e| SandboxError::io("read a cookie from /dev/urandom", e))?;
    }
    let auth = xauth::write(&[xauth::cookie_entry(0, &cookie)]);
    let display = Display {
        number: 0,
        socket: dir.join("x11/X0"),
        xauthority: Some(auth.clone()),
    };
    if dry_run {
        return Ok((None, display));
    }
    let sockets = dir.subdir("x11")?;
    dir.write("Xauthority", &auth)?;
    let (read, write) = nix::unistd::pipe().map_err(|e| SandboxError::sys("pipe", e))?;
    let mut cmd = Command::new(&bwrap);
    // Only what Xvfb needs, read-only, besides its socket folder: an X client (the agent)
    // can make it parse files (fonts, through SetFontPath), so it sees neither the home nor
    // the project nor anything it could write outside its own folder.
    cmd.args(["--ro-bind", "/usr", "/usr"]);
    for top in [
        "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc",
    ] {
        cmd.args(["--ro-bind-try", top, top]);
    }
    let auth_file = dir.join("Xauthority");
    cmd.args([
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--bind",
    ])
    .arg(&sockets)
    .arg(X11_DIR)
    .arg("--ro-bind")
    .arg(&auth_file)
    .arg(&auth_file)
    .args([
        "--chdir",
        "/",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-pid",
        "--die-with-parent",
        "--new-session",
        "--",
    ])
    .arg(&xvfb)
    .args([":0", "-nolisten", "tcp", "-noreset", "-screen", "0"])
    .arg(XVFB_SCREEN)
    .arg("-auth")
    .arg(&auth_file)
    .args(["-displayfd", &write.as_raw_fd().to_string()])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    keep_fd(&mut cmd, &write);
    crate::network::tie_to_wrapix(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::io(format!("start {}", bwrap.display()), e))?;
    drop(write);
    match wait_ready(read) {
        Ok(()) => Ok((Some(child), display)),
        Err(why) => {
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            Err(missing(
                format!(
                    "the private Xvfb for display = \"xvfb\" did not start ({why}): {}",
                    stderr.trim().lines().last().unwrap_or("no message")
                ),
                "check that `Xvfb :99` starts on this host (sudo apt-get install xvfb)",
            ))
        }
    }
}

/// Clears close-on-exec on `fd` in the child, so that Xvfb (through bwrap) can write to it.
#[allow(unsafe_code)]
pub(crate) fn keep_fd(cmd: &mut Command, fd: &OwnedFd) {
    use std::os::unix::process::CommandExt;
    let raw = fd.as_raw_fd();
    // SAFETY: runs between fork and exec; one fcntl on an fd number, async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits (bounded) until Xvfb writes its display number and a newline on `-displayfd`.
fn wait_ready(read: OwnedFd) -> Result<(), String> {
    use rustix::event::{poll, PollFd, PollFlags};
    let start = Instant::now();
    let mut got = Vec::new();
    let mut file = std::fs::File::from(read);
    loop {
        let left = XVFB_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!("not ready after {}s", XVFB_TIMEOUT.as_secs()));
        }
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&file, PollFlags::IN)];
        poll(&mut fds, Some(&timeout)).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16];
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("it exited".into());
        }
        got.extend_from_slice(&buf[..n]);
        if got.contains(&b'\n') {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_displays_only() {
        assert_eq!(local_display_number(":0"), Some(0));
        assert_eq!(local_display_number(":12.1"), Some(12));
        assert_eq!(local_display_number("unix:3"), Some(3));
        assert_eq!(local_display_number("remote:0"), None);
        assert_eq!(local_display_number("localhost:10.0"), None);
        assert_eq!(local_display_number("0"), None);
    }
}
