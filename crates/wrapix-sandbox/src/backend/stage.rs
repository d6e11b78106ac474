//! Per-run folders for backends that take files by path, not by fd (podman, nspawn): the
//! generated files, the environment, the staged `/run/wrapix`. One private folder (0700) per
//! run, inside a parent that must be the user's own; removed when the run ends
//! ([`super::Staged`]).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::SandboxError;

/// Creates `stage` fresh (mode 0700). Its parent (`wrapix-UID`) must be this user's folder that
/// nobody else can write, not a link or a folder someone else made first.
pub fn private_dir(stage: &Path) -> Result<(), SandboxError> {
    let io = |what: &str, e| SandboxError::io(format!("{what} {}", stage.display()), e);
    if let Some(parent) = stage.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io("create", e))?;
        let meta = std::fs::symlink_metadata(parent).map_err(|e| io("inspect", e))?;
        if !meta.is_dir()
            || meta.uid() != nix::unistd::geteuid().as_raw()
            || meta.mode() & 0o022 != 0
        {
            return Err(SandboxError::Missing {
                what: format!(
                    "{} is not a folder of yours that only you can write (not a link)",
                    parent.display()
                ),
                fix: format!(
                    "remove it, or set XDG_RUNTIME_DIR to a private folder of yours ({})",
                    parent.display()
                ),
            });
        }
    }
    let _ = std::fs::remove_dir_all(stage);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(stage)
        .map_err(|e| io("create", e))
}

/// Writes `data` to a new file at `path` with `mode`.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), SandboxError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))?;
    f.write_all(data)
        .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))
}

/// One entry of a staged `/run/wrapix`.
pub enum RunDirEntry {
    Dir,
    /// An empty file to bind onto.
    File,
    Symlink(&'static str),
}

/// Builds a staged `/run/wrapix` at `dir` from `entries` (relative paths, parents first):
/// folders (0755), empty mount-point files, symlinks.
pub fn run_dir(dir: &Path, entries: &[(&str, RunDirEntry)]) -> Result<(), SandboxError> {
    let io = |what: &str, p: &Path, e| SandboxError::io(format!("{what} {}", p.display()), e);
    for (rel, entry) in entries {
        let p = dir.join(rel);
        match entry {
            RunDirEntry::Dir => {
                std::fs::create_dir_all(&p).map_err(|e| io("create", &p, e))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| io("protect", &p, e))?;
            }
            RunDirEntry::File => std::fs::write(&p, b"").map_err(|e| io("create", &p, e))?,
            RunDirEntry::Symlink(target) => {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("remove", &p, e)),
                }
                std::os::unix::fs::symlink(target, &p).map_err(|e| io("create", &p, e))?;
            }
        }
    }
    Ok(())
}

/// Mount points in a staged `/run/wrapix` (at `dir`, for the sandbox's `run_dir`) for every
/// bind and generated file of `run` whose destination is below it (the notification folder,
/// the egress proxy's socket folder, …): the staged folder is bound read-only, so the runtime
/// cannot make them itself. Folders for folders, empty files for files; what exists stays.
pub fn run_dir_mount_points(
    dir: &Path,
    run_dir: &str,
    run: &crate::prepare::Prepared,
) -> Result<(), SandboxError> {
    let io = |what: &str, p: &Path, e| SandboxError::io(format!("{what} {}", p.display()), e);
    let points = run
        .binds
        .iter()
        .map(|b| (b.dest.as_path(), b.source.is_dir()))
        .chain(run.files.iter().map(|f| (f.dest.as_path(), false)));
    for (dest, is_dir) in points {
        let Ok(rel) = dest.strip_prefix(run_dir) else {
            continue;
        };
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if rel.as_os_str().is_empty() || !plain {
            continue;
        }
        let p = dir.join(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        let mut parent = dir.to_owned();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(c);
            if std::fs::symlink_metadata(&parent).is_err() {
                std::fs::create_dir(&parent).map_err(|e| io("create", &parent, e))?;
                std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| io("protect", &parent, e))?;
            }
        }
        if is_dir {
            std::fs::create_dir(&p).map_err(|e| io("create", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io("protect", &p, e))?;
        } else {
            std::fs::write(&p, b"").map_err(|e| io("create", &p, e))?;
        }
    }
    Ok(())
}
