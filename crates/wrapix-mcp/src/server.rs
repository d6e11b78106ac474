//! The `tmux-debug` tools. Every problem the agent can fix is a tool result with
//! `isError: true` and a plain-text hint; only a broken tmux is an MCP error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Audit, Record};
use crate::keys;
use crate::text;
use crate::tmux::{PaneState, Tmux};

/// At most this many panes (running or exited) at once.
pub const MAX_PANES: usize = 64;
pub const DEFAULT_LINES: i64 = 100;
pub const MAX_LINES: i64 = 1000;
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;
pub const MAX_NAME_CHARS: usize = 64;
pub const DEFAULT_WAIT_MS: u64 = 30_000;
pub const MAX_WAIT_MS: u64 = 600_000;
pub const MAX_PATTERN_BYTES: usize = 1024;
/// How often `tmux_wait_for` looks at the pane.
const POLL: Duration = Duration::from_millis(50);
/// How long to wait for tmux to report the exit status of a pane whose terminal has closed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct CreatePaneParams {
    /// Command to run in the pane, through `sh -c` inside the sandbox (e.g. `RUST_LOG=debug cargo run`).
    pub command: String,
    /// Optional human-readable name; it becomes the pane id (letters, digits, `.`, `_`, `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct SendKeysParams {
    /// Target pane id from tmux_create_pane or tmux_list_panes.
    pub pane_id: String,
    /// Keystrokes to send. One tmux key name (`Enter`, `^C`, `C-d`, `Escape`, `Up`, …) is sent as
    /// that key; anything else is typed literally, each newline pressing Enter.
    pub keys: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct CapturePaneParams {
    /// Target pane id.
    pub pane_id: String,
    /// Number of lines to capture (default: 100, max: 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct PaneParams {
    /// Target pane id.
    pub pane_id: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct WaitForParams {
    /// Target pane id.
    pub pane_id: String,
    /// Regular expression (Rust regex syntax) to wait for in the pane's new output, e.g. `listening on`.
    pub pattern: String,
    /// How long to wait, in milliseconds (default: 30000, max: 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct Pane {
    tmux_id: String,
    name: Option<String>,
    command: String,
    /// Captures written to the full audit so far.
    captures: u32,
    /// Lines of output `tmux_wait_for` has already looked past.
    seen_lines: usize,
}

#[derive(Debug, Default)]
struct State {
    panes: BTreeMap<String, Pane>,
    /// Ids being created (counted against the limit).
    creating: Vec<String>,
    next: u64,
}

struct Inner {
    tmux: Tmux,
    audit: Audit,
    state: Mutex<State>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tmux.shutdown();
    }
}

/// The MCP server. Cheap to clone; all clones share one tmux server.
#[derive(Clone)]
pub struct TmuxDebug {
    inner: Arc<Inner>,
    tool_router: ToolRouter<Self>,
}

/// What a tool did, before auditing.
struct Outcome {
    text: String,
    is_error: bool,
    output_bytes: Option<usize>,
}

impl Outcome {
    fn ok(text: impl Into<String>) -> Self {
        Outcome {
            text: text.into(),
            is_error: false,
            output_bytes: None,
        }
    }
    fn err(text: impl Into<String>) -> Self {
        Outcome {
            text: text.into(),
            is_error: true,
            output_bytes: None,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

fn not_found(id: &str, known: &[String]) -> Outcome {
    let list = if known.is_empty() {
        "there are no panes; create one with tmux_create_pane".to_owned()
    } else {
        format!("existing panes: {}", known.join(", "))
    };
    Outcome::err(format!(
        "Pane '{id}' not found. Use tmux_list_panes to see active panes ({list})."
    ))
}

fn exit_note(st: &PaneState) -> String {
    match (st.exit_code, st.signal) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), None) => format!("exited with status {code}"),
        (None, None) => "exited".to_owned(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with(['.', '-'])
}

impl TmuxDebug {
    pub fn new(tmux: Tmux, audit: Audit) -> Self {
        TmuxDebug {
            inner: Arc::new(Inner {
                tmux,
                audit,
                state: Mutex::new(State::default()),
            }),
            tool_router: Self::tool_router(),
        }
    }

    /// The private folder of this server's tmux socket.
    pub fn tmux_dir(&self) -> &std::path::Path {
        self.inner.tmux.dir()
    }

    /// Stops tmux and every pane. Idempotent.
    pub fn shutdown(&self) {
        self.inner.tmux.shutdown();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn lookup(&self, id: &str) -> Result<Pane, Outcome> {
        let state = self.state();
        match state.panes.get(id) {
            Some(p) => Ok(p.clone()),
            None => Err(not_found(
                id,
                &state.panes.keys().cloned().collect::<Vec<_>>(),
            )),
        }
    }

    /// Audits the call and turns the outcome into the tool result.
    async fn finish(
        &self,
        tool: &str,
        pane_id: Option<&str>,
        arguments: &impl Serialize,
        outcome: Outcome,
    ) -> CallToolResult {
        let arguments = serde_json::to_value(arguments).unwrap_or(serde_json::Value::Null);
        let record = Record {
            ts: audit::now(),
            tool,
            pane_id,
            arguments: &arguments,
            output_bytes: outcome.output_bytes,
            error: outcome.is_error.then_some(outcome.text.as_str()),
        };
        let mut content = vec![ContentBlock::text(outcome.text.clone())];
        if let Err(e) = self.inner.audit.record(&record).await {
            tracing::error!("audit write failed: {e}");
            content.push(ContentBlock::text(format!(
                "wrapix: WARNING: this call was not written to the audit log ({e})"
            )));
        }
        if outcome.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        }
    }

    async fn create(&self, p: &CreatePaneParams) -> Result<(String, Outcome), ErrorData> {
        if p.command.trim().is_empty() {
            return Ok((
                String::new(),
                Outcome::err("command is empty. Give the command to run, e.g. \"python3 -m http.server 8000\"."),
            ));
        }
        if p.command.len() > MAX_COMMAND_BYTES {
            return Ok((String::new(), Outcome::err(format!(
                "command is {} bytes; the limit is {MAX_COMMAND_BYTES}. Put long scripts in a file under /workspace and run that.",
                p.command.len()
            ))));
        }
        if p.command.contains('\0') {
            return Ok((
                String::new(),
                Outcome::err(
                    "command contains a NUL byte, which no program can receive. Remove it.",
                ),
            ));
        }
        if let Some(name) = &p.name {
            if !valid_name(name) {
                return Ok((String::new(), Outcome::err(format!(
                    "name {name:?} is not usable as a pane id. Use up to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-', e.g. \"server\"."
                ))));
            }
        }
        let id = {
            let mut state = self.state();
            let used = state.panes.len() + state.creating.len();
            if used >= MAX_PANES {
                return Ok((String::new(), Outcome::err(format!(
                    "Pane limit reached ({MAX_PANES} panes, exited ones included). Kill panes you no longer need with tmux_kill_pane; tmux_list_panes shows them."
                ))));
            }
            let id = match &p.name {
                Some(name) => name.clone(),
                None => loop {
                    state.next += 1;
                    let id = format!("pane-{}", state.next);
                    if !state.panes.contains_key(&id) && !state.creating.contains(&id) {
                        break id;
                    }
                },
            };
            if state.panes.contains_key(&id) || state.creating.contains(&id) {
                return Ok((id.clone(), Outcome::err(format!(
                    "A pane named '{id}' already exists. Pick another name, or kill it first with tmux_kill_pane."
                ))));
            }
            state.creating.push(id.clone());
            id
        };
        let result = self.inner.tmux.new_pane(&id, &p.command).await;
        let mut state = self.state();
        state.creating.retain(|c| c != &id);
        let tmux_id = result.map_err(internal)?;
        state.panes.insert(
            id.clone(),
            Pane {
                tmux_id,
                name: p.name.clone(),
                command: p.command.clone(),
                captures: 0,
                seen_lines: 0,
            },
        );
        drop(state);
        let body = serde_json::json!({ "pane_id": id, "name": p.name, "status": "running" });
        Ok((id, Outcome::ok(body.to_string())))
    }

    /// tmux marks a pane dead when its terminal closes, and learns the exit status a moment
    /// later (when it reaps the process): probe briefly for it.
    async fn settle(&self, state: PaneState) -> Result<PaneState, ErrorData> {
        if !state.dead || state.exit_code.is_some() || state.signal.is_some() {
            return Ok(state);
        }
        // tmux closes the terminal before it reaps the child; on a loaded host the status can
        // take a while to arrive. Bounded by time, not by tries.
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match self
                .inner
                .tmux
                .pane_state(&state.tmux_id)
                .await
                .map_err(internal)?
            {
                Some(st) if st.exit_code.is_some() || st.signal.is_some() => return Ok(st),
                Some(_) => {}
                None => break,
            }
        }
        Ok(state)
    }

    async fn send_keys(&self, p: &SendKeysParams) -> Result<Outcome, ErrorData> {
        let pane = match self.lookup(&p.pane_id) {
            Ok(pane) => pane,
            Err(o) => return Ok(o),
        };
        let keys = match keys::parse(&p.keys) {
            Ok(k) => k,
            Err(msg) => return Ok(Outcome::err(msg)),
        };
        let args = keys::send_keys_args(&pane.tmux_id, &keys);
        let state = match self.inner.tmux.send(&pane.tmux_id, &args).await {
            Ok(Some(st)) => st,
            Ok(None) => match self.inner.tmux.pane_state(&pane.tmux_id).await {
                Ok(Some(st)) if st.dead => st,
                Ok(_) => return Ok(not_found(&p.pane_id, &[])),
                Err(e) => return Err(internal(e)),
            },
            Err(e) => return Err(internal(e)),
        };
        if state.dead {
            return Ok(Outcome::err(format!(
                "Pane '{}' has {}; nothing reads its keys. Read its output with tmux_capture_pane, then remove it with tmux_kill_pane.",
                p.pane_id,
                exit_note(&state)
            )));
        }
        Ok(Outcome::ok(format!(
            "Sent {} to pane '{}'. Read the result with tmux_capture_pane or tmux_wait_for.",
            if keys.len() == 1 {
                "1 key step"
            } else {
                "keys"
            },
            p.pane_id
        )))
    }

    async fn capture(&self, p: &CapturePaneParams) -> Result<Outcome, ErrorData> {
        let lines = p.lines.unwrap_or(DEFAULT_LINES);
        if !(1..=MAX_LINES).contains(&lines) {
            return Ok(Outcome::err(format!(
                "lines = {lines} is out of range; ask for 1 to {MAX_LINES} lines (default {DEFAULT_LINES}). For more, capture in steps or have the command write a log file under /workspace."
            )));
        }
        let pane = match self.lookup(&p.pane_id) {
            Ok(pane) => pane,
            Err(o) => return Ok(o),
        };
        // Scrollback to ask tmux for: enough to fill `lines` even when the screen is empty.
        let history = u32::try_from(lines).unwrap_or(1000);
        let Some((state, raw)) = self
            .inner
            .tmux
            .snapshot(&pane.tmux_id, Some(history))
            .await
            .map_err(internal)?
        else {
            return Ok(not_found(&p.pane_id, &[]));
        };
        let (state, raw) = if state.dead && state.exit_code.is_none() && state.signal.is_none() {
            // Just exited: let tmux reap it and read the last output, then look again.
            self.settle(state.clone()).await?;
            match self
                .inner
                .tmux
                .snapshot(&pane.tmux_id, Some(history))
                .await
                .map_err(internal)?
            {
                Some(again) => again,
                None => (state, raw),
            }
        } else {
            (state, raw)
        };
        let n = usize::try_from(lines).unwrap_or(1000);
        let mut clean = text::strip_ansi(&raw);
        if state.dead {
            clean = text::drop_dead_banner(&clean);
        }
        let mut out = text::tail_lines(&clean, n);
        if state.dead {
            out.push_str(&format!(
                "[wrapix: the pane's command {}]\n",
                exit_note(&state)
            ));
        }
        let out = text::limit_bytes(out, text::MAX_CAPTURE_BYTES);
        let mut outcome = Outcome::ok(out);
        outcome.output_bytes = Some(outcome.text.len());
        if self.inner.audit.keeps_captures() {
            let seq = {
                let mut st = self.state();
                match st.panes.get_mut(&p.pane_id) {
                    Some(pane) => {
                        pane.captures += 1;
                        pane.captures
                    }
                    None => 1,
                }
            };
            if let Err(e) = self
                .inner
                .audit
                .capture(&p.pane_id, seq, &outcome.text)
                .await
            {
                tracing::error!("audit write failed: {e}");
                outcome.text.push_str(&format!(
                    "\nwrapix: WARNING: this capture was not written to the audit folder ({e})"
                ));
            }
        }
        Ok(outcome)
    }

    async fn kill(&self, p: &PaneParams) -> Result<Outcome, ErrorData> {
        let pane = match self.lookup(&p.pane_id) {
            Ok(pane) => pane,
            Err(o) => return Ok(o),
        };
        let result = self.inner.tmux.kill_pane(&pane.tmux_id).await;
        self.state().panes.remove(&p.pane_id);
        match result {
            Ok(()) => Ok(Outcome::ok(format!("Killed pane '{}'.", p.pane_id))),
            // Already gone from tmux: forgetting it is all that was left to do.
            Err(crate::error::TmuxError::Failed { .. }) => Ok(Outcome::ok(format!(
                "Pane '{}' was already gone; removed it from the list.",
                p.pane_id
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    async fn list(&self) -> Result<Outcome, ErrorData> {
        let panes: Vec<(String, Pane)> = self
            .state()
            .panes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let states = if panes.is_empty() {
            Vec::new()
        } else {
            self.inner.tmux.panes().await.map_err(internal)?
        };
        let rows: Vec<serde_json::Value> = panes
            .iter()
            .map(|(id, pane)| {
                let st = states.iter().find(|s| s.tmux_id == pane.tmux_id);
                let running = st.map(|s| !s.dead).unwrap_or(false);
                serde_json::json!({
                    "pane_id": id,
                    "name": pane.name,
                    "status": if running { "running" } else { "exited" },
                    "command": pane.command,
                    "exit_code": st.and_then(|s| s.exit_code),
                    "signal": st.and_then(|s| s.signal),
                })
            })
            .collect();
        Ok(Outcome::ok(serde_json::Value::Array(rows).to_string()))
    }

    async fn wait_for(
        &self,
        p: &WaitForParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Outcome, ErrorData> {
        let timeout_ms = p.timeout_ms.unwrap_or(DEFAULT_WAIT_MS);
        if timeout_ms > MAX_WAIT_MS {
            return Ok(Outcome::err(format!(
                "timeout_ms = {timeout_ms} is over the limit of {MAX_WAIT_MS}. Wait in shorter steps and capture in between."
            )));
        }
        if p.pattern.len() > MAX_PATTERN_BYTES {
            return Ok(Outcome::err(format!(
                "pattern is {} bytes; the limit is {MAX_PATTERN_BYTES}. Match a shorter, distinctive part of the line.",
                p.pattern.len()
            )));
        }
        let re = match regex::RegexBuilder::new(&p.pattern)
            .size_limit(1 << 20)
            .build()
        {
            Ok(re) => re,
            Err(e) => {
                return Ok(Outcome::err(format!(
                    "pattern is not a valid regular expression ({e}). Escape special characters such as '.', '(' or '[' with a backslash, or match plain words."
                )))
            }
        };
        let pane = match self.lookup(&p.pane_id) {
            Ok(pane) => pane,
            Err(o) => return Ok(o),
        };
        let start = Instant::now();
        let deadline = start + Duration::from_millis(timeout_ms);
        let mut final_look = false;
        loop {
            let Some((state, raw)) = self
                .inner
                .tmux
                .snapshot(&pane.tmux_id, None)
                .await
                .map_err(internal)?
            else {
                return Ok(not_found(&p.pane_id, &[]));
            };
            let mut clean = text::strip_ansi(&raw);
            if state.dead {
                clean = text::drop_dead_banner(&clean);
            }
            let lines: Vec<&str> = clean.lines().map(str::trim_end).collect();
            let end = lines
                .iter()
                .rposition(|l| !l.is_empty())
                .map_or(0, |i| i + 1);
            let seen = self
                .state()
                .panes
                .get(&p.pane_id)
                .map_or(0, |pn| pn.seen_lines)
                .min(end);
            if let Some(i) = (seen..end).find(|i| re.is_match(lines[*i])) {
                if let Some(pn) = self.state().panes.get_mut(&p.pane_id) {
                    pn.seen_lines = i + 1;
                }
                return Ok(Outcome::ok(format!(
                    "Matched after {} ms: {}",
                    start.elapsed().as_millis(),
                    lines[i]
                )));
            }
            let tail = text::tail_lines(&clean, 20);
            if state.dead && !final_look {
                // The last output may still be on its way from the closed terminal.
                self.settle(state).await?;
                final_look = true;
                continue;
            }
            if state.dead {
                return Ok(Outcome::err(format!(
                    "Pane '{}' {} before /{}/ appeared. Last lines:\n{tail}",
                    p.pane_id,
                    exit_note(&state),
                    p.pattern
                )));
            }
            if Instant::now() >= deadline {
                return Ok(Outcome::err(format!(
                    "/{}/ did not appear in pane '{}' within {timeout_ms} ms. Last lines:\n{tail}\nCapture the pane to see more, or wait again.",
                    p.pattern, p.pane_id
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))) => {}
                _ = ctx.ct.cancelled() => {
                    return Ok(Outcome::err("Cancelled by the client."));
                }
            }
        }
    }
}

#[tool_router]
impl TmuxDebug {
    #[tool(
        description = "Create a new tmux pane running a command (through `sh -c`, inside the sandbox). Use for servers, test runners, log tails or interactive shells. Returns the pane id for the other tools. Panes stay after their command exits so its output can still be read."
    )]
    async fn tmux_create_pane(
        &self,
        Parameters(p): Parameters<CreatePaneParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let (id, outcome) = self.create(&p).await?;
        let id = (!id.is_empty()).then_some(id);
        Ok(self
            .finish("tmux_create_pane", id.as_deref(), &p, outcome)
            .await)
    }

    #[tool(
        description = "Send keystrokes to a tmux pane: text to type (each newline presses Enter), or one key name such as 'Enter', '^C' (Ctrl-C), 'C-d', 'Escape', 'Up'."
    )]
    async fn tmux_send_keys(
        &self,
        Parameters(p): Parameters<SendKeysParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let outcome = self.send_keys(&p).await?;
        Ok(self
            .finish("tmux_send_keys", Some(&p.pane_id), &p, outcome)
            .await)
    }

    #[tool(
        description = "Capture recent output from a tmux pane (escape sequences removed). Works on running and exited panes; for an exited pane the last line gives its exit status."
    )]
    async fn tmux_capture_pane(
        &self,
        Parameters(p): Parameters<CapturePaneParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let outcome = self.capture(&p).await?;
        Ok(self
            .finish("tmux_capture_pane", Some(&p.pane_id), &p, outcome)
            .await)
    }

    #[tool(description = "Terminate a tmux pane and its process, and forget it.")]
    async fn tmux_kill_pane(
        &self,
        Parameters(p): Parameters<PaneParams>,
    ) -> Result<CallToolResult, ErrorData> {
        let outcome = self.kill(&p).await?;
        Ok(self
            .finish("tmux_kill_pane", Some(&p.pane_id), &p, outcome)
            .await)
    }

    #[tool(
        description = "List all panes as JSON: pane_id, name, status (running/exited), command, exit_code."
    )]
    async fn tmux_list_panes(&self) -> Result<CallToolResult, ErrorData> {
        let outcome = self.list().await?;
        Ok(self
            .finish("tmux_list_panes", None, &serde_json::json!({}), outcome)
            .await)
    }

    #[tool(
        description = "Wait until a regular expression matches a line of the pane's new output (e.g. 'listening on'), or the timeout passes (then the result is an error with the last lines). Output already matched by an earlier wait is skipped."
    )]
    async fn tmux_wait_for(
        &self,
        Parameters(p): Parameters<WaitForParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let outcome = self.wait_for(&p, &ctx).await?;
        Ok(self
            .finish("tmux_wait_for", Some(&p.pane_id), &p, outcome)
            .await)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TmuxDebug {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "wrapix-tmux-debug",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "tmux panes inside the sandbox: run a server in one pane (tmux_create_pane), \
                 wait for it to be ready (tmux_wait_for), send requests from another pane \
                 (tmux_send_keys), and read both (tmux_capture_pane). Kill panes when done.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["server", "web-1", "a.b_c"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".hidden", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn schemas_are_derived() {
        let tools = TmuxDebug::tool_router().list_all();
        let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names.len(), 6, "{names:?}");
        let create = tools
            .iter()
            .find(|t| t.name == "tmux_create_pane")
            .map(|t| serde_json::Value::Object((*t.input_schema).clone()));
        let create = create.unwrap_or_default();
        assert_eq!(create["required"], serde_json::json!(["command"]));
        assert_eq!(create["properties"]["command"]["type"], "string");
    }
}
