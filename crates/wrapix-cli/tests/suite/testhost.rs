//! Real outbound traffic, to a test host of our own: a network namespace joined to the host by
//! a veth pair (10.213.X.0/30), with a one-line TCP banner server in it. Root only.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};

use super::escape_net::{connect_probe, sh_net};
use super::harness::{is_root, skip, Case};

const BANNER: &str = "wrapix-testhost-banner";

/// Serves BANNER to at most 20 connections, and gives up after 120 s without one.
const SERVER: &str = "import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(8)
s.settimeout(120)
print(s.getsockname()[1], flush=True)
for _ in range(20):
    try:
        c, _ = s.accept()
    except OSError:
        break
    c.sendall(b'wrapix-testhost-banner\\n')
    c.close()
";

struct TestHost {
    ns: String,
    veth: String,
    host_ip: Ipv4Addr,
    ip: Ipv4Addr,
    port: u16,
    server: Option<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run ip (iproute2): {e}")),
    }
}

impl TestHost {
    fn create() -> Result<TestHost, String> {
        let python = "/usr/bin/python3";
        if !std::path::Path::new(python).exists() {
            return Err(format!("{python} is missing"));
        }
        let pid = std::process::id();
        let x = u8::try_from(pid % 200 + 20).unwrap_or(20);
        let mut host = TestHost {
            ns: format!("wrapix-t{pid}"),
            veth: format!("wxh{pid}"),
            host_ip: Ipv4Addr::new(10, 213, x, 1),
            ip: Ipv4Addr::new(10, 213, x, 2),
            port: 0,
            server: None,
        };
        let peer = format!("wxn{pid}");
        let _ = ip(&["netns", "del", &host.ns]);
        let _ = ip(&["link", "del", &host.veth]);
        let (ns, veth) = (host.ns.clone(), host.veth.clone());
        let (host_cidr, ns_cidr) = (format!("{}/30", host.host_ip), format!("{}/30", host.ip));
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &ns])?;
        ip(&["addr", "add", &host_cidr, "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        ip(&["-n", &ns, "addr", "add", &ns_cidr, "dev", &peer])?;
        ip(&["-n", &ns, "link", "set", &peer, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                python,
                "-c",
                SERVER,
                &host.ip.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the test host's server: {e}"))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        host.server = Some(child);
        host.port = line
            .trim()
            .parse()
            .map_err(|_| format!("the test host's server did not start: {line:?}"))?;
        Ok(host)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.veth]);
    }
}

#[test]
fn outbound_reaches_a_test_host_only_with_network_open() {
    let Some(c) = Case::escape() else { return };
    if !is_root() {
        skip("the test host needs root (ip netns)");
        return;
    }
    if c.host_as_user("/bin/sh", &["-c", ": <> /dev/net/tun"]).code != 0 {
        skip(&format!(
            "/dev/net/tun cannot be opened by {} (pasta needs it)",
            c.env.user
        ));
        return;
    }
    let host = match TestHost::create() {
        Ok(h) => h,
        Err(reason) => {
            skip(&format!("cannot create the test host: {reason}"));
            return;
        }
    };
    let fetch = format!(
        "timeout 10 bash -c 'exec 3<>/dev/tcp/{}/{}; head -n1 <&3' && echo FETCHED; echo done",
        host.ip, host.port
    );
    // Control: the host reaches it.
    let control = c.host_as_user("/bin/bash", &["-c", &fetch]);
    assert!(
        control.ok().contains(BANNER),
        "host control failed:\n{control}"
    );

    let open = sh_net(&c, "open", &fetch);
    assert!(
        open.ok().contains(BANNER) && open.stdout.contains("FETCHED"),
        "--network open:\n{open}"
    );
    let none = c.sh_with(&["--network", "none"], &fetch);
    assert!(
        none.ok().contains("done") && !none.stdout.contains(BANNER),
        "--network none:\n{none}"
    );

    // The host's own address on the veth is not one the sandbox has: a host service listening
    // on all addresses must still be out of reach through it.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let probe = connect_probe(host.host_ip, listener.local_addr().unwrap().port());
    let control = c.host_as_user("/bin/bash", &["-c", &probe]);
    assert!(
        control.ok().contains("CONNECTED"),
        "host control failed:\n{control}"
    );
    let out = sh_net(&c, "open", &format!("{probe} echo done"));
    assert!(
        out.ok().contains("done") && !out.stdout.contains("CONNECTED"),
        "host service on 0.0.0.0 reached through {}:\n{out}",
        host.host_ip
    );
}
