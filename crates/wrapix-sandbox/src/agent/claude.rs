//! Everything wrapix writes into Claude Code's own files, as types: the one source of the
//! keys and values that reach the agent (`settings.json` hooks, `.claude.json` MCP servers).
//! Each type serializes to exactly the shape Claude Code's settings schema accepts; what they
//! produce is checked against a pinned, real Claude Code (`claude doctor` reports no invalid
//! settings, `claude mcp list` sees the servers: `tests/suite/claude.rs`). The user's own
//! entries in those files stay untyped JSON and are kept as they are ([`super::merge`]).

use std::collections::BTreeMap;

use serde::Serialize;

/// The in-sandbox command the notification hooks run (see wrapix-notify).
pub const NOTIFY_COMMAND: &str = "/run/wrapix/bin/wrapix notify";

/// The hook events wrapix uses (names as in Claude Code's `hooks` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// The agent finished its turn.
    Stop,
    /// The agent needs the user (a permission prompt, an idle prompt).
    Notification,
}

impl HookEvent {
    pub const ALL: [HookEvent; 2] = [HookEvent::Stop, HookEvent::Notification];

    pub fn name(self) -> &'static str {
        match self {
            HookEvent::Stop => "Stop",
            HookEvent::Notification => "Notification",
        }
    }
}

/// The kind of a hook; wrapix only runs commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookKind {
    Command,
}

/// One hook: `{"type": "command", "command": "...", "timeout": N}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    #[serde(rename = "type")]
    pub kind: HookKind,
    pub command: String,
    /// Seconds.
    pub timeout: u32,
}

/// A group of hooks under an event: `{"matcher": "...", "hooks": [...]}` (no matcher: every
/// occurrence of the event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<String>,
    pub hooks: Vec<Hook>,
}

impl HookGroup {
    /// wrapix's notification hook for `event`.
    pub fn notify(event: HookEvent) -> HookGroup {
        HookGroup {
            matcher: None,
            hooks: vec![Hook {
                kind: HookKind::Command,
                command: format!("{NOTIFY_COMMAND} --hook {}", event.name()),
                timeout: 10,
            }],
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Whether a hook (the user's JSON) is one wrapix wrote.
pub fn is_wrapix_hook(hook: &serde_json::Value) -> bool {
    hook.get("command")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|c| c.starts_with(NOTIFY_COMMAND))
}

/// The transport of an MCP server entry; wrapix registers stdio servers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    Stdio,
}

/// One `mcpServers.NAME` entry of `.claude.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct McpEntry {
    #[serde(rename = "type")]
    pub transport: McpTransport,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

impl McpEntry {
    /// The entry for a configured server (its command is never empty: validated in the spec).
    pub fn stdio(server: &wrapix_spec::McpServer) -> McpEntry {
        let (command, args) = server
            .command
            .split_first()
            .map(|(c, a)| (c.clone(), a.to_vec()))
            .unwrap_or_default();
        McpEntry {
            transport: McpTransport::Stdio,
            command,
            args,
            env: server.env.clone(),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact JSON shapes (what the pinned Claude Code accepts: tests/suite/claude.rs).
    #[test]
    fn shapes_are_what_claude_code_reads() {
        assert_eq!(
            HookGroup::notify(HookEvent::Stop).to_value(),
            serde_json::json!({"hooks": [{
                "type": "command",
                "command": "/run/wrapix/bin/wrapix notify --hook Stop",
                "timeout": 10
            }]})
        );
        let server = wrapix_spec::McpServer {
            command: vec!["wrapix".into(), "mcp".into(), "tmux-debug".into()],
            env: [("A".to_owned(), "b".to_owned())].into_iter().collect(),
            needs: Vec::new(),
            builtin: true,
        };
        assert_eq!(
            McpEntry::stdio(&server).to_value(),
            serde_json::json!({
                "type": "stdio",
                "command": "wrapix",
                "args": ["mcp", "tmux-debug"],
                "env": {"A": "b"}
            })
        );
        assert!(is_wrapix_hook(
            &HookGroup::notify(HookEvent::Notification).to_value()["hooks"][0]
        ));
        assert!(!is_wrapix_hook(&serde_json::json!({"command": "my-hook"})));
    }
}
