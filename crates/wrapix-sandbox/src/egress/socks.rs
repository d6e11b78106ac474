//! SOCKS5 (RFC 1928) on the proxy's socket, for `ALL_PROXY=socks5h://127.0.0.1:3128`: no
//! authentication, the CONNECT command only, with a domain name, an IPv4 or an IPv6 address.
//! After the request it is the same tunnel as an HTTP CONNECT (the same decision on the name,
//! address checks, SNI check, credentials and log line, `kind` `socks5`); a name that is an
//! IP literal is that address, as in CONNECT. BIND and UDP ASSOCIATE get "command not
//! supported" (7), another address type "address type not supported" (8).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use wrapix_spec::egress::normalise_host;

use super::proxy::{Opened, Record, Shared, HEAD_TIMEOUT};

/// The first byte of a SOCKS5 greeting.
pub const VERSION: u8 = 5;

/// Reply codes (RFC 1928, section 6).
pub mod reply {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const NOT_ALLOWED: u8 = 2;
    pub const HOST_UNREACHABLE: u8 = 4;
    pub const REFUSED: u8 = 5;
    pub const COMMAND: u8 = 7;
    pub const ADDRESS_TYPE: u8 = 8;
}

/// What the first bytes hold so far.
#[derive(Debug, PartialEq, Eq)]
enum Parse<T> {
    /// Read more.
    More,
    /// Done, and how many bytes it took.
    Done(T, usize),
    /// Refused, with the reply code (`None`: not SOCKS5 at all, close without a reply).
    Bad(Option<u8>, &'static str),
}

/// The greeting: whether "no authentication" is offered.
fn greeting(b: &[u8]) -> Parse<bool> {
    if b.len() < 2 {
        return Parse::More;
    }
    if b[0] != VERSION {
        return Parse::Bad(None, "not SOCKS5");
    }
    let n = b[1] as usize;
    if b.len() < 2 + n {
        return Parse::More;
    }
    Parse::Done(b[2..2 + n].contains(&0), 2 + n)
}

/// The request: CONNECT to (host as written, port).
fn request(b: &[u8]) -> Parse<(String, u16)> {
    if b.len() < 5 {
        return Parse::More;
    }
    if b[0] != VERSION || b[2] != 0 {
        return Parse::Bad(Some(reply::FAILURE), "not a SOCKS5 request");
    }
    let (host, at) = match b[3] {
        1 => {
            if b.len() < 4 + 4 {
                return Parse::More;
            }
            let a: [u8; 4] = [b[4], b[5], b[6], b[7]];
            (std::net::Ipv4Addr::from(a).to_string(), 8)
        }
        4 => {
            if b.len() < 4 + 16 {
                return Parse::More;
            }
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[4..20]);
            (std::net::Ipv6Addr::from(a).to_string(), 20)
        }
        3 => {
            let n = b[4] as usize;
            if b.len() < 5 + n {
                return Parse::More;
            }
            match std::str::from_utf8(&b[5..5 + n]) {
                Ok(s) if n > 0 => (s.to_ascii_lowercase(), 5 + n),
                _ => return Parse::Bad(Some(reply::NOT_ALLOWED), "not a host name"),
            }
        }
        _ => return Parse::Bad(Some(reply::ADDRESS_TYPE), "address type not supported"),
    };
    if b.len() < at + 2 {
        return Parse::More;
    }
    let port = u16::from_be_bytes([b[at], b[at + 1]]);
    match b[1] {
        1 if port != 0 => Parse::Done((host, port), at + 2),
        1 => Parse::Bad(Some(reply::NOT_ALLOWED), "port 0"),
        _ => Parse::Bad(
            Some(reply::COMMAND),
            "only CONNECT is supported (not BIND or UDP ASSOCIATE)",
        ),
    }
}

/// A reply with an empty bound address (0.0.0.0:0).
fn answer(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// Reads until `parse` is done; returns its value and the bytes after it.
async fn read<T>(
    conn: &mut UnixStream,
    buf: &mut Vec<u8>,
    parse: fn(&[u8]) -> Parse<T>,
) -> Result<T, (Option<u8>, &'static str)> {
    let mut chunk = [0u8; 512];
    loop {
        match parse(buf) {
            Parse::Done(v, n) => {
                buf.drain(..n);
                return Ok(v);
            }
            Parse::Bad(code, why) => return Err((code, why)),
            Parse::More if buf.len() > 600 => return Err((None, "too long")),
            Parse::More => {}
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err((None, "closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Serves one SOCKS5 connection; `buf` holds the bytes already read (the version byte).
pub async fn handle(mut conn: UnixStream, shared: Arc<Shared>, mut buf: Vec<u8>) {
    let head = async {
        let no_auth = read(&mut conn, &mut buf, greeting).await?;
        if !no_auth {
            let _ = conn.write_all(&[VERSION, 0xff]).await;
            return Err((None, "no acceptable authentication method"));
        }
        conn.write_all(&[VERSION, 0])
            .await
            .map_err(|_| (None, "closed"))?;
        read(&mut conn, &mut buf, request).await
    };
    let (host_s, port) = match tokio::time::timeout(HEAD_TIMEOUT, head).await {
        Ok(Ok(r)) => r,
        Ok(Err((code, why))) => {
            if let Some(code) = code {
                let _ = conn.write_all(&answer(code)).await;
            }
            tracing::debug!("egress proxy: SOCKS5: {why}");
            return;
        }
        Err(_) => return,
    };
    let mut rec = Record {
        shared: &shared,
        host: host_s.clone(),
        port,
        kind: "socks5",
    };
    let Some(host) = normalise_host(&host_s) else {
        rec.write("deny", "not a host name", 0, 0);
        let _ = conn.write_all(&answer(reply::NOT_ALLOWED)).await;
        return;
    };
    let opened = match super::proxy::open(&rec, &host, port).await {
        Ok(o) => o,
        Err(refused) => {
            let code = match refused {
                super::proxy::Refused::Denied(_) => reply::NOT_ALLOWED,
                super::proxy::Refused::Unreachable(_) => reply::HOST_UNREACHABLE,
                super::proxy::Refused::ConnectFailed(kind) => {
                    if kind == std::io::ErrorKind::ConnectionRefused {
                        reply::REFUSED
                    } else {
                        reply::HOST_UNREACHABLE
                    }
                }
            };
            let _ = conn.write_all(&answer(code)).await;
            return;
        }
    };
    if conn.write_all(&answer(reply::OK)).await.is_err() {
        return;
    }
    let Opened {
        rule,
        addrs,
        upstream,
    } = opened;
    super::proxy::tunnel(conn, buf, &mut rec, &host, port, rule, upstream, addrs).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings() {
        assert_eq!(greeting(&[5]), Parse::More);
        assert_eq!(greeting(&[5, 2, 2]), Parse::More);
        assert_eq!(greeting(&[5, 2, 2, 0]), Parse::Done(true, 4));
        assert_eq!(greeting(&[5, 1, 2]), Parse::Done(false, 3));
        assert!(matches!(greeting(&[4, 1, 0]), Parse::Bad(None, _)));
    }

    #[test]
    fn requests_of_each_address_type() {
        let mut dom = vec![5, 1, 0, 3, 9];
        dom.extend(b"A.Example");
        dom.extend(443u16.to_be_bytes());
        assert_eq!(
            request(&dom),
            Parse::Done(("a.example".into(), 443), dom.len())
        );
        for cut in 0..dom.len() {
            assert_eq!(request(&dom[..cut]), Parse::More, "{cut}");
        }
        let v4 = [5, 1, 0, 1, 10, 0, 0, 1, 0, 80];
        assert_eq!(request(&v4), Parse::Done(("10.0.0.1".into(), 80), 10));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
        v6.extend(22u16.to_be_bytes());
        assert_eq!(request(&v6), Parse::Done(("::1".into(), 22), 22));
        // An address written as a name is still that address for the decision.
        let mut lit = vec![5, 1, 0, 3, 8];
        lit.extend(b"10.0.0.1");
        lit.extend(80u16.to_be_bytes());
        let Parse::Done((h, _), _) = request(&lit) else {
            panic!()
        };
        assert!(matches!(
            normalise_host(&h),
            Some(wrapix_spec::Host::Address(_))
        ));
    }

    #[test]
    fn bind_udp_and_unknown_address_types_are_refused_with_their_codes() {
        assert_eq!(
            request(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 80]),
            Parse::Bad(
                Some(reply::COMMAND),
                "only CONNECT is supported (not BIND or UDP ASSOCIATE)"
            )
        );
        assert!(matches!(
            request(&[5, 3, 0, 1, 1, 2, 3, 4, 0, 80]),
            Parse::Bad(Some(reply::COMMAND), _)
        ));
        assert!(matches!(
            request(&[5, 1, 0, 9, 1, 2, 3, 4, 0, 80]),
            Parse::Bad(Some(reply::ADDRESS_TYPE), _)
        ));
        assert!(matches!(
            request(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 0]),
            Parse::Bad(Some(reply::NOT_ALLOWED), _)
        ));
        assert!(matches!(
            request(&[5, 1, 0, 3, 0, 0, 80]),
            Parse::Bad(Some(reply::NOT_ALLOWED), _)
        ));
        assert_eq!(answer(reply::COMMAND)[1], 7);
    }
}
