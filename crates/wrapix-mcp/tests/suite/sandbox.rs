//! The server inside a real sandbox: `wrapix run --network none -- /run/wrapix/bin/wrapix mcp
//! tmux-debug`, stdio piped through, as the unprivileged test user when run as root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use super::harness::*;

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_a_real_sandbox() {
    if !have("tmux") || !have("bwrap") || !have("python3") {
        return skip("tmux, bwrap or python3 is not installed");
    }
    let Some(wrapix) = wrapix_bin() else {
        return skip("the wrapix binary is not built (run `cargo test --workspace`)");
    };
    let root = nix::unistd::geteuid().is_root();
    let user = if root {
        let name = std::env::var("WRAPIX_TEST_USER").unwrap_or_else(|_| "ci".into());
        match nix::unistd::User::from_name(&name).ok().flatten() {
            Some(u) => Some(u),
            None => {
                return skip(&format!(
                    "running as root and the test user `{name}` does not exist"
                ))
            }
        }
    } else {
        None
    };
    if root && !have("setpriv") {
        return skip("running as root and setpriv is missing");
    }
    let scratch = Scratch::new();
    let base = scratch.path();
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    // wrapix and wrapix-serve (which `wrapix mcp` execs), installed side by side.
    for name in ["wrapix", "wrapix-serve"] {
        let to = base.join(name);
        std::fs::copy(wrapix.with_file_name(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let bin = base.join("wrapix");
    let home = base.join("home");
    let project = home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("hello.txt"), "from the project\n").unwrap();
    // The config that enables the server: only then is wrapix-serve in the sandbox.
    std::fs::write(project.join("wrapix.toml"), "[mcp.tmux-debug]\n").unwrap();
    let (uid, gid) = match &user {
        Some(u) => (u.uid.as_raw(), u.gid.as_raw()),
        None => (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
    };
    if root {
        chown_tree(&home, uid, gid);
    }
    let wrapix_args = [
        "run",
        "--network",
        "none",
        "--",
        "/run/wrapix/bin/wrapix",
        "mcp",
        "tmux-debug",
    ];
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--init-groups",
            "--",
        ])
        .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(wrapix_args)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "USER",
            user.as_ref()
                .map(|u| u.name.clone())
                .unwrap_or_else(|| "wrapix".into()),
        )
        .env("TERM", "dumb")
        .current_dir(&project);
    let client = connect(cmd).await;

    // Inside: the project is /workspace and the host's home is not there.
    ok(
        &client,
        "tmux_create_pane",
        json!({
        "command": "pwd; cat hello.txt; echo WRAPIX=$WRAPIX; sleep 600",
        "name": "probe"}),
    )
    .await;
    ok(
        &client,
        "tmux_wait_for",
        json!({"pane_id": "probe", "pattern": "^WRAPIX=1$", "timeout_ms": 20000}),
    )
    .await;
    let out = ok(&client, "tmux_capture_pane", json!({"pane_id": "probe"})).await;
    assert!(out.starts_with("/workspace\nfrom the project\n"), "{out}");
    ok(&client, "tmux_kill_pane", json!({"pane_id": "probe"})).await;
    http_debug_session(&client).await;
    ok(
        &client,
        "tmux_create_pane",
        json!({"command": "sleep 600; echo wrapix-sbx-marker"}),
    )
    .await;
    // The pane's shell starts just after the call returns: wait for it, bounded.
    assert!(
        wait_for(std::time::Duration::from_secs(10), || !procs_with(
            "wrapix-sbx-marker"
        )
        .is_empty()),
        "the pane's process never showed up"
    );
    client.cancel().await.unwrap();
    assert!(
        wait_for(std::time::Duration::from_secs(10), || procs_with(
            "wrapix-sbx-marker"
        )
        .is_empty()),
        "pane processes survived the sandbox: {:?}",
        procs_with("wrapix-sbx-marker")
    );
}
