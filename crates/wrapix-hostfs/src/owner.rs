//! Operations "as the owner". The agent runs as the same user as wrapix, so it can take the
//! permission bits off a folder it can write (`chmod 100 dir`, `chmod 500 .git`): the folder
//! then hides what is in it from wrapix's checks, or keeps wrapix from moving it away, while
//! git (which only needs to search it) still reads what is inside.
//!
//! wrapix owns those folders, so it may give itself the owner's bits back. Each operation here
//! does that for one call and restores the exact old mode at once:
//! - only for a folder that belongs to wrapix's effective user (anyone else's folder keeps
//!   its `EACCES`: a sandbox could not have made it);
//! - only after the plain operation failed with `EACCES`;
//! - only on a folder pinned by a descriptor opened without following links, so the mode that
//!   changes is that inode's, whatever happens to the names meanwhile;
//! - adding owner bits only (`u+r`, `u+w`, `u+x`), never removing or touching group and others.

#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{mode_of, rename_into, Dir, HostFsError, Result, DIR_FLAGS};

/// A handle that pins a folder (never a link) without needing its read permission: `O_PATH`
/// on Linux, which needs no permission on it at all; `O_SEARCH` on macOS (no `O_PATH`
/// there), which needs the owner's search bit, so a folder without it is not opened as the
/// owner there (an `EACCES` error, as for anyone else's folder).
#[cfg(target_os = "linux")]
const PIN_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
#[cfg(target_os = "macos")]
const PIN_FLAGS: OFlags = super::SEARCH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// The owner's read, write and search bits.
const R: u32 = 0o400;
const W: u32 = 0o200;
const X: u32 = 0o100;

/// Sets the mode of the inode behind `fd` (a folder), also when `fd` is an `O_PATH` handle:
/// then through its `/proc/self/fd` entry, which names exactly that inode.
/// On macOS the handle is an `O_SEARCH` one, which `fchmod` takes.
fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> std::result::Result<(), Errno> {
    match rustix::fs::fchmod(fd, mode_of(mode)) {
        #[cfg(target_os = "linux")]
        Err(Errno::BADF) => {
            rustix::fs::chmod(format!("/proc/self/fd/{}", fd.as_raw_fd()), mode_of(mode))
        }
        r => r,
    }
}

/// Runs `op` with the owner's `bits` added to the folder `fd` when it is a folder of wrapix's
/// effective user that lacks some of them, then restores its exact mode. `Ok(None)` (and `op`
/// not run) when that does not apply: nothing to retry. A failed restore is an error.
fn with_bits<T>(
    fd: BorrowedFd<'_>,
    bits: u32,
    op: impl FnOnce() -> T,
) -> std::result::Result<Option<T>, Errno> {
    let st = rustix::fs::fstat(fd)?;
    #[allow(clippy::unnecessary_cast)]
    let (mode, uid) = (st.st_mode as u32, st.st_uid as u32);
    if FileType::from_raw_mode(mode as _) != FileType::Directory
        || uid != rustix::process::geteuid().as_raw()
    {
        return Ok(None);
    }
    let old = mode & 0o7777;
    if old & bits == bits {
        return Ok(None);
    }
    chmod_fd(fd, old | bits)?;
    let out = op();
    chmod_fd(fd, old)?;
    Ok(Some(out))
}

/// Opens the folder `name` of `parent` for listing: as is, or else as its owner, with search
/// permission on `parent` and read and search permission on the folder for the time of the
/// open. An open folder stays listable ([`Dir::entries`]) after its mode is restored.
fn open_child(parent: BorrowedFd<'_>, name: &Path) -> std::result::Result<OwnedFd, Errno> {
    let attempt = || -> std::result::Result<OwnedFd, Errno> {
        match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Err(Errno::ACCESS) => {}
            r => return r,
        }
        // Pinned: a folder (O_DIRECTORY), never a link (O_NOFOLLOW); O_PATH needs no
        // permission on the folder itself.
        let pinned = rustix::fs::openat(parent, name, PIN_FLAGS, Mode::empty())?;
        // Reopened through the pin's /proc entry: the same inode, never the name again.
        #[cfg(target_os = "linux")]
        let reopen = || {
            rustix::fs::open(
                format!("/proc/self/fd/{}", pinned.as_raw_fd()),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        // macOS has no /proc: the pin's own `.` is the same inode, never the name again.
        #[cfg(target_os = "macos")]
        let reopen = || {
            rustix::fs::openat(
                &pinned,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        with_bits(pinned.as_fd(), R | X, reopen)?.unwrap_or(Err(Errno::ACCESS))
    };
    match attempt() {
        Err(Errno::ACCESS) => with_bits(parent, X, attempt)?.unwrap_or(Err(Errno::ACCESS)),
        r => r,
    }
}

impl Dir {
    /// [`Dir::open_dir`], and when that is refused (`EACCES`) for a folder that belongs to
    /// wrapix's effective user, opens it as its owner: the owner's read and search bits (and
    /// search on its parent) are added for the time of the open, and the exact old modes put
    /// back at once. Folders on the way only need to be searchable. Someone else's folder
    /// stays an error.
    pub fn open_dir_as_owner(&self, rel: &Path) -> Result<Option<Dir>> {
        match self.open_dir(rel) {
            Err(e) if e.is_permission_denied() => {}
            r => return r,
        }
        let Some((parent, name)) = self.parent_of(rel)? else {
            return Ok(None);
        };
        match open_child(parent.fd(), Path::new(name)) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.display_path(rel),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.classify(rel, e, "open the folder (as its owner)")),
        }
    }

    /// [`Dir::list`] through [`Dir::open_dir_as_owner`].
    pub fn list_as_owner(
        &self,
        rel: &Path,
    ) -> Result<Option<Vec<(std::ffi::OsString, super::Kind)>>> {
        let Some(dir) = self.open_dir_as_owner(rel)? else {
            return Ok(None);
        };
        dir.entries().map(Some)
    }

    /// [`Dir::rename`], and when that is refused (`EACCES`) because the agent took the write
    /// or search permission off the folder that holds `rel` (or, for a folder, off `rel`
    /// itself, whose `..` a move rewrites), does it as their owner: the owner's write and
    /// search bits are added for the time of the move, and the exact old modes put back.
    pub fn rename_as_owner(&self, rel: &Path, to: &Dir, to_rel: &Path) -> Result<()> {
        let first = match self.rename(rel, to, to_rel) {
            Err(e) if e.is_permission_denied() => e,
            r => return r,
        };
        let Some((from_parent, from_name)) = self.parent_of(rel)? else {
            return Err(first);
        };
        let Some((to_parent, to_name)) = to.parent_of(to_rel)? else {
            return Err(first);
        };
        let from_path = self.display_path(rel);
        let to_path = to.display_path(to_rel);
        let mv = || {
            rename_into(
                from_parent.fd(),
                from_name,
                &to_parent,
                to_name,
                &from_path,
                &to_path,
            )
        };
        // The moved entry itself, pinned without following it: only a folder gets bits.
        let moved = || -> Result<()> {
            match mv() {
                Err(e) if e.is_permission_denied() => {}
                r => return r,
            }
            #[cfg(target_os = "linux")]
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            // macOS: `O_SEARCH` pins folders only; anything else gets no bits anyway.
            #[cfg(target_os = "macos")]
            let flags = PIN_FLAGS;
            let pinned = match rustix::fs::openat(from_parent.fd(), from_name, flags, Mode::empty())
            {
                Ok(fd) => fd,
                #[cfg(target_os = "macos")]
                Err(Errno::NOTDIR | Errno::LOOP) => return Err(first_again(&from_path)),
                Err(e) => return Err(HostFsError::io("move", from_path.clone(), e)),
            };
            with_bits(pinned.as_fd(), W, mv)
                .map_err(|e| self.owner_error(rel, e))?
                .unwrap_or(Err(first_again(&from_path)))
        };
        match moved() {
            Err(e) if e.is_permission_denied() => with_bits(from_parent.fd(), W | X, moved)
                .map_err(|e| self.owner_error(rel, e))?
                .unwrap_or(Err(first)),
            r => r,
        }
    }

    fn owner_error(&self, rel: &Path, e: Errno) -> HostFsError {
        HostFsError::io(
            "change or restore the owner's permission bits on the folder of",
            self.display_path(rel),
            e,
        )
    }
}

fn first_again(path: &Path) -> HostFsError {
    HostFsError::io("move", path.to_owned(), Errno::ACCESS)
}
