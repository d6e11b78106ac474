//! `wrapix notify`: send one frame to the daemon and get out of the way.
//!
//! The client must never block or fail the agent that called it (it runs from Claude Code's
//! `Stop` hook): the whole send has a deadline ([`TIMEOUT`]), and every outcome, including
//! "no daemon is listening", exits 0 with one line on stderr.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use crate::frame::Frame;
use crate::paths;

/// The longest a send may take, connect and write together.
pub const TIMEOUT: Duration = Duration::from_millis(1000);
/// The most read from stdin for `--hook`.
const MAX_HOOK_INPUT: u64 = 64 * 1024;

/// Where the client sends frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    /// `HOST:PORT`, for VM backends where a Unix socket cannot cross.
    Tcp(String),
}

impl Target {
    /// `$WRAPIX_NOTIFY_SOCKET`, else `$WRAPIX_NOTIFY_TCP`, else the sandbox path when it exists
    /// (inside a sandbox), else the host's own socket.
    pub fn from_env(env: &BTreeMap<String, String>) -> Target {
        if let Some(s) = env.get(paths::ENV_SOCKET).filter(|s| !s.is_empty()) {
            return Target::Unix(PathBuf::from(s));
        }
        if let Some(t) = env.get(paths::ENV_TCP).filter(|s| !s.is_empty()) {
            return Target::Tcp(t.clone());
        }
        // A symlink into the mounted folder, there even while no daemon runs.
        let inside = PathBuf::from(paths::SANDBOX_SOCKET);
        if std::fs::symlink_metadata(&inside).is_ok() {
            return Target::Unix(inside);
        }
        Target::Unix(paths::host_socket(env))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

/// What happened to a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Nobody listens (or the connection failed); the reason.
    NoDaemon(String),
    TimedOut,
}

/// Sends one frame within `timeout`. Never panics, never blocks longer than `timeout`.
pub fn send(frame: &Frame, target: &Target, timeout: Duration) -> Outcome {
    let line = frame.encode();
    let target = target.clone();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("wrapix-notify-send".into())
        .spawn(move || {
            let _ = tx.send(send_blocking(&line, &target, timeout));
        });
    if let Err(e) = spawned {
        return Outcome::NoDaemon(format!("cannot start a thread: {e}"));
    }
    rx.recv_timeout(timeout).unwrap_or(Outcome::TimedOut)
}

fn send_blocking(line: &[u8], target: &Target, timeout: Duration) -> Outcome {
    let result = match target {
        Target::Unix(path) => UnixStream::connect(path).and_then(|mut s| {
            s.set_write_timeout(Some(timeout))?;
            s.write_all(line)?;
            s.shutdown(std::net::Shutdown::Write)
        }),
        Target::Tcp(addr) => tcp_connect(addr, timeout).and_then(|mut s| {
            s.set_write_timeout(Some(timeout))?;
            s.write_all(line)?;
            s.shutdown(std::net::Shutdown::Write)
        }),
    };
    match result {
        Ok(()) => Outcome::Sent,
        Err(e) => Outcome::NoDaemon(e.to_string()),
    }
}

fn tcp_connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing"))))
}

/// The arguments of `wrapix notify`.
#[derive(Debug, Clone, Default)]
pub struct NotifyArgs {
    pub title: Option<String>,
    pub sound: Option<String>,
    /// `Stop`, `Notification`, …: build the message from Claude Code's hook input on stdin.
    pub hook: Option<String>,
    pub message: Option<String>,
}

/// `wrapix notify`: always returns 0 once the arguments are valid.
pub fn run(args: &NotifyArgs, env: &BTreeMap<String, String>) -> i32 {
    let Some(mut frame) = build_frame(args, env, read_hook_input) else {
        tracing::error!("nothing to send: give a MESSAGE (or --hook EVENT)");
        return 2;
    };
    frame.session_id = env
        .get(paths::ENV_SESSION)
        .filter(|s| crate::frame::is_token(s))
        .cloned();
    let target = Target::from_env(env);
    match send(&frame, &target, TIMEOUT) {
        Outcome::Sent => {}
        Outcome::NoDaemon(why) => tracing::warn!(
            "no notification daemon at {target} ({why}); message not shown. Start `wrapix notifyd` on the host"
        ),
        Outcome::TimedOut => tracing::warn!(
            "the notification daemon at {target} did not answer within {} ms; message not shown",
            TIMEOUT.as_millis()
        ),
    }
    0
}

/// The frame for these arguments; `hook_input` reads Claude Code's JSON for `--hook`.
pub fn build_frame(
    args: &NotifyArgs,
    env: &BTreeMap<String, String>,
    hook_input: impl FnOnce() -> Option<serde_json::Value>,
) -> Option<Frame> {
    let project = env.get("WRAPIX_PROJECT").filter(|p| !p.is_empty());
    let mut sound = args.sound.clone();
    let (title, message) = match &args.hook {
        None => (
            args.title.clone().unwrap_or_else(|| match project {
                Some(p) => format!("wrapix · {p}"),
                None => crate::frame::DEFAULT_TITLE.to_owned(),
            }),
            args.message.clone().filter(|m| !m.trim().is_empty())?,
        ),
        Some(event) => {
            let input = hook_input();
            let said = input
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(|m| m.as_str())
                .filter(|m| !m.trim().is_empty())
                .map(str::to_owned);
            let (default_message, default_sound) = match event.as_str() {
                "Stop" => (
                    "Finished; waiting for your next message".to_owned(),
                    "Glass",
                ),
                "Notification" => ("Claude needs your attention".to_owned(), "Ping"),
                other => (other.to_owned(), "Ping"),
            };
            sound = sound.or_else(|| Some(default_sound.to_owned()));
            let title = args.title.clone().unwrap_or_else(|| match project {
                Some(p) => format!("Claude Code · {p}"),
                None => "Claude Code".to_owned(),
            });
            let message = said
                .or_else(|| args.message.clone())
                .unwrap_or(default_message);
            (title, message)
        }
    };
    let mut frame = Frame::new(&title, &message);
    frame.sound = sound;
    Some(frame)
}

/// Claude Code's hook input: JSON on stdin (not read from a terminal; bounded; 500 ms at most).
fn read_hook_input() -> Option<serde_json::Value> {
    if std::io::stdin().is_terminal() {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::stdin()
                .lock()
                .take(MAX_HOOK_INPUT)
                .read_to_end(&mut buf);
            let _ = tx.send(buf);
        })
        .ok()?;
    let buf = rx.recv_timeout(Duration::from_millis(500)).ok()?;
    serde_json::from_slice(&buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn target_precedence() {
        let e = env(&[
            (paths::ENV_SOCKET, "/x.sock"),
            (paths::ENV_TCP, "10.0.2.2:5959"),
        ]);
        assert_eq!(Target::from_env(&e), Target::Unix("/x.sock".into()));
        let e = env(&[(paths::ENV_TCP, "10.0.2.2:5959")]);
        assert_eq!(Target::from_env(&e), Target::Tcp("10.0.2.2:5959".into()));
    }

    #[test]
    fn plain_message() {
        let a = NotifyArgs {
            message: Some("hi".into()),
            sound: Some("Ping".into()),
            ..Default::default()
        };
        let f = build_frame(&a, &env(&[]), || None).unwrap_or_else(|| panic!("no frame"));
        assert_eq!((f.title.as_str(), f.message.as_str()), ("wrapix", "hi"));
        assert_eq!(f.sound.as_deref(), Some("Ping"));
        assert!(build_frame(&NotifyArgs::default(), &env(&[]), || None).is_none());
    }

    #[test]
    fn hook_messages_name_the_project() {
        let e = env(&[("WRAPIX_PROJECT", "myproj")]);
        let a = NotifyArgs {
            hook: Some("Notification".into()),
            ..Default::default()
        };
        let f = build_frame(&a, &e, || {
            Some(serde_json::json!({"message": "Claude needs your permission to use Bash"}))
        })
        .unwrap_or_else(|| panic!("no frame"));
        assert_eq!(f.title, "Claude Code · myproj");
        assert_eq!(f.message, "Claude needs your permission to use Bash");
        assert_eq!(f.sound.as_deref(), Some("Ping"));
        let a = NotifyArgs {
            hook: Some("Stop".into()),
            ..Default::default()
        };
        let f = build_frame(&a, &e, || None).unwrap_or_else(|| panic!("no frame"));
        assert_eq!(f.message, "Finished; waiting for your next message");
        assert_eq!(f.sound.as_deref(), Some("Glass"));
    }

    #[test]
    fn no_daemon_is_quick_and_not_an_error() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        let out = send(
            &Frame::new("t", "m"),
            &Target::Unix(t.path().join("none.sock")),
            TIMEOUT,
        );
        assert!(matches!(out, Outcome::NoDaemon(_)), "{out:?}");
        assert!(start.elapsed() < TIMEOUT);
    }

    #[test]
    fn a_listener_that_never_accepts_does_not_block() {
        // A full backlog makes connect(2) block on a Unix socket: the deadline still holds.
        use nix::sys::socket::{
            bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = t.path().join("stuck.sock");
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let addr = UnixAddr::new(&path).unwrap_or_else(|e| panic!("{e}"));
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).unwrap_or_else(|e| panic!("{e}"));
        listen(&fd, Backlog::new(0).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let _held: Vec<_> = (0..1)
            .filter_map(|_| {
                let s = UnixStream::connect(&path).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(s)
            })
            .collect();
        let start = std::time::Instant::now();
        let out = send(
            &Frame::new("t", "m"),
            &Target::Unix(path),
            Duration::from_millis(200),
        );
        assert_eq!(out, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
