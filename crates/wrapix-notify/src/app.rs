//! The two commands, as the `wrapix` binary calls them: `wrapix notify` (see [`crate::client`])
//! and `wrapix notifyd`, plus the launcher's side (registering a session before a sandbox runs).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::daemon::{self, Config};
use crate::paths::DEFAULT_TCP_PORT;
use crate::session::{self, Registration};
use crate::sink::SinkSpec;
use crate::{install, paths, NotifyError};

/// The options of `wrapix notifyd`.
#[derive(Debug, Clone, Default)]
pub struct NotifydOptions {
    pub print_systemd_unit: bool,
    pub print_launchd_plist: bool,
    /// `ADDR` or `ADDR:PORT` for VM backends (port 5959 by default).
    pub tcp: Option<String>,
    pub socket: Option<PathBuf>,
    /// `PROG ARGS…` run per notification instead of the desktop.
    pub command: Vec<String>,
}

/// `wrapix notifyd`: prints a service file, or runs the daemon until SIGINT/SIGTERM.
pub fn notifyd(
    opts: &NotifydOptions,
    exe: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(), NotifyError> {
    let mut service_args = Vec::new();
    if let Some(t) = &opts.tcp {
        service_args.extend(["--tcp".to_owned(), t.clone()]);
    }
    if let Some(s) = &opts.socket {
        service_args.extend(["--socket".to_owned(), s.to_string_lossy().into_owned()]);
    }
    if !opts.command.is_empty() {
        service_args.push("--command".to_owned());
        service_args.extend(opts.command.iter().cloned());
    }
    if opts.print_systemd_unit {
        print!("{}", install::systemd_unit(exe, &service_args));
        return Ok(());
    }
    if opts.print_launchd_plist {
        let home = env.get("HOME").map(PathBuf::from).unwrap_or_default();
        let log = home.join("Library/Logs/wrapix-notifyd.log");
        print!("{}", install::launchd_plist(exe, &service_args, &log));
        return Ok(());
    }
    let mut cfg = Config::from_env(env);
    if let Some(s) = &opts.socket {
        cfg.socket = Some(s.clone());
    }
    cfg.tcp = opts.tcp.as_deref().map(parse_tcp).transpose()?;
    let sink = if opts.command.is_empty() {
        SinkSpec::Desktop { address: None }
    } else {
        SinkSpec::Command(opts.command.clone())
    };
    daemon::run(cfg, sink)
}

/// `10.0.2.2`, `10.0.2.2:6000`, `[fd00::1]:5959`; never an all-interfaces address.
pub fn parse_tcp(s: &str) -> Result<SocketAddr, NotifyError> {
    let addr = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match s.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, DEFAULT_TCP_PORT),
            Err(_) => {
                return Err(NotifyError::Invalid(format!(
                    "--tcp {s:?}: give an IP address of this host, optionally with :PORT"
                )))
            }
        },
    };
    if addr.ip().is_unspecified() {
        return Err(NotifyError::Invalid(format!(
            "--tcp {s}: refusing to listen on every interface; give the host-side address of the VM network"
        )));
    }
    Ok(addr)
}

/// What a sandbox gets for notifications: the folder the daemon publishes its socket in (to
/// mount at [`paths::SANDBOX_DIR`]) and the session id registered for this launch.
#[derive(Debug, Default)]
pub struct Launch {
    pub dir: Option<PathBuf>,
    pub registration: Option<Registration>,
}

/// The launcher's side, before a sandbox starts: creates the folder the daemon publishes its
/// socket in (whether or not a daemon runs yet, so a daemon started or restarted later is
/// reachable) and registers the session (terminal window, tmux pane) for focus checks.
/// Never fails the launch; problems are logged.
pub fn launch(env: &BTreeMap<String, String>, project: &Path) -> Launch {
    let dir = match published_dir(env) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("notifications: the sandbox cannot reach the host daemon: {e}");
            None
        }
    };
    let registration = match session::register(env, Some(project)) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!("notifications: cannot register this session: {e}");
            None
        }
    };
    Launch { dir, registration }
}

/// Creates [`paths::published_dir`] of the host socket (and its parent) 0700, checked to be
/// folders (not symlinks) owned by this user, and returns it.
pub fn published_dir(env: &BTreeMap<String, String>) -> Result<PathBuf, NotifyError> {
    let socket = paths::host_socket(env);
    let dir = paths::published_dir(&socket);
    if let Some(parent) = socket.parent() {
        paths::private_dir(parent)?;
    }
    paths::private_dir(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses() {
        assert_eq!(
            parse_tcp("10.0.2.2").ok(),
            "10.0.2.2:5959".parse::<SocketAddr>().ok()
        );
        assert_eq!(
            parse_tcp("192.168.64.1:6000").ok(),
            "192.168.64.1:6000".parse::<SocketAddr>().ok()
        );
        assert!(parse_tcp("0.0.0.0").is_err());
        assert!(parse_tcp("[::]:5959").is_err());
        assert!(parse_tcp("example.com").is_err());
    }

    #[test]
    fn launcher_creates_the_published_folder_before_any_daemon() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env: BTreeMap<String, String> = [(
            "XDG_RUNTIME_DIR".to_owned(),
            t.path().to_string_lossy().into_owned(),
        )]
        .into();
        let dir = published_dir(&env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dir, t.path().join("wrapix/notify.d"));
        assert!(dir.is_dir());
        // Again: the same folder (running sandboxes have it mounted), nothing else in it.
        let ino = |p: &Path| {
            std::os::unix::fs::MetadataExt::ino(
                &std::fs::metadata(p).unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let before = ino(&dir);
        assert_eq!(published_dir(&env).ok(), Some(dir.clone()));
        assert_eq!(ino(&dir), before);
        assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).ok(), Some(0));
        // A symlink in its place is refused.
        std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(t.path(), &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(published_dir(&env).is_err());
    }
}
