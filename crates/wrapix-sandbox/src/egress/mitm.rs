//! Credential injection (`[[network.credentials]]`): for a tunnel to a credential's host and
//! port (and only there) the proxy ends the sandbox's TLS with a certificate its per-user CA
//! signed ([`super::ca`]), reads each HTTP/1.1 request (hyper: keep-alive, chunked bodies,
//! `Expect`), sets the header to the secret, and sends the request on over TLS that verifies
//! the real server (the system's roots, plus `ca_file`). Only `http/1.1` is offered in ALPN,
//! so a client that insists on HTTP/2 fails its handshake instead of bypassing the header.
//!
//! The secret is read on the host when the proxy starts; the sandbox never holds it. A
//! request whose `Host` names another site is refused (421): on a shared front end it would
//! carry the secret to that site.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{Either, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wrapix_spec::egress::{Credential, SecretSource};

use super::ca::Ca;
use crate::error::SandboxError;

const TLS_TIMEOUT: Duration = Duration::from_secs(15);
/// A secret file is a token, not a document.
const SECRET_LIMIT: u64 = 64 * 1024;

impl Injector {
    /// The header it sets (for the log).
    pub fn header_name(&self) -> &str {
        self.header.as_str()
    }
}

/// What the proxy needs for one credential host; the secret only in `value`.
pub struct Injector {
    pub host: String,
    pub port: u16,
    header: HeaderName,
    /// `prefix` + the secret, marked sensitive.
    value: HeaderValue,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Injector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injector")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// ring, not aws-lc: no C toolchain beyond cc, a fraction of the build. ring has no hybrid
/// post-quantum key exchange, which rustls now flags as deprecated; the upstream side of a
/// credential tunnel uses classical X25519/ECDHE, like most clients in the sandbox.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad(c: &Credential, field: &str, what: String, fix: impl Into<String>) -> SandboxError {
    SandboxError::Network {
        detail: format!("network.credentials (host {:?}): {field}: {what}", c.host),
        fix: fix.into(),
    }
}

/// The secret of `c`, read on the host: the variable of wrapix's own environment, or the
/// file's text without surrounding white space. Missing or empty is an error naming the field.
pub fn secret(c: &Credential, env: &BTreeMap<String, String>) -> Result<String, SandboxError> {
    match &c.source {
        SecretSource::Env(name) => env
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                bad(
                    c,
                    "from_env",
                    format!("the variable {name} is not set (or empty) in wrapix's environment"),
                    format!("export {name}=… before starting wrapix, or use from_file"),
                )
            }),
        SecretSource::File(path) => {
            let read = || -> std::io::Result<String> {
                use std::io::Read;
                let mut s = String::new();
                std::fs::File::open(path)?
                    .take(SECRET_LIMIT + 1)
                    .read_to_string(&mut s)?;
                if s.len() as u64 > SECRET_LIMIT {
                    return Err(std::io::Error::other("larger than 64 KiB"));
                }
                Ok(s.trim().to_owned())
            };
            match read() {
                Ok(s) if !s.is_empty() => Ok(s),
                Ok(_) => Err(bad(
                    c,
                    "from_file",
                    format!("{} is empty", path.display()),
                    "write the secret into it",
                )),
                Err(e) => Err(bad(
                    c,
                    "from_file",
                    format!("cannot read {}: {e}", path.display()),
                    "create the file (chmod 600), or fix the path",
                )),
            }
        }
    }
}

/// The roots the upstream's certificate must chain to: the system's, plus `ca_file`.
fn roots(c: &Credential) -> Result<rustls::RootCertStore, SandboxError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(file) = &c.ca_file {
        let certs = read_certs(file).map_err(|why| {
            bad(
                c,
                "ca_file",
                format!("{}: {why}", file.display()),
                "name a PEM file of CA certificates",
            )
        })?;
        let (_, bad_count) = roots.add_parsable_certificates(certs);
        if bad_count > 0 {
            return Err(bad(
                c,
                "ca_file",
                format!(
                    "{}: {bad_count} certificates are not usable",
                    file.display()
                ),
                "name a PEM file of CA certificates",
            ));
        }
    }
    if roots.is_empty() {
        return Err(bad(
            c,
            "host",
            "no trusted root certificates on this host to verify the server with".into(),
            "install ca-certificates, or set ca_file",
        ));
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read it ({e:?})"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not PEM ({e:?})"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    Ok(certs)
}

impl Injector {
    /// Reads the secret, signs the host's certificate and builds both TLS sides.
    pub fn new(
        c: &Credential,
        env: &BTreeMap<String, String>,
        ca: &Ca,
    ) -> Result<Self, SandboxError> {
        let secret = secret(c, env)?;
        let mut value = HeaderValue::from_str(&format!("{}{secret}", c.prefix)).map_err(|_| {
            bad(
                c,
                "secret",
                "it holds characters a header cannot carry (a line break, a control character)"
                    .into(),
                "store the token alone",
            )
        })?;
        value.set_sensitive(true);
        let header = HeaderName::from_bytes(c.header.as_bytes())
            .map_err(|e| bad(c, "header", e.to_string(), "name a header"))?;
        let internal = |e: String| bad(c, "host", e, "report this bug");
        let (chain, key) = ca.leaf(&c.host).map_err(internal)?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| internal(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| internal(e.to_string()))?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| internal(e.to_string()))?
            .with_root_certificates(roots(c)?)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Injector {
            host: c.host.clone(),
            port: c.port,
            header,
            value,
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// One tunnel's upstream: a connection made on demand (the first one already connected by
/// the proxy), used for one request at a time (HTTP/1.1 on both sides).
struct Upstream {
    inj: Arc<Injector>,
    addrs: Vec<SocketAddr>,
    first: Mutex<Option<TcpStream>>,
    sender: Mutex<Option<SendRequest<Incoming>>>,
    sent: AtomicU64,
    /// Requests answered by the proxy itself (another site's `Host`, an upgrade).
    refused: AtomicU64,
    error: Mutex<Option<String>>,
}

/// How a tunnel with credentials ended: requests sent upstream with the header, and the
/// first failure, if any.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub refused: u64,
    pub error: Option<String>,
}

type Body = Either<Incoming, Full<Bytes>>;

/// Serves the sandbox's side of the tunnel (`client`, its ClientHello already checked)
/// until it closes.
pub async fn serve<S>(
    client: S,
    upstream: TcpStream,
    inj: Arc<Injector>,
    addrs: Vec<SocketAddr>,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(inj.server.clone());
    let tls = match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return Outcome {
                error: Some(format!("TLS with the sandbox's client failed: {e}")),
                ..Outcome::default()
            }
        }
        Err(_) => {
            return Outcome {
                error: Some("TLS with the sandbox's client timed out".into()),
                ..Outcome::default()
            }
        }
    };
    let up = Arc::new(Upstream {
        inj,
        addrs,
        first: Mutex::new(Some(upstream)),
        sender: Mutex::new(None),
        sent: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        error: Mutex::new(None),
    });
    let svc_up = up.clone();
    let service = hyper::service::service_fn(move |req| forward(req, svc_up.clone()));
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
    let mut error = up.error.lock().ok().and_then(|mut e| e.take());
    if let Err(e) = served {
        if !e.is_incomplete_message() && error.is_none() {
            error = Some(format!("HTTP from the sandbox: {e}"));
        }
    }
    Outcome {
        requests: up.sent.load(Ordering::Relaxed),
        refused: up.refused.load(Ordering::Relaxed),
        error,
    }
}

fn reply(code: StatusCode, why: &str) -> Response<Body> {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "wrapix: {why}\n"
    )))));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Hop-by-hop headers, never passed on (and those the `Connection` header names).
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop(h: &mut hyper::HeaderMap) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    for n in HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        h.remove(n);
    }
}

/// Whether a request (its headers and target) is for the credential's own host: one `Host`
/// header and an absolute URL's authority, each the host with no port or the tunnel's port.
fn for_host(headers: &hyper::HeaderMap, uri: &hyper::Uri, host: &str, port: u16) -> bool {
    let names = |a: &str| -> bool {
        let (h, p) = match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        };
        let h = h.strip_suffix('.').unwrap_or(h);
        h.eq_ignore_ascii_case(host) && p.is_none_or(|p| p.parse::<u16>().ok() == Some(port))
    };
    let hosts: Vec<&str> = headers
        .get_all(header::HOST)
        .iter()
        .map(|v| v.to_str().unwrap_or("\0"))
        .collect();
    if hosts.len() > 1 {
        return false;
    }
    hosts.iter().all(|h| names(h))
        && uri.authority().is_none_or(|a| names(a.as_str()))
        && (!hosts.is_empty() || uri.authority().is_some())
}

/// Methods whose answer is the request itself (`TRACE`, and IIS's `TRACK`): with the secret
/// header added, the agent would read it back.
fn echoes_request(m: &hyper::Method) -> bool {
    m == hyper::Method::TRACE || m.as_str().eq_ignore_ascii_case("TRACK")
}

async fn forward(req: Request<Incoming>, up: Arc<Upstream>) -> Result<Response<Body>, Infallible> {
    let inj = &up.inj;
    if !for_host(req.headers(), req.uri(), &inj.host, inj.port) {
        up.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(reply(
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "this tunnel carries a credential for {} only; the request's Host names another site",
                inj.host
            ),
        ));
    }
    if req.headers().contains_key(header::UPGRADE) {
        up.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(reply(
            StatusCode::NOT_IMPLEMENTED,
            "protocol upgrades (WebSocket) are not forwarded to a credential's host",
        ));
    }
    if echoes_request(req.method()) {
        up.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "TRACE and TRACK are not forwarded to a credential's host: the answer echoes the request, secret header included",
        ));
    }
    let (mut parts, body) = req.into_parts();
    strip_hop(&mut parts.headers);
    parts.headers.remove(&inj.header);
    parts.headers.insert(inj.header.clone(), inj.value.clone());
    if !parts.headers.contains_key(header::HOST) {
        let host = if inj.port == 443 {
            inj.host.clone()
        } else {
            format!("{}:{}", inj.host, inj.port)
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            parts.headers.insert(header::HOST, v);
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, "bad request target")),
    };
    parts.version = hyper::Version::HTTP_11;
    let req = Request::from_parts(parts, body);

    let mut sender = match sender(&up).await {
        Ok(s) => s,
        Err(why) => {
            if let Ok(mut e) = up.error.lock() {
                e.get_or_insert_with(|| why.clone());
            }
            return Ok(reply(StatusCode::BAD_GATEWAY, &why));
        }
    };
    up.sent.fetch_add(1, Ordering::Relaxed);
    let res = sender.send_request(req).await;
    if !sender.is_closed() {
        if let Ok(mut s) = up.sender.lock() {
            *s = Some(sender);
        }
    }
    match res {
        Ok(res) => {
            let (mut parts, body) = res.into_parts();
            strip_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(e) => Ok(reply(
            StatusCode::BAD_GATEWAY,
            &format!("the server of {}: {e}", inj.host),
        )),
    }
}

/// A ready connection to the upstream: the kept one, else a new one (TCP, verified TLS,
/// HTTP/1.1).
async fn sender(up: &Upstream) -> Result<SendRequest<Incoming>, String> {
    let kept = up.sender.lock().ok().and_then(|mut s| s.take());
    if let Some(mut s) = kept {
        if s.ready().await.is_ok() {
            return Ok(s);
        }
    }
    let first = up.first.lock().ok().and_then(|mut f| f.take());
    let tcp = match first {
        Some(t) => t,
        None => super::proxy::connect(&up.addrs)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", up.inj.host))?,
    };
    let name =
        ServerName::try_from(up.inj.host.clone()).map_err(|e| format!("{}: {e}", up.inj.host))?;
    let connector = tokio_rustls::TlsConnector::from(up.inj.client.clone());
    let tls = tokio::time::timeout(TLS_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("TLS with {} timed out", up.inj.host))?
        .map_err(|e| format!("TLS with {} failed: {e}", up.inj.host))?;
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP with {}: {e}", up.inj.host))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    s.ready()
        .await
        .map_err(|e| format!("HTTP with {}: {e}", up.inj.host))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(host_headers: &[&str], target: &str) -> bool {
        let mut h = hyper::HeaderMap::new();
        for v in host_headers {
            h.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        for_host(&h, &target.parse().unwrap(), "api.example", 443)
    }

    #[test]
    fn methods_that_echo_the_request_are_refused() {
        for m in ["TRACE", "TRACK", "track"] {
            let m = hyper::Method::from_bytes(m.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            assert!(echoes_request(&m), "{m}");
        }
        for m in [
            hyper::Method::GET,
            hyper::Method::POST,
            hyper::Method::OPTIONS,
        ] {
            assert!(!echoes_request(&m), "{m}");
        }
    }

    #[test]
    fn only_the_credentials_host_gets_the_secret() {
        assert!(ok(&["api.example"], "/v1"));
        assert!(ok(&["API.example:443"], "/v1"));
        assert!(ok(&["api.example."], "/v1"));
        assert!(ok(&[], "https://api.example/v1"));
        assert!(!ok(&["evil.example"], "/v1"));
        assert!(!ok(&["api.example:8443"], "/v1"));
        assert!(!ok(&["api.example.evil.example"], "/v1"));
        assert!(!ok(&["api.example", "evil.example"], "/v1"));
        assert!(!ok(&["api.example"], "https://evil.example/v1"));
        assert!(!ok(&[], "/v1"));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("accept", "*/*"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }
}
