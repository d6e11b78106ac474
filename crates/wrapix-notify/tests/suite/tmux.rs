//! tmux focus: a private tmux server (`-S`), a control-mode client attached (no terminal
//! needed). The pane counts as watched only while it is active and a client is attached.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wrapix_notify::focus::{self, tmux, Focus, TmuxRef, WindowRef};

use super::harness::{have, skip, wait_for};

fn tmux_cmd(sock: &Path, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Server<'a> {
    sock: &'a Path,
    client: Option<Child>,
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.client.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.sock)
            .arg("kill-server")
            .output();
    }
}

#[test]
fn tmux_pane_active_and_attached() {
    if !have("tmux") {
        skip("tmux is not installed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let sock = t.path().join("tmux.sock");
    let mut server = Server {
        sock: &sock,
        client: None,
    };
    tmux_cmd(
        &sock,
        &[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "wx",
            "-x",
            "80",
            "-y",
            "24",
        ],
    );
    let pane = tmux_cmd(&sock, &["display-message", "-p", "-t", "wx", "#{pane_id}"]);
    let t_ref = TmuxRef {
        socket: sock.clone(),
        pane: pane.clone(),
    };

    // From the launcher's environment.
    let env = [
        ("TMUX".to_owned(), format!("{},1,0", sock.display())),
        ("TMUX_PANE".to_owned(), pane.clone()),
    ]
    .into();
    assert_eq!(tmux::detect(&env), Some(t_ref.clone()));
    assert_eq!(tmux::pane_name(&t_ref).as_deref(), Some("wx:0.0"));

    // Detached: nobody is looking.
    assert!(matches!(tmux::pane_focus(&t_ref), Focus::NotFocused(_)));

    // A control-mode client attaches without a terminal.
    let mut client = Command::new("tmux")
        .arg("-S")
        .arg(&sock)
        .args(["-C", "attach-session", "-t", "wx"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = client.stdin.take();
    server.client = Some(client);
    assert!(wait_for(Duration::from_secs(10), || tmux::pane_focus(
        &t_ref
    ) == Focus::Focused));
    let d = focus::decide(&WindowRef::None, Some(&t_ref));
    assert!(d.suppress, "{d:?}");

    // Another window becomes the active one: not watched.
    tmux_cmd(&sock, &["new-window", "-t", "wx"]);
    assert!(matches!(tmux::pane_focus(&t_ref), Focus::NotFocused(_)));
    assert!(!focus::decide(&WindowRef::None, Some(&t_ref)).suppress);

    // Back to it, then a split makes the other pane active.
    tmux_cmd(&sock, &["select-window", "-t", "wx:0"]);
    assert_eq!(tmux::pane_focus(&t_ref), Focus::Focused);
    tmux_cmd(&sock, &["split-window", "-t", &pane]);
    assert!(matches!(tmux::pane_focus(&t_ref), Focus::NotFocused(_)));
    drop(stdin.map(|mut s| s.write_all(b"detach-client\n")));

    // An unknown desktop never suppresses, even with the pane watched.
    tmux_cmd(&sock, &["select-pane", "-t", &pane]);
    let unknown = WindowRef::Unknown {
        name: "GNOME".into(),
    };
    assert!(!focus::decide(&unknown, Some(&t_ref)).suppress);
}
