//! `[mcp.NAME]` in wrapix.toml: the server is registered in the agent's `.claude.json`, merged
//! with the user's own, and works inside the sandbox when the agent starts it.

use super::harness::{skip, Case};

/// Claude Code is not installed here, so the agent is a stand-in that does what Claude does
/// with `mcpServers` (tests/agents/claude-mcp.py): it starts the registered server from the
/// config file and calls its tools over MCP.
#[test]
fn tmux_debug_is_registered_and_runs_in_the_sandbox() {
    let Some(c) = Case::new() else { return };
    if !std::path::Path::new("/usr/bin/tmux").exists() {
        return skip("tmux is not installed on the host (the host profile uses the host's /usr)");
    }
    let agent = c.project.join("bin/claude");
    c.write(&agent, include_str!("../agents/claude-mcp.py"));
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The user's own server, in the host's Claude config that seeds the project's.
    c.write(
        &c.home.join(".claude.json"),
        r#"{"mcpServers":{"mine":{"type":"stdio","command":"my-mcp","args":[]}}}"#,
    );
    c.config(
        "[agent]\ncommand = [\"/workspace/bin/claude\"]\n\n\
         [mcp.tmux-debug]\naudit = \"/workspace/audit.log\"\n",
    );

    let out = c.run(&["run", "--network", "none"]);
    assert_eq!(out.code, 0, "{out}");
    let stdout = out.ok();
    for want in [
        "servers=mine,tmux-debug\n",
        "server=wrapix-tmux-debug\n",
        "create_error=False\n",
        "wait_error=False\n",
        "done\n",
    ] {
        assert!(stdout.contains(want), "missing {want:?}:\n{out}");
    }
    assert!(stdout.contains("tmux_wait_for"), "tools not listed:\n{out}");
    // The audit log the option asked for, written inside the sandbox into the project.
    let audit = std::fs::read_to_string(c.project.join("audit.log")).unwrap_or_default();
    let tools: Vec<String> = audit
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["tool"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert!(
        tools.starts_with(&["tmux_create_pane".to_owned(), "tmux_wait_for".to_owned()]),
        "{audit}"
    );
    // The host's own Claude config is not changed.
    assert!(!std::fs::read_to_string(c.home.join(".claude.json"))
        .unwrap()
        .contains("tmux-debug"));

    // Removed from wrapix.toml: removed from the agent's config; the user's own stays.
    c.config("[agent]\ncommand = [\"/workspace/bin/claude\"]\n");
    let out = c.run(&["run", "--network", "none"]);
    assert!(out.stdout.contains("servers=mine\n"), "{out}");
}

/// `[mcp]` with an agent that is not Claude Code: wrapix says it cannot register them.
#[test]
fn other_agents_are_told_servers_are_not_registered() {
    let Some(c) = Case::new() else { return };
    c.config("[agent]\ncommand = [\"/bin/true\"]\n[mcp.tmux-debug]\n");
    let out = c.run(&["run", "--network", "none"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr.contains("not Claude Code"),
        "no notice about [mcp]:\n{out}"
    );
}
