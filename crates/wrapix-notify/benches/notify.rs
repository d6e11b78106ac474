//! `cargo bench -p wrapix-notify`: end-to-end latency from the client's send (what
//! `wrapix notify` does after parsing its arguments) to the notifier being called, and the
//! frames per second the daemon sustains. The notifier is a function that records the time, so
//! the numbers are wrapix's own cost, not the desktop's. `bench/notify.sh` adds the whole
//! `wrapix notify` process (hyperfine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use wrapix_notify::client::{self, Outcome, Target};
use wrapix_notify::daemon::{Config, Daemon};
use wrapix_notify::sink::SinkSpec;
use wrapix_notify::Frame;

fn config(dir: &std::path::Path, queue: usize) -> Config {
    let mut cfg = Config::from_env(&Default::default());
    cfg.socket = Some(dir.join("notify.sock"));
    cfg.sessions_dir = dir.join("sessions");
    cfg.queue = queue;
    cfg.report_every = Duration::from_secs(3600);
    cfg
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn latency(focus_check: bool) {
    let t = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<Instant>();
    let tx = std::sync::Mutex::new(tx);
    let sink = SinkSpec::Func(Arc::new(move |_: &Frame| {
        let _ = tx.lock().unwrap().send(Instant::now());
    }));
    let mut cfg = config(t.path(), 256);
    cfg.always = !focus_check;
    let d = Daemon::start(cfg, sink).unwrap();
    // The name sandboxes connect to (through their mount of the folder).
    let target = Target::Unix(d.published.clone().unwrap());
    let mut frame = Frame::new("bench", "latency");
    frame.session_id = Some("bench-session".into());
    let mut samples = Vec::new();
    for i in 0..2100 {
        let start = Instant::now();
        assert_eq!(
            client::send(&frame, &target, client::TIMEOUT),
            Outcome::Sent
        );
        let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        if i >= 100 {
            samples.push(got - start);
        }
    }
    samples.sort();
    println!(
        "latency send -> notifier ({}, {} runs): median {:?}, p99 {:?}, max {:?}",
        if focus_check {
            "with a focus check"
        } else {
            "WRAPIX_NOTIFY_ALWAYS=1"
        },
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

fn throughput(connections: usize) {
    const N: usize = 100_000;
    let t = tempfile::tempdir().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s2 = seen.clone();
    let sink = SinkSpec::Func(Arc::new(move |_: &Frame| {
        s2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }));
    // A queue as large as the run, so nothing is dropped and the rate is what is shown.
    let mut cfg = config(t.path(), N);
    cfg.always = true;
    let d = Daemon::start(cfg, sink).unwrap();
    let path = d.socket.clone().unwrap();
    let per = N / connections;
    let line = Frame::new("bench", "throughput").encode();
    let start = Instant::now();
    let writers: Vec<_> = (0..connections)
        .map(|_| {
            let (path, line) = (path.clone(), line.clone());
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&path).unwrap();
                let batch: Vec<u8> = line.repeat(100);
                for _ in 0..per / 100 {
                    s.write_all(&batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = d.counts();
        if c.accepted as usize >= per * connections
            && (c.shown + c.queue_full) as usize >= per * connections
        {
            break;
        }
        assert!(Instant::now() < deadline, "{c:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let c = d.counts();
    println!(
        "throughput ({connections} connection(s), {} frames): {:.0} frames/s end to end, {} dropped",
        per * connections,
        c.shown as f64 / secs,
        c.dropped()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    latency(false);
    latency(true);
    throughput(1);
    throughput(8);
}
