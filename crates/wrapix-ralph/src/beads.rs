//! beads (`bd`) as ralph's tracker, for projects that already use it.
//!
//! Written against the beads source at [`SOURCE_COMMIT`] (github.com/steveyegge/beads), not
//! run against a real `bd` on the machine it was written on:
//!
//! - `cmd/bd/output.go` `outputJSON`: with `BD_JSON_ENVELOPE=1` every `--json` output is
//!   `{"schema_version": 1, "data": …}` (without it, objects get `schema_version` mixed in
//!   and arrays do not): ralph always sets it and accepts only schema version 1.
//! - `internal/types/types.go` `Issue`: `id`, `title`, `status` (`open`, `in_progress`,
//!   `blocked`, `deferred`, `closed`, `pinned`, `hooked`, or a custom one), `priority` (always
//!   written, 0 is valid), `description`, `issue_type`, `labels` and `dependencies` (written
//!   only when not empty); a `Dependency` is `{issue_id, depends_on_id, type}`, `type` `blocks`
//!   meaning `depends_on_id` must close first.
//! - `cmd/bd/list.go`: `bd list --json` prints an array of `IssueWithCounts` (the issue's
//!   fields, dependencies included, plus counts); by default closed issues are left out and
//!   at most 50 are printed, so ralph asks `--all --limit 0`.
//! - `cmd/bd/create.go`: `bd create --title T [-d TEXT] [-t task] [--deps blocked-by:ID]
//!   [--labels L] --json` prints the new issue (an object; its `id`). `cmd/bd/create_deps.go`:
//!   `blocked-by:ID` (and a bare `ID`) makes the new issue depend on ID, while `blocks:ID`
//!   means the opposite, so ralph writes `blocked-by:` explicitly.
//! - `cmd/bd/update.go` `--status S`, `cmd/bd/close.go` `--reason R`, `cmd/bd/reopen.go`: each
//!   prints the changed issues as an array.
//!
//! `bd` runs code the project configures: `internal/hooks/hooks.go` runs the executables
//! `.beads/hooks/on_create`, `on_update` and `on_close` after every change (wired in
//! `cmd/bd/main.go` unless `no-hooks`), `internal/beads/beads.go` follows a `.beads/redirect`
//! file to another folder and runs `git` in the project (whose `.git/config` can name
//! programs, e.g. `core.fsmonitor`). Everything in the project is the agent's to write, so on
//! the host ralph never runs `bd` itself: the CLI runs it in the project's sandbox, as it runs
//! the agent and the check. This module builds the argv, parses the output (untrusted, like
//! the task files: strictly, sizes bounded) and runs `bd` directly only where that is safe (in
//! the sandbox, and in tests on a folder they made).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::RalphError;
use crate::project::{check_label, Project};
use crate::tracker::{escape, Status, Task};

/// The beads commit whose source this module follows.
pub const SOURCE_COMMIT: &str = "fbcee6c6246c874ed98a129d9c1ac22127d8c585";
/// The project's beads folder.
pub const BEADS_DIR: &str = ".beads";
/// The most of `bd`'s stdout read (a list of [`crate::tracker::MAX_TASKS`] issues fits).
pub const OUTPUT_LIMIT: usize = 32 << 20;
/// How long one `bd` command may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The environment every `bd` ralph runs gets: the uniform JSON envelope, and no hooks (in
/// the sandbox they could not reach the host anyway; they are not ralph's business).
pub const ENV: [(&str, &str); 2] = [("BD_JSON_ENVELOPE", "1"), ("BD_NO_HOOKS", "1")];
/// The label that links a bd issue to `specs/LABEL.md` (ralph's `--spec LABEL`).
pub const SPEC_LABEL: &str = "spec:";

/// One issue as `bd list --json` and `bd create --json` print it. Unknown fields are
/// tolerated (bd adds fields); a missing required one is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    pub id: String,
    pub title: String,
    /// Required here although bd's struct has `omitempty`: every stored issue has one.
    pub status: String,
    pub priority: i64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub issue_type: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub dependencies: Option<Vec<Dependency>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dependency {
    pub issue_id: String,
    pub depends_on_id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize)]
struct Envelope {
    schema_version: u32,
    data: serde_json::Value,
}

impl Issue {
    /// The blockers: ids this issue depends on with a `blocks` edge.
    pub fn blockers(&self) -> Vec<&str> {
        self.dependencies
            .iter()
            .flatten()
            .filter(|d| d.kind == "blocks" && d.issue_id == self.id)
            .map(|d| d.depends_on_id.as_str())
            .collect()
    }

    /// The spec label, from a `spec:LABEL` label.
    pub fn spec(&self) -> Option<&str> {
        self.labels
            .iter()
            .flatten()
            .find_map(|l| l.strip_prefix(SPEC_LABEL))
    }

    /// ralph's status for bd's, and why when it is not bd's own word.
    pub fn ralph_status(&self) -> (Status, Option<String>) {
        match self.status.as_str() {
            "open" => (Status::Open, None),
            "in_progress" => (Status::InProgress, None),
            "blocked" => (Status::Blocked, None),
            "closed" => (Status::Done, None),
            // Claimed by another worker: not ready for ralph.
            "hooked" => (Status::InProgress, None),
            other => (
                Status::Blocked,
                Some(format!("bd status {:?}", escape(other))),
            ),
        }
    }
}

/// `what` (e.g. "bd list --json") printed something ralph does not take.
fn bad(what: &str, message: impl Into<String>) -> RalphError {
    RalphError::malformed(
        what,
        1,
        message,
        "bd's output is read as untrusted input; check `bd doctor` and the bd version (see docs/ralph.md, \"beads\")",
    )
}

fn data(what: &str, stdout: &[u8]) -> Result<serde_json::Value, RalphError> {
    let env: Envelope = serde_json::from_slice(stdout)
        .map_err(|e| bad(what, format!("not bd's JSON envelope: {e}")))?;
    if env.schema_version != 1 {
        return Err(bad(
            what,
            format!("schema_version {} (ralph reads 1)", env.schema_version),
        ));
    }
    Ok(env.data)
}

/// An array of issues (`bd list`, `update`, `close`, `reopen` with `--json`).
pub fn parse_issues(what: &str, stdout: &[u8]) -> Result<Vec<Issue>, RalphError> {
    let issues: Vec<Issue> = serde_json::from_value(data(what, stdout)?)
        .map_err(|e| bad(what, format!("bd's issue list: {e}")))?;
    for i in &issues {
        check_issue(what, i)?;
    }
    Ok(issues)
}

/// One issue (`bd create --json`).
pub fn parse_issue(what: &str, stdout: &[u8]) -> Result<Issue, RalphError> {
    let issue: Issue = serde_json::from_value(data(what, stdout)?)
        .map_err(|e| bad(what, format!("bd's issue: {e}")))?;
    check_issue(what, &issue)?;
    Ok(issue)
}

fn check_issue(what: &str, i: &Issue) -> Result<(), RalphError> {
    check_id(&i.id).map_err(|_| bad(what, format!("bad issue id {:?}", escape(&i.id))))?;
    for d in i.dependencies.iter().flatten() {
        check_id(&d.depends_on_id).map_err(|_| {
            bad(
                what,
                format!(
                    "issue {}: bad dependency id {:?}",
                    i.id,
                    escape(&d.depends_on_id)
                ),
            )
        })?;
    }
    Ok(())
}

/// A bd issue id as ralph passes it to `bd`: letters, digits, `-`, `_`, `.`, `:`, not
/// starting with `-` (never read as a flag), no `,` (bd splits lists on it).
pub fn check_id(id: &str) -> Result<(), RalphError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(RalphError::usage(
            format!("bad bd issue id {:?}", escape(id)),
            "a bd id as `bd list` shows it, e.g. bd-a1b2",
        ))
    }
}

/// `bd list --json --all --limit 0`: every issue, closed ones too, no limit.
pub fn list_argv() -> Vec<String> {
    argv(&["list", "--json", "--all", "--limit", "0"])
}

/// `bd create --json --title T --type task [--description N] [--labels spec:L] [--deps
/// blocked-by:ID]…`.
pub fn create_argv(
    title: &str,
    note: Option<&str>,
    spec: Option<&str>,
    after: &[String],
) -> Result<Vec<String>, RalphError> {
    let mut a = argv(&["create", "--json", "--type", "task", "--title", title]);
    if let Some(n) = note {
        a.extend(["--description".to_owned(), n.to_owned()]);
    }
    if let Some(s) = spec {
        check_label(s)?;
        a.extend(["--labels".to_owned(), format!("{SPEC_LABEL}{s}")]);
    }
    for id in after {
        check_id(id)?;
        a.extend(["--deps".to_owned(), format!("blocked-by:{id}")]);
    }
    Ok(a)
}

/// `bd update --json --status S -- ID`.
pub fn status_argv(id: &str, status: &str) -> Result<Vec<String>, RalphError> {
    check_id(id)?;
    Ok(argv(&["update", "--json", "--status", status, "--", id]))
}

/// `bd close --json --reason R -- ID`.
pub fn close_argv(id: &str, reason: &str) -> Result<Vec<String>, RalphError> {
    check_id(id)?;
    Ok(argv(&["close", "--json", "--reason", reason, "--", id]))
}

/// `bd reopen --json -- ID`.
pub fn reopen_argv(id: &str) -> Result<Vec<String>, RalphError> {
    check_id(id)?;
    Ok(argv(&["reopen", "--json", "--", id]))
}

/// What ralph writes to bd for a status it decided. bd has no `failed`: a failed task stays
/// `open` there (ralph's record keeps the failure).
pub fn write_argv(
    id: &str,
    status: Status,
    reason: Option<&str>,
) -> Result<Vec<String>, RalphError> {
    match status {
        Status::Done => close_argv(id, reason.unwrap_or("verified by ralph")),
        Status::Open | Status::Failed => status_argv(id, "open"),
        Status::InProgress => status_argv(id, "in_progress"),
        Status::Blocked => status_argv(id, "blocked"),
    }
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// The issues as ralph's tasks: `numbers` maps bd ids to ralph's task numbers (kept in
/// ralph's record on the host; new ids get the next free number, `next`). `pinned` issues are
/// context, not work, and are left out. A blocker bd did not list makes the task blocked.
pub fn to_tasks(
    issues: &[Issue],
    numbers: &mut BTreeMap<String, u32>,
    mut next: u32,
) -> Result<BTreeMap<u32, Task>, RalphError> {
    let work: Vec<&Issue> = issues.iter().filter(|i| i.status != "pinned").collect();
    for i in &work {
        if !numbers.contains_key(&i.id) {
            numbers.insert(i.id.clone(), next);
            next += 1;
        }
    }
    let mut tasks = BTreeMap::new();
    for i in work {
        let n = numbers[&i.id];
        let (mut status, mut reason) = i.ralph_status();
        let mut after = Vec::new();
        for b in i.blockers() {
            match numbers.get(b) {
                Some(m) if issues.iter().any(|x| x.id == b && x.status != "pinned") => {
                    after.push(*m)
                }
                _ => {
                    status = Status::Blocked;
                    reason = Some(format!("depends on {}, which bd did not list", escape(b)));
                }
            }
        }
        after.sort_unstable();
        after.dedup();
        let title = i.title.trim();
        if title.is_empty() || title.contains(['\n', '\r']) {
            return Err(bad(
                "bd list --json",
                format!("issue {}: the title is empty or not one line", i.id),
            ));
        }
        tasks.insert(
            n,
            Task {
                id: n,
                title: title.chars().take(300).collect(),
                status,
                after,
                spec: i
                    .spec()
                    .filter(|s| check_label(s).is_ok())
                    .map(str::to_owned),
                note: i.description.clone().filter(|d| !d.is_empty()),
                profile: None,
                failures: 0,
                reason,
                log: None,
            },
        );
    }
    Ok(tasks)
}

/// Which tracker a project uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.ralph/tasks/`.
    Ralph,
    Beads,
}

/// `[ralph] tracker`: `Some("ralph")`, `Some("beads")`, or `None`/`Some("auto")`: beads when
/// the project has `.beads/` and no task in `.ralph/tasks/`.
pub fn choose(project: &Project, setting: Option<&str>) -> Result<Kind, RalphError> {
    let has_beads = matches!(
        project.dir.meta(Path::new(BEADS_DIR)),
        Ok(Some(m)) if m.kind == wrapix_hostfs::Kind::Dir
    );
    match setting {
        Some("ralph") => Ok(Kind::Ralph),
        Some("beads") if has_beads => Ok(Kind::Beads),
        Some("beads") => Err(RalphError::usage(
            format!(
                "[ralph] tracker = \"beads\", but {} has no .beads folder",
                project.path().display()
            ),
            "run `bd init` in the project, or remove the setting",
        )),
        None | Some("auto") => {
            let tasks = project
                .files(Path::new(crate::tracker::TASKS_DIR))?
                .iter()
                .any(|n| n.ends_with(".toml"));
            Ok(if has_beads && !tasks {
                Kind::Beads
            } else {
                Kind::Ralph
            })
        }
        Some(other) => Err(RalphError::usage(
            format!("[ralph] tracker = {:?}", escape(other)),
            "use \"auto\", \"ralph\" or \"beads\"",
        )),
    }
}

/// bd's stdout and exit code.
#[derive(Debug)]
pub struct BdOutput {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `program` (bd) with `args` in `dir`, directly: only in the sandbox, or on a folder
/// that is not the agent's (tests). Its stdout and stderr are read to [`OUTPUT_LIMIT`] each;
/// it is killed after `timeout`.
pub fn run_direct(
    program: &Path,
    args: &[String],
    dir: &Path,
    timeout: Duration,
) -> Result<BdOutput, RalphError> {
    use std::process::{Command, Stdio};
    let fail =
        |e: std::io::Error| RalphError::Busy(format!("cannot run {}: {e}", program.display()));
    let mut child = Command::new(program)
        .args(args)
        .envs(ENV)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(r) = r {
                let mut r = r.take(OUTPUT_LIMIT as u64 + 1);
                let _ = r.read_to_end(&mut out);
                // The rest is drained, so that bd never blocks on a full pipe.
                let _ = std::io::copy(&mut r.into_inner(), &mut std::io::sink());
            }
            out
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(fail)? {
            break Some(s);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(RalphError::Busy(format!(
            "{} {} took more than {} s and was killed",
            program.display(),
            args.first().map(String::as_str).unwrap_or(""),
            timeout.as_secs()
        )));
    };
    if stdout.len() > OUTPUT_LIMIT {
        return Err(bad(
            &format!("bd {}", args.first().map(String::as_str).unwrap_or("")),
            format!("more than {OUTPUT_LIMIT} bytes of output"),
        ));
    }
    Ok(BdOutput {
        code: status.code().unwrap_or(128),
        stdout,
        stderr,
    })
}

/// The error for a `bd` that exited non-zero: its stderr's last lines, escaped.
pub fn failed(what: &str, out: &BdOutput) -> RalphError {
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<String> = tail.into_iter().rev().map(escape).collect();
    RalphError::Busy(format!(
        "{what} failed (exit {}): {}",
        out.code,
        tail.join(" / ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped as `bd list --json` prints with BD_JSON_ENVELOPE=1 at SOURCE_COMMIT:
    // cmd/bd/output.go wrapWithSchemaVersion around []*types.IssueWithCounts (cmd/bd/list.go),
    // the Issue fields and json tags of internal/types/types.go, counts appended.
    const LIST: &str = r#"{
  "schema_version": 1,
  "data": [
    {
      "id": "bd-a1b2",
      "title": "Parse the config",
      "description": "criterion: `wrapix check` accepts the file",
      "status": "closed",
      "priority": 2,
      "issue_type": "task",
      "created_at": "2026-06-01T10:00:00Z",
      "updated_at": "2026-06-01T11:00:00Z",
      "closed_at": "2026-06-01T11:00:00Z",
      "close_reason": "done",
      "labels": ["spec:config"],
      "dependency_count": 0,
      "dependent_count": 1,
      "comment_count": 0
    },
    {
      "id": "bd-c3d4",
      "title": "Validate it",
      "status": "open",
      "priority": 0,
      "issue_type": "task",
      "created_at": "2026-06-01T10:01:00Z",
      "updated_at": "2026-06-01T10:01:00Z",
      "labels": ["spec:config"],
      "dependencies": [
        {
          "issue_id": "bd-c3d4",
          "depends_on_id": "bd-a1b2",
          "type": "blocks",
          "created_at": "2026-06-01T10:01:00Z",
          "created_by": "me"
        },
        {
          "issue_id": "bd-c3d4",
          "depends_on_id": "bd-e5f6",
          "type": "related",
          "created_at": "2026-06-01T10:01:00Z"
        }
      ],
      "dependency_count": 2,
      "dependent_count": 0,
      "comment_count": 0
    },
    {
      "id": "bd-e5f6",
      "title": "Context",
      "status": "pinned",
      "priority": 4,
      "created_at": "2026-06-01T10:02:00Z",
      "updated_at": "2026-06-01T10:02:00Z",
      "pinned": true,
      "dependency_count": 0,
      "dependent_count": 0,
      "comment_count": 0
    }
  ]
}
"#;

    // `bd create --json` (cmd/bd/create.go `outputJSON(issue)`): one Issue object.
    const CREATED: &str = r#"{
  "schema_version": 1,
  "data": {
    "id": "bd-g7h8",
    "title": "Write docs",
    "status": "open",
    "priority": 2,
    "issue_type": "task",
    "created_at": "2026-06-01T12:00:00Z",
    "created_by": "agent",
    "updated_at": "2026-06-01T12:00:00Z"
  }
}
"#;

    fn ok<T>(r: Result<T, RalphError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_list_becomes_numbered_tasks_with_after_from_blocks_edges() {
        let issues = ok(parse_issues("bd list --json", LIST.as_bytes()));
        assert_eq!(issues.len(), 3);
        assert_eq!(issues[1].blockers(), ["bd-a1b2"]);
        let mut numbers = BTreeMap::new();
        let tasks = ok(to_tasks(&issues, &mut numbers, 1));
        assert_eq!(numbers.len(), 2, "pinned issues are not work: {numbers:?}");
        assert_eq!((numbers["bd-a1b2"], numbers["bd-c3d4"]), (1, 2));
        assert_eq!(tasks[&1].status, Status::Done);
        assert_eq!(tasks[&1].spec.as_deref(), Some("config"));
        assert_eq!(tasks[&2].status, Status::Open);
        // `related` is not an order of work.
        assert_eq!(tasks[&2].after, [1]);
        // Numbers once given stay; a new id gets the next one.
        let mut again = numbers.clone();
        again.insert("bd-old".into(), 7);
        let tasks = ok(to_tasks(&issues, &mut again, 8));
        assert_eq!(tasks.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn create_prints_one_issue() {
        let i = ok(parse_issue("bd create --json", CREATED.as_bytes()));
        assert_eq!(i.id, "bd-g7h8");
        assert_eq!(i.ralph_status(), (Status::Open, None));
    }

    #[test]
    fn missing_fields_bad_ids_and_other_schemas_are_errors_naming_bd() {
        let no_title =
            r#"{"schema_version":1,"data":[{"id":"bd-1","status":"open","priority":1}]}"#;
        let e = parse_issues("bd list --json", no_title.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("bd list --json:1: "), "{e}");
        assert!(e.contains("missing field `title`"), "{e}");
        let flag = r#"{"schema_version":1,"data":[{"id":"--db=/etc","title":"x","status":"open","priority":1}]}"#;
        assert!(parse_issues("bd list --json", flag.as_bytes()).is_err());
        let v2 = r#"{"schema_version":2,"data":[]}"#;
        assert!(parse_issues("bd list --json", v2.as_bytes()).is_err());
        // Legacy output (no envelope) is refused: ralph always asks for the envelope.
        assert!(parse_issues("bd list --json", b"[]").is_err());
    }

    #[test]
    fn unknown_statuses_and_unlisted_blockers_are_not_ready() {
        let text = r#"{"schema_version":1,"data":[
            {"id":"bd-1","title":"a","status":"deferred","priority":1},
            {"id":"bd-2","title":"b\u001b[2J","status":"open","priority":1,
             "dependencies":[{"issue_id":"bd-2","depends_on_id":"ext-9","type":"blocks"}]}]}"#;
        let issues = ok(parse_issues("bd list --json", text.as_bytes()));
        let tasks = ok(to_tasks(&issues, &mut BTreeMap::new(), 1));
        assert_eq!(tasks[&1].status, Status::Blocked);
        assert_eq!(tasks[&2].status, Status::Blocked);
        assert!(tasks[&2]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("ext-9")));
    }

    #[test]
    fn argv_never_lets_text_become_a_flag() {
        let a = ok(create_argv(
            "--db=/x",
            Some("-d"),
            Some("config"),
            &["bd-a1b2".to_owned()],
        ));
        assert_eq!(
            a,
            [
                "create",
                "--json",
                "--type",
                "task",
                "--title",
                "--db=/x",
                "--description",
                "-d",
                "--labels",
                "spec:config",
                "--deps",
                "blocked-by:bd-a1b2"
            ]
        );
        assert!(create_argv("x", None, None, &["a,b".to_owned()]).is_err());
        assert!(status_argv("-x", "open").is_err());
        assert_eq!(
            ok(write_argv("bd-1", Status::Done, None)),
            [
                "close",
                "--json",
                "--reason",
                "verified by ralph",
                "--",
                "bd-1"
            ]
        );
        assert_eq!(
            ok(write_argv("bd-1", Status::Failed, None)),
            ["update", "--json", "--status", "open", "--", "bd-1"]
        );
        assert_eq!(list_argv(), ["list", "--json", "--all", "--limit", "0"]);
    }

    /// The real `bd` on a folder this test made (never a project): skipped, saying why, when
    /// `bd` is not on PATH.
    #[test]
    fn the_real_bd_round_trip() {
        let Some(bd) = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("bd"))
                .find(|p| p.is_file())
        }) else {
            eprintln!("skipped: no `bd` on PATH (beads is not installed here)");
            return;
        };
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let run = |args: Vec<String>| {
            let out = ok(run_direct(&bd, &args, d.path(), TIMEOUT));
            assert_eq!(
                out.code,
                0,
                "bd {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let _ = std::process::Command::new("git")
            .arg("init")
            .arg("-q")
            .current_dir(d.path())
            .status();
        run(argv(&[
            "init",
            "--quiet",
            "--non-interactive",
            "--skip-hooks",
            "--skip-agents",
            "--prefix",
            "t",
        ]));
        let one = ok(parse_issue(
            "bd create --json",
            &run(ok(create_argv("one", Some("first"), Some("a"), &[]))),
        ));
        let two = ok(parse_issue(
            "bd create --json",
            &run(ok(create_argv(
                "two",
                None,
                None,
                std::slice::from_ref(&one.id),
            ))),
        ));
        let issues = ok(parse_issues("bd list --json", &run(list_argv())));
        let mut numbers = BTreeMap::new();
        let tasks = ok(to_tasks(&issues, &mut numbers, 1));
        let (n1, n2) = (numbers[&one.id], numbers[&two.id]);
        assert_eq!(tasks[&n2].after, [n1]);
        assert_eq!(tasks[&n1].spec.as_deref(), Some("a"));
        ok(parse_issues(
            "bd update --json",
            &run(ok(write_argv(&one.id, Status::InProgress, None))),
        ));
        ok(parse_issues(
            "bd close --json",
            &run(ok(write_argv(&one.id, Status::Done, None))),
        ));
        let issues = ok(parse_issues("bd list --json", &run(list_argv())));
        let tasks = ok(to_tasks(&issues, &mut numbers, 3));
        assert_eq!(tasks[&n1].status, Status::Done);
        ok(parse_issues(
            "bd reopen --json",
            &run(ok(reopen_argv(&one.id))),
        ));
    }

    #[test]
    fn auto_chooses_beads_only_without_ralph_tasks() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = ok(Project::open(d.path()));
        assert_eq!(ok(choose(&p, None)), Kind::Ralph);
        assert!(choose(&p, Some("beads")).is_err());
        std::fs::create_dir_all(d.path().join(".beads")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(d.path().join(".ralph/tasks")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(choose(&p, Some("auto"))), Kind::Beads);
        assert_eq!(ok(choose(&p, Some("ralph"))), Kind::Ralph);
        std::fs::write(d.path().join(".ralph/tasks/1.toml"), "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(choose(&p, None)), Kind::Ralph);
        assert_eq!(ok(choose(&p, Some("beads"))), Kind::Beads);
        assert!(choose(&p, Some("jira")).is_err());
    }
}
