//! What git reads to decide what to run, as it was at one moment: every `.git` in the
//! project, every folder git would take for a git folder itself (a "bare" one), and, inside
//! each, the files that can make git run code. Taking it never fails as a whole: what cannot
//! be read is recorded as such, where it is, and the rest is still read.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wrapix_hostfs::{Dir, HostFsError, Kind};

use super::{index, walk};

/// Surface files up to this size are kept whole, so that they can be put back.
pub(crate) const KEEP: u64 = 64 * 1024;
/// At most this many bytes are kept in all: an agent that plants a million hooks makes the
/// snapshot compare them by size and times instead of by content, not use all memory.
const BUDGET: u64 = 64 * 1024 * 1024;
/// An index larger than this is not read (it would be a repository of several million files).
const INDEX_LIMIT: u64 = 512 * 1024 * 1024;
/// How deep `.git/modules` and `.git/worktrees` are searched (a submodule of a submodule is
/// two levels).
const MAX_DEPTH: usize = 32;
/// The files inside any git folder that point git elsewhere or configure it.
pub(crate) const POINTERS: [&str; 4] = ["config", "commondir", "config.worktree", "gitdir"];
/// Never searched inside `.git/modules/**` and `.git/worktrees/**`: large and inert.
const INERT: [&str; 3] = ["objects", "refs", "logs"];

/// One entry of the surface, as `lstat` saw it; never followed.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    File {
        mode: u32,
        size: u64,
        /// Inode, mtime and ctime: what tells a change when the bytes were not kept.
        stamp: (u64, (i64, i64), (i64, i64)),
        bytes: Option<Vec<u8>>,
    },
    Dir,
    Symlink(PathBuf),
    Other,
    /// Could not be looked at or listed (the error): never the same as anything.
    Unreadable(String),
}

impl Node {
    /// Whether git would see the same thing in both.
    pub(crate) fn same(&self, other: &Node) -> bool {
        match (self, other) {
            (
                Node::File {
                    mode: m1,
                    size: s1,
                    stamp: t1,
                    bytes: b1,
                },
                Node::File {
                    mode: m2,
                    size: s2,
                    stamp: t2,
                    bytes: b2,
                },
            ) => {
                m1 == m2
                    && match (b1, b2) {
                        (Some(b1), Some(b2)) => b1 == b2,
                        _ => s1 == s2 && t1 == t2,
                    }
            }
            (Node::Dir, Node::Dir) | (Node::Other, Node::Other) => true,
            (Node::Symlink(a), Node::Symlink(b)) => a == b,
            // The same error both times: nothing new was learnt, nothing new to say.
            (Node::Unreadable(a), Node::Unreadable(b)) => a == b,
            _ => false,
        }
    }

    /// "a symbolic link to /etc", "a file", "a folder"…
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::File { .. } => "a file".into(),
            Node::Dir => "a folder".into(),
            Node::Symlink(t) => format!("a symbolic link to {}", t.display()),
            Node::Other => "a FIFO, socket or device".into(),
            Node::Unreadable(why) => format!("something wrapix could not read ({why})"),
        }
    }

    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Node::File { bytes, .. } => bytes.as_deref(),
            _ => None,
        }
    }
}

/// One `.git` entry, or one folder shaped like a git folder, and, when it is a folder, its
/// surface files (relative to it).
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub node: Node,
    pub files: BTreeMap<PathBuf, Node>,
    /// A folder not named `.git` that git takes for a git folder (`HEAD`, `objects/`, `refs/`).
    pub bare: bool,
}

/// What git's execution surface in a project looked like when [`super::snapshot`] ran.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every `.git` (the top-level one is `.git`) and every bare-shaped folder (the project
    /// itself is `.`), project-relative.
    pub(crate) repos: BTreeMap<PathBuf, Repo>,
    /// What `.git/index` says that matters here, or why it could not be read.
    pub(crate) index: Result<index::Index, String>,
    /// Folders that could not be searched, and why.
    pub(crate) unreadable: BTreeMap<PathBuf, String>,
    /// Symlinks that lead out of the project, with their targets.
    pub(crate) outward: BTreeMap<PathBuf, PathBuf>,
}

impl Snapshot {
    /// How many repositories were seen: `.git` entries (the top-level one included) and
    /// bare-shaped folders.
    pub fn repositories(&self) -> usize {
        self.repos.len()
    }

    /// The node at a project-relative path of the surface.
    pub(crate) fn node(&self, path: &Path) -> Option<&Node> {
        self.repos.iter().find_map(|(git, repo)| {
            if path == git {
                return Some(&repo.node);
            }
            repo.files.get(path.strip_prefix(git).ok()?)
        })
    }

    /// Everything that could not be read, with why (for [`super::snapshot`]'s strict use).
    pub(crate) fn errors(&self) -> Vec<(PathBuf, &str)> {
        let mut out = Vec::new();
        for (git, repo) in &self.repos {
            if let Node::Unreadable(why) = &repo.node {
                out.push((git.clone(), why.as_str()));
            }
            for (rel, node) in &repo.files {
                if let Node::Unreadable(why) = node {
                    out.push((join(git, rel), why.as_str()));
                }
            }
        }
        out
    }
}

/// `base/rel`, where the project folder `.` adds nothing.
pub(crate) fn join(base: &Path, rel: &Path) -> PathBuf {
    if base == Path::new(".") {
        rel.to_owned()
    } else {
        base.join(rel)
    }
}

pub(crate) fn take(project: &Dir, threads: usize) -> Snapshot {
    let mut s = Scan {
        project,
        budget: Cell::new(BUDGET),
        unreadable: BTreeMap::new(),
    };
    let mut repos = BTreeMap::new();
    // The top-level surface first: whatever happens further down, it is read.
    let top = PathBuf::from(".git");
    if let Some(repo) = s.repo(&top, false) {
        repos.insert(top.clone(), repo);
    }
    let found = walk::find_gits(project, threads);
    s.unreadable.extend(found.unreadable);
    let outward: BTreeMap<PathBuf, PathBuf> = found.outward.into_iter().collect();
    for (rel, _) in found.gits {
        if let Some(repo) = s.repo(&rel, false) {
            repos.insert(rel, repo);
        }
    }
    for rel in found.bares {
        if let Some(repo) = s.repo(&rel, true) {
            repos.insert(rel, repo);
        }
    }
    let index = match repos.get(&top).map(|r| &r.node) {
        Some(Node::Dir) => read_index(project, &top.join("index")),
        _ => Ok(index::Index::default()),
    };
    Snapshot {
        repos,
        index,
        unreadable: s.unreadable,
        outward,
    }
}

fn read_index(project: &Dir, path: &Path) -> Result<index::Index, String> {
    match project.read(path, INDEX_LIMIT) {
        Ok(None) => Ok(index::Index::default()),
        // SHA-1 repositories are by far the most common; SHA-256 ones have 32-byte ids.
        Ok(Some(bytes)) => {
            index::read(&bytes, 20).or_else(|e| index::read(&bytes, 32).map_err(|_| e))
        }
        Err(e) => Err(e.to_string()),
    }
}

struct Scan<'a> {
    project: &'a Dir,
    budget: Cell<u64>,
    unreadable: BTreeMap<PathBuf, String>,
}

impl Scan<'_> {
    /// The `.git` entry (or bare-shaped folder) at `git` and its surface; `None` when it is
    /// gone. In a bare-shaped folder only its own pointer files and hooks are the surface:
    /// the walk goes through its subfolders (`worktrees/x` is found as a git folder itself).
    fn repo(&mut self, git: &Path, bare: bool) -> Option<Repo> {
        let node = self.node(git)?;
        let mut files = BTreeMap::new();
        if let Node::Dir = node {
            for name in POINTERS {
                if let Some(n) = self.node(&join(git, Path::new(name))) {
                    files.insert(PathBuf::from(name), n);
                }
            }
            self.tree(git, Path::new("hooks"), true, 0, &mut files);
            if !bare {
                self.tree(git, Path::new("modules"), false, 0, &mut files);
                self.tree(git, Path::new("worktrees"), false, 0, &mut files);
            }
        }
        Some(Repo { node, files, bare })
    }

    /// Records `git/rel`: everything in it when `all`, else only pointer files, hooks and
    /// anything that is not a plain file or folder. A folder that cannot be listed is
    /// recorded as [`Node::Unreadable`].
    fn tree(
        &mut self,
        git: &Path,
        rel: &Path,
        all: bool,
        depth: usize,
        files: &mut BTreeMap<PathBuf, Node>,
    ) {
        let full = join(git, rel);
        let entries = match self.project.list_as_owner(&full) {
            Ok(Some(entries)) => entries,
            Ok(None) => return,
            // A symlink or a file where a folder belongs: recorded as it is.
            Err(HostFsError::Symlink { .. } | HostFsError::NotDir { .. }) => {
                if let Some(n) = self.node(&full) {
                    files.insert(rel.to_owned(), n);
                }
                return;
            }
            Err(e) => {
                files.insert(rel.to_owned(), Node::Unreadable(e.to_string()));
                return;
            }
        };
        if depth >= MAX_DEPTH {
            self.unreadable
                .insert(full, format!("more than {MAX_DEPTH} folders deep"));
            return;
        }
        for (name, kind) in entries {
            let child = rel.join(&name);
            if kind == Kind::Dir {
                let name = name.to_str().unwrap_or("");
                if all || name == "hooks" {
                    self.tree(git, &child, true, depth + 1, files);
                } else if !INERT.contains(&name) {
                    self.tree(git, &child, false, depth + 1, files);
                }
            } else if all || kind != Kind::File || POINTERS.iter().any(|p| name == *p) {
                if let Some(n) = self.node(&join(git, &child)) {
                    files.insert(child, n);
                }
            }
        }
    }

    /// The entry at `rel`, never followed; a small regular file with its bytes; `None` when
    /// it is not there; [`Node::Unreadable`] when it cannot be looked at.
    fn node(&mut self, rel: &Path) -> Option<Node> {
        let meta = match self.project.meta(rel) {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => return Some(Node::Unreadable(e.to_string())),
        };
        Some(match meta.kind {
            Kind::Dir => Node::Dir,
            Kind::Other => Node::Other,
            Kind::Symlink => match self.project.read_link(rel) {
                Ok(Some(target)) => Node::Symlink(target),
                Ok(None) => return None,
                Err(e) => Node::Unreadable(e.to_string()),
            },
            Kind::File => {
                let mut bytes = None;
                if meta.size <= KEEP && meta.size <= self.budget.get() {
                    // Changed or gone since the stat: compared by size and times instead.
                    bytes = self.project.read(rel, KEEP).ok().flatten();
                    let used = bytes.as_ref().map_or(0, |b| b.len() as u64);
                    self.budget.set(self.budget.get().saturating_sub(used));
                }
                Node::File {
                    mode: meta.mode,
                    size: meta.size,
                    stamp: (meta.ino, meta.mtime, meta.ctime),
                    bytes,
                }
            }
        })
    }
}
