//! The doors' checks, before any handler: the `Host` header names this manager (no DNS
//! rebinding), a state-changing request from a foreign `Origin` is refused (no cross-site
//! posts), and then the door's own authentication: the Unix socket's peer is the daemon's
//! user; a TCP request carries the token (`Authorization: Bearer`, or the cookie `/login`
//! sets).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// The cookie `GET /login?token=` sets.
pub const COOKIE: &str = "wrapix_manager";

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `DIR/manager.sock`: the peer's UID decides, no token.
    Socket,
    /// TCP (`--listen`): the token decides.
    Tcp,
}

/// The peer of a Unix-socket connection (SO_PEERCRED), set per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: Option<u32>,
}

/// Compares in time independent of where the first difference is.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn host_ok(door: Door, listen: Option<std::net::SocketAddr>, host: &str) -> bool {
    // host[:port]; an IPv6 literal in brackets.
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (n, Some(p))
        }
        _ => (host, None),
    };
    let name = name.to_ascii_lowercase();
    match door {
        // The socket (and the SSH tunnels to it) is reached as localhost.
        Door::Socket => matches!(
            name.as_str(),
            "localhost" | "127.0.0.1" | "[::1]" | "manager.sock"
        ),
        Door::Tcp => {
            let Some(listen) = listen else { return false };
            // The port may differ: an SSH forward (`wrapix remote ui`) listens on another.
            let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
            let ip = match listen.ip() {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            };
            port_ok && (name == ip || name == "localhost")
        }
    }
}

/// A state-changing request must come from no browser page (no `Origin`) or from this
/// manager's own pages: `Origin` = `http://` + the checked `Host`, or `Origin: null` with
/// `Sec-Fetch-Site: same-origin`. Browsers send `null` for a form post from a page with
/// `Referrer-Policy: no-referrer` (ours); `Sec-Fetch-Site` is set by the browser itself
/// (a page cannot forge it), and a post from any other site or an opaque origin (a
/// sandboxed frame, a `data:` page) says `cross-site` there.
fn origin_ok(method: &Method, headers: &HeaderMap, host: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site == Some(b"cross-site") {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) if o.as_bytes() == b"null" => site == Some(b"same-origin"),
        Some(o) => o
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}"))),
    }
}

fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == COOKIE {
                    return Some(val.to_owned());
                }
            }
        }
    }
    None
}

/// The checks of every request (a `middleware::from_fn_with_state` layer).
pub async fn check(State(st): State<crate::api::AppState>, req: Request, next: Next) -> Response {
    match allowed(&st, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn allowed(st: &crate::api::AppState, req: &Request) -> Result<(), ApiError> {
    let door = st.door;
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host_ok(door, st.mgr.cfg.listen, host) {
        return Err(ApiError::forbidden(format!(
            "the Host header {host:?} does not name this manager (use the address it listens on, or localhost)"
        )));
    }
    if !origin_ok(req.method(), headers, host) {
        return Err(ApiError::forbidden(
            "a request from another site may not change anything here",
        ));
    }
    match door {
        Door::Socket => {
            let peer = req
                .extensions()
                .get::<axum::extract::ConnectInfo<Peer>>()
                .and_then(|p| p.0.uid);
            if peer != Some(st.mgr.cfg.uid) {
                return Err(ApiError::forbidden(
                    "only the manager's own user may use its socket",
                ));
            }
        }
        Door::Tcp => {
            if req.uri().path() == "/login" {
                return Ok(());
            }
            let ok =
                token_of(headers).is_some_and(|t| same(t.as_bytes(), st.mgr.cfg.token.as_bytes()));
            if !ok {
                return Err(ApiError::unauthorized(
                    "this needs the manager's token: `Authorization: Bearer TOKEN` (the token is in the state folder's file `token`), or open /login?token=TOKEN",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let l = Some("127.0.0.1:3000".parse().unwrap());
        assert!(host_ok(Door::Tcp, l, "127.0.0.1:3000"));
        assert!(host_ok(Door::Tcp, l, "localhost:3000"));
        assert!(host_ok(Door::Tcp, l, "127.0.0.1"));
        assert!(host_ok(Door::Tcp, l, "localhost:3001"));
        assert!(!host_ok(Door::Tcp, l, "127.0.0.2:3000"));
        assert!(!host_ok(Door::Tcp, l, "evil.example:3000"));
        assert!(!host_ok(Door::Tcp, l, ""));
        assert!(host_ok(Door::Socket, None, "localhost"));
        assert!(host_ok(Door::Socket, None, "localhost:3000"));
        assert!(!host_ok(Door::Socket, None, "attacker.example"));
    }

    #[test]
    fn origins() {
        let post = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            origin_ok(&Method::POST, &h, "127.0.0.1:3000")
        };
        assert!(post(&[]));
        assert!(post(&[("origin", "http://127.0.0.1:3000")]));
        // What Chromium sends for the dashboard's forms (Referrer-Policy: no-referrer).
        assert!(post(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!post(&[("origin", "null")]));
        assert!(!post(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!post(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-site")
        ]));
        assert!(!post(&[("origin", "http://evil.example")]));
        assert!(!post(&[
            ("origin", "http://127.0.0.1:3000"),
            ("sec-fetch-site", "cross-site")
        ]));
        let mut h = HeaderMap::new();
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(origin_ok(&Method::GET, &h, "127.0.0.1:3000"));
    }

    #[test]
    fn tokens() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; wrapix_manager=tok".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("tok"));
        h.insert(header::AUTHORIZATION, "Bearer t2".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("t2"));
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
