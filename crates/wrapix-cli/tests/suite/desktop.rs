//! `[forward]` against the real components, as the unprivileged test user: an X client in the
//! sandbox draws on a "host" Xvfb that a host screenshot reads; a private Xvfb captured by
//! `wrapix screenshot`; `ssh-add -l` inside lists exactly the allowed keys. Each with a negative
//! control (without the forward, nothing is reachable).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wrapix_sandbox::forward::xauth;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

use super::harness::{skip, Case};

/// The colour drawn inside, as `xsetroot` takes it and as the screen holds it (0xRRGGBB).
const COLOUR: &str = "#12ab34";
const PIXEL: u32 = 0x12ab34;

fn have(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A "host" Xvfb on `:N` as the test user, with a cookie in `auth`; killed on drop.
struct HostX {
    child: Child,
    number: u32,
    cookie: Vec<u8>,
}

impl Drop for HostX {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_x(c: &Case, auth: &Path) -> HostX {
    let number = 300 + std::process::id() % 500;
    let cookie: Vec<u8> = (0..16u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(5))
        .collect();
    // The user's file holds another display's cookie too: only :N's may reach the sandbox.
    let other = xauth::cookie_entry(number + 1, b"other-display-cookie");
    let mut mine = xauth::cookie_entry(number, &cookie);
    mine.family = xauth::FAMILY_LOCAL;
    mine.address = b"somehost".to_vec();
    std::fs::write(auth, xauth::write(&[other, mine])).unwrap();
    c.give(auth);
    let a = auth.to_string_lossy();
    let n = format!(":{number}");
    let mut cmd = c
        .env
        .as_user("Xvfb", &[&n, "-nolisten", "tcp", "-noreset", "-auth", &a]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().unwrap();
    let x = HostX {
        child,
        number,
        cookie,
    };
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
    wait_for("the host Xvfb's socket", || socket.exists());
    x
}

/// The pixel at (0, 0) of the root window of the display at `socket`.
fn pixel(socket: &Path, cookie: &[u8]) -> u32 {
    let stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let (stream, _) = x11rb::rust_connection::DefaultStream::from_unix_stream(stream).unwrap();
    let conn = x11rb::rust_connection::RustConnection::connect_to_stream_with_auth_info(
        stream,
        0,
        xauth::MIT_MAGIC_COOKIE.to_vec(),
        cookie.to_vec(),
    )
    .unwrap();
    let root = conn.setup().roots[0].root;
    let img = conn
        .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, 1, 1, !0)
        .unwrap()
        .reply()
        .unwrap();
    u32::from_le_bytes([img.data[0], img.data[1], img.data[2], 0])
}

#[test]
fn x11_forward_draws_on_the_host_display_and_only_that_display() {
    let Some(c) = Case::new() else { return };
    if !have("Xvfb") || !have("xsetroot") {
        return skip("Xvfb or xsetroot is missing (scripts/install-deps.sh --test installs xvfb and x11-xserver-utils)");
    }
    let auth = c.root.join("Xauthority");
    let x = host_x(&c, &auth);
    let c = c
        .host_env("DISPLAY", &format!(":{}", x.number))
        .host_env("XAUTHORITY", &auth.to_string_lossy());
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{}", x.number));
    assert_ne!(pixel(&socket, &x.cookie), PIXEL);

    // Negative control: DISPLAY set on the host, no forward: no socket, nothing drawn.
    let out = c.sh_with(
        &["--network", "none"],
        &format!(
            "ls -A /tmp/.X11-unix 2>&1; DISPLAY=:{} xsetroot -solid '{COLOUR}' 2>&1; echo rc=$?",
            x.number
        ),
    );
    assert!(out.stdout.contains("No such file"), "{out}");
    assert!(!out.stdout.contains("rc=0"), "{out}");
    assert_ne!(pixel(&socket, &x.cookie), PIXEL);

    let out = c.sh_with(
        &["--network", "none", "--forward", "x11"],
        &format!("ls -A /tmp/.X11-unix; echo D=$DISPLAY; wc -c < $XAUTHORITY; xsetroot -solid '{COLOUR}' && echo drawn"),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("drawn"), "{out}");
    // Only this display's socket, and only its cookie (one wildcard entry).
    let n = x.number.to_string();
    assert!(out.stdout.starts_with(&format!("X{n}\nD=:{n}\n")), "{out}");
    let one = xauth::write(&[xauth::cookie_entry(x.number, &x.cookie)]).len();
    assert!(out.stdout.contains(&format!("\n{one}\n")), "{out}");
    assert_eq!(
        pixel(&socket, &x.cookie),
        PIXEL,
        "the host screenshot does not see the colour"
    );
}

#[test]
fn x11_forward_without_a_display_is_an_error_naming_the_fix() {
    let Some(c) = Case::new() else { return };
    let out = c.sh_with(&["--network", "none", "--forward", "display=x11"], "true");
    assert_eq!(out.code, 125, "{out}");
    assert!(out.stderr.contains("DISPLAY is not set"), "{out}");
    assert!(out.stderr.contains("fix:"), "{out}");
}

/// The first pixel of a PNG written by `wrapix screenshot` (8-bit RGB, one IDAT).
pub fn first_png_pixel(png: &[u8]) -> u32 {
    use std::io::Read;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let i = png.windows(4).position(|w| w == b"IDAT").unwrap();
    let len = u32::from_be_bytes(png[i - 4..i].try_into().unwrap()) as usize;
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&png[i + 4..i + 4 + len])
        .read_to_end(&mut raw)
        .unwrap();
    u32::from_be_bytes([0, raw[1], raw[2], raw[3]])
}

#[test]
fn xvfb_forward_is_private_and_wrapix_screenshot_captures_it() {
    let Some(c) = Case::new() else { return };
    if !have("Xvfb") || !have("xsetroot") {
        return skip("Xvfb or xsetroot is missing (scripts/install-deps.sh --test installs xvfb and x11-xserver-utils)");
    }
    let run = c.root.join("run");
    std::fs::create_dir(&run).unwrap();
    c.give(&run);
    let c = c.host_env("XDG_RUNTIME_DIR", &run.to_string_lossy());
    let out = c.run(&["screenshot"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("no running sandbox has a private display"),
        "{out}"
    );

    let drawn = c.project.join("drawn");
    let script =
        format!("xsetroot -solid '{COLOUR}' && echo $DISPLAY > /workspace/drawn && sleep 60");
    let running = c.spawn(&[
        "run",
        "--network",
        "none",
        "--forward",
        "xvfb",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    wait_for("the sandbox to draw", || {
        drawn.exists() && std::fs::read_to_string(&drawn).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&drawn).unwrap(), ":0\n");

    let ps = c.run(&["ps"]);
    assert!(ps.stdout.contains("xvfb"), "{ps}");
    let shot = c.root.join("shot.png");
    let out = c.run(&["screenshot", "-o", &shot.to_string_lossy()]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(first_png_pixel(&std::fs::read(&shot).unwrap()), PIXEL);
    // The display's socket is in the run's private folder, not in the host's /tmp/.X11-unix.
    let sockets: Vec<PathBuf> = walk(&run)
        .into_iter()
        .filter(|p| p.ends_with("x11/X0"))
        .collect();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    // The X server parses what clients send it (fonts through SetFontPath): it sees neither
    // the project nor the home, only read-only system folders and its own socket folder.
    let xvfbs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "Xvfb")
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*run.to_string_lossy()))
        })
        .collect();
    assert_eq!(xvfbs.len(), 1, "{xvfbs:?}");
    let inside = |p: &std::path::Path| {
        PathBuf::from(format!("/proc/{}/root", xvfbs[0])).join(p.strip_prefix("/").unwrap())
    };
    assert!(inside(std::path::Path::new("/usr/bin")).exists(), "control");
    assert!(!inside(&c.project).exists(), "Xvfb sees the project");
    assert!(!inside(&c.home).exists(), "Xvfb sees the home");

    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = running.finish_within(Duration::from_secs(20));
    // Reaped and removed: no record, no socket, no Xvfb of this run left.
    assert!(
        walk(&run).iter().all(|p| !p.ends_with("x11/X0")),
        "{:?}",
        walk(&run)
    );
    let out = c.run(&["screenshot"]);
    assert_eq!(out.code, 2, "{out}");
    let procs = Command::new("pgrep")
        .args(["-f", &run.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn ssh_agent_forwards_exactly_the_allowed_keys() {
    let Some(c) = Case::new() else { return };
    if !have("ssh-agent") || !have("ssh-keygen") {
        return skip("openssh-client is missing (scripts/install-deps.sh installs it)");
    }
    let ssh = c.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    c.give(&ssh);
    let mut fingerprints = Vec::new();
    for name in ["id_a", "id_b"] {
        let key = ssh.join(name);
        let out = c.host_as_user(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                name,
                "-f",
                &key.to_string_lossy(),
            ],
        );
        assert_eq!(out.code, 0, "{out}");
        std::fs::copy(
            ssh.join(format!("{name}.pub")),
            c.project.join(format!("{name}.pub")),
        )
        .unwrap();
        let fp = c.host_as_user(
            "ssh-keygen",
            &["-lf", &ssh.join(format!("{name}.pub")).to_string_lossy()],
        );
        fingerprints.push(fp.stdout.split_whitespace().nth(1).unwrap().to_owned());
    }
    let list = "ssh-add -l; ssh-add -T /workspace/id_a.pub && echo A-SIGNS; ssh-add -T /workspace/id_b.pub 2>/dev/null || echo B-REFUSED";

    // A private agent with id_a only.
    let a = ssh.join("id_a").to_string_lossy().into_owned();
    let out = c.sh_with(
        &["--network", "none", "--forward", &format!("ssh_agent={a}")],
        list,
    );
    assert_eq!(out.code, 0, "{out}");
    let listed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("SHA256:"))
        .collect();
    assert_eq!(listed.len(), 1, "{out}");
    assert!(listed[0].contains(&fingerprints[0]), "{out}");
    assert!(
        out.stdout.contains("A-SIGNS") && out.stdout.contains("B-REFUSED"),
        "{out}"
    );

    // The user's own agent with both keys: forwarded whole with ssh_agent = true, and not at
    // all without the forward (negative control).
    let sock = c.root.join("agent.sock");
    let mut agent = c
        .env
        .as_user("ssh-agent", &["-D", "-a", &sock.to_string_lossy()]);
    agent.stdout(Stdio::null()).stderr(Stdio::null());
    let mut agent = agent.spawn().unwrap();
    wait_for("the host agent", || sock.exists());
    let mut add = c
        .env
        .as_user("ssh-add", &["-q", &a, &ssh.join("id_b").to_string_lossy()]);
    c.clean_env(&mut add);
    add.env("SSH_AUTH_SOCK", &sock);
    assert!(add.status().unwrap().success());
    let c = c.host_env("SSH_AUTH_SOCK", &sock.to_string_lossy());
    let out = c.sh_with(
        &["--network", "none"],
        "echo sock=${SSH_AUTH_SOCK:-unset}; ls /run/wrapix",
    );
    assert!(out.stdout.contains("sock=unset"), "{out}");
    assert!(!out.stdout.contains("ssh-agent"), "{out}");
    let out = c.sh_with(&["--network", "none", "--forward", "ssh_agent"], list);
    let _ = agent.kill();
    let _ = agent.wait();
    let listed = out.stdout.lines().filter(|l| l.contains("SHA256:")).count();
    assert_eq!(listed, 2, "{out}");
}

#[test]
fn a_published_port_is_reached_on_loopback_only() {
    let Some(c) = Case::new() else { return };
    let port = 20000 + (std::process::id() % 10000) as u16;
    let server = "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 3000)); s.listen()\nwhile True:\n    c, _ = s.accept(); c.sendall(b'hello-from-sandbox'); c.close()\n";
    let flag = format!("{port}:3000");
    let running = c.spawn(&["run", "-p", &flag, "--", "python3", "-c", server]);
    let read = |addr: std::net::IpAddr| -> Option<String> {
        use std::io::Read;
        let mut s =
            std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))
                .ok()?;
        let mut got = String::new();
        s.read_to_string(&mut got).ok()?;
        Some(got)
    };
    let lo: std::net::IpAddr = [127, 0, 0, 1].into();
    wait_for("the published port", || {
        read(lo).as_deref() == Some("hello-from-sandbox")
    });
    // Another address of the host: nothing listens there.
    let others = Command::new("hostname").arg("-I").output().unwrap();
    for a in String::from_utf8_lossy(&others.stdout).split_whitespace() {
        let addr: std::net::IpAddr = a.parse().unwrap();
        assert_eq!(read(addr), None, "reached through {addr}");
    }
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = running.finish_within(Duration::from_secs(20));
    assert_eq!(read(lo), None, "the port stayed open after the run");
    // With network none, ports are refused at validation.
    let out = c.run(&["run", "--network", "none", "-p", &flag, "--", "true"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("published ports need network = \"open\""),
        "{out}"
    );
}

/// `wrapix ps` lists every running sandbox of the user, also one that forwards nothing (it
/// has no runtime record), and only while it runs.
#[test]
fn ps_lists_a_sandbox_without_forwards() {
    let Some(c) = Case::new() else { return };
    let started = c.project.join("started");
    let running = c.spawn(&[
        "run",
        "--network",
        "none",
        "--",
        "/bin/sh",
        "-c",
        "touch /workspace/started && sleep 60",
    ]);
    wait_for("the sandbox to start", || started.exists());
    let ps = c.run(&["ps"]);
    assert_eq!(ps.code, 0, "{ps}");
    let id = format!("-{}", running.pid());
    assert!(
        ps.stdout
            .lines()
            .any(|l| l.contains(&id) && l.ends_with(&*c.project.to_string_lossy())),
        "{ps}"
    );
    nix::sys::signal::kill(running.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = running.finish_within(Duration::from_secs(20));
    let ps = c.run(&["ps"]);
    assert!(!ps.stdout.contains(&id), "{ps}");
}
