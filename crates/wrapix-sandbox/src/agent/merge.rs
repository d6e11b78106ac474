//! The JSON edits wrapix makes to Claude Code's files: its notification hooks in
//! `settings.json` and its MCP servers in `.claude.json`, merged with the user's own entries.
//! Pure functions on `serde_json::Value`s; the files are read and written by the caller. What
//! wrapix adds comes from the types in [`super::claude`]; the user's own entries are kept as
//! they are.

use std::collections::BTreeMap;

use wrapix_spec::McpServer;

use super::claude::{is_wrapix_hook, HookEvent, HookGroup, McpEntry};

pub fn to_json_text(v: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(v).unwrap_or_default();
    text.push(b'\n');
    text
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
        map.insert(name.clone(), McpEntry::stdio(server).to_value());
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
    let hooks = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?
        .entry("hooks")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("\"hooks\" is not a JSON object")?;
    for event in HookEvent::ALL {
        let list = hooks
            .entry(event.name())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| format!("\"hooks.{}\" is not a JSON array", event.name()))?;
        list.retain(|group| {
            let entries = group.get("hooks").and_then(Value::as_array);
            !entries.is_some_and(|e| !e.is_empty() && e.iter().all(is_wrapix_hook))
        });
        list.push(HookGroup::notify(event).to_value());
    }
    Ok(*settings != before)
}
