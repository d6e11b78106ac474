//! Network escape tests: the host's loopback, its own addresses, its abstract Unix sockets,
//! and what the sandbox's network looks like with `open` and `none`.
//!
//! Under podman, `open` (slirp4netns) is refused while the host has services listening on all
//! addresses (docs/security.md); [`run_net`] asserts that refusal instead of the probe, and
//! logs the probe as skipped.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

use super::harness::{local_ipv4s, skip, unique, Backend, Case, Out};

/// How a `wrapix run --network NET` ended.
pub enum NetRun {
    Ran(Out),
    /// Podman refused `open` because of host services on all addresses (checked: exit 125,
    /// the message, nothing ran). Holds wrapix's output.
    Refused(Out),
}

/// `wrapix run --network NET -- ARGV…`, telling podman's refusal of `open` apart.
pub fn run_net(c: &Case, net: &str, argv: &[&str]) -> NetRun {
    let mut args = vec!["run", "--network", net, "--"];
    args.extend_from_slice(argv);
    let out = c.run(&args);
    let refusal = out.stderr.contains("listening on all addresses");
    if c.backend != Backend::Podman || net != "open" || (out.code != 125 && !refusal) {
        return NetRun::Ran(out);
    }
    assert!(
        out.code == 125 && refusal && out.stdout.is_empty(),
        "not the refusal of network = open:\n{out}"
    );
    let listeners = out
        .stderr
        .split_once("this host has some (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(l, _)| l.to_owned())
        .unwrap_or_default();
    skip(&format!(
        "podman refused network = open ({listeners} listen on all addresses, asserted); the open probe did not run"
    ));
    NetRun::Refused(out)
}

/// [`run_net`] with `/bin/sh -c SCRIPT`.
pub fn sh_net(c: &Case, net: &str, script: &str) -> NetRun {
    run_net(c, net, &["/bin/sh", "-c", script])
}

/// A shell line that prints `CONNECTED ip` if a TCP connect to ip:port works (5 s at most).
pub fn connect_probe(ip: Ipv4Addr, port: u16) -> String {
    format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' 2>/dev/null && echo CONNECTED {ip}; ")
}

/// Interface names in a `/proc/net/dev` text.
fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .filter(|n| !n.is_empty() && !n.contains('|'))
        .collect()
}

#[test]
fn cannot_reach_a_host_loopback_listener() {
    let Some(c) = Case::escape() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = connect_probe(Ipv4Addr::LOCALHOST, port);
    for net in ["open", "none"] {
        if let NetRun::Ran(out) = sh_net(&c, net, &format!("{probe} echo done")) {
            assert!(
                out.ok().contains("done") && !out.stdout.contains("CONNECTED"),
                "--network {net}:\n{out}"
            );
        }
    }
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept().map(|_| ()).map_err(|e| e.kind());
    assert_eq!(
        accepted,
        Err(ErrorKind::WouldBlock),
        "the listener got a connection from the sandbox"
    );
    // Control: the same probe on the host, as the same user, connects.
    let host = c.host_as_user("/bin/bash", &["-c", &probe]);
    assert!(
        host.ok().contains("CONNECTED"),
        "host control failed:\n{host}"
    );
}

#[test]
fn cannot_reach_host_services_on_its_own_addresses() {
    let Some(c) = Case::escape() else { return };
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // 10.213/16 is the test hosts' range (see testhost.rs, which checks that address itself).
    let ips: Vec<Ipv4Addr> = local_ipv4s(&std::fs::read_to_string("/proc/net/fib_trie").unwrap())
        .into_iter()
        .filter(|ip| ip.octets()[..2] != [10, 213])
        .collect();
    if ips.is_empty() {
        skip("the host has no non-loopback IPv4 address");
        return;
    }
    let probes: String = ips.iter().map(|ip| connect_probe(*ip, port)).collect();
    let host = c.host_as_user("/bin/bash", &["-c", &probes]);
    assert_eq!(
        host.ok().lines().count(),
        ips.len(),
        "host control failed:\n{host}"
    );
    for net in ["open", "none"] {
        match sh_net(&c, net, &format!("{probes} echo done")) {
            NetRun::Ran(out) => {
                assert!(
                    c.backend != Backend::Podman || net != "open",
                    "podman ran network = open with a host service on 0.0.0.0:{port}:\n{out}"
                );
                assert!(
                    out.ok().contains("done") && !out.stdout.contains("CONNECTED"),
                    "--network {net}:\n{out}"
                );
            }
            // This test's own listener is one of them.
            NetRun::Refused(out) => {
                assert!(out.stderr.contains(&format!("tcp:{port}")), "{out}");
            }
        }
    }
}

#[test]
fn cannot_reach_a_host_abstract_unix_socket() {
    let Some(c) = Case::escape() else { return };
    let name = unique("wrapix-abstract");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = UnixListener::bind_addr(&addr).unwrap();
    let at_name = format!("@{name}");
    let perl = format!(
        "socket(S,PF_UNIX,SOCK_STREAM,0) or die; connect(S, pack_sockaddr_un(\"\\0{name}\")) and exit 0; exit 1"
    );
    // Controls: the host sees it, and the test user can connect to it from the host.
    assert!(std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .contains(&at_name));
    let host = c.host_as_user("perl", &["-MSocket", "-e", &perl]);
    assert_eq!(host.code, 0, "host control failed:\n{host}");
    for net in ["open", "none"] {
        if let NetRun::Ran(table) = run_net(&c, net, &["cat", "/proc/net/unix"]) {
            assert!(
                !table.ok().contains(&at_name),
                "--network {net}: socket listed inside:\n{table}"
            );
        }
        if let NetRun::Ran(out) = run_net(&c, net, &["perl", "-MSocket", "-e", &perl]) {
            assert_eq!(
                out.code, 1,
                "--network {net}: connect to the abstract socket:\n{out}"
            );
        }
    }
}

#[test]
fn network_none_has_only_loopback() {
    let Some(c) = Case::escape() else { return };
    let out = c.sh_with(
        &["--network", "none"],
        "cat /proc/net/dev; echo SYS; ls /sys/class/net 2>/dev/null; echo ROUTE; cat /proc/net/route",
    );
    let stdout = out.ok();
    let (dev, rest) = stdout.split_once("SYS\n").unwrap();
    let (sys, route) = rest.split_once("ROUTE\n").unwrap();
    assert_eq!(
        interfaces(dev),
        vec!["lo".to_owned()],
        "interfaces besides lo:\n{out}"
    );
    let sys: Vec<&str> = sys.split_whitespace().collect();
    assert!(sys.is_empty() || sys == ["lo"], "/sys/class/net: {sys:?}");
    assert_eq!(
        route.lines().count(),
        1,
        "routes with --network none:\n{out}"
    );
}

#[test]
fn network_open_has_an_interface_and_a_default_route() {
    let Some(c) = Case::escape() else { return };
    if c.host_as_user("/bin/sh", &["-c", ": <> /dev/net/tun"]).code != 0 {
        skip(&format!(
            "/dev/net/tun cannot be opened by {} (pasta and slirp4netns need it)",
            c.env.user
        ));
        return;
    }
    let NetRun::Ran(out) = sh_net(
        &c,
        "open",
        "cat /proc/net/dev; echo ROUTE; cat /proc/net/route; echo FIB; cat /proc/net/fib_trie",
    ) else {
        return;
    };
    let stdout = out.ok();
    let (dev, rest) = stdout.split_once("ROUTE\n").unwrap();
    let (route, fib) = rest.split_once("FIB\n").unwrap();
    let ifaces = interfaces(dev);
    assert!(
        ifaces.iter().any(|i| i != "lo"),
        "no interface besides lo:\n{out}"
    );
    let default = route.lines().skip(1).any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.len() > 2 && cols[0] != "lo" && cols[1] == "00000000"
    });
    assert!(default, "no default route:\n{out}");
    assert!(!local_ipv4s(fib).is_empty(), "no IPv4 address:\n{out}");
}
