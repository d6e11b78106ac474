//! `wrapix notifyd`: accept frames, decide on focus, show them.
//!
//! ```text
//! Unix socket (peer UID checked) ─┐                      ┌─► focus::decide ─► Sink::show
//! TCP (explicit address only) ────┴─► connection tasks ──┤ bounded queue (drops when full)
//!                                     (16 KiB lines,     └─ one delivery task
//!                                      5 s idle limit)
//! ```
//!
//! The socket is also published for sandboxes as a hard link in its own folder (see
//! [`crate::publish`]); on shutdown the daemon removes both names if they are still its own.
//!
//! Nothing a client sends can stop the daemon: bad frames, oversized lines, silent clients,
//! floods and other users are dropped and counted, and what was dropped is logged (each reason
//! at once up to a budget, then as a summary every second).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::focus::{self, Decision};
use crate::frame::{Frame, FrameError, MAX_FRAME};
use crate::publish::{self, FileId};
use crate::sink::{Sink, SinkSpec};
use crate::{paths, session, NotifyError};

/// Daemon settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Unix socket (created in a 0700 folder, and published for sandboxes in
    /// [`paths::published_dir`] of it); `None` for TCP only.
    pub socket: Option<PathBuf>,
    /// A TCP address for VM backends; never an unspecified (all-interfaces) address.
    pub tcp: Option<SocketAddr>,
    pub sessions_dir: PathBuf,
    /// `WRAPIX_NOTIFY_ALWAYS=1`: never suppress.
    pub always: bool,
    /// `WRAPIX_NOTIFY_VERBOSE=1`: log every decision at `info` (shown by default) instead of
    /// `debug`.
    pub verbose: bool,
    /// Frames waiting to be shown; more are dropped.
    pub queue: usize,
    /// A connection that completes no line within this time is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub report_every: Duration,
}

impl Config {
    /// Defaults from the environment (`XDG_RUNTIME_DIR`, `WRAPIX_NOTIFY_ALWAYS`, …).
    pub fn from_env(env: &BTreeMap<String, String>) -> Config {
        let flag = |k: &str| env.get(k).is_some_and(|v| v == "1" || v == "true");
        Config {
            socket: Some(paths::host_socket(env)),
            tcp: None,
            sessions_dir: paths::sessions_dir(env),
            always: flag("WRAPIX_NOTIFY_ALWAYS"),
            verbose: flag("WRAPIX_NOTIFY_VERBOSE"),
            queue: 256,
            idle_timeout: Duration::from_secs(5),
            max_connections: 64,
            report_every: Duration::from_secs(1),
        }
    }
}

/// Counters, readable while the daemon runs.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub shown: AtomicU64,
    pub suppressed: AtomicU64,
    pub failed: AtomicU64,
    pub malformed: AtomicU64,
    pub oversized: AtomicU64,
    pub bad_version: AtomicU64,
    pub queue_full: AtomicU64,
    pub rejected_peer: AtomicU64,
    pub idle_closed: AtomicU64,
    pub too_many_connections: AtomicU64,
    /// Immediate drop log lines left in this reporting period.
    log_budget: AtomicU64,
}

/// A copy of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub shown: u64,
    pub suppressed: u64,
    pub failed: u64,
    pub malformed: u64,
    pub oversized: u64,
    pub bad_version: u64,
    pub queue_full: u64,
    pub rejected_peer: u64,
    pub idle_closed: u64,
    pub too_many_connections: u64,
}

const LOG_BUDGET: u64 = 5;

impl Stats {
    pub fn counts(&self) -> Counts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            accepted: g(&self.accepted),
            shown: g(&self.shown),
            suppressed: g(&self.suppressed),
            failed: g(&self.failed),
            malformed: g(&self.malformed),
            oversized: g(&self.oversized),
            bad_version: g(&self.bad_version),
            queue_full: g(&self.queue_full),
            rejected_peer: g(&self.rejected_peer),
            idle_closed: g(&self.idle_closed),
            too_many_connections: g(&self.too_many_connections),
        }
    }

    /// Counts a drop and logs it while the budget lasts.
    fn drop_one(&self, counter: &AtomicU64, what: std::fmt::Arguments<'_>) {
        counter.fetch_add(1, Ordering::Relaxed);
        let left = self
            .log_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1));
        if left.is_ok() {
            tracing::warn!("dropped: {what}");
        }
    }
}

impl Counts {
    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.oversized
            + self.bad_version
            + self.queue_full
            + self.rejected_peer
            + self.idle_closed
            + self.too_many_connections
    }

    /// "3 malformed, 1 oversized" for the counts that grew since `before`.
    fn drop_summary(&self, before: &Counts) -> String {
        let parts = [
            (self.malformed - before.malformed, "malformed frame(s)"),
            (self.oversized - before.oversized, "oversized frame(s)"),
            (
                self.bad_version - before.bad_version,
                "frame(s) of another version",
            ),
            (
                self.queue_full - before.queue_full,
                "frame(s) over the queue limit (senders faster than the notifier)",
            ),
            (
                self.rejected_peer - before.rejected_peer,
                "connection(s) from another user",
            ),
            (
                self.idle_closed - before.idle_closed,
                "silent connection(s) closed",
            ),
            (
                self.too_many_connections - before.too_many_connections,
                "connection(s) over the limit",
            ),
        ];
        parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A daemon running on its own threads (tests, benchmarks; `notifyd` uses [`run`]).
pub struct Daemon {
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub socket: Option<PathBuf>,
    /// The socket's name for sandboxes (`notify.d/notify.sock` beside it).
    pub published: Option<PathBuf>,
    pub tcp: Option<SocketAddr>,
}

impl Daemon {
    /// Binds the listeners and connects the sink before returning, so the daemon is ready
    /// when this returns.
    pub fn start(cfg: Config, sink: SinkSpec) -> Result<Daemon, NotifyError> {
        let listeners = Listeners::bind(&cfg)?;
        Self::start_on(cfg, sink, listeners)
    }

    /// Like [`Daemon::start`], on listeners the caller bound.
    pub fn start_on(
        cfg: Config,
        sink: SinkSpec,
        listeners: Listeners,
    ) -> Result<Daemon, NotifyError> {
        let stats = Arc::new(Stats::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let socket = listeners.unix_path.clone();
        let published = listeners.published.clone();
        let tcp = listeners.tcp_addr;
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wrapix-notifyd".into())
            .spawn(move || {
                let rt = match runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let stop = async {
                        let _ = stop_rx.await;
                    };
                    if let Err(e) = serve(cfg, sink, listeners, st, Some(ready_tx), stop).await {
                        tracing::error!("{e}");
                    }
                });
            })
            .map_err(|e| NotifyError::io("start the daemon thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Daemon {
                stats,
                stop: Some(stop_tx),
                thread: Some(thread),
                socket,
                published,
                tcp,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(NotifyError::Sink(
                    "the daemon stopped while starting".into(),
                ))
            }
        }
    }

    pub fn counts(&self) -> Counts {
        self.stats.counts()
    }

    /// Stops accepting, removes the socket and its published link, and waits for the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, NotifyError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NotifyError::io("start the async runtime", e))
}

/// Runs in the foreground until SIGINT or SIGTERM (`wrapix notifyd`).
pub fn run(cfg: Config, sink: SinkSpec) -> Result<(), NotifyError> {
    let listeners = Listeners::bind(&cfg)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => {
                    tokio::select! {
                        _ = i.recv() => {}
                        _ = t.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        serve(cfg, sink, listeners, Arc::new(Stats::default()), None, stop).await
    })
}

/// Bound, not yet serving, listeners.
pub struct Listeners {
    unix: Option<std::os::unix::net::UnixListener>,
    unix_path: Option<PathBuf>,
    /// The inode bound at `unix_path`: only names of it are removed on shutdown.
    unix_id: Option<FileId>,
    published: Option<PathBuf>,
    tcp: Option<std::net::TcpListener>,
    tcp_addr: Option<SocketAddr>,
}

impl Listeners {
    pub fn bind(cfg: &Config) -> Result<Listeners, NotifyError> {
        let mut l = Listeners {
            unix: None,
            unix_path: None,
            unix_id: None,
            published: None,
            tcp: None,
            tcp_addr: None,
        };
        // TCP first: a refused address leaves no socket file behind.
        if let Some(addr) = cfg.tcp {
            if addr.ip().is_unspecified() {
                return Err(NotifyError::Invalid(format!(
                    "refusing to listen on {addr}: that is every interface. Give the host-side \
                     address of the VM network (e.g. the bridge or gateway address)"
                )));
            }
            let t = std::net::TcpListener::bind(addr)
                .map_err(|e| NotifyError::io(format!("listen on {addr}"), e))?;
            l.tcp_addr = t.local_addr().ok();
            l.tcp = Some(t);
        }
        if let Some(path) = &cfg.socket {
            if let Some(dir) = path.parent() {
                paths::private_dir(dir)?;
            }
            let listener = bind_unix(path)?;
            let id = FileId::of(path).ok_or_else(|| {
                NotifyError::Invalid(format!(
                    "{} disappeared right after it was bound",
                    path.display()
                ))
            })?;
            match publish::publish(path, id, &paths::published_dir(path)) {
                Ok(link) => l.published = Some(link),
                Err(e) => {
                    publish::remove_if_ours(path, id);
                    return Err(e);
                }
            }
            l.unix = Some(listener);
            l.unix_path = Some(path.clone());
            l.unix_id = Some(id);
        }
        if l.unix.is_none() && l.tcp.is_none() {
            return Err(NotifyError::Invalid("nothing to listen on".into()));
        }
        Ok(l)
    }

    /// A Unix listener the caller bound itself (tests: a socket other users can reach).
    pub fn from_unix(listener: std::os::unix::net::UnixListener) -> Listeners {
        Listeners {
            unix_path: None,
            unix_id: None,
            published: None,
            unix: Some(listener),
            tcp: None,
            tcp_addr: None,
        }
    }
}

/// Binds `path`; a socket left by a daemon that is gone is replaced, a live one is an error.
fn bind_unix(path: &Path) -> Result<std::os::unix::net::UnixListener, NotifyError> {
    use std::os::unix::net::{UnixListener, UnixStream};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(NotifyError::Insecure {
                path: path.to_owned(),
                problem: "it exists and is not a socket; remove it".into(),
            });
        }
        if UnixStream::connect(path).is_ok() {
            return Err(NotifyError::Invalid(format!(
                "another notification daemon already listens on {}",
                path.display()
            )));
        }
        std::fs::remove_file(path)
            .map_err(|e| NotifyError::io(format!("remove the stale {}", path.display()), e))?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| NotifyError::io(format!("listen on {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| NotifyError::io(format!("chmod {}", path.display()), e))?;
    Ok(l)
}

async fn serve(
    cfg: Config,
    sink: SinkSpec,
    listeners: Listeners,
    stats: Arc<Stats>,
    ready: Option<std::sync::mpsc::Sender<Result<(), NotifyError>>>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NotifyError> {
    let set_up = async {
        let unix = match listeners.unix {
            Some(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| NotifyError::io("configure the socket", e))?;
                Some(
                    tokio::net::UnixListener::from_std(l)
                        .map_err(|e| NotifyError::io("register the socket", e))?,
                )
            }
            None => None,
        };
        let tcp = match listeners.tcp {
            Some(l) => {
                l.set_nonblocking(true)
                    .map_err(|e| NotifyError::io("configure the TCP socket", e))?;
                Some(
                    tokio::net::TcpListener::from_std(l)
                        .map_err(|e| NotifyError::io("register the TCP socket", e))?,
                )
            }
            None => None,
        };
        let sink = Sink::build(sink).await?;
        Ok::<_, NotifyError>((unix, tcp, sink))
    };
    let listeners_tcp = listeners.tcp_addr;
    let (unix, tcp, sink) = match set_up.await {
        Ok(x) => x,
        Err(e) => {
            remove_names(
                &listeners.unix_path,
                &listeners.published,
                listeners.unix_id,
            );
            if let Some(r) = ready {
                let _ = r.send(Err(e));
                return Ok(());
            }
            return Err(e);
        }
    };
    tracing::info!(
        "listening on {}{}{}; showing with {}{}",
        listeners
            .unix_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "a Unix socket".into()),
        listeners
            .published
            .as_ref()
            .map(|p| format!(" (for sandboxes: {})", p.display()))
            .unwrap_or_default(),
        listeners
            .tcp_addr
            .map(|a| format!(" and tcp {a}"))
            .unwrap_or_default(),
        sink.describe(),
        if cfg.always {
            " (WRAPIX_NOTIFY_ALWAYS=1: never suppressed)"
        } else {
            ""
        }
    );
    if let Some(r) = ready {
        let _ = r.send(Ok(()));
    }
    stats.log_budget.store(LOG_BUDGET, Ordering::Relaxed);

    let (tx, rx) = mpsc::channel::<Frame>(cfg.queue.max(1));
    let delivery = tokio::spawn(deliver(rx, sink, cfg.clone(), stats.clone()));
    let reporter = tokio::spawn(report(stats.clone(), cfg.clone()));
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let me = nix::unistd::geteuid().as_raw();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(conn) = accept_unix(unix.as_ref()) => {
                let (stream, peer) = match conn {
                    Ok(c) => c,
                    Err(e) => { tracing::warn!("accept failed: {e}"); continue; }
                };
                match stream.peer_cred().map(|c| c.uid()) {
                    Ok(uid) if uid == me => {}
                    Ok(uid) => {
                        stats.drop_one(&stats.rejected_peer, format_args!(
                            "a connection from uid {uid} (only uid {me} may send notifications)"));
                        continue;
                    }
                    Err(e) => {
                        stats.drop_one(&stats.rejected_peer, format_args!(
                            "a connection whose user cannot be checked ({e})"));
                        continue;
                    }
                }
                let _ = peer;
                spawn_conn(stream, "a local client".into(), &slots, &tx, &stats, &cfg);
            }
            Some(conn) = accept_tcp(tcp.as_ref()) => {
                match conn {
                    Ok((stream, peer)) => {
                        // Only the VM network's own addresses (the listening address's /24 or
                        // /64): a host that routes to this address from elsewhere is refused.
                        if !listeners_tcp.is_some_and(|l| same_network(l.ip(), peer.ip())) {
                            stats.drop_one(&stats.rejected_peer, format_args!(
                                "a TCP connection from {peer}, outside the listening address's network"));
                            continue;
                        }
                        spawn_conn(stream, format!("tcp {peer}"), &slots, &tx, &stats, &cfg)
                    }
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
            }
        }
    }
    drop(tx);
    reporter.abort();
    delivery.abort();
    remove_names(
        &listeners.unix_path,
        &listeners.published,
        listeners.unix_id,
    );
    Ok(())
}

/// Removes the socket and its published link if they are still the inode this daemon bound
/// (a newer daemon may have replaced them). The folder stays: running sandboxes have it
/// mounted and will see the next daemon's link in it.
fn remove_names(socket: &Option<PathBuf>, published: &Option<PathBuf>, id: Option<FileId>) {
    if let Some(id) = id {
        for name in [published, socket].into_iter().flatten() {
            publish::remove_if_ours(name, id);
        }
    }
}

async fn accept_unix(
    l: Option<&tokio::net::UnixListener>,
) -> Option<std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)>> {
    match l {
        Some(l) => Some(l.accept().await),
        None => std::future::pending().await,
    }
}

/// Whether `peer` is on the network of the listening address `local`: the same /24 (IPv4) or
/// /64 (IPv6), as a VM network's gateway and guests are. Loopback listens take loopback peers.
pub fn same_network(local: std::net::IpAddr, peer: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let peer = match peer {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        p => p,
    };
    match (local, peer) {
        (IpAddr::V4(l), IpAddr::V4(p)) => {
            (l.is_loopback() && p.is_loopback()) || l.octets()[..3] == p.octets()[..3]
        }
        (IpAddr::V6(l), IpAddr::V6(p)) => {
            (l.is_loopback() && p.is_loopback()) || l.segments()[..4] == p.segments()[..4]
        }
        _ => false,
    }
}

async fn accept_tcp(
    l: Option<&tokio::net::TcpListener>,
) -> Option<std::io::Result<(tokio::net::TcpStream, SocketAddr)>> {
    match l {
        Some(l) => Some(l.accept().await),
        None => std::future::pending().await,
    }
}

fn spawn_conn<S: AsyncRead + Unpin + Send + 'static>(
    stream: S,
    peer: String,
    slots: &Arc<Semaphore>,
    tx: &mpsc::Sender<Frame>,
    stats: &Arc<Stats>,
    cfg: &Config,
) {
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        stats.drop_one(
            &stats.too_many_connections,
            format_args!(
                "a connection from {peer}: {} connections are open already",
                cfg.max_connections
            ),
        );
        return;
    };
    let (tx, stats, idle) = (tx.clone(), stats.clone(), cfg.idle_timeout);
    tokio::spawn(async move {
        read_frames(stream, &peer, &tx, &stats, idle).await;
        drop(permit);
    });
}

enum Line {
    Eof,
    Data,
    TooLong(usize),
}

/// One line into `buf` (without the newline), never holding more than `max` bytes.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::Data
            });
        }
        let (chunk, used, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        if buf.len() + chunk.len() > max {
            let size = buf.len() + chunk.len();
            r.consume(used);
            return Ok(Line::TooLong(size));
        }
        buf.extend_from_slice(chunk);
        r.consume(used);
        if done {
            return Ok(Line::Data);
        }
    }
}

async fn read_frames<S: AsyncRead + Unpin>(
    stream: S,
    peer: &str,
    tx: &mpsc::Sender<Frame>,
    stats: &Stats,
    idle: Duration,
) {
    let mut reader = BufReader::with_capacity(8192, stream);
    let mut buf = Vec::with_capacity(512);
    loop {
        buf.clear();
        let line = match tokio::time::timeout(
            idle,
            read_line_bounded(&mut reader, &mut buf, MAX_FRAME),
        )
        .await
        {
            Err(_) => {
                stats.drop_one(
                    &stats.idle_closed,
                    format_args!(
                        "{peer} sent no complete frame for {} s; connection closed",
                        idle.as_secs_f32()
                    ),
                );
                return;
            }
            Ok(Err(_)) | Ok(Ok(Line::Eof)) => return,
            Ok(Ok(Line::TooLong(size))) => {
                stats.drop_one(
                        &stats.oversized,
                        format_args!(
                        "{peer} sent a frame of more than {size} bytes (limit {MAX_FRAME}); connection closed"
                    ),
                    );
                return;
            }
            Ok(Ok(Line::Data)) => &buf,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match Frame::decode(line) {
            Ok(frame) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                match tx.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(f)) => stats.drop_one(
                        &stats.queue_full,
                        format_args!(
                            "{:?} from {peer}: too many notifications are waiting",
                            f.title
                        ),
                    ),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            Err(FrameError::Version(v)) => stats.drop_one(
                &stats.bad_version,
                format_args!("a frame of version {v} from {peer}"),
            ),
            Err(FrameError::Oversized { size }) => stats.drop_one(
                &stats.oversized,
                format_args!("a frame of {size} bytes from {peer}"),
            ),
            Err(e) => stats.drop_one(&stats.malformed, format_args!("{e} (from {peer})")),
        }
    }
}

async fn deliver(mut rx: mpsc::Receiver<Frame>, mut sink: Sink, cfg: Config, stats: Arc<Stats>) {
    while let Some(frame) = rx.recv().await {
        let decision = if cfg.always {
            Decision::show("WRAPIX_NOTIFY_ALWAYS=1")
        } else {
            let dir = cfg.sessions_dir.clone();
            let sid = frame.session_id.clone();
            tokio::task::spawn_blocking(move || decide_for(&dir, sid.as_deref()))
                .await
                .unwrap_or_else(|e| Decision::show(format!("the focus check failed: {e}")))
        };
        let verdict = if decision.suppress {
            "suppress"
        } else {
            "show"
        };
        let session = frame.session_id.as_deref().unwrap_or("none");
        // `WRAPIX_NOTIFY_VERBOSE=1` raises each decision to the level shown by default.
        if cfg.verbose {
            tracing::info!(
                "{verdict} {:?} (session {session}): {}",
                frame.title,
                decision.reason
            );
        } else {
            tracing::debug!(
                "{verdict} {:?} (session {session}): {}",
                frame.title,
                decision.reason
            );
        }
        if decision.suppress {
            stats.suppressed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match sink.show(&frame).await {
            Ok(()) => {
                stats.shown.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{e}");
            }
        }
    }
}

/// The focus decision for a frame's session.
pub fn decide_for(sessions_dir: &Path, session_id: Option<&str>) -> Decision {
    let Some(sid) = session_id else {
        return Decision::show("the frame has no session id");
    };
    match session::lookup(sessions_dir, sid) {
        None => Decision::show(format!("no running session {sid:?} is registered")),
        Some(r) => focus::decide(&r.window, r.tmux.as_ref()),
    }
}

/// Logs what was dropped once per period, and cleans stale session records every minute.
async fn report(stats: Arc<Stats>, cfg: Config) {
    let mut last = stats.counts();
    let mut tick = tokio::time::interval(cfg.report_every);
    let mut last_clean = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = stats.counts();
        if now.dropped() > last.dropped() {
            tracing::warn!(
                "dropped in the last {:.1} s: {} (total dropped {}, shown {}, suppressed {})",
                cfg.report_every.as_secs_f32(),
                now.drop_summary(&last),
                now.dropped(),
                now.shown,
                now.suppressed
            );
        }
        last = now;
        stats.log_budget.store(LOG_BUDGET, Ordering::Relaxed);
        if last_clean.elapsed() >= Duration::from_secs(60) {
            last_clean = tokio::time::Instant::now();
            let dir = cfg.sessions_dir.clone();
            let _ = tokio::task::spawn_blocking(move || session::clean_stale(&dir)).await;
        }
    }
}

#[cfg(test)]
mod same_network_tests {
    use super::same_network;

    #[test]
    fn only_the_listening_networks_peers() {
        let ip = |s: &str| {
            s.parse::<std::net::IpAddr>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(same_network(ip("192.168.64.1"), ip("192.168.64.7")));
        assert!(same_network(ip("192.168.64.1"), ip("::ffff:192.168.64.7")));
        assert!(!same_network(ip("192.168.64.1"), ip("192.168.65.7")));
        assert!(!same_network(ip("192.168.64.1"), ip("10.0.0.1")));
        assert!(same_network(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(same_network(ip("fd00:1:2:3::1"), ip("fd00:1:2:3::99")));
        assert!(!same_network(ip("fd00:1:2:3::1"), ip("fd00:1:2:4::99")));
        assert!(!same_network(ip("fd00:1:2:3::1"), ip("192.168.64.7")));
    }
}
