//! One private tmux server: its own socket in a private folder, its own config, one session.
//!
//! tmux is always run with an argv (`tokio::process::Command`), never through a shell. The
//! server runs in the foreground (`tmux -D`) as this process's child, with a parent-death
//! signal, so it cannot outlive the MCP server even when that is SIGKILLed. It is stopped by
//! [`Tmux::shutdown`] (or on drop).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::TmuxError;

/// The session every pane lives in (one window per pane).
pub const SESSION: &str = "wrapix";
/// The size of every pane: wide enough for logs, the same for every capture.
pub const WIDTH: u32 = 200;
pub const HEIGHT: u32 = 50;
/// Lines of scrollback kept per pane.
pub const HISTORY: u32 = 10_000;

const CONFIG: &str = "\
set -g default-size 200x50
set -g history-limit 10000
set -g status off
set -g escape-time 0
set -g exit-empty off
set -g remain-on-exit on
# tmux 3.3 frees a pane's terminal as soon as its process exits, dropping output it has not read
# yet, unless the pane is piped (then it drains first). Hooks run before the new pane's exit can
# be noticed. The piped command is a constant, never user input.
set-hook -g after-new-window \"pipe-pane 'cat >/dev/null'\"
";

/// What `display-message` / `list-panes` report about a pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneState {
    pub tmux_id: String,
    pub dead: bool,
    /// Exit status of a dead pane (when it exited, not when killed by a signal).
    pub exit_code: Option<i32>,
    /// Signal that ended a dead pane.
    pub signal: Option<i32>,
}

const STATE_FORMAT: &str = "#{pane_id}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}";

impl PaneState {
    fn parse(line: &str) -> Option<PaneState> {
        let mut f = line.split('\t');
        let tmux_id = f.next()?.to_owned();
        let dead = f.next()? == "1";
        let exit_code = f.next().and_then(|s| s.parse().ok());
        let signal = f.next().and_then(|s| s.parse().ok()).filter(|s| *s != 0);
        Some(PaneState {
            tmux_id,
            dead,
            exit_code: exit_code.filter(|_| dead),
            signal: signal.filter(|_| dead),
        })
    }
}

#[derive(Debug)]
pub struct Tmux {
    /// Private (0700) folder holding the socket and config; removed by [`Tmux::shutdown`].
    dir: std::sync::Mutex<Option<tempfile::TempDir>>,
    dir_path: PathBuf,
    socket: PathBuf,
    config: PathBuf,
    cwd: PathBuf,
    program: OsString,
    server: std::sync::Mutex<Option<std::process::Child>>,
}

impl Tmux {
    /// Creates the private folder; starts nothing yet.
    pub fn new(cwd: &Path) -> Result<Tmux, TmuxError> {
        let base = std::env::temp_dir();
        // A unix socket path must fit in 108 bytes.
        let base = if base.as_os_str().len() > 60 {
            PathBuf::from("/tmp")
        } else {
            base
        };
        let dir = tempfile::Builder::new()
            .prefix("wrapix-tmux-")
            .tempdir_in(&base)
            .map_err(|e| {
                TmuxError::io(format!("create a private folder in {}", base.display()), e)
            })?;
        let config = dir.path().join("tmux.conf");
        std::fs::write(&config, CONFIG)
            .map_err(|e| TmuxError::io(format!("write {}", config.display()), e))?;
        let socket = dir.path().join("sock");
        let program = OsString::from("tmux");
        let server = start_server(&program, &socket, &config, cwd)?;
        // The session, with a placeholder window (`cat` waiting on its terminal) so that every
        // pane is made by new-window (where the pipe hook applies) and the session never ends.
        let out = std::process::Command::new(&program)
            .arg("-u")
            .arg("-S")
            .arg(&socket)
            .args(["new-session", "-d", "-s", SESSION, "-x"])
            .arg(WIDTH.to_string())
            .arg("-y")
            .arg(HEIGHT.to_string())
            .args(["-n", "_wrapix", "--", "cat"])
            .env_remove("TMUX")
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TmuxError::io("run tmux new-session", e))?;
        if !out.status.success() {
            return Err(TmuxError::Failed {
                args: "new-session".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(Tmux {
            socket,
            config,
            dir_path: dir.path().to_owned(),
            dir: std::sync::Mutex::new(Some(dir)),
            cwd: cwd.to_owned(),
            program,
            server: std::sync::Mutex::new(Some(server)),
        })
    }

    /// The private folder (tests look for leftovers by this path).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        // -u: UTF-8 output whatever the locale (else tmux turns tabs and non-ASCII into `_`).
        cmd.arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg(&self.config)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `tmux -S SOCKET -f CONFIG ARGS…` and returns its stdout.
    pub async fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<String, TmuxError> {
        let out = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(|e| TmuxError::io("run tmux (is it installed and on PATH?)", e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(TmuxError::Failed {
                args: args
                    .iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// Starts `sh -c COMMAND` in a new window named `name`; returns tmux's pane id (`%N`).
    pub async fn new_pane(&self, name: &str, command: &str) -> Result<String, TmuxError> {
        let cwd = self.cwd.to_string_lossy().into_owned();
        let target = format!("{SESSION}:");
        let args = [
            "new-window",
            "-d",
            "-t",
            &target,
            "-n",
            name,
            "-c",
            &cwd,
            "-P",
            "-F",
            "#{pane_id}",
            "--",
            "sh",
            "-c",
            command,
        ];
        Ok(self.run(&args).await?.trim().to_owned())
    }

    /// The state of one pane, `None` when tmux does not know it.
    pub async fn pane_state(&self, tmux_id: &str) -> Result<Option<PaneState>, TmuxError> {
        match self
            .run(&["display-message", "-p", "-t", tmux_id, STATE_FORMAT])
            .await
        {
            Ok(out) => {
                Ok(PaneState::parse(out.trim_end_matches('\n')).filter(|p| p.tmux_id == tmux_id))
            }
            Err(e @ TmuxError::Failed { .. }) => {
                tracing::debug!("{e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every pane of the session (empty when the server is not running).
    pub async fn panes(&self) -> Result<Vec<PaneState>, TmuxError> {
        match self
            .run(&["list-panes", "-s", "-t", SESSION, "-F", STATE_FORMAT])
            .await
        {
            Ok(out) => Ok(out.lines().filter_map(PaneState::parse).collect()),
            Err(TmuxError::Failed { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The pane's text: `history` lines of scrollback (all of it when `None`) plus the screen,
    /// wrapped lines joined, no escape sequences.
    pub async fn capture(&self, tmux_id: &str, history: Option<u32>) -> Result<String, TmuxError> {
        let start = match history {
            Some(n) => format!("-{n}"),
            None => "-".to_owned(),
        };
        self.run(&["capture-pane", "-p", "-J", "-t", tmux_id, "-S", &start])
            .await
    }

    /// The pane's state and text in one tmux invocation; `None` when the pane is gone.
    pub async fn snapshot(
        &self,
        tmux_id: &str,
        history: Option<u32>,
    ) -> Result<Option<(PaneState, String)>, TmuxError> {
        let start = match history {
            Some(n) => format!("-{n}"),
            None => "-".to_owned(),
        };
        let args = [
            "display-message",
            "-p",
            "-t",
            tmux_id,
            STATE_FORMAT,
            ";",
            "capture-pane",
            "-p",
            "-J",
            "-t",
            tmux_id,
            "-S",
            &start,
        ];
        match self.run(&args).await {
            Ok(out) => {
                let (first, text) = out.split_once('\n').unwrap_or((&out, ""));
                Ok(PaneState::parse(first).map(|st| (st, text.to_owned())))
            }
            Err(e @ TmuxError::Failed { .. }) => {
                tracing::debug!("{e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends keys (`send_args` from [`crate::keys::send_keys_args`]) after reading the pane's
    /// state, in one invocation; `None` when the pane is gone.
    pub async fn send(
        &self,
        tmux_id: &str,
        send_args: &[String],
    ) -> Result<Option<PaneState>, TmuxError> {
        let mut args: Vec<&str> = vec!["display-message", "-p", "-t", tmux_id, STATE_FORMAT, ";"];
        args.extend(send_args.iter().map(String::as_str));
        match self.run(&args).await {
            Ok(out) => Ok(PaneState::parse(out.lines().next().unwrap_or(""))),
            Err(e @ TmuxError::Failed { .. }) => {
                tracing::debug!("{e}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn kill_pane(&self, tmux_id: &str) -> Result<(), TmuxError> {
        self.run(&["kill-pane", "-t", tmux_id]).await.map(drop)
    }

    /// Stops the server (every pane's process gets SIGHUP) and removes the private folder.
    /// Blocking on purpose: it also runs from `Drop` and after the runtime has stopped.
    pub fn shutdown(&self) {
        let taken = match self.dir.lock() {
            Ok(mut d) => d.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(dir) = taken else { return };
        if self.socket.exists() {
            let result = std::process::Command::new(&self.program)
                .arg("-S")
                .arg(&self.socket)
                .arg("kill-server")
                .env_remove("TMUX")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output();
            match result {
                Ok(o) if o.status.success() => tracing::debug!("tmux server stopped"),
                Ok(o) => tracing::debug!(
                    "tmux kill-server: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => tracing::error!("cannot run tmux kill-server: {e}"),
            }
        }
        let child = match self.server.lock() {
            Ok(mut c) => c.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut child) = child {
            reap(&mut child);
        }
        if let Err(e) = dir.close().or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }) {
            tracing::error!("cannot remove the private tmux folder: {e}");
        }
    }
}

/// Starts `tmux -D` (server in the foreground) as a child that gets SIGTERM when this
/// thread's process dies, and waits until its socket exists.
fn start_server(
    program: &OsString,
    socket: &Path,
    config: &Path,
    cwd: &Path,
) -> Result<std::process::Child, TmuxError> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg("-u")
        .arg("-D")
        .arg("-S")
        .arg(socket)
        .arg("-f")
        .arg(config)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| TmuxError::io("start tmux (is it installed and on PATH?)", e))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(TmuxError::Failed {
                args: "-D (server)".into(),
                stderr: format!("the tmux server exited at start ({status})"),
            });
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TmuxError::Failed {
                args: "-D (server)".into(),
                stderr: "the tmux server did not create its socket within 10 s".into(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(child)
}

#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: runs between fork and exec and makes only async-signal-safe syscalls
    // (prctl, getppid) on values captured by copy; no allocation.
    unsafe {
        cmd.pre_exec(move || {
            // Linux only: macOS has no parent-death signal; there the server is stopped by
            // `kill-server` when the MCP server ends normally.
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would signal us.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Waits briefly for the server child to exit after `kill-server`, then kills it.
fn reap(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pane_state() {
        assert_eq!(
            PaneState::parse("%3\t1\t2\t"),
            Some(PaneState {
                tmux_id: "%3".into(),
                dead: true,
                exit_code: Some(2),
                signal: None
            })
        );
        assert_eq!(
            PaneState::parse("%4\t0\t\t"),
            Some(PaneState {
                tmux_id: "%4".into(),
                dead: false,
                exit_code: None,
                signal: None
            })
        );
        assert_eq!(PaneState::parse(""), None);
    }
}
