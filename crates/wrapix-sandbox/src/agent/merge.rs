//! The JSON edits wrapix makes to Claude Code's files: its notification hooks in
//! `settings.json` and its MCP servers in `.claude.json`, merged with the user's own entries.
//! Pure functions on `serde_json::Value`s; the files are read and written by the caller.

use std::collections::BTreeMap;

use wrapix_spec::McpServer;

/// The in-sandbox command the notification hooks run (see wrapix-notify).
const NOTIFY_COMMAND: &str = "/run/wrapix/bin/wrapix notify";

pub fn to_json_text(v: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(v).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Claude Code's entry for one stdio server.
fn mcp_entry(server: &McpServer) -> serde_json::Value {
    serde_json::json!({
        "type": "stdio",
        "command": server.command[0],
        "args": server.command[1..],
        "env": server.env,
    })
}

/// Sets `mcpServers.NAME` for every server and removes the names in `previous` that are no
/// longer configured. Returns whether anything changed.
pub fn merge_mcp_servers(
    doc: &mut serde_json::Value,
    servers: &BTreeMap<String, McpServer>,
    previous: &[String],
) -> Result<bool, String> {
    let before = doc.clone();
    let map = doc
        .as_object_mut()
        .ok_or("the file is not a JSON object")?
        .entry("mcpServers")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or("\"mcpServers\" is not a JSON object")?;
    for name in previous {
        if !servers.contains_key(name) {
            map.remove(name);
        }
    }
    for (name, server) in servers {
        map.insert(name.clone(), mcp_entry(server));
    }
    Ok(*doc != before)
}

/// Sets the `mcpServers` entries named in `ours` back to the ones in `host` (removing those
/// `host` does not have). Returns whether anything changed.
pub fn restore_mcp_servers(
    doc: &mut serde_json::Value,
    host: Option<&serde_json::Value>,
    ours: &[String],
) -> bool {
    let host_servers = host.and_then(|h| h.get("mcpServers"));
    let Some(map) = doc
        .get_mut("mcpServers")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return false;
    };
    let mut changed = false;
    for name in ours {
        match host_servers.and_then(|h| h.get(name)) {
            Some(theirs) => {
                if map.get(name) != Some(theirs) {
                    map.insert(name.clone(), theirs.clone());
                    changed = true;
                }
            }
            None => changed |= map.remove(name).is_some(),
        }
    }
    if map.is_empty() && host_servers.is_none() {
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("mcpServers");
            changed = true;
        }
    }
    changed
}

/// Merges the hooks into `settings`: groups made only of wrapix hooks (from earlier runs) are
/// replaced, everything else is kept. Returns whether anything changed.
pub fn merge_notify_hooks(settings: &mut serde_json::Value) -> Result<bool, String> {
    use serde_json::{json, Value};
    let before = settings.clone();
    let is_ours = |h: &Value| {
        h.get("command")
            .and_then(Value::as_str)
            .is_some_and(|c| c.starts_with(NOTIFY_COMMAND))
    };
    let hooks = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?
        .entry("hooks")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("\"hooks\" is not a JSON object")?;
    for event in ["Stop", "Notification"] {
        let list = hooks
            .entry(event)
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| format!("\"hooks.{event}\" is not a JSON array"))?;
        list.retain(|group| {
            let entries = group.get("hooks").and_then(Value::as_array);
            !entries.is_some_and(|e| !e.is_empty() && e.iter().all(is_ours))
        });
        let command = format!("{NOTIFY_COMMAND} --hook {event}");
        list.push(json!({"hooks": [{"type": "command", "command": command, "timeout": 10}]}));
    }
    Ok(*settings != before)
}
