//! The daemon checks the peer's UID on its Unix socket: another user's frames are rejected,
//! even when the socket itself is reachable (here it is made world-writable on purpose).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::daemon::{Daemon, Listeners};
use wrapix_notify::Frame;

use super::harness::{config, is_root, open_tempdir, skip, wait_for, wrapix_bin, Seen};

#[test]
fn another_uid_is_rejected() {
    if !is_root() {
        skip("switching to another user needs root (CI runs as root with the user `ci`)");
        return;
    }
    let user = std::env::var("WRAPIX_TEST_USER").unwrap_or_else(|_| "ci".into());
    let Some(u) = nix::unistd::User::from_name(&user).ok().flatten() else {
        skip(&format!(
            "the test user `{user}` does not exist (useradd -m {user})"
        ));
        return;
    };
    let t = open_tempdir();
    let Some(bin) = wrapix_bin(t.path()) else {
        return;
    };
    let path = t.path().join("open.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let seen = Seen::default();
    let d = Daemon::start_on(
        config(t.path()),
        seen.sink(),
        Listeners::from_unix(listener),
    )
    .unwrap();

    let out = Command::new("setpriv")
        .args([
            "--reuid",
            &u.uid.to_string(),
            "--regid",
            &u.gid.to_string(),
            "--init-groups",
            "--",
        ])
        .arg(&bin)
        .args(["notify", "from another user"])
        .env_clear()
        .env("WRAPIX_NOTIFY_SOCKET", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(10), || d.counts().rejected_peer == 1),
        "{:?}",
        d.counts()
    );

    // The daemon's own user is served.
    let own = client::send(
        &Frame::new("t", "own user"),
        &Target::Unix(path),
        client::TIMEOUT,
    );
    assert_eq!(own, Outcome::Sent);
    assert!(wait_for(Duration::from_secs(10), || seen.messages() == ["own user"]));
}
