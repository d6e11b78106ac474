//! Bad input is answered with a tool error and a hint; the server stays healthy.

use serde_json::{json, Value};

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn errors_with_hints_and_stays_healthy() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let client = connect(scratch.command(&server_bin(), &[])).await;

    let e = tool_err(&client, "tmux_capture_pane", json!({"pane_id": "ghost"})).await;
    assert!(
        e.contains("Pane 'ghost' not found") && e.contains("tmux_list_panes"),
        "{e}"
    );
    tool_err(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "ghost", "keys": "x"}),
    )
    .await;
    tool_err(&client, "tmux_kill_pane", json!({"pane_id": "ghost"})).await;
    tool_err(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "ghost", "pattern": "x"}),
    )
    .await;

    ok(
        &client,
        "tmux_create_pane",
        json!({"command": "sh", "name": "sh"}),
    )
    .await;
    for lines in [0_i64, -5, 1001, 1_000_000_000_000] {
        let e = tool_err(
            &client,
            "tmux_capture_pane",
            json!({"pane_id": "sh", "lines": lines}),
        )
        .await;
        assert!(e.contains("1 to 1000"), "{e}");
    }
    for keys in ["a\u{1b}[A", "\u{3}", "x\u{0}y"] {
        let e = tool_err(
            &client,
            "tmux_send_keys",
            json!({"pane_id": "sh", "keys": keys}),
        )
        .await;
        assert!(e.contains("control character"), "{e}");
    }
    let e = tool_err(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "y".repeat(20_000)}),
    )
    .await;
    assert!(e.contains("limit"), "{e}");
    let e = tool_err(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "sh", "pattern": "(unclosed"}),
    )
    .await;
    assert!(e.contains("regular expression"), "{e}");
    let e = tool_err(
        &client,
        "tmux_create_pane",
        json!({"command": "sh", "name": "sh"}),
    )
    .await;
    assert!(e.contains("already exists"), "{e}");
    let e = tool_err(
        &client,
        "tmux_create_pane",
        json!({"command": "sh", "name": "a b/c"}),
    )
    .await;
    assert!(e.contains("not usable"), "{e}");
    tool_err(&client, "tmux_create_pane", json!({"command": "  "})).await;

    // Key names and text with a trailing `;` (which tmux would read as a separator).
    ok(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "echo one; echo two;\n"}),
    )
    .await;
    ok(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "sh", "pattern": "^two$", "timeout_ms": 10000}),
    )
    .await;
    ok(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "sleep 100"}),
    )
    .await;
    ok(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "Enter"}),
    )
    .await;
    ok(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "^C"}),
    )
    .await;
    ok(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "sh", "keys": "echo after-ctrl-c\n"}),
    )
    .await;
    ok(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "sh", "pattern": "^after-ctrl-c$", "timeout_ms": 10000}),
    )
    .await;

    // A command that exits at once: the pane stays, with its output and status.
    ok(
        &client,
        "tmux_create_pane",
        json!({"command": "echo 'panic: boom' >&2; exit 7", "name": "crash"}),
    )
    .await;
    let e = tool_err(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "crash", "pattern": "never", "timeout_ms": 10000}),
    )
    .await;
    assert!(
        e.contains("exited with status 7") && e.contains("panic: boom"),
        "{e}"
    );
    let out = ok(&client, "tmux_capture_pane", json!({"pane_id": "crash"})).await;
    assert!(
        out.contains("panic: boom") && out.contains("exited with status 7"),
        "{out}"
    );
    let e = tool_err(
        &client,
        "tmux_send_keys",
        json!({"pane_id": "crash", "keys": "x"}),
    )
    .await;
    assert!(e.contains("exited"), "{e}");
    let list: Value =
        serde_json::from_str(&ok(&client, "tmux_list_panes", json!({})).await).unwrap();
    let crash = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pane_id"] == "crash")
        .unwrap();
    assert_eq!(crash["status"], "exited");
    assert_eq!(crash["exit_code"], 7);

    // Timeout: an error with the tail.
    let e = tool_err(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "sh", "pattern": "nothing-like-this", "timeout_ms": 300}),
    )
    .await;
    assert!(
        e.contains("within 300 ms") && e.contains("after-ctrl-c"),
        "{e}"
    );

    // 200 panes: the limit stops it with a hint.
    let mut created = 2;
    let mut limit_error = None;
    for _ in 0..200 {
        let r = call(&client, "tmux_create_pane", json!({"command": "sleep 600"})).await;
        if r.is_error == Some(true) {
            limit_error = Some(text(&r));
            break;
        }
        created += 1;
    }
    let e = limit_error.expect("no pane limit");
    assert!(e.contains("limit") && e.contains("tmux_kill_pane"), "{e}");
    assert_eq!(created, wrapix_mcp::server::MAX_PANES);
    // Killing one makes room again.
    ok(&client, "tmux_kill_pane", json!({"pane_id": "crash"})).await;
    ok(&client, "tmux_create_pane", json!({"command": "true"})).await;

    client.cancel().await.unwrap();
    scratch.assert_no_leak();
}

#[tokio::test(flavor = "multi_thread")]
async fn captures_are_bounded_and_clean() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let client = connect(scratch.command(&server_bin(), &[])).await;
    ok(&client, "tmux_create_pane", json!({"command": "seq 1 3000; printf '\\033[31mred\\033[0m\\n'; printf '\\033]0;title\\007done\\n'", "name": "seq"})).await;
    ok(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "seq", "pattern": "^done$", "timeout_ms": 10000}),
    )
    .await;
    let out = ok(
        &client,
        "tmux_capture_pane",
        json!({"pane_id": "seq", "lines": 1000}),
    )
    .await;
    assert!(!out.contains('\u{1b}'), "escape left in {out:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1001, "1000 lines + the exit note");
    assert_eq!(lines[998], "red");
    assert_eq!(lines[999], "done");
    assert!(
        lines[1000].contains("exited with status 0"),
        "{}",
        lines[1000]
    );
    let out = ok(
        &client,
        "tmux_capture_pane",
        json!({"pane_id": "seq", "lines": 3}),
    )
    .await;
    assert_eq!(out.lines().next(), Some("3000"), "{out}");
    client.cancel().await.unwrap();
    scratch.assert_no_leak();
}
