//! `wrapix ralph …` (also `ralph …`): the command line of the agent loop. The tracker,
//! templates and signals are [`wrapix_ralph`]'s; agent runs are in [`run`], through the one
//! launch path.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use wrapix_ralph::beads;
use wrapix_ralph::template::{self, Kind};
use wrapix_ralph::tracker::{self, NewTask, Status};
use wrapix_ralph::verified::{self, Ledger, Verified};
use wrapix_ralph::{Project, RalphError, Tracker};

use crate::cli::SandboxArgs;
use crate::commands::Failure;

mod board;
mod run;

use board::Board;

#[derive(Debug, Subcommand)]
pub enum RalphCmd {
    /// Set up the project: specs/README.md (the spec format), .ralph/ and the prompt
    /// templates. Never overwrites what is there.
    Start {
        #[arg(short = 'C', long = "project", value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Interview with the agent (interactive, in the sandbox) to write specs/LABEL.md.
    Plan {
        label: String,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run the agent (non-interactive, in the sandbox) to turn the spec into ordered tasks.
    Ready {
        label: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run the agent on the next ready task in a fresh sandbox, then verify it.
    Step {
        #[command(flatten)]
        run: RunArgs,
        /// Failed steps after which a task is not retried.
        #[arg(long, value_name = "N", default_value_t = 2)]
        max_failures: u32,
    },
    /// `step` until no task is ready or a limit is reached. Exit 0 when every task is done.
    Loop {
        #[command(flatten)]
        run: RunArgs,
        /// The most steps this loop runs.
        #[arg(long, value_name = "N", default_value_t = 50)]
        max_steps: u32,
        /// Failed steps of one task that stop the loop.
        #[arg(long, value_name = "N", default_value_t = 2)]
        max_failures: u32,
        /// The loop's time limit (e.g. 2h, 90m); no new step starts after it, and a running
        /// one is killed.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Tasks by state, the current task, the last result, per-spec progress.
    Status {
        #[arg(short = 'C', long = "project", value_name = "DIR")]
        project: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The agent's output and the check's of each run (of TASK, or the last run).
    Logs {
        task: Option<String>,
        #[arg(short = 'C', long = "project", value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Open a prompt template in $EDITOR (default: step).
    Tune {
        #[arg(value_parser = ["plan", "ready", "step"])]
        template: Option<String>,
        /// Show the differences to the built-in default instead.
        #[arg(long)]
        diff: bool,
        #[arg(short = 'C', long = "project", value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// The tracker (`.ralph/tasks/`): works on the host and inside the sandbox.
    Task {
        #[command(subcommand)]
        command: TaskCmd,
        #[arg(short = 'C', long = "project", value_name = "DIR", global = true)]
        project: Option<PathBuf>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Kill a step's sandbox after this long (e.g. 30m, 90s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub step_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Add a task; prints its id.
    Add {
        title: String,
        /// The spec it implements (specs/LABEL.md).
        #[arg(long, value_name = "LABEL")]
        spec: Option<String>,
        /// A task that must be done first (repeatable).
        #[arg(long, value_name = "ID")]
        after: Vec<String>,
        /// What done means, hints.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Run this task's steps in profile P.
        #[arg(long, value_name = "P")]
        profile: Option<String>,
    },
    /// Every task; `--json`: an array of objects (id, title, status, after, spec, …).
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
    },
    /// Mark a task done.
    Done {
        id: String,
    },
    /// Mark a task open again (its failure count reset).
    Reopen {
        id: String,
    },
    /// On the host: drop what ralph recorded of a task whose file was removed before it was
    /// done (the loop stops on such a task until it is restored or forgotten).
    Forget {
        id: String,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 90s, 30m, 2h)");
    let d: jiff::SignedDuration = s
        .parse()
        .or_else(|_| {
            s.parse::<u64>()
                .map(|n| jiff::SignedDuration::from_secs(n as i64))
        })
        .map_err(|_| bad())?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

impl From<RalphError> for Failure {
    fn from(e: RalphError) -> Self {
        if e.is_usage() {
            Failure::usage(e.to_string())
        } else {
            Failure::failed(e.to_string())
        }
    }
}

pub fn run(cmd: RalphCmd) -> Result<i32, Failure> {
    // In a sandbox (wrapix sets WRAPIX=1) ralph is the agent's tracker, not a launcher.
    if in_sandbox() && !matches!(cmd, RalphCmd::Task { .. } | RalphCmd::Status { .. }) {
        return Err(Failure::usage(
            "inside the sandbox only `ralph task …` and `ralph status` work: run the others on the host",
        ));
    }
    match cmd {
        RalphCmd::Start { project } => start(project.as_deref()),
        RalphCmd::Plan { label, sandbox } => run::plan(&label, &sandbox),
        RalphCmd::Ready { label, run } => run::ready(label.as_deref(), &run),
        RalphCmd::Step { run, max_failures } => run::steps(
            &run,
            run::Limits {
                max_steps: 1,
                max_failures,
                timeout: None,
                single: true,
            },
        ),
        RalphCmd::Loop {
            run,
            max_steps,
            max_failures,
            timeout,
        } => run::steps(
            &run,
            run::Limits {
                max_steps,
                max_failures,
                timeout,
                single: false,
            },
        ),
        RalphCmd::Status { project, json } => status(project.as_deref(), json),
        RalphCmd::Logs { task, project } => logs(project.as_deref(), task.as_deref()),
        RalphCmd::Tune {
            template,
            diff,
            project,
        } => tune(project.as_deref(), template.as_deref(), diff),
        RalphCmd::Task { command, project } => task(project.as_deref(), command),
    }
}

/// The project folder: `-C DIR`, else the nearest folder with `.ralph/` from here up, else here.
pub(crate) fn project_path(arg: Option<&Path>) -> Result<PathBuf, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::usage(format!("cannot read the current folder: {e}")))?;
    let p = match arg {
        Some(a) => cwd.join(a),
        None => Project::find(&cwd),
    };
    std::fs::canonicalize(&p).map_err(|e| {
        Failure::usage(format!(
            "project folder {} does not exist ({e}); pass an existing folder with -C DIR",
            p.display()
        ))
    })
}

/// The started project (`.ralph/` exists).
pub(crate) fn open(arg: Option<&Path>) -> Result<Project, Failure> {
    let p = Project::open(&project_path(arg)?)?;
    p.require_started()?;
    Ok(p)
}

/// Whether this ralph runs inside a sandbox (wrapix sets WRAPIX=1): there it is the agent's
/// tracker, with no access to ralph's record on the host.
/// Inside a wrapix sandbox: `WRAPIX` set *and* wrapix's own folder mounted (`/run/wrapix/bin`,
/// which every backend provides and a host does not have), so that a host shell exporting
/// `WRAPIX` cannot make ralph skip its host-side record or run `bd` outside a sandbox.
fn in_sandbox() -> bool {
    std::env::var_os("WRAPIX").is_some() && std::path::Path::new("/run/wrapix/bin/wrapix").exists()
}

/// ralph's record of what it decided about the tasks of `p`, in wrapix's state folder for the
/// project (outside every sandbox); `None` inside a sandbox.
pub(crate) fn ledger(p: &Project) -> Option<Ledger> {
    if in_sandbox() {
        return None;
    }
    let env = crate::context::host_env();
    let root = crate::context::state_root(&crate::context::host_user(&env), &env);
    Some(Ledger::for_project(
        &wrapix_spec::state::project_dir(&root, p.path()),
        p.path(),
    ))
}

/// The tasks as ralph believes them: a status ralph decides counts only when its record says
/// ralph decided it for this task's content (see [`verified`]). Inside a sandbox, the files
/// as they are. Each notice is printed once per process (`shown`).
pub(crate) fn believed(
    board: &Board,
    ledger: Option<&Ledger>,
    shown: &mut std::collections::BTreeSet<String>,
) -> Result<Verified, Failure> {
    let (tasks, _) = board.load(ledger)?;
    let Some(ledger) = ledger else {
        return Ok(Verified {
            tasks,
            ..Verified::default()
        });
    };
    let v = verified::reconcile_from(tasks, &ledger.read()?, |id| board.source(id));
    let missing = v.missing.iter().map(|id| {
        format!(
            "task {id} was removed from .ralph/tasks before ralph finished it (restore .ralph/tasks/{id}.toml, or drop it with `ralph task forget {id}`)"
        )
    });
    for n in v.notices.iter().cloned().chain(missing) {
        if shown.insert(n.clone()) {
            eprintln!("ralph: notice: {n}");
        }
    }
    Ok(v)
}

const GITIGNORE: &str =
    "# ralph's run files; the tasks and templates are worth committing.\nlogs/\nlock\nSTOP\n";

fn start(project: Option<&Path>) -> Result<i32, Failure> {
    let path = match project {
        Some(_) => project_path(project)?,
        None => std::fs::canonicalize(".")
            .map_err(|e| Failure::usage(format!("cannot read the current folder: {e}")))?,
    };
    let p = Project::open(&path)?;
    let mut made = Vec::new();
    let mut create = |rel: PathBuf, text: &str| -> Result<(), Failure> {
        if p.create(&rel, text.as_bytes())? {
            made.push(rel.display().to_string());
        }
        Ok(())
    };
    create(PathBuf::from("specs/README.md"), template::SPECS_README)?;
    create(PathBuf::from(".ralph/.gitignore"), GITIGNORE)?;
    for k in Kind::ALL {
        create(k.path(), k.default_text())?;
    }
    p.mkdir(Path::new(tracker::TASKS_DIR))?;
    if made.is_empty() {
        eprintln!(
            "ralph: {} is set up already; nothing changed",
            path.display()
        );
    } else {
        eprintln!("ralph: created {}", made.join(", "));
        eprintln!(
            "ralph: next: `ralph plan LABEL` to write a spec, or write specs/LABEL.md yourself"
        );
    }
    Ok(0)
}

/// The project's tracker: `[ralph] tracker` (read only when the project has `.beads/`; inside
/// the sandbox, where the user's config is not, the `auto` rule).
fn kind_of(p: &Project) -> Result<beads::Kind, Failure> {
    if !p.exists(Path::new(beads::BEADS_DIR))? {
        return Ok(beads::Kind::Ralph);
    }
    if in_sandbox() {
        return Ok(beads::choose(p, None)?);
    }
    let args = host_args(p);
    let layers = crate::context::load_layers(&args, &crate::context::host_env())?;
    let ralph = wrapix_spec::ralph::validate(&layers)?;
    Ok(beads::choose(p, ralph.tracker.as_deref())?)
}

fn host_args(p: &Project) -> SandboxArgs {
    SandboxArgs {
        project: Some(p.path().to_owned()),
        ..SandboxArgs::default()
    }
}

fn task(project: Option<&Path>, cmd: TaskCmd) -> Result<i32, Failure> {
    let p = open(project)?;
    if kind_of(&p)? == beads::Kind::Beads {
        return task_beads(p, cmd);
    }
    let t = Tracker::new(&p);
    let ledger = ledger(&p);
    let mut shown = Default::default();
    match cmd {
        TaskCmd::Add {
            title,
            spec,
            after,
            note,
            profile,
        } => {
            let after = after
                .iter()
                .map(|a| tracker::parse_id(a))
                .collect::<Result<Vec<_>, _>>()?;
            let task = t.add(NewTask {
                title,
                spec,
                after,
                note,
                profile,
            })?;
            println!("{}", task.id);
        }
        TaskCmd::List { json } => {
            let tasks = believed(&Board::Ralph(&p), ledger.as_ref(), &mut shown)?.tasks;
            if json {
                let all: Vec<_> = tasks.values().map(|t| t.to_json()).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for task in tasks.values() {
                    println!("{}", line(task));
                }
            }
        }
        TaskCmd::Show { id } => {
            let id = tracker::parse_id(&id)?;
            let task = believed(&Board::Ralph(&p), ledger.as_ref(), &mut shown)?
                .tasks
                .remove(&id)
                .ok_or_else(|| tracker::unknown_id(id))?;
            println!("{}", line(&task));
            let field = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    println!("  {k:<8} {}", tracker::escape(v));
                }
            };
            field("spec", &task.spec);
            field("profile", &task.profile);
            field("note", &task.note);
            field("reason", &task.reason);
            field("log", &task.log.as_ref().map(|l| format!(".ralph/{l}")));
            if task.failures > 0 {
                println!("  failures {}", task.failures);
            }
        }
        TaskCmd::Done { id } => {
            let id = tracker::parse_id(&id)?;
            let done = t.update(id, |task| {
                task.status = Status::Done;
                task.reason = None;
                Ok(())
            })?;
            // On the host this is the user's word, and ralph records it; inside, only the
            // file changes (the host does not believe it).
            if let Some(l) = &ledger {
                l.decide(&done, verified::content_hash(&done))?;
            }
        }
        TaskCmd::Reopen { id } => {
            let id = tracker::parse_id(&id)?;
            let open = t.update(id, |task| {
                task.status = Status::Open;
                task.failures = 0;
                task.reason = None;
                Ok(())
            })?;
            if let Some(l) = &ledger {
                l.decide(&open, verified::content_hash(&open))?;
            }
        }
        TaskCmd::Forget { id } => {
            let id = tracker::parse_id(&id)?;
            let Some(l) = &ledger else {
                return Err(Failure::usage(
                    "`ralph task forget` changes ralph's record on the host: run it there",
                ));
            };
            if t.load()?.contains_key(&id) {
                return Err(Failure::usage(format!(
                    "task {id} is in .ralph/tasks; `forget` is for a task whose file was removed (reopen it with `ralph task reopen {id}`, or remove .ralph/tasks/{id}.toml first)"
                )));
            }
            if l.forget(id)? {
                eprintln!("ralph: forgot task {id}");
            } else {
                eprintln!("ralph: ralph had no record of task {id}; nothing changed");
            }
        }
    }
    Ok(0)
}

fn line(t: &wrapix_ralph::Task) -> String {
    let after = if t.after.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = t.after.iter().map(u32::to_string).collect();
        format!(" (after {})", ids.join(", "))
    };
    format!(
        "{:>4}  {:<11} {}{after}",
        t.id,
        t.status.as_str(),
        tracker::escape(&t.title)
    )
}

fn status(project: Option<&Path>, json: bool) -> Result<i32, Failure> {
    let p = open(project)?;
    let kind = kind_of(&p)?;
    let ctx = match kind {
        beads::Kind::Beads if !in_sandbox() => Some(run::context(&host_args(&p))?),
        _ => None,
    };
    let board = match (&ctx, kind) {
        (Some(c), _) => c.board(),
        (None, beads::Kind::Beads) => Board::BeadsInside(&p),
        (None, beads::Kind::Ralph) => Board::Ralph(&p),
    };
    let v = believed(&board, ledger(&p).as_ref(), &mut Default::default())?;
    let tasks = v.tasks;
    let last = p.recent_progress(1)?;
    let current = tasks.values().find(|t| t.status == Status::InProgress);
    let mut by_spec: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for t in tasks.values() {
        let e = by_spec
            .entry(t.spec.clone().unwrap_or_else(|| "(none)".into()))
            .or_default();
        e.1 += 1;
        if t.status == Status::Done {
            e.0 += 1;
        }
    }
    let count = |s: Status| tasks.values().filter(|t| t.status == s).count();
    if json {
        let states: serde_json::Map<String, serde_json::Value> = Status::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), count(*s).into()))
            .collect();
        let specs: serde_json::Map<String, serde_json::Value> = by_spec
            .iter()
            .map(|(k, (d, n))| (k.clone(), serde_json::json!({"done": d, "total": n})))
            .collect();
        let out = serde_json::json!({
            "states": states,
            "current": current.map(|t| t.id),
            "last": if last.is_empty() { None } else { Some(last.trim_start_matches("- ").to_owned()) },
            "specs": specs,
            "tasks": tasks.values().map(|t| t.to_json()).collect::<Vec<_>>(),
            "missing": v.missing,
            "unverified": v.notices.len(),
        });
        println!("{out}");
        return Ok(0);
    }
    let states: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("{} {}", count(*s), s.as_str()))
        .collect();
    println!("tasks:   {}", states.join(", "));
    match current {
        Some(t) => println!("current: {}", line(t).trim_start()),
        None => println!("current: (none)"),
    }
    // progress.md is agent-writable: its text never drives the terminal.
    println!(
        "last:    {}",
        if last.is_empty() {
            "(no step yet)".to_owned()
        } else {
            tracker::escape(last.trim_start_matches("- "))
        }
    );
    for (spec, (done, total)) in &by_spec {
        println!("spec {spec}: {done}/{total} done");
    }
    for id in &v.missing {
        println!("task {id}: removed from .ralph/tasks before ralph finished it");
    }
    for t in tasks
        .values()
        .filter(|t| matches!(t.status, Status::Failed | Status::Blocked))
    {
        println!(
            "{}: {}",
            line(t).trim_start(),
            tracker::escape(t.reason.as_deref().unwrap_or(""))
        );
    }
    Ok(0)
}

fn logs(project: Option<&Path>, task: Option<&str>) -> Result<i32, Failure> {
    let p = open(project)?;
    let mut names = p.files(Path::new(".ralph/logs"))?;
    if let Some(id) = task {
        let id = tracker::parse_id(id)?;
        if kind_of(&p)? == beads::Kind::Ralph {
            Tracker::new(&p).get(id)?;
        }
        names.retain(|n| n.starts_with(&format!("{id}-")));
    } else if let Some(last) = last_log(&p)? {
        names = vec![last];
    }
    if names.is_empty() {
        eprintln!("ralph: no logs yet");
        return Ok(0);
    }
    for n in names {
        let rel = Path::new(".ralph/logs").join(&n);
        let bytes = p
            .dir
            .read(&rel, wrapix_ralph::project::LOG_LIMIT)
            .map_err(|e| Failure::failed(format!("read {}: {e}", rel.display())))?
            .unwrap_or_default();
        // The name too is the agent's (a file it made, or a word of progress.md).
        println!("==> .ralph/logs/{} <==", tracker::escape(&n));
        // The agent wrote it: shown as text, control characters escaped.
        for l in String::from_utf8_lossy(&bytes).lines() {
            println!("{}", tracker::escape(l));
        }
    }
    Ok(0)
}

/// The log named by the most recent progress line that names one, if any.
fn last_log(p: &Project) -> Result<Option<String>, Failure> {
    let recent = p.recent_progress(50)?;
    Ok(recent.lines().rev().find_map(|l| {
        l.split_whitespace()
            .find_map(|w| w.trim_start_matches('(').strip_prefix(".ralph/logs/"))
            .map(|w| w.trim_end_matches([')', ',']).to_owned())
    }))
}

fn tune(project: Option<&Path>, which: Option<&str>, diff: bool) -> Result<i32, Failure> {
    let p = open(project)?;
    let kind = Kind::parse(which.unwrap_or("step")).unwrap_or(Kind::Step);
    let rel = kind.path();
    p.create(&rel, kind.default_text().as_bytes())?;
    let file = p.dir.display_path(&rel);
    // The editor opens the path: it must be the file itself, not a link the agent planted.
    match p.dir.meta(&rel) {
        Ok(Some(m)) if m.kind == wrapix_hostfs::Kind::File => {}
        _ => {
            return Err(Failure::usage(format!(
                "{} is not a regular file; remove it and run `ralph tune` again",
                rel.display()
            )))
        }
    }
    if diff {
        let current = kind.load(&p)?;
        let mut def = tempfile::NamedTempFile::new()
            .map_err(|e| Failure::failed(format!("create a temporary file: {e}")))?;
        std::io::Write::write_all(&mut def, kind.default_text().as_bytes())
            .map_err(|e| Failure::failed(format!("write a temporary file: {e}")))?;
        let mut cur = tempfile::NamedTempFile::new()
            .map_err(|e| Failure::failed(format!("create a temporary file: {e}")))?;
        std::io::Write::write_all(&mut cur, current.as_bytes())
            .map_err(|e| Failure::failed(format!("write a temporary file: {e}")))?;
        // Copies, so that `diff` never opens the project's (agent-writable) file itself.
        let status = std::process::Command::new("diff")
            .arg("-u")
            .arg("--label")
            .arg(format!("default {}.md", kind.name()))
            .arg("--label")
            .arg(rel.display().to_string())
            .arg(def.path())
            .arg(cur.path())
            .status()
            .map_err(|e| Failure::failed(format!("cannot run diff: {e}")))?;
        return Ok(if status.code() == Some(2) { 1 } else { 0 });
    }
    // The editor gets a private copy, never the project's path: a sandbox running meanwhile
    // could swap the template (or its folder) for a link between the check above and the
    // editor's open, and the editor would write through it. The result is written back
    // through hostfs, which replaces whatever is there without following it.
    let before = kind.load(&p)?;
    let io =
        |e: std::io::Error| Failure::failed(format!("a temporary copy of {}: {e}", rel.display()));
    let mut copy = tempfile::Builder::new()
        .prefix(&format!("ralph-{}-", kind.name()))
        .suffix(".md")
        .tempfile()
        .map_err(io)?;
    std::io::Write::write_all(&mut copy, before.as_bytes()).map_err(io)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // $EDITOR may carry arguments ("code -w"): split on spaces, never through a shell.
    let mut parts = editor.split_whitespace();
    let prog = parts.next().unwrap_or("vi");
    let status = std::process::Command::new(prog)
        .args(parts)
        .arg(copy.path())
        .status()
        .map_err(|e| {
            Failure::failed(format!("cannot run the editor `{prog}`: {e} (set $EDITOR)"))
        })?;
    let text = std::fs::read_to_string(copy.path()).map_err(io)?;
    if text != before {
        p.write(&rel, text.as_bytes())?;
        eprintln!("ralph: saved {}", file.display());
    }
    // A template that no longer renders is said now, not at the next step.
    let values: Vec<(&str, &str)> = kind.placeholders().iter().map(|k| (*k, "")).collect();
    template::render(kind, &rel.display().to_string(), &text, &values)?;
    Ok(if status.success() { 0 } else { 1 })
}

/// `ralph task …` in a beads project. Inside the sandbox only `add` (→ `bd create`) and
/// `list` (bd's ids); the agent uses `bd` itself for the rest, and ralph on the host believes
/// only its own record. On the host, bd runs in the project's sandbox.
fn task_beads(p: Project, cmd: TaskCmd) -> Result<i32, Failure> {
    let ctx = match in_sandbox() {
        true => None,
        false => Some(run::context(&host_args(&p))?),
    };
    let board = match &ctx {
        Some(c) => c.board(),
        None => Board::BeadsInside(&p),
    };
    let ledger = ctx.as_ref().map(|c| &c.ledger);
    let mut shown = Default::default();
    // A number (ralph's, on the host) or a bd id.
    let number = |s: &str| -> Result<u32, Failure> {
        if let Ok(n) = tracker::parse_id(s) {
            return Ok(n);
        }
        beads::check_id(s)?;
        let record = ledger.map(|l| l.read()).transpose()?.unwrap_or_default();
        record.beads.get(s).copied().ok_or_else(|| {
            Failure::usage(format!(
                "ralph has not seen bd issue {} (see `ralph task list`)",
                tracker::escape(s)
            ))
        })
    };
    let bd_id = |n: u32| -> Result<String, Failure> {
        let record = ledger.map(|l| l.read()).transpose()?.unwrap_or_default();
        record
            .beads
            .iter()
            .find(|(_, m)| **m == n)
            .map(|(k, _)| k.clone())
            .ok_or_else(|| tracker::unknown_id(n).into())
    };
    let host_only = |what: &str| {
        Failure::usage(format!(
            "`ralph task {what}` in a beads project works on the host; inside the sandbox use `bd` (ralph on the host believes only its own record)"
        ))
    };
    match cmd {
        TaskCmd::Add {
            title,
            spec,
            after,
            note,
            profile,
        } => {
            if profile.is_some() {
                return Err(Failure::usage(
                    "a bd issue carries no profile: its steps run in the project's (drop --profile)",
                ));
            }
            if title.trim().is_empty() || title.len() > 300 || title.contains(['\n', '\r']) {
                return Err(Failure::usage(
                    "the task title is empty, longer than 300 bytes or more than one line",
                ));
            }
            if let Some(s) = &spec {
                p.spec(s)?;
            }
            let after = after
                .iter()
                .map(|a| match (tracker::parse_id(a), ledger) {
                    (Ok(n), Some(_)) => bd_id(n),
                    _ => beads::check_id(a).map(|_| a.clone()).map_err(Failure::from),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let argv = beads::create_argv(&title, note.as_deref(), spec.as_deref(), &after)?;
            let issue = beads::parse_issue("bd create --json", &board.bd(argv, "bd create")?)?;
            println!("{}", issue.id);
        }
        TaskCmd::List { json } => {
            let (tasks, ids) = match ledger {
                Some(l) => {
                    let tasks = believed(&board, Some(l), &mut shown)?.tasks;
                    let ids = l.read()?.beads.into_iter().map(|(k, v)| (v, k)).collect();
                    (tasks, ids)
                }
                None => board.load(None)?,
            };
            let bd = |n: &u32| ids.get(n).cloned().unwrap_or_default();
            if json {
                let all: Vec<_> = tasks
                    .values()
                    .map(|t| {
                        let mut v = t.to_json();
                        v["bd_id"] = bd(&t.id).into();
                        v
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                for t in tasks.values() {
                    println!("{}  [{}]", line(t), tracker::escape(&bd(&t.id)));
                }
            }
        }
        TaskCmd::Show { id } => {
            let l = ledger.ok_or_else(|| host_only("show"))?;
            let n = number(&id)?;
            let task = believed(&board, Some(l), &mut shown)?
                .tasks
                .remove(&n)
                .ok_or_else(|| tracker::unknown_id(n))?;
            println!("{}  [{}]", line(&task), tracker::escape(&bd_id(n)?));
            for (k, v) in [
                ("spec", &task.spec),
                ("note", &task.note),
                ("reason", &task.reason),
            ] {
                if let Some(v) = v {
                    println!("  {k:<8} {}", tracker::escape(v));
                }
            }
        }
        TaskCmd::Done { id } | TaskCmd::Reopen { id } if ledger.is_none() => {
            let _ = id;
            return Err(host_only("done/reopen"));
        }
        TaskCmd::Done { id } => {
            let l = ledger.ok_or_else(|| host_only("done"))?;
            let n = number(&id)?;
            let mut task = believed(&board, Some(l), &mut shown)?
                .tasks
                .remove(&n)
                .ok_or_else(|| tracker::unknown_id(n))?;
            task.status = Status::Done;
            task.reason = Some("marked done by the user (ralph task done)".into());
            // The user's word on the host: recorded first, then written to bd.
            l.decide(&task, verified::content_hash(&task))?;
            board.set(Some(l), &task)?;
        }
        TaskCmd::Reopen { id } => {
            let l = ledger.ok_or_else(|| host_only("reopen"))?;
            let n = number(&id)?;
            let mut task = believed(&board, Some(l), &mut shown)?
                .tasks
                .remove(&n)
                .ok_or_else(|| tracker::unknown_id(n))?;
            task.status = Status::Open;
            task.failures = 0;
            task.reason = None;
            l.decide(&task, verified::content_hash(&task))?;
            board.bd(beads::reopen_argv(&bd_id(n)?)?, "bd reopen")?;
        }
        TaskCmd::Forget { id } => {
            let l = ledger.ok_or_else(|| host_only("forget"))?;
            let n = number(&id)?;
            if believed(&board, Some(l), &mut shown)?
                .tasks
                .contains_key(&n)
            {
                return Err(Failure::usage(format!(
                    "task {n} is still in bd; `forget` is for an issue removed from bd"
                )));
            }
            if l.forget(n)? {
                eprintln!("ralph: forgot task {n}");
            } else {
                eprintln!("ralph: ralph had no record of task {n}; nothing changed");
            }
        }
    }
    Ok(0)
}
