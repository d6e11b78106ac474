use std::os::unix::fs::symlink;

use super::*;

fn dir(p: &Path) -> Dir {
    Dir::open(p).unwrap()
}

fn read_value(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn notify_hooks_merge_with_the_users_and_are_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("settings.json");
    std::fs::write(
        &path,
        r#"{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command","command":"say done"}]}],
           "PreToolUse":[{"matcher":"Bash","hooks":[{"type":"command","command":"audit"}]}]}}"#,
    )
    .unwrap();
    let d = dir(t.path());
    add_notify_hooks(&d, Path::new("settings.json")).unwrap();
    let s = read_value(&path);
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
    add_notify_hooks(&d, Path::new("settings.json")).unwrap();
    assert_eq!(read_value(&path), s);
    assert_eq!(std::fs::read_dir(t.path()).map(|d| d.count()).ok(), Some(1));
}

#[test]
fn notify_hooks_refuse_bad_settings() {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("settings.json");
    let d = dir(t.path());
    let rel = Path::new("settings.json");
    std::fs::write(&path, "{not json").unwrap();
    assert!(add_notify_hooks(&d, rel).is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    std::fs::write(&path, r#"{"hooks":{"Stop":"x"}}"#).unwrap();
    assert!(add_notify_hooks(&d, rel).is_err());
    std::fs::remove_file(&path).unwrap();
    add_notify_hooks(&d, rel).unwrap();
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("--hook Stop"));
}

#[test]
fn a_planted_settings_link_is_never_read_or_written() {
    let t = tempfile::tempdir().unwrap();
    let other = t.path().join("registry-credentials.json");
    std::fs::write(&other, r#"{"auths":{"x":"secret"}}"#).unwrap();
    let state = t.path().join("claude");
    std::fs::create_dir(&state).unwrap();
    symlink(&other, state.join("settings.json")).unwrap();
    symlink(&other, state.join(".claude.json")).unwrap();
    let d = dir(&state);
    let e = add_notify_hooks(&d, Path::new("settings.json")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = register_mcp_servers(&d, &tmux_debug(), None).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        r#"{"auths":{"x":"secret"}}"#
    );
}

#[test]
fn agent_state_is_seeded_once_by_copy_outside_the_project() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    std::fs::write(home.join(".claude/settings.json"), "{\"a\":1}").unwrap();
    std::fs::write(home.join(".claude/history.jsonl"), "secret history").unwrap();
    std::fs::write(home.join(".claude.json"), "{}").unwrap();
    let project = t.path().join("p");
    std::fs::create_dir(&project).unwrap();
    let state_root = t.path().join("state");
    let state = ensure_state(&state_root, &project).unwrap();

    let mut notices = Vec::new();
    let d = project_agent_dir(&state, &project, &home, &mut notices).unwrap();
    let claude = d.path().to_owned();
    assert!(claude.starts_with(&state_root), "{}", claude.display());
    assert_eq!(
        std::fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{\"a\":1}"
    );
    assert!(claude.join(".claude.json").exists());
    assert!(!claude.join("history.jsonl").exists());
    // Nothing of wrapix's in the project.
    assert_eq!(std::fs::read_dir(&project).unwrap().count(), 0);
    assert!(notices.is_empty(), "{notices:?}");
    // A second run keeps what the agent wrote.
    std::fs::write(claude.join("settings.json"), "changed").unwrap();
    project_agent_dir(&state, &project, &home, &mut notices).unwrap();
    assert_eq!(
        std::fs::read_to_string(claude.join("settings.json")).unwrap(),
        "changed"
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".claude/settings.json")).unwrap(),
        "{\"a\":1}"
    );
}

#[test]
fn legacy_state_is_migrated_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("id_ed25519"), "PRIVATE KEY").unwrap();
    let project = t.path().join("p");
    let legacy = project.join(LEGACY_DIR);
    std::fs::create_dir_all(legacy.join("projects/x")).unwrap();
    std::fs::write(legacy.join("settings.json"), "{\"mine\":1}").unwrap();
    std::fs::write(legacy.join("projects/x/session.jsonl"), "history").unwrap();
    symlink(home.join("id_ed25519"), legacy.join(".credentials.json")).unwrap();
    symlink(&home, legacy.join("homelink")).unwrap();
    let state = ensure_state(&t.path().join("state"), &project).unwrap();
    let mut notices = Vec::new();
    let d = project_agent_dir(&state, &project, &home, &mut notices).unwrap();
    let claude = d.path();
    assert_eq!(
        std::fs::read_to_string(claude.join("settings.json")).unwrap(),
        "{\"mine\":1}"
    );
    assert_eq!(
        std::fs::read_to_string(claude.join("projects/x/session.jsonl")).unwrap(),
        "history"
    );
    assert!(std::fs::symlink_metadata(claude.join(".credentials.json")).is_err());
    assert!(std::fs::symlink_metadata(claude.join("homelink")).is_err());
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains(".credentials.json"), "{notices:?}");
    // The old folder is left for the user to remove.
    assert!(legacy.join("settings.json").exists());
}

#[test]
fn a_legacy_folder_that_is_a_link_is_not_migrated() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    let project = t.path().join("p");
    std::fs::create_dir_all(project.join(".wrapix/agent")).unwrap();
    symlink(home.join(".ssh"), project.join(LEGACY_DIR)).unwrap();
    let state = ensure_state(&t.path().join("state"), &project).unwrap();
    let mut notices = Vec::new();
    let d = project_agent_dir(&state, &project, &home, &mut notices).unwrap();
    assert!(!d.path().join("id_ed25519").exists());
    assert!(notices[0].contains("not migrated"), "{notices:?}");
}

#[test]
fn copy_back_is_atomic_skips_unchanged_and_refuses_links() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir_all(state.join("run/home-1")).unwrap();
    let to = t.path().join("host.json");
    std::fs::write(state.join("run/home-1/.claude.json"), "new").unwrap();
    std::fs::write(&to, "old").unwrap();
    let d = dir(&state);
    let from = Path::new("run/home-1/.claude.json");
    copy_back(&d, from, &to, &[]).unwrap();
    assert_eq!(std::fs::read_to_string(&to).unwrap(), "new");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
    // The agent replaced the staged file with a link to a private key: never copied.
    let key = t.path().join("id_ed25519");
    std::fs::write(&key, "PRIVATE KEY").unwrap();
    std::fs::remove_file(state.join(from)).unwrap();
    symlink(&key, state.join(from)).unwrap();
    assert!(copy_back(&d, from, &to, &[]).is_err());
    assert_eq!(std::fs::read_to_string(&to).unwrap(), "new");
    // after_exit reports it and still removes the staged home.
    let work = [AfterExit::CopyBack {
        state: state.clone(),
        staging: "run/home-1".into(),
        to: to.clone(),
        mcp_servers: vec![],
    }];
    assert!(after_exit(&work).is_err());
    assert!(!state.join("run/home-1").exists());
    assert!(key.exists());
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
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let claude = state.join("claude");
    std::fs::create_dir_all(&claude).unwrap();
    let json = claude.join(".claude.json");
    std::fs::write(
        &json,
        r#"{"numStartups":3,"mcpServers":{"mine":{"type":"stdio","command":"my-mcp","args":[]}}}"#,
    )
    .unwrap();
    let (d, s) = (dir(&claude), dir(&state));
    register_mcp_servers(&d, &tmux_debug(), Some(&s)).unwrap();
    let doc = read_value(&json);
    assert_eq!(doc["numStartups"], 3);
    assert_eq!(doc["mcpServers"]["mine"]["command"], "my-mcp");
    let ours = &doc["mcpServers"]["tmux-debug"];
    assert_eq!(ours["type"], "stdio");
    assert_eq!(ours["command"], "/run/wrapix/bin/wrapix");
    assert_eq!(ours["args"], serde_json::json!(["mcp", "tmux-debug"]));
    assert_eq!(ours["env"]["TMUX_DEBUG_AUDIT"], "/workspace/a.log");
    // The record is in the state folder, not in the mounted agent folder.
    assert!(state.join(MCP_RECORD).exists());
    assert!(!claude.join(MCP_RECORD).exists());
    // Idempotent: nothing is rewritten.
    let mtime = || std::fs::metadata(&json).and_then(|m| m.modified()).ok();
    let before = mtime();
    register_mcp_servers(&d, &tmux_debug(), Some(&s)).unwrap();
    assert_eq!(mtime(), before);
    // Removed from the config: removed from the agent's too, the user's own stays.
    register_mcp_servers(&d, &BTreeMap::new(), Some(&s)).unwrap();
    let doc = read_value(&json);
    assert!(doc["mcpServers"].get("tmux-debug").is_none(), "{doc}");
    assert_eq!(doc["mcpServers"]["mine"]["command"], "my-mcp");
    assert_eq!(std::fs::read_dir(&claude).unwrap().count(), 1);
}

#[test]
fn mcp_servers_refuse_bad_json_and_keep_it() {
    let t = tempfile::tempdir().unwrap();
    let json = t.path().join(".claude.json");
    let d = dir(t.path());
    for bad in ["{oops", r#"{"mcpServers":[1]}"#, "[]"] {
        std::fs::write(&json, bad).unwrap();
        let e = register_mcp_servers(&d, &tmux_debug(), None)
            .err()
            .unwrap_or_else(|| panic!("accepted {bad}"));
        assert!(e.to_string().contains(".claude.json"), "{e}");
        assert_eq!(std::fs::read_to_string(&json).unwrap(), bad);
    }
    // No file and no servers: nothing is created.
    std::fs::remove_file(&json).unwrap();
    let s = tempfile::tempdir().unwrap();
    register_mcp_servers(&d, &BTreeMap::new(), Some(&dir(s.path()))).unwrap();
    assert!(!json.exists());
}

#[test]
fn copy_back_keeps_our_mcp_servers_out_of_the_host_config() {
    let t = tempfile::tempdir().unwrap();
    let host = t.path().join("host.json");
    let staged = t.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    let inside = staged.join(".claude.json");
    std::fs::write(
        &host,
        r#"{"mcpServers":{"tmux-debug":{"command":"theirs"},"mine":{"command":"m"}}}"#,
    )
    .unwrap();
    std::fs::copy(&host, &inside).unwrap();
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
    let d = dir(&staged);
    register_mcp_servers(&d, &servers, None).unwrap();
    // The agent changes something of its own while it runs.
    let mut doc = read_value(&inside);
    doc["numStartups"] = serde_json::json!(7);
    std::fs::write(&inside, doc.to_string()).unwrap();
    let names: Vec<String> = servers.keys().cloned().collect();
    let rel = Path::new(".claude.json");
    copy_back(&d, rel, &host, &names).unwrap();
    let back = read_value(&host);
    assert_eq!(back["numStartups"], 7);
    assert_eq!(back["mcpServers"]["tmux-debug"]["command"], "theirs");
    assert_eq!(back["mcpServers"]["mine"]["command"], "m");
    assert!(back["mcpServers"].get("extra").is_none(), "{back}");
    // Not JSON any more: copied back untouched rather than lost.
    std::fs::write(&inside, "agent wrote this").unwrap();
    copy_back(&d, rel, &host, &names).unwrap();
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "agent wrote this");
}

#[test]
fn token_from_env_then_file() {
    let t = tempfile::tempdir().unwrap();
    let mut env = BTreeMap::new();
    assert_eq!(oauth_token(t.path(), &env), None);
    std::fs::create_dir_all(t.path().join(".config/wrapix")).unwrap();
    std::fs::write(t.path().join(".config/wrapix/claude-token"), "tok-file\n").unwrap();
    assert_eq!(oauth_token(t.path(), &env).as_deref(), Some("tok-file"));
    env.insert("CLAUDE_CODE_OAUTH_TOKEN".into(), "tok-env".into());
    assert_eq!(oauth_token(t.path(), &env).as_deref(), Some("tok-env"));
}
