//! Neutralising findings: moving what the agent planted out of git's way, and putting back
//! what it changed. Nothing is deleted; every line says where things went.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use wrapix_hostfs::{Dir, HostFsError};

use super::surface::{join, Node, Snapshot};
use super::{Action, Finding, TripwireError};

pub(crate) fn neutralise(
    project: &Dir,
    before: &Snapshot,
    findings: &[Finding],
    quarantine: &Dir,
) -> Result<Vec<String>, TripwireError> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for f in findings {
        let shown = project.display_path(&f.path);
        let result = match f.action {
            Action::Report | Action::Unchecked => continue,
            Action::Disarm => disarm(project, &f.path, quarantine, stamp).map(|moved| {
                format!(
                    "git no longer takes {} for a repository ({}): {}",
                    shown.display(),
                    f.what,
                    moved.join("; ")
                )
            }),
            Action::Quarantine => move_away(project, &f.path, quarantine, stamp)
                .map(|to| format!("quarantined {} ({}): {to}", shown.display(), f.what)),
            Action::Restore => restore(project, before, &f.path, quarantine, stamp).map(|to| {
                format!(
                    "put back {} as it was before the run ({}); the agent's version was {to}",
                    shown.display(),
                    f.what
                )
            }),
        };
        match result {
            Ok(line) => done.push(line),
            Err(e) => failed.push(format!(
                "{} ({}) is still in place: {e}",
                shown.display(),
                f.what
            )),
        }
    }
    if failed.is_empty() {
        Ok(done)
    } else {
        Err(TripwireError::Incomplete { done, failed })
    }
}

/// What makes a folder a repository to git, or runs code from it: moved away by [`disarm`].
const BARE_PIECES: [&str; 5] = ["HEAD", "config", "commondir", "config.worktree", "hooks"];

/// Moves the [`BARE_PIECES`] of the folder `dir` into quarantine; says what went where.
fn disarm(
    project: &Dir,
    dir: &Path,
    quarantine: &Dir,
    stamp: u64,
) -> Result<Vec<String>, HostFsError> {
    let mut moved = Vec::new();
    for piece in BARE_PIECES {
        let rel = join(dir, Path::new(piece));
        if project.meta(&rel)?.is_some() {
            let to = move_away(project, &rel, quarantine, stamp)?;
            moved.push(format!("{piece} {to}"));
        }
    }
    Ok(moved)
}

fn restore(
    project: &Dir,
    before: &Snapshot,
    rel: &Path,
    quarantine: &Dir,
    stamp: u64,
) -> Result<String, HostFsError> {
    let Some(Node::File {
        mode,
        bytes: Some(bytes),
        ..
    }) = before.node(rel)
    else {
        // `compare` only asks to restore files whose bytes it kept.
        return Err(HostFsError::BadPath {
            path: project.display_path(rel),
        });
    };
    let moved = match project.meta(rel)? {
        Some(_) => move_away(project, rel, quarantine, stamp)?,
        None => "gone".into(),
    };
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        project.create_dir_all(parent, 0o755)?;
    }
    project.write_atomic(rel, bytes, *mode)?;
    Ok(moved)
}

/// Moves `rel` into `quarantine` at the same relative path, or, when that is on another
/// filesystem, renames it in place. Says where it went.
fn move_away(
    project: &Dir,
    rel: &Path,
    quarantine: &Dir,
    stamp: u64,
) -> Result<String, HostFsError> {
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        quarantine.create_dir_all(parent, 0o700)?;
    }
    match project.rename_as_owner(rel, quarantine, rel) {
        Ok(()) => Ok(format!(
            "moved to {}",
            quarantine.display_path(rel).display()
        )),
        Err(e) if e.is_cross_device() => {
            let to = rename_in_place(project, rel, stamp)?;
            Ok(format!(
                "renamed in place to {}, because the quarantine folder {} is on another filesystem",
                project.display_path(&to).display(),
                quarantine.path().display()
            ))
        }
        Err(e) => Err(e),
    }
}

/// Renames `rel` to `NAME.wrapix-quarantined-STAMP` beside it (`-2`, `-3`… when taken),
/// where git no longer looks for it.
pub(crate) fn rename_in_place(
    project: &Dir,
    rel: &Path,
    stamp: u64,
) -> Result<PathBuf, HostFsError> {
    for n in 1..1000 {
        let to = in_place_name(rel, stamp, n);
        if project.meta(&to)?.is_none() {
            project.rename_as_owner(rel, project, &to)?;
            return Ok(to);
        }
    }
    Err(HostFsError::BadPath {
        path: project.display_path(&in_place_name(rel, stamp, 1000)),
    })
}

fn in_place_name(rel: &Path, stamp: u64, n: u32) -> PathBuf {
    let mut name = OsString::from(rel.file_name().unwrap_or_default());
    name.push(format!(".wrapix-quarantined-{stamp}"));
    if n > 1 {
        name.push(format!("-{n}"));
    }
    rel.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_names_sit_beside_and_do_not_collide() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("sub/.git/hooks")).unwrap();
        std::fs::write(t.path().join("sub/.git/hooks/pre-commit"), "x").unwrap();
        std::fs::write(
            t.path()
                .join("sub/.git/hooks/pre-commit.wrapix-quarantined-7"),
            "taken",
        )
        .unwrap();
        let d = Dir::open(t.path()).unwrap();
        let to = rename_in_place(&d, Path::new("sub/.git/hooks/pre-commit"), 7).unwrap();
        assert_eq!(
            to,
            PathBuf::from("sub/.git/hooks/pre-commit.wrapix-quarantined-7-2")
        );
        assert_eq!(std::fs::read_to_string(t.path().join(&to)).unwrap(), "x");
        let to = rename_in_place(&d, Path::new("sub/.git"), 7).unwrap();
        assert_eq!(to, PathBuf::from("sub/.git.wrapix-quarantined-7"));
        assert!(t
            .path()
            .join("sub/.git.wrapix-quarantined-7/hooks")
            .is_dir());
    }
}
