//! DNS with `network = "open"` when the host's resolver is on loopback (systemd-resolved,
//! dnsmasq): the sandbox cannot reach host loopback, so wrapix points it at a fixed address
//! that pasta forwards to the host's resolver. The host here uses a resolver elsewhere, so the
//! test gives wrapix (and the pasta it starts) a loopback resolver of its own: a private mount
//! namespace where `/etc/resolv.conf` names a real DNS server the test runs on 127.0.0.54.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::harness::{is_root, skip, wait_for, Case};
use super::proc::output;

const RESOLVER: &str = "127.0.0.54";

#[test]
fn a_loopback_host_resolver_is_reached_through_pasta_and_nothing_else_is() {
    // Both backends attach the same pasta (WRAPIX_TEST_BACKEND).
    let Some(c) = Case::escape() else { return };
    if !is_root() {
        return skip("needs root: a private mount namespace for /etc/resolv.conf and port 53");
    }
    if !std::path::Path::new("/usr/bin/pasta").exists() {
        return skip("pasta (package passt) is not installed");
    }
    let script = c.root.join("dns_server.py");
    std::fs::write(&script, include_str!("../support/dns_server.py")).unwrap();
    let mut server = Command::new("/usr/bin/python3")
        .arg(&script)
        .args([RESOLVER, "53"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let ready = lines.next().and_then(Result::ok);
    if ready.as_deref() != Some("READY") {
        let _ = server.kill();
        let _ = server.wait();
        return skip(&format!(
            "cannot run a DNS server on {RESOLVER}:53 ({ready:?})"
        ));
    }
    let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = queries.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            seen.lock().unwrap().push(line);
        }
    });

    let resolv = c.root.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {RESOLVER}\noptions timeout:2 attempts:2\n"),
    )
    .unwrap();
    // The sandbox asks the forwarded resolver, and tries the resolver's own address directly
    // (host loopback: must stay unreachable, over UDP and TCP).
    let probe = format!(
        "cat /etc/resolv.conf; getent ahostsv4 probe.wrapix.test | head -1; \
         timeout 5 bash -c 'exec 3<>/dev/tcp/{RESOLVER}/53' 2>/dev/null && echo TCP-LOOPBACK-OPEN; \
         printf '\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x06direct\\x06wrapix\\x04test\\x00\\x00\\x01\\x00\\x01' \
           > /dev/udp/{RESOLVER}/53 2>/dev/null; sleep 0.5; echo end"
    );
    let wrapix = c.env.user_argv(
        &c.env.bin.to_string_lossy(),
        &["run", "--network", "open", "--", "/bin/bash", "-c", &probe],
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg("mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"")
        .arg("sh")
        .arg(&resolv)
        .args(&wrapix);
    c.clean_env(&mut cmd);
    let out = output(cmd, &c.project, None).unwrap();
    // Control: the same direct query from the host, as the same user, reaches the server.
    let control = c.host_as_user(
        "/bin/bash",
        &[
            "-c",
            &format!(
                "printf '\\x12\\x35\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07control\\x06wrapix\\x04test\\x00\\x00\\x01\\x00\\x01' > /dev/udp/{RESOLVER}/53"
            ),
        ],
    );
    assert_eq!(control.code, 0, "{control}");
    let control_seen = wait_for(Duration::from_secs(2), || {
        queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q == "QUERY control.wrapix.test")
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        control_seen,
        "host control: the resolver did not see a direct query"
    );

    let stdout = out.ok();
    assert!(
        stdout.contains("nameserver 169.254.1.53\n") && stdout.contains("options timeout:2"),
        "the sandbox's resolv.conf does not point at the forward address:\n{out}"
    );
    assert!(
        stdout.contains("10.1.2.3") && stdout.contains("probe.wrapix.test"),
        "the name did not resolve through the forwarded resolver:\n{out}"
    );
    assert!(!stdout.contains("TCP-LOOPBACK-OPEN"), "{out}");
    assert!(stdout.ends_with("end\n"), "{out}");
    // The server saw the query: the answer came from it, not from somewhere else.
    assert!(
        wait_for(Duration::from_secs(2), || queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q == "QUERY probe.wrapix.test")),
        "the resolver never saw the query: {:?}",
        queries.lock().unwrap()
    );
    // A query sent straight to the resolver's loopback address never reached it.
    assert!(
        !queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q == "QUERY direct.wrapix.test"),
        "the sandbox reached the host's loopback resolver directly: {:?}",
        queries.lock().unwrap()
    );
}
