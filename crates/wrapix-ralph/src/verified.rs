//! ralph's own record of what it decided about each task, kept in wrapix's state folder for
//! the project (`$XDG_STATE_HOME/wrapix/projects/<id>/ralph.json`), outside every sandbox.
//!
//! The task files under `.ralph/tasks/` are the agent's as much as ralph's: inside the
//! sandbox `ralph task done 3`, or a plain write, sets any status. So the host side believes a
//! status that ralph decides (`in_progress`, `done`, `failed`, `blocked`, and the failure
//! count, reason and log that go with it) only when this record says ralph decided it for
//! that task id *and* that task content ([`content_hash`]: title, spec, note, profile). A
//! task whose file claims more than the record holds is `open` again, with a notice naming
//! it; an `open` task is believed as it is (more work is never a widening), so tasks the agent
//! adds with `ralph task add` are ready as designed. The record also remembers every task
//! ralph has seen, so that a task removed from `.ralph/tasks/` before it was done stops the
//! loop instead of letting it report "every task is done".

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wrapix_hostfs::Dir;

use crate::error::RalphError;
use crate::tracker::{escape, Lock, Status, Task};

/// The record's file in the project's state folder.
pub const RECORD_FILE: &str = "ralph.json";
/// Taken (flock) around every change of the record.
const LOCK_FILE: &str = "ralph.lock";
/// Held by the one `ralph step`, `loop` or `ready` of the project. In the state folder, not in
/// the project: the agent could delete a lock file under `/workspace` and let a second loop
/// run beside the first.
const RUNNER_LOCK: &str = "ralph-runner.lock";
/// A record of [`crate::tracker::MAX_TASKS`] tasks is well below this.
const RECORD_LIMIT: u64 = 16 << 20;

/// What ralph decided about one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// [`content_hash`] of the task it decided about.
    pub sha256: String,
    pub status: Status,
    #[serde(default)]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// Every task ralph has seen or decided about, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub tasks: BTreeMap<u32, Entry>,
    /// For a beads project: ralph's task number of each bd issue id it has seen (given once,
    /// never reused), so that the entries above, the logs and `ralph task show N` work the
    /// same for both trackers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub beads: BTreeMap<String, u32>,
}

/// The sha256 (hex) of what a task asks for: its title, spec, note and profile. Not its
/// status and the fields ralph writes, and not `after` (the order of work, not the work).
pub fn content_hash(task: &Task) -> String {
    let content = serde_json::json!({
        "title": task.title,
        "spec": task.spec,
        "note": task.note,
        "profile": task.profile,
    });
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(content.to_string().as_bytes()) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl Entry {
    /// The entry that says ralph decided `task`'s current status (and fields) for `content`,
    /// the hash of the task as ralph ran it.
    pub fn of(task: &Task, content: String) -> Entry {
        Entry {
            sha256: content,
            status: task.status,
            failures: task.failures,
            reason: task.reason.clone(),
            log: task.log.clone(),
        }
    }
}

/// The tasks as ralph believes them, and what it did not believe.
#[derive(Debug, Default)]
pub struct Verified {
    pub tasks: BTreeMap<u32, Task>,
    /// One line per task whose file claims what ralph did not record.
    pub notices: Vec<String>,
    /// Tasks ralph saw and had not finished, whose files are gone.
    pub missing: Vec<u32>,
}

/// The project's tasks (`project`, as [`crate::Tracker::load`] read them) judged against the
/// record.
pub fn reconcile(project: BTreeMap<u32, Task>, record: &Record) -> Verified {
    reconcile_from(project, record, |id| format!(".ralph/tasks/{id}.toml"))
}

/// [`reconcile`], `source(id)` naming where task `id`'s status was read (a file, or bd).
pub fn reconcile_from(
    project: BTreeMap<u32, Task>,
    record: &Record,
    source: impl Fn(u32) -> String,
) -> Verified {
    let mut out = Verified::default();
    for (id, mut task) in project {
        let entry = record
            .tasks
            .get(&id)
            .filter(|e| e.sha256 == content_hash(&task));
        let claimed = task.status;
        // The fields ralph writes are ralph's: from the record, never from the file.
        task.failures = entry.map_or(0, |e| e.failures);
        task.reason = entry.and_then(|e| e.reason.clone());
        task.log = entry.and_then(|e| e.log.clone());
        if claimed != Status::Open && entry.map(|e| e.status) != Some(claimed) {
            let why = match record.tasks.get(&id) {
                Some(e) if e.sha256 != content_hash(&task) && e.status != Status::Open => {
                    format!(
                        "its title, spec, note or profile changed since ralph recorded it {}",
                        e.status
                    )
                }
                _ => "ralph never recorded that (the agent can write the task files)".to_owned(),
            };
            out.notices.push(format!(
                "task {id} ({}): {} says {claimed}, but {why}; treated as open (if you checked it yourself: `ralph task done {id}` on the host)",
                escape(&task.title),
                source(id)
            ));
            task.status = Status::Open;
            task.failures = 0;
            task.reason = None;
            task.log = None;
        }
        out.tasks.insert(id, task);
    }
    out.missing = record
        .tasks
        .iter()
        .filter(|(id, e)| e.status != Status::Done && !out.tasks.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    out
}

/// The record of one project, in its state folder (created when first written).
pub struct Ledger {
    /// The project's state folder (wrapix's, outside every sandbox).
    dir: std::path::PathBuf,
    /// The project folder, written into the state folder's `project` file when ralph creates
    /// the folder (so that it reads like the folders `wrapix run` creates).
    project: Option<std::path::PathBuf>,
}

impl Ledger {
    pub fn new(state_dir: &Path) -> Ledger {
        Ledger {
            dir: state_dir.to_owned(),
            project: None,
        }
    }

    /// The record of `project`'s tasks in `state_dir`, which is created (0700) with a
    /// `project` file naming the project.
    pub fn for_project(state_dir: &Path, project: &Path) -> Ledger {
        Ledger {
            dir: state_dir.to_owned(),
            project: Some(project.to_owned()),
        }
    }

    /// The runner lock: `None` while another ralph of the project holds it.
    pub fn runner_lock(&self) -> Result<Option<Lock>, RalphError> {
        let dir = self.create()?;
        crate::tracker::lock_in(&dir, Path::new(RUNNER_LOCK), std::time::Duration::ZERO)
    }

    /// Where the runner lock is, for messages.
    pub fn runner_lock_path(&self) -> std::path::PathBuf {
        self.dir.join(RUNNER_LOCK)
    }

    pub fn path(&self) -> std::path::PathBuf {
        self.dir.join(RECORD_FILE)
    }

    /// The record; empty when there is none yet. A record that does not parse is an error
    /// (never a silent reset, which would make nothing verified or everything).
    pub fn read(&self) -> Result<Record, RalphError> {
        let dir = match Dir::open(&self.dir) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(Record::default()),
            Err(e) => return Err(RalphError::fs("open", &self.dir, e)),
        };
        let Some(bytes) = dir
            .read(Path::new(RECORD_FILE), RECORD_LIMIT)
            .map_err(|e| RalphError::fs("read", self.path(), e))?
        else {
            return Ok(Record::default());
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            RalphError::usage(
                format!("{}: not ralph's record of verified tasks ({e})", self.path().display()),
                "move it away; ralph then treats every task as unverified and runs again those not done",
            )
        })
    }

    /// Changes the record under its lock.
    pub fn change(&self, f: impl FnOnce(&mut Record)) -> Result<(), RalphError> {
        let dir = self.create()?;
        let _lock = self.lock(&dir)?;
        let mut record = self.read()?;
        f(&mut record);
        // Maps of plain values: serialising cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        bytes.push(b'\n');
        dir.write_atomic(Path::new(RECORD_FILE), &bytes, 0o600)
            .map_err(|e| RalphError::fs("write", self.path(), e))
    }

    /// Records that ralph decided `task`'s status for `content` (the hash of the task as ralph
    /// ran it, which the file may no longer hold).
    pub fn decide(&self, task: &Task, content: String) -> Result<(), RalphError> {
        let entry = Entry::of(task, content);
        self.change(|r| {
            r.tasks.insert(task.id, entry);
        })
    }

    /// Remembers the tasks ralph saw (as `open`, unless it decided more about them).
    pub fn see(&self, tasks: &BTreeMap<u32, Task>) -> Result<(), RalphError> {
        let record = self.read()?;
        if tasks.keys().all(|id| record.tasks.contains_key(id)) {
            return Ok(());
        }
        self.change(|r| {
            for t in tasks.values() {
                r.tasks.entry(t.id).or_insert_with(|| Entry {
                    sha256: content_hash(t),
                    status: Status::Open,
                    failures: 0,
                    reason: None,
                    log: None,
                });
            }
        })
    }

    /// bd's issues as ralph's numbered tasks: an id ralph has not seen gets the next number
    /// no task had, kept in the record. Also returns each number's bd id.
    #[allow(clippy::type_complexity)]
    pub fn beads_tasks(
        &self,
        issues: &[crate::beads::Issue],
    ) -> Result<(BTreeMap<u32, Task>, BTreeMap<u32, String>), RalphError> {
        let mut out = None;
        self.change(|r| {
            let next = r
                .tasks
                .keys()
                .chain(r.beads.values())
                .max()
                .copied()
                .unwrap_or(0)
                + 1;
            out = Some(crate::beads::to_tasks(issues, &mut r.beads, next).map(|t| {
                let ids = r.beads.iter().map(|(k, v)| (*v, k.clone())).collect();
                (t, ids)
            }));
        })?;
        out.unwrap_or_else(|| Ok(Default::default()))
    }

    /// Drops what ralph knows of task `id`; `false` when it knew nothing.
    pub fn forget(&self, id: u32) -> Result<bool, RalphError> {
        let mut had = false;
        self.change(|r| had = r.tasks.remove(&id).is_some())?;
        Ok(had)
    }

    fn create(&self) -> Result<Dir, RalphError> {
        use std::os::unix::ffi::OsStrExt;
        let dir = Dir::create_trusted(&self.dir, 0o700)
            .map_err(|e| RalphError::fs("create the folder", &self.dir, e))?;
        if let Some(project) = &self.project {
            let mut text = project.as_os_str().as_bytes().to_vec();
            text.push(b'\n');
            let name = Path::new("project");
            let current = dir.read(name, 64 * 1024).ok().flatten();
            if current.as_deref() != Some(text.as_slice()) {
                dir.write_atomic(name, &text, 0o600)
                    .map_err(|e| RalphError::fs("write", dir.display_path(name), e))?;
            }
        }
        Ok(dir)
    }

    fn lock(&self, dir: &Dir) -> Result<Lock, RalphError> {
        crate::tracker::lock_in(
            dir,
            Path::new(LOCK_FILE),
            std::time::Duration::from_secs(10),
        )?
        .ok_or_else(|| {
            RalphError::Busy(format!(
                "{} is held by another ralph for more than 10 s",
                dir.display_path(Path::new(LOCK_FILE)).display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u32, title: &str, status: Status) -> Task {
        Task {
            id,
            title: title.into(),
            status,
            after: vec![],
            spec: Some("a".into()),
            note: None,
            profile: None,
            failures: 0,
            reason: None,
            log: None,
        }
    }

    fn all(ts: Vec<Task>) -> BTreeMap<u32, Task> {
        ts.into_iter().map(|t| (t.id, t)).collect()
    }

    fn decided(ts: &[Task]) -> Record {
        Record {
            tasks: ts
                .iter()
                .map(|t| (t.id, Entry::of(t, content_hash(t))))
                .collect(),
            ..Record::default()
        }
    }

    #[test]
    fn a_status_ralph_did_not_record_is_open_again() {
        let one = task(1, "one", Status::Done);
        let record = decided(std::slice::from_ref(&one));
        // Task 2 claims done (the agent's `ralph task done 2`), task 3 in progress, task 4
        // failed 0 times: none of it recorded.
        let v = reconcile(
            all(vec![
                one,
                task(2, "two", Status::Done),
                task(3, "three", Status::InProgress),
                task(4, "four", Status::Blocked),
                task(5, "five", Status::Open),
            ]),
            &record,
        );
        let st: Vec<Status> = v.tasks.values().map(|t| t.status).collect();
        assert_eq!(
            st,
            [
                Status::Done,
                Status::Open,
                Status::Open,
                Status::Open,
                Status::Open
            ]
        );
        assert_eq!(v.notices.len(), 3, "{:?}", v.notices);
        assert!(v.notices[0].starts_with("task 2 (two): .ralph/tasks/2.toml says done"));
        assert!(v.missing.is_empty());
    }

    #[test]
    fn an_edited_or_renumbered_done_task_is_not_done() {
        let one = task(1, "one", Status::Done);
        let record = decided(std::slice::from_ref(&one));
        let edited = Task {
            note: Some("criterion: nothing".into()),
            ..one.clone()
        };
        let v = reconcile(all(vec![edited]), &record);
        assert_eq!(v.tasks[&1].status, Status::Open);
        assert!(v.notices[0].contains("changed since ralph recorded it done"));
        // The same content under another id (a file renamed, its id rewritten).
        let moved = Task { id: 2, ..one };
        let v = reconcile(all(vec![moved]), &record);
        assert_eq!(v.tasks[&2].status, Status::Open);
    }

    #[test]
    fn the_fields_ralph_writes_come_from_the_record() {
        let mut failed = task(1, "one", Status::Failed);
        failed.failures = 2;
        failed.reason = Some("the check failed".into());
        let record = decided(std::slice::from_ref(&failed));
        // The agent resets the count to get more tries, and rewrites the reason.
        let forged = Task {
            failures: 0,
            reason: Some("\u{1b}[2J fine".into()),
            ..failed
        };
        let v = reconcile(all(vec![forged]), &record);
        assert_eq!(v.tasks[&1].failures, 2);
        assert_eq!(v.tasks[&1].reason.as_deref(), Some("the check failed"));
        assert!(v.notices.is_empty());
    }

    #[test]
    fn bd_issues_get_numbers_after_every_task_ralph_knows_and_keep_them() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::new(&d.path().join("state"));
        let one = task(1, "one", Status::Done);
        ledger
            .decide(&one, content_hash(&one))
            .unwrap_or_else(|e| panic!("{e}"));
        let text = r#"{"schema_version":1,"data":[
            {"id":"bd-x","title":"x","status":"closed","priority":1},
            {"id":"bd-y","title":"y","status":"open","priority":1}]}"#;
        let issues = crate::beads::parse_issues("bd list --json", text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let (tasks, ids) = ledger
            .beads_tasks(&issues)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ids[&2], "bd-x");
        assert_eq!(ids[&3], "bd-y");
        // bd says closed; ralph never verified it: open.
        let v = reconcile_from(tasks, &ledger.read().unwrap_or_default(), |_| "bd".into());
        assert_eq!(v.tasks[&2].status, Status::Open);
        assert!(v.notices[0].contains("bd says done"), "{:?}", v.notices);
        let (_, again) = ledger
            .beads_tasks(&issues[1..])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again[&3], "bd-y");
    }

    #[test]
    fn a_removed_task_that_was_not_done_is_missing() {
        let record = Record {
            tasks: [
                (1, Entry::of(&task(1, "one", Status::Done), "x".into())),
                (2, Entry::of(&task(2, "two", Status::Open), "y".into())),
            ]
            .into(),
            ..Record::default()
        };
        let v = reconcile(BTreeMap::new(), &record);
        assert_eq!(v.missing, [2]);
    }

    #[test]
    fn the_record_lives_in_the_folder_given_and_a_corrupt_one_is_loud() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::new(&d.path().join("state"));
        assert_eq!(ledger.read().ok(), Some(Record::default()));
        let one = task(1, "one", Status::Done);
        ledger
            .decide(&one, content_hash(&one))
            .unwrap_or_else(|e| panic!("{e}"));
        ledger
            .see(&all(vec![one.clone(), task(2, "two", Status::Open)]))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = ledger.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tasks[&1].status, Status::Done, "seeing never downgrades");
        assert_eq!(r.tasks[&2].status, Status::Open);
        std::fs::write(ledger.path(), "{").unwrap_or_else(|e| panic!("{e}"));
        let e = ledger
            .read()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("ralph.json: not ralph's record"), "{e}");
        assert!(ledger.decide(&one, content_hash(&one)).is_err());
    }
}
