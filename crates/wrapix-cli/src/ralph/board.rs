//! Where the tasks live: `.ralph/tasks/` (the built-in tracker) or beads (`bd`). Either way
//! they come out as ralph's numbered [`Task`]s, judged against ralph's record on the host
//! ([`super::believed`]): bd saying `closed` makes nothing done.
//!
//! On the host, `bd` runs in the project's sandbox through the one launch path (never on the
//! host: bd runs `.beads/hooks/*`, follows `.beads/redirect` and runs git in the project, all
//! of it the agent's to write; see [`wrapix_ralph::beads`]). Inside the sandbox it runs
//! directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use wrapix_ralph::beads;
use wrapix_ralph::tracker::{Status, Task};
use wrapix_ralph::verified::Ledger;
use wrapix_ralph::{Project, Tracker};

use super::run::Ctx;
use crate::commands::Failure;

pub(crate) enum Board<'a> {
    Ralph(&'a Project),
    /// On the host: bd in the project's sandbox.
    Beads(&'a Ctx),
    /// Inside the sandbox: bd directly.
    BeadsInside(&'a Project),
}

/// Tasks by number, and each number's bd id (beads only).
pub(crate) type Loaded = (BTreeMap<u32, Task>, BTreeMap<u32, String>);

impl Board<'_> {
    /// Where a task's status was read, for notices.
    pub fn source(&self, id: u32) -> String {
        match self {
            Board::Ralph(_) => format!(".ralph/tasks/{id}.toml"),
            _ => "bd".to_owned(),
        }
    }

    /// Runs `bd ARGS` and returns its stdout (`what` names it in errors).
    pub fn bd(&self, args: Vec<String>, what: &str) -> Result<Vec<u8>, Failure> {
        match self {
            Board::Ralph(_) => Err(Failure::usage("this project does not use beads")),
            Board::BeadsInside(p) => {
                let bd = on_path("bd").ok_or_else(|| {
                    Failure::usage(
                        "this project uses beads, but there is no `bd` in this sandbox's image",
                    )
                })?;
                let out = beads::run_direct(&bd, &args, p.path(), beads::TIMEOUT)?;
                if out.code != 0 {
                    return Err(beads::failed(what, &out).into());
                }
                Ok(out.stdout)
            }
            Board::Beads(ctx) => {
                let mut argv = vec!["env".to_owned()];
                argv.extend(beads::ENV.iter().map(|(k, v)| format!("{k}={v}")));
                argv.push("bd".to_owned());
                argv.extend(args);
                let deadline = Some(Instant::now() + beads::TIMEOUT);
                let r = super::run::sandboxed(ctx, argv, None, None, deadline, false, false)?;
                match &r.outcome {
                    Err(why) => Err(Failure::failed(format!(
                        "{what}: the sandbox did not start: {why}"
                    ))),
                    Ok(o) if o.code != 0 => Err(Failure::failed(format!(
                        "{what} failed in the sandbox (exit {}; its messages are above; is `bd` in the image?)",
                        o.code
                    ))),
                    Ok(_) => Ok(r.output),
                }
            }
        }
    }

    /// Every task, numbered (on the host the numbers of bd issues are kept in `ledger`).
    pub fn load(&self, ledger: Option<&Ledger>) -> Result<Loaded, Failure> {
        if let Board::Ralph(p) = self {
            return Ok((Tracker::new(p).load()?, BTreeMap::new()));
        }
        let what = "bd list --json";
        let issues = beads::parse_issues(what, &self.bd(beads::list_argv(), what)?)?;
        match ledger {
            Some(l) => Ok(l.beads_tasks(&issues)?),
            None => {
                let mut numbers = BTreeMap::new();
                let tasks = beads::to_tasks(&issues, &mut numbers, 1)?;
                Ok((tasks, numbers.into_iter().map(|(k, v)| (v, k)).collect()))
            }
        }
    }

    /// Writes the status ralph decided for `task` (and, for ralph's tracker, the fields it
    /// keeps). For bd: `close` for done, `update --status` otherwise (bd has no `failed`).
    pub fn set(&self, ledger: Option<&Ledger>, task: &Task) -> Result<(), Failure> {
        if let Board::Ralph(p) = self {
            Tracker::new(p).update(task.id, |t| {
                t.status = task.status;
                t.failures = task.failures;
                t.reason = task.reason.clone();
                t.log = task.log.clone();
                Ok(())
            })?;
            return Ok(());
        }
        let id = ledger
            .map(|l| l.read())
            .transpose()?
            .and_then(|r| {
                r.beads
                    .iter()
                    .find(|(_, n)| **n == task.id)
                    .map(|(k, _)| k.clone())
            })
            .ok_or_else(|| wrapix_ralph::tracker::unknown_id(task.id))?;
        let reason = task
            .reason
            .as_deref()
            .filter(|_| task.status == Status::Done);
        let what = format!(
            "bd {}",
            if task.status == Status::Done {
                "close"
            } else {
                "update"
            }
        );
        self.bd(beads::write_argv(&id, task.status, reason)?, &what)?;
        Ok(())
    }
}

/// `name` found in `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}
