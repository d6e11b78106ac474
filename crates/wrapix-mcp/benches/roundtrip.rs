//! `cargo bench -p wrapix-mcp`: median and p99 of `tmux_capture_pane` and `tmux_send_keys`
//! round trips through MCP (rmcp client → the real server binary → tmux), against running the
//! same tmux commands directly, in the same run. Prints one table and the ratios.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::json;

const N: usize = 300;

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let median = v[v.len() / 2];
    let p99 = v[((v.len() as f64) * 0.99) as usize - 1];
    (median, p99)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn tmux_direct(sock: &std::path::Path, args: &[&str]) {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return;
    }
    // Direct: a tmux server like the MCP server's, one pane running `cat`, filled with output.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    tmux_direct(
        &sock,
        &[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
            "--",
            "sh",
            "-c",
            "seq 1 200; cat",
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut direct_capture = Vec::with_capacity(N);
    let mut direct_send = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        tmux_direct(
            &sock,
            &["capture-pane", "-p", "-J", "-t", "%0", "-S", "-100"],
        );
        direct_capture.push(t.elapsed());
        let t = Instant::now();
        tmux_direct(&sock, &["send-keys", "-t", "%0", "-l", "--", "x"]);
        direct_send.push(t.elapsed());
    }
    tmux_direct(&sock, &["kill-server"]);

    // Through MCP.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mcp_capture, mcp_send) = rt.block_on(async {
        let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tmux-debug-mcp"));
        let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
        let call = |tool: &'static str, args: serde_json::Value| {
            let args = args.as_object().cloned().unwrap();
            CallToolRequestParams::new(tool).with_arguments(args)
        };
        let r = client
            .call_tool(call(
                "tmux_create_pane",
                json!({"command": "seq 1 200; cat", "name": "b"}),
            ))
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true));
        client
            .call_tool(call(
                "tmux_wait_for",
                json!({"pane_id": "b", "pattern": "^200$"}),
            ))
            .await
            .unwrap();
        let mut cap = Vec::with_capacity(N);
        let mut send = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            let r = client
                .call_tool(call(
                    "tmux_capture_pane",
                    json!({"pane_id": "b", "lines": 100}),
                ))
                .await
                .unwrap();
            cap.push(t.elapsed());
            assert_ne!(r.is_error, Some(true));
            let t = Instant::now();
            let r = client
                .call_tool(call("tmux_send_keys", json!({"pane_id": "b", "keys": "x"})))
                .await
                .unwrap();
            send.push(t.elapsed());
            assert_ne!(r.is_error, Some(true));
        }
        client.cancel().await.unwrap();
        (cap, send)
    });

    println!("tmux-debug round trips, {N} calls each (same run)");
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "tool", "mcp median", "mcp p99", "tmux median", "tmux p99", "x med", "x p99"
    );
    for (name, mcp, direct) in [
        ("tmux_capture_pane", mcp_capture, direct_capture),
        ("tmux_send_keys", mcp_send, direct_send),
    ] {
        let (mm, mp) = stats(mcp);
        let (dm, dp) = stats(direct);
        println!(
            "{:<20} {:>12} {:>12} {:>12} {:>12} {:>7.2}x {:>7.2}x",
            name,
            ms(mm),
            ms(mp),
            ms(dm),
            ms(dp),
            mm.as_secs_f64() / dm.as_secs_f64(),
            mp.as_secs_f64() / dp.as_secs_f64()
        );
    }
}
