//! Network escape tests: the host's loopback, its own addresses (including a service bound to
//! 0.0.0.0), its abstract Unix sockets, what the sandbox's network looks like with `open` and
//! `none`, and that a failed network set-up never runs the command. Under both backends: with
//! podman, `open` is pasta attached to the container's namespace, as with bubblewrap.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::Duration;

use super::harness::{host_procs_with, local_ipv4s, skip, unique, wait_for, Backend, Case, Out};
use super::proc::output;

/// `wrapix run --network NET -- ARGV…`.
pub fn run_net(c: &Case, net: &str, argv: &[&str]) -> Out {
    let mut args = vec!["run", "--network", net, "--"];
    args.extend_from_slice(argv);
    c.run(&args)
}

/// [`run_net`] with `/bin/sh -c SCRIPT`.
pub fn sh_net(c: &Case, net: &str, script: &str) -> Out {
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
        let out = sh_net(&c, net, &format!("{probe} echo done"));
        assert!(
            out.ok().contains("done") && !out.stdout.contains("CONNECTED"),
            "--network {net}:\n{out}"
        );
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
    // The control's connections, so that the listener's queue is empty again.
    for _ in &ips {
        listener.accept().unwrap();
    }
    for net in ["open", "none"] {
        let out = sh_net(&c, net, &format!("{probes} echo done"));
        assert!(
            out.ok().contains("done") && !out.stdout.contains("CONNECTED"),
            "--network {net}: a host service on 0.0.0.0:{port} was reached:\n{out}"
        );
    }
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept().map(|_| ()).map_err(|e| e.kind());
    assert_eq!(
        accepted,
        Err(ErrorKind::WouldBlock),
        "the 0.0.0.0 listener got a connection from the sandbox"
    );
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
        let table = run_net(&c, net, &["cat", "/proc/net/unix"]);
        assert!(
            !table.ok().contains(&at_name),
            "--network {net}: socket listed inside:\n{table}"
        );
        let out = run_net(&c, net, &["perl", "-MSocket", "-e", &perl]);
        assert_eq!(
            out.code, 1,
            "--network {net}: connect to the abstract socket:\n{out}"
        );
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
            "/dev/net/tun cannot be opened by {} (pasta needs it)",
            c.env.user
        ));
        return;
    }
    let out = sh_net(
        &c,
        "open",
        "cat /proc/net/dev; echo ROUTE; cat /proc/net/route; echo FIB; cat /proc/net/fib_trie",
    );
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

/// A failed network set-up stops the run before the command: pasta failing, and the host's
/// addresses not being blocked after pasta came up (nsenter failing). Stand-ins that fail come
/// first on wrapix's PATH; the command would leave a marker in the project.
#[test]
fn a_failed_network_set_up_never_runs_the_command() {
    let Some(c) = Case::escape() else { return };
    // pasta takes a moment, so that the sandbox is surely up and held when it fails; nsenter
    // reads the routes wrapix writes to `ip`, then fails.
    let mut failing = vec![("pasta", "sleep 0.5", "pasta failed")];
    // wrapix runs nsenter only when the host has addresses of its own to block.
    if local_ipv4s(&std::fs::read_to_string("/proc/net/fib_trie").unwrap()).is_empty() {
        skip("the host has no non-loopback IPv4 address: nsenter is not needed, not tested");
    } else {
        failing.push((
            "nsenter",
            "cat >/dev/null",
            "blocking the host's addresses failed",
        ));
    }
    for (tool, first, expect) in failing {
        let bin = c.root.join(format!("failing-{tool}"));
        c.write(
            &bin.join(tool),
            &format!("#!/bin/sh\n{first}\necho 'wrapix test: this stand-in fails' >&2\nexit 1\n"),
        );
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
        let marker = c.project.join(format!("ran-despite-{tool}"));
        let script = format!(
            "touch /workspace/{}",
            marker.file_name().unwrap().to_string_lossy()
        );
        let mut cmd = c.command(&["run", "--network", "open", "--", "/bin/sh", "-c", &script]);
        cmd.env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        );
        let out = output(cmd, &c.project, None).unwrap();
        assert_eq!(out.code, 125, "{tool} failing:\n{out}");
        assert!(out.stderr.contains(expect), "{tool} failing:\n{out}");
        assert!(
            !marker.exists(),
            "the command ran although {tool} failed:\n{out}"
        );
        // Control: the same command with the real tools runs.
        let ok = sh_net(&c, "open", &script);
        assert_eq!(ok.code, 0, "{ok}");
        assert!(marker.exists(), "control: the command did not run:\n{ok}");
        std::fs::remove_file(&marker).unwrap();
    }
}

/// The init (`--wait-fd`, podman) runs nothing when the release pipe ends without the byte:
/// wrapix gave up or died.
#[test]
fn the_init_runs_nothing_unless_released() {
    let Some(c) = Case::escape() else { return };
    let marker = c.project.join("ran-unreleased");
    let bin = c.env.bin.to_string_lossy().into_owned();
    let init = c
        .env
        .bin
        .with_file_name("wrapix-init")
        .to_string_lossy()
        .into_owned();
    for (program, init_args) in [(&bin, "__init --wait-fd 3"), (&init, "--wait-fd 3")] {
        let script = format!(
            "exec {program} {init_args} -- touch {} 3</dev/null",
            marker.display()
        );
        let out = c.host_as_user("/bin/sh", &["-c", &script]);
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains("not released"), "{out}");
        assert!(!marker.exists(), "{script}: the command ran:\n{out}");
        // Control: released by one byte, it runs.
        let script = script.replace("3</dev/null", "3<<EOF\n1\nEOF");
        let out = c.host_as_user("/bin/sh", &["-c", &script]);
        assert_eq!(out.code, 0, "{out}");
        assert!(marker.exists(), "{script}: the command did not run:\n{out}");
        std::fs::remove_file(&marker).unwrap();
    }
}

/// pasta lives no longer than wrapix, even when wrapix is killed: it would otherwise keep
/// running, holding the sandbox's network namespace. (Under podman the container itself
/// outlives a killed wrapix; the test removes it.)
#[test]
fn killing_wrapix_stops_pasta() {
    let Some(c) = Case::escape() else { return };
    let mut run = c.spawn(&[
        "run",
        "--network",
        "open",
        "--",
        "/bin/sh",
        "-c",
        "touch /workspace/ready; exec sleep 300",
    ]);
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(30), || ready.exists()),
        "the command never got ready"
    );
    let pid = run.pid();
    // pasta's PID file is named after wrapix's PID.
    let pasta = format!("wrapix-pasta-{pid}-");
    assert!(
        !host_procs_with(&pasta).is_empty(),
        "no pasta for wrapix {pid}"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    // wrapix itself; its output ends only when podman, which shares it, does.
    run.child.wait().unwrap();
    // Before anything else goes away: pasta must not need the sandbox's end to stop.
    let gone = wait_for(Duration::from_secs(10), || {
        host_procs_with(&pasta).is_empty()
    });
    if c.backend == Backend::Podman {
        let name = format!("wrapix-project-{pid}");
        let rm = c.host_as_user("podman", &["rm", "--force", "--time", "0", &name]);
        assert_eq!(rm.code, 0, "{rm}");
        // The killed wrapix's per-run folder (no XDG_RUNTIME_DIR here: under the temp dir).
        let stage = std::env::temp_dir().join(format!("wrapix-{}/{name}", c.env.uid));
        let _ = std::fs::remove_dir_all(stage);
    }
    let out = run.finish();
    assert_eq!(out.code, 137, "{out}");
    assert!(gone, "pasta outlived wrapix: {:?}", host_procs_with(&pasta));
}
