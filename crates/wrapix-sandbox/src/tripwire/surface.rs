//! What git reads to decide what to run, as it was at one moment: every `.git` in the
//! project and, inside each `.git` folder, the files that can make git run code.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use wrapix_hostfs::{Dir, HostFsError, Kind};

use super::{index, walk, TripwireError};

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
        }
    }

    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Node::File { bytes, .. } => bytes.as_deref(),
            _ => None,
        }
    }
}

/// One `.git` entry and, when it is a folder, its surface files (relative to it).
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub node: Node,
    pub files: BTreeMap<PathBuf, Node>,
}

/// What git's execution surface in a project looked like when [`super::snapshot`] ran.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Every `.git` (the top-level one is `.git`), project-relative.
    pub(crate) repos: BTreeMap<PathBuf, Repo>,
    /// The gitlinks of `.git/index`, or why it could not be read.
    pub(crate) gitlinks: Result<BTreeSet<PathBuf>, String>,
    /// Folders that could not be searched, and why.
    pub(crate) unreadable: BTreeMap<PathBuf, String>,
}

impl Snapshot {
    /// How many `.git` entries were seen (the top-level one included).
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
}

pub(crate) fn take(project: &Dir, threads: usize) -> Result<Snapshot, TripwireError> {
    let mut s = Scan {
        project,
        budget: Cell::new(BUDGET),
        unreadable: BTreeMap::new(),
    };
    let mut repos = BTreeMap::new();
    let top = PathBuf::from(".git");
    if let Some(repo) = s.repo(&top)? {
        repos.insert(top.clone(), repo);
    }
    let found = walk::find_gits(project, threads).map_err(|source| TripwireError::Walk {
        path: project.path().to_owned(),
        source,
    })?;
    s.unreadable.extend(found.unreadable);
    for (rel, _) in found.gits {
        if let Some(repo) = s.repo(&rel)? {
            repos.insert(rel, repo);
        }
    }
    let gitlinks = match repos.get(&top).map(|r| &r.node) {
        Some(Node::Dir) => read_gitlinks(project, &top.join("index")),
        _ => Ok(BTreeSet::new()),
    };
    Ok(Snapshot {
        repos,
        gitlinks,
        unreadable: s.unreadable,
    })
}

fn read_gitlinks(project: &Dir, path: &Path) -> Result<BTreeSet<PathBuf>, String> {
    match project.read(path, INDEX_LIMIT) {
        Ok(None) => Ok(BTreeSet::new()),
        // SHA-1 repositories are by far the most common; SHA-256 ones have 32-byte ids.
        Ok(Some(bytes)) => {
            index::gitlinks(&bytes, 20).or_else(|e| index::gitlinks(&bytes, 32).map_err(|_| e))
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
    fn err(&self, op: &'static str, path: &Path, source: HostFsError) -> TripwireError {
        TripwireError::Read {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The `.git` entry at `git` and its surface; `None` when it is gone.
    fn repo(&mut self, git: &Path) -> Result<Option<Repo>, TripwireError> {
        let Some(node) = self.node(git)? else {
            return Ok(None);
        };
        let mut files = BTreeMap::new();
        if let Node::Dir = node {
            for name in POINTERS {
                if let Some(n) = self.node(&git.join(name))? {
                    files.insert(PathBuf::from(name), n);
                }
            }
            self.tree(git, Path::new("hooks"), true, 0, &mut files)?;
            self.tree(git, Path::new("modules"), false, 0, &mut files)?;
            self.tree(git, Path::new("worktrees"), false, 0, &mut files)?;
        }
        Ok(Some(Repo { node, files }))
    }

    /// Records `git/rel`: everything in it when `all`, else only pointer files, hooks and
    /// anything that is not a plain file or folder.
    fn tree(
        &mut self,
        git: &Path,
        rel: &Path,
        all: bool,
        depth: usize,
        files: &mut BTreeMap<PathBuf, Node>,
    ) -> Result<(), TripwireError> {
        let full = git.join(rel);
        let entries = match self.project.list(&full) {
            Ok(Some(entries)) => entries,
            Ok(None) => return Ok(()),
            // A symlink or a file where a folder belongs: recorded as it is.
            Err(HostFsError::Symlink { .. } | HostFsError::NotDir { .. }) => {
                if let Some(n) = self.node(&full)? {
                    files.insert(rel.to_owned(), n);
                }
                return Ok(());
            }
            Err(e) => {
                self.unreadable.insert(full, e.to_string());
                return Ok(());
            }
        };
        if depth >= MAX_DEPTH {
            self.unreadable
                .insert(full, format!("more than {MAX_DEPTH} folders deep"));
            return Ok(());
        }
        for (name, kind) in entries {
            let child = rel.join(&name);
            if kind == Kind::Dir {
                let name = name.to_str().unwrap_or("");
                if all || name == "hooks" {
                    self.tree(git, &child, true, depth + 1, files)?;
                } else if !INERT.contains(&name) {
                    self.tree(git, &child, false, depth + 1, files)?;
                }
            } else if all || kind != Kind::File || POINTERS.iter().any(|p| name == *p) {
                if let Some(n) = self.node(&git.join(&child))? {
                    files.insert(child, n);
                }
            }
        }
        Ok(())
    }

    /// The entry at `rel`, never followed; a small regular file with its bytes.
    fn node(&mut self, rel: &Path) -> Result<Option<Node>, TripwireError> {
        let meta = match self.project.meta(rel) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.err("look at", rel, e)),
        };
        Ok(Some(match meta.kind {
            Kind::Dir => Node::Dir,
            Kind::Other => Node::Other,
            Kind::Symlink => match self.project.read_link(rel) {
                Ok(Some(target)) => Node::Symlink(target),
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.err("read the link", rel, e)),
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
        }))
    }
}
