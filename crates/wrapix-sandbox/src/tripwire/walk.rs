//! Finds every `.git` entry and every folder shaped like a git folder in the work tree, on a
//! few threads, through directory handles: no path is resolved twice, no symlink is followed,
//! no `.git` is entered. Folders the agent made unlistable (it runs as the same user) are
//! opened as their owner (`wrapix_hostfs::Dir::open_dir_as_owner`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use wrapix_hostfs::{Dir, HostFsError, Kind};

/// What the walk saw.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Every `.git` below the top (dir, file, symlink or other), project-relative.
    pub gits: Vec<(PathBuf, Kind)>,
    /// Every folder git would take for a repository itself ([`git_dir_shaped`]), the
    /// project's own folder (`.`) included, project-relative.
    pub bares: Vec<PathBuf>,
    /// Folders that could not be opened or listed, and why.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Symlinks whose target leaves the project (absolute, or climbing above it with `..`),
    /// with the target: a host program that writes to one writes outside the project.
    pub outward: Vec<(PathBuf, PathBuf)>,
}

/// The target of the link `rel` (project-relative) when it leads out of the project as the
/// host sees it: an absolute path (other than the sandbox's own view of the project,
/// `/workspace/…`, which does not exist on the host), or `..` climbing above the project.
fn outward(dir: &Dir, rel: &Path, name: &OsStr) -> Option<PathBuf> {
    let target = dir.read_link(Path::new(name)).ok()??;
    if target.is_absolute() {
        return (!target.starts_with("/workspace")).then_some(target);
    }
    let mut depth = rel.parent().map_or(0, |p| p.components().count()) as i64;
    for c in target.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some(target);
        }
    }
    None
}

/// A folder to list: its parent's handle (kept open until all its children are listed) and
/// its project-relative path.
struct Task {
    parent: Arc<Dir>,
    rel: PathBuf,
}

struct Queue {
    tasks: Vec<Task>,
    busy: usize,
}

/// Walks `project`, skipping its top-level `.git`, on `threads` threads. A folder that cannot
/// be listed is recorded in [`Found::unreadable`], and the walk goes on.
pub(crate) fn find_gits(project: &Dir, threads: usize) -> Found {
    let mut found = Found::default();
    let root = match project.try_clone() {
        Ok(root) => Arc::new(root),
        Err(e) => {
            found.unreadable.push((PathBuf::from("."), e.to_string()));
            return found;
        }
    };
    let entries = match root.entries() {
        Ok(entries) => entries,
        Err(e) => {
            found.unreadable.push((PathBuf::from("."), e.to_string()));
            return found;
        }
    };
    if git_dir_shaped(&entries) {
        found.bares.push(PathBuf::from("."));
    }
    let mut tasks = Vec::new();
    for (name, kind) in entries {
        if name == ".git" {
            continue;
        }
        if kind == Kind::Symlink {
            if let Some(t) = outward(&root, Path::new(&name), &name) {
                found.outward.push((PathBuf::from(&name), t));
            }
        }
        if kind == Kind::Dir {
            tasks.push(Task {
                parent: Arc::clone(&root),
                rel: PathBuf::from(name),
            });
        }
    }
    // No folder to enter (a new or small project): no thread to start.
    let nothing_to_walk = tasks.is_empty();
    let queue = Mutex::new(Queue { tasks, busy: 0 });
    let wake = Condvar::new();
    let results = Mutex::new(&mut found);
    if !nothing_to_walk {
        std::thread::scope(|s| {
            // This thread is one of the workers.
            for _ in 1..threads.max(1) {
                s.spawn(|| worker(&queue, &wake, &results));
            }
            worker(&queue, &wake, &results);
        });
    }
    found.gits.sort();
    found.bares.sort();
    found.unreadable.sort();
    found.outward.sort();
    found
}

/// Whether git takes a folder with these entries (sorted by name) for a git folder when it
/// searches for a repository (`is_git_directory` in git's setup.c): a `HEAD`, and `objects`
/// and `refs`, or a `commondir` that says where those are. Any kind of entry counts (git
/// follows links there), so this is a little wider than git, never narrower.
pub(crate) fn git_dir_shaped(entries: &[(OsString, Kind)]) -> bool {
    let has = |name: &str| {
        entries
            .binary_search_by(|(n, _)| n.as_os_str().cmp(OsStr::new(name)))
            .is_ok()
    };
    has("HEAD") && (has("commondir") || (has("objects") && has("refs")))
}

fn worker(queue: &Mutex<Queue>, wake: &Condvar, results: &Mutex<&mut Found>) {
    let mut local = Found::default();
    let mut children = Vec::new();
    loop {
        let task = {
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(t) = q.tasks.pop() {
                    q.busy += 1;
                    break t;
                }
                if q.busy == 0 {
                    wake.notify_all();
                    let mut out = results.lock().unwrap_or_else(PoisonError::into_inner);
                    out.gits.append(&mut local.gits);
                    out.bares.append(&mut local.bares);
                    out.unreadable.append(&mut local.unreadable);
                    out.outward.append(&mut local.outward);
                    return;
                }
                q = wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
        };
        list(task, &mut local, &mut children);
        let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.busy -= 1;
        let any = !children.is_empty();
        q.tasks.append(&mut children);
        if any || (q.busy == 0 && q.tasks.is_empty()) {
            wake.notify_all();
        }
    }
}

/// Lists one folder: records its `.git` entries and whether it is shaped like a git folder,
/// queues its subfolders.
fn list(task: Task, found: &mut Found, children: &mut Vec<Task>) {
    let name = task.rel.file_name().unwrap_or(OsStr::new("."));
    let dir = match task.parent.open_dir_as_owner(Path::new(name)) {
        Ok(Some(dir)) => dir,
        // Gone, or turned into something else since it was listed: nothing to enter.
        Ok(None) | Err(HostFsError::Symlink { .. } | HostFsError::NotDir { .. }) => return,
        Err(e) => {
            found.unreadable.push((task.rel, e.to_string()));
            return;
        }
    };
    drop(task.parent);
    let entries = match dir.entries() {
        Ok(entries) => entries,
        Err(e) => {
            found.unreadable.push((task.rel, e.to_string()));
            return;
        }
    };
    if git_dir_shaped(&entries) {
        found.bares.push(task.rel.clone());
    }
    let dir = Arc::new(dir);
    for (name, kind) in entries {
        if name == ".git" {
            found.gits.push((task.rel.join(name), kind));
        } else if kind == Kind::Symlink {
            let rel = task.rel.join(&name);
            if let Some(t) = outward(&dir, &rel, &name) {
                found.outward.push((rel, t));
            }
        } else if kind == Kind::Dir {
            children.push(Task {
                parent: Arc::clone(&dir),
                rel: task.rel.join(name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn finds_every_nested_git_without_entering_links_or_git() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("r/.git")).unwrap();
        for d in [".git/x/.git", "a/b/c/.git/hooks", "a/d", "e/.git/sub/.git"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(p.join("a/d/.git"), "gitdir: /tmp").unwrap();
        std::fs::create_dir(p.join("l")).unwrap();
        symlink("/etc", p.join("l/.git")).unwrap();
        symlink(outside.path(), p.join("a/link")).unwrap();
        for threads in [1, 2, 4] {
            let found = find_gits(&Dir::open(p).unwrap(), threads);
            assert_eq!(
                found.gits,
                vec![
                    (PathBuf::from("a/b/c/.git"), Kind::Dir),
                    (PathBuf::from("a/d/.git"), Kind::File),
                    (PathBuf::from("e/.git"), Kind::Dir),
                    (PathBuf::from("l/.git"), Kind::Symlink),
                ],
                "{threads} threads"
            );
            assert!(found.unreadable.is_empty());
        }
    }

    #[test]
    fn unreadable_folders_are_reported_not_fatal() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/locked/r/.git")).unwrap();
        std::fs::set_permissions(
            t.path().join("a/locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        let found = find_gits(&Dir::open(t.path()).unwrap(), 2);
        std::fs::set_permissions(
            t.path().join("a/locked"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        if found.gits.is_empty() {
            assert_eq!(found.unreadable.len(), 1, "{found:?}");
            assert_eq!(found.unreadable[0].0, PathBuf::from("a/locked"));
        } else {
            // Ours: opened as the owner (and root ignores the mode anyway).
            assert_eq!(found.gits[0].0, PathBuf::from("a/locked/r/.git"));
        }
    }
}
