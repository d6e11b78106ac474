//! Egress policy (`network = { allow = [...], deny = [...] }`): the sandbox has its own network
//! namespace with loopback only, and one way out, wrapix's proxy on the host.
//!
//! ```text
//! sandbox: tool ──HTTP(S)_PROXY (http://), ALL_PROXY (socks5h://)──▶ 127.0.0.1:3128
//!              (init's relay, relay.rs) ──▶ /run/wrapix/egress/proxy.sock (bind mount of the
//!              run's private folder)
//! host:    proxy.rs (a thread of the wrapix process running the sandbox; SOCKS5 in socks.rs):
//!          decide on the name asked for, resolve it here, refuse private/loopback/own
//!          addresses no rule names, check the TLS SNI against the requested host, connect,
//!          log one JSON line (log.rs); for a `[[network.credentials]]` host, end TLS with a
//!          certificate of the user's CA (ca.rs) and set the header (mitm.rs)
//! ```
//! A tool that ignores the proxy variables reaches nothing: there is no route and no DNS
//! server inside. The proxy is started before the sandbox and stops when [`Proxy`] is dropped.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::{path::PathBuf, sync::Arc};

#[cfg(target_os = "linux")]
use wrapix_spec::Egress;
use wrapix_spec::{MountMode, SandboxPath};

#[cfg(target_os = "linux")]
use crate::error::SandboxError;
use crate::prepare::Bind;

#[cfg(target_os = "linux")]
pub mod addr;
#[cfg(target_os = "linux")]
pub mod ca;
pub mod log;
#[cfg(target_os = "linux")]
pub mod mitm;
#[cfg(target_os = "linux")]
pub mod proxy;
#[cfg(target_os = "linux")]
pub mod relay;
#[cfg(target_os = "linux")]
pub mod sni;
#[cfg(target_os = "linux")]
pub mod socks;
#[cfg(target_os = "linux")]
pub mod stream;

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

/// Where the CA certificate of credential injection appears inside the sandbox (alone).
pub const SANDBOX_CA: &str = "/run/wrapix/egress-ca.pem";
/// The sandbox's CA bundle: its system bundle plus the CA; also mounted over
/// [`SYSTEM_BUNDLE`], so that tools which ignore the variables trust it too.
pub const SANDBOX_BUNDLE: &str = "/run/wrapix/ca-bundle.pem";
/// The system bundle of Debian-like roots (the images wrapix builds, and the host's).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Variables that name a CA bundle, for the tools that read them (whole bundles, not extras).
const BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "PIP_CERT",
    "npm_config_cafile",
    "AWS_CA_BUNDLE",
    "DENO_CERT",
];

/// The running proxy; stops (and its socket goes) when dropped.
#[derive(Debug)]
pub struct Proxy {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The CA certificate (PEM) when credentials are injected: what the sandbox trusts.
    pub ca_pem: Option<String>,
    /// The secrets of the credentials, for the check that none reaches the sandbox.
    pub secrets: Secrets,
}

/// Secrets the sandbox must never get (compared with its environment before it starts).
/// Printed as a count only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub Vec<(String, String)>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

impl Secrets {
    /// The first variable of `env` whose value holds a secret, with the credential's host. A
    /// secret shorter than 8 characters counts only as the whole value (as a part it would
    /// match by chance).
    pub fn leaked_in<'a>(&self, env: &'a BTreeMap<String, String>) -> Option<(&'a str, &str)> {
        env.iter().find_map(|(k, v)| {
            self.0
                .iter()
                .find(|(_, s)| v == s || (s.len() >= 8 && v.contains(s.as_str())))
                .map(|(host, _)| (k.as_str(), host.as_str()))
        })
    }
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

/// What the sandbox gets: the socket's folder and the proxy variables; with credentials, the
/// CA certificate (`ca_pem`) and the variables that make tools trust it ([`crate::prepare`]
/// writes the bundle, from the sandbox's own system bundle).
pub fn provide(out: &mut crate::forward::Provided, dir: &Path, ca_pem: Option<&str>) {
    out.binds.push(Bind {
        source: dir.to_owned(),
        dest: SandboxPath::from_static(SANDBOX_DIR),
        mode: MountMode::ReadOnly,
    });
    let url = format!("http://127.0.0.1:{PORT}");
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "npm_config_proxy",
        "npm_config_https_proxy",
    ] {
        out.env.insert(k.into(), url.clone());
    }
    // The same listener speaks SOCKS5 (told apart by the first byte); `h`: names are
    // resolved by the proxy.
    for k in ["ALL_PROXY", "all_proxy"] {
        out.env
            .insert(k.into(), format!("socks5h://127.0.0.1:{PORT}"));
    }
    if let Some(pem) = ca_pem {
        out.egress_ca = Some(pem.to_owned());
        for k in BUNDLE_VARS {
            out.env.insert((*k).into(), SANDBOX_BUNDLE.into());
        }
        // Node (and Claude Code) add this to their own list.
        out.env
            .insert("NODE_EXTRA_CA_CERTS".into(), SANDBOX_CA.into());
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
/// With credentials: the user's CA in `ca_dir` (created on first use), and every secret read
/// now, so that a missing one stops the run before the sandbox starts.
#[cfg(target_os = "linux")]
pub fn start(
    egress: &Egress,
    sandbox: &str,
    dir: &Path,
    log_path: &Path,
    ca_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Proxy, SandboxError> {
    let mut injectors = Vec::new();
    let mut secrets = Secrets::default();
    let mut ca_pem = None;
    if !egress.credentials.is_empty() {
        let ca = ca::load_or_create(ca_dir)?;
        for c in &egress.credentials {
            secrets.0.push((c.host.clone(), mitm::secret(c, env)?));
            injectors.push(Arc::new(mitm::Injector::new(c, env, &ca)?));
        }
        ca_pem = Some(ca.cert_pem.clone());
    }
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
        injectors,
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
                proxy::serve(listener, shared, stopped).await;
            });
        })
        .map_err(|e| fail("start its thread".into(), e))?;
    Ok(Proxy {
        stop: Some(stop),
        thread: Some(thread),
        ca_pem,
        secrets,
    })
}

/// `[network] notify_denied`: a desktop notification through `wrapix notifyd` for a denied
/// request, at most one every 10 s and 20 per run (the sandbox decides how many requests are
/// denied: it must not flood the desktop), sent from a thread of its own so the proxy never
/// waits for the daemon. Without a daemon the log still has every decision.
#[cfg(target_os = "linux")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_the_environment_is_found_and_named() {
        let s = Secrets(vec![
            ("api.example".into(), "sk-0123456789".into()),
            ("short.example".into(), "abc".into()),
        ]);
        let env = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            s.leaked_in(&env("KEY", "Bearer sk-0123456789")),
            Some(("KEY", "api.example"))
        );
        assert_eq!(s.leaked_in(&env("K", "abc")), Some(("K", "short.example")));
        assert_eq!(s.leaked_in(&env("PATH", "/usr/abc/bin")), None);
        assert_eq!(s.leaked_in(&env("K", "placeholder")), None);
        assert_eq!(format!("{s:?}"), "Secrets(2 hidden)");
    }
}
