//! A real window manager: i3 under Xvfb, managing two real X windows. The test moves the focus
//! with i3's own IPC commands (`[id="…"] focus`), the way a user's key binding would, and
//! checks both ways wrapix asks an i3 desktop: the i3 IPC socket (`I3SOCK`, the sway backend:
//! i3 and sway speak the same protocol) and `_NET_ACTIVE_WINDOW`, which i3 publishes (`DISPLAY`
//! only).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::focus::{self, Focus, WindowRef};
use wrapix_notify::session;
use wrapix_notify::Frame;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt;
use x11rb::rust_connection::RustConnection;

use super::harness::{daemon, have, skip, two_windows, wait_for, xvfb, Xvfb};

const RUN_COMMAND: u32 = 0;
const GET_TREE: u32 = 4;
const LIMIT: Duration = Duration::from_secs(10);

/// i3 on its own Xvfb, with its IPC socket in a private folder. Dropping it kills i3, then
/// the X server (field order), then removes the folder.
struct I3 {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    x: Xvfb,
    _dir: tempfile::TempDir,
}

impl Drop for I3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts i3 with a minimal config (no bar, nothing started) and waits for its IPC socket;
/// `None` (after a SKIP line) when i3 or Xvfb is not installed.
fn i3() -> Option<I3> {
    if !have("i3") {
        skip("i3 is not installed (apt-get install i3-wm)");
        return None;
    }
    let x = xvfb()?;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("i3.sock");
    let config = dir.path().join("config");
    // `font fixed`: the X server's built-in font, so no font package is needed.
    std::fs::write(
        &config,
        format!(
            "# i3 config file (v4)\nipc-socket {}\nfont fixed\nfocus_follows_mouse no\n",
            socket.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("i3.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("i3")
        .arg("-c")
        .arg(&config)
        .env("DISPLAY", &x.display)
        .env_remove("I3SOCK")
        .env_remove("SWAYSOCK")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut wm = I3 {
        child,
        socket,
        log,
        x,
        _dir: dir,
    };
    let up = wait_for(LIMIT, || {
        matches!(wm.child.try_wait(), Ok(None)) && UnixStream::connect(&wm.socket).is_ok()
    });
    assert!(up, "i3 did not open {}: {}", wm.socket.display(), wm.log());
    Some(wm)
}

impl I3 {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One i3 IPC request: `i3-ipc`, payload length and type (native byte order), payload.
    fn ipc(&self, kind: u32, payload: &str) -> Value {
        let mut s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut msg = b"i3-ipc".to_vec();
        msg.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(payload.as_bytes());
        s.write_all(&msg).unwrap();
        let mut header = [0u8; 14];
        s.read_exact(&mut header).unwrap();
        assert_eq!(&header[..6], b"i3-ipc");
        let len = u32::from_ne_bytes(header[6..10].try_into().unwrap());
        assert_eq!(u32::from_ne_bytes(header[10..].try_into().unwrap()), kind);
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// Runs an i3 command (what `i3-msg` sends) and checks that i3 accepted it.
    fn command(&self, cmd: &str) {
        let reply = self.ipc(RUN_COMMAND, cmd);
        let results = reply.as_array().unwrap();
        assert!(
            !results.is_empty() && results.iter().all(|r| r["success"] == true),
            "i3 command {cmd:?}: {reply}"
        );
    }

    /// The node holding X window `w`: its i3 id and whether it has the focus.
    fn container(&self, w: u32) -> Option<(i64, bool)> {
        let tree = self.ipc(GET_TREE, "");
        let mut stack = vec![&tree];
        while let Some(node) = stack.pop() {
            if node["window"].as_u64() == Some(u64::from(w)) {
                return Some((node["id"].as_i64()?, node["focused"] == true));
            }
            for key in ["nodes", "floating_nodes"] {
                stack.extend(node[key].as_array().into_iter().flatten());
            }
        }
        None
    }

    /// Focuses window `w` through i3 and returns the id of its node once i3 reports it focused.
    fn focus(&self, w: u32) -> i64 {
        self.command(&format!("[id=\"{w}\"] focus"));
        let mut id = None;
        let focused = wait_for(LIMIT, || match self.container(w) {
            Some((i, true)) => {
                id = Some(i);
                true
            }
            _ => false,
        });
        assert!(focused, "i3 did not focus window {w}: {}", self.log());
        id.unwrap()
    }
}

/// i3 managing two mapped windows, A and B.
struct Desktop {
    // Dropped first: the windows go away with the connection, before i3 and the X server.
    _conn: RustConnection,
    windows: [u32; 2],
    wm: I3,
}

fn desktop() -> Option<Desktop> {
    let wm = i3()?;
    let (conn, screen) = x11rb::connect(Some(&wm.x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let windows = two_windows(&conn, root);
    for w in windows {
        conn.map_window(w).unwrap();
    }
    conn.flush().unwrap();
    let managed = wait_for(LIMIT, || windows.iter().all(|w| wm.container(*w).is_some()));
    assert!(managed, "i3 did not manage {windows:?}: {}", wm.log());
    Some(Desktop {
        _conn: conn,
        windows,
        wm,
    })
}

/// The window id a [`WindowRef`] holds, as the daemon's reasons print it.
fn id_of(w: &WindowRef) -> String {
    match w {
        WindowRef::Sway { id: Some(i), .. } => i.to_string(),
        WindowRef::X11 { id: Some(i), .. } => i.to_string(),
        other => panic!("no window id in {other:?}"),
    }
}

/// The scenario both backends go through. `env` is the launcher's environment; `expect` gives
/// the [`WindowRef`] naming a window, from its i3 node id and its X window id.
fn suppressed_only_while_focused(
    desk: &Desktop,
    env: &BTreeMap<String, String>,
    expect: impl Fn(i64, u32) -> WindowRef,
) {
    let [a, b] = desk.windows;
    let wm = &desk.wm;
    let settled =
        |want: &WindowRef| wait_for(LIMIT, || focus::window_focus(want) == Focus::Focused);

    // The launcher starts from window A.
    let a_node = wm.focus(a);
    assert!(settled(&expect(a_node, a)), "{}", wm.log());
    let reg = session::register(env, None).unwrap();
    let recorded = reg.record.window.clone();
    assert_eq!(recorded, expect(a_node, a));
    let sid = reg.session_id().to_owned();
    let want_sid = match &recorded {
        WindowRef::Sway { .. } => format!("sway-{a_node}"),
        _ => format!("x11-{a:#x}"),
    };
    assert_eq!(sid, want_sid);

    let (d, seen) = daemon(Path::new(&env["XDG_RUNTIME_DIR"]));
    let target = Target::Unix(d.socket.clone().unwrap());
    let send = |msg: &str| {
        let mut f = Frame::new("t", msg);
        f.session_id = Some(sid.clone());
        assert_eq!(client::send(&f, &target, client::TIMEOUT), Outcome::Sent);
    };

    send("while A is focused");
    assert!(wait_for(LIMIT, || d.counts().suppressed == 1));
    assert_eq!(seen.len(), 0);

    // The user moves to window B: what the daemon reads now names B, and it shows.
    let b_node = wm.focus(b);
    let b_now = expect(b_node, b);
    assert!(settled(&b_now), "{}", wm.log());
    match focus::window_focus(&recorded) {
        Focus::NotFocused(r) => assert!(r.contains(&id_of(&b_now)), "{r}"),
        other => panic!("window B has the focus, yet: {other:?}"),
    }
    send("while B is focused");
    assert!(wait_for(LIMIT, || seen.messages() == ["while B is focused"]));

    // Back to A: the same id is read again, so i3 keeps it for the window's life.
    assert_eq!(wm.focus(a), a_node);
    assert!(settled(&recorded));
    send("A again");
    assert!(wait_for(LIMIT, || d.counts().suppressed == 2));

    // An empty workspace: no window has the focus; shown.
    wm.command("workspace 2");
    assert!(wait_for(LIMIT, || !matches!(
        focus::window_focus(&recorded),
        Focus::Focused
    )));
    send("on an empty workspace");
    assert!(wait_for(LIMIT, || seen.len() == 2));
    assert_eq!(
        seen.messages(),
        ["while B is focused", "on an empty workspace"]
    );
    assert_eq!(d.counts().suppressed, 2);
    drop(reg);
}

#[test]
fn i3_ipc_focus_suppresses_only_the_launch_window() {
    let Some(desk) = desktop() else { return };
    let t = tempfile::tempdir().unwrap();
    // A real i3 session's environment has both; I3SOCK wins.
    let env: BTreeMap<String, String> = [
        ("I3SOCK", desk.wm.socket.display().to_string()),
        ("DISPLAY", desk.wm.x.display.clone()),
        ("XDG_RUNTIME_DIR", t.path().display().to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    let socket = desk.wm.socket.clone();
    suppressed_only_while_focused(&desk, &env, |node, _| WindowRef::Sway {
        socket: socket.clone(),
        id: Some(node),
    });
}

#[test]
fn i3_active_window_suppresses_only_the_launch_window() {
    let Some(desk) = desktop() else { return };
    let t = tempfile::tempdir().unwrap();
    let env: BTreeMap<String, String> = [
        ("DISPLAY", desk.wm.x.display.clone()),
        ("XDG_RUNTIME_DIR", t.path().display().to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    let display = desk.wm.x.display.clone();
    suppressed_only_while_focused(&desk, &env, |_, window| WindowRef::X11 {
        display: display.clone(),
        id: Some(window),
    });
}
