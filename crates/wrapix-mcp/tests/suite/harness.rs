//! Starting the server as a child process, talking to it, and checking that nothing leaked.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Value};

pub type Client = RunningService<RoleClient, ()>;

pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
}

pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The standalone server binary of this crate.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tmux-debug-mcp"))
}

/// The `wrapix` binary beside it (built by `cargo test --workspace`), if there is one, with
/// `wrapix-serve` (which `wrapix mcp` execs) beside it.
pub fn wrapix_bin() -> Option<PathBuf> {
    let p = server_bin().parent()?.join("wrapix");
    (p.is_file() && p.with_file_name("wrapix-serve").is_file()).then_some(p)
}

/// A private TMPDIR for one server: its tmux folder is created there, so leaks are findable.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("wrapix-mcp-it-")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `program args` with TMPDIR pointing here.
    pub fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("TMPDIR", self.path())
            .env_remove("TMUX")
            .env_remove("TMUX_DEBUG_AUDIT")
            .env_remove("TMUX_DEBUG_AUDIT_FULL")
            .current_dir(self.path());
        cmd
    }

    /// Waits until no process mentions this folder and no tmux folder is left in it.
    pub fn assert_no_leak(&self) {
        let marker = self.path().to_string_lossy().into_owned();
        let clean = wait_for(Duration::from_secs(10), || {
            procs_with(&marker).is_empty() && tmux_dirs(self.path()).is_empty()
        });
        assert!(
            clean,
            "leaked: processes {:?}, folders {:?}",
            procs_with(&marker),
            tmux_dirs(self.path())
        );
    }
}

fn tmux_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wrapix-tmux-"))
        })
        .collect()
}

/// Processes whose command line contains `marker`.
pub fn procs_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(marker) {
                out.push(format!("{name}: {line}"));
            }
        }
    }
    out
}

pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Connects rmcp's client to `cmd` (stderr passed through).
pub async fn connect(cmd: Command) -> Client {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stderr(Stdio::inherit());
    let transport = TokioChildProcess::new(cmd).unwrap();
    ().serve(transport).await.unwrap()
}

pub async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let args = match args {
        Value::Object(m) => m,
        _ => panic!("arguments must be an object"),
    };
    tokio::time::timeout(
        Duration::from_secs(60),
        client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool} timed out"))
    .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

/// Calls a tool that must succeed; returns its text.
pub async fn ok(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
    text(&r)
}

/// Calls a tool that must fail with a tool error; returns its text.
pub async fn tool_err(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args).await;
    assert_eq!(r.is_error, Some(true), "{tool} should fail: {}", text(&r));
    text(&r)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The HTTP-server scenario of the issue, through any client connection.
pub async fn http_debug_session(client: &Client) {
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tmux_capture_pane",
            "tmux_create_pane",
            "tmux_kill_pane",
            "tmux_list_panes",
            "tmux_send_keys",
            "tmux_wait_for"
        ]
    );
    let send = tools.iter().find(|t| t.name == "tmux_send_keys").unwrap();
    assert_eq!(
        Value::Object((*send.input_schema).clone())["required"],
        json!(["pane_id", "keys"])
    );

    let port = free_port();
    let created = ok(
        client,
        "tmux_create_pane",
        json!({"command": format!("python3 -u -m http.server {port} --bind 127.0.0.1"), "name": "server"}),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&created).unwrap()["pane_id"],
        "server"
    );
    ok(
        client,
        "tmux_wait_for",
        json!({"pane_id": "server", "pattern": "Serving HTTP", "timeout_ms": 20000}),
    )
    .await;
    let client_pane = ok(client, "tmux_create_pane", json!({"command": "sh"})).await;
    let client_id = serde_json::from_str::<Value>(&client_pane).unwrap()["pane_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = format!(
        "python3 -c \"import urllib.request as u; print('STATUS', u.urlopen('http://127.0.0.1:{port}/').status)\"\n"
    );
    ok(
        client,
        "tmux_send_keys",
        json!({"pane_id": client_id, "keys": req}),
    )
    .await;
    ok(
        client,
        "tmux_wait_for",
        json!({"pane_id": client_id, "pattern": "STATUS 200", "timeout_ms": 20000}),
    )
    .await;
    ok(
        client,
        "tmux_wait_for",
        json!({"pane_id": "server", "pattern": "GET / HTTP", "timeout_ms": 20000}),
    )
    .await;
    let server_out = ok(
        client,
        "tmux_capture_pane",
        json!({"pane_id": "server", "lines": 20}),
    )
    .await;
    assert!(
        server_out.contains("\"GET / HTTP/1.1\" 200"),
        "{server_out}"
    );
    let client_out = ok(client, "tmux_capture_pane", json!({"pane_id": client_id})).await;
    assert!(client_out.contains("STATUS 200"), "{client_out}");
    ok(client, "tmux_kill_pane", json!({"pane_id": "server"})).await;
    let list: Value =
        serde_json::from_str(&ok(client, "tmux_list_panes", json!({})).await).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["pane_id"], client_id.as_str());
    assert_eq!(list[0]["status"], "running");
}

/// A server driven with raw JSON-RPC lines (for what a well-behaved client never sends).
pub struct Raw {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Raw {
    pub fn start(mut cmd: Command) -> Raw {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Raw {
            child,
            stdin,
            lines,
        }
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn send_json(&mut self, v: Value) {
        self.send(&v.to_string());
    }

    /// The next frame on stdout (each must be JSON).
    pub fn recv(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("no answer within 30 s");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout is not a JSON frame ({e}): {line}"))
    }

    pub fn initialize(&mut self) {
        self.send_json(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        );
        let r = self.recv();
        assert!(r["result"]["serverInfo"].is_object(), "{r}");
        self.send_json(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    pub fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        self.send_json(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}));
        self.recv()
    }

    /// Closes stdin (the client goes away) and waits for the process to exit.
    pub fn hang_up(&mut self) -> std::process::ExitStatus {
        self.stdin = None;
        self.wait(Duration::from_secs(10))
    }

    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
