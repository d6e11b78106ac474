//! `wrapix manager`: the state folder (0700, this user's), its lock, the token, the two
//! doors, the watcher, and a clean stop on SIGTERM/SIGINT that leaves the sessions running.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, UnixListener};

use crate::auth::{Door, Peer};
use crate::service::{Config, Launcher, Manager};

/// What `wrapix manager` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: Option<SocketAddr>,
    pub state_dir: PathBuf,
    pub roots: Vec<PathBuf>,
    pub static_dir: Option<PathBuf>,
}

/// The socket's file name in the state folder.
pub const SOCKET: &str = "manager.sock";
pub const TOKEN: &str = "token";

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, UnixListener>) -> Self {
        Peer {
            uid: s.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

/// Creates `path` 0700 if missing; refuses one that is not this user's private folder.
pub fn private_dir(path: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => {}
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    }
    let m = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let uid = nix::unistd::geteuid().as_raw();
    if !m.is_dir() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} must be a folder of this user's that nobody else can read (mode 0700): fix it with `chmod 700`, or choose another --state-dir",
            path.display()
        ));
    }
    Ok(())
}

/// `DIR/token`: 256 random bits as hex, created once (0600), then only read.
pub fn token(dir: &Path) -> Result<String, String> {
    let path = dir.join(TOKEN);
    match std::fs::symlink_metadata(&path) {
        Ok(m) => {
            let uid = nix::unistd::geteuid().as_raw();
            if !m.is_file() || m.uid() != uid || m.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "{} must be a file of this user's with mode 0600; remove it to make a new token",
                    path.display()
                ));
            }
            let t = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let t = t.trim().to_owned();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{} does not hold a token (64 hex digits): remove it to make a new one",
                    path.display()
                ));
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
            let t: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let tmp = dir.join(".token.tmp");
            let _ = std::fs::remove_file(&tmp);
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(format!("{t}\n").as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(t)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// One manager per state folder: an exclusive lock on `DIR/manager.lock`, held while it runs.
pub fn lock(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    let path = dir.join("manager.lock");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        format!(
            "another wrapix manager runs with the state folder {} (stop it first)",
            dir.display()
        )
    })
}

/// Binds `DIR/manager.sock` (0600), replacing a stale socket no manager answers on.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("a manager already answers on {}", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale {}: {e}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    Ok(l)
}

/// The longest path a Unix socket address holds (Linux: 108 bytes with the final NUL).
const SOCKET_PATH_MAX: usize = 107;

/// Refuses a state folder whose sessions' tmux sockets (`DIR/tmux/UUID.sock`) would not fit
/// a socket address: found at start, not as a failed session after each create.
fn check_socket_room(state_dir: &Path) -> Result<(), String> {
    let longest = state_dir
        .join("tmux")
        .join("00000000-0000-0000-0000-000000000000.sock");
    let len = longest.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(format!(
            "the state folder {} is too long: a session's tmux socket there ({len} bytes) would not fit a Unix socket address ({SOCKET_PATH_MAX} bytes); give a shorter --state-dir (or MANAGER_STATE_DIR)",
            state_dir.display()
        ));
    }
    Ok(())
}

/// The manager of `opts.state_dir`, opened (locked, reconciled) but not serving.
pub fn open(
    opts: &Options,
    launcher: Arc<dyn Launcher>,
) -> Result<(Arc<Manager>, nix::fcntl::Flock<std::fs::File>), String> {
    check_socket_room(&opts.state_dir)?;
    private_dir(&opts.state_dir)?;
    let lock = lock(&opts.state_dir)?;
    let token = token(&opts.state_dir)?;
    let cfg = Config {
        state_dir: opts.state_dir.clone(),
        roots: opts.roots.clone(),
        uid: nix::unistd::geteuid().as_raw(),
        listen: opts.listen,
        token,
        static_dir: opts.static_dir.clone(),
    };
    let mgr = Arc::new(Manager::new(cfg, launcher)?);
    mgr.reconcile().map_err(|e| e.to_string())?;
    Ok((mgr, lock))
}

/// `wrapix manager --stop-all`.
pub fn stop_all(opts: &Options, launcher: Arc<dyn Launcher>) -> Result<usize, String> {
    check_socket_room(&opts.state_dir)?;
    private_dir(&opts.state_dir)?;
    let cfg = Config {
        state_dir: opts.state_dir.clone(),
        roots: opts.roots.clone(),
        uid: nix::unistd::geteuid().as_raw(),
        listen: None,
        token: String::new(),
        static_dir: None,
    };
    let mgr = Manager::new(cfg, launcher)?;
    mgr.stop_all().map_err(|e| e.to_string())
}

/// Serves until SIGTERM or SIGINT; the sessions keep running.
pub fn run(opts: Options, launcher: Arc<dyn Launcher>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(serve(opts, launcher))
}

async fn serve(opts: Options, launcher: Arc<dyn Launcher>) -> Result<(), String> {
    let o = opts.clone();
    let (mgr, _lock) = tokio::task::spawn_blocking(move || open(&o, launcher))
        .await
        .map_err(|e| e.to_string())??;
    let sock_path = opts.state_dir.join(SOCKET);
    let unix = bind_socket(&sock_path)?;
    // For `wrapix remote ui`: where the TCP door is (absent: none).
    let listen_file = opts.state_dir.join("listen");
    match opts.listen {
        Some(a) => {
            let tmp = opts.state_dir.join(".listen.tmp");
            std::fs::write(&tmp, format!("{a}\n"))
                .and_then(|()| std::fs::rename(&tmp, &listen_file))
                .map_err(|e| format!("cannot write {}: {e}", listen_file.display()))?;
        }
        None => {
            let _ = std::fs::remove_file(&listen_file);
        }
    }
    eprintln!("wrapix manager: listening on {}", sock_path.display());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let app = crate::api::router(mgr.clone(), Door::Socket);
    let rx = stop_rx.clone();
    tasks.spawn(async move {
        axum::serve(unix, app.into_make_service_with_connect_info::<Peer>())
            .with_graceful_shutdown(shutdown(rx))
            .await
            .map_err(|e| format!("the socket door failed: {e}"))
    });
    if let Some(addr) = opts.listen {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        eprintln!(
            "wrapix manager: listening on http://{addr} (log in at http://{addr}/login?token=TOKEN, the token is in {})",
            opts.state_dir.join(TOKEN).display()
        );
        let app = crate::api::router(mgr.clone(), Door::Tcp);
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            axum::serve(tcp, app)
                .with_graceful_shutdown(shutdown(rx))
                .await
                .map_err(|e| format!("the TCP door failed: {e}"))
        });
    }
    // The watcher: ended sessions become `exited`; screenshots of live sessions now and then.
    let m = mgr.clone();
    let mut rx = stop_rx.clone();
    tasks.spawn(async move {
        let mut tick = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = rx.wait_for(|s| *s) => return Ok(()),
            }
            tick += 1;
            let m2 = m.clone();
            let thumbs = tick.is_multiple_of(30);
            let r = tokio::task::spawn_blocking(move || {
                m2.watch()?;
                if thumbs {
                    for s in m2.list()? {
                        if s.status.is_live() {
                            let _ = crate::screenshot::latest(&m2, &s.id, Duration::from_secs(20));
                        }
                    }
                }
                Ok::<_, crate::ApiError>(())
            })
            .await;
            if let Ok(Err(e)) = r {
                tracing::warn!("watching the sessions: {e}");
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut result = Ok(());
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        Some(r) = tasks.join_next() => {
            result = r.map_err(|e| e.to_string()).and_then(|r| r);
        }
    }
    eprintln!("wrapix manager: stopping; the sessions keep running (`wrapix manager --stop-all` ends them)");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let _ = std::fs::remove_file(&sock_path);
    result
}

/// `--print-systemd-unit`: a hardened user unit running `exe manager` with these options.
pub fn systemd_unit(exe: &Path, args: &[String]) -> String {
    let mut cmd = vec![exe.display().to_string(), "manager".to_owned()];
    cmd.extend(args.iter().cloned());
    // systemd's own quoting: each word in double quotes, \ and " escaped, % doubled.
    let quoted: Vec<String> = cmd
        .iter()
        .map(|a| {
            format!(
                "\"{}\"",
                a.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('%', "%%")
            )
        })
        .collect();
    format!(
        "# ~/.config/systemd/user/wrapix-manager.service\n\
         [Unit]\n\
         Description=wrapix manager (agent sessions in sandboxes)\n\
         After=default.target\n\
         \n\
         [Service]\n\
         ExecStart={}\n\
         # SIGTERM leaves the sessions running; `wrapix manager --stop-all` ends them.\n\
         KillMode=process\n\
         Restart=on-failure\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ReadWritePaths=%h %t /tmp\n\
         PrivateDevices=no\n\
         ProtectKernelTunables=yes\n\
         ProtectKernelModules=yes\n\
         ProtectControlGroups=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         UMask=0077\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        quoted.join(" ")
    )
}
