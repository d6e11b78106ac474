//! The agent runs of ralph: `plan` (interactive), `ready`, `step` and `loop`
//! (non-interactive). Every one goes through [`crate::commands::launch`], the same path as
//! `wrapix run`, with the prompt on stdin and stdout captured; never on the host.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal as Sig};
#[cfg(target_os = "linux")]
use nix::sys::signalfd::{SfdFlags, SignalFd};
use wrapix_ralph::signal::{self, Signal};
use wrapix_ralph::template::{self, Kind};
use wrapix_ralph::tracker::{self, Status, Task};
use wrapix_ralph::verdict::{self, StepFacts, Stop, Verdict};
use wrapix_ralph::verified::{content_hash, Ledger};
use wrapix_ralph::Project;
use wrapix_sandbox::exec::{ExecOptions, Stopped};
use wrapix_sandbox::RunMode;
use wrapix_spec::ralph::Ralph;

use super::board::Board;
use super::{believed, open, project_path, RunArgs};
use crate::cli::SandboxArgs;
use crate::commands::launch::{launch, Launch};
use crate::commands::Failure;
use crate::context::{host_env, load_layers, load_spec};
use crate::EXIT_USAGE;

/// The most of a run's output kept (its end: stream-json's result event is last).
const OUTPUT_MAX: usize = 16 << 20;
/// How long a stopped step's sandbox has to exit after Ctrl-C before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Why ralph does not run with `backend = "none"`.
const NO_SANDBOX: &str = "backend \"none\" runs without a sandbox, which ralph never does: choose a sandbox backend (--backend auto)";
/// Progress lines given to the step template.
const PROGRESS_LINES: usize = 20;

pub struct Limits {
    pub max_steps: u32,
    pub max_failures: u32,
    pub timeout: Option<Duration>,
    /// `ralph step`: one step, exit 0 only when its task is done.
    pub single: bool,
}

/// The project and its config, loaded once per command.
pub(crate) struct Ctx {
    pub(crate) project: Project,
    /// ralph's record of what it decided, outside every sandbox.
    pub(crate) ledger: Ledger,
    args: SandboxArgs,
    ralph: Ralph,
    /// The agent's argv for ralph (`[ralph] agent`, else `[agent] command`).
    agent: Vec<String>,
    /// The user's choice (flags, config) is the `host` profile: only then may a task's
    /// profile be `host`.
    host_profile: bool,
    /// Where the tasks live.
    tracker: wrapix_ralph::beads::Kind,
}

impl Ctx {
    pub(crate) fn board(&self) -> Board<'_> {
        match self.tracker {
            wrapix_ralph::beads::Kind::Ralph => Board::Ralph(&self.project),
            wrapix_ralph::beads::Kind::Beads => Board::Beads(self),
        }
    }
}

pub(crate) fn context(sandbox: &SandboxArgs) -> Result<Ctx, Failure> {
    let project = open(sandbox.project.as_deref())?;
    let mut args = sandbox.clone();
    args.project = Some(project_path(sandbox.project.as_deref())?);
    let env = host_env();
    // Bad config (or a project file that widens without trust) is bad input, before
    // anything changes.
    let layers = load_layers(&args, &env)?;
    let ralph = wrapix_spec::ralph::validate(&layers)?;
    let spec = load_spec(&args, &env)?;
    if spec.backend == wrapix_spec::BackendKind::None {
        return Err(Failure::usage(NO_SANDBOX));
    }
    let agent = ralph.agent.clone().unwrap_or(spec.agent.command);
    // `run` refuses inside a sandbox, so there is always a record here.
    let ledger = super::ledger(&project).ok_or_else(|| {
        Failure::usage("inside the sandbox only `ralph task …` and `ralph status` work")
    })?;
    let tracker = wrapix_ralph::beads::choose(&project, ralph.tracker.as_deref())?;
    Ok(Ctx {
        tracker,
        ledger,
        project,
        args,
        ralph,
        agent,
        host_profile: spec.profile == wrapix_spec::Profile::Host,
    })
}

/// One sandboxed run's result.
pub(crate) struct Ran {
    /// The exit code and why it was stopped, or why the sandbox did not start.
    pub(crate) outcome: Result<wrapix_sandbox::exec::Outcome, String>,
    pub(crate) output: Vec<u8>,
}

impl Ran {
    fn code(&self) -> i32 {
        self.outcome.as_ref().map_or(125, |o| o.code)
    }
    fn stopped(&self) -> Option<Stopped> {
        self.outcome.as_ref().ok().and_then(|o| o.stopped)
    }
}

/// Runs `argv` in a fresh sandbox of the project: `stdin` as its stdin, its stdout (and
/// stderr with `both`) captured. Bad input (exit 2) is an error; a sandbox that did not
/// start is a [`Ran`] with the reason.
pub(crate) fn sandboxed(
    ctx: &Ctx,
    argv: Vec<String>,
    stdin: Option<&str>,
    profile: Option<&str>,
    deadline: Option<Instant>,
    agent: bool,
    both: bool,
) -> Result<Ran, Failure> {
    let io = |e: std::io::Error| Failure::failed(format!("set up the agent's input/output: {e}"));
    let input = match stdin {
        Some(text) => {
            let mut f = tempfile::tempfile().map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.rewind().map_err(io)?;
            std::process::Stdio::from(f)
        }
        None => std::process::Stdio::null(),
    };
    let (mut reader, writer) = std::io::pipe().map_err(io)?;
    // Never the user's terminal itself: a sandbox holding the tty (it runs in a session of
    // its own, so job control does not stop it) could read what the user types meanwhile
    // and write escape sequences to it. Its stderr is a pipe, shown with control characters
    // escaped.
    let (stderr, forward) = match both {
        true => (writer.try_clone().map_err(io)?, None),
        false => {
            let (mut from, to) = std::io::pipe().map_err(io)?;
            let forward = std::thread::spawn(move || {
                let mut chunk = [0u8; 8 * 1024];
                let mut err = std::io::stderr();
                loop {
                    match from.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&chunk[..n]);
                            let shown: Vec<String> =
                                text.split('\n').map(tracker::escape).collect();
                            let _ = err.write_all(shown.join("\n").as_bytes());
                        }
                    }
                }
            });
            (to, Some(forward))
        }
    };
    let stderr = Some(std::process::Stdio::from(stderr));
    let collect = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&chunk[..n]);
                    if out.len() > OUTPUT_MAX {
                        out.drain(..out.len() - OUTPUT_MAX / 2);
                    }
                }
            }
        }
        out
    });
    let mut args = ctx.args.clone();
    if let Some(p) = profile {
        args.profile = Some(p.to_owned());
    }
    let result = launch(Launch {
        interactive: Some(false),
        agent: agent.then(|| ctx.agent.clone()),
        allow_unconfined: false,
        exec: ExecOptions {
            stdin: Some(input),
            stdout: Some(std::process::Stdio::from(writer)),
            stderr,
            deadline,
            interrupt_ends: true,
            grace: Some(STOP_GRACE),
        },
        ..Launch::new(&args, RunMode::Command(argv))
    });
    let output = collect.join().unwrap_or_default();
    if let Some(f) = forward {
        let _ = f.join();
    }
    match result {
        Ok(o) => Ok(Ran {
            outcome: Ok(o),
            output,
        }),
        Err(f) if f.code == EXIT_USAGE => Err(f),
        Err(f) => Ok(Ran {
            outcome: Err(f.message),
            output,
        }),
    }
}

/// The agent's argv for a non-interactive run, and whether its output is stream-json.
fn print_argv(ctx: &Ctx) -> (Vec<String>, bool) {
    let extra = ctx.ralph.print_args_for(&ctx.agent);
    let json = signal::is_stream_json(&extra);
    let mut argv = ctx.agent.clone();
    argv.extend(extra);
    (argv, json)
}

/// INT, TERM and HUP held for ralph (blocked in this thread before any other starts): read
/// between runs; during a run the executor forwards them and reports them.
#[cfg(target_os = "linux")]
fn hold_signals() -> Result<SignalFd, Failure> {
    let mut set = SigSet::empty();
    for s in [Sig::SIGINT, Sig::SIGTERM, Sig::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Failure::failed(format!("block signals: {e}")))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Failure::failed(format!("create a signalfd: {e}")))
}

#[cfg(target_os = "linux")]
fn pending(signals: &SignalFd) -> bool {
    matches!(signals.read_signal(), Ok(Some(_)))
}

/// INT, TERM and HUP held for ralph (as on Linux, without a signalfd): blocked in this thread
/// before any other starts, and read between runs with `sigpending` + `sigwait`; during a run
/// the executor's forwarder takes them and reports them.
#[cfg(not(target_os = "linux"))]
fn hold_signals() -> Result<SigSet, Failure> {
    let mut set = SigSet::empty();
    for s in [Sig::SIGINT, Sig::SIGTERM, Sig::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| Failure::failed(format!("block signals: {e}")))?;
    Ok(set)
}

/// Whether one of the held signals arrived (and takes it).
#[cfg(not(target_os = "linux"))]
fn pending(held: &SigSet) -> bool {
    wrapix_sandbox::exec::take_pending(held)
}

/// One step, loop or ready per project at a time: a lock in wrapix's state folder for the
/// project, out of the agent's reach.
fn runner_lock(ledger: &Ledger) -> Result<tracker::Lock, Failure> {
    ledger.runner_lock()?.ok_or_else(|| {
        Failure::failed(format!(
            "another ralph step, loop or ready runs in this project (it holds {})",
            ledger.runner_lock_path().display()
        ))
    })
}

/// A task left `in_progress` (by ralph's record) belongs to a ralph that is gone (this one
/// holds the runner lock): it goes back to `open`, not counted as a failure.
fn recover(ctx: &Ctx, shown: &mut std::collections::BTreeSet<String>) -> Result<(), Failure> {
    let p = &ctx.project;
    let board = ctx.board();
    let stale: Vec<Task> = believed(&board, Some(&ctx.ledger), shown)?
        .tasks
        .into_values()
        .filter(|t| t.status == Status::InProgress)
        .collect();
    for mut task in stale {
        let id = task.id;
        task.status = Status::Open;
        task.reason = Some("interrupted: ralph stopped during its step; reopened".into());
        ctx.ledger.decide(&task, content_hash(&task))?;
        board.set(Some(&ctx.ledger), &task)?;
        p.progress(&format!(
            "task {id}: was in progress when ralph stopped; reopened"
        ))?;
        eprintln!("ralph: task {id} was in progress when ralph stopped; reopened");
    }
    Ok(())
}

pub fn steps(run: &RunArgs, limits: Limits) -> Result<i32, Failure> {
    let signals = hold_signals()?;
    let ctx = context(&run.sandbox)?;
    let p = &ctx.project;
    let board = ctx.board();
    // Bad input is found before anything changes: the tasks, ralph's record and the step
    // template.
    board.load(Some(&ctx.ledger))?;
    ctx.ledger.read()?;
    let text = Kind::Step.load(p)?;
    template::render(
        Kind::Step,
        &Kind::Step.path().display().to_string(),
        &text,
        &[],
    )?;
    let _runner = runner_lock(&ctx.ledger)?;
    let mut shown = std::collections::BTreeSet::new();
    recover(&ctx, &mut shown)?;
    let loop_deadline = limits.timeout.map(|t| Instant::now() + t);
    let mut n = 0;
    let stop = loop {
        if pending(&signals) {
            break Stop::Interrupted;
        }
        if p.exists(Path::new(".ralph/STOP"))? {
            p.remove(Path::new(".ralph/STOP"))?;
            break Stop::StopFile;
        }
        let believed = believed(&board, Some(&ctx.ledger), &mut shown)?;
        // Every task ralph saw is remembered, so that one removed before it is done is missed.
        ctx.ledger.see(&believed.tasks)?;
        let tasks = believed.tasks;
        match verdict::stop_for_tasks(&tasks, limits.max_failures) {
            Some(Stop::AllDone) if !believed.missing.is_empty() => {
                break Stop::Missing(believed.missing)
            }
            Some(s) => break s,
            None => {}
        }
        if n >= limits.max_steps {
            break Stop::MaxSteps(n);
        }
        if loop_deadline.is_some_and(|d| Instant::now() >= d) {
            break Stop::Timeout;
        }
        let Some(task) = tracker::next_ready(&tasks, limits.max_failures).cloned() else {
            break Stop::NothingReady;
        };
        let step_deadline = run.step_timeout.map(|t| Instant::now() + t);
        let verdict = step(&ctx, &task, step_deadline, loop_deadline)?;
        n += 1;
        match verdict {
            Verdict::Interrupted if loop_deadline.is_some_and(|d| Instant::now() >= d) => {
                break Stop::Timeout
            }
            Verdict::Interrupted => break Stop::Interrupted,
            v if limits.single => return Ok(if v == Verdict::Done { 0 } else { 1 }),
            _ => {}
        }
    };
    eprintln!("ralph: {}", stop.describe());
    if !limits.single || stop != Stop::AllDone {
        p.progress(&format!("loop: {}", stop.describe()))?;
    }
    Ok(stop.exit_code())
}

/// One step on `task`: render, mark in progress, agent, check, clean tree, verdict.
fn step(
    ctx: &Ctx,
    task: &Task,
    step_deadline: Option<Instant>,
    loop_deadline: Option<Instant>,
) -> Result<Verdict, Failure> {
    let p = &ctx.project;
    let board = ctx.board();
    let (spec, spec_path) = match &task.spec {
        Some(l) => (p.spec(l)?, Project::spec_path(l).display().to_string()),
        None => (String::new(), String::new()),
    };
    let progress = p.recent_progress(PROGRESS_LINES)?;
    let id = task.id.to_string();
    let text = Kind::Step.load(p)?;
    let prompt = template::render(
        Kind::Step,
        &Kind::Step.path().display().to_string(),
        &text,
        &[
            ("task_id", &id),
            ("task_title", &task.title),
            ("task_note", task.note.as_deref().unwrap_or("")),
            ("label", task.spec.as_deref().unwrap_or("")),
            ("spec_path", &spec_path),
            ("spec", &spec),
            ("progress", &progress),
        ],
    )?;
    // A task's profile that the config does not know is bad input, found before the task
    // is touched.
    // The task file is the agent's: its profile is untrusted input, like a project file's
    // `profile`, never the user's `--profile`. The host's own /usr and /etc over the image
    // the user chose widens (a project file needs `wrapix trust` for it): refused.
    if let Some(profile) = &task.profile {
        let mut args = ctx.args.clone();
        args.profile = Some(profile.clone());
        let spec = load_spec(&args, &host_env())?;
        if spec.profile == wrapix_spec::Profile::Host && !ctx.host_profile {
            return Err(Failure::usage(format!(
                "task {}: profile \"host\" runs on the host's own /usr and /etc instead of the image profile you chose, and a task (the agent can write it) may not widen that (fix: remove `profile` from .ralph/tasks/{}.toml, or run ralph with --profile host)",
                task.id, task.id
            )));
        }
    }
    // What ralph records is the task as it ran it (the agent could edit the file meanwhile),
    // with the fields ralph keeps, never the file's.
    let content = content_hash(task);
    let decide = |status: Status, reason: Option<String>| {
        let mut t = task.clone();
        t.status = status;
        t.reason = reason;
        t
    };
    ctx.ledger.decide(
        &decide(Status::InProgress, task.reason.clone()),
        content.clone(),
    )?;
    board.set(
        Some(&ctx.ledger),
        &decide(Status::InProgress, task.reason.clone()),
    )?;
    p.progress(&format!("task {}: started: {}", task.id, task.title))?;
    eprintln!("ralph: task {}: {}", task.id, tracker::escape(&task.title));
    let result = verify(ctx, task, &prompt, step_deadline, loop_deadline);
    // Whatever happened, the task does not stay in progress.
    let (verdict, log) = match result {
        Ok(v) => v,
        Err(e) => {
            let open = decide(
                Status::Open,
                Some(format!("the step stopped: {}", e.message)),
            );
            let _ = ctx.ledger.decide(&open, content.clone());
            let _ = board.set(Some(&ctx.ledger), &open);
            return Err(e);
        }
    };
    let log_rel = format!("logs/{}", log);
    let mut updated = task.clone();
    verdict.apply(&mut updated);
    updated.log = Some(log_rel.clone());
    ctx.ledger.decide(&updated, content)?;
    board.set(Some(&ctx.ledger), &updated)?;
    let why = updated
        .reason
        .as_deref()
        .filter(|_| verdict != Verdict::Done)
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    p.progress(&format!(
        "task {}: {}{why} (.ralph/{log_rel})",
        task.id, updated.status
    ))?;
    eprintln!("ralph: task {}: {}{why}", task.id, updated.status);
    Ok(verdict)
}

/// The agent, then the check and the clean tree; returns the verdict and the log's name
/// (below `.ralph/logs/`, written here).
fn verify(
    ctx: &Ctx,
    task: &Task,
    prompt: &str,
    step_deadline: Option<Instant>,
    loop_deadline: Option<Instant>,
) -> Result<(Verdict, String), Failure> {
    let p = &ctx.project;
    let deadline = [step_deadline, loop_deadline].into_iter().flatten().min();
    let attempt = p
        .files(Path::new(".ralph/logs"))?
        .iter()
        .filter(|n| n.starts_with(&format!("{}-", task.id)))
        .count()
        + 1;
    let log_name = format!("{}-{attempt}.log", task.id);
    let (argv, json) = print_argv(ctx);
    let profile = task.profile.as_deref();
    let agent = sandboxed(
        ctx,
        argv.clone(),
        Some(prompt),
        profile,
        deadline,
        true,
        false,
    )?;
    let mut log = format!(
        "# task {} attempt {attempt}: {}\n## agent: {} (exit {})\n",
        task.id,
        task.title,
        argv.join(" "),
        agent.code()
    );
    log.push_str(&String::from_utf8_lossy(&agent.output));
    let stopped = |r: &Ran| r.stopped();
    let mut facts = StepFacts {
        not_started: agent.outcome.as_ref().err().cloned(),
        timed_out: stopped(&agent) == Some(Stopped::Deadline),
        interrupted: matches!(stopped(&agent), Some(Stopped::Signal(_))),
        agent_exit: agent.code(),
        signal: signal::parse(&agent.output, json),
        check_exit: None,
        clean: None,
    };
    if let Err(why) = &agent.outcome {
        log.push_str(&format!("\n## the sandbox did not start: {why}\n"));
    }
    // A timeout of the loop (not of the step) is not the task's failure.
    if facts.timed_out && deadline != step_deadline {
        facts.interrupted = true;
    }
    let go_on = |f: &StepFacts| {
        f.not_started.is_none() && !f.timed_out && !f.interrupted && f.signal == Signal::Complete
    };
    if go_on(&facts) {
        if let Some(check) = &ctx.ralph.check {
            let r = after_agent(sandboxed(
                ctx,
                check.clone(),
                None,
                profile,
                deadline,
                false,
                true,
            ));
            log.push_str(&format!(
                "\n## check: {} (exit {})\n{}{}",
                check.join(" "),
                r.code(),
                String::from_utf8_lossy(&r.output),
                not_started(&r)
            ));
            facts.check_exit = Some(r.code());
            facts.timed_out |= r.stopped() == Some(Stopped::Deadline);
            facts.interrupted |= matches!(r.stopped(), Some(Stopped::Signal(_)));
        }
    }
    if go_on(&facts)
        && facts.check_exit.unwrap_or(0) == 0
        && ctx.ralph.require_clean
        && p.exists(Path::new(".git"))?
    {
        let git: Vec<String> = [
            "git",
            "status",
            "--porcelain",
            "--",
            ".",
            ":(exclude).ralph",
        ]
        .map(str::to_owned)
        .to_vec();
        let r = after_agent(sandboxed(ctx, git, None, profile, deadline, false, true));
        let out = String::from_utf8_lossy(&r.output).into_owned();
        log.push_str(&format!(
            "\n## git status --porcelain (exit {})\n{out}{}",
            r.code(),
            not_started(&r)
        ));
        facts.clean = Some(r.code() == 0 && out.trim().is_empty());
        facts.timed_out |= r.stopped() == Some(Stopped::Deadline);
        facts.interrupted |= matches!(r.stopped(), Some(Stopped::Signal(_)));
    }
    let verdict = verdict::judge(&facts);
    log.push_str(&format!("\n## verdict: {verdict:?}\n"));
    p.write(&Path::new(".ralph/logs").join(&log_name), log.as_bytes())?;
    Ok((verdict, log_name))
}

/// A verification run (the check, the clean tree) that cannot start once the agent has run
/// fails the step instead of stopping ralph as bad input: the agent may be what changed (a
/// `wrapix.toml` it created that now needs trust), and its step must not pass for it. The
/// next step refuses the config before any agent runs.
fn after_agent(r: Result<Ran, Failure>) -> Ran {
    r.unwrap_or_else(|f| Ran {
        outcome: Err(f.message),
        output: Vec::new(),
    })
}

/// The log's line for a run whose sandbox did not start.
fn not_started(r: &Ran) -> String {
    match &r.outcome {
        Err(why) => format!("\nthe sandbox did not start: {why}\n"),
        Ok(_) => String::new(),
    }
}

/// The spec label `ready` works on: the one given, else the only spec there is.
fn pick_label(p: &Project, label: Option<&str>) -> Result<String, Failure> {
    if let Some(l) = label {
        wrapix_ralph::project::check_label(l)?;
        return Ok(l.to_owned());
    }
    let labels = p.spec_labels()?;
    match labels.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::usage(
            "no spec in specs/ (write one with `ralph plan LABEL`)",
        )),
        many => Err(Failure::usage(format!(
            "several specs ({}): name one, e.g. `ralph ready {}`",
            many.join(", "),
            many[0]
        ))),
    }
}

pub fn ready(label: Option<&str>, run: &RunArgs) -> Result<i32, Failure> {
    let _signals = hold_signals()?;
    let ctx = context(&run.sandbox)?;
    let p = &ctx.project;
    let label = pick_label(p, label)?;
    let spec = p.spec(&label)?;
    let board = ctx.board();
    // The agent sees the tasks as ralph believes them.
    let before = believed(&board, Some(&ctx.ledger), &mut Default::default())?.tasks;
    let listing: Vec<String> = before
        .values()
        .map(|t| format!("- {} [{}] {}", t.id, t.status, t.title))
        .collect();
    let listing = if listing.is_empty() {
        "(none)".to_owned()
    } else {
        listing.join("\n")
    };
    let text = Kind::Ready.load(p)?;
    let spec_path = Project::spec_path(&label).display().to_string();
    let prompt = template::render(
        Kind::Ready,
        &Kind::Ready.path().display().to_string(),
        &text,
        &[
            ("label", &label),
            ("spec_path", &spec_path),
            ("spec", &spec),
            ("tasks", &listing),
        ],
    )?;
    let _runner = runner_lock(&ctx.ledger)?;
    let (argv, json) = print_argv(&ctx);
    let deadline = run.step_timeout.map(|t| Instant::now() + t);
    eprintln!("ralph: turning {spec_path} into tasks");
    let r = sandboxed(&ctx, argv, Some(&prompt), None, deadline, true, false)?;
    let n = p
        .files(Path::new(".ralph/logs"))?
        .iter()
        .filter(|n| n.starts_with(&format!("ready-{label}-")))
        .count()
        + 1;
    let log_rel = format!(".ralph/logs/ready-{label}-{n}.log");
    let mut log = format!("# ready {label} (exit {})\n", r.code());
    log.push_str(&String::from_utf8_lossy(&r.output));
    p.write(Path::new(&log_rel), log.as_bytes())?;
    let (after, _) = board.load(Some(&ctx.ledger))?;
    ctx.ledger.see(&after)?;
    let added = after.len().saturating_sub(before.len());
    let sig = signal::parse(&r.output, json);
    p.progress(&format!(
        "ready {label}: {added} tasks added, signal {sig:?} ({log_rel})"
    ))?;
    if let Err(why) = &r.outcome {
        eprintln!("ralph: the sandbox did not start: {why}");
        return Ok(1);
    }
    match sig {
        Signal::Complete => {
            eprintln!("ralph: {added} tasks added for {label}; next: `ralph loop`");
            Ok(if added > 0 { 0 } else { 1 })
        }
        Signal::Clarify(q) | Signal::Blocked(q) => {
            eprintln!(
                "ralph: the agent needs an answer: {q} (update {spec_path}, then run ready again)"
            );
            Ok(1)
        }
        Signal::None => {
            eprintln!(
                "ralph: the agent did not signal completion ({added} tasks added; see {log_rel})"
            );
            Ok(1)
        }
    }
}

pub fn plan(label: &str, sandbox: &SandboxArgs) -> Result<i32, Failure> {
    wrapix_ralph::project::check_label(label)?;
    let ctx = context(sandbox)?;
    let p = &ctx.project;
    let format = p
        .read_text(
            Path::new("specs/README.md"),
            wrapix_ralph::project::TEXT_LIMIT,
        )?
        .unwrap_or_else(|| template::SPECS_README.to_owned());
    let specs: Vec<String> = p
        .spec_labels()?
        .iter()
        .map(|l| format!("- {}", Project::spec_path(l).display()))
        .collect();
    let specs = if specs.is_empty() {
        "(none)".to_owned()
    } else {
        specs.join("\n")
    };
    let spec_path = Project::spec_path(label).display().to_string();
    let text = Kind::Plan.load(p)?;
    let prompt = template::render(
        Kind::Plan,
        &Kind::Plan.path().display().to_string(),
        &text,
        &[
            ("label", label),
            ("spec_path", &spec_path),
            ("spec_format", &format),
            ("specs", &specs),
        ],
    )?;
    let skip = [".git", ".ralph", "specs"];
    let before = p.snapshot(&skip)?;
    // Interactive, as `wrapix run`: the terminal is the agent's, the prompt its first message.
    let mut argv = ctx.agent.clone();
    argv.push(prompt);
    let outcome = launch(Launch {
        agent: Some(ctx.agent.clone()),
        allow_unconfined: false,
        ..Launch::new(&ctx.args, RunMode::Command(argv))
    })?;
    let after = p.snapshot(&skip)?;
    let changed = wrapix_ralph::project::changed(&before, &after);
    if !changed.is_empty() {
        eprintln!(
            "ralph: WARNING: planning changed files outside specs/: {}",
            changed
                .iter()
                .map(|c| tracker::escape(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if p.exists(Path::new(&spec_path))? {
        eprintln!("ralph: {spec_path} is written; next: `ralph ready {label}`");
    } else {
        eprintln!("ralph: {spec_path} was not written");
    }
    Ok(outcome.code)
}
