//! The built-in tracker: one TOML file per task, `.ralph/tasks/ID.toml`, so that two writers
//! (ralph on the host, the agent's `ralph task …` in the sandbox) never rewrite each other's
//! task, and a diff shows exactly what changed. Every change takes `.ralph/lock` (flock,
//! bounded wait), reads the tasks, checks them, and replaces one file atomically (temporary
//! file, fsync, rename). A file that does not parse, or tasks that do not fit together (an
//! unknown `after`, a cycle), stop every command with the file and line: never a reset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{line_of, RalphError};
use crate::project::{check_label, Project, RALPH_DIR, TEXT_LIMIT};

pub const TASKS_DIR: &str = ".ralph/tasks";
/// More tasks than this is a mistake (or an agent in a loop).
pub const MAX_TASKS: usize = 10_000;
/// How long a command waits for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    InProgress,
    Done,
    Failed,
    Blocked,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Open,
        Status::InProgress,
        Status::Done,
        Status::Failed,
        Status::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Blocked => "blocked",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task, as its file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: u32,
    pub title: String,
    pub status: Status,
    /// Tasks that must be done first.
    #[serde(default)]
    pub after: Vec<u32>,
    /// The spec label (`specs/LABEL.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// What done means (the success criterion), hints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The profile its steps run in (default: the project's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Failed steps so far.
    #[serde(default)]
    pub failures: u32,
    /// Why it last failed or is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last step's log, relative to `.ralph/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Task {
    /// `ralph task list --json`'s object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "title": self.title,
            "status": self.status.as_str(),
            "after": self.after,
            "spec": self.spec,
            "note": self.note,
            "profile": self.profile,
            "failures": self.failures,
            "reason": self.reason,
            "log": self.log,
        })
    }

    pub fn file(id: u32) -> PathBuf {
        Path::new(TASKS_DIR).join(format!("{id}.toml"))
    }
}

/// What `ralph task add` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub spec: Option<String>,
    pub after: Vec<u32>,
    pub note: Option<String>,
    pub profile: Option<String>,
}

pub struct Tracker<'a> {
    pub project: &'a Project,
}

/// The tracker's lock, held until dropped.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

impl<'a> Tracker<'a> {
    pub fn new(project: &'a Project) -> Self {
        Tracker { project }
    }

    /// Takes `.ralph/lock`, waiting at most [`LOCK_WAIT`] for the other writer.
    pub fn lock(&self) -> Result<Lock, RalphError> {
        let rel = Path::new(RALPH_DIR).join("lock");
        take_lock(self.project, &rel, LOCK_WAIT)?.ok_or_else(|| {
            RalphError::Busy(format!(
                "{} is held by another process for more than {} s (a ralph command, or the agent's)",
                self.project.dir.display_path(&rel).display(),
                LOCK_WAIT.as_secs()
            ))
        })
    }

    /// Every task, by id, checked as a whole.
    pub fn load(&self) -> Result<BTreeMap<u32, Task>, RalphError> {
        let mut tasks = BTreeMap::new();
        for (name, kind) in self.project.entries(Path::new(TASKS_DIR))? {
            if kind != wrapix_hostfs::Kind::File {
                return Err(RalphError::malformed(
                    format!("{TASKS_DIR}/{}", escape(&name)),
                    1,
                    "not a regular file (a link or folder among the task files)",
                    "remove it",
                ));
            }
            if name.starts_with('.') {
                // hostfs's temporary files of an unfinished write.
                continue;
            }
            let rel = format!("{TASKS_DIR}/{name}");
            let id = name
                .strip_suffix(".toml")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|id| *id > 0 && name == format!("{id}.toml"))
                .ok_or_else(|| {
                    RalphError::malformed(
                        &rel,
                        1,
                        "not a task file (the tracker holds only ID.toml files)",
                        "move it out of .ralph/tasks",
                    )
                })?;
            if tasks.len() >= MAX_TASKS {
                return Err(RalphError::usage(
                    format!("more than {MAX_TASKS} tasks in {TASKS_DIR}"),
                    "remove finished tasks",
                ));
            }
            let text = self
                .project
                .read_text(Path::new(&rel), TEXT_LIMIT)?
                .unwrap_or_default();
            let task = parse_task(&rel, &text)?;
            if task.id != id {
                return Err(RalphError::malformed(
                    &rel,
                    key_line(&text, "id"),
                    format!("id = {} in the file of task {id}", task.id),
                    "make the id match the file name",
                ));
            }
            tasks.insert(id, task);
        }
        check_graph(&tasks, |id| {
            let rel = format!("{TASKS_DIR}/{id}.toml");
            let text = self
                .project
                .read_text(Path::new(&rel), TEXT_LIMIT)
                .ok()
                .flatten()
                .unwrap_or_default();
            (rel, key_line(&text, "after"))
        })?;
        Ok(tasks)
    }

    /// Writes one task's file (call under [`Tracker::lock`]).
    pub fn save(&self, task: &Task) -> Result<(), RalphError> {
        let text = toml::to_string(task).map_err(|e| {
            RalphError::usage(
                format!("cannot write task {}: {e}", task.id),
                "report this bug",
            )
        })?;
        self.project.write(&Task::file(task.id), text.as_bytes())
    }

    /// Adds a task; returns it with its new id.
    pub fn add(&self, new: NewTask) -> Result<Task, RalphError> {
        check_title(&new.title)?;
        if let Some(s) = &new.spec {
            check_label(s)?;
        }
        if let Some(p) = &new.profile {
            check_profile(p)?;
        }
        let _lock = self.lock()?;
        let mut tasks = self.load()?;
        if let Some(s) = &new.spec {
            // The spec must exist: a task links to what it implements.
            self.project.spec(s)?;
        }
        for a in &new.after {
            if !tasks.contains_key(a) {
                return Err(unknown_id(*a));
            }
        }
        let id = tasks.keys().next_back().copied().unwrap_or(0) + 1;
        let mut after = new.after.clone();
        after.sort_unstable();
        after.dedup();
        let task = Task {
            id,
            title: new.title,
            status: Status::Open,
            after,
            spec: new.spec,
            note: new.note,
            profile: new.profile,
            failures: 0,
            reason: None,
            log: None,
        };
        tasks.insert(id, task.clone());
        // Refused before anything is written.
        check_graph(&tasks, |id| (format!("task {id}"), 0))?;
        self.save(&task)?;
        Ok(task)
    }

    /// Changes one task under the lock; `f` sees the task and returns what to write.
    pub fn update(
        &self,
        id: u32,
        f: impl FnOnce(&mut Task) -> Result<(), RalphError>,
    ) -> Result<Task, RalphError> {
        let _lock = self.lock()?;
        let tasks = self.load()?;
        let mut task = tasks.get(&id).cloned().ok_or_else(|| unknown_id(id))?;
        f(&mut task)?;
        self.save(&task)?;
        Ok(task)
    }

    pub fn get(&self, id: u32) -> Result<Task, RalphError> {
        self.load()?.remove(&id).ok_or_else(|| unknown_id(id))
    }
}

/// The lock file `rel` taken exclusively, or `None` after `wait`.
pub fn take_lock(
    project: &Project,
    rel: &Path,
    wait: Duration,
) -> Result<Option<Lock>, RalphError> {
    project.create(rel, b"")?;
    lock_in(&project.dir, rel, wait)
}

/// The lock file `rel` below `dir` (created when missing) taken exclusively, or `None` after
/// `wait`.
pub fn lock_in(
    dir: &wrapix_hostfs::Dir,
    rel: &Path,
    wait: Duration,
) -> Result<Option<Lock>, RalphError> {
    use nix::fcntl::{Flock, FlockArg};
    dir.create_new(rel, b"", 0o644)
        .map_err(|e| RalphError::fs("create", dir.display_path(rel), e))?;
    let start = Instant::now();
    loop {
        let (file, _) = dir
            .open_file(rel)
            .map_err(|e| RalphError::fs("open", dir.display_path(rel), e))?
            .ok_or_else(|| {
                RalphError::Busy(format!("{} vanished", dir.display_path(rel).display()))
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Some(Lock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, e)) => {
                return Err(RalphError::Busy(format!(
                    "cannot lock {}: {e}",
                    dir.display_path(rel).display()
                )))
            }
        }
    }
}

pub fn unknown_id(id: u32) -> RalphError {
    RalphError::usage(
        format!("no task {id}"),
        "see the ids with `ralph task list`",
    )
}

/// A task id from the command line.
pub fn parse_id(s: &str) -> Result<u32, RalphError> {
    s.trim_start_matches('#')
        .parse::<u32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            RalphError::usage(
                format!("bad task id {:?}", escape(s)),
                "a task id is a number, as `ralph task list` shows",
            )
        })
}

fn parse_task(rel: &str, text: &str) -> Result<Task, RalphError> {
    let task: Task = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        let msg = e.message().trim().to_owned();
        RalphError::malformed(
            rel,
            line,
            msg,
            "fix the file (see docs/ralph.md, \"The tracker\"), or remove it",
        )
    })?;
    let bad = |key: &str, msg: String, fix: &str| {
        RalphError::malformed(rel, key_line(text, key), msg, fix.to_owned())
    };
    check_title(&task.title).map_err(|_| {
        bad(
            "title",
            "the title is empty, too long or not one line".into(),
            "write a one-line title",
        )
    })?;
    if let Some(s) = &task.spec {
        check_label(s).map_err(|e| bad("spec", e.to_string(), "name a spec in specs/"))?;
    }
    if let Some(p) = &task.profile {
        check_profile(p).map_err(|e| bad("profile", e.to_string(), "name a profile"))?;
    }
    Ok(task)
}

/// Every `after` names a task, and the `after` edges have no cycle. `at(id)` names the file
/// and line to blame for task `id`.
fn check_graph(
    tasks: &BTreeMap<u32, Task>,
    at: impl Fn(u32) -> (String, usize),
) -> Result<(), RalphError> {
    for t in tasks.values() {
        for a in &t.after {
            if !tasks.contains_key(a) {
                let (file, line) = at(t.id);
                return Err(RalphError::malformed(
                    file,
                    line,
                    format!("after names task {a}, which does not exist"),
                    "remove it from after",
                ));
            }
        }
    }
    // Depth-first search; `path` holds the ids on the way down.
    let mut done = BTreeSet::new();
    for start in tasks.keys() {
        let mut path: Vec<u32> = Vec::new();
        if let Some(cycle) = visit(*start, tasks, &mut done, &mut path) {
            let (file, line) = at(cycle[0]);
            let ring: Vec<String> = cycle.iter().map(u32::to_string).collect();
            return Err(RalphError::malformed(
                file,
                line,
                format!("tasks {} form a dependency cycle", ring.join(" → ")),
                "remove one of these ids from after",
            ));
        }
    }
    Ok(())
}

fn visit(
    id: u32,
    tasks: &BTreeMap<u32, Task>,
    done: &mut BTreeSet<u32>,
    path: &mut Vec<u32>,
) -> Option<Vec<u32>> {
    if let Some(i) = path.iter().position(|p| *p == id) {
        let mut ring = path[i..].to_vec();
        ring.push(id);
        return Some(ring);
    }
    if done.contains(&id) {
        return None;
    }
    path.push(id);
    for a in tasks.get(&id).map(|t| t.after.as_slice()).unwrap_or(&[]) {
        if let Some(c) = visit(*a, tasks, done, path) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(id);
    None
}

/// The next task to work on: the lowest id that is open (or failed fewer than
/// `max_failures` times) with every `after` done.
pub fn next_ready(tasks: &BTreeMap<u32, Task>, max_failures: u32) -> Option<&Task> {
    tasks.values().find(|t| is_ready(t, tasks, max_failures))
}

pub fn is_ready(t: &Task, tasks: &BTreeMap<u32, Task>, max_failures: u32) -> bool {
    let status_ok = match t.status {
        Status::Open => true,
        Status::Failed => t.failures < max_failures,
        _ => false,
    };
    status_ok
        && t.after
            .iter()
            .all(|a| tasks.get(a).is_some_and(|d| d.status == Status::Done))
}

fn check_title(title: &str) -> Result<(), RalphError> {
    if title.trim().is_empty() || title.len() > 300 || title.contains(['\n', '\r']) {
        return Err(RalphError::usage(
            "the task title is empty, longer than 300 bytes or more than one line",
            "give a short one-line title; details go in --note",
        ));
    }
    Ok(())
}

fn check_profile(p: &str) -> Result<(), RalphError> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(RalphError::usage(
            format!("bad profile name {:?}", escape(p)),
            "use a profile name: letters, digits, '-', '_'",
        ))
    }
}

/// The line of `key = …` in a task file (1 when it is not there).
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// Control characters escaped: text from the agent never drives the terminal.
pub fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join(".ralph/tasks")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("specs")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("specs/a.md"), "# a\n").unwrap_or_else(|e| panic!("{e}"));
        let p = Project::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, p)
    }

    fn add(t: &Tracker, title: &str, after: &[u32]) -> Result<Task, RalphError> {
        t.add(NewTask {
            title: title.into(),
            spec: Some("a".into()),
            after: after.to_vec(),
            ..NewTask::default()
        })
    }

    #[test]
    fn tasks_get_ids_in_order_and_readiness_follows_after() {
        let (_d, p) = project();
        let t = Tracker::new(&p);
        let one = add(&t, "one", &[]).unwrap_or_else(|e| panic!("{e}"));
        let two = add(&t, "two", &[1]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((one.id, two.id), (1, 2));
        let tasks = t.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next_ready(&tasks, 2).map(|t| t.id), Some(1));
        t.update(1, |t| {
            t.status = Status::Done;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let tasks = t.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next_ready(&tasks, 2).map(|t| t.id), Some(2));
    }

    #[test]
    fn unknown_after_missing_spec_and_cycles_are_refused() {
        let (d, p) = project();
        let t = Tracker::new(&p);
        assert!(add(&t, "x", &[7]).is_err_and(|e| e.is_usage()));
        let e = t
            .add(NewTask {
                title: "x".into(),
                spec: Some("nope".into()),
                ..NewTask::default()
            })
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("specs/nope.md")));
        add(&t, "one", &[]).unwrap_or_else(|e| panic!("{e}"));
        add(&t, "two", &[1]).unwrap_or_else(|e| panic!("{e}"));
        // A hand edit that closes a cycle: every command refuses, naming file and line.
        let f = d.path().join(".ralph/tasks/1.toml");
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        std::fs::write(&f, text.replace("after = []", "after = [2]"))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = t.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.starts_with(".ralph/tasks/1.toml:4: tasks 1 → 2 → 1 form a dependency cycle"),
            "{e}"
        );
    }

    #[test]
    fn a_malformed_file_names_file_and_line() {
        let (d, p) = project();
        let t = Tracker::new(&p);
        add(&t, "one", &[]).unwrap_or_else(|e| panic!("{e}"));
        let f = d.path().join(".ralph/tasks/1.toml");
        std::fs::write(&f, "id = 1\ntitle = \"x\"\nstatus = \"sleeping\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = t.load().err().unwrap_or_else(|| panic!("loaded"));
        assert!(e.is_usage());
        assert!(e.to_string().starts_with(".ralph/tasks/1.toml:3: "), "{e}");
        std::fs::write(
            &f,
            "id = 1\ntitle = \"x\"\nstatus = \"open\"\nowner = \"me\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = t.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with(".ralph/tasks/1.toml:4: "), "{e}");
    }

    #[test]
    fn concurrent_writers_get_distinct_ids_and_lose_nothing() {
        let (d, _p) = project();
        let root = d.path().to_owned();
        let writers: Vec<_> = (0..6)
            .map(|w| {
                let root = root.clone();
                std::thread::spawn(move || {
                    // Each writer opens the project itself, as two processes would.
                    let p = Project::open(&root).unwrap_or_else(|e| panic!("{e}"));
                    let t = Tracker::new(&p);
                    (0..10)
                        .map(|i| add(&t, &format!("w{w} t{i}"), &[]).map(|t| t.id))
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap_or_else(|e| panic!("{e}"))
                })
            })
            .collect();
        let mut ids: Vec<u32> = writers
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=60).collect::<Vec<u32>>());
        let p = Project::open(&root).unwrap_or_else(|e| panic!("{e}"));
        let tasks = Tracker::new(&p).load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tasks.len(), 60);
    }

    #[test]
    fn a_symlinked_task_file_is_an_error_not_followed() {
        let (d, p) = project();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join(".ralph/tasks/1.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Tracker::new(&p).load().is_err());
    }
}
