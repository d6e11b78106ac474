//! Credential injection (`[[network.credentials]]`) and SOCKS5 against the real sandbox and
//! proxy. The origin is a TLS server of the test's own on 127.0.0.1 (reached through the
//! proxy's test-only name map, and a rule naming 127.0.0.1), with its own CA, which the
//! credential trusts through `ca_file`. It records every request head it gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::harness::Case;

/// The origin: its port, its CA (PEM), and the request heads it received.
struct Origin {
    port: u16,
    ca_pem: String,
    heads: Arc<Mutex<Vec<String>>>,
}

const BODY: &str = "hello over tls";

/// A TLS server for `creds.test` and `plain.test` (one certificate with both names), signed
/// by a CA made here; HTTP/1.1 with keep-alive (requests without bodies).
fn origin() -> Origin {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "wrapix test origin CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["creds.test".into(), "plain.test".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let (config, seen) = (config.clone(), seen.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let tls = rustls::StreamOwned::new(conn, tcp);
                let mut r = BufReader::new(tls);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match r.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    seen.lock().unwrap().push(head);
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}",
                        BODY.len()
                    );
                    if r.get_mut().write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    let _ = r.get_mut().flush();
                }
            });
        }
    });
    Origin {
        port,
        ca_pem: ca_cert.pem(),
        heads,
    }
}

fn log(c: &Case) -> Vec<serde_json::Value> {
    std::fs::read_to_string(c.home.join(".local/state/wrapix/egress.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The user config of these tests: an allowlist with both names, and a credential for
/// `creds.test` on the origin's port, its secret in `from_env` or `from_file`.
fn config(c: &Case, o: &Origin, source: &str) {
    let ca = c.root.join("origin-ca.pem");
    c.write(&ca, &o.ca_pem);
    c.write(
        &c.home.join(".config/wrapix/config.toml"),
        &format!(
            "[network]\nallow = [\"creds.test\", \"plain.test\", \"127.0.0.1\"]\n\
             [[network.credentials]]\nhost = \"creds.test\"\nport = {}\nheader = \"x-api-key\"\n\
             {source}\nca_file = {:?}\n",
            o.port,
            ca.to_string_lossy()
        ),
    );
    // The origin's CA, for curl inside when it talks to plain.test (not intercepted).
    c.write(&c.project.join("origin-ca.pem"), &o.ca_pem);
}

fn case(secret: &str) -> Option<Case> {
    Some(
        Case::new()?
            .host_env(
                "WRAPIX_EGRESS_HOSTS",
                "creds.test=127.0.0.1,plain.test=127.0.0.1,good.test=127.0.0.1,evil.test=127.0.0.1",
            )
            .host_env("TEST_API_KEY", secret),
    )
}

#[test]
fn the_proxy_adds_the_header_and_the_sandbox_never_holds_the_secret() {
    let secret = format!("sk-test-{}-4b1d", std::process::id());
    let Some(c) = case(&secret) else { return };
    let o = origin();
    config(&c, &o, "from_env = \"TEST_API_KEY\"");
    let p = o.port;
    let (head, tail) = secret.split_at(8);
    let script = format!(
        "set -u
         # Two requests on one connection (keep-alive), the sandbox's own value replaced.
         curl -sS --max-time 10 -H 'x-api-key: placeholder' https://creds.test:{p}/a https://creds.test:{p}/b; echo
         # The same through SOCKS5.
         curl -sS --max-time 10 --socks5-hostname 127.0.0.1:3128 https://creds.test:{p}/socks; echo
         # A Host header naming another site is refused (the secret would go there).
         curl -sS --max-time 10 -o /dev/null -w 'misdirected %{{http_code}}\\n' -H 'Host: evil.test' https://creds.test:{p}/x
         # Who signed each certificate: our CA for the credential's host, the origin's otherwise.
         echo | openssl s_client -proxy 127.0.0.1:3128 -connect creds.test:{p} -servername creds.test 2>/dev/null | grep '^issuer=' | sed 's/^/creds /'
         echo | openssl s_client -proxy 127.0.0.1:3128 -connect plain.test:{p} -servername plain.test 2>/dev/null | grep '^issuer=' | sed 's/^/plain /'
         curl -sS --max-time 10 --cacert /workspace/origin-ca.pem https://plain.test:{p}/plain; echo
         # Nowhere inside: not in the environment, any process's memory-visible config, or files.
         # (the secret in two halves in this script, so that no command line holds it whole
         # while /proc is read)
         S='{head}''{tail}'
         env | grep -c -- \"$S\"
         cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' \
           | awk -v a='{head}' -v b='{tail}' 'index($0, a b) {{ n++ }} END {{ print n + 0 }}'
         grep -rIl -- \"$S\" /etc /run /tmp \"$HOME\" /workspace 2>/dev/null | wc -l
         grep -rIl -- 'PRIVATE KEY' /run /tmp \"$HOME\" 2>/dev/null | wc -l
         echo \"vars $SSL_CERT_FILE $NODE_EXTRA_CA_CERTS $ALL_PROXY\"
         test -r /run/wrapix/egress-ca.pem && echo ca-visible
         # HTTP/2: only http/1.1 is offered, so curl falls back and a client that wants h2 only fails.
         curl -sS --max-time 10 --http2 https://creds.test:{p}/h2; echo
         echo | openssl s_client -proxy 127.0.0.1:3128 -connect creds.test:{p} -servername creds.test -alpn h2 2>&1 \
           | grep -c 'ALPN protocol: h2'
         echo done"
    );
    let out = c.run(&["run", "--", "/bin/sh", "-c", &script]);
    let stdout = out.ok();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(stdout.contains("done"), "{out}");
    assert_eq!(lines[0], format!("{BODY}{BODY}"), "{out}");
    assert_eq!(lines[1], BODY, "{out}");
    assert_eq!(lines[2], "misdirected 421", "{out}");
    assert!(
        lines[3].starts_with("creds ") && lines[3].contains("wrapix egress CA"),
        "{out}"
    );
    assert!(
        lines[4].starts_with("plain ") && lines[4].contains("wrapix test origin CA"),
        "the other host is not intercepted: {out}"
    );
    assert_eq!(lines[5], BODY, "{out}");
    assert_eq!(
        &lines[6..10],
        ["0", "0", "0", "0"],
        "secret or key inside: {out}"
    );
    assert_eq!(
        lines[10],
        "vars /run/wrapix/ca-bundle.pem /run/wrapix/egress-ca.pem socks5h://127.0.0.1:3128"
    );
    assert_eq!(lines[11], "ca-visible");
    assert_eq!(lines[12], BODY, "{out}");
    assert_eq!(lines[13], "0", "h2 was negotiated: {out}");

    // The origin got the header on each request to creds.test, never on plain.test, and
    // never the sandbox's own value.
    let heads = o.heads.lock().unwrap().clone();
    let with = |path: &str| {
        heads
            .iter()
            .find(|h| h.starts_with(&format!("GET {path} ")))
            .unwrap_or_else(|| panic!("no request for {path}: {heads:?}"))
            .to_ascii_lowercase()
    };
    for path in ["/a", "/b", "/socks", "/h2"] {
        let h = with(path);
        assert!(h.contains(&format!("x-api-key: {secret}")), "{h}");
        assert_eq!(h.matches("x-api-key").count(), 1, "{h}");
    }
    assert!(!with("/plain").contains("x-api-key"), "{heads:?}");
    assert!(
        !heads.iter().any(|h| h.contains("/x ")),
        "misdirected: {heads:?}"
    );

    // One log line per tunnel, with how many requests carried the header.
    let log = log(&c);
    let creds: Vec<_> = log
        .iter()
        .filter(|l| l["kind"].as_str().unwrap_or("").contains("credential"))
        .collect();
    assert!(
        creds.iter().any(|l| l["rule"]
            .as_str()
            .unwrap()
            .contains("x-api-key set on 2 requests")),
        "{log:?}"
    );
    assert!(
        creds.iter().any(|l| l["kind"] == "socks5+credential"),
        "{log:?}"
    );
    assert!(
        creds
            .iter()
            .any(|l| l["verdict"] == "error"
                && l["rule"].as_str().unwrap().contains("known protocol")),
        "the h2-only handshake: {log:?}"
    );
    // The CA's key stays in wrapix's state folder, private.
    let ca = c.home.join(".local/state/wrapix/egress-ca/ca.pem");
    let mode = std::fs::metadata(&ca).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let mut text = String::new();
    std::fs::File::open(&ca)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("PRIVATE KEY"));
}

#[test]
fn a_missing_secret_stops_the_run_before_the_sandbox_starts() {
    let Some(c) = case("") else { return };
    let o = origin();
    config(&c, &o, "from_env = \"TEST_API_KEY\"");
    let out = c.run(&["run", "--", "/bin/sh", "-c", "echo STARTED"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("STARTED"), "{out}");
    assert!(
        out.stderr.contains("from_env") && out.stderr.contains("TEST_API_KEY"),
        "{out}"
    );
    config(&c, &o, "from_file = \"~/.config/no-such-token\"");
    let out = c.run(&["run", "--", "/bin/sh", "-c", "echo STARTED"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("from_file") && out.stderr.contains("no-such-token"),
        "{out}"
    );
    // A secret the sandbox's environment would hold anyway ([env]) is refused too.
    c.write(&c.home.join(".config/token"), "sk-file-secret\n");
    config(&c, &o, "from_file = \"~/.config/token\"");
    let out = c.run(&[
        "run",
        "-e",
        "LEAK=sk-file-secret",
        "--",
        "/bin/sh",
        "-c",
        "echo STARTED",
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("LEAK"), "{out}");
}

#[test]
fn socks5_follows_the_same_rules_as_connect() {
    let Some(c) = case("unused") else { return };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsocks"
            );
        }
    });
    let out = c.run(&[
        "run",
        "--allow-host",
        "good.test",
        "--allow-host",
        "127.0.0.1",
        "--",
        "/bin/sh",
        "-c",
        &format!(
            "curl -sS --max-time 10 --socks5-hostname 127.0.0.1:3128 http://good.test:{p}/; echo; \
             curl -sS --max-time 10 http://good.test:{p}/ -x \"$ALL_PROXY\"; echo; \
             curl -sS --max-time 10 --socks5-hostname 127.0.0.1:3128 http://evil.test:{p}/ || echo refused $?; \
             curl -sS --max-time 10 --socks5-hostname 127.0.0.1:3128 http://10.0.0.1:{p}/ || echo refused $?"
        ),
    ]);
    let stdout = out.ok();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["socks", "socks"], "{out}");
    assert!(lines[2].starts_with("refused"), "{out}");
    assert!(lines[3].starts_with("refused"), "{out}");
    let log = log(&c);
    let socks: Vec<_> = log.iter().filter(|l| l["kind"] == "socks5").collect();
    assert_eq!(socks.len(), 4, "{log:?}");
    let of = |h: &str| socks.iter().find(|l| l["host"] == h).unwrap();
    assert_eq!(of("good.test")["verdict"], "allow");
    assert_eq!(of("evil.test")["verdict"], "deny");
    assert_eq!(of("10.0.0.1")["verdict"], "deny");
}
