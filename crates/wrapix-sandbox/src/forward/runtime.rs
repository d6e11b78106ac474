//! Each run with a helper gets a private folder,
//! `$XDG_RUNTIME_DIR/wrapix/sandboxes/<id>/` (0700; `/tmp/wrapix-<uid>/…` without
//! `XDG_RUNTIME_DIR`), holding the helpers' sockets and `record.json`: which process runs the
//! sandbox and what it forwards, for `wrapix screenshot` and `wrapix ps`. The folders are
//! created without following symlinks and checked to be this user's, so another local user
//! cannot plant them; a record whose process is gone is stale and ignored (and removed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wrapix_spec::Spec;

use crate::error::SandboxError;

/// The record's file name in a run's folder.
pub const RECORD: &str = "record.json";
/// Records are small.
const RECORD_LIMIT: u64 = 64 * 1024;

/// What `wrapix ps` and `wrapix screenshot` learn about a running sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub id: String,
    /// The `wrapix` process that runs the sandbox.
    pub pid: u32,
    pub project: PathBuf,
    /// `x11`, `xvfb`, … when a display is forwarded.
    pub display: Option<String>,
    /// The private display's socket and Xauthority file (`display = "xvfb"`).
    pub x11_socket: Option<PathBuf>,
    pub xauthority: Option<PathBuf>,
    /// Published ports, as `wrapix config show` prints them.
    pub ports: Vec<String>,
}

/// The base folder of every run's folder.
pub fn base(env: &BTreeMap<String, String>) -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    env.get("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .map(|p| p.join("wrapix"))
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/wrapix-{uid}")))
        .join("sandboxes")
}

/// An empty, read-only folder of this user's (`$XDG_RUNTIME_DIR/wrapix/empty`, or
/// `/tmp/wrapix-<uid>/empty`), mounted over wrapix's own folders when a project contains them:
/// hidden, not just read-only, since a Unix socket in a read-only folder can still be
/// connected to (a manager's or a tmux server's would run commands on the host). Anything in
/// it is an error: it must show nothing.
pub fn empty_dir(env: &BTreeMap<String, String>) -> Result<PathBuf, SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    let sandboxes = base(env);
    let path = sandboxes
        .parent()
        .map(|p| p.join("empty"))
        .unwrap_or_else(|| sandboxes.join("empty"));
    private_dir(&path)?;
    let entries = std::fs::read_dir(&path)
        .map_err(|e| SandboxError::io(format!("list {}", path.display()), e))?;
    if entries.count() != 0 {
        return Err(super::missing(
            format!(
                "{} must be empty (wrapix mounts it over its own folders)",
                path.display()
            ),
            "remove what is in it and run again",
        ));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o500))
        .map_err(|e| SandboxError::io(format!("chmod {}", path.display()), e))?;
    Ok(path)
}

/// Creates `path` (and its missing parents) 0700 unless it exists, and checks that it is a
/// folder of this user's (not a symlink) that nobody else can write.
fn private_dir(path: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = rustix::process::getuid().as_raw();
    let mut todo = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        if std::fs::symlink_metadata(p).is_ok() {
            break;
        }
        todo.push(p);
        cur = p.parent();
    }
    for p in todo.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(SandboxError::io(format!("create {}", p.display()), e)),
        }
    }
    let m = std::fs::symlink_metadata(path)
        .map_err(|e| SandboxError::io(format!("look at {}", path.display()), e))?;
    if !m.file_type().is_dir() || m.uid() != uid || m.permissions().mode() & 0o022 != 0 {
        return Err(super::missing(
            format!(
                "{} is not a private folder of this user (a symlink, another user's, or writable by others)",
                path.display()
            ),
            "remove it (it belongs to wrapix's runtime folder) and run again",
        ));
    }
    Ok(())
}

/// One run's private folder.
#[derive(Debug)]
pub struct RunDir {
    pub id: String,
    pub path: PathBuf,
    /// Opened beneath [`base`] without following links.
    dir: Option<wrapix_hostfs::Dir>,
}

impl RunDir {
    /// A fresh folder for a run of `project` (`dry_run`: only named).
    pub fn create(
        env: &BTreeMap<String, String>,
        project: &Path,
        dry_run: bool,
    ) -> Result<Self, SandboxError> {
        let name: String = project
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let id = format!("{name}-{}", std::process::id());
        let base = base(env);
        let path = base.join(&id);
        if dry_run {
            return Ok(RunDir {
                id,
                path,
                dir: None,
            });
        }
        private_dir(&base)?;
        let parent = wrapix_hostfs::Dir::open(&base)?;
        // A folder left by a process of the same PID before (a reboot): start afresh.
        parent.remove_all(Path::new(&id))?;
        let dir = parent.create_dir_all(Path::new(&id), 0o700)?;
        Ok(RunDir {
            id,
            path,
            dir: Some(dir),
        })
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a file of the run (an Xauthority file), mode 0600.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), SandboxError> {
        if let Some(dir) = &self.dir {
            dir.write_atomic(Path::new(name), bytes, 0o600)?;
        }
        Ok(())
    }

    /// Creates an empty subfolder (0700).
    pub fn subdir(&self, name: &str) -> Result<PathBuf, SandboxError> {
        if let Some(dir) = &self.dir {
            dir.create_dir_all(Path::new(name), 0o700)?;
        }
        Ok(self.join(name))
    }

    pub fn write_record(&self, spec: &Spec) -> Result<(), SandboxError> {
        let fw = &spec.forward;
        let xvfb = fw.display == Some(wrapix_spec::Display::Xvfb);
        let record = Record {
            id: self.id.clone(),
            pid: std::process::id(),
            project: spec.project.clone(),
            display: fw.display.map(|d| d.to_string()),
            x11_socket: xvfb.then(|| self.join("x11/X0")),
            xauthority: xvfb.then(|| self.join("Xauthority")),
            ports: fw.ports.iter().map(|p| p.to_string()).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        bytes.push(b'\n');
        self.write(RECORD, &bytes)
    }

    /// Removes the folder and everything in it.
    pub fn remove(self) {
        if let Some(parent) = self.path.parent() {
            if let Ok(parent) = wrapix_hostfs::Dir::open(parent) {
                if let Err(e) = parent.remove_all(Path::new(&self.id)) {
                    tracing::debug!("removing {}: {e}", self.path.display());
                }
            }
        }
    }
}

/// The records of the running sandboxes of this user, by id. A record whose `wrapix` process
/// is gone is stale: skipped, and its folder removed.
pub fn running(env: &BTreeMap<String, String>) -> Result<Vec<Record>, SandboxError> {
    let base = base(env);
    let dir = match wrapix_hostfs::Dir::open(&base) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for (name, kind) in dir.entries()? {
        if kind != wrapix_hostfs::Kind::Dir {
            continue;
        }
        let rel = Path::new(&name).join(RECORD);
        let Some(bytes) = dir.read(&rel, RECORD_LIMIT)? else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
            tracing::warn!(
                "ignoring an unreadable record {}",
                base.join(&rel).display()
            );
            continue;
        };
        if alive(record.pid) && Path::new(&name) == Path::new(&record.id) {
            out.push(record);
        } else if !alive(record.pid) {
            let _ = dir.remove_all(Path::new(&name));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Whether `pid` is a running process.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
