//! The qemu backend as its users run it (`wrapix run --backend qemu`, as the test user): the
//! exit code, the workspace's owner, signals, no network device. Skips with the reason where the
//! host has no qemu, Rust virtiofsd or cloud kernel. Under TCG (no usable KVM) each run boots a
//! kernel in software: seconds, not milliseconds.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use super::harness::{host_procs_with, qemu_ready, skip, wait_for, Case};

fn case() -> Option<Case> {
    let c = Case::new()?;
    if let Err(reason) = qemu_ready() {
        skip(&reason);
        return None;
    }
    Some(c)
}

const RUN: &[&str] = &["run", "--backend", "qemu", "--network", "none", "--"];

fn args<'a>(cmd: &[&'a str]) -> Vec<&'a str> {
    RUN.iter().copied().chain(cmd.iter().copied()).collect()
}

#[test]
fn exit_code_comes_back_and_the_workspace_stays_the_users() {
    let Some(c) = case() else { return };
    let out = c.run(&args(&[
        "sh",
        "-c",
        "touch /workspace/new && mkdir /workspace/d && id -u && echo to-stderr >&2 && exit 7",
    ]));
    assert_eq!(out.code, 7, "{out}");
    assert_eq!(out.stdout.trim(), c.env.uid.to_string(), "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    assert!(
        !out.stderr.contains("Linux version"),
        "kernel messages leaked: {out}"
    );
    for p in ["new", "d"] {
        let m = std::fs::metadata(c.project.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (c.env.uid, c.env.gid), "{p}");
    }
}

#[test]
fn the_command_has_no_capabilities_and_no_network_device() {
    let Some(c) = case() else { return };
    let out = c.run(&args(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; tail -n +3 /proc/net/dev | cut -d: -f1",
    ]));
    assert_eq!(out.code, 0, "{out}");
    for want in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(out.stdout.contains(want), "{want} missing: {out}");
    }
    let nics: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.contains(':'))
        .map(str::trim)
        .filter(|l| *l != "lo")
        .collect();
    assert!(
        nics.is_empty(),
        "network devices with --network none: {nics:?}"
    );
}

/// When wrapix runs as root the command is uid 0 in the guest, without capabilities. The
/// kernel lets uid 0 write sysctls by its UID alone: `kernel.core_pattern = |/newroot/…` would
/// run a program of the agent's as the guest's root with every capability, outside the chroot,
/// the seccomp filter and the `[resources]` cgroup, able to lift the protected paths that only
/// the guest keeps read-only. `/proc/sys` and the other files bubblewrap covers are read-only.
#[test]
fn as_root_the_command_cannot_write_the_guests_sysctls() {
    let Some(c) = case() else { return };
    if !super::harness::is_root() {
        super::harness::not_applicable("the command is uid 0 only when wrapix runs as root");
        return;
    }
    // wrapix itself as root (not the test user), in the case's home and project.
    let mut cmd = std::process::Command::new(&c.env.bin);
    cmd.args(args(&[
        "sh",
        "-c",
        "id -u; for f in /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe /proc/sysrq-trigger; do \
           if printf '' > $f; then echo \"wrote $f\"; fi; done 2>/dev/null; \
         if echo '|/bin/false' > /proc/sys/kernel/core_pattern; then echo wrote-pattern; fi 2>/dev/null; \
         cat /proc/sys/kernel/core_pattern",
    ]));
    c.clean_env(&mut cmd);
    cmd.env("USER", "root");
    let out = super::proc::output(cmd, &c.project, None).unwrap();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.lines().next(), Some("0"), "{out}");
    assert!(
        !out.stdout.contains("wrote"),
        "a sysctl was writable: {out}"
    );
    assert!(!out.stdout.contains("|/bin/false"), "{out}");
}

#[test]
fn sigterm_reaches_the_command_and_nothing_is_left() {
    let Some(c) = case() else { return };
    let script = "trap 'echo TERM > /workspace/got; exit 3' TERM; touch /workspace/ready; \
                  while :; do sleep 0.1; done";
    let run = c.spawn(&args(&["/bin/sh", "-c", script]));
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(120), || ready.exists()),
        "the script never got ready"
    );
    kill(run.pid(), Signal::SIGTERM).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 3, "{out}");
    let got = std::fs::read_to_string(c.project.join("got")).unwrap_or_default();
    assert_eq!(got.trim(), "TERM", "{out}");
    // No qemu and no virtiofsd of this case (their arguments name its folders).
    let marker = c.root.to_string_lossy().into_owned();
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(10), || left().is_empty()),
        "processes left: {:?}",
        left()
    );
}

#[test]
fn sigkill_of_wrapix_takes_the_vm_down() {
    let Some(c) = case() else { return };
    let script = "touch /workspace/ready; while :; do sleep 0.1; done";
    let run = c.spawn(&args(&["/bin/sh", "-c", script]));
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(120), || ready.exists()),
        "the script never got ready"
    );
    kill(run.pid(), Signal::SIGKILL).unwrap();
    let _ = run.finish();
    let marker = c.root.to_string_lossy().into_owned();
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(10), || left().is_empty()),
        "processes left: {:?}",
        left()
    );
}

/// `--network open`: passt serves the VM from a network namespace of its own (never the
/// host's: the rules that keep the host's addresses out of reach are in that namespace, out of
/// the guest's reach), and a killed wrapix leaves no passt, pasta, qemu or virtiofsd behind.
#[test]
fn open_network_passt_is_outside_the_hosts_namespace_and_dies_with_wrapix() {
    let Some(c) = case() else { return };
    let script = "touch /workspace/ready; while :; do sleep 0.1; done";
    let run = c.spawn(&[
        "run",
        "--backend",
        "qemu",
        "--network",
        "open",
        "--",
        "/bin/sh",
        "-c",
        script,
    ]);
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(120), || ready.exists()),
        "the script never got ready"
    );
    let marker = c.root.to_string_lossy().into_owned();
    let passt: Vec<(String, String)> = host_procs_with(&marker)
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("passt") && cmd.contains("--fd"))
        .filter(|(_, cmd)| !cmd.contains("__vm"))
        .collect();
    assert_eq!(passt.len(), 1, "{passt:?}");
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let theirs = ns(&passt[0].0);
    assert!(theirs.is_some(), "cannot read passt's namespace");
    assert_ne!(theirs, ns("self"), "passt runs in the host's namespace");
    let pid = run.pid();
    // pasta's PID file is named after wrapix's PID.
    let pasta = format!("wrapix-pasta-{pid}-");
    assert!(!host_procs_with(&pasta).is_empty(), "no pasta for {pid}");
    kill(pid, Signal::SIGKILL).unwrap();
    let _ = run.finish();
    let left = || {
        let mut l = host_procs_with(&marker);
        l.extend(host_procs_with(&pasta));
        l
    };
    assert!(
        wait_for(Duration::from_secs(10), || left().is_empty()),
        "processes left: {:?}",
        left()
    );
}

/// On a terminal, the command gets one (a pty in the guest, relayed raw through the executor's
/// pty): job-control shells and full-screen agents work, and the exit code still comes back.
#[test]
fn on_a_terminal_the_command_gets_a_terminal() {
    let Some(c) = case() else { return };
    let bin = c.env.bin.to_string_lossy().into_owned();
    let (out, screen) = super::escape_tty::on_pty(
        &c,
        c.env.user_argv(
            &bin,
            &[
                "run",
                "--backend",
                "qemu",
                "--network",
                "none",
                "--",
                "sh",
                "-c",
                "test -t 0 && test -t 1 && echo ON-A-TTY; exit 5",
            ],
        ),
    );
    assert_eq!(out.code, 5, "terminal shows:\n{screen}");
    assert!(screen.contains("ON-A-TTY"), "terminal shows:\n{screen:?}");
}

/// MCP servers run in the guest: with `[mcp.tmux-debug]`, `wrapix-serve` is there and answers.
#[test]
fn mcp_servers_run_in_the_guest() {
    let Some(c) = case() else { return };
    c.write(
        &c.home.join(".config/wrapix/config.toml"),
        "[mcp.tmux-debug]\n",
    );
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let script = format!(
        "printf '%s\\n' '{init}' | timeout 60 /run/wrapix/bin/wrapix-serve mcp tmux-debug | head -c 400"
    );
    let out = c.run(&args(&["sh", "-c", &script]));
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("wrapix-tmux-debug"), "{out}");
}

/// `[resources]` in the VM: `cpus` are its vCPUs, `pids` and `memory_mb` a cgroup in the guest
/// around the command (a fork past the limit fails, an allocation past it is OOM-killed).
#[test]
fn resources_are_enforced_in_the_guest() {
    let Some(c) = case() else { return };
    c.config("[resources]\ncpus = 2\nmemory_mb = 64\npids = 16\n");
    let script = r#"import os, time
print("cpus=%d" % os.cpu_count(), flush=True)
pids = []
try:
    for i in range(40):
        p = os.fork()
        if p == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(p)
except OSError:
    pass
print("forks=%d" % len(pids), flush=True)
for p in pids:
    os.kill(p, 9)
    os.waitpid(p, 0)
b = b"x" * (200 << 20)
print("allocated", flush=True)
"#;
    let out = c.run(&args(&["python3", "-c", script]));
    // SIGKILL from the OOM killer: 128 + 9.
    assert_eq!(out.code, 137, "{out}");
    assert!(out.stdout.contains("cpus=2"), "{out}");
    assert!(!out.stdout.contains("allocated"), "{out}");
    let forks: usize = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("forks="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    assert!(forks < 16, "{forks} processes past pids = 16: {out}");
}

/// `-p HOST:SANDBOX` with qemu: qemu's restricted user-mode NIC listens on the host's loopback
/// only, the guest's first bytes arrive, nothing goes out through that NIC, and the port closes
/// with the run.
#[test]
fn a_published_port_reaches_the_guest_on_loopback_only() {
    let Some(c) = case() else { return };
    let port = 21000 + (std::process::id() % 9000) as u16;
    // The server speaks first (as SSH or SMTP do). Before it serves, it tries the ports NIC's
    // host side (the user-mode network's gateway and DNS): `restrict=on` lets nothing out.
    let server = r#"import socket
out = []
for addr in [("10.0.3.2", 22), ("10.0.3.2", 80), ("10.0.3.3", 53)]:
    try:
        socket.create_connection(addr, timeout=2).close()
        out.append("reached %s:%d" % addr)
    except OSError:
        out.append("blocked")
open("/workspace/probe", "w").write("\n".join(out))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 3000))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(b"hello-from-the-vm")
    c.close()
"#;
    let flag = format!("{port}:3000");
    let run = c.spawn(&[
        "run",
        "--backend",
        "qemu",
        "--network",
        "open",
        "-p",
        &flag,
        "--",
        "python3",
        "-c",
        server,
    ]);
    let read = |addr: std::net::IpAddr| -> Option<String> {
        use std::io::Read;
        let mut s =
            std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))
                .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut got = String::new();
        s.read_to_string(&mut got).ok()?;
        Some(got)
    };
    let lo: std::net::IpAddr = [127, 0, 0, 1].into();
    if !wait_for(Duration::from_secs(120), || {
        read(lo).as_deref() == Some("hello-from-the-vm")
    }) {
        kill(run.pid(), Signal::SIGTERM).unwrap();
        panic!("the published port never answered: {}", run.finish());
    }
    let others = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    for a in String::from_utf8_lossy(&others.stdout).split_whitespace() {
        let addr: std::net::IpAddr = a.parse().unwrap();
        assert_eq!(read(addr), None, "reached through {addr}");
    }
    let probe = std::fs::read_to_string(c.project.join("probe")).unwrap_or_default();
    assert_eq!(
        probe, "blocked\nblocked\nblocked",
        "from the guest: {probe}"
    );
    kill(run.pid(), Signal::SIGTERM).unwrap();
    let _ = run.finish();
    assert_eq!(read(lo), None, "the port stayed open after the run");
}

/// `wrapix notify` in the guest reaches the host's real `wrapix notifyd` (its `--command`
/// appends each message to a file): PID 1 relays the frame over a virtio-serial port, the
/// supervisor decodes it and hands it to the daemon's socket. A frame past the limit and a
/// connection that never writes do not stop the next one.
#[test]
fn notifications_from_the_guest_reach_the_hosts_daemon() {
    let Some(c) = case() else { return };
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
        wait_for(Duration::from_secs(10), || sock.exists()),
        "notifyd did not start"
    );
    let script = "python3 - <<'EOF'\n\
import socket\n\
idle = socket.socket(socket.AF_UNIX); idle.connect('/run/wrapix/notify.sock')\n\
big = socket.socket(socket.AF_UNIX); big.connect('/run/wrapix/notify.sock')\n\
big.sendall(b'{\"title\":\"' + b'x' * 40000 + b'\"}\\n'); big.close()\n\
EOF\n\
wrapix-notify --title 'from the vm' 'hello from the guest'; echo sent=$?";
    let out = c.run(&args(&["sh", "-c", script]));
    let arrived = || {
        std::fs::read_to_string(&got)
            .unwrap_or_default()
            .contains("hello from the guest")
    };
    let ok = wait_for(Duration::from_secs(15), arrived);
    let text = std::fs::read_to_string(&got).unwrap_or_default();
    let _ = kill(daemon.pid(), Signal::SIGTERM);
    let _ = daemon.finish_within(Duration::from_secs(10));
    assert!(out.stdout.contains("sent=0"), "{out}");
    assert!(ok, "no notification arrived: {text:?}\n{out}");
    assert!(
        !text.contains("xxxx"),
        "the oversized frame got through: {text}"
    );
}
