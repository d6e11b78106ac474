//! Disconnects, signals, malformed JSON-RPC, the audit log: nothing leaks, nothing is lost.

use std::time::Duration;

use serde_json::{json, Value};

use super::harness::*;

#[test]
fn client_disconnect_mid_call_stops_everything() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let mut raw = Raw::start(scratch.command(&server_bin(), &[]));
    raw.initialize();
    let r = raw.call(
        1,
        "tmux_create_pane",
        json!({"command": "sleep 600; echo wrapix-leak-marker"}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    // A long wait is in flight when the client goes away.
    raw.send_json(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "tmux_wait_for", "arguments": {"pane_id": "pane-1", "pattern": "never", "timeout_ms": 600000}}}));
    std::thread::sleep(Duration::from_millis(300));
    let status = raw.hang_up();
    assert!(status.success(), "{status:?}");
    scratch.assert_no_leak();
    assert!(wait_for(Duration::from_secs(5), || procs_with(
        "wrapix-leak-marker"
    )
    .is_empty()));
}

#[test]
fn sigterm_stops_tmux_and_panes() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let mut raw = Raw::start(scratch.command(&server_bin(), &[]));
    raw.initialize();
    for id in 1..=3 {
        let r = raw.call(
            id,
            "tmux_create_pane",
            json!({"command": "sleep 600; echo wrapix-sigterm-marker"}),
        );
        assert_eq!(r["result"]["isError"], false, "{r}");
    }
    let pid = nix::unistd::Pid::from_raw(raw.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    raw.wait(Duration::from_secs(10));
    scratch.assert_no_leak();
    assert!(wait_for(Duration::from_secs(5), || procs_with(
        "wrapix-sigterm-marker"
    )
    .is_empty()));
}

#[test]
fn malformed_json_rpc_gets_an_error_and_the_server_stays_healthy() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let mut raw = Raw::start(scratch.command(&server_bin(), &[]));
    raw.initialize();
    // JSON that is not JSON-RPC: "Invalid request".
    raw.send(r#"{"foo":"bar"}"#);
    let r = raw.recv();
    assert_eq!(r["error"]["code"], -32600, "{r}");
    // Not JSON at all: skipped (there is no id to answer), then business as usual.
    raw.send("this is not json {");
    // An unknown method and an unknown tool.
    raw.send_json(json!({"jsonrpc": "2.0", "id": 5, "method": "no/such/method"}));
    let r = raw.recv();
    assert_eq!(r["id"], 5);
    assert!(r["error"]["code"].is_i64(), "{r}");
    let r = raw.call(6, "no_such_tool", json!({}));
    assert!(
        r["error"].is_object() || r["result"]["isError"] == true,
        "{r}"
    );
    // Arguments of the wrong type.
    let r = raw.call(7, "tmux_capture_pane", json!({"pane_id": 3}));
    assert!(
        r["error"].is_object() || r["result"]["isError"] == true,
        "{r}"
    );
    let r = raw.call(8, "tmux_list_panes", json!({}));
    assert_eq!(r["id"], 8);
    assert_eq!(r["result"]["isError"], false, "{r}");
    raw.hang_up();
    scratch.assert_no_leak();
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_and_full_captures() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let log = scratch.path().join("audit.log");
    let full = scratch.path().join("captures");
    let mut cmd = scratch.command(&server_bin(), &[]);
    cmd.env("TMUX_DEBUG_AUDIT", &log)
        .env("TMUX_DEBUG_AUDIT_FULL", &full);
    let client = connect(cmd).await;
    ok(
        &client,
        "tmux_create_pane",
        json!({"command": "echo audited; sleep 60", "name": "a"}),
    )
    .await;
    ok(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "a", "pattern": "audited", "timeout_ms": 10000}),
    )
    .await;
    let out = ok(
        &client,
        "tmux_capture_pane",
        json!({"pane_id": "a", "lines": 5}),
    )
    .await;
    ok(&client, "tmux_capture_pane", json!({"pane_id": "a"})).await;
    tool_err(&client, "tmux_kill_pane", json!({"pane_id": "zzz"})).await;
    ok(&client, "tmux_list_panes", json!({})).await;

    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tools: Vec<&str> = lines.iter().map(|l| l["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        [
            "tmux_create_pane",
            "tmux_wait_for",
            "tmux_capture_pane",
            "tmux_capture_pane",
            "tmux_kill_pane",
            "tmux_list_panes"
        ]
    );
    let first = &lines[0];
    assert!(first["ts"].as_str().unwrap().ends_with('Z'), "{first}");
    assert_eq!(first["pane_id"], "a");
    assert_eq!(first["arguments"]["command"], "echo audited; sleep 60");
    assert_eq!(lines[2]["output_bytes"], out.len());
    assert_eq!(lines[2]["arguments"]["lines"], 5);
    assert!(
        lines[2].get("output").is_none(),
        "captured text must not be in the log"
    );
    assert!(lines[4]["error"].as_str().unwrap().contains("not found"));
    assert_eq!(
        std::fs::read_to_string(full.join("a-capture-001.txt")).unwrap(),
        out
    );
    assert!(full.join("a-capture-002.txt").exists());

    // A write that fails is reported to the client, not dropped.
    std::fs::remove_dir_all(&full).unwrap();
    std::fs::write(&full, "not a folder").unwrap();
    let r = call(&client, "tmux_capture_pane", json!({"pane_id": "a"})).await;
    assert!(
        text(&r).contains("WARNING") && text(&r).contains("audit"),
        "{}",
        text(&r)
    );

    client.cancel().await.unwrap();
    scratch.assert_no_leak();
}

#[test]
fn unwritable_audit_log_stops_the_server_at_start() {
    let scratch = Scratch::new();
    let out = scratch
        .command(&server_bin(), &[])
        .env("TMUX_DEBUG_AUDIT", "/nonexistent-dir/audit.log")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit log") && err.contains("fix:"), "{err}");
    assert!(out.stdout.is_empty(), "stdout is for protocol frames only");
}

#[test]
fn sigkill_of_the_server_still_stops_tmux() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let scratch = Scratch::new();
    let mut raw = Raw::start(scratch.command(&server_bin(), &[]));
    raw.initialize();
    let r = raw.call(
        1,
        "tmux_create_pane",
        json!({"command": "sleep 600; echo wrapix-sigkill-marker"}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    raw.child.kill().unwrap();
    raw.wait(Duration::from_secs(10));
    // The folder stays (nobody removed it), but no tmux server or pane process survives.
    let marker = scratch.path().to_string_lossy().into_owned();
    assert!(
        wait_for(Duration::from_secs(10), || procs_with(&marker).is_empty()
            && procs_with("wrapix-sigkill-marker").is_empty()),
        "survivors: {:?} {:?}",
        procs_with(&marker),
        procs_with("wrapix-sigkill-marker")
    );
}
