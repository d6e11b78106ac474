//! The `host` profile's `/etc`, assembled once into a cached folder and bound with one mount.
//!
//! Each bind mount costs bubblewrap ~0.25 ms, and the `host` profile used to bind ~30 `/etc`
//! entries one by one (more than the rest of the sandbox's set-up together). Instead, copies of
//! those entries and the generated `passwd` and `group` are kept in
//! `$XDG_CACHE_HOME/wrapix/etc/<key>/` (default `~/.cache/wrapix/etc/`, mode 0700), which the
//! backend binds read-only at `/etc`.
//!
//! - **Key**: the `lstat` of each top-level entry and of every folder and regular file in the
//!   trees below them (path, mtime, ctime, size, inode), plus the generated files' text. A
//!   rename, an addition or a removal in a folder changes the folder's mtime; an in-place edit
//!   changes the file's own. Symlinks are never changed in place (they are replaced, which
//!   changes their folder). What a walk keyed is remembered in `.trees.json` beside the folders
//!   (the `lstat` of each folder and regular file, per top-level folder): a later run only
//!   `lstat`s those again, and walks a tree again when any differs. That gives the same key
//!   (an entry added, removed or replaced below a folder changes that folder's mtime and
//!   ctime) without listing `/etc/alternatives` and `/etc/ssl/certs` (hundreds of links each,
//!   ~0.3 ms a start). The file is the user's own, like the folders whose names it leads to.
//! - **Copies**: folders recursively, symlinks as symlinks (never followed: `/etc/ssl/certs` is
//!   mostly links into `/usr/share`, `/etc/alternatives` into `/usr`), regular files copied,
//!   nothing else. Only what every user may read is copied (an unreadable `/etc/ssl/private`
//!   is left out, also for root), and without set-id bits. The copies are the user's own.
//! - **Live entries** stay separate binds of the host's file, on an empty mount point in the
//!   folder: `resolv.conf` (rewritten by DHCP or resolvconf), and any top-level symlink that
//!   points outside `/usr` (its target would not exist in the sandbox).
//! - Built in a temporary folder beside the others, synced, then renamed into place, so a
//!   half-built folder is never used. After a build, older folders are removed unless a run
//!   still uses them: each run holds a shared `flock` on its folder until it ends, and the
//!   clean-up takes an exclusive one first.
//!
//! Anything that goes wrong here is the caller's cue to bind the entries one by one as before.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::OFlags;
use sha2::{Digest, Sha256};
use wrapix_hostfs::{Dir, HostFsError, Kind, Meta};

/// Entries bound from the host on top of the assembled folder: files rewritten in place while
/// the system runs, so that a copy could be stale.
pub const LIVE: &[&str] = &["resolv.conf"];

/// Bump when the layout of an assembled folder changes, so old ones are not reused.
const FORMAT: &str = "wrapix-etc-1";

/// A temporary folder left this long (a build that crashed) is removed by the next build.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// An assembled `/etc`, held for the run: the shared lock keeps other wrapix processes from
/// removing it while this sandbox has it bound.
#[derive(Debug, Clone)]
pub struct AssembledEtc {
    /// The folder to bind read-only at `/etc`.
    pub dir: PathBuf,
    /// Host paths bound on top of it, as `(name in /etc, host path)`; each has an empty mount
    /// point of the same kind in `dir`.
    pub live: Vec<(OsString, PathBuf)>,
    _lock: Arc<File>,
}

impl AssembledEtc {
    /// An assembled `/etc` at `dir` held by nothing, for tests of what uses one.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path, live: &[(&str, &str)]) -> Self {
        AssembledEtc {
            dir: dir.to_owned(),
            live: live.iter().map(|(n, p)| (n.into(), p.into())).collect(),
            _lock: Arc::new(File::open("/").unwrap_or_else(|e| panic!("{e}"))),
        }
    }
}

/// The cache folder for assembled `/etc`s: `$XDG_CACHE_HOME/wrapix/etc`, or
/// `HOME/.cache/wrapix/etc`.
pub fn cache_root(env: &std::collections::BTreeMap<String, String>, home: &Path) -> PathBuf {
    env.get("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".cache"))
        .join("wrapix/etc")
}

/// What one top-level entry of the host's `/etc` becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Copied (a folder, a regular file, or a symlink into `/usr`).
    Copy,
    /// Bound from the host over a mount point (`dir`: a folder, else a file).
    Live { dir: bool },
}

/// The file in the cache folder that remembers what the last walk of each tree keyed.
const TREES: &str = ".trees.json";

/// What walking each top-level folder of `/etc` keyed: `(path under /etc, metadata as keyed)`
/// of the folder itself, then of every folder and regular file below it, in walk order.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Trees {
    format: String,
    trees: std::collections::BTreeMap<String, Vec<(String, String)>>,
    /// A tree was walked (again): worth saving.
    #[serde(skip)]
    changed: bool,
}

impl Trees {
    /// The remembered walks in `cache`; none when the file is missing or unreadable (it is a
    /// cache: without it, the trees are walked).
    fn load(cache: &Path) -> Trees {
        std::fs::read(cache.join(TREES))
            .ok()
            .and_then(|b| serde_json::from_slice::<Trees>(&b).ok())
            .filter(|t| t.format == FORMAT)
            .unwrap_or_default()
    }

    /// Saves them atomically (a temporary file renamed over the old one). Not synced: a file
    /// a crash truncated is not JSON, and only costs a walk.
    fn save(&self, root: &Dir) -> Result<(), HostFsError> {
        let bytes = serde_json::to_vec(&Trees {
            format: FORMAT.to_owned(),
            trees: self.trees.clone(),
            changed: false,
        })
        .map_err(|e| HostFsError::Io {
            op: "encode",
            path: root.display_path(Path::new(TREES)),
            source: std::io::Error::other(e),
        })?;
        let tmp = format!(".tmp-{TREES}-{}-{}", std::process::id(), nanos());
        write_file(root, OsStr::new(&tmp), &mut &bytes[..], 0o600)?;
        rustix::fs::renameat(root.fd(), tmp.as_str(), root.fd(), TREES).map_err(|e| {
            let _ = rustix::fs::unlinkat(root.fd(), tmp.as_str(), rustix::fs::AtFlags::empty());
            HostFsError::Io {
                op: "rename into place",
                path: root.display_path(Path::new(TREES)),
                source: e.into(),
            }
        })
    }

    /// Keys the top-level folder `name` (whose own metadata is `meta`, keyed by the caller):
    /// from the remembered walk when every folder and file in it is unchanged, else by
    /// walking it (and remembering that walk).
    fn key(
        &mut self,
        h: &mut Sha256,
        host_etc: &Dir,
        name: &str,
        meta: &Meta,
    ) -> Result<(), HostFsError> {
        if let Some(records) = self.trees.get(name) {
            if unchanged(host_etc, name, meta, records) {
                for (path, line) in &records[1..] {
                    key_line(h, Path::new(path), line);
                }
                return Ok(());
            }
        }
        let rel = Path::new(name);
        let mut records = Some(vec![(name.to_owned(), meta_line(meta))]);
        if let Some(sub) = host_etc.open_dir(rel)? {
            key_tree(h, &sub, rel, &mut records)?;
        }
        match records {
            Some(r) => self.trees.insert(name.to_owned(), r),
            // A name that is not UTF-8: this tree is walked every time.
            None => self.trees.remove(name),
        };
        self.changed = true;
        Ok(())
    }
}

/// Whether the remembered walk of `name` still holds: the folder's own metadata and that of
/// everything it recorded are the same (an `lstat` each, relative to `/etc`).
fn unchanged(host_etc: &Dir, name: &str, meta: &Meta, records: &[(String, String)]) -> bool {
    let Some(((top, top_line), below)) = records.split_first() else {
        return false;
    };
    top == name
        && *top_line == meta_line(meta)
        && below.iter().all(|(path, line)| {
            rustix::fs::statat(
                host_etc.fd(),
                path.as_str(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .is_ok_and(|st| meta_line(&Meta::from_stat(&st)) == *line)
        })
}

/// The entries of `names` under `host_etc`, what each becomes, and the cache key.
fn survey(
    host_etc: &Dir,
    names: &[&str],
    generated: &[(&str, &[u8])],
    trees: &mut Trees,
) -> Result<(Vec<(OsString, Plan)>, String), HostFsError> {
    let mut h = Sha256::new();
    h.update(FORMAT);
    let mut out = Vec::new();
    for name in names {
        let rel = Path::new(name);
        // Where a symlink leads, following links as bubblewrap's bind would.
        let followed = || std::fs::metadata(host_etc.path().join(rel));
        if LIVE.contains(name) {
            // Only its kind is in the key: its content is never copied.
            match &followed() {
                // Missing, or a dangling link: left out, as the per-entry binds did.
                Err(_) => h.update(format!("\0{name} live -")),
                Ok(m) => {
                    h.update(format!("\0{name} live {}", m.is_dir()));
                    out.push((OsString::from(name), Plan::Live { dir: m.is_dir() }));
                }
            }
            continue;
        }
        let Some(meta) = host_etc.meta(rel)? else {
            h.update(format!("\0{name} -"));
            continue;
        };
        key_meta(&mut h, rel, &meta);
        let plan = {
            match meta.kind {
                Kind::Symlink => {
                    let Ok(m) = &followed() else { continue };
                    let into_usr = host_etc.read_link(rel)?.is_some_and(|t| leads_into_usr(&t));
                    if into_usr {
                        Plan::Copy
                    } else {
                        Plan::Live { dir: m.is_dir() }
                    }
                }
                Kind::Dir => {
                    if readable_by_all(&meta) {
                        trees.key(&mut h, host_etc, name, &meta)?;
                    }
                    Plan::Copy
                }
                Kind::File => Plan::Copy,
                Kind::Other => continue,
            }
        };
        out.push((OsString::from(name), plan));
    }
    for (name, bytes) in generated {
        h.update(format!("\0{name} generated {}\0", bytes.len()));
        h.update(bytes);
    }
    let key: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((out, key))
}

fn key_meta(h: &mut Sha256, rel: &Path, m: &Meta) {
    key_line(h, rel, &meta_line(m));
}

fn key_line(h: &mut Sha256, rel: &Path, line: &str) {
    h.update(b"\0");
    h.update(rel.as_os_str().as_bytes());
    h.update(line);
}

/// What the key holds of one entry's metadata.
fn meta_line(m: &Meta) -> String {
    format!(
        " {:?} {} {}.{} {}.{} {} {:o}",
        m.kind, m.size, m.mtime.0, m.mtime.1, m.ctime.0, m.ctime.1, m.ino, m.mode
    )
}

/// Keys every folder and regular file below `dir` (symlinks are keyed by their folder), and
/// adds each to `records` (which becomes `None` at a name that is not UTF-8).
fn key_tree(
    h: &mut Sha256,
    dir: &Dir,
    rel: &Path,
    records: &mut Option<Vec<(String, String)>>,
) -> Result<(), HostFsError> {
    for (name, kind) in dir.entries()? {
        if !matches!(kind, Kind::Dir | Kind::File) {
            continue;
        }
        let Some(meta) = dir.meta(Path::new(&name))? else {
            continue;
        };
        let child = rel.join(&name);
        let line = meta_line(&meta);
        key_line(h, &child, &line);
        match (records.as_mut(), child.to_str()) {
            (Some(r), Some(path)) => r.push((path.to_owned(), line)),
            _ => *records = None,
        }
        if meta.kind == Kind::Dir && readable_by_all(&meta) {
            if let Some(sub) = dir.open_dir(Path::new(&name))? {
                key_tree(h, &sub, &child, records)?;
            }
        }
    }
    Ok(())
}

/// Whether every user may read it (and, for a folder, list and enter it).
fn readable_by_all(m: &Meta) -> bool {
    match m.kind {
        Kind::Dir => m.mode & 0o005 == 0o005,
        _ => m.mode & 0o004 != 0,
    }
}

/// Whether a top-level symlink of `/etc` leads into `/usr` (absolute, or `../usr/…`): its
/// target is in the sandbox too, so the link can be copied as it is.
fn leads_into_usr(target: &Path) -> bool {
    let abs = if target.is_absolute() {
        target.to_owned()
    } else {
        Path::new("/etc").join(target)
    };
    let mut norm = PathBuf::from("/");
    for c in abs.components() {
        match c {
            std::path::Component::ParentDir => {
                norm.pop();
            }
            std::path::Component::Normal(n) => norm.push(n),
            _ => {}
        }
    }
    norm.starts_with("/usr")
}

/// The assembled `/etc` for `names` (entries of `host_root/etc`) and the `generated` files,
/// from the cache in `cache`, built there first when missing and `build` is set (a dry run
/// never builds). `Ok(None)`: not built (dry run).
pub fn assemble(
    host_root: &Path,
    cache: &Path,
    names: &[&str],
    generated: &[(&str, &[u8])],
    build: bool,
) -> Result<Option<AssembledEtc>, HostFsError> {
    let host_etc = Dir::open(&host_root.join("etc"))?;
    let mut trees = Trees::load(cache);
    let (plans, key) = survey(&host_etc, names, generated, &mut trees)?;
    if trees.changed && build {
        // Best effort: without it, the next run walks the trees again.
        if let Err(e) = open_cache_root(cache).and_then(|root| trees.save(&root)) {
            tracing::debug!(
                "cannot remember the walk of /etc in {}: {e}",
                cache.display()
            );
        }
    }
    let dir = cache.join(&key);
    let lock = match lock_shared(&dir)? {
        Some(lock) => lock,
        None if !build => return Ok(None),
        None => {
            let root = open_cache_root(cache)?;
            build_into(&root, &host_etc, &key, &plans, generated)?;
            let lock = lock_shared(&dir)?.ok_or_else(|| HostFsError::Io {
                op: "use the assembled /etc",
                path: dir.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
            remove_old(&root, &key);
            lock
        }
    };
    let live = plans
        .iter()
        .filter(|(_, p)| matches!(p, Plan::Live { .. }))
        .map(|(n, _)| (n.clone(), host_etc.path().join(n)))
        .collect();
    Ok(Some(AssembledEtc {
        dir,
        live,
        _lock: Arc::new(lock),
    }))
}

/// Opens `dir` and takes a shared lock on it. `Ok(None)` when it does not exist, is being
/// removed, or was removed after it was opened.
fn lock_shared(dir: &Path) -> Result<Option<File>, HostFsError> {
    let io = |source| HostFsError::Io {
        op: "lock",
        path: dir.to_owned(),
        source,
    };
    let file = match File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock_shared() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // A folder removed after `open` has no links left.
    let meta = file.metadata().map_err(io)?;
    Ok((meta.is_dir() && meta.nlink() > 0).then_some(file))
}

/// The cache folder, created with mode 0700 when missing; it must be the user's own.
fn open_cache_root(cache: &Path) -> Result<Dir, HostFsError> {
    let root = Dir::create_trusted(cache, 0o700)?;
    let st = rustix::fs::fstat(root.fd()).map_err(|e| HostFsError::Io {
        op: "stat",
        path: cache.to_owned(),
        source: e.into(),
    })?;
    if st.st_uid != rustix::process::geteuid().as_raw() {
        return Err(HostFsError::Io {
            op: "use the cache folder (it is not yours)",
            path: cache.to_owned(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        });
    }
    if st.st_mode & 0o077 != 0 {
        rustix::fs::fchmod(root.fd(), wrapix_hostfs::mode_of(0o700)).map_err(|e| {
            HostFsError::Io {
                op: "chmod 0700",
                path: cache.to_owned(),
                source: e.into(),
            }
        })?;
    }
    Ok(root)
}

/// Builds the folder `key` in `root`: a temporary folder, filled and synced, then renamed.
/// Another process that renamed its own first wins; this one's is removed.
fn build_into(
    root: &Dir,
    host_etc: &Dir,
    key: &str,
    plans: &[(OsString, Plan)],
    generated: &[(&str, &[u8])],
) -> Result<(), HostFsError> {
    let tmp = format!(".tmp-{key}-{}-{}", std::process::id(), nanos());
    let result = (|| {
        let out = make_dir(root, OsStr::new(&tmp), 0o755)?;
        for (name, plan) in plans {
            match plan {
                Plan::Copy => copy_entry(host_etc, &out, name)?,
                Plan::Live { dir: true } => {
                    make_dir(&out, name, 0o755)?;
                }
                Plan::Live { dir: false } => write_file(&out, name, &mut std::io::empty(), 0o644)?,
            }
        }
        for (name, bytes) in generated {
            write_file(&out, OsStr::new(name), &mut &bytes[..], 0o644)?;
        }
        // The mount point for a resolv.conf generated for the run (DNS forwarding), when
        // the host has none to bind.
        for name in LIVE {
            if !plans.iter().any(|(n, _)| n == name) {
                write_file(&out, OsStr::new(name), &mut std::io::empty(), 0o644)?;
            }
        }
        // Everything written reaches the disk before the rename makes it the folder to use:
        // one `syncfs` costs one journal commit, a `fsync` per file one each (~0.8 s here).
        #[cfg(target_os = "linux")]
        rustix::fs::syncfs(out.fd()).map_err(|e| HostFsError::Io {
            op: "sync the filesystem of",
            path: out.path().to_owned(),
            source: e.into(),
        })?;
        // macOS has no `syncfs` (and no `host` profile: the apple backend refuses it).
        #[cfg(not(target_os = "linux"))]
        rustix::fs::sync();
        match rustix::fs::renameat(root.fd(), tmp.as_str(), root.fd(), key) {
            Ok(()) => sync(root),
            // Another wrapix process built the same folder first: use theirs.
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => Ok(()),
            Err(e) => Err(HostFsError::Io {
                op: "rename into place",
                path: root.display_path(Path::new(&tmp)),
                source: e.into(),
            }),
        }
    })();
    let _ = root.remove_all(Path::new(&tmp));
    result
}

/// The current time's nanoseconds, to tell temporary names of one process apart.
fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Copies the entry `name` of `from` into `to`, never following a symlink: folders
/// recursively, symlinks as symlinks, regular files by content; only what every user may
/// read; anything else is left out.
fn copy_entry(from: &Dir, to: &Dir, name: &OsStr) -> Result<(), HostFsError> {
    let rel = Path::new(name);
    let Some(meta) = from.meta(rel)? else {
        return Ok(());
    };
    match meta.kind {
        Kind::Symlink => {
            let Some(target) = from.read_link(rel)? else {
                return Ok(());
            };
            rustix::fs::symlinkat(target.as_os_str(), to.fd(), name).map_err(|e| HostFsError::Io {
                op: "create the symbolic link",
                path: to.display_path(rel),
                source: e.into(),
            })
        }
        Kind::Dir if readable_by_all(&meta) => {
            let Some(sub) = from.open_dir(rel)? else {
                return Ok(());
            };
            let out = make_dir(to, name, meta.mode & 0o777)?;
            for (child, _) in sub.entries()? {
                copy_entry(&sub, &out, &child)?;
            }
            Ok(())
        }
        Kind::File if readable_by_all(&meta) => {
            // Opened without following links and checked to be a regular file again.
            let Some((mut file, meta)) = from.open_file(rel)? else {
                return Ok(());
            };
            write_file(to, name, &mut file, meta.mode & 0o777)
        }
        _ => Ok(()),
    }
}

fn make_dir(parent: &Dir, name: &OsStr, mode: u32) -> Result<Dir, HostFsError> {
    let dir = parent.create_dir_all(Path::new(name), 0o700)?;
    rustix::fs::fchmod(dir.fd(), wrapix_hostfs::mode_of(mode)).map_err(|e| HostFsError::Io {
        op: "chmod",
        path: dir.path().to_owned(),
        source: e.into(),
    })?;
    Ok(dir)
}

/// Creates the new file `name` in `dir` (never through a symlink) with `content` and `mode`
/// (synced with the whole folder before it is renamed into place).
fn write_file(
    dir: &Dir,
    name: &OsStr,
    content: &mut dyn std::io::Read,
    mode: u32,
) -> Result<(), HostFsError> {
    let path = dir.display_path(Path::new(name));
    let io = |op, source| HostFsError::Io {
        op,
        path: path.clone(),
        source,
    };
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir.fd(), name, flags, wrapix_hostfs::mode_of(0o600))
        .map_err(|e| io("create", e.into()))?;
    rustix::fs::fchmod(&fd, wrapix_hostfs::mode_of(mode)).map_err(|e| io("chmod", e.into()))?;
    let mut file = File::from(fd);
    std::io::copy(content, &mut file).map_err(|e| io("copy into", e))?;
    file.flush().map_err(|e| io("write", e))
}

fn sync(dir: &Dir) -> Result<(), HostFsError> {
    rustix::fs::fsync(dir.fd()).map_err(|e| HostFsError::Io {
        op: "sync",
        path: dir.path().to_owned(),
        source: e.into(),
    })
}

/// Removes the cache's other folders that no run holds, and temporary folders of builds
/// that died. Best effort: whatever cannot be removed now is tried again after the next build.
fn remove_old(root: &Dir, keep: &str) {
    let Ok(entries) = root.entries() else { return };
    for (name, kind) in entries {
        let rel = Path::new(&name);
        // Temporary folders of builds, and files of saves of the trees' walk, that died.
        if name.as_bytes().starts_with(b".tmp-") && matches!(kind, Kind::Dir | Kind::File) {
            let old = root
                .meta(rel)
                .ok()
                .flatten()
                .and_then(|m| {
                    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(
                        u64::try_from(m.mtime.0).ok()?,
                    ))
                })
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
            if old {
                let _ = root.remove_all(rel);
            }
            continue;
        }
        if name == keep || kind != Kind::Dir {
            continue;
        }
        let Ok(Some(dir)) = root.open_dir(rel) else {
            continue;
        };
        let Ok(fd) = dir.fd().try_clone_to_owned() else {
            continue;
        };
        // Held until the folder is gone: a run that opens it meanwhile cannot lock it.
        let file = File::from(fd);
        if file.try_lock().is_ok() {
            tracing::debug!(
                "removing the old assembled /etc {}",
                root.display_path(rel).display()
            );
            let _ = root.remove_all(rel);
        }
    }
}

#[cfg(test)]
mod tests;
