//! Agent wiring for Claude Code: where its state lives, how it logs in.
//!
//! * `home = "project"` (default): state in `<project>/.wrapix/agent/claude/`, mounted as
//!   `~/.claude` with `CLAUDE_CONFIG_DIR` pointing there (so `.claude.json` lives inside it too).
//!   Seeded once by *copying* the host's settings, memory, `.claude.json` and credentials.
//!   Nothing the agent writes reaches the host's own Claude config.
//! * `home = "host"`: the host's `~/.claude` read-write, and `~/.claude.json` copied into a
//!   private per-run home and copied back atomically afterwards (Claude rewrites it by rename,
//!   so it can never be bind-mounted). The agent can then change the host's Claude config,
//!   including hooks that run outside the sandbox: documented in docs/security.md.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use wrapix_spec::{AgentHome, McpServer, MountMode, SandboxPath, Spec};

use crate::error::SandboxError;
use crate::prepare::Bind;

/// What `wire_claude` adds to a run.
#[derive(Debug, Default)]
pub struct Wiring {
    pub binds: Vec<Bind>,
    pub env: BTreeMap<String, String>,
    pub home_source: Option<PathBuf>,
    pub after_exit: Vec<AfterExit>,
}

/// Work after the sandbox exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterExit {
    /// Copy `from` over `to` atomically if it changed, then remove `staging`.
    CopyBack {
        from: PathBuf,
        to: PathBuf,
        staging: PathBuf,
        /// `mcpServers` entries wrapix put into `from`: restored from `to` (or removed)
        /// before the copy, so the host's own config never gets them.
        mcp_servers: Vec<String>,
    },
}

/// Files copied from the host's `~/.claude/` into a new project agent dir.
const SEED_FILES: &[&str] = &["settings.json", "CLAUDE.md", ".credentials.json"];

/// `dry_run`: compute the same wiring without creating or copying anything.
pub fn wire_claude(
    spec: &Spec,
    home: &SandboxPath,
    host_env: &BTreeMap<String, String>,
    dry_run: bool,
) -> Result<Wiring, SandboxError> {
    let mut w = Wiring::default();
    let claude_dir = home.join(".claude");
    w.env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
    if let Some(token) = oauth_token(&spec.user.home, host_env) {
        w.env.insert("CLAUDE_CODE_OAUTH_TOKEN".into(), token);
    }
    if spec.agent.forward_api_key {
        if let Some(key) = host_env.get("ANTHROPIC_API_KEY") {
            w.env.insert("ANTHROPIC_API_KEY".into(), key.clone());
        }
    }
    let host_claude = spec.user.home.join(".claude");
    match spec.agent.home {
        AgentHome::Project => {
            let dir = if dry_run {
                spec.project.join(".wrapix/agent/claude")
            } else {
                let dir = project_agent_dir(
                    &spec.project,
                    &host_claude,
                    &spec.user.home.join(".claude.json"),
                )?;
                add_notify_hooks(&dir.join("settings.json"))?;
                register_mcp_servers(
                    &dir.join(".claude.json"),
                    &spec.mcp,
                    Some(&spec.project.join(".wrapix/agent").join(MCP_RECORD)),
                )?;
                dir
            };
            w.binds.push(Bind {
                source: dir,
                dest: claude_dir.clone(),
                mode: MountMode::ReadWrite,
            });
            w.env
                .insert("CLAUDE_CONFIG_DIR".into(), claude_dir.to_string());
        }
        AgentHome::Host => {
            if !dry_run {
                mkdir_private(&host_claude)?;
            }
            w.binds.push(Bind {
                source: host_claude,
                dest: claude_dir,
                mode: MountMode::ReadWrite,
            });
            let staging = staging_home(&spec.project, dry_run)?;
            let host_json = spec.user.home.join(".claude.json");
            let inside = staging.join(".claude.json");
            if host_json.exists() && !dry_run {
                std::fs::copy(&host_json, &inside).map_err(|e| {
                    SandboxError::io(format!("copy {} into the sandbox", host_json.display()), e)
                })?;
            }
            if !dry_run && !spec.mcp.is_empty() {
                register_mcp_servers(&inside, &spec.mcp, None)?;
            }
            w.home_source = Some(staging.clone());
            w.after_exit.push(AfterExit::CopyBack {
                from: inside,
                to: host_json,
                staging,
                mcp_servers: spec.mcp.keys().cloned().collect(),
            });
        }
    }
    Ok(w)
}

/// `CLAUDE_CODE_OAUTH_TOKEN` from the host environment, else `~/.config/wrapix/claude-token`.
fn oauth_token(host_home: &Path, env: &BTreeMap<String, String>) -> Option<String> {
    if let Some(t) = env.get("CLAUDE_CODE_OAUTH_TOKEN").filter(|t| !t.is_empty()) {
        return Some(t.clone());
    }
    let config = env
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| host_home.join(".config"));
    let token = std::fs::read_to_string(config.join("wrapix/claude-token")).ok()?;
    let token = token.trim();
    (!token.is_empty() && !token.contains('\0')).then(|| token.to_owned())
}

/// `<project>/.wrapix/agent/claude`, created and seeded on first use.
fn project_agent_dir(
    project: &Path,
    host_claude: &Path,
    host_json: &Path,
) -> Result<PathBuf, SandboxError> {
    let wrapix_dir = project.join(".wrapix");
    mkdir_private(&wrapix_dir)?;
    let ignore = wrapix_dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# wrapix: agent state, never committed\n*\n")
            .map_err(|e| SandboxError::io(format!("write {}", ignore.display()), e))?;
    }
    let dir = wrapix_dir.join("agent/claude");
    if dir.exists() {
        return Ok(dir);
    }
    // Seed into a temporary folder and rename, so a failed seed is never half-used.
    let tmp = wrapix_dir.join("agent/.claude.seeding");
    let _ = std::fs::remove_dir_all(&tmp);
    mkdir_private(&tmp)?;
    for name in SEED_FILES {
        copy_if_exists(&host_claude.join(name), &tmp.join(name))?;
    }
    copy_if_exists(host_json, &tmp.join(".claude.json"))?;
    std::fs::rename(&tmp, &dir)
        .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
    Ok(dir)
}

fn copy_if_exists(from: &Path, to: &Path) -> Result<(), SandboxError> {
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::io(format!("copy {}", from.display()), e)),
    }
}

fn mkdir_private(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(SandboxError::io(format!("create {}", dir.display()), e)),
    }
}

/// A private per-run home for `home = "host"`, under `<project>/.wrapix/run/`.
fn staging_home(project: &Path, dry_run: bool) -> Result<PathBuf, SandboxError> {
    let base = project.join(".wrapix/run");
    let dir = base.join(format!("home-{}", std::process::id()));
    if dry_run {
        return Ok(dir);
    }
    mkdir_private(&base)?;
    let _ = std::fs::remove_dir_all(&dir);
    mkdir_private(&dir)?;
    Ok(dir)
}

/// Runs the after-exit work; errors are reported, never dropped.
pub fn after_exit(work: &[AfterExit]) -> Result<(), SandboxError> {
    for w in work {
        match w {
            AfterExit::CopyBack {
                from,
                to,
                staging,
                mcp_servers,
            } => {
                let result = copy_back(from, to, mcp_servers);
                let _ = std::fs::remove_dir_all(staging);
                result?;
            }
        }
    }
    Ok(())
}

/// Replaces `to` with `from` by writing a temporary file beside `to`, fsync, rename.
/// The `mcpServers` entries named in `ours` are first set back to what `to` has (or removed).
fn copy_back(from: &Path, to: &Path, ours: &[String]) -> Result<(), SandboxError> {
    let mut new = match std::fs::read(from) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SandboxError::io(format!("read {}", from.display()), e)),
    };
    if !ours.is_empty() {
        // When the agent left something that is not JSON, it is copied back as it is: the
        // user's data matters more than removing our entries.
        if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&new) {
            let host: Option<serde_json::Value> = std::fs::read(to)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if restore_mcp_servers(&mut doc, host.as_ref(), ours) {
                new = to_json_text(&doc);
            }
        }
    }
    if std::fs::read(to).ok().as_deref() == Some(new.as_slice()) {
        return Ok(());
    }
    write_atomic(to, &new).map_err(|e| {
        SandboxError::io(
            format!("copy the agent's .claude.json back to {}", to.display()),
            e,
        )
    })
}

/// Replaces `path` with `bytes` (mode 0600): a temporary file beside it, fsync, rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.wrapix-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The in-sandbox command the notification hooks run (see wrapix-notify).
const NOTIFY_COMMAND: &str = "/run/wrapix/bin/wrapix notify";

/// Adds wrapix's `Stop` and `Notification` hooks (desktop notifications through
/// `wrapix notify`) to the agent's `settings.json`, keeping the user's own hooks and settings.
/// Written atomically, and only when something changed; settings that are not valid JSON are
/// a loud error, never overwritten.
fn add_notify_hooks(path: &Path) -> Result<(), SandboxError> {
    let mut settings = read_json(path)?;
    let changed = merge_notify_hooks(&mut settings).map_err(|problem| {
        SandboxError::io(
            format!("add notification hooks to {}", path.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, problem),
        )
    })?;
    if !changed {
        return Ok(());
    }
    write_atomic(path, &to_json_text(&settings))
        .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))
}

fn to_json_text(v: &serde_json::Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(v).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Reads a JSON object file: missing or blank is `{}`; anything that is not JSON is a loud
/// error and the file is left alone.
fn read_json(path: &Path) -> Result<serde_json::Value, SandboxError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            SandboxError::io(
                format!(
                    "read {} (fix or remove it: it is not valid JSON)",
                    path.display()
                ),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(SandboxError::io(format!("read {}", path.display()), e)),
    }
}

/// The file (beside the agent's state) that lists the `mcpServers` wrapix wrote, so that a
/// server removed from `wrapix.toml` is removed from the agent's config too, while servers
/// the user added themselves are never touched.
const MCP_RECORD: &str = "wrapix-mcp-servers.json";

/// Registers `servers` in Claude Code's `mcpServers` (in `.claude.json`, user scope), merged
/// with the user's own entries. Written atomically and only when something changed.
fn register_mcp_servers(
    claude_json: &Path,
    servers: &BTreeMap<String, McpServer>,
    record: Option<&Path>,
) -> Result<(), SandboxError> {
    let previous: Vec<String> = match record.map(std::fs::read) {
        Some(Ok(b)) => serde_json::from_slice(&b).unwrap_or_default(),
        _ if servers.is_empty() => return Ok(()),
        _ => Vec::new(),
    };
    let mut doc = read_json(claude_json)?;
    let changed = merge_mcp_servers(&mut doc, servers, &previous).map_err(|problem| {
        SandboxError::io(
            format!("register MCP servers in {}", claude_json.display()),
            std::io::Error::new(std::io::ErrorKind::InvalidData, problem),
        )
    })?;
    if changed {
        write_atomic(claude_json, &to_json_text(&doc))
            .map_err(|e| SandboxError::io(format!("write {}", claude_json.display()), e))?;
    }
    if let Some(record) = record {
        let names: Vec<&String> = servers.keys().collect();
        let names = serde_json::to_vec(&names).unwrap_or_default();
        if std::fs::read(record).ok().as_deref() != Some(names.as_slice()) {
            write_atomic(record, &names)
                .map_err(|e| SandboxError::io(format!("write {}", record.display()), e))?;
        }
    }
    Ok(())
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
fn merge_mcp_servers(
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
fn restore_mcp_servers(
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
fn merge_notify_hooks(settings: &mut serde_json::Value) -> Result<bool, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_hooks_merge_with_the_users_and_are_idempotent() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = t.path().join("settings.json");
        std::fs::write(
            &path,
            r#"{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command","command":"say done"}]}],
               "PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"audit"}]}]}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        add_notify_hooks(&path).unwrap_or_else(|e| panic!("{e}"));
        let read = || -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let s = read();
        assert_eq!(s["model"], "opus");
        assert_eq!(s["hooks"]["Stop"][0]["hooks"][0]["command"], "say done");
        assert_eq!(
            s["hooks"]["Stop"][1]["hooks"][0]["command"],
            "/run/wrapix/bin/wrapix notify --hook Stop"
        );
        assert_eq!(
            s["hooks"]["Notification"][0]["hooks"][0]["command"],
            "/run/wrapix/bin/wrapix notify --hook Notification"
        );
        assert_eq!(s["hooks"]["PreToolUse"][0]["matcher"], "Bash");
        add_notify_hooks(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(), s);
        assert_eq!(std::fs::read_dir(t.path()).map(|d| d.count()).ok(), Some(1));
    }

    #[test]
    fn notify_hooks_refuse_bad_settings() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = t.path().join("settings.json");
        std::fs::write(&path, "{not json").unwrap_or_else(|e| panic!("{e}"));
        assert!(add_notify_hooks(&path).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("{not json")
        );
        std::fs::write(&path, r#"{"hooks":{"Stop":"x"}}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(add_notify_hooks(&path).is_err());
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        add_notify_hooks(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("--hook Stop"));
    }

    #[test]
    fn project_dir_is_seeded_once_by_copy() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host_claude = t.path().join("home/.claude");
        std::fs::create_dir_all(&host_claude).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(host_claude.join("settings.json"), "{\"a\":1}")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(host_claude.join("history.jsonl"), "secret history")
            .unwrap_or_else(|e| panic!("{e}"));
        let host_json = t.path().join("home/.claude.json");
        std::fs::write(&host_json, "{}").unwrap_or_else(|e| panic!("{e}"));
        let project = t.path().join("p");
        std::fs::create_dir(&project).unwrap_or_else(|e| panic!("{e}"));

        let dir =
            project_agent_dir(&project, &host_claude, &host_json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(dir.join("settings.json"))
                .ok()
                .as_deref(),
            Some("{\"a\":1}")
        );
        assert!(dir.join(".claude.json").exists());
        assert!(!dir.join("history.jsonl").exists());
        assert!(project.join(".wrapix/.gitignore").exists());
        // A second run keeps what the agent wrote.
        std::fs::write(dir.join("settings.json"), "changed").unwrap_or_else(|e| panic!("{e}"));
        let again =
            project_agent_dir(&project, &host_claude, &host_json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(again.join("settings.json"))
                .ok()
                .as_deref(),
            Some("changed")
        );
        assert_eq!(
            std::fs::read_to_string(host_claude.join("settings.json"))
                .ok()
                .as_deref(),
            Some("{\"a\":1}")
        );
    }

    #[test]
    fn copy_back_is_atomic_and_skips_unchanged() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let from = t.path().join("in.json");
        let to = t.path().join("host.json");
        std::fs::write(&from, "new").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&to, "old").unwrap_or_else(|e| panic!("{e}"));
        copy_back(&from, &to, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&to).ok().as_deref(), Some("new"));
        let leftovers: Vec<_> = std::fs::read_dir(t.path())
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert_eq!(leftovers.len(), 2);
    }

    fn tmux_debug() -> BTreeMap<String, McpServer> {
        let mut env = BTreeMap::new();
        env.insert("TMUX_DEBUG_AUDIT".to_owned(), "/workspace/a.log".to_owned());
        BTreeMap::from([(
            "tmux-debug".to_owned(),
            McpServer {
                command: vec![
                    "/run/wrapix/bin/wrapix".into(),
                    "mcp".into(),
                    "tmux-debug".into(),
                ],
                env,
                needs: Vec::new(),
                builtin: true,
            },
        )])
    }

    #[test]
    fn mcp_servers_merge_with_the_users_and_leave_with_the_config() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let json = t.path().join(".claude.json");
        let record = t.path().join(MCP_RECORD);
        std::fs::write(
            &json,
            r#"{"numStartups":3,"mcpServers":{"mine":{"type":"stdio","command":"my-mcp","args":[]}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let read = || -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        register_mcp_servers(&json, &tmux_debug(), Some(&record)).unwrap_or_else(|e| panic!("{e}"));
        let doc = read();
        assert_eq!(doc["numStartups"], 3);
        assert_eq!(doc["mcpServers"]["mine"]["command"], "my-mcp");
        let ours = &doc["mcpServers"]["tmux-debug"];
        assert_eq!(ours["type"], "stdio");
        assert_eq!(ours["command"], "/run/wrapix/bin/wrapix");
        assert_eq!(ours["args"], serde_json::json!(["mcp", "tmux-debug"]));
        assert_eq!(ours["env"]["TMUX_DEBUG_AUDIT"], "/workspace/a.log");
        // Idempotent: nothing is rewritten.
        let mtime = || std::fs::metadata(&json).and_then(|m| m.modified()).ok();
        let before = mtime();
        register_mcp_servers(&json, &tmux_debug(), Some(&record)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mtime(), before);
        // Removed from the config: removed from the agent's too, the user's own stays.
        register_mcp_servers(&json, &BTreeMap::new(), Some(&record))
            .unwrap_or_else(|e| panic!("{e}"));
        let doc = read();
        assert!(doc["mcpServers"].get("tmux-debug").is_none(), "{doc}");
        assert_eq!(doc["mcpServers"]["mine"]["command"], "my-mcp");
        // Only the two files: no temporaries left.
        assert_eq!(std::fs::read_dir(t.path()).map(|d| d.count()).ok(), Some(2));
    }

    #[test]
    fn mcp_servers_refuse_bad_json_and_keep_it() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let json = t.path().join(".claude.json");
        for bad in ["{oops", r#"{"mcpServers":[1]}"#, "[]"] {
            std::fs::write(&json, bad).unwrap_or_else(|e| panic!("{e}"));
            let e = register_mcp_servers(&json, &tmux_debug(), None)
                .err()
                .unwrap_or_else(|| panic!("accepted {bad}"));
            assert!(e.to_string().contains(".claude.json"), "{e}");
            assert_eq!(std::fs::read_to_string(&json).ok().as_deref(), Some(bad));
        }
        // No file and no servers: nothing is created.
        std::fs::remove_file(&json).unwrap_or_else(|e| panic!("{e}"));
        register_mcp_servers(&json, &BTreeMap::new(), Some(&t.path().join(MCP_RECORD)))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!json.exists());
    }

    #[test]
    fn copy_back_keeps_our_mcp_servers_out_of_the_host_config() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host = t.path().join("host.json");
        let inside = t.path().join("in.json");
        std::fs::write(
            &host,
            r#"{"mcpServers":{"tmux-debug":{"command":"theirs"},"mine":{"command":"m"}}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(&host, &inside).unwrap_or_else(|e| panic!("{e}"));
        let mut servers = tmux_debug();
        servers.insert(
            "extra".into(),
            McpServer {
                command: vec!["x".into()],
                env: BTreeMap::new(),
                needs: Vec::new(),
                builtin: false,
            },
        );
        register_mcp_servers(&inside, &servers, None).unwrap_or_else(|e| panic!("{e}"));
        // The agent changes something of its own while it runs.
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&inside).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        doc["numStartups"] = serde_json::json!(7);
        std::fs::write(&inside, doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = servers.keys().cloned().collect();
        copy_back(&inside, &host, &names).unwrap_or_else(|e| panic!("{e}"));
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&host).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back["numStartups"], 7);
        assert_eq!(back["mcpServers"]["tmux-debug"]["command"], "theirs");
        assert_eq!(back["mcpServers"]["mine"]["command"], "m");
        assert!(back["mcpServers"].get("extra").is_none(), "{back}");
        // Not JSON any more: copied back untouched rather than lost.
        std::fs::write(&inside, "agent wrote this").unwrap_or_else(|e| panic!("{e}"));
        copy_back(&inside, &host, &names).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&host).ok().as_deref(),
            Some("agent wrote this")
        );
    }

    #[test]
    fn token_from_env_then_file() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut env = BTreeMap::new();
        assert_eq!(oauth_token(t.path(), &env), None);
        std::fs::create_dir_all(t.path().join(".config/wrapix")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(t.path().join(".config/wrapix/claude-token"), "tok-file\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(oauth_token(t.path(), &env).as_deref(), Some("tok-file"));
        env.insert("CLAUDE_CODE_OAUTH_TOKEN".into(), "tok-env".into());
        assert_eq!(oauth_token(t.path(), &env).as_deref(), Some("tok-env"));
    }
}
