//! The official MCP Python SDK (`mcp` on PyPI) drives the real server.

use std::path::PathBuf;
use std::process::Command;

use super::harness::*;

/// `$WRAPIX_TEST_PYTHON`, else the venv that scripts/install-deps.sh makes in target/py-mcp.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WRAPIX_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/py-mcp/bin/python");
    venv.is_file().then_some(venv)
}

fn run_e2e(server: &[&str]) {
    let Some(python) = python() else {
        return skip(
            "no Python with the `mcp` SDK (run scripts/install-deps.sh, or set WRAPIX_TEST_PYTHON)",
        );
    };
    let probe = Command::new(&python).args(["-c", "import mcp"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        return skip(&format!("{} cannot import mcp", python.display()));
    }
    let scratch = Scratch::new();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/e2e.py");
    let out = scratch
        .command(&python, &[&script.to_string_lossy()])
        .args(server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "python e2e failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    scratch.assert_no_leak();
}

#[test]
fn python_sdk_client() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    run_e2e(&[&server_bin().to_string_lossy()]);
}

#[test]
fn python_sdk_client_through_wrapix_cli() {
    if !have("tmux") {
        return skip("tmux is not installed");
    }
    let Some(wrapix) = wrapix_bin() else {
        return skip("the wrapix binary is not built (run `cargo test --workspace`)");
    };
    run_e2e(&[&wrapix.to_string_lossy(), "mcp", "tmux-debug"]);
}
