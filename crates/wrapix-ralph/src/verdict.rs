//! The state machine of one step and of the loop: what a finished step makes of its task,
//! and when the loop stops. Pure functions, so every transition is tested here.

use std::collections::BTreeMap;

use crate::signal::Signal;
use crate::tracker::{is_ready, Status, Task};

/// What happened in one step, gathered by the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFacts {
    /// The sandbox could not start (the reason); nothing else was tried.
    pub not_started: Option<String>,
    /// Killed at `--step-timeout`.
    pub timed_out: bool,
    /// Stopped by Ctrl-C (or SIGTERM/SIGHUP) of ralph.
    pub interrupted: bool,
    pub agent_exit: i32,
    pub signal: Signal,
    /// The check's exit code (`None`: no check configured, or not run).
    pub check_exit: Option<i32>,
    /// The tree is clean (`None`: not required, or not a git repository).
    pub clean: Option<bool>,
}

/// The task's new state after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    Failed(String),
    Blocked(String),
    /// Back to `open`, not counted as a failure (ralph was stopped mid-step).
    Interrupted,
}

impl Verdict {
    pub fn status(&self) -> Status {
        match self {
            Verdict::Done => Status::Done,
            Verdict::Failed(_) => Status::Failed,
            Verdict::Blocked(_) => Status::Blocked,
            Verdict::Interrupted => Status::Open,
        }
    }

    /// Applies the verdict to the task (its log is set by the caller).
    pub fn apply(&self, task: &mut Task) {
        task.status = self.status();
        match self {
            Verdict::Done => task.reason = None,
            Verdict::Failed(r) => {
                task.failures += 1;
                task.reason = Some(r.clone());
            }
            Verdict::Blocked(r) => task.reason = Some(r.clone()),
            Verdict::Interrupted => task.reason = Some("interrupted: ralph was stopped".into()),
        }
    }
}

/// Verification, in order: the sandbox started, the run was not stopped, the agent signalled
/// completion (or a blocking signal), the check passed, the tree is clean.
pub fn judge(f: &StepFacts) -> Verdict {
    if let Some(why) = &f.not_started {
        return Verdict::Failed(format!("the sandbox did not start: {why}"));
    }
    if f.interrupted {
        return Verdict::Interrupted;
    }
    if f.timed_out {
        return Verdict::Failed("killed at the step timeout".into());
    }
    match &f.signal {
        Signal::Blocked(r) => return Verdict::Blocked(format!("blocked: {r}")),
        Signal::Clarify(q) => return Verdict::Blocked(format!("clarify: {q}")),
        Signal::None => {
            return Verdict::Failed(format!(
                "no completion signal (agent exit {})",
                f.agent_exit
            ))
        }
        Signal::Complete => {}
    }
    if let Some(code) = f.check_exit.filter(|c| *c != 0) {
        return Verdict::Failed(format!(
            "the check failed (exit {code}) although the agent signalled completion"
        ));
    }
    if f.clean == Some(false) {
        return Verdict::Failed("the work is not committed (git status is not clean)".into());
    }
    Verdict::Done
}

/// Why the loop stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every task is done (exit 0).
    AllDone,
    /// No task is ready, some are not done (blocked, failed too often, or waiting on those).
    NothingReady,
    MaxSteps(u32),
    /// A task failed `--max-failures` times.
    TooManyFailures {
        task: u32,
        failures: u32,
    },
    Timeout,
    StopFile,
    Interrupted,
    /// Every task is done, but tasks ralph saw and had not finished were removed.
    Missing(Vec<u32>),
}

impl Stop {
    pub fn exit_code(&self) -> i32 {
        match self {
            Stop::AllDone => 0,
            _ => 1,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Stop::AllDone => "every task is done".into(),
            Stop::NothingReady => {
                "no task is ready: the rest are blocked, failed or wait on those (ralph status)".into()
            }
            Stop::MaxSteps(n) => format!("stopped after --max-steps {n} steps"),
            Stop::TooManyFailures { task, failures } => format!(
                "task {task} failed {failures} times (--max-failures); see `ralph logs {task}`, fix, then `ralph task reopen {task}`"
            ),
            Stop::Timeout => "stopped at --timeout".into(),
            Stop::StopFile => "stopped by .ralph/STOP (removed)".into(),
            Stop::Interrupted => "interrupted (Ctrl-C); no task was left in progress".into(),
            Stop::Missing(ids) => {
                let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
                format!(
                    "not every task is done: task {} was removed from .ralph/tasks before ralph finished it (restore it, e.g. `git checkout -- .ralph/tasks`, or drop it with `ralph task forget ID`)",
                    ids.join(", ")
                )
            }
        }
    }
}

/// Before a step: whether the tasks alone stop the loop.
pub fn stop_for_tasks(tasks: &BTreeMap<u32, Task>, max_failures: u32) -> Option<Stop> {
    if tasks.values().all(|t| t.status == Status::Done) {
        return Some(Stop::AllDone);
    }
    if let Some(t) = tasks
        .values()
        .find(|t| t.status == Status::Failed && t.failures >= max_failures)
    {
        return Some(Stop::TooManyFailures {
            task: t.id,
            failures: t.failures,
        });
    }
    if !tasks.values().any(|t| is_ready(t, tasks, max_failures)) {
        return Some(Stop::NothingReady);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> StepFacts {
        StepFacts {
            not_started: None,
            timed_out: false,
            interrupted: false,
            agent_exit: 0,
            signal: Signal::Complete,
            check_exit: Some(0),
            clean: Some(true),
        }
    }

    #[test]
    fn a_step_passes_only_when_everything_agrees() {
        assert_eq!(judge(&facts()), Verdict::Done);
        let lying = StepFacts {
            check_exit: Some(1),
            ..facts()
        };
        assert!(matches!(judge(&lying), Verdict::Failed(r) if r.contains("check failed")));
        let silent = StepFacts {
            signal: Signal::None,
            ..facts()
        };
        assert!(matches!(judge(&silent), Verdict::Failed(_)));
        let dirty = StepFacts {
            clean: Some(false),
            ..facts()
        };
        assert!(matches!(judge(&dirty), Verdict::Failed(r) if r.contains("committed")));
        let blocked = StepFacts {
            signal: Signal::Blocked("no key".into()),
            ..facts()
        };
        assert_eq!(judge(&blocked), Verdict::Blocked("blocked: no key".into()));
        let hung = StepFacts {
            timed_out: true,
            ..facts()
        };
        assert!(matches!(judge(&hung), Verdict::Failed(r) if r.contains("timeout")));
        let stopped = StepFacts {
            interrupted: true,
            timed_out: true,
            ..facts()
        };
        assert_eq!(judge(&stopped), Verdict::Interrupted);
    }

    #[test]
    fn the_loop_stops_on_done_and_on_repeated_failure() {
        let task = |id, status, failures| Task {
            id,
            title: "t".into(),
            status,
            after: vec![],
            spec: None,
            note: None,
            profile: None,
            failures,
            reason: None,
            log: None,
        };
        let all = |ts: Vec<Task>| {
            ts.into_iter()
                .map(|t| (t.id, t))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            stop_for_tasks(&all(vec![task(1, Status::Done, 0)]), 2),
            Some(Stop::AllDone)
        );
        assert_eq!(
            stop_for_tasks(&all(vec![task(1, Status::Failed, 1)]), 2),
            None
        );
        assert_eq!(
            stop_for_tasks(&all(vec![task(1, Status::Failed, 2)]), 2),
            Some(Stop::TooManyFailures {
                task: 1,
                failures: 2
            })
        );
        assert_eq!(
            stop_for_tasks(&all(vec![task(1, Status::Blocked, 0)]), 2),
            Some(Stop::NothingReady)
        );
    }
}
