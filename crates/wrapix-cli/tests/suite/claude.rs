//! wrapix's Claude Code wiring checked by the real, pinned Claude Code: the settings wrapix
//! writes (its notification hooks) pass `claude doctor`'s settings validation, and the MCP
//! servers it registers are read by `claude mcp list`. A deliberately invalid file shows that
//! the check can fail. Claude Code needs no login for either.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::harness::{skip, unique, wait_for, Case};

/// The version the wiring is tested against (scripts/install-deps.sh installs it).
const PINNED: &str = "2.1.197";

/// `$WRAPIX_TEST_CLAUDE`, else target/claude-code/bin/claude, if it is the pinned version.
fn real_claude() -> Result<PathBuf, String> {
    let path = std::env::var_os("WRAPIX_TEST_CLAUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/claude-code/bin/claude")
        });
    let out = Command::new(&path).arg("--version").output().map_err(|e| {
        format!(
            "Claude Code {PINNED} is not at {} ({e}): scripts/install-deps.sh --test installs it",
            path.display()
        )
    })?;
    let version = String::from_utf8_lossy(&out.stdout);
    if version.split_whitespace().next() != Some(PINNED) {
        return Err(format!(
            "{} is Claude Code {}, not the pinned {PINNED}",
            path.display(),
            version.trim()
        ));
    }
    Ok(path)
}

/// `claude doctor` on a terminal (a tmux pane), with `config` as its config folder: the
/// screen once its diagnostics are shown.
fn doctor(claude: &Path, config: &Path) -> String {
    let socket = unique("wrapix-claude");
    let cmd = format!(
        "env CLAUDE_CONFIG_DIR='{}' HOME='{}' '{}' doctor; sleep 60",
        config.display(),
        config.display(),
        claude.display()
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-L")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(tmux(&["new-session", "-d", "-x", "200", "-y", "80", &cmd])
        .status
        .success());
    let screen = || String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).into_owned();
    let shown = wait_for(Duration::from_secs(30), || screen().contains("Updates"));
    let text = screen();
    tmux(&["kill-server"]);
    assert!(shown, "claude doctor showed no diagnostics:\n{text}");
    text
}

#[test]
fn wrapix_agent_settings_pass_a_pinned_claude_code() {
    let claude = match real_claude() {
        Ok(c) => c,
        Err(reason) => return skip(&reason),
    };
    if !Path::new("/usr/bin/tmux").exists() {
        return skip("tmux is not installed (claude doctor needs a terminal)");
    }
    let Some(c) = Case::new() else { return };
    c.config("[mcp.tmux-debug]\naudit = \"/workspace/audit.log\"\n");
    // A command named `claude` gets the wiring; it is not in the sandbox, which does not matter.
    let out = c.run(&["run", "--", "claude", "--version"]);
    assert_eq!(out.code, 127, "{out}");
    let state = c.state_dir().join("claude");
    let settings = std::fs::read_to_string(state.join("settings.json")).unwrap();
    assert!(
        settings.contains("wrapix-notify") || settings.contains("notify"),
        "{settings}"
    );

    let copy = tempfile::tempdir().unwrap();
    for name in ["settings.json", ".claude.json"] {
        std::fs::copy(state.join(name), copy.path().join(name)).unwrap();
    }
    let screen = doctor(&claude, copy.path());
    assert!(!screen.contains("Invalid settings"), "{screen}");
    let list = Command::new(&claude)
        .args(["mcp", "list"])
        .env("CLAUDE_CONFIG_DIR", copy.path())
        .env("HOME", copy.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("tmux-debug"), "{text}");

    // The check can fail: a value of the wrong type is reported.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("settings.json"),
        "{\"permissions\": {\"allow\": 5}}",
    )
    .unwrap();
    let screen = doctor(&claude, bad.path());
    assert!(screen.contains("Invalid settings"), "{screen}");
}
