//! `wrapix manager` end to end, as the unprivileged test user: the real daemon creates a real
//! session (tmux running `wrapix run` with the private display) whose agent, the user's
//! `[agent] command`, draws a known colour; the screenshot API shows it; stop and delete end
//! it. And reconcile: `kill -9` of the daemon while a session runs loses nothing, and a
//! session whose tmux died meanwhile is marked `exited` with the reason. Requests go through
//! `wrapix __manager-proxy` (the remote side of `wrapix remote`) as the test user.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::desktop::first_png_pixel;
use super::harness::{skip, Case, Running};

pub(super) const COLOUR: &str = "#12ab34";
pub(super) const PIXEL: u32 = 0x12ab34;

pub(super) fn have(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

pub(super) fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A test's manager: its case (the agent of [`COLOUR`] in the user config) and state folder.
pub(super) struct M {
    pub(super) c: Case,
    pub(super) state: PathBuf,
}

impl M {
    pub(super) fn new() -> Option<M> {
        let c = Case::new()?;
        if !have("Xvfb") || !have("xsetroot") || !have("tmux") {
            skip("Xvfb, xsetroot or tmux is missing (scripts/install-deps.sh --test installs xvfb, x11-xserver-utils and tmux)");
            return None;
        }
        let run = c.root.join("run");
        std::fs::create_dir(&run).unwrap();
        c.give(&run);
        let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
        // The agent: the user's own config (no trust needed), a light command that draws.
        c.write(
            &c.home.join(".config/wrapix/config.toml"),
            &format!(
                "[agent]\ncommand = [\"/bin/sh\", \"-c\", \"xsetroot -solid '{COLOUR}' && echo drawn && sleep 600\"]\n"
            ),
        );
        let state = c.root.join("mgr");
        Some(M { c, state })
    }

    fn daemon(&self) -> Running {
        self.daemon_with(&self.c.home, None)
    }

    /// The daemon with `--allow-root ROOT`, and `--listen 127.0.0.1:PORT` when given.
    pub(super) fn daemon_with(&self, root: &Path, port: Option<u16>) -> Running {
        let state = self.state.to_string_lossy();
        let root = root.to_string_lossy();
        let listen = port.map(|p| format!("127.0.0.1:{p}"));
        let mut args = vec!["manager", "--state-dir", &state, "--allow-root", &root];
        if let Some(l) = &listen {
            args.extend(["--listen", l.as_str()]);
        }
        let d = self.c.spawn(&args);
        let sock = self.state.join("manager.sock");
        // (A socket file left by a killed daemon refuses connections until the new one binds.)
        until("the manager's socket", Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock)
                .ok()
                .map(drop)
        });
        if let Some(p) = port {
            until("the manager's TCP port", Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", p))
                    .ok()
                    .map(drop)
            });
        }
        d
    }

    /// One request through `wrapix __manager-proxy` as the test user: (status, body).
    pub(super) fn api(&self, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
        let mut cmd = self.c.command(&[
            "__manager-proxy",
            "--state-dir",
            &self.state.to_string_lossy(),
        ]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(req.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let o = out.stdout;
        let end = o
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&out.stderr)));
        let head = String::from_utf8_lossy(&o[..end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, o[end + 4..].to_vec())
    }

    pub(super) fn json(&self, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let (s, b) = self.api(method, path, body);
        (
            s,
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        )
    }

    fn create(&self, name: &str) -> String {
        let body = serde_json::json!({"name": name, "backend": "bubblewrap", "project_dir": self.c.project, "network": false}).to_string();
        let (s, v) = self.json("POST", "/api/sandboxes", &body);
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["status"], "running", "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let (s, v) = self.json("GET", &format!("/api/sandboxes/{id}"), "");
        assert_eq!(s, 200, "{v}");
        v
    }
}

pub(super) fn kill9(d: Running) {
    nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = d.finish_within(Duration::from_secs(10));
}

#[test]
fn manager_session_draws_and_the_screenshot_shows_it() {
    let Some(m) = M::new() else { return };
    let d = m.daemon();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&m.state.join("manager.sock")), 0o600);
    assert_eq!(mode(&m.state.join("token")), 0o600);
    assert_eq!(mode(&m.state), 0o700);
    let id = m.create("e2e");
    // The agent draws on the session's private display; the API's screenshot shows it.
    let png = until(
        "a screenshot with the colour",
        Duration::from_secs(60),
        || {
            let (s, b) = m.api("GET", &format!("/api/sandboxes/{id}/screenshot"), "");
            (s == 200 && first_png_pixel(&b) == PIXEL).then_some(b)
        },
    );
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(m.c.root.join("session.png"), &png).unwrap();
    let (s, log) = m.api("GET", &format!("/api/sandboxes/{id}/logs"), "");
    assert_eq!(s, 200);
    assert!(
        String::from_utf8_lossy(&log).contains("drawn"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    let (s, v) = m.json("GET", &format!("/api/sandboxes/{id}/metrics"), "");
    assert_eq!(s, 200, "{v}");
    assert!(v["processes"].as_u64().unwrap() >= 2, "{v}");
    // Another local user (root here) is refused at the socket.
    if super::harness::is_root() && m.c.env.uid != 0 {
        let mut s = std::os::unix::net::UnixStream::connect(m.state.join("manager.sock")).unwrap();
        use std::io::Read;
        s.write_all(b"GET /api/sandboxes HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.0 403"), "{out}");
    }
    let (s, v) = m.json("POST", &format!("/api/sandboxes/{id}/stop"), "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "stopped");
    let (s, _) = m.api("DELETE", &format!("/api/sandboxes/{id}"), "");
    assert_eq!(s, 204);
    let (s, _) = m.api("GET", &format!("/api/sandboxes/{id}"), "");
    assert_eq!(s, 404);
    let (s, _) = m.api("GET", &format!("/api/sandboxes/{id}/screenshot"), "");
    assert_eq!(s, 404);
    kill9(d);
    // No tmux server, no sandbox, no Xvfb of the session left.
    let left = Command::new("pgrep")
        .args(["-f", &m.state.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[test]
fn manager_kill_9_loses_nothing_and_marks_dead_sessions() {
    let Some(m) = M::new() else { return };
    let d = m.daemon();
    let a = m.create("alive");
    let b = m.create("doomed");
    kill9(d);
    // While the daemon is dead, b's tmux goes away.
    let sock = m.state.join("tmux").join(format!("{b}.sock"));
    let out =
        m.c.host_as_user("tmux", &["-S", &sock.to_string_lossy(), "kill-server"]);
    assert_eq!(out.code, 0, "{out}");
    let d = m.daemon();
    let (s, v) = m.json("GET", "/api/sandboxes", "");
    assert_eq!(s, 200);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(m.status(&a)["status"], "running");
    let vb = m.status(&b);
    assert_eq!(vb["status"], "exited", "{vb}");
    assert!(vb["reason"].as_str().unwrap().contains("tmux"), "{vb}");
    // The adopted session is still the same one: its screenshot works.
    until(
        "the adopted session's screenshot",
        Duration::from_secs(60),
        || {
            let (s, png) = m.api("GET", &format!("/api/sandboxes/{a}/screenshot"), "");
            (s == 200 && first_png_pixel(&png) == PIXEL).then_some(())
        },
    );
    // SIGTERM leaves it running; the next daemon adopts it; --stop-all ends it.
    nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = d.finish_within(Duration::from_secs(20));
    assert!(m.state.join("tmux").join(format!("{a}.sock")).exists());
    let out = m.c.run(&[
        "manager",
        "--state-dir",
        &m.state.to_string_lossy(),
        "--stop-all",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let d = m.daemon();
    let va = m.status(&a);
    assert_eq!(va["status"], "stopped", "{va}");
    kill9(d);
    let left = Command::new("pgrep")
        .args(["-f", &m.state.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
