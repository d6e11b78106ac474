//! The third red team's attacks (see escape_attack.rs and escape_attack2.rs for the first two):
//! each test has a host-side control (the same plant, made without wrapix, does what the
//! attack claims) and then asserts what a sound wrapix guarantees.

use std::path::PathBuf;

use super::harness::Case;

/// A repository with one commit: `a.txt`.
fn repo(c: &Case) {
    c.write(&c.project.join("a.txt"), "a\n");
    c.host_repo(&c.project);
}

fn marker(c: &Case) -> PathBuf {
    c.root.join("host-ran-the-agents-code")
}

/// A git config that runs `touch MARKER` from `git status` (core.fsmonitor is a shell command).
fn evil_config(c: &Case) -> String {
    format!(
        "[core]\n\tfsmonitor = \"touch {}; false\"\n",
        marker(c).display()
    )
}

/// The user's `git status` in the project, on the host. Its exit code does not matter; what it
/// runs does.
fn host_git_status(c: &Case) {
    let _ = c.host_as_user("git", &["status", "--short"]);
}

/// A project that shares its git settings the usual way: a committed `.gitconfig`, included
/// from `.git/config` (`git config include.path ../.gitconfig`), which itself includes an
/// optional, uncommitted `.gitconfig.local` for each developer's own settings.
fn shared_config(c: &Case) {
    c.write(
        &c.project.join(".gitconfig"),
        "[include]\n\tpath = .gitconfig.local\n",
    );
    repo(c);
    c.host_as_user("git", &["config", "include.path", "../.gitconfig"])
        .ok();
}

/// Attack 1: wrapix protects the files `.git/config` includes (here the committed
/// `.gitconfig`), but not what those files include in turn. The agent writes
/// `.gitconfig.local` with core.fsmonitor, and the user's next `git status` runs it on the
/// host. The tripwire does not look at it (it is not under `.git`).
#[test]
fn escape_attack3_a_config_included_by_an_included_config_runs_on_host_git_status() {
    let plant = |c: &Case| format!("cat > .gitconfig.local <<'EOF'\n{}EOF\n", evil_config(c));
    // Control: the same file written on the host makes git status run the command.
    let Some(h) = Case::escape() else { return };
    shared_config(&h);
    h.host_as_user("/bin/sh", &["-c", &plant(&h)]).ok();
    host_git_status(&h);
    assert!(marker(&h).exists(), "control: git status did not run it");

    let Some(c) = Case::escape() else { return };
    shared_config(&c);
    let out = c.sh(&format!("{}echo done", plant(&c)));
    assert!(out.stdout.contains("done"), "{out}");
    host_git_status(&c);
    assert!(
        !marker(&c).exists(),
        "the host's git status ran the agent's core.fsmonitor from .gitconfig.local, which \
         the protected .gitconfig includes:\n{out}"
    );
}

/// Attack 2: the same one level down for hooks: the included `.gitconfig` sets
/// `core.hooksPath = .githooks` (the usual way to share hooks), which wrapix does not see
/// because it reads only `.git/config`. The agent adds `.githooks/pre-commit`, and the user's
/// next `git commit` runs it.
#[test]
fn escape_attack3_a_hooks_path_set_in_an_included_config_is_writable() {
    let setup = |c: &Case| {
        c.write(
            &c.project.join(".gitconfig"),
            "[core]\n\thooksPath = .githooks\n",
        );
        c.write(&c.project.join(".githooks/README"), "hooks\n");
        repo(c);
        c.host_as_user("git", &["config", "include.path", "../.gitconfig"])
            .ok();
    };
    let plant = |c: &Case| {
        format!(
            "printf '#!/bin/sh\\ntouch {}\\n' > .githooks/pre-commit && chmod +x .githooks/pre-commit",
            marker(c).display()
        )
    };
    let commit = |c: &Case| {
        c.write(&c.project.join("a.txt"), "b\n");
        let _ = c.host_git(&c.project, &["commit", "-q", "-am", "b"]);
    };
    let Some(h) = Case::escape() else { return };
    setup(&h);
    h.host_as_user("/bin/sh", &["-c", &plant(&h)]).ok();
    commit(&h);
    assert!(marker(&h).exists(), "control: git commit did not run it");

    let Some(c) = Case::escape() else { return };
    setup(&c);
    let out = c.sh(&format!("{}; echo done", plant(&c)));
    assert!(out.stdout.contains("done"), "{out}");
    commit(&c);
    assert!(
        !marker(&c).exists(),
        "the host's git commit ran the agent's hook from .githooks, named by the included \
         .gitconfig:\n{out}"
    );
}

/// A server on the host's loopback that answers every request with `BODY` (a database, a dev
/// server, a Docker API: what `network = "open"` keeps out of every sandbox).
fn loopback_server() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
                BODY.len()
            );
        }
    });
    port
}

const BODY: &str = "wrapix-attack3-host-loopback-service";

/// Attack 3: a project's allowlist counts as narrowing (it needs no `wrapix trust`), but an
/// address in it is what lets the host-side proxy connect to a private one: `allow =
/// ["127.0.0.1"]` reaches every service on the host's loopback (and `169.254.169.254`, the
/// LAN, the host's own addresses), which the default open network keeps out. A project with
/// no wrapix.toml has none read-only, so the agent writes one, and the user's next plain run
/// reaches the host's services.
#[test]
fn escape_attack3_an_untrusted_allowlist_naming_an_address_reaches_host_loopback() {
    let Some(c) = Case::escape() else { return };
    let port = loopback_server();
    let probe = format!(
        "curl -sS --max-time 5 --noproxy '' --proxy http://127.0.0.1:3128 http://127.0.0.1:{port}/; \
         curl -sS --max-time 5 http://127.0.0.1:{port}/; echo probed"
    );
    // Control: the default (open) network does not reach the host's loopback.
    let before = c.sh(&probe);
    assert!(before.stdout.contains("probed"), "{before}");
    assert!(
        !before.stdout.contains(BODY),
        "control: reached it:\n{before}"
    );

    let plant =
        c.sh("printf 'network = { allow = [\"127.0.0.1\"] }\\n' > wrapix.toml && echo planted");
    assert!(plant.stdout.contains("planted"), "{plant}");
    let next = c.sh(&probe);
    assert!(
        !next.stdout.contains(BODY),
        "the next run, with the agent's untrusted wrapix.toml, reached a service on the \
         host's loopback:\n{next}"
    );
}
