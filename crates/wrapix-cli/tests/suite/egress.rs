//! Network allowlists (`--allow-host`, `network = { allow, deny }`) against the real sandbox
//! and the real proxy: a local test server, and names mapped to addresses by the proxy's
//! test-only override (`WRAPIX_EGRESS_HOSTS`, read from wrapix's own environment, never the
//! sandbox's). The server listens on the host's loopback, which the proxy refuses unless a
//! rule names `127.0.0.1`: the tests that reach it name it, the one about private addresses
//! does not.
//!
//! The tests of the sandbox's side (the allowed name, the refusals, no route and no DNS
//! without the proxy) run against the backend under test (`WRAPIX_TEST_BACKEND`, as the escape
//! suite: scripts/test.sh runs them in its podman, nspawn and qemu passes); the proxy's own
//! decisions, the same for every backend, are checked with bubblewrap only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::harness::{backend, not_applicable, Backend, Case};
use super::proc::Out;

/// A server on 127.0.0.1 that answers every request with `BODY`; counts the bytes it got.
struct Server {
    port: u16,
    got: Arc<AtomicUsize>,
}

const BODY: &str = "hello from the test server";

fn server() -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(AtomicUsize::new(0));
    let counter = got.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            counter.fetch_add(n, Ordering::SeqCst);
                            head.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len()
                );
            });
        }
    });
    Server { port, got }
}

const HOSTS: &str =
    "good.test=127.0.0.1,evil.test=127.0.0.1,bad.ok.test=127.0.0.1,a.ok.test=127.0.0.1";

/// A case for the backend under test ([`Case::escape`]).
fn case() -> Option<Case> {
    Some(Case::escape()?.host_env("WRAPIX_EGRESS_HOSTS", HOSTS))
}

/// A bubblewrap case for what the proxy decides on its own (the same for every backend): in
/// another backend's pass, `None` (not applicable).
fn proxy_case() -> Option<Case> {
    if backend() != Backend::Bwrap {
        not_applicable("the proxy's own decisions are checked in the bubblewrap pass");
        return None;
    }
    Some(Case::new()?.host_env("WRAPIX_EGRESS_HOSTS", HOSTS))
}

fn sh(c: &Case, allow: &[&str], script: &str) -> Out {
    let mut args = vec!["run"];
    for a in allow {
        args.extend(["--allow-host", a]);
    }
    args.extend(["--", "/bin/sh", "-c", script]);
    c.run(&args)
}

/// The audit log's lines, parsed.
fn log(c: &Case) -> Vec<serde_json::Value> {
    let path = c.home.join(".local/state/wrapix/egress.log");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn find<'a>(log: &'a [serde_json::Value], host: &str) -> &'a serde_json::Value {
    log.iter()
        .find(|l| l["host"] == host)
        .unwrap_or_else(|| panic!("no line for {host}: {log:?}"))
}

#[test]
fn an_allowed_name_reaches_its_server_through_the_proxy_and_is_logged() {
    let Some(c) = case() else { return };
    let s = server();
    let p = s.port;
    let out = sh(
        &c,
        &["good.test", "127.0.0.1"],
        &format!(
            "curl -sS --max-time 10 http://good.test:{p}/plain; echo; \
             curl -sS --max-time 10 --proxytunnel http://good.test:{p}/tunnel; echo"
        ),
    );
    assert_eq!(
        out.ok().matches(BODY).count(),
        2,
        "plain HTTP and a CONNECT tunnel both arrive:\n{out}"
    );
    let log = log(&c);
    assert_eq!(log.len(), 2, "one line per decision: {log:?}");
    for (line, kind) in log.iter().zip(["http", "connect"]) {
        for key in [
            "time",
            "sandbox",
            "host",
            "port",
            "verdict",
            "rule",
            "bytes_up",
            "bytes_down",
        ] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
        assert_eq!(line["host"], "good.test");
        assert_eq!(line["port"], p);
        assert_eq!(line["verdict"], "allow");
        assert_eq!(line["rule"], "allow good.test");
        assert_eq!(line["kind"], kind);
        assert!(line["bytes_up"].as_u64().unwrap() > 0, "{line}");
        assert!(
            line["bytes_down"].as_u64().unwrap() > BODY.len() as u64,
            "{line}"
        );
        assert!(line["sandbox"].as_str().unwrap().starts_with("project-"));
    }
    // `wrapix net log` prints the same lines.
    let printed = c.run(&["net", "log"]);
    assert_eq!(printed.ok().lines().count(), 2, "{printed}");
}

#[test]
fn denied_names_raw_addresses_and_deny_rules_are_refused_and_logged() {
    let Some(c) = case() else { return };
    let s = server();
    let p = s.port;
    let out = sh(
        &c,
        &["good.test", "127.0.0.1", "*.ok.test"],
        &format!(
            "for u in http://evil.test:{p}/ http://10.0.0.1:{p}/ http://ok.test:{p}/; do \
               curl -sS --max-time 10 -o /dev/null -w '%{{http_code}} ' \"$u\"; done; \
             curl -sS --max-time 10 -o /dev/null -w '%{{http_code}} ' http://a.ok.test:{p}/"
        ),
    );
    assert_eq!(out.ok().trim(), "403 403 403 200", "{out}");
    let log = log(&c);
    assert_eq!(find(&log, "evil.test")["verdict"], "deny");
    assert_eq!(find(&log, "evil.test")["rule"], "no rule");
    assert_eq!(find(&log, "10.0.0.1")["verdict"], "deny");
    assert_eq!(
        find(&log, "ok.test")["verdict"],
        "deny",
        "*. is subdomains only"
    );
    assert_eq!(find(&log, "a.ok.test")["verdict"], "allow");
    assert!(s.got.load(Ordering::SeqCst) > 0);
    if c.backend != Backend::Bwrap {
        // The rules are the proxy's: checked once, with bubblewrap.
        return;
    }

    // Deny wins over allow (from the project's config, trusted: an address in `allow` lets
    // the proxy reach the host's loopback).
    c.config("network = { allow = [\"*.ok.test\", \"127.0.0.1\"], deny = [\"bad.ok.test\"] }\n");
    let out = c.run(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        &format!("curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' http://bad.ok.test:{p}/"),
    ]);
    assert_eq!(out.ok().trim(), "403", "{out}");
    assert_eq!(
        find(&self::log(&c), "bad.ok.test")["rule"],
        "deny bad.ok.test"
    );
}

#[test]
fn a_name_that_resolves_to_a_loopback_address_is_refused() {
    let Some(c) = proxy_case() else { return };
    let s = server();
    let out = sh(
        &c,
        &["good.test"],
        &format!(
            "curl -sS --max-time 10 -o /dev/null -w '%{{http_code}}' http://good.test:{}/",
            s.port
        ),
    );
    assert_eq!(out.ok().trim(), "403", "{out}");
    assert_eq!(s.got.load(Ordering::SeqCst), 0, "the server was reached");
    let line = find(&log(&c), "good.test").clone();
    assert_eq!(line["verdict"], "deny");
    assert!(
        line["rule"].as_str().unwrap().contains("loopback"),
        "{line}"
    );
}

#[test]
fn a_tls_hello_for_another_name_than_the_connect_host_is_refused() {
    let Some(c) = proxy_case() else { return };
    let s = server();
    // openssl connects through the proxy to good.test, then names evil.test in its SNI.
    let out = sh(
        &c,
        &["good.test", "127.0.0.1"],
        &format!(
            "echo | timeout 10 openssl s_client -proxy 127.0.0.1:3128 -connect good.test:{} \
             -servername evil.test >/dev/null 2>&1; echo done",
            s.port
        ),
    );
    assert!(out.ok().contains("done"), "{out}");
    let line = find(&log(&c), "good.test").clone();
    assert_eq!(line["verdict"], "deny", "{line}");
    assert!(line["rule"].as_str().unwrap().contains("SNI"), "{line}");
    assert_eq!(
        s.got.load(Ordering::SeqCst),
        0,
        "the ClientHello went upstream"
    );
}

#[test]
fn without_the_proxy_nothing_is_reachable_and_no_dns_server_answers() {
    let Some(c) = case() else { return };
    let s = server();
    let p = s.port;
    // 10.0.3.2: the host's address on the qemu backend's user-mode NIC (which carries only
    // the proxy's forward there): restricted, it leads nowhere.
    let out = sh(
        &c,
        &["good.test", "127.0.0.1"],
        &format!(
            "curl -sS --max-time 5 --noproxy '*' http://good.test:{p}/ && echo REACHED; \
             curl -sS --max-time 5 --noproxy '*' http://127.0.0.1:{p}/ && echo REACHED; \
             curl -sS --max-time 5 --noproxy '*' http://10.0.3.2:{p}/ && echo REACHED; \
             timeout 5 getent hosts example.com && echo RESOLVED; \
             cat /proc/net/route | wc -l; echo done"
        ),
    );
    let stdout = out.ok();
    assert!(stdout.contains("done"), "{out}");
    assert!(!stdout.contains("REACHED"), "{out}");
    assert!(!stdout.contains("RESOLVED"), "{out}");
    assert_eq!(s.got.load(Ordering::SeqCst), 0);
    assert!(log(&c).is_empty(), "nothing went through the proxy");
}

#[test]
fn config_show_and_bad_allowlists() {
    if backend() != Backend::Bwrap {
        not_applicable("no sandbox runs: checked in the bubblewrap pass");
        return;
    }
    let Some(c) = Case::new() else { return };
    let out = c.run(&[
        "config",
        "show",
        "--allow-host",
        "github.com",
        "--allow-host",
        "*.example.org",
    ]);
    assert!(
        out.ok().contains("allow [github.com, *.example.org]"),
        "{out}"
    );
    for (bad, want) in [
        ("*", "wildcard"),
        ("https://github.com", "not a URL"),
        ("@nope", "unknown host set"),
    ] {
        let out = c.run(&["config", "show", "--allow-host", bad]);
        assert_eq!(out.code, 2, "{bad}: {out}");
        assert!(out.stderr.contains(want), "{bad}: {out}");
    }
    // A backend that does not wire the proxy in refuses an allowlist (never `open` instead).
    let out = c.run(&[
        "run",
        "--backend",
        "apple",
        "--allow-host",
        "github.com",
        "--",
        "true",
    ]);
    assert_ne!(out.code, 0, "{out}");
}

/// `[network] notify_denied = true`: a denied request reaches the user's real `wrapix
/// notifyd` (its `--command` appends each message to a file), at most once per 10 s however
/// many the sandbox makes.
#[test]
fn denied_requests_are_notified_once_in_a_while() {
    let Some(c) = proxy_case() else { return };
    let run = c.root.join("run");
    let out_dir = c.root.join("out");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::create_dir(&out_dir).unwrap();
    c.give(&run);
    c.give(&out_dir);
    let c = c
        .host_env("XDG_RUNTIME_DIR", &run.to_string_lossy())
        .host_env("WRAPIX_NOTIFY_ALWAYS", "1");
    let got = out_dir.join("got.txt");
    let got_s = got.to_string_lossy().into_owned();
    let daemon = c.spawn(&[
        "notifyd",
        "--command",
        "/bin/sh",
        "-c",
        "{ cat; echo; } >> \"$1\"",
        "sh",
        &got_s,
    ]);
    let sock = run.join("wrapix/notify.sock");
    assert!(
        super::harness::wait_for(std::time::Duration::from_secs(10), || sock.exists()),
        "notifyd did not start"
    );
    c.config("network = { allow = [\"good.test\"], notify_denied = true }\n");
    let s = server();
    let p = s.port;
    let out = c.run(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        &format!(
            "for i in 1 2 3; do curl -sS --max-time 10 -o /dev/null -w '%{{http_code}} ' http://evil.test:{p}/; done"
        ),
    ]);
    assert_eq!(out.ok().trim(), "403 403 403", "{out}");
    let arrived = || {
        std::fs::read_to_string(&got)
            .unwrap_or_default()
            .contains("denied evil.test")
    };
    let ok = super::harness::wait_for(std::time::Duration::from_secs(10), arrived);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = std::fs::read_to_string(&got).unwrap_or_default();
    let _ = nix::sys::signal::kill(daemon.pid(), nix::sys::signal::Signal::SIGTERM);
    let _ = daemon.finish_within(std::time::Duration::from_secs(10));
    assert!(ok, "no notification arrived: {text:?}\n{out}");
    assert_eq!(text.matches("denied evil.test").count(), 1, "{text}");
}
