//! Before vs after: which changes are findings, and what to do with each.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::gitconfig::armed_reason;
use super::surface::{join, Node, Repo, Snapshot};
use super::{Action, Finding};

pub(crate) fn findings(before: &Snapshot, after: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for (git, repo) in &after.repos {
        let top = git == Path::new(".git");
        // A bare-shaped folder that was a plain folder before is new: nothing of it was kept.
        match before.repos.get(git).filter(|old| old.bare == repo.bare) {
            None if repo.bare => out.push(new_bare(git, repo)),
            None => out.push(new_git(git, repo, top)),
            Some(old) if !old.node.same(&repo.node) => out.push(changed_git(git, old, repo)),
            Some(old) => changed_files(git, old, repo, top, &mut out),
        }
    }
    index_findings(before, after, &mut out);
    for (path, target) in &after.outward {
        if before.outward.get(path) != Some(target) {
            out.push(Finding {
                path: path.clone(),
                what: format!(
                    "new symbolic link to {}, outside the project: a host program that writes to it writes there",
                    target.display()
                ),
                action: Action::Report,
            });
        }
    }
    for (path, why) in &after.unreadable {
        if !before.unreadable.contains_key(path) {
            out.push(Finding {
                path: path.clone(),
                what: format!(
                    "could not search this folder ({why}): a repository in it would not be seen"
                ),
                action: Action::Report,
            });
        }
    }
    out
}

/// At most this many entries newly hidden by index flags are named one by one (a sparse
/// checkout sets skip-worktree on thousands).
const HIDDEN_NAMED: usize = 20;

fn index_findings(before: &Snapshot, after: &Snapshot, out: &mut Vec<Finding>) {
    let now = match &after.index {
        Ok(index) => index,
        Err(e) => {
            out.push(Finding {
                path: PathBuf::from(".git/index"),
                what: format!(
                    "could not read the index ({e}), so its gitlinks and flags are not checked"
                ),
                action: Action::Report,
            });
            return;
        }
    };
    let old = before.index.as_ref().ok();
    for link in &now.gitlinks {
        if !old.is_some_and(|b| b.gitlinks.contains(link)) {
            out.push(Finding {
                path: link.clone(),
                what: "new gitlink (submodule entry) in .git/index: git status on the \
                       host looks inside it"
                    .into(),
                action: Action::Report,
            });
        }
    }
    let mut hidden = Vec::new();
    for (path, flags) in &now.hidden {
        let had = old.and_then(|b| b.hidden.get(path));
        for flag in flags {
            if !had.is_some_and(|h| h.contains(flag)) {
                hidden.push((path, *flag));
            }
        }
    }
    let more = hidden.len().saturating_sub(HIDDEN_NAMED);
    for (path, flag) in hidden.into_iter().take(HIDDEN_NAMED) {
        let option = flag.option();
        out.push(Finding {
            path: path.clone(),
            what: format!(
                "now marked {option} in .git/index: git status and git diff no longer show \
                 its changes (to see them: git update-index --no-{option} -- {})",
                path.display()
            ),
            action: Action::Report,
        });
    }
    if more > 0 {
        out.push(Finding {
            path: PathBuf::from(".git/index"),
            what: format!(
                "{more} more entries now marked skip-worktree or assume-unchanged: git status \
                 and git diff no longer show their changes (see git ls-files -v: lower-case \
                 or S)"
            ),
            action: Action::Report,
        });
    }
}

/// A folder that git now takes for a git folder and did not before. Armed: the pieces that
/// make it one and that run code are moved away, never the folder (it may be `src/`).
fn new_bare(dir: &Path, repo: &Repo) -> Finding {
    let (what, action) = match armed(repo) {
        Some(why) => (
            format!("new bare repository (a folder git takes for a repository: HEAD, objects, refs) {why}"),
            Action::Disarm,
        ),
        None => (
            "new bare repository (a folder git takes for a repository: HEAD, objects, refs): \
             nothing in it runs code"
                .into(),
            Action::Report,
        ),
    };
    Finding {
        path: dir.to_owned(),
        what,
        action,
    }
}

fn new_git(git: &Path, repo: &Repo, top: bool) -> Finding {
    let what = if top {
        "repository"
    } else {
        "nested repository"
    };
    let (what, action) = match &repo.node {
        Node::Dir => match armed(repo) {
            Some(why) => (format!("new {what} {why}"), Action::Quarantine),
            None => (
                format!("new {what} (a .git folder): nothing in it runs code"),
                Action::Report,
            ),
        },
        Node::Unreadable(why) => (
            format!("new .git that wrapix could not look at ({why})"),
            Action::Quarantine,
        ),
        Node::File { bytes, .. } => (
            format!(
                "new .git file{}: git would use the repository it points at",
                bytes.as_deref().map(quote).unwrap_or_default()
            ),
            Action::Quarantine,
        ),
        node => (
            format!(
                "new .git that is {}: git would use the repository it points at",
                node.describe()
            ),
            Action::Quarantine,
        ),
    };
    Finding {
        path: git.to_owned(),
        what,
        action,
    }
}

fn changed_git(git: &Path, old: &Repo, new: &Repo) -> Finding {
    let now = match &new.node {
        Node::File { bytes, .. } => {
            format!("a file{}", bytes.as_deref().map(quote).unwrap_or_default())
        }
        n => n.describe(),
    };
    let (what, action) = if let Node::Unreadable(why) = &new.node {
        (
            format!("could not look at this .git any more ({why}), so it is not checked"),
            Action::Unchecked,
        )
    } else if old.node.bytes().is_some() {
        (format!("changed .git file, now {now}"), Action::Restore)
    } else {
        (
            format!("this .git was {} and is now {now}", old.node.describe()),
            Action::Quarantine,
        )
    };
    Finding {
        path: git.to_owned(),
        what,
        action,
    }
}

fn changed_files(git: &Path, old: &Repo, new: &Repo, top: bool, out: &mut Vec<Finding>) {
    let place = match (top, new.bare) {
        (_, true) => " in a bare repository",
        (true, false) => "",
        (false, false) => " in a nested repository",
    };
    for (rel, node) in &new.files {
        let (what, action) = match old.files.get(rel) {
            None if is_sample(rel, node) => continue,
            Some(o) if o.same(node) => continue,
            _ if matches!(node, Node::Unreadable(_)) => (
                format!("could not check {}{place}: {}", role(rel), node.describe()),
                Action::Unchecked,
            ),
            None => (format!("new {}{place}{}", role(rel), detail(rel, node)), Action::Quarantine),
            Some(o) if o.bytes().is_some() => (
                format!("changed {}{place}{}", role(rel), detail(rel, node)),
                Action::Restore,
            ),
            Some(o) => (
                format!(
                    "changed {}{place}{} (it was {}, which wrapix did not keep, so it cannot be put back)",
                    role(rel),
                    detail(rel, node),
                    o.describe()
                ),
                Action::Quarantine,
            ),
        };
        out.push(Finding {
            path: join(git, rel),
            what,
            action,
        });
    }
}

/// Why a new `.git` folder can make git run code ("whose config sets core.fsmonitor"), or
/// `None` when it is what `git init` or `git clone` makes.
fn armed(repo: &Repo) -> Option<String> {
    for (rel, node) in &repo.files {
        let name = rel.file_name().and_then(OsStr::to_str).unwrap_or("");
        if let Node::Symlink(_) | Node::Other | Node::Unreadable(_) = node {
            return Some(format!("with {}, {}", rel.display(), node.describe()));
        }
        if in_hooks(rel) {
            if is_sample(rel, node) {
                continue;
            }
            return Some(format!("with the hook {}", rel.display()));
        }
        if name == "config" {
            let why = match node.bytes() {
                Some(bytes) => armed_reason(bytes),
                None => Some("is too large to check".into()),
            };
            if let Some(why) = why {
                return Some(format!("whose {} {why}", rel.display()));
            }
            continue;
        }
        if matches!(name, "commondir" | "config.worktree" | "gitdir") {
            return Some(format!("with {}", role(rel)));
        }
    }
    None
}

fn in_hooks(rel: &Path) -> bool {
    rel.components().any(|c| c.as_os_str() == "hooks")
}

/// A `*.sample` hook file: git never runs those.
fn is_sample(rel: &Path, node: &Node) -> bool {
    in_hooks(rel)
        && matches!(node, Node::File { .. })
        && rel.extension().is_some_and(|e| e == "sample")
}

/// What a surface file is to git, for the report line.
fn role(rel: &Path) -> String {
    let r = rel.display();
    if in_hooks(rel) {
        return format!("hook {r}, which git runs");
    }
    match rel.file_name().and_then(OsStr::to_str).unwrap_or("") {
        "config" => format!("git config {r}"),
        "config.worktree" => format!("per-worktree git config {r}"),
        "commondir" => format!("{r}, from where git takes config and hooks"),
        "gitdir" => format!("{r}, which points git at a repository"),
        _ => format!("{r}"),
    }
}

/// ", now a symbolic link to /etc" or ": it sets core.fsmonitor", or nothing.
fn detail(rel: &Path, node: &Node) -> String {
    let config = rel
        .file_name()
        .is_some_and(|n| n == "config" || n == "config.worktree");
    match node {
        Node::File { bytes: Some(b), .. } if config => match armed_reason(b) {
            Some(why) if why.starts_with("sets") => format!(": it {why}"),
            _ => String::new(),
        },
        Node::File { .. } => String::new(),
        n => format!(", now {}", n.describe()),
    }
}

/// ` (gitdir: ../x)`: the first line of a small `.git` file, shortened.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect();
    format!(" ({})", line.trim())
}
