//! The desktop path on Linux: a private D-Bus session bus (`dbus-daemon`), a notification
//! server on it owning `org.freedesktop.Notifications` (this test's, via zbus), and the daemon
//! calling `Notify` through zbus. The notification must arrive with its title and body.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::daemon::Daemon;
use wrapix_notify::sink::SinkSpec;
use wrapix_notify::Frame;
use zbus::zvariant::OwnedValue;

use super::harness::{config, have, skip};

/// A session bus of our own; killed on drop.
struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn session_bus() -> Option<Bus> {
    if !have("dbus-daemon") {
        skip("dbus-daemon is not installed (apt-get install dbus)");
        return None;
    }
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // The address is printed once the bus listens: readiness without sleeping.
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let address = line.trim().to_owned();
    if address.is_empty() {
        skip("dbus-daemon printed no address");
        return None;
    }
    Some(Bus { child, address })
}

#[derive(Debug)]
struct Received {
    app: String,
    summary: String,
    body: String,
    sound: Option<String>,
}

struct Server {
    tx: mpsc::Sender<Received>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Server {
    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "body-markup".into(), "sound".into()]
    }

    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let sound = hints
            .get("sound-name")
            .and_then(|v| String::try_from(v.try_clone().ok()?).ok());
        let _ = self.tx.send(Received {
            app: app_name,
            summary,
            body,
            sound,
        });
        1
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "wrapix-test".into(),
            "wrapix".into(),
            "0".into(),
            "1.2".into(),
        )
    }
}

#[test]
fn notification_arrives_on_the_bus_with_title_and_body() {
    let Some(bus) = session_bus() else { return };
    let (tx, rx) = mpsc::channel();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _server = rt
        .block_on(async {
            zbus::connection::Builder::address(bus.address.as_str())?
                .name("org.freedesktop.Notifications")?
                .serve_at("/org/freedesktop/Notifications", Server { tx })?
                .build()
                .await
        })
        .unwrap();

    let t = tempfile::tempdir().unwrap();
    let mut cfg = config(t.path());
    cfg.always = true;
    let d = Daemon::start(
        cfg,
        SinkSpec::Desktop {
            address: Some(bus.address.clone()),
        },
    )
    .unwrap();
    let mut frame = Frame::new("Claude Code · proj", "Task completed <b>&</b>");
    frame.sound = Some("Ping".into());
    let out = client::send(
        &frame,
        &Target::Unix(d.socket.clone().unwrap()),
        client::TIMEOUT,
    );
    assert_eq!(out, Outcome::Sent);
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(got.app, "wrapix");
    assert_eq!(got.summary, "Claude Code · proj");
    // The server renders markup: the daemon escapes it, so text stays text.
    assert_eq!(got.body, "Task completed &lt;b&gt;&amp;&lt;/b&gt;");
    assert_eq!(got.sound.as_deref(), Some("Ping"));
    assert!(super::harness::wait_for(Duration::from_secs(5), || d
        .counts()
        .shown
        == 1));
}

#[test]
fn no_bus_is_a_clear_startup_error() {
    let t = tempfile::tempdir().unwrap();
    let err = Daemon::start(
        config(t.path()),
        SinkSpec::Desktop {
            address: Some(format!("unix:path={}/nobus", t.path().display())),
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("D-Bus"), "{err}");
    // The socket it bound is not left behind as a live listener.
    assert!(Daemon::start(config(t.path()), super::harness::Seen::default().sink()).is_ok());
}
