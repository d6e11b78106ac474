//! X11 focus under Xvfb: the test plays the window manager, publishing `_NET_ACTIVE_WINDOW` on
//! the root window; the daemon suppresses while the session's window is the active one.

use std::time::Duration;

use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::focus::{self, WindowRef};
use wrapix_notify::session::{self, SessionRecord};
use wrapix_notify::Frame;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt, PropMode};
use x11rb::wrapper::ConnectionExt as _;

use super::harness::{daemon, two_windows, wait_for, xvfb};

#[test]
fn x11_active_window_suppresses_and_other_window_shows() {
    let Some(x) = xvfb() else { return };
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let windows = two_windows(&conn, root);
    let active = conn
        .intern_atom(false, b"_NET_ACTIVE_WINDOW")
        .unwrap()
        .reply()
        .unwrap()
        .atom;
    let focus_on = |w: u32| {
        conn.change_property32(PropMode::REPLACE, root, active, AtomEnum::WINDOW, &[w])
            .unwrap();
        conn.sync().unwrap();
    };
    focus_on(windows[0]);

    // The launcher's view: the terminal it starts from is the active window.
    let env = [("DISPLAY".to_owned(), x.display.clone())].into();
    let window = focus::detect(&env);
    assert_eq!(
        window,
        WindowRef::X11 {
            display: x.display.clone(),
            id: Some(windows[0])
        }
    );

    let t = tempfile::tempdir().unwrap();
    let (d, seen) = daemon(t.path());
    let record = SessionRecord {
        v: 1,
        session_id: "x11-test".into(),
        pid: std::process::id(),
        start_time: None,
        project: None,
        window,
        tmux: None,
    };
    let _reg = session::register_in(&t.path().join("wrapix/sessions"), record).unwrap();
    let target = Target::Unix(d.socket.clone().unwrap());
    let send = |msg: &str| {
        let mut f = Frame::new("t", msg);
        f.session_id = Some("x11-test".into());
        assert_eq!(client::send(&f, &target, client::TIMEOUT), Outcome::Sent);
    };

    send("while focused");
    assert!(wait_for(Duration::from_secs(10), || d.counts().suppressed == 1));
    assert_eq!(seen.len(), 0);

    focus_on(windows[1]);
    send("while another window is focused");
    assert!(wait_for(Duration::from_secs(10), || seen.messages()
        == ["while another window is focused"]));

    focus_on(0);
    send("nothing focused");
    assert!(wait_for(Duration::from_secs(10), || seen.len() == 2));
}
