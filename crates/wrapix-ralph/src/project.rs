//! The project's ralph files, all below one [`Dir`] opened on the project folder:
//!
//! ```text
//! specs/README.md            the spec format (written by `ralph start`)
//! specs/LABEL.md             one spec per label
//! .ralph/templates/*.md      the prompt templates (plan, ready, step)
//! .ralph/tasks/ID.toml       one file per task (see crate::tracker)
//! .ralph/lock                taken (flock) around every tracker change
//! .ralph/progress.md         one line per step result, newest last
//! .ralph/logs/ID-N.log       each agent run's output and check output
//! .ralph/STOP                `ralph loop` stops before its next step when this exists
//! ```

use std::path::{Path, PathBuf};

use wrapix_hostfs::Dir;

use crate::error::RalphError;

/// Largest spec, template or task file read (they are prompts and notes, not data).
pub const TEXT_LIMIT: u64 = 1 << 20;
/// Largest log read back (`ralph logs`).
pub const LOG_LIMIT: u64 = 64 << 20;
pub const RALPH_DIR: &str = ".ralph";
pub const SPECS_DIR: &str = "specs";

/// An opened project folder.
#[derive(Debug)]
pub struct Project {
    pub dir: Dir,
}

impl Project {
    /// Opens `path` (a folder the user chose: trusted, nothing below it is).
    pub fn open(path: &Path) -> Result<Project, RalphError> {
        let dir = Dir::open(path).map_err(|e| RalphError::fs("open the project", path, e))?;
        Ok(Project { dir })
    }

    /// The project of `start`: the nearest folder from `cwd` up that has `.ralph/`, else `cwd`.
    pub fn find(cwd: &Path) -> PathBuf {
        cwd.ancestors()
            .find(|d| {
                std::fs::symlink_metadata(d.join(RALPH_DIR)).is_ok_and(|m| m.file_type().is_dir())
            })
            .unwrap_or(cwd)
            .to_owned()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `.ralph/` must exist (made by `ralph start`).
    pub fn require_started(&self) -> Result<(), RalphError> {
        match self.dir.meta(Path::new(RALPH_DIR)) {
            Ok(Some(m)) if m.kind == wrapix_hostfs::Kind::Dir => Ok(()),
            Ok(_) => Err(RalphError::usage(
                format!("{} has no .ralph folder", self.path().display()),
                "run `ralph start` in the project first",
            )),
            Err(e) => Err(RalphError::fs(
                "look at",
                self.dir.display_path(Path::new(RALPH_DIR)),
                e,
            )),
        }
    }

    /// A text file below the project, `None` when missing. Not UTF-8 is malformed.
    pub fn read_text(&self, rel: &Path, limit: u64) -> Result<Option<String>, RalphError> {
        let bytes = self
            .dir
            .read(rel, limit)
            .map_err(|e| RalphError::fs("read", self.dir.display_path(rel), e))?;
        match bytes {
            None => Ok(None),
            Some(b) => String::from_utf8(b).map(Some).map_err(|e| {
                let text = String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()])
                    .into_owned();
                RalphError::malformed(
                    rel.display().to_string(),
                    crate::error::line_of(&text, text.len()),
                    "not UTF-8 text",
                    "save the file as UTF-8",
                )
            }),
        }
    }

    /// Replaces `rel` atomically (temporary file, fsync, rename), creating its folder.
    pub fn write(&self, rel: &Path, bytes: &[u8]) -> Result<(), RalphError> {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.mkdir(parent)?;
        }
        self.dir
            .write_atomic(rel, bytes, 0o644)
            .map_err(|e| RalphError::fs("write", self.dir.display_path(rel), e))
    }

    /// Creates `rel` with `bytes` unless something is there: `false` when it was.
    pub fn create(&self, rel: &Path, bytes: &[u8]) -> Result<bool, RalphError> {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.mkdir(parent)?;
        }
        self.dir
            .create_new(rel, bytes, 0o644)
            .map_err(|e| RalphError::fs("create", self.dir.display_path(rel), e))
    }

    pub fn mkdir(&self, rel: &Path) -> Result<Dir, RalphError> {
        self.dir
            .create_dir_all(rel, 0o755)
            .map_err(|e| RalphError::fs("create the folder", self.dir.display_path(rel), e))
    }

    /// Plain file names in the folder `rel` (sorted), `[]` when it is missing.
    pub fn files(&self, rel: &Path) -> Result<Vec<String>, RalphError> {
        let list = self
            .dir
            .list(rel)
            .map_err(|e| RalphError::fs("list", self.dir.display_path(rel), e))?;
        Ok(list
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, k)| *k == wrapix_hostfs::Kind::File)
            .filter_map(|(n, _)| n.into_string().ok())
            .collect())
    }

    /// Every entry of the folder `rel` with its kind (sorted), `[]` when it is missing.
    pub fn entries(&self, rel: &Path) -> Result<Vec<(String, wrapix_hostfs::Kind)>, RalphError> {
        let list = self
            .dir
            .list(rel)
            .map_err(|e| RalphError::fs("list", self.dir.display_path(rel), e))?;
        Ok(list
            .unwrap_or_default()
            .into_iter()
            .map(|(n, k)| (n.to_string_lossy().into_owned(), k))
            .collect())
    }

    pub fn exists(&self, rel: &Path) -> Result<bool, RalphError> {
        self.dir
            .meta(rel)
            .map(|m| m.is_some())
            .map_err(|e| RalphError::fs("look at", self.dir.display_path(rel), e))
    }

    pub fn remove(&self, rel: &Path) -> Result<(), RalphError> {
        self.dir
            .remove_all(rel)
            .map_err(|e| RalphError::fs("remove", self.dir.display_path(rel), e))
    }

    /// The labels of the specs (`specs/LABEL.md`, README.md excepted).
    pub fn spec_labels(&self) -> Result<Vec<String>, RalphError> {
        Ok(self
            .files(Path::new(SPECS_DIR))?
            .into_iter()
            .filter(|n| n != "README.md")
            .filter_map(|n| n.strip_suffix(".md").map(str::to_owned))
            .collect())
    }

    /// `specs/LABEL.md` (checked label).
    pub fn spec_path(label: &str) -> PathBuf {
        Path::new(SPECS_DIR).join(format!("{label}.md"))
    }

    /// The text of the spec `label`; a missing spec is bad input.
    pub fn spec(&self, label: &str) -> Result<String, RalphError> {
        check_label(label)?;
        let rel = Self::spec_path(label);
        self.read_text(&rel, TEXT_LIMIT)?.ok_or_else(|| {
            RalphError::usage(
                format!("no spec {}", rel.display()),
                format!("write it with `ralph plan {label}`, or name an existing spec"),
            )
        })
    }

    /// Appends `line` to `.ralph/progress.md` (call under the tracker lock).
    pub fn progress(&self, line: &str) -> Result<(), RalphError> {
        let rel = Path::new(RALPH_DIR).join("progress.md");
        let mut text = self.read_text(&rel, TEXT_LIMIT)?.unwrap_or_default();
        // Bounded: the oldest lines go first.
        while text.len() as u64 > TEXT_LIMIT / 2 {
            match text.find('\n') {
                Some(i) => {
                    text.drain(..=i);
                }
                None => text.clear(),
            }
        }
        let stamp = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now());
        text.push_str(&format!("- {stamp} {}\n", one_line(line)));
        self.write(&rel, text.as_bytes())
    }

    /// The last `n` lines of `.ralph/progress.md`.
    pub fn recent_progress(&self, n: usize) -> Result<String, RalphError> {
        let rel = Path::new(RALPH_DIR).join("progress.md");
        let text = self.read_text(&rel, TEXT_LIMIT)?.unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
    }
}

/// A label: a file name in `specs/` (letters, digits, `-`, `_`, `.` not first).
pub fn check_label(label: &str) -> Result<(), RalphError> {
    let ok = !label.is_empty()
        && label.len() <= 64
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RalphError::usage(
            format!("bad spec label {:?}", crate::tracker::escape(label)),
            "use letters, digits, '-', '_' and '.' (not first), at most 64",
        ))
    }
}

/// Text on one line, control characters escaped (it came from the agent).
pub fn one_line(s: &str) -> String {
    crate::tracker::escape(s.trim())
}

/// What a walk of the project saw of each file (for "what did the agent change").
pub type Snapshot = std::collections::BTreeMap<String, (u64, (i64, i64), u64)>;

/// The most entries a [`Project::snapshot`] looks at.
const SNAPSHOT_MAX: usize = 200_000;

impl Project {
    /// Size, mtime and inode of every entry below the project, except the top-level names in
    /// `skip`; symlinks are recorded, never followed.
    pub fn snapshot(&self, skip: &[&str]) -> Result<Snapshot, RalphError> {
        let mut out = Snapshot::new();
        let mut stack: Vec<(String, Dir)> = vec![(
            String::new(),
            self.dir
                .try_clone()
                .map_err(|e| RalphError::fs("open", self.path(), e))?,
        )];
        while let Some((prefix, dir)) = stack.pop() {
            let entries = dir
                .entries()
                .map_err(|e| RalphError::fs("list", dir.path(), e))?;
            for (name, kind) in entries {
                let name = name.to_string_lossy().into_owned();
                if prefix.is_empty() && skip.contains(&name.as_str()) {
                    continue;
                }
                if out.len() >= SNAPSHOT_MAX {
                    return Ok(out);
                }
                let rel = format!("{prefix}{name}");
                let meta = dir.meta(Path::new(&name)).map_err(|e| {
                    RalphError::fs("look at", dir.display_path(Path::new(&name)), e)
                })?;
                if let Some(m) = meta {
                    out.insert(rel.clone(), (m.size, m.mtime, m.ino));
                }
                if kind == wrapix_hostfs::Kind::Dir {
                    if let Ok(Some(sub)) = dir.open_dir(Path::new(&name)) {
                        stack.push((format!("{rel}/"), sub));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The paths that differ between two snapshots (added, removed or changed).
pub fn changed(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}
