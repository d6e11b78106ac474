//! `wrapix remote …`: drive a `wrapix manager` on another machine with the system `ssh`
//! client (the user's keys, agent and config apply). No HTTP port is opened on the server:
//! every command runs `wrapix __manager-proxy` there, a fixed command line, and the request
//! itself (HTTP/1.0 to the manager's Unix socket) travels over ssh's stdin. So names, paths
//! and ids never pass through the remote shell. The few words that must be on the remote
//! command line (the remote wrapix's path, an attach id) are validated and quoted for a POSIX
//! shell, one argument each.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};

use crate::commands::Failure;

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The server (an ssh destination: HOST, USER@HOST or a Host of ~/.ssh/config).
    #[arg(long, global = true, value_name = "HOST", env = "WRAPIX_REMOTE_HOST")]
    pub host: Option<String>,
    /// The wrapix binary on the server (default: `wrapix` on its PATH).
    #[arg(long, global = true, value_name = "PATH", env = "WRAPIX_REMOTE_WRAPIX")]
    pub remote_wrapix: Option<String>,
    /// Extra options for ssh (repeatable), e.g. `--ssh-option Port=2222`.
    #[arg(long = "ssh-option", global = true, value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// An ssh client config file used instead of ~/.ssh/config and /etc/ssh/ssh_config
    /// (ssh's `-F FILE`).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "WRAPIX_REMOTE_SSH_CONFIG"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: RemoteCmd,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// Create a session: NAME, BACKEND (bubblewrap, bwrap, podman, auto), the project folder
    /// on the server.
    Create {
        name: String,
        backend: String,
        dir: String,
        #[arg(long)]
        no_network: bool,
        #[arg(long, value_name = "P")]
        profile: Option<String>,
    },
    /// List the sessions.
    List,
    /// Attach this terminal to a session (detach with tmux's C-b d).
    Attach { id: String },
    /// Stop a session.
    Stop { id: String },
    /// Stop and forget a session.
    Delete { id: String },
    /// The server's metrics, or a session's.
    Metrics { id: Option<String> },
    /// A session's terminal text; -f follows it.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Forward a local port to the manager's dashboard and print the login URL.
    Ui {
        /// Open the URL in the browser too.
        #[arg(long)]
        open: bool,
        /// The local port (on 127.0.0.1) the dashboard is forwarded to (default 3000; also
        /// CLAUDE_REMOTE_PORT).
        #[arg(long, value_name = "PORT", env = "WRAPIX_REMOTE_PORT")]
        port: Option<u16>,
    },
}

/// Quotes one argument for a POSIX shell: `'…'`, with `'` as `'\''`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn host(a: &RemoteArgs) -> Result<String, Failure> {
    let h = a
        .host
        .clone()
        .or_else(|| std::env::var("CLAUDE_REMOTE_HOST").ok())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Failure::usage(
                "no server: give --host HOST, or set WRAPIX_REMOTE_HOST (or CLAUDE_REMOTE_HOST)",
            )
        })?;
    if h.starts_with('-') || h.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::usage(format!("{h:?} is not an ssh destination")));
    }
    Ok(h)
}

fn remote_wrapix(a: &RemoteArgs) -> String {
    sh_quote(a.remote_wrapix.as_deref().unwrap_or("wrapix"))
}

/// `ssh -t|-T [-F FILE] [-o OPT]… OPTIONS -- HOST`; the remote command line follows.
fn ssh(a: &RemoteArgs, tty: bool, options: &[String]) -> Result<Command, Failure> {
    let host = host(a)?;
    let mut c = Command::new("ssh");
    c.arg(if tty { "-t" } else { "-T" });
    c.args(options);
    if let Some(f) = &a.ssh_config {
        c.arg("-F").arg(f);
    }
    for o in &a.ssh_options {
        c.arg("-o").arg(o);
    }
    c.arg("--").arg(host);
    Ok(c)
}

/// The exit status of `__manager-proxy` and `__manager-attach` when no manager answers.
const EXIT_NOT_RUNNING: i32 = 69;

/// Why a remote command gave no answer, from ssh's exit status; ssh's own message and the
/// remote side's went to stderr (above).
fn no_answer(a: &RemoteArgs, status: std::process::ExitStatus) -> Failure {
    let host = a.host.clone().unwrap_or_default();
    let wrapix = a.remote_wrapix.as_deref().unwrap_or("wrapix");
    match status.code() {
        Some(255) => Failure::failed(format!(
            "ssh to {host} failed (its message is above): check the host name and your keys with `ssh {host} true`"
        )),
        Some(EXIT_NOT_RUNNING) => Failure::new(
            EXIT_NOT_RUNNING,
            format!("the wrapix manager is not running on {host}: start it there with `wrapix manager`"),
        ),
        Some(126 | 127) => Failure::failed(format!(
            "{host} cannot run `{wrapix}`: install wrapix there, or give its path with --remote-wrapix PATH (WRAPIX_REMOTE_WRAPIX)"
        )),
        _ => Failure::failed(format!(
            "no answer from the manager on {host} (ssh exited with {status}; its message is above)"
        )),
    }
}

fn ssh_failed(e: std::io::Error) -> Failure {
    Failure::failed(format!("cannot run ssh: {e} (install the OpenSSH client)")).caused_by(e)
}

/// One API request over ssh: (status, body).
fn request(
    a: &RemoteArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, Vec<u8>), Failure> {
    let mut c = ssh(a, false, &[])?;
    c.arg(format!("{} __manager-proxy", remote_wrapix(a)));
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().map_err(ssh_failed)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(req.as_bytes());
    }
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut out);
    }
    let status = child.wait().map_err(ssh_failed)?;
    if out.is_empty() {
        return Err(no_answer(a, status));
    }
    parse_response(&out)
}

fn parse_response(out: &[u8]) -> Result<(u16, Vec<u8>), Failure> {
    let bad = || Failure::failed("the manager's answer is not HTTP");
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&out[..end]).map_err(|_| bad())?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, out[end + 4..].to_vec()))
}

/// The body of a 2xx answer, else the manager's `error` as the failure.
fn ok(r: (u16, Vec<u8>)) -> Result<Vec<u8>, Failure> {
    let (status, body) = r;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let msg = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(Failure::failed(format!(
        "the manager refused ({status}): {msg}"
    )))
}

/// A session id or name for a URL path (the manager checks it again).
fn key(id: &str) -> Result<&str, Failure> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Failure::usage(format!(
            "{id:?} is not a session id or name"
        )));
    }
    Ok(id)
}

fn json_value(b: &[u8]) -> Result<serde_json::Value, Failure> {
    serde_json::from_slice(b)
        .map_err(|e| Failure::failed(format!("the manager's answer is not JSON: {e}")))
}

fn print_sessions(list: &[serde_json::Value]) {
    println!(
        "{:<36}  {:<20} {:<9} {:<8} PROJECT",
        "ID", "NAME", "STATUS", "BACKEND"
    );
    for s in list {
        let t = |k: &str| wrapix_spec::error::escape_controls(s[k].as_str().unwrap_or("-"));
        println!(
            "{:<36}  {:<20} {:<9} {:<8} {}",
            t("id"),
            t("name"),
            t("status"),
            t("backend"),
            t("project_dir")
        );
    }
}

pub fn run(a: RemoteArgs) -> Result<i32, Failure> {
    match &a.command {
        RemoteCmd::Create {
            name,
            backend,
            dir,
            no_network,
            profile,
        } => {
            let body = serde_json::json!({
                "name": name, "backend": backend, "project_dir": dir,
                "network": !no_network, "profile": profile,
            });
            let b = ok(request(&a, "POST", "/api/sandboxes", Some(&body))?)?;
            let v = json_value(&b)?;
            if a.json {
                println!("{v}");
            } else {
                print_sessions(&[v]);
            }
        }
        RemoteCmd::List => {
            let b = ok(request(&a, "GET", "/api/sandboxes", None)?)?;
            let v = json_value(&b)?;
            if a.json {
                println!("{v}");
            } else {
                print_sessions(v.as_array().map(Vec::as_slice).unwrap_or_default());
            }
        }
        RemoteCmd::Stop { id } => {
            let b = ok(request(
                &a,
                "POST",
                &format!("/api/sandboxes/{}/stop", key(id)?),
                None,
            )?)?;
            let v = json_value(&b)?;
            if a.json {
                println!("{v}");
            } else {
                print_sessions(&[v]);
            }
        }
        RemoteCmd::Delete { id } => {
            ok(request(
                &a,
                "DELETE",
                &format!("/api/sandboxes/{}", key(id)?),
                None,
            )?)?;
            if !a.json {
                eprintln!("wrapix: deleted {id}");
            }
        }
        RemoteCmd::Metrics { id } => {
            let mut out = serde_json::json!({});
            let b = ok(request(&a, "GET", "/api/metrics/system", None)?)?;
            out["system"] = json_value(&b)?;
            if let Some(id) = id {
                let b = ok(request(
                    &a,
                    "GET",
                    &format!("/api/sandboxes/{}/metrics", key(id)?),
                    None,
                )?)?;
                out["sandbox"] = json_value(&b)?;
            }
            if a.json {
                println!("{out}");
            } else {
                print_metrics(&out);
            }
        }
        RemoteCmd::Logs { id, follow } => {
            let path = if *follow {
                format!("/api/sandboxes/{}/logs/stream", key(id)?)
            } else {
                format!("/api/sandboxes/{}/logs", key(id)?)
            };
            if *follow {
                return follow_logs(&a, &path);
            }
            let b = ok(request(&a, "GET", &path, None)?)?;
            std::io::stdout()
                .write_all(&b)
                .map_err(|e| Failure::failed(e.to_string()))?;
            println!();
        }
        RemoteCmd::Attach { id } => {
            let mut c = ssh(&a, true, &[])?;
            c.arg(format!(
                "{} __manager-attach {}",
                remote_wrapix(&a),
                sh_quote(key(id)?)
            ));
            let st = c.status().map_err(ssh_failed)?;
            return match st.code() {
                Some(0) => Ok(0),
                Some(255 | 126 | 127 | EXIT_NOT_RUNNING) => Err(no_answer(&a, st)),
                code => Ok(code.unwrap_or(1)),
            };
        }
        RemoteCmd::Ui { open, port } => return ui(&a, *open, *port),
    }
    Ok(0)
}

fn print_metrics(v: &serde_json::Value) {
    let s = &v["system"];
    let gib = |x: &serde_json::Value| x.as_u64().unwrap_or(0) as f64 / (1u64 << 30) as f64;
    println!(
        "system: cpu {:.0}% of {} · memory {:.1}/{:.1} GiB · disk {:.1}/{:.1} GiB · load {} · up {} s",
        s["cpu_percent"].as_f64().unwrap_or(0.0),
        s["cpus"],
        gib(&s["memory_used_bytes"]),
        gib(&s["memory_total_bytes"]),
        gib(&s["disk_used_bytes"]),
        gib(&s["disk_total_bytes"]),
        s["load_average"],
        s["uptime_seconds"]
    );
    let m = &v["sandbox"];
    if !m.is_null() {
        let g = &m["agent"];
        println!(
            "sandbox {}: {} · cpu {:.0}% · memory {:.0} MiB · {} processes",
            m["id"].as_str().unwrap_or("?"),
            m["status"].as_str().unwrap_or("?"),
            m["cpu_percent"].as_f64().unwrap_or(0.0),
            m["memory_bytes"].as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64,
            m["processes"]
        );
        println!(
            "agent: {} messages · tokens in {} out {} cache read {} written {} · model {} · tools {}",
            g["message_count"],
            g["input_tokens"],
            g["output_tokens"],
            g["cache_read_input_tokens"],
            g["cache_creation_input_tokens"],
            // Written by the agent (its transcripts): no terminal controls reach the screen.
            wrapix_spec::error::escape_controls(g["model"].as_str().unwrap_or("-")),
            g["tool_uses"]
        );
    }
}

/// `logs -f`: the SSE stream, printed as it comes.
fn follow_logs(a: &RemoteArgs, path: &str) -> Result<i32, Failure> {
    let mut c = ssh(a, false, &[])?;
    c.arg(format!("{} __manager-proxy", remote_wrapix(a)));
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().map_err(ssh_failed)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = write!(stdin, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    }
    let Some(stdout) = child.stdout.take() else {
        return Ok(1);
    };
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut head = true;
    let mut answered = false;
    let out = std::io::stdout();
    while let Some(Ok(line)) = lines.next() {
        answered = true;
        if head {
            if line.starts_with("HTTP/") && !line.contains(" 200 ") {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::failed(format!(
                    "the manager refused: {}",
                    wrapix_spec::error::escape_controls(line.trim_end())
                )));
            }
            head = !line.is_empty();
            continue;
        }
        if let Some(d) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            let mut o = out.lock();
            let _ = writeln!(o, "{d}");
        }
    }
    let status = child.wait().map_err(ssh_failed)?;
    if !answered {
        return Err(no_answer(a, status));
    }
    Ok(0)
}

/// `ui`: the manager's TCP door, forwarded to a local port over ssh; the login URL printed
/// once the forward accepts connections.
fn ui(a: &RemoteArgs, open: bool, port: Option<u16>) -> Result<i32, Failure> {
    let port = port
        .or_else(|| {
            std::env::var("CLAUDE_REMOTE_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(3000);
    // Taken here, ssh would fail (ExitOnForwardFailure) only after logging in; and a
    // listener that is not ours must never receive the token.
    drop(
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).map_err(|e| {
            Failure::usage(format!(
                "cannot use 127.0.0.1:{port} on this machine for the dashboard ({e}): choose another with --port PORT (WRAPIX_REMOTE_PORT)"
            ))
        })?,
    );
    let mut c = ssh(a, false, &[])?;
    c.arg(format!("{} __manager-proxy --info", remote_wrapix(a)));
    c.stderr(Stdio::inherit());
    let out = c.output().map_err(ssh_failed)?;
    if !out.status.success() {
        return Err(no_answer(a, out.status));
    }
    let info = json_value(&out.stdout)?;
    let (Some(listen), Some(token)) = (info["listen"].as_str(), info["token"].as_str()) else {
        return Err(Failure::failed(
            "the manager does not listen on TCP: start it with `wrapix manager --listen 127.0.0.1:3000` for the dashboard",
        ));
    };
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Failure::failed("the manager's token file is not a token"));
    }
    let listen: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| Failure::failed("the manager's address is not ADDR:PORT"))?;
    let target = match listen.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    // The forward binds the laptop's loopback only; the dashboard still needs the token.
    // (Before the host: after it, ssh would take them for the remote command.)
    let forward = [
        "-N".to_owned(),
        "-o".to_owned(),
        "ExitOnForwardFailure=yes".to_owned(),
        "-L".to_owned(),
        format!("127.0.0.1:{port}:{target}:{}", listen.port()),
    ];
    let mut fwd = ssh(a, false, &forward)?;
    let mut child = fwd.spawn().map_err(ssh_failed)?;
    // Ready when the forward accepts (ssh binds it after logging in); a password prompt may
    // take the user any time, so no deadline.
    loop {
        if let Some(st) = child.try_wait().map_err(ssh_failed)? {
            return Err(Failure::failed(format!(
                "the ssh forward to the dashboard ended ({st}; its message is above)"
            )));
        }
        if std::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://localhost:{port}/login?token={token}");
    println!("{url}");
    let _ = std::io::stdout().flush();
    if open {
        let _ = Command::new("xdg-open")
            .arg(&url)
            .stdout(Stdio::null())
            .status();
    }
    eprintln!("wrapix: the dashboard is forwarded to localhost:{port}; Ctrl-C ends the forward");
    let st = child.wait().map_err(ssh_failed)?;
    Ok(st.code().unwrap_or(0))
}

fn manager_dir(state_dir: Option<PathBuf>) -> PathBuf {
    let env = crate::context::host_env();
    state_dir.unwrap_or_else(|| {
        crate::context::state_root(&crate::context::host_user(&env), &env).join("manager")
    })
}

fn not_running(sock: &std::path::Path, e: std::io::Error) -> Failure {
    Failure::new(
        EXIT_NOT_RUNNING,
        format!(
            "the wrapix manager is not running on this host (no answer on {}: {e}): start it with `wrapix manager` (as a service: `wrapix manager --print-systemd-unit`)",
            sock.display()
        ),
    )
}

/// `__manager-proxy`: stdin to the socket, the socket to stdout.
pub fn proxy(state_dir: Option<PathBuf>, info: bool) -> Result<i32, Failure> {
    let dir = manager_dir(state_dir);
    let sock = dir.join("manager.sock");
    let stream =
        std::os::unix::net::UnixStream::connect(&sock).map_err(|e| not_running(&sock, e))?;
    if info {
        drop(stream);
        let token = std::fs::read_to_string(dir.join("token")).unwrap_or_default();
        let listen = std::fs::read_to_string(dir.join("listen")).ok();
        println!(
            "{}",
            serde_json::json!({"listen": listen.map(|l| l.trim().to_owned()), "token": token.trim()})
        );
        return Ok(0);
    }
    let mut up = stream
        .try_clone()
        .map_err(|e| Failure::failed(e.to_string()))?;
    // No half-close after stdin's end: the server would take it for the client leaving.
    // An HTTP/1.0 request carries its length, and the server closes after the answer.
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
    });
    let mut down = stream;
    let _ = std::io::copy(&mut down, &mut std::io::stdout().lock());
    drop(t);
    Ok(0)
}

/// `__manager-attach ID`: the session's tmux, in this terminal.
pub fn attach_here(state_dir: Option<PathBuf>, id: &str) -> Result<i32, Failure> {
    use std::os::unix::process::CommandExt;
    let dir = manager_dir(state_dir);
    let sock = dir.join("manager.sock");
    let mut s =
        std::os::unix::net::UnixStream::connect(&sock).map_err(|e| not_running(&sock, e))?;
    write!(
        s,
        "GET /api/sandboxes/{} HTTP/1.0\r\nHost: localhost\r\n\r\n",
        key(id)?
    )
    .map_err(|e| Failure::failed(e.to_string()))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .map_err(|e| Failure::failed(e.to_string()))?;
    let v = json_value(&ok(parse_response(&out)?)?)?;
    let sid = v["id"].as_str().unwrap_or_default();
    key(sid)?;
    if v["status"] != "running" {
        return Err(Failure::failed(format!(
            "session {id} is {}: nothing to attach to",
            v["status"].as_str().unwrap_or("?")
        )));
    }
    let err = Command::new("tmux")
        .arg("-S")
        .arg(dir.join("tmux").join(format!("{sid}.sock")))
        .args(["attach", "-t", wrapix_session()])
        .exec();
    Err(Failure::failed(format!("cannot run tmux: {err}")))
}

/// The tmux session's name inside each session's server (as wrapix-manager names it).
fn wrapix_session() -> &'static str {
    "wrapix"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_byte_literal() {
        for s in [
            "plain", "a b", "it's", "$(id)", "`x`", "a;b|c&d", "\n", "'", "\"\\",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", sh_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    fn args(host: &str) -> RemoteArgs {
        RemoteArgs {
            host: Some(host.into()),
            remote_wrapix: None,
            ssh_options: vec!["Port=2222".into()],
            ssh_config: Some(PathBuf::from("/etc/wrapix/ssh config")),
            json: false,
            command: RemoteCmd::List,
        }
    }

    #[test]
    fn ssh_options_come_before_the_host() {
        let a = args("me@server");
        let forward = ["-N".into(), "-L".into(), "127.0.0.1:1:h:2".into()];
        let c = ssh(&a, false, &forward).unwrap();
        let argv: Vec<_> = c.get_args().map(|s| s.to_string_lossy()).collect();
        assert_eq!(
            argv,
            [
                "-T",
                "-N",
                "-L",
                "127.0.0.1:1:h:2",
                "-F",
                "/etc/wrapix/ssh config",
                "-o",
                "Port=2222",
                "--",
                "me@server"
            ]
        );
        let c = ssh(&a, true, &[]).unwrap();
        assert_eq!(c.get_args().next().unwrap(), "-t");
        for bad in ["-oProxyCommand=x", "a b", ""] {
            assert!(ssh(&args(bad), false, &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn responses() {
        let (s, b) =
            parse_response(b"HTTP/1.0 201 Created\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (201, &b"{}"[..]));
        assert!(parse_response(b"garbage").is_err());
    }
}
