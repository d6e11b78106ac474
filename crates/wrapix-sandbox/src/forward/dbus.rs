//! `dbus = [NAMES]`: the session bus through `xdg-dbus-proxy` (Flatpak's filtering proxy),
//! started by wrapix for this run with `--filter --talk=NAME` for the named names only. The
//! sandbox gets the proxy's socket, never the bus's own: it can call the named services (and
//! the bus's own Hello, name and match calls, which the proxy answers or filters), and
//! `ListNames`, other names and eavesdropping are refused by the proxy. The proxy is killed
//! and reaped when the run ends, and exits by itself when wrapix dies (its `--fd` closes).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wrapix_spec::{MountMode, SandboxPath};

use super::runtime::RunDir;
use super::{missing, Provided};
use crate::error::SandboxError;
use crate::prepare::Bind;

/// The proxy's socket inside the sandbox.
pub const SANDBOX_DBUS_SOCKET: &str = "/run/wrapix/dbus/bus";
/// How long the proxy may take to listen.
const PROXY_TIMEOUT: Duration = Duration::from_secs(10);

/// The host's session bus: `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus` when it is
/// a socket.
pub fn session_bus(env: &BTreeMap<String, String>) -> Option<String> {
    if let Some(a) = env
        .get("DBUS_SESSION_BUS_ADDRESS")
        .filter(|a| !a.is_empty())
    {
        return Some(a.clone());
    }
    let bus = Path::new(env.get("XDG_RUNTIME_DIR")?).join("bus");
    let is_socket = std::fs::metadata(&bus)
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    (bus.is_absolute() && is_socket).then(|| format!("unix:path={}", bus.display()))
}

/// The proxy's arguments after its own `--fd`: `ADDRESS SOCKET --filter --talk=NAME…`.
pub fn proxy_args(address: &str, socket: &Path, names: &[String]) -> Vec<String> {
    let mut args = vec![
        address.to_owned(),
        socket.to_string_lossy().into_owned(),
        "--filter".to_owned(),
    ];
    args.extend(names.iter().map(|n| format!("--talk={n}")));
    args
}

/// Starts the proxy (not in a dry run) and provides its socket. Returns the proxy and the
/// read end of its `--fd` pipe, which must stay open for as long as the proxy should run.
pub fn start(
    env: &BTreeMap<String, String>,
    dir: &RunDir,
    names: &[String],
    dry_run: bool,
    out: &mut Provided,
) -> Result<Option<(Child, OwnedFd)>, SandboxError> {
    let path = env.get("PATH").map(String::as_str);
    let address = session_bus(env).ok_or_else(|| {
        missing(
            "dbus = [...] forwards names of your session bus, and there is none (DBUS_SESSION_BUS_ADDRESS is not set, no $XDG_RUNTIME_DIR/bus)",
            "run wrapix from your desktop session (where DBUS_SESSION_BUS_ADDRESS is set), or remove dbus",
        )
    })?;
    let proxy = crate::backend::find_program("xdg-dbus-proxy", path).ok_or_else(|| {
        missing(
            "dbus = [...] goes through xdg-dbus-proxy (the sandbox never gets the raw session bus), and it is not installed",
            "sudo apt-get install xdg-dbus-proxy",
        )
    })?;
    let socket = dir.join("dbus/bus");
    out.binds.push(Bind {
        source: socket.clone(),
        dest: SandboxPath::from_static(SANDBOX_DBUS_SOCKET),
        mode: MountMode::ReadOnly,
    });
    out.env.insert(
        "DBUS_SESSION_BUS_ADDRESS".into(),
        format!("unix:path={SANDBOX_DBUS_SOCKET}"),
    );
    if dry_run {
        return Ok(None);
    }
    dir.subdir("dbus")?;
    // Close-on-exec (the sandbox must not inherit it: wrapix closes inherited fds before the
    // run); `keep_fd` clears that for the proxy's end, in the proxy only.
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::sys("pipe", e))?;
    let mut cmd = Command::new(&proxy);
    cmd.arg(format!("--fd={}", write.as_raw_fd()))
        .args(proxy_args(&address, &socket, names))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    super::x11::keep_fd(&mut cmd, &write);
    crate::network::tie_to_wrapix(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::io(format!("start {}", proxy.display()), e))?;
    drop(write);
    match wait_byte(&read) {
        Ok(()) if socket.exists() => Ok(Some((child, read))),
        r => {
            let why = r.err().unwrap_or_else(|| "no socket".into());
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            Err(missing(
                format!(
                    "xdg-dbus-proxy for dbus = [...] did not start ({why}): {}",
                    stderr.trim().lines().last().unwrap_or("no message")
                ),
                format!("check that your session bus answers at {address}"),
            ))
        }
    }
}

/// Waits (bounded) until the proxy writes its ready byte on `--fd`.
fn wait_byte(read: &OwnedFd) -> Result<(), String> {
    use rustix::event::{poll, PollFd, PollFlags};
    let start = Instant::now();
    loop {
        let left = PROXY_TIMEOUT.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!("not ready after {}s", PROXY_TIMEOUT.as_secs()));
        }
        let timeout = rustix::event::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(read, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.to_string()),
        }
        let mut buf = [0u8; 1];
        return match rustix::io::read(read, &mut buf) {
            Ok(0) => Err("it exited".into()),
            Ok(_) => Ok(()),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
            Err(e) => Err(e.to_string()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_names_are_talkable() {
        let args = proxy_args(
            "unix:path=/run/user/1000/bus",
            Path::new("/run/user/1000/wrapix/sandboxes/p-1/dbus/bus"),
            &["org.freedesktop.Notifications".into(), "org.a.*".into()],
        );
        assert_eq!(
            args,
            [
                "unix:path=/run/user/1000/bus",
                "/run/user/1000/wrapix/sandboxes/p-1/dbus/bus",
                "--filter",
                "--talk=org.freedesktop.Notifications",
                "--talk=org.a.*"
            ]
        );
    }

    #[test]
    fn no_session_bus_is_an_error_naming_the_fix() {
        let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        let dir = RunDir::create(&env, Path::new("/p"), true).unwrap_or_else(|e| panic!("{e}"));
        let e = start(
            &env,
            &dir,
            &["org.a.B".into()],
            true,
            &mut Provided::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("DBUS_SESSION_BUS_ADDRESS is not set"), "{e}");
        assert!(e.contains("desktop session"), "{e}");
    }
}
