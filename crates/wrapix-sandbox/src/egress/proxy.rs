//! The host-side proxy: HTTP CONNECT, plain-HTTP forwarding and SOCKS5 ([`super::socks`]) on a
//! Unix socket, deciding on the name the client asked for; tunnels to a credential's host go
//! through [`super::mitm`]. Everything the sandbox sends is untrusted input: the head is
//! bounded, every wait has a timeout, and anything that is not understood is refused.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use wrapix_spec::egress::{normalise_host, Decision, Egress, Host};

use super::log::{now, Entry, Log};
use super::mitm::Injector;
use super::sni::{self, Hello};
use super::stream::{Counts, Prefixed};

/// The request head (request line and headers) is at most this long.
const MAX_HEAD: usize = 16 * 1024;
/// The relay's buffer each way (tokio's default of 8 KiB halved a download's throughput).
const COPY_BUF: usize = super::relay::CHUNK;
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// What every connection shares.
pub struct Shared {
    pub egress: Egress,
    pub sandbox: String,
    pub log: Log,
    /// This host's addresses (refused like private ones).
    pub own: Vec<IpAddr>,
    /// Names resolved without DNS (`WRAPIX_EGRESS_HOSTS`, for tests); the address checks
    /// still apply.
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// Called with a one-line message for each denied request (`notify_denied`).
    pub notify: Option<Notify>,
    /// One per `[[network.credentials]]` entry.
    pub injectors: Vec<Arc<Injector>>,
}

impl Shared {
    fn injector(&self, host: &Host, port: u16) -> Option<Arc<Injector>> {
        let Host::Name(n) = host else { return None };
        self.injectors
            .iter()
            .find(|i| i.host == *n && i.port == port)
            .cloned()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("egress", &self.egress)
            .field("sandbox", &self.sandbox)
            .field("own", &self.own)
            .field("hosts", &self.hosts)
            .field("notify", &self.notify.is_some())
            .field("injectors", &self.injectors)
            .finish_non_exhaustive()
    }
}

/// Connections served at once; more wait for a free slot (the sandbox cannot make the host
/// process run out of descriptors or memory).
const MAX_CONNECTIONS: usize = 256;

/// What tells the user of a denied request (sandbox, message).
pub type Notify = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How long the connections still open at the stop get to finish (and write their log
/// lines): the sandbox has ended, so its ends are closed and they finish at once.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves until `stopped`, then lets the connections in flight finish (within [`DRAIN`]):
/// a connection's log line is written when it ends, which may be just after the sandbox's
/// own end.
pub async fn serve(
    listener: UnixListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            _ = &mut stopped => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((conn, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        handle(conn, shared).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!("egress proxy: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(MAX_CONNECTIONS as u32)).await;
}

/// One request, as parsed from the head.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    connect: bool,
    host: String,
    port: u16,
    /// For plain HTTP: the head to send upstream (origin-form, `Connection: close`).
    upstream_head: Vec<u8>,
}

pub(super) struct Record<'a> {
    pub shared: &'a Shared,
    pub host: String,
    pub port: u16,
    pub kind: &'static str,
}

impl Record<'_> {
    pub(super) fn write(&self, verdict: &str, rule: &str, up: u64, down: u64) {
        self.shared.log.write(&Entry {
            time: now(),
            sandbox: self.shared.sandbox.clone(),
            host: self.host.clone(),
            port: self.port,
            verdict: verdict.into(),
            rule: rule.into(),
            kind: self.kind.into(),
            bytes_up: up,
            bytes_down: down,
        });
        if verdict == "deny" {
            if let Some(notify) = &self.shared.notify {
                notify(
                    &self.shared.sandbox,
                    &format!("denied {}:{} ({rule})", self.host, self.port),
                );
            }
        }
    }
}

async fn handle(mut conn: UnixStream, shared: Arc<Shared>) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEAD_TIMEOUT, conn.read(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == super::socks::VERSION {
        return super::socks::handle(conn, shared, first.to_vec()).await;
    }
    let Ok(Ok((head, rest))) =
        tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut conn, first.to_vec())).await
    else {
        let _ = conn
            .write_all(&response(400, "bad or incomplete request"))
            .await;
        return;
    };
    let req = match parse(&head) {
        Ok(r) => r,
        Err(why) => {
            let _ = conn.write_all(&response(400, why)).await;
            return;
        }
    };
    let mut rec = Record {
        shared: &shared,
        host: req.host.clone(),
        port: req.port,
        kind: if req.connect { "connect" } else { "http" },
    };
    let Some(host) = normalise_host(&req.host) else {
        rec.write("deny", "not a host name", 0, 0);
        let _ = conn.write_all(&response(403, "not a host name")).await;
        return;
    };
    let Opened {
        rule,
        addrs,
        mut upstream,
    } = match open(&rec, &host, req.port).await {
        Ok(o) => o,
        Err(refused) => {
            let (code, why) = match refused {
                Refused::Denied(why) => (403, why),
                Refused::Unreachable(why) => (502, why),
                Refused::ConnectFailed(_) => (502, "cannot connect".to_owned()),
            };
            let _ = conn.write_all(&response(code, &why)).await;
            return;
        }
    };
    if req.connect {
        if conn
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        return tunnel(conn, rest, &mut rec, &host, req.port, rule, upstream, addrs).await;
    }
    let mut out = req.upstream_head.clone();
    out.extend_from_slice(&rest);
    if upstream.write_all(&out).await.is_err() {
        rec.write("error", &format!("{rule}; upstream closed"), 0, 0);
        return;
    }
    let up = out.len() as u64;
    // Bytes counted only for a connection that ends cleanly (an error loses the count).
    let (a, b) =
        tokio::io::copy_bidirectional_with_sizes(&mut conn, &mut upstream, COPY_BUF, COPY_BUF)
            .await
            .unwrap_or_default();
    rec.write("allow", &rule, up + a, b);
}

/// Why [`open`] refused (its log line is written).
#[derive(Debug)]
pub(super) enum Refused {
    /// No rule allows it, or it resolves to an address no rule names (the reason).
    Denied(String),
    /// The name does not resolve (the reason).
    Unreachable(String),
    ConnectFailed(std::io::ErrorKind),
}

/// An allowed, connected upstream.
pub(super) struct Opened {
    pub rule: String,
    pub addrs: Vec<SocketAddr>,
    pub upstream: TcpStream,
}

/// Decides on `host`, resolves it here, refuses private addresses no rule names, and
/// connects. Refusals are logged.
pub(super) async fn open(rec: &Record<'_>, host: &Host, port: u16) -> Result<Opened, Refused> {
    let shared = rec.shared;
    let rule = match shared.egress.decide(host) {
        Decision::Deny(rule) => {
            rec.write("deny", &rule, 0, 0);
            return Err(Refused::Denied(format!(
                "wrapix: {} is not allowed ({rule})",
                rec.host
            )));
        }
        Decision::Allow(rule) => rule,
    };
    let addrs = match resolve(shared, host, port).await {
        Ok(a) => a,
        Err(why) => {
            let denied = why.starts_with("address");
            rec.write(if denied { "deny" } else { "error" }, &why, 0, 0);
            return Err(if denied {
                Refused::Denied(why)
            } else {
                Refused::Unreachable(why)
            });
        }
    };
    match connect(&addrs).await {
        Ok(upstream) => Ok(Opened {
            rule,
            addrs,
            upstream,
        }),
        Err(e) => {
            rec.write("error", &format!("{rule}; connect failed: {e}"), 0, 0);
            Err(Refused::ConnectFailed(e.kind()))
        }
    }
}

/// A tunnel once the client was told it is open (CONNECT's 200, SOCKS5's success): its first
/// bytes are checked (TLS must name the host), then relayed, or served by [`super::mitm`]
/// when a credential is configured for this host and port. One log line when it ends.
#[allow(clippy::too_many_arguments)]
pub(super) async fn tunnel(
    mut conn: UnixStream,
    rest: Vec<u8>,
    rec: &mut Record<'_>,
    host: &Host,
    port: u16,
    rule: String,
    mut upstream: TcpStream,
    addrs: Vec<SocketAddr>,
) {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, first_bytes(&mut conn, rest)).await {
        Ok(Ok(b)) => b,
        _ => {
            rec.write("deny", "no data from the client", 0, 0);
            return;
        }
    };
    if let Err(why) = check_tls(&first, host, port) {
        rec.write("deny", &why, 0, 0);
        return;
    }
    if let Some(inj) = rec.shared.injector(host, port) {
        if !matches!(sni::parse(&first), Hello::Tls(_)) {
            rec.write("deny", "a credential's host is reached over TLS only", 0, 0);
            return;
        }
        let counts = Arc::new(Counts::default());
        let client = Prefixed::new(first, conn, counts.clone());
        let header = inj.header_name().to_owned();
        let out = super::mitm::serve(client, upstream, inj, addrs).await;
        let (up, down) = counts.get();
        rec.kind = if rec.kind == "socks5" {
            "socks5+credential"
        } else {
            "credential"
        };
        let mut why = format!("{rule}; {header} set on {} requests", out.requests);
        if out.refused > 0 {
            why.push_str(&format!("; {} refused", out.refused));
        }
        if let Some(e) = &out.error {
            why.push_str(&format!("; {e}"));
        }
        let verdict = if out.error.is_some() && out.requests == 0 {
            "error"
        } else {
            "allow"
        };
        rec.write(verdict, &why, up, down);
        return;
    }
    if upstream.write_all(&first).await.is_err() {
        rec.write("error", &format!("{rule}; upstream closed"), 0, 0);
        return;
    }
    // Bytes counted only for a tunnel that ends cleanly (an error loses the count).
    let (a, b) =
        tokio::io::copy_bidirectional_with_sizes(&mut conn, &mut upstream, COPY_BUF, COPY_BUF)
            .await
            .unwrap_or_default();
    rec.write("allow", &rule, first.len() as u64 + a, b);
}

/// Reads until the end of the head; returns it and what came after it.
async fn read_head(conn: &mut UnixStream, mut buf: Vec<u8>) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too long"));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The first TLS record (or whatever the client sends first, when it is not TLS).
async fn first_bytes(conn: &mut UnixStream, mut buf: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() && sni::parse(&buf) != Hello::Incomplete {
            return Ok(buf);
        }
        if buf.len() >= sni::MAX_RECORD {
            return Ok(buf);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok(buf)
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Port 443 must carry TLS; TLS on any port must name the CONNECT host (no domain fronting:
/// the decision was made on that name). A tunnel to an address may carry no name.
fn check_tls(first: &[u8], host: &Host, port: u16) -> Result<(), String> {
    match (sni::parse(first), host) {
        (Hello::Tls(Some(sni)), Host::Name(name)) if sni == *name => Ok(()),
        (Hello::Tls(Some(sni)), _) => Err(format!(
            "SNI {sni:?} differs from the CONNECT host (domain fronting)"
        )),
        (Hello::Tls(None), Host::Address(_)) => Ok(()),
        (Hello::Tls(None), Host::Name(_)) => Err("TLS without a server name (SNI)".into()),
        (Hello::Unreadable, _) => Err(format!(
            "a TLS handshake on port {port} whose server name cannot be read (a ClientHello split over records, or malformed)"
        )),
        (Hello::NotTls, _) if port != 443 => Ok(()),
        (Hello::NotTls | Hello::Incomplete, _) => {
            Err(format!("not a TLS ClientHello on port {port}"))
        }
    }
}

/// The addresses to connect to: the name resolved by the proxy (never by the sandbox), less
/// every private, loopback, link-local or own address that no rule names.
async fn resolve(shared: &Shared, host: &Host, port: u16) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<IpAddr> = match host {
        Host::Address(a) => vec![*a],
        Host::Name(n) => match shared.hosts.get(n) {
            Some(a) => a.clone(),
            None => tokio::net::lookup_host((n.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve {n}: {e}"))?
                .map(|s| s.ip())
                .collect(),
        },
    };
    let mut refused = None;
    let ok: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match super::addr::private(*a, &shared.own) {
            Some(why) if !shared.egress.names_address(*a) => {
                refused.get_or_insert(format!("address {a} is {why}, and no rule names it"));
                false
            }
            _ => true,
        })
        .map(|a| SocketAddr::new(a, port))
        .collect();
    if ok.is_empty() {
        return Err(refused.unwrap_or_else(|| format!("{host} has no address")));
    }
    Ok(ok)
}

pub(super) async fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for a in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = std::io::ErrorKind::TimedOut.into(),
        }
    }
    Err(last)
}

fn response(code: u16, why: &str) -> Vec<u8> {
    let reason = match code {
        400 => "Bad Request",
        403 => "Forbidden",
        _ => "Bad Gateway",
    };
    let body = format!("{}\n", why.replace(['\r', '\n'], " "));
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `host:port`, `[v6]:port`, or `host` with `default`.
fn split_authority(a: &str, default: Option<u16>) -> Option<(String, u16)> {
    if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default?,
            None => return None,
        };
        return Some((h.to_owned(), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), p.parse().ok().filter(|p| *p != 0)?)),
        None => Some((a.to_owned(), default?)),
    }
}

fn parse(head: &[u8]) -> Result<Request, &'static str> {
    let text = std::str::from_utf8(head).map_err(|_| "the head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("bad request line");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Err("bad request line");
    }
    if !method.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err("bad method");
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None).ok_or("CONNECT needs host:port")?;
        return Ok(Request {
            connect: true,
            host: host.to_ascii_lowercase(),
            port,
            upstream_head: Vec::new(),
        });
    }
    let rest = target
        .strip_prefix("http://")
        .ok_or("only http:// URLs are forwarded (use CONNECT for https)")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if authority.contains('@') {
        return Err("credentials in the URL are not forwarded");
    }
    let (host, port) = split_authority(authority, Some(80)).ok_or("bad host in the URL")?;
    let host = host.to_ascii_lowercase();
    let mut out = format!("{method} {path} {version}\r\n");
    let mut saw_host = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("bad header")?;
        let lname = name.trim().to_ascii_lowercase();
        match lname.as_str() {
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive" => continue,
            "host" => {
                saw_host = true;
                let (h, _) = split_authority(value.trim(), Some(port)).ok_or("bad Host header")?;
                if normalise_host(&h) != normalise_host(&host) {
                    return Err("the Host header differs from the URL's host");
                }
            }
            _ => {}
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !saw_host {
        out.push_str(&format!("Host: {authority}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request {
        connect: false,
        host,
        port,
        upstream_head: out.into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_and_absolute_urls() {
        let r = parse(b"CONNECT GitHub.com:443 HTTP/1.1\r\nHost: github.com:443\r\n\r\n").unwrap();
        assert!(r.connect);
        assert_eq!((r.host.as_str(), r.port), ("github.com", 443));
        let r = parse(b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("2001:db8::1", 8443));
        let r = parse(
            b"GET http://a.example:8080/x?y HTTP/1.1\r\nHost: a.example:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.host.as_str(), r.port), ("a.example", 8080));
        let head = String::from_utf8(r.upstream_head).unwrap();
        assert!(head.starts_with("GET /x?y HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Accept: */*\r\n"));
        assert!(!head.to_ascii_lowercase().contains("proxy-connection"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            &b"GET /relative HTTP/1.1\r\n\r\n"[..],
            b"GET https://a.example/ HTTP/1.1\r\n\r\n",
            b"GET http://u:p@a.example/ HTTP/1.1\r\n\r\n",
            b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
            b"CONNECT a.example HTTP/1.1\r\n\r\n",
            b"CONNECT a.example:0 HTTP/1.1\r\n\r\n",
            b"CONNECT a.example:443 HTTP/2\r\n\r\n",
            b"get http://a.example/ HTTP/1.1\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tls_must_name_the_connect_host() {
        let name = Host::Name("a.example".into());
        let ok = sni::hello_with_sni(Some("a.example"));
        let other = sni::hello_with_sni(Some("b.example"));
        assert_eq!(check_tls(&ok, &name, 443), Ok(()));
        assert!(check_tls(&other, &name, 443).is_err());
        assert!(check_tls(&other, &name, 8443).is_err());
        assert!(check_tls(&sni::hello_with_sni(None), &name, 443).is_err());
        assert!(check_tls(b"GET / HTTP/1.1\r\n\r\n", &name, 443).is_err());
        assert_eq!(check_tls(b"SSH-2.0-x\r\n", &name, 22), Ok(()));
        let addr = Host::Address("192.0.2.1".parse().unwrap());
        assert_eq!(check_tls(&sni::hello_with_sni(None), &addr, 443), Ok(()));
    }
}
