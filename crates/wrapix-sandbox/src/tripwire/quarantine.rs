//! Neutralising findings: moving what the agent planted out of git's way, and putting back
//! what it changed. Nothing is deleted; every line says where things went.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use wrapix_hostfs::{Dir, HostFsError};

use super::surface::{Node, Snapshot};
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
            Action::Report => continue,
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
    match project.rename(rel, quarantine, rel) {
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
            project.rename(rel, project, &to)?;
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
