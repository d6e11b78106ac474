//! `wrapix doctor` starts real sandboxes and reports ready only for what started.

use std::os::unix::fs::PermissionsExt;

use super::harness::Case;

fn json(out: &super::harness::Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn sandbox<'a>(doc: &'a serde_json::Value, backend: &str, network: &str) -> &'a serde_json::Value {
    doc["sandboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["backend"] == backend && s["network"] == network)
        .unwrap_or_else(|| panic!("no {backend}/{network} in {doc}"))
}

#[test]
fn doctor_is_ready_only_when_the_default_sandbox_starts() {
    let Some(c) = Case::new() else { return };
    let out = c.run(&["doctor", "--json"]);
    let doc = json(&out);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(doc["ready"], true, "{out}");
    for network in ["none", "open"] {
        let s = sandbox(&doc, "bwrap", network);
        assert_eq!(s["ready"], true, "{s}");
        assert_eq!(s["tried"], true, "{s}");
    }
    // Nothing of the trials is left in the user's state or config.
    assert!(!c.home.join(".local/state/wrapix").exists());

    // A pasta that cannot join the sandbox: the open network is not ready, with the fix, and
    // the doctor says the host is not ready (exit 1); network none still is.
    let fake = c.root.join("fakebin");
    std::fs::create_dir(&fake).unwrap();
    let pasta = fake.join("pasta");
    std::fs::write(
        &pasta,
        "#!/bin/sh\necho \"Couldn't open user namespace /proc/1/fd/4: Permission denied\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&pasta, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.give(&fake);
    let c = c.host_env(
        "PATH",
        &format!("{}:/usr/local/bin:/usr/bin:/bin", fake.display()),
    );
    let out = c.run(&["doctor", "--json"]);
    assert_eq!(out.code, 1, "{out}");
    let doc = json(&out);
    assert_eq!(doc["ready"], false);
    let open = sandbox(&doc, "bwrap", "open");
    assert_eq!(open["ready"], false, "{open}");
    assert!(
        open["detail"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{open}"
    );
    assert!(
        open["fix"].as_str().unwrap().contains("/dev/net/tun"),
        "{open}"
    );
    assert_eq!(sandbox(&doc, "bwrap", "none")["ready"], true);
    // The text report says the same.
    let out = c.run(&["doctor"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("[FAIL] bwrap, network open"), "{out}");
    assert!(out.stdout.contains("NOT ready"), "{out}");
}
