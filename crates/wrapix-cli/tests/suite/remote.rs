//! `wrapix remote` against a real OpenSSH server: the test starts its own `sshd` on a loopback
//! port (a host key and a user key made here, the user's key its only authorized key), and
//! `wrapix remote` reaches it through a client config given with `--ssh-config` (ssh's `-F`),
//! so nobody's real `~/.ssh` is read or written. Over it: create (a project folder whose name
//! holds spaces, quotes and `$(id)`, which must arrive byte for byte: no remote shell saw it),
//! list, metrics, logs, attach (in a terminal of a tmux of the test's own, detached with
//! C-b d), the dashboard through `ui`'s forward, stop and delete; and the errors when the host
//! is unset, ssh fails, the remote wrapix is missing, or the manager is not running.
//!
//! As root, sshd runs as root (it must, to log another user in) and the test user `ci` logs
//! in, through PAM (a locked password, as `useradd` leaves it, is refused without PAM). As an
//! unprivileged user, sshd runs as that user with `UsePAM no` and logs in only that same user.
//! The server side finds the test's wrapix on the PATH and the test's manager through
//! `MANAGER_STATE_DIR`, both set by sshd's `SetEnv`.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::harness::{is_root, skip, Case, Out};
use super::manager::{have, kill9, until, M};

/// The project folder's name: a remote shell would split it, end the quote, or run `id`.
const AWKWARD: &str = "it's a \"dir\" $(id) `id`;x";
/// The Host of the test's ssh client config.
const HOST: &str = "wrapix-test";
/// A Host whose port has no server.
const HOST_DOWN: &str = "wrapix-test-down";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This host cannot run the test: a skip, except in CI, where the test must run.
fn cannot(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("wrapix remote's sshd test may not skip in CI: {reason}");
    }
    skip(reason);
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "wrapix-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test's sshd, stopped when dropped.
struct Sshd {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts sshd for `m`'s test user on a free loopback port and writes the client's files
/// (key, known_hosts, config) under the case. Returns the server and the client config.
fn start_sshd(m: &M) -> Option<(Sshd, PathBuf)> {
    let Some(sshd) = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        cannot("no sshd (scripts/install-deps.sh --test installs openssh-server)");
        return None;
    };
    if !have("ssh") || !have("ssh-keygen") {
        cannot("no ssh client (apt-get install openssh-client)");
        return None;
    }
    let c = &m.c;
    // The server's own files: not the test user's.
    let dir = tempfile::Builder::new()
        .prefix("wrapix-sshd-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let host_key = dir.path().join("host_key");
    keygen(&host_key);
    // The client's files, owned by the test user.
    let client = c.root.join("ssh");
    std::fs::create_dir(&client).unwrap();
    let user_key = client.join("id");
    keygen(&user_key);
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(user_key.with_extension("pub"), &authorized).unwrap();
    std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644)).unwrap();
    if is_root() {
        // Privilege separation's empty folder (made by the package's service, which may
        // never have run).
        std::fs::create_dir_all("/run/sshd").unwrap();
    }
    let bin_dir = c.env.bin.parent().unwrap();
    let run = c.root.join("run");
    let user = &c.env.user;
    let pam = if is_root() { "yes" } else { "no" };
    let config = dir.path().join("sshd_config");
    let text = format!(
        "ListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
         AuthenticationMethods publickey\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUsePAM {pam}\nStrictModes no\nPidFile none\n\
         AllowUsers {user}\nPermitRootLogin prohibit-password\nAllowTcpForwarding local\n\
         X11Forwarding no\nPrintMotd no\n\
         SetEnv HOME={home} XDG_RUNTIME_DIR={run} MANAGER_STATE_DIR={state} PATH={bin}:/usr/local/bin:/usr/bin:/bin\n",
        hk = host_key.display(),
        ak = authorized.display(),
        home = c.home.display(),
        run = run.display(),
        state = m.state.display(),
        bin = bin_dir.display(),
    );
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("sshd.log");
    // A port taken between the choice and sshd's bind: try another.
    for _ in 0..3 {
        let port = free_port();
        let mut cmd = Command::new(sshd);
        cmd.arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let up = super::harness::wait_for(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            continue;
        }
        let pubkey = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        std::fs::write(
            client.join("known_hosts"),
            format!("[127.0.0.1]:{port} {pubkey}"),
        )
        .unwrap();
        let host = |name: &str, port: u16| {
            format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  \
                 IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n  StrictHostKeyChecking yes\n  \
                 UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  ConnectTimeout 10\n  LogLevel ERROR\n",
                key = user_key.display(),
                kh = client.join("known_hosts").display(),
            )
        };
        let client_config = client.join("config");
        std::fs::write(
            &client_config,
            host(HOST, port) + &host(HOST_DOWN, free_port()),
        )
        .unwrap();
        c.give(&client);
        return Some((
            Sshd {
                child,
                log,
                _dir: dir,
            },
            client_config,
        ));
    }
    let why = std::fs::read_to_string(&log).unwrap_or_default();
    cannot(&format!(
        "sshd did not start (as {}): {}",
        if is_root() { "root" } else { "this user" },
        why.trim()
    ));
    None
}

/// `wrapix remote --ssh-config CONFIG ARGS` as the test user.
fn remote(c: &Case, config: &Path, args: &[&str]) -> Out {
    let config = config.to_string_lossy();
    let mut all = vec!["remote", "--ssh-config", &config];
    all.extend_from_slice(args);
    c.run(&all)
}

/// An HTTP/1.0 GET to 127.0.0.1:PORT: (status, headers, body).
fn http_get(port: u16, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\n{cookie}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Attaches in a terminal (a pane of the test's own tmux server, as the test user), checks
/// that the terminal shows the session's pane, and detaches with C-b d.
fn attach_and_detach(m: &M, sshd: &Sshd, config: &Path, id: &str) {
    let c = &m.c;
    let sock = c.root.join("outer.sock");
    let conf = c.root.join("outer.conf");
    c.write(&conf, "set -g remain-on-exit on\n");
    let (sock_s, conf_s, config_s) = (
        sock.to_string_lossy(),
        conf.to_string_lossy(),
        config.to_string_lossy(),
    );
    let bin = c.env.bin.to_string_lossy();
    let tmux = |args: &[&str]| {
        let mut all = vec!["-S", &sock_s, "-f", &conf_s];
        all.extend_from_slice(args);
        c.host_as_user("tmux", &all)
    };
    let out = tmux(&[
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        // A shell reports the attach's exit status on the screen: tmux 3.3a sometimes never
        // reaps a pane's process (a zombie, `pane_dead_status` empty for good).
        "sh",
        "-c",
        "\"$@\"; echo \"attach exited $?\"",
        "sh",
        &bin,
        "remote",
        "--ssh-config",
        &config_s,
        "--host",
        HOST,
        "attach",
        id,
    ]);
    assert_eq!(out.code, 0, "{out}");
    let screen = || tmux(&["capture-pane", "-p"]).stdout;
    let dead = || {
        tmux(&["display-message", "-p", "#{pane_dead}"])
            .stdout
            .starts_with('1')
    };
    let shown = super::harness::wait_for(Duration::from_secs(30), || {
        screen().contains("drawn") || dead()
    });
    let log = sshd.log();
    if !screen().contains("drawn") && !is_root() && log.contains("chown(/dev/pts/") {
        // An unprivileged sshd cannot hand the terminal to the `tty` group where /dev/pts is
        // mounted without gid=5 (as in containers); as root (CI) it always can.
        tmux(&["kill-server"]);
        cannot(&format!(
            "attach: this unprivileged sshd cannot set up a terminal here (run the suite as root): {}",
            log.lines().find(|l| l.contains("chown(")).unwrap_or_default()
        ));
        return;
    }
    assert!(
        shown && !dead(),
        "the attached terminal does not show the session's pane:\n{}\nsshd: {log}",
        screen()
    );
    let out = tmux(&["send-keys", "C-b", "d"]);
    assert_eq!(out.code, 0, "{out}");
    let ended = until("the attach to end", Duration::from_secs(30), || {
        let s = screen();
        s.contains("attach exited ").then_some(s)
    });
    assert!(ended.contains("attach exited 0"), "{ended}");
    tmux(&["kill-server"]);
}

/// `wrapix remote ui`: the printed login URL, fetched through the forward, logs in and
/// shows the dashboard with the session.
fn dashboard_through_the_forward(m: &M, config: &Path, name: &str) {
    let c = &m.c;
    let port = free_port();
    let (config_s, port_s) = (config.to_string_lossy(), port.to_string());
    let mut cmd = c.command(&[
        "remote",
        "--ssh-config",
        &config_s,
        "--host",
        HOST,
        "ui",
        "--port",
        &port_s,
    ]);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .process_group(0);
    let mut ui = cmd.spawn().unwrap();
    // Ends ssh too (it is in the group), also when the test fails.
    struct Group(Child);
    impl Drop for Group {
        fn drop(&mut self) {
            let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
    let stdout = ui.stdout.take().unwrap();
    let _ui = Group(ui);
    let mut url = String::new();
    std::io::BufReader::new(stdout).read_line(&mut url).unwrap();
    let prefix = format!("http://localhost:{port}");
    let path = url
        .trim()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("not a login URL: {url:?}"));
    assert!(path.starts_with("/login?token="), "{url}");
    // Printed once the forward accepts: the first fetch works.
    let (status, head, _) = http_get(port, path, None);
    assert!((300..400).contains(&status), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    let cookie = cookie.split(';').next().unwrap();
    let (status, head, body) = http_get(port, "/", Some(cookie));
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("<html"), "{body}");
    assert!(body.contains(name), "{body}");
    // Without the cookie the forward reaches only the token check.
    let (status, _, _) = http_get(port, "/", None);
    assert_eq!(status, 401);
}

/// Ends every tmux server the test started (the sessions' and the attach terminal's), also
/// when the test fails: their sandboxes end with them.
struct Cleanup<'a>(&'a M);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let c = &self.0.c;
        let mut socks = vec![c.root.join("outer.sock")];
        if let Ok(dir) = std::fs::read_dir(self.0.state.join("tmux")) {
            socks.extend(dir.flatten().map(|e| e.path()));
        }
        for s in socks
            .iter()
            .filter(|s| s.extension().is_some_and(|e| e == "sock"))
        {
            c.host_as_user("tmux", &["-S", &s.to_string_lossy(), "kill-server"]);
        }
    }
}

#[test]
fn remote_drives_the_manager_through_a_real_sshd() {
    let Some(m) = M::new() else { return };
    let Some((sshd, config)) = start_sshd(&m) else {
        return;
    };
    let _cleanup = Cleanup(&m);
    let c = &m.c;
    let on = |args: &[&str]| {
        let mut all = vec!["--host", HOST];
        all.extend_from_slice(args);
        remote(c, &config, &all)
    };

    // No host: a usage error naming the ways to give one.
    let out = remote(c, &config, &["list"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("WRAPIX_REMOTE_HOST"), "{out}");
    // ssh cannot connect.
    let out = remote(c, &config, &["--host", HOST_DOWN, "list"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(&format!("ssh to {HOST_DOWN} failed")),
        "{out}"
    );
    // Connected, and the manager is not running there: its own message and ours.
    let out = on(&["list"]);
    assert_eq!(out.code, 69, "{out}\nsshd: {}", sshd.log());
    assert!(
        out.stderr
            .contains(&format!("the wrapix manager is not running on {HOST}")),
        "{out}"
    );
    // The remote wrapix is not where we said.
    let out = on(&["--remote-wrapix", "/nonexistent/wrapix", "list"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("--remote-wrapix"), "{out}");

    let port = free_port();
    let d = m.daemon_with(&m.c.home, Some(port));

    // Create, with a folder no shell may see: the manager gets it byte for byte.
    let dir = c.home.join(AWKWARD);
    std::fs::create_dir(&dir).unwrap();
    c.give(&dir);
    let dir_s = dir.to_string_lossy().into_owned();
    let out = on(&[
        "--json",
        "create",
        "over-ssh",
        "bubblewrap",
        &dir_s,
        "--no-network",
    ]);
    assert_eq!(out.code, 0, "{out}\nsshd: {}", sshd.log());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["project_dir"], dir_s.as_str(), "{v}");
    assert_eq!(v["status"], "running", "{v}");
    assert_eq!(v["network"], "none", "{v}");
    let id = v["id"].as_str().unwrap().to_owned();

    // List: the table and JSON.
    let out = on(&["list"]);
    assert_eq!(out.code, 0, "{out}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("over-ssh") && row.contains("running"), "{row}");
    assert!(row.ends_with(&dir_s), "{row}");
    let out = on(&["list", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["project_dir"], dir_s.as_str());

    // Logs: the agent's output, by name.
    until(
        "the agent's output in the log",
        Duration::from_secs(60),
        || {
            let out = on(&["logs", "over-ssh"]);
            assert_eq!(out.code, 0, "{out}");
            out.stdout.contains("drawn").then_some(())
        },
    );
    // Metrics: the system's and the session's, as text and JSON.
    let out = on(&["metrics", &id]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("system: cpu"), "{out}");
    assert!(
        out.stdout.contains(&format!("sandbox {id}: running")),
        "{out}"
    );
    let out = on(&["metrics", &id, "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["system"]["cpus"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["sandbox"]["processes"].as_u64().unwrap() >= 2, "{v}");

    attach_and_detach(&m, &sshd, &config, &id);
    // Detaching left it running.
    let out = on(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["status"], "running", "{v}");

    dashboard_through_the_forward(&m, &config, "over-ssh");

    // A refusal comes back with the manager's message.
    let out = on(&["stop", "no-such-session"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("the manager refused (404)"), "{out}");
    let out = on(&["stop", &id]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("stopped"), "{out}");
    // Nothing to attach to now.
    let out = on(&["attach", &id]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("is stopped"), "{out}");
    let out = on(&["delete", &id]);
    assert_eq!(out.code, 0, "{out}");
    let out = on(&["list", "--json"]);
    assert_eq!(out.stdout.trim(), "[]", "{out}");
    kill9(d);
    drop(sshd);
}
