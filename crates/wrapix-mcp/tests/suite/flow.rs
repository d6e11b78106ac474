//! The scenario through rmcp's client: an HTTP server in one pane, a request from another.

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn http_server_and_client_panes() {
    if !have("tmux") || !have("python3") {
        return skip("tmux or python3 is not installed");
    }
    let scratch = Scratch::new();
    let client = connect(scratch.command(&server_bin(), &[])).await;
    http_debug_session(&client).await;
    client.cancel().await.unwrap();
    scratch.assert_no_leak();
}

/// The same through the real CLI: `wrapix mcp tmux-debug`.
#[tokio::test(flavor = "multi_thread")]
async fn wrapix_mcp_tmux_debug() {
    if !have("tmux") || !have("python3") {
        return skip("tmux or python3 is not installed");
    }
    let Some(wrapix) = wrapix_bin() else {
        return skip("the wrapix binary is not built (run `cargo test --workspace`)");
    };
    let scratch = Scratch::new();
    let client = connect(scratch.command(&wrapix, &["mcp", "tmux-debug"])).await;
    http_debug_session(&client).await;
    client.cancel().await.unwrap();
    scratch.assert_no_leak();
}
