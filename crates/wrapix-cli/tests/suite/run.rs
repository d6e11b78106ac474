//! Behaviour of `wrapix run`: identity, exit codes, signals, deploy keys.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use super::escape_tty::{on_pty, start_on_pty};
use super::harness::{host_procs_with, skip, unique, wait_for, Case};

#[test]
fn runs_as_the_user_in_workspace() {
    let Some(c) = Case::new() else { return };
    let out = c.sh(
        "touch /workspace/created; mkdir /workspace/d; pwd; id -u; id -g; hostname; echo $HOME",
    );
    let expected = format!(
        "/workspace\n{}\n{}\nwrapix\n/home/{}\n",
        c.env.uid, c.env.gid, c.env.user
    );
    assert_eq!(out.ok(), expected, "{out}");
    for name in ["created", "d"] {
        let meta = std::fs::metadata(c.project.join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (c.env.uid, c.env.gid),
            "owner of {name}"
        );
    }
}

/// The identity inside is the one git gives on the host in that folder: includes and an
/// `includeIf "gitdir:"` for the project are followed; the repository's own config is not read
/// for it.
#[test]
fn git_identity_follows_the_users_includes() {
    let Some(c) = Case::new() else { return };
    c.write(&c.project.join("README"), "x\n");
    c.host_repo(&c.project);
    c.write(&c.home.join("id.inc"), "[user]\n\tname = Ada Lovelace\n");
    c.write(
        &c.home.join("work.inc"),
        "[user]\n\temail = ada@work.example\n",
    );
    c.write(
        &c.home.join(".gitconfig"),
        &format!(
            "[include]\n\tpath = id.inc\n[user]\n\temail = ada@home.example\n[includeIf \"gitdir:{}/\"]\n\tpath = work.inc\n",
            c.project.display()
        ),
    );
    let out = c.sh("git config --global user.name; git config --global user.email");
    assert_eq!(
        out.stdout, "Ada Lovelace\nada@work.example\n",
        "{}",
        out.stderr
    );
}

#[test]
fn exit_codes_propagate() {
    let Some(c) = Case::new() else { return };
    assert_eq!(c.sh("exit 7").code, 7);
    assert_eq!(c.sh("exit 0").code, 0);
    let killed = c.sh("kill -9 $$");
    assert_eq!(killed.code, 137, "{killed}");
    let missing = c.run(&["run", "--", "/no/such/program"]);
    assert_eq!(missing.code, 127, "{missing}");
}

/// Starts a trapping script (on a terminal: wrapix's init is PID 1 and passes the signal on;
/// without one: bubblewrap's init is, and wrapix signals the command's group), waits until it
/// is ready, sends `sig` to wrapix, and checks that the trap ran, the exit code came back, and
/// nothing of the sandbox is left.
fn signal_is_forwarded(sig: Signal, trap: &str, on_terminal: bool) {
    let Some(c) = Case::new() else { return };
    let marker = unique("wrapix-sigtest");
    let script = format!(
        "trap 'echo {trap} > /workspace/got; exit 3' {trap}; touch /workspace/ready; \
         while :; do sleep 0.1; done"
    );
    let args = ["run", "--", "/bin/sh", "-c", &script, &marker];
    // setpriv (and setsid -c) exec wrapix: the child's pid is wrapix's.
    let (run, _terminal) = match on_terminal {
        false => (c.spawn(&args), None),
        true => {
            let bin = c.env.bin.to_string_lossy().into_owned();
            let (run, master) = start_on_pty(&c, c.env.user_argv(&bin, &args));
            (run, Some(master))
        }
    };
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(30), || ready.exists()),
        "the script never got ready"
    );
    kill(run.pid(), sig).unwrap();
    let out = run.finish();
    assert_eq!(
        out.code, 3,
        "{sig}: the trap's exit code did not come back:\n{out}"
    );
    let got = std::fs::read_to_string(c.project.join("got")).unwrap_or_default();
    assert_eq!(got.trim(), trap, "{sig}: the trap did not run:\n{out}");
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "processes left: {:?}",
        left()
    );
}

#[test]
fn sigterm_is_forwarded_to_the_command() {
    signal_is_forwarded(Signal::SIGTERM, "TERM", false);
}

#[test]
fn sigint_is_forwarded_to_the_command() {
    signal_is_forwarded(Signal::SIGINT, "INT", false);
}

#[test]
fn sigterm_is_forwarded_on_a_terminal() {
    signal_is_forwarded(Signal::SIGTERM, "TERM", true);
}

#[test]
fn sighup_is_forwarded_on_a_terminal() {
    signal_is_forwarded(Signal::SIGHUP, "HUP", true);
}

#[test]
fn killing_wrapix_leaves_no_process_behind() {
    let Some(c) = Case::new() else { return };
    let marker = unique("wrapix-killtest");
    let run = c.spawn(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        "touch /workspace/ready; sleep 300",
        &marker,
    ]);
    let ready = c.project.join("ready");
    assert!(
        wait_for(Duration::from_secs(30), || ready.exists()),
        "the script never got ready"
    );
    kill(run.pid(), Signal::SIGKILL).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 137);
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(10), || left().is_empty()),
        "processes left: {:?}",
        left()
    );
}

fn has_ssh_keygen() -> bool {
    [
        "/usr/bin/ssh-keygen",
        "/usr/local/bin/ssh-keygen",
        "/bin/ssh-keygen",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

#[test]
fn deploy_key_is_created_and_mounted() {
    let Some(c) = Case::new() else { return };
    if !has_ssh_keygen() {
        skip("ssh-keygen (openssh-client) is not installed");
        return;
    }
    let created = c.run(&["deploy-key", "create", "testkey"]);
    let public = created.ok().to_owned();
    assert!(public.starts_with("ssh-ed25519 "), "{created}");
    let dir = c.home.join(".ssh/deploy_keys");
    let private = std::fs::read(dir.join("testkey")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("testkey.pub")).unwrap(),
        public
    );
    let meta = std::fs::metadata(dir.join("testkey")).unwrap();
    assert_eq!(meta.uid(), c.env.uid);
    assert_eq!(
        meta.mode() & 0o077,
        0,
        "the private key is readable by others"
    );

    let out = c.sh_with(
        &["--deploy-key", "testkey"],
        "echo \"$GIT_SSH_COMMAND\"; cat ~/.ssh/deploy_keys/testkey.pub; \
         grep -c github.com ~/.ssh/known_hosts; test -r ~/.ssh/deploy_keys/testkey && echo READABLE; \
         echo x >> ~/.ssh/deploy_keys/testkey && echo KEY-WRITTEN; true",
    );
    let stdout = out.ok();
    let mut lines = stdout.lines();
    let ssh = lines.next().unwrap_or("");
    assert!(
        ssh.contains("IdentitiesOnly=yes") && ssh.contains("deploy_keys/testkey"),
        "{out}"
    );
    assert!(
        stdout.contains(public.trim()),
        "the public key is not inside:\n{out}"
    );
    assert!(
        stdout.contains("READABLE") && !stdout.contains("KEY-WRITTEN"),
        "{out}"
    );
    let hosts = stdout
        .lines()
        .find_map(|l| l.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(hosts >= 1, "no github.com in known_hosts:\n{out}");

    let again = c.run(&["deploy-key", "create", "testkey"]);
    assert_ne!(again.code, 0, "a second create succeeded:\n{again}");
    assert!(again.stderr.contains("already exists"), "{again}");
    assert_eq!(
        std::fs::read(dir.join("testkey")).unwrap(),
        private,
        "the key was overwritten"
    );
}

#[test]
fn agent_state_lives_in_the_state_folder_outside_the_project() {
    let Some(c) = Case::new() else { return };
    let c = c.host_env("CLAUDE_CODE_OAUTH_TOKEN", "tok-for-test");
    let agent = c.project.join("bin/claude");
    c.write(
        &agent,
        "#!/bin/sh\necho \"dir=$CLAUDE_CONFIG_DIR\"\necho \"token=$CLAUDE_CODE_OAUTH_TOKEN\"\n\
         cat ~/.claude/settings.json; echo\ntouch ~/.claude/agent-was-here\n",
    );
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.config("[agent]\ncommand = [\"/workspace/bin/claude\"]\n");
    c.write(&c.home.join(".claude/settings.json"), "{\"x\":1}");

    let out = c.run(&["run"]);
    let expected = format!("dir=/home/{}/.claude\ntoken=tok-for-test\n", c.env.user);
    assert!(out.ok().starts_with(&expected), "{out}");
    let state = c.state_dir().join("claude");
    assert!(
        state.join("agent-was-here").exists(),
        "agent state not in the state folder"
    );
    // The seeded settings, with wrapix's notification hooks merged in.
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("settings.json")).unwrap())
            .unwrap();
    assert_eq!(settings["x"], 1);
    assert_eq!(
        settings["hooks"]["Stop"][0]["hooks"][0]["command"],
        "/run/wrapix/bin/wrapix notify --hook Stop"
    );
    assert!(
        !c.home.join(".claude/agent-was-here").exists(),
        "the agent wrote the host's ~/.claude"
    );
    // Nothing of wrapix's own in the project.
    assert!(!c.project.join(".wrapix").exists());
    let owner = std::fs::metadata(&state).unwrap().uid();
    assert_eq!(owner, c.env.uid);
}

#[test]
fn missing_agent_without_a_tty_exits_127() {
    let Some(c) = Case::new() else { return };
    c.config("[agent]\ncommand = [\"wrapix-no-such-agent\"]\n");
    let out = c.run(&["run"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(
        out.stderr.contains("wrapix-no-such-agent"),
        "the message does not name the agent:\n{out}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
}

/// PID 1 is wrapix's init with or without a terminal: the small `wrapix-init` installed beside
/// wrapix, or `wrapix __init` without it.
#[test]
fn pid_1_is_wrapix_init_with_and_without_a_terminal() {
    let Some(c) = Case::new() else { return };
    let pid1 = "tr '\\0' ' ' < /proc/1/cmdline; echo";
    let out = c.sh(pid1);
    assert!(
        out.ok()
            .starts_with("/run/wrapix/bin/wrapix-init -- /bin/sh -c"),
        "{out}"
    );

    let args = ["run", "--network", "none", "--", "/bin/sh", "-c", pid1];
    let bin = c.env.bin.to_string_lossy().into_owned();
    let (out, screen) = on_pty(&c, c.env.user_argv(&bin, &args));
    assert_eq!(out.code, 0, "{out}\n{screen}");
    assert!(
        screen.contains("/run/wrapix/bin/wrapix-init -- /bin/sh -c"),
        "{screen:?}"
    );
    // A wrapix binary without wrapix-init beside it.
    let alone = c.root.join("alone");
    std::fs::create_dir(&alone).unwrap();
    let bin = alone.join("wrapix");
    std::fs::copy(&c.env.bin, &bin).unwrap();
    c.give(&alone);
    let (out, screen) = on_pty(&c, c.env.user_argv(&bin.to_string_lossy(), &args));
    assert_eq!(out.code, 0, "{out}\n{screen}");
    assert!(
        screen.contains("/run/wrapix/bin/wrapix __init -- /bin/sh -c"),
        "{screen:?}"
    );
}

/// `wrapix notifyd` and `wrapix mcp` exec `wrapix-serve` beside wrapix; without it, exit 127
/// with a message that names it and the fix.
#[test]
fn servers_need_wrapix_serve_beside_wrapix() {
    let Some(c) = Case::new() else { return };
    let out = c.run(&["notifyd", "--print-systemd-unit"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("notifyd"), "{out}");
    let alone = c.root.join("alone");
    std::fs::create_dir(&alone).unwrap();
    let bin = alone.join("wrapix");
    std::fs::copy(&c.env.bin, &bin).unwrap();
    c.give(&alone);
    // wrapix doctor names it, with the fix.
    let mut cmd = c.env.as_user(&bin.to_string_lossy(), &["doctor"]);
    c.clean_env(&mut cmd);
    let doctor = super::proc::output(cmd, &c.project, None).unwrap();
    let line = doctor
        .stdout
        .lines()
        .find(|l| l.contains("wrapix-serve ("))
        .unwrap_or_default();
    assert!(
        line.contains("[warn]") && line.contains("not installed"),
        "{doctor}"
    );
    let installed = c.run(&["doctor"]);
    assert!(
        installed
            .stdout
            .lines()
            .any(|l| l.contains("[ok  ] wrapix-serve (")),
        "{installed}"
    );
    for args in [&["notifyd"][..], &["mcp", "tmux-debug"]] {
        let mut cmd = c.env.as_user(&bin.to_string_lossy(), args);
        c.clean_env(&mut cmd);
        let out = super::proc::output(cmd, &c.project, None).unwrap();
        assert_eq!(out.code, 127, "{args:?}: {out}");
        assert!(
            out.stderr.contains("wrapix-serve") && out.stderr.contains("cargo install"),
            "{args:?}: {out}"
        );
    }
}

/// `[resources]` with bubblewrap: enforced through a systemd scope where the host has one
/// (cgroup v2, a user manager with the controllers delegated), refused before anything runs
/// everywhere else.
#[test]
fn resources_are_enforced_in_a_scope_or_refused() {
    let Some(c) = Case::new() else { return };
    c.config("[resources]\nmemory_mb = 256\npids = 64\n");
    let marker = unique("wrapix-limits");
    let mut run = c.spawn(&[
        "run",
        "--network",
        "none",
        "--",
        "/bin/sh",
        "-c",
        &format!("touch /workspace/ran; exec sleep 20 # {marker}"),
    ]);
    wait_for(Duration::from_secs(10), || {
        c.project.join("ran").exists() || !matches!(run.child.try_wait(), Ok(None))
    });
    let started = c.project.join("ran").exists();
    if !started {
        let out = run.finish();
        assert_eq!(out.code, 125, "{out}");
        assert!(
            out.stderr
                .contains("[resources] limits cannot be enforced for bubblewrap here:"),
            "{out}"
        );
        assert!(
            !c.project.join("ran").exists(),
            "the command ran without its limits"
        );
        let why = out.stderr.lines().next().unwrap_or_default().to_owned();
        return skip(&format!(
            "this host cannot put a bubblewrap run in a limited scope; the refusal was checked ({why})"
        ));
    }
    // The command's cgroup on the host is the scope, with the limits.
    let procs = host_procs_with(&marker);
    let pid = &procs
        .first()
        .expect("the sandboxed command is not running")
        .0;
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("no cgroup v2 entry");
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let limits = (read("memory.max"), read("pids.max"));
    let _ = kill(run.pid(), Signal::SIGKILL);
    let _ = run.finish();
    assert!(path.ends_with(".scope"), "not in a scope: {path}");
    assert_eq!(limits, ("268435456\n".into(), "64\n".into()), "{path}");
}
