//! Egress policy (`network = { allow = [...], deny = [...] }`): the sandbox has its own network
//! namespace with loopback only, and one way out, wrapix's proxy on the host.
//!
//! ```text
//! sandbox: tool ──HTTP(S)_PROXY──▶ 127.0.0.1:3128 (init's relay, relay.rs)
//!              ──▶ /run/wrapix/egress/proxy.sock (bind mount of the run's private folder)
//! host:    proxy.rs (a thread of the wrapix process running the sandbox): decide on the name
//!          asked for, resolve it here, refuse private/loopback/own addresses no rule names,
//!          check the TLS SNI against the CONNECT host, connect, log one JSON line (log.rs)
//! ```
//! A tool that ignores the proxy variables reaches nothing: there is no route and no DNS
//! server inside. The proxy is started before the sandbox and stops when [`Proxy`] is dropped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wrapix_spec::{Egress, MountMode, SandboxPath};

use crate::error::SandboxError;
use crate::prepare::Bind;

pub mod addr;
pub mod log;
pub mod proxy;
pub mod relay;
pub mod sni;

/// The loopback port of the relay inside the sandbox.
pub const PORT: u16 = 3128;
/// The folder of the proxy's socket, inside the sandbox.
pub const SANDBOX_DIR: &str = "/run/wrapix/egress";
/// The proxy's socket, inside the sandbox; the init relays to it when this variable names it.
pub const SANDBOX_SOCKET: &str = "/run/wrapix/egress/proxy.sock";
/// The variable that tells the init to start the relay.
pub const SOCKET_ENV: &str = "WRAPIX_EGRESS_SOCKET";
/// Host-side, for tests: `name=address[,name=address…]` resolved without DNS (the address
/// checks still apply). Read from the environment of the `wrapix` process, which the sandbox
/// cannot set.
pub const HOSTS_ENV: &str = "WRAPIX_EGRESS_HOSTS";

/// The running proxy; stops (and its socket goes) when dropped.
#[derive(Debug)]
pub struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the sandbox gets: the socket's folder and the proxy variables.
pub fn provide(out: &mut crate::forward::Provided, dir: &Path) {
    out.binds.push(Bind {
        source: dir.to_owned(),
        dest: SandboxPath::from_static(SANDBOX_DIR),
        mode: MountMode::ReadOnly,
    });
    let url = format!("http://127.0.0.1:{PORT}");
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
    ] {
        out.env.insert(k.into(), url.clone());
    }
    for k in ["NO_PROXY", "no_proxy"] {
        out.env.insert(k.into(), "localhost,127.0.0.1,::1".into());
    }
    // Node 24+ honours the variables in fetch() only when asked.
    out.env.insert("NODE_USE_ENV_PROXY".into(), "1".into());
    out.env.insert(SOCKET_ENV.into(), SANDBOX_SOCKET.into());
    out.egress = true;
}

/// `WRAPIX_EGRESS_HOSTS`.
pub fn hosts_override(env: &BTreeMap<String, String>) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for pair in env
        .get(HOSTS_ENV)
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        let Some((name, addr)) = pair.split_once('=') else {
            continue;
        };
        if let (Some(wrapix_spec::Host::Name(n)), Ok(a)) = (
            wrapix_spec::egress::normalise_host(name.trim()),
            addr.trim().parse(),
        ) {
            out.entry(n).or_default().push(a);
        }
    }
    out
}

/// Binds the proxy's socket at `dir/proxy.sock` and serves it on a thread of its own, logging
/// to `log_path`. Returns once the socket accepts connections.
pub fn start(
    egress: &Egress,
    sandbox: &str,
    dir: &Path,
    log_path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Proxy, SandboxError> {
    let fail = |what: String, e: std::io::Error| SandboxError::Network {
        detail: format!("egress proxy: {what}: {e}"),
        fix: "check that the folder is writable, or run with --network none".into(),
    };
    let log = log::Log::open(log_path)
        .map_err(|e| fail(format!("open the log {}", log_path.display()), e))?;
    let sock: PathBuf = dir.join("proxy.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock)
        .map_err(|e| fail(format!("bind {}", sock.display()), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail("set the socket non-blocking".into(), e))?;
    let shared = Arc::new(proxy::Shared {
        egress: egress.clone(),
        sandbox: sandbox.to_owned(),
        log,
        own: addr::own(),
        hosts: hosts_override(env),
        notify: egress.notify_denied.then(|| denied_notifier(env)),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail("start its runtime".into(), e))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("egress-proxy".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::UnixListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("egress proxy: {e}");
                        return;
                    }
                };
                tokio::select! {
                    _ = proxy::serve(listener, shared) => {}
                    _ = stopped => {}
                }
            });
        })
        .map_err(|e| fail("start its thread".into(), e))?;
    Ok(Proxy {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// `[network] notify_denied`: a desktop notification through `wrapix notifyd` for a denied
/// request, at most one every 10 s and 20 per run (the sandbox decides how many requests are
/// denied: it must not flood the desktop), sent from a thread of its own so the proxy never
/// waits for the daemon. Without a daemon the log still has every decision.
fn denied_notifier(env: &BTreeMap<String, String>) -> proxy::Notify {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    let target = wrapix_notify::client::Target::Unix(wrapix_notify::paths::host_socket(env));
    let state: Mutex<(u32, Option<Instant>)> = Mutex::new((0, None));
    Arc::new(move |sandbox: &str, message: &str| {
        let Ok(mut s) = state.lock() else { return };
        let now = Instant::now();
        if s.0 >= 20
            || s.1
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            return;
        }
        s.0 += 1;
        s.1 = Some(now);
        let frame = wrapix_notify::frame::Frame::new(
            &format!("wrapix: {sandbox}"),
            &wrapix_spec::error::escape_controls(message),
        );
        let target = target.clone();
        let _ = std::thread::Builder::new()
            .name("egress-notify".into())
            .spawn(move || {
                let _ = wrapix_notify::client::send(&frame, &target, Duration::from_secs(2));
            });
    })
}
