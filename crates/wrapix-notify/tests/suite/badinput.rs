//! Bad input: the daemon stays up, keeps serving, and counts (and logs) what it dropped.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::daemon::Daemon;
use wrapix_notify::frame::MAX_FRAME;
use wrapix_notify::sink::SinkSpec;
use wrapix_notify::Frame;

use super::harness::{config, daemon, wait_for, Seen};

const LIMIT: Duration = Duration::from_secs(10);

fn send(d: &Daemon, msg: &str) -> Outcome {
    let target = Target::Unix(d.socket.clone().unwrap());
    client::send(&Frame::new("t", msg), &target, client::TIMEOUT)
}

#[test]
fn malformed_version_and_oversized_frames_are_dropped() {
    let t = tempfile::tempdir().unwrap();
    let (d, seen) = daemon(t.path());
    let mut s = UnixStream::connect(d.socket.as_ref().unwrap()).unwrap();
    s.write_all(b"{not json\n").unwrap();
    s.write_all(b"{\"v\":9,\"message\":\"from the future\"}\n")
        .unwrap();
    s.write_all(b"\n\r\n").unwrap();
    s.write_all(b"{\"message\":\"good\",\"extra\":[1,2]}\n")
        .unwrap();
    drop(s);
    assert!(wait_for(LIMIT, || seen.messages() == ["good"]));
    let mut s = UnixStream::connect(d.socket.as_ref().unwrap()).unwrap();
    let mut big = b"{\"message\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_FRAME * 4));
    big.extend_from_slice(b"\"}\n");
    // The daemon closes the connection at the limit: the rest of the write may fail.
    let _ = s.write_all(&big);
    drop(s);
    assert_eq!(send(&d, "still here"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen.len() == 2));
    let c = d.counts();
    assert_eq!(
        (c.malformed, c.bad_version, c.oversized),
        (1, 1, 1),
        "{c:?}"
    );
}

#[test]
fn a_flood_of_10000_frames_is_bounded_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let inner = seen.sink();
    // A notifier slower than the senders, as a desktop's is.
    let slow = SinkSpec::Func(Arc::new(move |f: &Frame| {
        std::thread::sleep(Duration::from_micros(200));
        if let SinkSpec::Func(g) = &inner {
            g(f)
        }
    }));
    let mut cfg = config(t.path());
    cfg.verbose = false;
    let d = Daemon::start(cfg, slow).unwrap();
    let start = Instant::now();
    let mut s = UnixStream::connect(d.socket.as_ref().unwrap()).unwrap();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend(Frame::new("flood", &format!("n{i}")).encode());
    }
    s.write_all(&batch).unwrap();
    drop(s);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let c = d.counts();
            c.accepted == 10_000 && c.shown + c.queue_full == 10_000
        }),
        "{:?}",
        d.counts()
    );
    let c = d.counts();
    eprintln!(
        "flood: {} shown, {} dropped (queue full) in {:?}",
        c.shown,
        c.queue_full,
        start.elapsed()
    );
    assert!(c.queue_full > 0, "the queue never filled: {c:?}");
    assert_eq!(send(&d, "after the flood"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen
        .messages()
        .last()
        .is_some_and(|m| m == "after the flood")));
}

#[test]
fn a_silent_client_is_closed_and_others_are_served() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = config(t.path());
    cfg.idle_timeout = Duration::from_millis(300);
    let seen = Seen::default();
    let d = Daemon::start(cfg, seen.sink()).unwrap();
    let silent = UnixStream::connect(d.socket.as_ref().unwrap()).unwrap();
    let mut half = UnixStream::connect(d.socket.as_ref().unwrap()).unwrap();
    half.write_all(b"{\"message\":\"never fini").unwrap();
    assert_eq!(send(&d, "meanwhile"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen.messages() == ["meanwhile"]));
    assert!(
        wait_for(LIMIT, || d.counts().idle_closed == 2),
        "{:?}",
        d.counts()
    );
    drop((silent, half));
}

#[test]
fn too_many_connections_are_refused_not_queued() {
    let t = tempfile::tempdir().unwrap();
    let mut cfg = config(t.path());
    cfg.max_connections = 4;
    cfg.idle_timeout = Duration::from_secs(30);
    let seen = Seen::default();
    let d = Daemon::start(cfg, seen.sink()).unwrap();
    let held: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(d.socket.as_ref().unwrap()).unwrap())
        .collect();
    // The fifth is accepted and closed at once.
    let _ = send(&d, "over the limit");
    assert!(wait_for(LIMIT, || d.counts().too_many_connections >= 1));
    drop(held);
    assert!(wait_for(LIMIT, || send(&d, "room again") == Outcome::Sent
        && seen.messages().contains(&"room again".to_owned())));
}

#[test]
fn daemon_restart_mid_stream() {
    let t = tempfile::tempdir().unwrap();
    let (a, seen_a) = daemon(t.path());
    let path = a.socket.clone().unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    s.write_all(b"{\"message\":\"half a fr").unwrap();
    assert_eq!(send(&a, "before"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen_a.messages() == ["before"]));
    a.stop();
    // Nobody listens: the client gives up quickly and does not fail.
    let start = Instant::now();
    let out = client::send(
        &Frame::new("t", "gap"),
        &Target::Unix(path.clone()),
        client::TIMEOUT,
    );
    assert!(matches!(out, Outcome::NoDaemon(_)), "{out:?}");
    assert!(start.elapsed() < client::TIMEOUT);
    // The old stream is dead; writing to it errors instead of hanging.
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = s.write_all(b"me\"}\n");
    // A new daemon takes over the same path.
    let (b, seen_b) = daemon(t.path());
    assert_eq!(b.socket.as_ref(), Some(&path));
    assert_eq!(send(&b, "after"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen_b.messages() == ["after"]));
    // A second daemon on a live socket is refused, and the first keeps serving.
    assert!(Daemon::start(config(t.path()), Seen::default().sink()).is_err());
    assert_eq!(send(&b, "still b"), Outcome::Sent);
    assert!(wait_for(LIMIT, || seen_b.len() == 2));
}
