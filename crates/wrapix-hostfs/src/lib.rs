//! Host-side access to files a sandbox can write, without ever following a symlink it planted.
//!
//! Every read, write, creation, move or removal that wrapix does on the host below the
//! project folder or the agent's state folder goes through a [`Dir`]. See README.md.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// What went wrong, always with the full path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum HostFsError {
    /// A symlink where wrapix expects a file or a folder: it is never followed.
    #[error("{} is a symbolic link (or a folder on the way to it is); wrapix never follows links in folders a sandbox can write (fix: remove the link, and check what else the agent changed)", path.display())]
    Symlink { path: PathBuf },
    /// Not a regular file (a FIFO, a device, a socket, a folder) where one is expected.
    #[error("{} is a {found}, not a regular file (fix: remove it)", path.display())]
    NotRegular { path: PathBuf, found: &'static str },
    /// Not a folder where one is expected.
    #[error("{} is a {found}, not a folder (fix: remove it)", path.display())]
    NotDir { path: PathBuf, found: &'static str },
    /// Larger than the caller allows.
    #[error("{} is larger than {limit} bytes, which wrapix does not read (fix: remove or shorten it)", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// A relative path that is not made of plain names.
    #[error("{} is not a plain relative path (no `..`, no absolute paths)", path.display())]
    BadPath { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HostFsError {
    fn io(op: &'static str, path: PathBuf, e: Errno) -> Self {
        HostFsError::Io {
            op,
            path,
            source: e.into(),
        }
    }

    /// Whether the error is "no such file or folder".
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostFsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// Whether the error is "permission denied" (`EACCES`).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, HostFsError::Io { source, .. } if source.raw_os_error() == Some(Errno::ACCESS.raw_os_error()))
    }

    /// Whether the error is "the two paths are on different filesystems" (`EXDEV`), which a
    /// rename cannot cross.
    pub fn is_cross_device(&self) -> bool {
        matches!(self, HostFsError::Io { source, .. } if source.raw_os_error() == Some(Errno::XDEV.raw_os_error()))
    }
}

pub type Result<T> = std::result::Result<T, HostFsError>;

/// The kind of a directory entry, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "folder",
            Kind::Symlink => "symbolic link",
            Kind::Other => "special file (FIFO, socket or device)",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `lstat` says of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub dev: u64,
    pub ino: u64,
}

impl Meta {
    /// The metadata in a `stat` result.
    pub fn from_stat(st: &rustix::fs::Stat) -> Meta {
        #[allow(clippy::unnecessary_cast)]
        Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode as _)),
            size: st.st_size as u64,
            mode: st.st_mode as u32 & 0o7777,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// An open folder. Paths given to its methods are relative to it, plain names only, and no
/// symlink on the way is followed.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A handle that only names a folder on the way (`O_PATH`): usable as the base of `*at`
/// calls, never listed.
#[cfg(target_os = "linux")]
const PATH_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// macOS has no `O_PATH`: a folder on the way is opened `O_SEARCH` (search only, never
/// listed), which needs the search permission that git needs to go through it too.
#[cfg(target_os = "macos")]
const PATH_FLAGS: OFlags = SEARCH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// `O_SEARCH` (`O_EXEC | O_DIRECTORY`), which rustix does not name on macOS.
#[cfg(target_os = "macos")]
const SEARCH: OFlags = OFlags::from_bits_retain(libc::O_SEARCH as u32);

/// `mode` as a [`Mode`]: `mode_t` is 32 bits on Linux and 16 on macOS, permission bits fit both.
#[allow(clippy::unnecessary_cast)]
pub fn mode_of(mode: u32) -> Mode {
    Mode::from_raw_mode(mode as rustix::fs::RawMode)
}

impl Dir {
    /// Opens a folder the user chose (the project, wrapix's state folder). Symlinks in
    /// `path` itself are followed: it is trusted; nothing below it is.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| HostFsError::io("open the folder", path.to_owned(), e))?;
        Ok(Dir {
            fd,
            path: path.to_owned(),
        })
    }

    /// [`Dir::open`], creating the folder and its parents (mode `mode`) first when missing.
    pub fn create_trusted(path: &Path, mode: u32) -> Result<Dir> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|source| HostFsError::Io {
                op: "create the folder",
                path: path.to_owned(),
                source,
            })?;
        Self::open(path)
    }

    /// The folder's path, for messages and for handing to programs that take paths.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path` below this folder, for messages.
    pub fn display_path(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// The plain names of `rel`, or an error when it is not a plain relative path.
    fn names<'a>(&self, rel: &'a Path) -> Result<Vec<&'a OsStr>> {
        let mut out = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::CurDir => {}
                _ => {
                    return Err(HostFsError::BadPath {
                        path: self.display_path(rel),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Opens the folder that holds the last name of `rel`, and returns it with that name.
    /// `Ok(None)` when a folder on the way does not exist.
    fn parent_of<'a>(&self, rel: &'a Path) -> Result<Option<(DirRef<'_>, &'a OsStr)>> {
        let names = self.names(rel)?;
        let Some((last, parents)) = names.split_last() else {
            return Err(HostFsError::BadPath {
                path: self.display_path(rel),
            });
        };
        let mut cur = DirRef::Borrowed(self);
        let mut walked = PathBuf::new();
        for name in parents {
            walked.push(name);
            // O_PATH: a folder on the way only needs to be searchable, not listable (the
            // agent may have taken its read permission off; git would still go through).
            match rustix::fs::openat(cur.fd(), *name, PATH_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    cur = DirRef::Owned(Dir {
                        fd,
                        path: self.path.join(&walked),
                    })
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(self.classify(&walked, e, "open the folder")),
            }
        }
        Ok(Some((cur, last)))
    }

    /// Turns an `openat` error into a precise one: a symlink or a non-folder is named as such.
    fn classify(&self, rel: &Path, e: Errno, op: &'static str) -> HostFsError {
        let path = self.display_path(rel);
        if matches!(e, Errno::LOOP | Errno::NOTDIR) {
            if let Ok(Some(meta)) = self.meta(rel) {
                return match meta.kind {
                    Kind::Symlink => HostFsError::Symlink { path },
                    Kind::Dir => HostFsError::io(op, path, e),
                    found => HostFsError::NotDir {
                        path,
                        found: found.name(),
                    },
                };
            }
            if e == Errno::LOOP {
                return HostFsError::Symlink { path };
            }
        }
        HostFsError::io(op, path, e)
    }

    /// `lstat` of `rel` (a symlink is reported as one, not followed). `Ok(None)` when it, or
    /// a folder on the way, does not exist. A symlink on the way is an error.
    pub fn meta(&self, rel: &Path) -> Result<Option<Meta>> {
        let names = self.names(rel)?;
        if names.is_empty() {
            let st = rustix::fs::fstat(&self.fd)
                .map_err(|e| HostFsError::io("stat", self.path.clone(), e))?;
            return Ok(Some(Meta::from_stat(&st)));
        }
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        match rustix::fs::statat(parent.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::from_stat(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(HostFsError::io("stat", self.display_path(rel), e)),
        }
    }

    /// Opens the folder `rel`. `Ok(None)` when it does not exist; a symlink or a file there
    /// is an error.
    pub fn open_dir(&self, rel: &Path) -> Result<Option<Dir>> {
        if self.names(rel)?.is_empty() {
            return self.try_clone().map(Some);
        }
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        match rustix::fs::openat(parent.fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.display_path(rel),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.classify(rel, e, "open the folder")),
        }
    }

    /// A second handle on the same folder.
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|source| HostFsError::Io {
            op: "duplicate the handle of",
            path: self.path.clone(),
            source,
        })?;
        Ok(Dir {
            fd,
            path: self.path.clone(),
        })
    }

    /// Creates the folder `rel` and the folders on the way (each with `mode`), and opens it.
    /// An existing folder is fine; a symlink or a file on the way is an error.
    pub fn create_dir_all(&self, rel: &Path, mode: u32) -> Result<Dir> {
        let names = self.names(rel)?;
        let mut cur = self.try_clone()?;
        let mut walked = PathBuf::new();
        for name in names {
            walked.push(name);
            match rustix::fs::mkdirat(&cur.fd, name, mode_of(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(HostFsError::io(
                        "create the folder",
                        self.display_path(&walked),
                        e,
                    ))
                }
            }
            let fd = rustix::fs::openat(&cur.fd, name, DIR_FLAGS, Mode::empty())
                .map_err(|e| self.classify(&walked, e, "open the folder"))?;
            cur = Dir {
                fd,
                path: self.display_path(&walked),
            };
        }
        Ok(cur)
    }

    /// Opens `rel` with `flags` (plus `O_NOFOLLOW | O_CLOEXEC`) below its parent, and stats
    /// the result. `Ok(None)` when it does not exist.
    fn open_with(&self, rel: &Path, flags: OFlags) -> Result<Option<(OwnedFd, Meta)>> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(parent.fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.classify(rel, e, "open")),
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| HostFsError::io("stat", self.display_path(rel), e))?;
        Ok(Some((fd, Meta::from_stat(&st))))
    }

    /// An `O_PATH` handle on `rel` itself (a file or a folder; a symlink there is an error),
    /// with what it is: for binding exactly the object that was checked, by fd, instead of a
    /// path that could be swapped in between. `Ok(None)` when it does not exist.
    ///
    /// macOS has no `O_PATH`: there a folder is opened `O_SEARCH` (it needs its search
    /// permission) and a file `O_RDONLY | O_NONBLOCK | O_NOCTTY` (it needs its read
    /// permission; a FIFO does not block, a terminal is not taken as the controlling one).
    pub fn open_path(&self, rel: &Path) -> Result<Option<(OwnedFd, Meta)>> {
        if self.names(rel)?.is_empty() {
            #[cfg(target_os = "linux")]
            let flags = OFlags::PATH | OFlags::CLOEXEC;
            #[cfg(target_os = "macos")]
            let flags = SEARCH | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&self.fd, ".", flags, Mode::empty())
                .map_err(|e| HostFsError::io("open", self.path.clone(), e))?;
            let st = rustix::fs::fstat(&fd)
                .map_err(|e| HostFsError::io("stat", self.path.clone(), e))?;
            return Ok(Some((fd, Meta::from_stat(&st))));
        }
        #[cfg(target_os = "linux")]
        let opened = self.open_with(rel, OFlags::PATH)?;
        #[cfg(target_os = "macos")]
        let opened = match self.open_with(rel, SEARCH) {
            // Not a folder (a symlink is `Symlink`, never this): open it as a file.
            Err(HostFsError::NotDir { .. }) => {
                self.open_with(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?
            }
            r => r?,
        };
        let Some((fd, meta)) = opened else {
            return Ok(None);
        };
        if meta.kind == Kind::Symlink {
            return Err(HostFsError::Symlink {
                path: self.display_path(rel),
            });
        }
        Ok(Some((fd, meta)))
    }

    /// Opens the regular file `rel` for reading. `Ok(None)` when it does not exist.
    pub fn open_file(&self, rel: &Path) -> Result<Option<(std::fs::File, Meta)>> {
        // NONBLOCK: opening a FIFO the agent planted must not hang wrapix.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let Some((fd, meta)) = self.open_with(rel, flags)? else {
            return Ok(None);
        };
        if meta.kind != Kind::File {
            return Err(HostFsError::NotRegular {
                path: self.display_path(rel),
                found: meta.kind.name(),
            });
        }
        Ok(Some((std::fs::File::from(fd), meta)))
    }

    /// Reads the regular file `rel`, at most `limit` bytes. `Ok(None)` when it does not exist.
    pub fn read(&self, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((file, meta)) = self.open_file(rel)? else {
            return Ok(None);
        };
        let too_large = || HostFsError::TooLarge {
            path: self.display_path(rel),
            limit,
        };
        if meta.size > limit {
            return Err(too_large());
        }
        let mut buf = Vec::with_capacity(meta.size as usize);
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|source| HostFsError::Io {
                op: "read",
                path: self.display_path(rel),
                source,
            })?;
        if buf.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(Some(buf))
    }

    /// Replaces `rel` with `bytes` (mode `mode`): a temporary file beside it, fsync, rename.
    /// A symlink at `rel` is replaced itself, its target is never written.
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Err(HostFsError::io(
                "write",
                self.display_path(rel),
                Errno::NOENT,
            ));
        };
        let tmp = temp_name(name);
        let path = self.display_path(rel);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(parent.fd(), &tmp, flags, mode_of(mode))
            .map_err(|e| HostFsError::io("create a temporary file beside", path.clone(), e))?;
        let result = (|| -> std::result::Result<(), (&'static str, Errno)> {
            rustix::fs::fchmod(&fd, mode_of(mode)).map_err(|e| ("chmod", e))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes)
                .map_err(|e| ("write", Errno::from_io_error(&e).unwrap_or(Errno::IO)))?;
            rustix::fs::fsync(&f).map_err(|e| ("fsync", e))?;
            rustix::fs::renameat(parent.fd(), &tmp, parent.fd(), name)
                .map_err(|e| ("rename over", e))
        })();
        if let Err((op, e)) = result {
            let _ = rustix::fs::unlinkat(parent.fd(), &tmp, AtFlags::empty());
            return Err(HostFsError::io(op, path, e));
        }
        Ok(())
    }

    /// Writes `rel` in place (created or truncated, mode `mode` when created), without fsync:
    /// for small markers whose loss in a power cut is acceptable and whose cost is not (one
    /// per sandbox start). A symlink at `rel` is an error, never followed.
    pub fn write_unsynced(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Err(HostFsError::io(
                "write",
                self.display_path(rel),
                Errno::NOENT,
            ));
        };
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::TRUNC
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NONBLOCK;
        let fd = rustix::fs::openat(parent.fd(), name, flags, mode_of(mode))
            .map_err(|e| self.classify(rel, e, "write"))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| HostFsError::io("stat", self.display_path(rel), e))?;
        let kind = Meta::from_stat(&st).kind;
        if kind != Kind::File {
            return Err(HostFsError::NotRegular {
                path: self.display_path(rel),
                found: kind.name(),
            });
        }
        std::fs::File::from(fd)
            .write_all(bytes)
            .map_err(|source| HostFsError::Io {
                op: "write",
                path: self.display_path(rel),
                source,
            })
    }

    /// Creates `rel` with `bytes` only if nothing is there yet (`Ok(false)` when something is).
    pub fn create_new(&self, rel: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Err(HostFsError::io(
                "create",
                self.display_path(rel),
                Errno::NOENT,
            ));
        };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(parent.fd(), name, flags, mode_of(mode)) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => return Ok(false),
            Err(e) => return Err(HostFsError::io("create", self.display_path(rel), e)),
        };
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|source| HostFsError::Io {
                op: "write",
                path: self.display_path(rel),
                source,
            })?;
        Ok(true)
    }

    /// The entries of the folder `rel` (`.` and `..` left out), with their kinds, sorted by
    /// name. `Ok(None)` when it does not exist.
    pub fn list(&self, rel: &Path) -> Result<Option<Vec<(OsString, Kind)>>> {
        let Some(dir) = self.open_dir(rel)? else {
            return Ok(None);
        };
        dir.entries().map(Some)
    }

    /// The entries of this folder, sorted by name.
    pub fn entries(&self) -> Result<Vec<(OsString, Kind)>> {
        // A fresh descriptor of its own, so that listing never moves this handle's offset;
        // `Dir::new` reads from it directly (`read_from` would open a third one).
        let fd = match rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            // The agent took the read permission off since this handle was opened (or it was
            // opened as the owner): the handle itself still lists, from its start.
            Err(Errno::ACCESS) => {
                let fd = self.fd.try_clone().map_err(|e| HostFsError::Io {
                    op: "list",
                    path: self.path.clone(),
                    source: e,
                })?;
                rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))
                    .map_err(|e| HostFsError::io("list", self.path.clone(), e))?;
                fd
            }
            Err(e) => return Err(HostFsError::io("list", self.path.clone(), e)),
        };
        let mut out = Vec::new();
        let it =
            rustix::fs::Dir::new(fd).map_err(|e| HostFsError::io("list", self.path.clone(), e))?;
        for entry in it {
            let entry = entry.map_err(|e| HostFsError::io("list", self.path.clone(), e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_owned();
            let kind = match entry.file_type() {
                FileType::Unknown => {
                    match rustix::fs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    {
                        Ok(st) => Kind::of(FileType::from_raw_mode(st.st_mode as _)),
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(HostFsError::io("stat", self.path.join(&name), e)),
                    }
                }
                t => Kind::of(t),
            };
            out.push((name, kind));
        }
        out.sort();
        Ok(out)
    }

    /// The target of the symlink `rel`, never followed. `Ok(None)` when `rel` (or a folder on
    /// the way) does not exist; anything that is not a symlink is a [`HostFsError::Io`] with
    /// `EINVAL`, as `readlink` says.
    pub fn read_link(&self, rel: &Path) -> Result<Option<PathBuf>> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        match rustix::fs::readlinkat(parent.fd(), name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsString::from_vec(target.into_bytes())))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(HostFsError::io(
                "read the symbolic link",
                self.display_path(rel),
                e,
            )),
        }
    }

    /// Removes `rel` and everything below it, never following a symlink (a symlink is
    /// removed itself). Missing is fine.
    pub fn remove_all(&self, rel: &Path) -> Result<()> {
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(());
        };
        let parent = match parent {
            DirRef::Borrowed(d) => d.try_clone()?,
            DirRef::Owned(d) => d,
        };
        parent.remove_entry(name)
    }

    fn remove_entry(&self, name: &OsStr) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(HostFsError::io("remove", self.path.join(name), e)),
        }
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => {
                let child = Dir {
                    fd,
                    path: self.path.join(name),
                };
                for (entry, _) in child.entries()? {
                    child.remove_entry(&entry)?;
                }
            }
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(HostFsError::io("open the folder", self.path.join(name), e)),
        }
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(HostFsError::io(
                "remove the folder",
                self.path.join(name),
                e,
            )),
        }
    }

    /// Moves `rel` (whatever it is: a symlink is moved itself) to `to_rel` below `to`.
    /// Both must be on one filesystem; an existing `to_rel` is an error.
    pub fn rename(&self, rel: &Path, to: &Dir, to_rel: &Path) -> Result<()> {
        let Some((from_parent, from_name)) = self.parent_of(rel)? else {
            return Err(HostFsError::io(
                "move",
                self.display_path(rel),
                Errno::NOENT,
            ));
        };
        let Some((to_parent, to_name)) = to.parent_of(to_rel)? else {
            return Err(HostFsError::io(
                "move to",
                to.display_path(to_rel),
                Errno::NOENT,
            ));
        };
        rename_into(
            from_parent.fd(),
            from_name,
            &to_parent,
            to_name,
            &self.display_path(rel),
            &to.display_path(to_rel),
        )
    }

    /// The open file descriptor of this folder.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A folder handle that is either the caller's or one opened on the way.
enum DirRef<'a> {
    Borrowed(&'a Dir),
    Owned(Dir),
}

impl DirRef<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            DirRef::Borrowed(d) => d.fd.as_fd(),
            DirRef::Owned(d) => d.fd.as_fd(),
        }
    }
}

/// `renameat`, refusing to replace anything at the destination.
fn rename_into(
    from_parent: BorrowedFd<'_>,
    from_name: &OsStr,
    to_parent: &DirRef<'_>,
    to_name: &OsStr,
    from_path: &Path,
    to_path: &Path,
) -> Result<()> {
    if rustix::fs::statat(to_parent.fd(), to_name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Err(HostFsError::io("move to", to_path.to_owned(), Errno::EXIST));
    }
    rustix::fs::renameat(from_parent, from_name, to_parent.fd(), to_name)
        .map_err(|e| HostFsError::io("move", from_path.to_owned(), e))
}

/// `.NAME.wrapix-PID-N`: unique in this process, hidden, recognisable.
fn temp_name(name: &OsStr) -> OsString {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let mut out = OsString::from(".");
    out.push(name);
    out.push(format!(
        ".wrapix-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    out
}

mod owner;

// Linux only: they use Linux calls (`mknodat`, `set_thread_res_uid`, /proc), and macOS
// binaries cannot run here; the macOS code above is type-checked, not run (docs/macos.md).
#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests;
