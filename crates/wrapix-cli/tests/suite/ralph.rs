//! `wrapix ralph` end to end: real sandboxes, the real binary as the unprivileged test user,
//! and a stand-in agent (a shell script the test writes into the project) in place of Claude
//! Code. The agent reads its prompt on stdin, adds tasks with the `ralph` inside the sandbox,
//! edits and commits files, and signals; `/workspace/mode` makes it lie or hang.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use serde_json::Value;

use super::harness::{host_procs_with, unique, wait_for, Case, SECRET};

/// The stand-in agent. `@SECRET@` is the host path it must not be able to read.
const AGENT: &str = r#"#!/bin/sh
prompt=$(cat)
mode=$(cat /workspace/mode 2>/dev/null || echo ok)
case "$prompt" in
  *"Turn the specification"*)
    a=$(ralph task add "one" --spec demo --note "criterion: one") || exit 3
    b=$(ralph task add "two" --spec demo --after "$a") || exit 3
    ralph task add "three" --spec demo --after "$b" >/dev/null || exit 3
    echo RALPH_COMPLETE
    exit 0;;
esac
title=$(printf '%s\n' "$prompt" | sed -n 's/^Task [0-9]*: //p' | head -1)
{
  echo "pid1=$(cat /proc/1/comm)"
  if cat '@SECRET@' >/dev/null 2>&1; then echo secret=read; else echo secret=denied; fi
} >> /workspace/seen.txt
case "$mode" in
  hang)
    touch /workspace/started
    exec sh -c 'while :; do sleep 0.1; done' "$(cat /workspace/marker)";;
  lie)
    echo "I did it, trust me"
    echo RALPH_COMPLETE
    exit 0;;
  steal)
    touch /workspace/started
    printf '\033]0;pwned\007\033[2J' >&2
    timeout 10 head -n 1 <&2 > /workspace/stolen
    echo RALPH_COMPLETE
    exit 0;;
  skip)
    ralph task done 2 && ralph task done 3 || exit 5;;
  weaken)
    printf '[ralph]\ncheck = ["true"]\nrequire_clean = false\n' > /workspace/wrapix.toml
    echo RALPH_COMPLETE
    exit 0;;
esac
echo "$title" >> /workspace/done.txt
git add -A . ':(exclude).ralph' && git -c user.name=a -c user.email=a@b commit -qm "$title" || exit 4
echo RALPH_COMPLETE
"#;

/// A started project: the agent, a spec `demo`, a check that fails when `/workspace/fail`
/// exists, everything committed.
fn project() -> Option<Case> {
    let c = Case::new()?;
    let secret = c.home.join("secret.txt");
    c.write(
        &c.project.join("agent.sh"),
        &AGENT.replace("@SECRET@", &secret.to_string_lossy()),
    );
    std::fs::set_permissions(
        c.project.join("agent.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    c.write(
        &c.project.join(".gitignore"),
        "seen.txt\nmode\nmarker\nstarted\nfail\nstolen\n",
    );
    // `[ralph] agent` widens (it chooses what gets the agent's login): trusted here.
    c.config(
        "[ralph]\nagent = [\"/workspace/agent.sh\"]\ncheck = [\"sh\", \"-c\", \"test ! -e /workspace/fail\"]\n",
    );
    let out = c.run(&["ralph", "start"]);
    assert_eq!(out.code, 0, "{out}");
    c.write(
        &c.project.join("specs/demo.md"),
        "# demo\n\n## Success criteria\n- one, two, three\n",
    );
    c.host_repo(&c.project);
    Some(c)
}

fn tasks(c: &Case) -> Vec<Value> {
    let out = c.run(&["ralph", "task", "list", "--json"]);
    let v: Value = serde_json::from_str(out.ok()).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array().unwrap().clone()
}

fn statuses(c: &Case) -> Vec<String> {
    tasks(c)
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .collect()
}

fn ready(c: &Case) {
    let out = c.run(&["ralph", "ready", "demo"]);
    assert_eq!(out.code, 0, "{out}");
    let t = tasks(c);
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t[1]["after"], serde_json::json!([1]));
    assert_eq!(t[2]["after"], serde_json::json!([2]));
    assert_eq!(t[0]["spec"], "demo");
}

#[test]
fn ralph_start_ready_loop_does_three_dependent_tasks_in_order_in_the_sandbox() {
    let Some(c) = project() else { return };
    ready(&c);
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(statuses(&c), ["done", "done", "done"]);
    let done = std::fs::read_to_string(c.project.join("done.txt")).unwrap();
    assert_eq!(done, "one\ntwo\nthree\n", "dependency order");
    // Each step ran sandboxed: PID 1 was wrapix's init, the host secret was out of reach
    // (and is there on the host, so the check could fail).
    assert_eq!(
        std::fs::read_to_string(c.home.join("secret.txt")).unwrap(),
        SECRET
    );
    let seen = std::fs::read_to_string(c.project.join("seen.txt")).unwrap();
    assert_eq!(
        seen,
        "pid1=wrapix-init\nsecret=denied\n".repeat(3),
        "{seen}"
    );
    let status = c.run(&["ralph", "status", "--json"]);
    let s: Value = serde_json::from_str(status.ok()).unwrap();
    assert_eq!(s["states"]["done"], 3, "{s}");
    assert_eq!(s["specs"]["demo"]["done"], 3, "{s}");
    // Every run's output is kept and shown.
    let logs = c.run(&["ralph", "logs", "2"]);
    assert!(logs.ok().contains("RALPH_COMPLETE"), "{logs}");
    // Without a task: the last run's log.
    let last = c.run(&["ralph", "logs"]);
    assert!(
        last.ok().starts_with("==> .ralph/logs/3-1.log <=="),
        "{last}"
    );
    // Running again: nothing ready, everything done.
    let again = c.run(&["ralph", "loop"]);
    assert_eq!(again.code, 0, "{again}");
}

#[test]
fn ralph_a_lying_agent_is_retried_then_the_loop_stops_with_1() {
    let Some(c) = project() else { return };
    ready(&c);
    c.write(&c.project.join("mode"), "lie\n");
    c.write(&c.project.join("fail"), "");
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("task 1 failed 2 times"), "{out}");
    let t = tasks(&c);
    assert_eq!(t[0]["status"], "failed", "{t:?}");
    assert_eq!(t[0]["failures"], 2, "retried once");
    assert!(
        t[0]["reason"].as_str().unwrap().contains("check failed"),
        "{t:?}"
    );
    assert_eq!(statuses(&c)[1..], ["open", "open"]);
    let status = c.run(&["ralph", "status"]);
    assert!(status.ok().contains("check failed"), "{status}");
    assert!(!c.project.join("done.txt").exists());
}

#[test]
fn ralph_a_hanging_agent_is_killed_at_the_step_timeout() {
    let Some(c) = project() else { return };
    ready(&c);
    let marker = unique("ralph-hang");
    c.write(&c.project.join("marker"), &marker);
    c.write(&c.project.join("mode"), "hang\n");
    let start = Instant::now();
    let out = c.run(&[
        "ralph",
        "loop",
        "--step-timeout",
        "2s",
        "--max-failures",
        "1",
    ]);
    assert_eq!(out.code, 1, "{out}");
    assert!(start.elapsed() < Duration::from_secs(30), "{out}");
    let t = tasks(&c);
    assert_eq!(t[0]["status"], "failed");
    assert!(
        t[0]["reason"].as_str().unwrap().contains("timeout"),
        "{t:?}"
    );
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "{:?}",
        left()
    );
}

/// Starts `ralph loop` with a hanging agent and waits until the step runs.
fn hanging_loop(c: &Case, marker: &str) -> super::harness::Running {
    c.write(&c.project.join("marker"), marker);
    c.write(&c.project.join("mode"), "hang\n");
    let run = c.spawn(&["ralph", "loop"]);
    let started = c.project.join("started");
    assert!(
        wait_for(Duration::from_secs(30), || started.exists()),
        "the agent never started"
    );
    run
}

/// One loop per project: a second `ralph loop` while the first runs a step is refused, even
/// when the agent removes every lock file it can reach (the runner lock is in wrapix's state
/// folder, not in the project).
#[test]
fn ralph_a_second_loop_is_refused_while_one_runs_whatever_the_agent_removes() {
    let Some(c) = project() else { return };
    ready(&c);
    let marker = unique("ralph-two");
    let run = hanging_loop(&c, &marker);
    // What the agent could do from inside: the project's `.ralph` locks are gone.
    for lock in [".ralph/lock", ".ralph/runner.lock"] {
        let _ = std::fs::remove_file(c.project.join(lock));
    }
    let second = c.run(&["ralph", "loop"]);
    assert_eq!(second.code, 1, "{second}");
    assert!(second.stderr.contains("another ralph"), "{second}");
    assert!(
        !c.project.join(".ralph/runner.lock").exists(),
        "the runner lock is not in the project"
    );
    kill(run.pid(), Signal::SIGINT).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 1, "{out}");
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "{:?}",
        left()
    );
}

#[test]
fn ralph_ctrl_c_mid_step_leaves_no_task_in_progress() {
    let Some(c) = project() else { return };
    ready(&c);
    let marker = unique("ralph-int");
    let run = hanging_loop(&c, &marker);
    assert_eq!(statuses(&c)[0], "in_progress");
    kill(run.pid(), Signal::SIGINT).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("interrupted"), "{out}");
    assert_eq!(statuses(&c), ["open", "open", "open"]);
    assert!(
        tasks(&c)[0]["failures"] == 0,
        "an interruption is not a failure"
    );
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "{:?}",
        left()
    );
}

#[test]
fn ralph_resumes_after_kill_9() {
    let Some(c) = project() else { return };
    ready(&c);
    let marker = unique("ralph-kill");
    let run = hanging_loop(&c, &marker);
    kill(run.pid(), Signal::SIGKILL).unwrap();
    let out = run.finish();
    assert_eq!(out.code, 137, "{out}");
    // The sandbox died with ralph; the tracker says where it stopped.
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "{:?}",
        left()
    );
    assert_eq!(statuses(&c), ["in_progress", "open", "open"]);
    std::fs::remove_file(c.project.join("mode")).unwrap();
    std::fs::remove_file(c.project.join("started")).unwrap();
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("task 1 was in progress when ralph stopped; reopened"),
        "{out}"
    );
    assert_eq!(statuses(&c), ["done", "done", "done"]);
    let done = std::fs::read_to_string(c.project.join("done.txt")).unwrap();
    assert_eq!(done, "one\ntwo\nthree\n");
}

/// Every file below the project with its contents: to show that nothing changed.
fn contents(c: &Case) -> Vec<(String, Vec<u8>)> {
    Case::listing(&c.project)
        .into_iter()
        .filter(|p| !p.starts_with(".git/") && p != ".git")
        .map(|p| {
            let bytes = std::fs::read(c.project.join(&p)).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

/// Bad input: one line on stderr naming the problem, exit 2, nothing changed.
fn refused(c: &Case, args: &[&str], expect: &str) {
    let before = contents(c);
    let out = c.run(args);
    assert_eq!(out.code, 2, "{args:?}: {out}");
    assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out}");
    assert!(
        out.stderr.contains(expect),
        "{args:?}: expected {expect:?}: {out}"
    );
    assert_eq!(contents(c), before, "{args:?} changed the project");
}

#[test]
fn ralph_bad_input_is_one_line_exit_2_and_changes_nothing() {
    let Some(c) = project() else { return };
    ready(&c);
    // A missing spec.
    refused(&c, &["ralph", "ready", "nosuch"], "no spec specs/nosuch.md");
    refused(
        &c,
        &["ralph", "task", "add", "x", "--spec", "nosuch"],
        "no spec specs/nosuch.md",
    );
    // An unknown task id.
    refused(&c, &["ralph", "task", "done", "99"], "no task 99");
    refused(
        &c,
        &["ralph", "task", "add", "x", "--after", "99"],
        "no task 99",
    );
    refused(&c, &["ralph", "task", "show", "x1"], "bad task id");
    // A template with an unknown placeholder.
    let step = c.project.join(".ralph/templates/step.md");
    let original = std::fs::read_to_string(&step).unwrap();
    c.write(&step, "line one\nwork on {{task}}\n");
    refused(
        &c,
        &["ralph", "step"],
        ".ralph/templates/step.md:2: unknown placeholder {{task}}",
    );
    c.write(&step, &original);
    // A cycle, written by hand (the tracker refuses to make one).
    let one = c.project.join(".ralph/tasks/1.toml");
    let text = std::fs::read_to_string(&one).unwrap();
    c.write(&one, &text.replace("after = []", "after = [3]"));
    refused(&c, &["ralph", "loop"], "form a dependency cycle");
    refused(
        &c,
        &["ralph", "task", "add", "x"],
        "form a dependency cycle",
    );
    c.write(&one, &text);
    // A malformed task file.
    c.write(
        &one,
        &text.replace("status = \"open\"", "status = \"sleeping\""),
    );
    refused(&c, &["ralph", "step"], ".ralph/tasks/1.toml:3:");
    refused(&c, &["ralph", "task", "list"], ".ralph/tasks/1.toml:3:");
    c.write(&one, &text);
    // A task whose profile the config does not know.
    let out = c.run(&["ralph", "task", "add", "elsewhere", "--profile", "nosuch"]);
    assert_eq!(out.ok(), "4\n");
    c.write(&c.project.join("mode"), "lie\n");
    c.run(&["ralph", "task", "done", "1"]).ok();
    c.run(&["ralph", "task", "done", "2"]).ok();
    c.run(&["ralph", "task", "done", "3"]).ok();
    refused(&c, &["ralph", "step"], "nosuch");
    assert_eq!(statuses(&c), ["done", "done", "done", "open"]);
}

/// `ralph plan`: the agent gets the rendered plan prompt and writes the spec; what it changed
/// elsewhere is named in a warning.
#[test]
fn ralph_plan_writes_the_spec_and_warns_about_other_changes() {
    let Some(c) = Case::new() else { return };
    c.write(
        &c.project.join("agent.sh"),
        "#!/bin/sh\nprintf '%s\\n' \"$1\" | head -1 > /workspace/specs/cache.md\ntouch /workspace/stray.txt\n",
    );
    std::fs::set_permissions(
        c.project.join("agent.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    c.config("[ralph]\nagent = [\"/workspace/agent.sh\"]\n");
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    let out = c.run(&["ralph", "plan", "cache"]);
    assert_eq!(out.code, 0, "{out}");
    let spec = std::fs::read_to_string(c.project.join("specs/cache.md")).unwrap();
    assert!(spec.contains("specification for \"cache\""), "{spec}");
    assert!(
        out.stderr
            .contains("planning changed files outside specs/: stray.txt"),
        "{out}"
    );
    assert!(out.stderr.contains("next: `ralph ready cache`"), "{out}");
}

#[test]
fn ralph_is_the_same_binary_by_its_name_and_on_the_sandbox_path() {
    let Some(c) = project() else { return };
    let link = c.env.bin.with_file_name("ralph");
    // Made once per test process; concurrent tests may race to make it.
    let _ = std::os::unix::fs::symlink("wrapix", &link);
    let mut cmd = c
        .env
        .as_user(&link.to_string_lossy(), &["task", "add", "by name"]);
    c.clean_env(&mut cmd);
    let out = super::proc::output(cmd, &c.project, None).unwrap();
    assert_eq!(out.ok(), "1\n");
    let inside = c.sh("command -v ralph && ralph task list --json");
    let text = inside.ok();
    assert!(text.starts_with("/run/wrapix/bin/ralph\n"), "{text}");
    assert!(text.contains("\"title\":\"by name\""), "{text}");
}

/// With `--output-format stream-json` in `print_args`, only the final result event counts: a
/// `RALPH_COMPLETE` printed elsewhere (a tool's output, a message) does not complete a step.
#[test]
fn ralph_reads_stream_json_signals_from_the_final_result_only() {
    let Some(c) = Case::new() else { return };
    c.write(
        &c.project.join("agent.sh"),
        "#!/bin/sh\ncat >/dev/null\n\
         echo '{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"RALPH_COMPLETE\"}]}}'\n\
         echo RALPH_COMPLETE\n\
         if [ -e /workspace/finish ]; then\n\
           printf '%s\\n' '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"done\\nRALPH_COMPLETE\"}'\n\
         fi\n",
    );
    std::fs::set_permissions(
        c.project.join("agent.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    c.config(
        "[ralph]\nagent = [\"/workspace/agent.sh\"]\nprint_args = [\"--output-format\", \"stream-json\"]\nrequire_clean = false\n",
    );
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    assert_eq!(c.run(&["ralph", "task", "add", "t"]).ok(), "1\n");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("no completion signal"), "{out}");
    c.write(&c.project.join("finish"), "");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(statuses(&c), ["done"]);
    // Inside, ralph is the tracker only.
    let inside = c.sh("ralph loop");
    assert_eq!(inside.code, 2, "{inside}");
    assert!(inside.stderr.contains("only `ralph task"), "{inside}");
}

#[test]
fn ralph_loop_limits_stop_file_max_steps_and_timeout() {
    let Some(c) = project() else { return };
    ready(&c);
    // .ralph/STOP: no step runs, the file is consumed.
    c.write(&c.project.join(".ralph/STOP"), "");
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(".ralph/STOP"), "{out}");
    assert!(!c.project.join(".ralph/STOP").exists());
    assert_eq!(statuses(&c), ["open", "open", "open"]);
    // --max-steps.
    let out = c.run(&["ralph", "loop", "--max-steps", "1"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("--max-steps 1"), "{out}");
    assert_eq!(statuses(&c), ["done", "open", "open"]);
    // --timeout of the loop: the running step is killed and its task reopened, not failed.
    let marker = unique("ralph-timeout");
    c.write(&c.project.join("marker"), &marker);
    c.write(&c.project.join("mode"), "hang\n");
    let out = c.run(&["ralph", "loop", "--timeout", "2s"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("stopped at --timeout"), "{out}");
    let t = tasks(&c);
    assert_eq!(t[1]["status"], "open", "{t:?}");
    assert_eq!(t[1]["failures"], 0, "{t:?}");
    let left = || host_procs_with(&marker);
    assert!(
        wait_for(Duration::from_secs(5), || left().is_empty()),
        "{:?}",
        left()
    );
}

/// The agent inside and ralph outside add tasks at the same time: every id distinct, every
/// file whole.
#[test]
fn ralph_task_add_inside_and_outside_at_once() {
    let Some(c) = Case::new() else { return };
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    let inside = c.spawn(&[
        "run",
        "--",
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do ralph task add in$i >/dev/null || exit 1; done",
    ]);
    for i in 0..15 {
        c.run(&["ralph", "task", "add", &format!("out{i}")]).ok();
    }
    let out = inside.finish();
    assert_eq!(out.code, 0, "{out}");
    let t = tasks(&c);
    let mut ids: Vec<u64> = t.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
}

/// Ralph never runs the agent unconfined, and a project file may not choose ralph's agent
/// without trust: both bad input, nothing changed.
#[test]
fn ralph_refuses_no_sandbox_and_an_untrusted_agent() {
    let Some(c) = project() else { return };
    ready(&c);
    refused(
        &c,
        &["ralph", "step", "--backend", "none"],
        "ralph never does",
    );
    let config = c.project.join("wrapix.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    // The same file with another agent: not the content that was trusted.
    c.write(&config, &text.replace("agent.sh", "other.sh"));
    refused(&c, &["ralph", "loop"], "ralph.agent");
    assert!(!c.project.join("seen.txt").exists(), "the agent ran");
}

/// `ralph tune`: the editor gets the template's path; `--diff` compares with the default; a
/// template the editor left unrenderable is reported at once.
#[test]
fn ralph_tune_edits_and_diffs_templates() {
    let Some(c) = Case::new() else { return };
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    let c = c.host_env("EDITOR", "true");
    assert_eq!(c.run(&["ralph", "tune", "ready"]).code, 0);
    let step = c.project.join(".ralph/templates/step.md");
    let text = std::fs::read_to_string(&step).unwrap();
    c.write(&step, &format!("{text}Keep commits small.\n"));
    let diff = c.run(&["ralph", "tune", "--diff"]);
    assert!(diff.stdout.contains("+Keep commits small."), "{diff}");
    c.write(&step, "{{nope}}\n");
    let out = c.run(&["ralph", "tune", "step"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("step.md:1: unknown placeholder {{nope}}"),
        "{out}"
    );
    // A link planted in place of a template is not opened.
    std::fs::remove_file(&step).unwrap();
    std::os::unix::fs::symlink(c.home.join("secret.txt"), &step).unwrap();
    let out = c.run(&["ralph", "tune", "step"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("not a regular file"), "{out}");
}

/// Attack: the agent chooses the profile of a later step. `ralph task add --profile host`
/// (or `profile = "host"` in a task file) became the `--profile` flag of that step, which is
/// the user's own choice and needs no trust: the next step ran on the host's `/usr` and
/// `/etc` although the user config chose an image profile, the widening a project file may
/// only make after `wrapix trust`. A task's profile is the agent's, so it may not widen.
#[test]
fn ralph_a_task_profile_may_not_widen_to_host() {
    let Some(c) = project() else { return };
    c.write(
        &c.home.join(".config/wrapix/config.toml"),
        "profile = \"base\"\n",
    );
    // What the agent runs inside the sandbox in an earlier step.
    let out = c.run(&["ralph", "task", "add", "escape", "--profile", "host"]);
    assert_eq!(out.ok(), "1\n");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("host"), "{out}");
    assert!(!c.project.join("seen.txt").exists(), "the agent ran: {out}");
    assert_eq!(statuses(&c), ["open"]);
    // Chosen on the command line by the user, the image profile is not widened either.
    c.write(&c.home.join(".config/wrapix/config.toml"), "");
    let out = c.run(&["ralph", "step", "--profile", "base"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(!c.project.join("seen.txt").exists(), "the agent ran: {out}");
}

/// Attack: text the agent wrote reaches the user's terminal raw. `.ralph/progress.md` is
/// agent-writable and `ralph status` printed its last line as it is; a log's file name (the
/// agent can create `.ralph/logs/1-<ESC>…`) and a log named in progress.md were printed raw
/// in `ralph logs`' header.
#[test]
fn ralph_status_and_logs_escape_what_the_agent_wrote() {
    let Some(c) = project() else { return };
    assert_eq!(c.run(&["ralph", "task", "add", "t"]).ok(), "1\n");
    let esc = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
    c.write(
        &c.project.join(".ralph/progress.md"),
        &format!("- x task 1: done {esc}\n"),
    );
    let out = c.run(&["ralph", "status"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    c.write(
        &c.project.join(format!(".ralph/logs/1-{esc}.log")),
        "output\n",
    );
    let out = c.run(&["ralph", "logs", "1"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("output"), "{out}");
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    c.write(
        &c.project.join(".ralph/progress.md"),
        &format!("- x task 1: done (.ralph/logs/1-{esc}.log)\n"),
    );
    let out = c.run(&["ralph", "logs"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
}

/// Attack: `ralph tune` checked that the template is a regular file, then handed its path in
/// the agent-writable project to the editor. A sandbox running meanwhile (a loop) that swaps
/// the template for a link between the check and the editor's open makes the user's editor
/// write through it, to any file of the user's. The stand-in editor wins that race itself.
#[test]
fn ralph_tune_never_hands_the_editor_a_path_the_agent_can_swap() {
    let Some(c) = Case::new() else { return };
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    let secret = c.home.join("secret.txt");
    let editor = c.home.join("editor.sh");
    c.write(
        &editor,
        &format!(
            "#!/bin/sh\nt={}/.ralph/templates/step.md\nrm -f \"$t\" && ln -s {} \"$t\"\necho 'Keep commits small.' >> \"$1\"\n",
            c.project.display(),
            secret.display()
        ),
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let c = c.host_env("EDITOR", &editor.to_string_lossy());
    let out = c.run(&["ralph", "tune", "step"]);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), SECRET, "{out}");
    // What the user edited is the template, written in place of whatever the agent put there.
    let step = c.project.join(".ralph/templates/step.md");
    assert!(!step.is_symlink(), "{out}");
    assert_eq!(out.code, 0, "{out}");
    assert!(
        std::fs::read_to_string(&step)
            .unwrap()
            .ends_with("Keep commits small.\n"),
        "{out}"
    );
}

/// Attack: the agent marks tasks done that ralph never ran. Inside the sandbox
/// `ralph task done ID` (or a write to `.ralph/tasks/ID.toml`) sets any task's status, and
/// the loop takes the tracker's word: tasks 2 and 3 count as done without an agent run, a
/// check or a clean tree, and the loop exits 0 "every task is done".
#[test]
fn ralph_a_task_the_agent_marked_done_is_not_done_unverified() {
    let Some(c) = project() else { return };
    ready(&c);
    c.write(&c.project.join("mode"), "skip\n");
    let out = c.run(&["ralph", "loop"]);
    let done = std::fs::read_to_string(c.project.join("done.txt")).unwrap_or_default();
    assert_eq!(
        done, "one\ntwo\nthree\n",
        "tasks 2 and 3 were never run or checked, yet: {out}"
    );
}

/// The same class, from inside the sandbox (where `ralph` is the agent's tracker): a task the
/// agent adds with `ralph task add` is ready, as designed; one it writes as `done`, or marks
/// `in_progress` (which the loop skipped, so it stopped short), is not believed. Status
/// output tells the verified truth and names what it did not believe.
#[test]
fn ralph_forged_states_are_not_believed_but_added_tasks_are_ready() {
    let Some(c) = project() else { return };
    ready(&c);
    let inside = c.sh(
        "set -e; ralph task add four --spec demo --after 1 >/dev/null; \
         printf 'id = 5\\ntitle = \"five\"\\nstatus = \"done\"\\nafter = [1]\\n' > .ralph/tasks/5.toml; \
         sed -i 's/^status = .*/status = \"in_progress\"/' .ralph/tasks/3.toml; \
         sed -i 's/^status = .*/status = \"failed\"/; s/^failures = .*/failures = 9/' .ralph/tasks/2.toml; \
         ralph task list --json",
    );
    assert_eq!(inside.code, 0, "{inside}");
    // Inside, the files as they are; on the host, what ralph verified.
    assert!(inside.stdout.contains("\"status\":\"done\""), "{inside}");
    assert_eq!(statuses(&c), ["open", "open", "open", "open", "open"]);
    let status = c.run(&["ralph", "status", "--json"]);
    let s: Value = serde_json::from_str(status.ok()).unwrap();
    assert_eq!(s["states"]["done"], 0, "{s}");
    assert_eq!(s["unverified"], 3, "{s}");
    assert!(
        status.stderr.contains(
            "task 5 (five): .ralph/tasks/5.toml says done, but ralph never recorded that"
        ),
        "{status}"
    );
    assert!(status.stderr.contains("task 3 (three)"), "{status}");
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(statuses(&c), ["done"; 5]);
    let done = std::fs::read_to_string(c.project.join("done.txt")).unwrap();
    assert_eq!(done, "one\ntwo\nthree\nfour\nfive\n", "{out}");
    // Once verified, no notice is left.
    let status = c.run(&["ralph", "status"]);
    assert!(!status.stderr.contains("notice"), "{status}");
}

/// The agent edits a task ralph did: its title, note or profile is no longer what ralph
/// verified, so it is not done any more and runs again. The user's own `ralph task done` on
/// the host is believed.
#[test]
fn ralph_an_edited_done_task_is_done_no_more() {
    let Some(c) = project() else { return };
    ready(&c);
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
    let edit = c.sh("sed -i 's/^title = .*/title = \"one again\"/' .ralph/tasks/1.toml");
    assert_eq!(edit.code, 0, "{edit}");
    let status = c.run(&["ralph", "status"]);
    assert!(
        status
            .stderr
            .contains("task 1 (one again): .ralph/tasks/1.toml says done, but its title, spec, note or profile changed since ralph recorded it done"),
        "{status}"
    );
    assert_eq!(statuses(&c), ["open", "done", "done"]);
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
    let done = std::fs::read_to_string(c.project.join("done.txt")).unwrap();
    assert_eq!(done, "one\ntwo\nthree\none again\n", "{out}");
    // The user's word on the host counts.
    let edit = c.sh("sed -i 's/^title = .*/title = \"one, typo fixed\"/' .ralph/tasks/1.toml");
    assert_eq!(edit.code, 0, "{edit}");
    assert_eq!(c.run(&["ralph", "task", "done", "1"]).code, 0);
    assert_eq!(statuses(&c), ["done", "done", "done"]);
}

/// The agent removes a task ralph has not done (nothing depends on it, so the tracker still
/// loads): the loop must not say "every task is done". `ralph task forget` on the host drops
/// it on purpose.
#[test]
fn ralph_a_task_the_agent_removed_is_not_done() {
    let Some(c) = project() else { return };
    ready(&c);
    let rm = c.sh("rm .ralph/tasks/3.toml");
    assert_eq!(rm.code, 0, "{rm}");
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("task 3 was removed from .ralph/tasks before ralph finished it"),
        "{out}"
    );
    let status = c.run(&["ralph", "status", "--json"]);
    let s: Value = serde_json::from_str(status.ok()).unwrap();
    assert_eq!(s["missing"], serde_json::json!([3]), "{s}");
    // Inside, the record is out of reach: `forget` is the host's.
    let inside = c.sh("ralph task forget 3");
    assert_eq!(inside.code, 2, "{inside}");
    assert_eq!(c.run(&["ralph", "task", "forget", "3"]).code, 0);
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 0, "{out}");
}

/// The tracker's files are the agent's: a link planted for one, a huge one or one that does
/// not parse stops ralph with the file named and the fix, before any agent runs, and nothing
/// is reset. ralph's own record, outside the project, is never reset either.
#[test]
fn ralph_a_bad_tracker_file_or_record_is_an_error_never_a_reset() {
    let Some(c) = project() else { return };
    ready(&c);
    let two = c.project.join(".ralph/tasks/2.toml");
    let text = std::fs::read_to_string(&two).unwrap();
    std::fs::remove_file(&two).unwrap();
    std::os::unix::fs::symlink(c.home.join("secret.txt"), &two).unwrap();
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains(".ralph/tasks/2.toml"), "{out}");
    assert!(out.stderr.contains("remove it"), "{out}");
    std::fs::remove_file(&two).unwrap();
    c.write(&two, &format!("{text}#{}\n", "x".repeat(2 << 20)));
    let out = c.run(&["ralph", "loop"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("2.toml is larger than"), "{out}");
    c.write(&two, &text);
    assert!(!c.project.join("seen.txt").exists(), "an agent ran: {out}");
    // ralph's record, corrupt: loud, never "nothing verified" or "everything".
    let out = c.run(&["ralph", "loop", "--max-steps", "1"]);
    assert_eq!(out.code, 1, "{out}");
    let record = c.state_dir().join("ralph.json");
    let good = std::fs::read_to_string(&record).unwrap();
    assert!(good.contains("\"done\""), "{good}");
    c.write(&record, "{\"tasks\": ");
    let out = c.run(&["ralph", "loop"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("ralph.json: not ralph's record"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "{\"tasks\": ");
}

/// Attack: the agent turns the check off for the next run. With `[ralph] check` in
/// the user's config and no project `wrapix.toml`, the agent creates one (a protected path is
/// protected only when it exists at the start) with `check = ["true"]` and
/// `require_clean = false`; neither needs `wrapix trust`, and the project file wins over the
/// user's. The next `ralph step` passes a task whose real check fails.
#[test]
fn ralph_the_agent_cannot_turn_the_users_check_off() {
    let Some(c) = Case::new() else { return };
    let agent = c.project.join("agent.sh");
    c.write(&agent, &AGENT.replace("@SECRET@", "/nonexistent"));
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.write(
        &c.project.join(".gitignore"),
        "seen.txt\nmode\nmarker\nstarted\nfail\n",
    );
    c.write(
        &c.home.join(".config/wrapix/config.toml"),
        "[ralph]\nagent = [\"/workspace/agent.sh\"]\ncheck = [\"sh\", \"-c\", \"test ! -e /workspace/fail\"]\n",
    );
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    c.host_repo(&c.project);
    assert_eq!(c.run(&["ralph", "task", "add", "t"]).ok(), "1\n");
    c.write(&c.project.join("mode"), "weaken\n");
    c.write(&c.project.join("fail"), "");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 1, "the check fails: {out}");
    assert!(c.project.join("wrapix.toml").exists(), "{out}");
    let out = c.run(&["ralph", "step"]);
    assert_ne!(out.code, 0, "the check still fails: {out}");
    assert_ne!(statuses(&c), ["done"], "{out}");
}

/// Attack: the agent's stderr was the user's terminal itself (ralph's stderr, inherited).
/// The sandbox runs in a session of its own, so job control does not stop it reading that
/// terminal: it got what the user typed while the loop ran, and wrote escape sequences to it.
#[test]
fn ralph_the_agent_cannot_read_or_drive_the_users_terminal() {
    let Some(c) = project() else { return };
    assert_eq!(c.run(&["ralph", "task", "add", "t"]).ok(), "1\n");
    c.write(&c.project.join("mode"), "steal\n");
    let bin = c.env.bin.to_string_lossy().into_owned();
    let (running, mut master) = super::escape_tty::start_on_pty(
        &c,
        c.env
            .user_argv(&bin, &["ralph", "step", "--step-timeout", "30s"]),
    );
    let started = c.project.join("started");
    assert!(
        wait_for(Duration::from_secs(30), || started.exists()),
        "the agent never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    std::io::Write::write_all(&mut master, b"hunter2\n").unwrap();
    let out = running.finish();
    let mut screen = Vec::new();
    use std::os::fd::AsRawFd;
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let _ = std::io::Read::read_to_end(&mut master, &mut screen);
    let screen = String::from_utf8_lossy(&screen);
    let stolen = std::fs::read_to_string(c.project.join("stolen")).unwrap_or_default();
    assert!(
        !stolen.contains("hunter2"),
        "the agent read the terminal: {out}"
    );
    assert!(
        !screen.contains('\u{1b}'),
        "raw escapes on the terminal: {screen:?}"
    );
}

/// The same class without any user config: `require_clean = false` in a project file the
/// agent creates turns off ralph's default rule that the work be committed; it needs trust.
/// A check the project adds where the user has none only narrows, and needs none.
#[test]
fn ralph_the_agent_cannot_turn_the_clean_tree_rule_off() {
    let Some(c) = Case::new() else { return };
    let agent = c.project.join("agent.sh");
    c.write(
        &agent,
        "#!/bin/sh\ncat >/dev/null\necho work > /workspace/uncommitted.txt\nprintf '[ralph]\\nrequire_clean = false\\n' > /workspace/wrapix.toml\necho RALPH_COMPLETE\n",
    );
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.write(
        &c.home.join(".config/wrapix/config.toml"),
        "[ralph]\nagent = [\"/workspace/agent.sh\"]\n",
    );
    assert_eq!(c.run(&["ralph", "start"]).code, 0);
    c.host_repo(&c.project);
    assert_eq!(c.run(&["ralph", "task", "add", "t"]).ok(), "1\n");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 1, "the tree is not clean: {out}");
    let out = c.run(&["ralph", "step"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("ralph.require_clean"), "{out}");
    assert!(out.stderr.contains("wrapix trust"), "{out}");
    assert_eq!(statuses(&c), ["failed"]);
    // A check added by the project, where the user config has none: no trust needed.
    c.write(
        &c.project.join("wrapix.toml"),
        "[ralph]\ncheck = [\"sh\", \"-c\", \"exit 3\"]\n",
    );
    let out = c.run(&["ralph", "step", "--max-failures", "5"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("check failed (exit 3)"), "{out}");
}

/// The prompt templates are the agent's too: read without following a link and bounded, so
/// a template linked to a host file never carries that file into a prompt.
#[test]
fn ralph_a_linked_template_is_not_followed() {
    let Some(c) = project() else { return };
    ready(&c);
    let step = c.project.join(".ralph/templates/step.md");
    std::fs::remove_file(&step).unwrap();
    std::os::unix::fs::symlink(c.home.join("secret.txt"), &step).unwrap();
    let out = c.run(&["ralph", "step"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("step.md is a symbolic link"), "{out}");
    assert!(!c.project.join("seen.txt").exists(), "the agent ran: {out}");
}
