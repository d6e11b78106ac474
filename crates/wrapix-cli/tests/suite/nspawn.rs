//! The nspawn backend as its users run it: `sudo wrapix --backend nspawn` in a project of
//! theirs. Root runs wrapix here (nspawn is root only); the project belongs to the test user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::harness::{is_root, skip, Case};
use super::proc::output;

fn nspawn_installed() -> bool {
    ["/usr/bin/systemd-nspawn", "/bin/systemd-nspawn"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// `sudo wrapix --backend nspawn` in the user's project: the agent (root in its own user
/// namespace, no capabilities) writes the user's files, and what it creates is the user's.
#[test]
fn sudo_in_a_users_project_writes_as_the_project_owner() {
    let Some(c) = Case::new() else { return };
    if !is_root() || !nspawn_installed() {
        return skip("needs root and systemd-nspawn (sudo apt-get install systemd-container)");
    }
    if c.env.uid == 0 {
        return skip("the test user is root here: no other owner to check");
    }
    std::fs::write(c.project.join("f"), "x\n").unwrap();
    c.give(&c.project);
    // As root, with the test user's project: what `sudo wrapix` does.
    let mut cmd = Command::new(&c.env.bin);
    cmd.args([
        "run",
        "--backend",
        "nspawn",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "echo more >> f && touch new && mkdir d && id -u",
    ]);
    c.clean_env(&mut cmd);
    let root_home = c.root.join("roothome");
    std::fs::create_dir_all(&root_home).unwrap();
    cmd.env("HOME", &root_home).env("USER", "root");
    let stages = || -> Vec<std::ffi::OsString> {
        std::fs::read_dir("/run/wrapix-nspawn")
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    let before = stages();
    let out = output(cmd, &c.project, None).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "0", "root inside its own user namespace");
    assert_eq!(
        std::fs::read_to_string(c.project.join("f")).unwrap(),
        "x\nmore\n"
    );
    for p in ["f", "new", "d"] {
        let m = std::fs::metadata(c.project.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (c.env.uid, c.env.gid), "{p}");
    }
    // Nothing of the run is left in the staging folder.
    let after = stages();
    assert!(after.iter().all(|n| before.contains(n)), "{after:?}");
}
