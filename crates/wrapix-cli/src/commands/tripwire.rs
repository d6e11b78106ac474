//! The git tripwire around a run: snapshot git's execution surface in the project before the
//! sandbox starts, check it after the sandbox exits, quarantine what appeared (see
//! `wrapix_sandbox::tripwire` and docs/security.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use wrapix_hostfs::Dir;
use wrapix_sandbox::tripwire::{self, Action, Snapshot};
use wrapix_sandbox::SandboxError;
use wrapix_spec::validate::HOST_TOOL_CONFIGS;
use wrapix_spec::Spec;

/// A snapshot taken before the run, with what the check after it needs.
pub struct Armed {
    /// The project's state folder, and this run's marker in it.
    state: Dir,
    marker: PathBuf,
    project: Dir,
    before: Snapshot,
    /// The host tools' configs that existed before the run.
    tool_configs: Vec<&'static str>,
    project_path: PathBuf,
}

/// Takes the snapshot. A project that cannot be read stops the run: without a snapshot there
/// would be no check afterwards.
pub fn arm(spec: &Spec, env: &BTreeMap<String, String>) -> Result<Armed, SandboxError> {
    let project = Dir::open(&spec.project)?;
    let before = tripwire::snapshot(&project).map_err(|e| {
        SandboxError::io(
            "take the git tripwire's snapshot of the project",
            std::io::Error::other(e),
        )
    })?;
    let tool_configs = existing_tool_configs(&project)?;
    let state_root = wrapix_spec::state::root(&spec.user.home, env);
    let state = wrapix_spec::state::ensure_project_dir(&state_root, &spec.project)
        .map_err(|e| SandboxError::io("open wrapix's state folder", std::io::Error::other(e)))?;
    warn_unchecked_runs(&state, &spec.project)?;
    let marker = PathBuf::from(format!("{RUNNING}/{}", std::process::id()));
    state
        .create_dir_all(std::path::Path::new(RUNNING), 0o700)?
        // Not fsynced: one per start, and a power cut that loses it loses the run too.
        .write_unsynced(
            std::path::Path::new(&std::process::id().to_string()),
            jiff::Timestamp::now().to_string().as_bytes(),
            0o600,
        )?;
    Ok(Armed {
        state,
        marker,
        project,
        before,
        tool_configs,
        project_path: spec.project.clone(),
    })
}

/// The folder of markers of runs whose check has not happened yet (one file per wrapix PID).
const RUNNING: &str = "running";

/// A marker left by a wrapix that died before checking its run (killed, a crash, a reboot):
/// what that sandbox left is now part of this run's snapshot, so say it loudly.
fn warn_unchecked_runs(state: &Dir, project: &std::path::Path) -> Result<(), SandboxError> {
    let Some(entries) = state.list(std::path::Path::new(RUNNING))? else {
        return Ok(());
    };
    for (name, _) in entries {
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if alive {
            continue;
        }
        eprintln!(
            "wrapix: WARNING: an earlier run in {} (wrapix PID {pid}) ended before its git check; \
             look for new .git files, nested repositories and .git/commondir before you run git there",
            project.display()
        );
        state.remove_all(&std::path::Path::new(RUNNING).join(&name))?;
    }
    Ok(())
}

/// Which of [`HOST_TOOL_CONFIGS`] exist in the project (a link counts: it exists).
fn existing_tool_configs(project: &Dir) -> Result<Vec<&'static str>, SandboxError> {
    let mut out = Vec::new();
    for (name, _) in HOST_TOOL_CONFIGS {
        if project.meta(std::path::Path::new(name))?.is_some() {
            out.push(*name);
        }
    }
    Ok(out)
}

impl Armed {
    /// Checks the project after the run, says loudly what appeared, and (unless `keep`)
    /// moves it to the project's quarantine folder or restores what changed. New configs of
    /// other host tools are named, not moved: they are ordinary project files.
    pub fn check(self, keep: bool) -> Result<(), SandboxError> {
        let result = self.check_all(keep);
        // Checked (or said why not): no longer a run to warn about.
        let _ = self.state.remove_all(&self.marker);
        result
    }

    fn check_all(&self, keep: bool) -> Result<(), SandboxError> {
        // The git check runs whatever happened here: an error is returned after it.
        let tools = existing_tool_configs(&self.project).map(|now| {
            for (name, tool) in HOST_TOOL_CONFIGS {
                if now.contains(name) && !self.tool_configs.contains(name) {
                    eprintln!(
                        "wrapix: note: the sandbox created {name} in {}; {tool}: review it before you open the project with that tool",
                        self.project_path.display()
                    );
                }
            }
        });
        self.check_git(keep)?;
        tools
    }

    fn check_git(&self, keep: bool) -> Result<(), SandboxError> {
        let findings = tripwire::check(&self.project, &self.before);
        if findings.is_empty() {
            return Ok(());
        }
        eprintln!(
            "wrapix: git tripwire: the sandbox left {} thing(s) in {} that git on the host would read:",
            findings.len(),
            self.project_path.display()
        );
        for f in &findings {
            eprintln!(
                "wrapix:   {}: {}",
                wrapix_spec::error::escape_controls(&f.path.display().to_string()),
                wrapix_spec::error::escape_controls(&f.what)
            );
        }
        let mut look_at: Vec<PathBuf> = findings
            .iter()
            .filter(|f| f.action == Action::Unchecked)
            .map(|f| f.path.clone())
            .collect();
        let acting = findings.iter().any(|f| {
            matches!(
                f.action,
                Action::Quarantine | Action::Restore | Action::Disarm
            )
        });
        let mut failure = None;
        if acting && keep {
            eprintln!(
                "wrapix: kept as they are (--keep-git-changes): review them before your next git command in this project"
            );
        } else if acting {
            if let Err(e) = self.neutralise(&findings) {
                // What could not be neutralised is still in place.
                look_at.extend(
                    findings
                        .iter()
                        .filter(|f| f.action != Action::Report && f.action != Action::Unchecked)
                        .map(|f| f.path.clone()),
                );
                failure = Some(e);
            }
        }
        if look_at.is_empty() {
            return failure.map_or(Ok(()), Err);
        }
        look_at.sort();
        look_at.dedup();
        let paths: Vec<String> = look_at
            .iter()
            .map(|p| {
                wrapix_spec::error::escape_controls(
                    &self.project_path.join(p).display().to_string(),
                )
            })
            .collect();
        eprintln!(
            "wrapix: WARNING: the git tripwire could not check or neutralise everything the sandbox \
             left in {}. Do NOT run git in that project (a shell prompt that shows the git branch \
             runs git too) before you have looked at:\n  {}",
            wrapix_spec::error::escape_controls(&self.project_path.display().to_string()),
            paths.join("\n  ")
        );
        Err(failure.unwrap_or_else(|| {
            SandboxError::io(
                "check git's files after the run (the git tripwire)",
                std::io::Error::other(format!("could not check: {}", paths.join(", "))),
            )
        }))
    }

    /// Moves what the findings say into a new quarantine folder, and says what went where.
    fn neutralise(&self, findings: &[tripwire::Finding]) -> Result<(), SandboxError> {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let rel = PathBuf::from(format!("quarantine/{stamp}-{}", std::process::id()));
        let quarantine = self.state.create_dir_all(&rel, 0o700)?;
        let result = tripwire::neutralise(&self.project, &self.before, findings, &quarantine);
        let lines = match result {
            Ok(lines) => lines,
            Err(e) => {
                eprintln!(
                    "wrapix: {}",
                    wrapix_spec::error::escape_controls(&e.to_string())
                );
                return Err(SandboxError::io(
                    "quarantine what the sandbox left for git",
                    std::io::Error::other(e),
                ));
            }
        };
        for l in lines {
            eprintln!("wrapix:   {}", wrapix_spec::error::escape_controls(&l));
        }
        eprintln!(
            "wrapix: to keep such changes, run with --keep-git-changes; what was moved is in {}",
            quarantine.path().display()
        );
        Ok(())
    }
}
