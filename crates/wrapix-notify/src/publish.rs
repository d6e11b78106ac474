//! The daemon's socket as seen by sandboxes: a hard link in a folder of its own.
//!
//! A bind mount of the socket *file* pins the inode it found at launch; a restarted daemon
//! binds a new inode, and every running sandbox would keep the dead one. So sandboxes mount
//! the *folder* [`paths::published_dir`] (`$XDG_RUNTIME_DIR/wrapix/notify.d`), and each daemon
//! publishes its socket there as [`paths::PUBLISHED_NAME`]: a hard link to the inode it bound,
//! made under a temporary name and renamed over the old one, so the name always refers to a
//! whole socket and a new daemon (or one after a crash) replaces the old link in one step.
//! The folder holds nothing else (never the session registry).

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{paths, NotifyError};

/// Identifies an inode: what a daemon compares before removing a name it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The inode `path` names (not following a final symlink); `None` when there is none.
    pub fn of(path: &Path) -> Option<FileId> {
        std::fs::symlink_metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Links `socket` (which must be `id`) into `dir` as [`paths::PUBLISHED_NAME`], replacing
/// whatever had that name. Creates `dir` 0700 and checks it is ours. Returns the link.
pub fn publish(socket: &Path, id: FileId, dir: &Path) -> Result<PathBuf, NotifyError> {
    paths::private_dir(dir)?;
    let link = dir.join(paths::PUBLISHED_NAME);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        paths::PUBLISHED_NAME,
        std::process::id()
    ));
    // Left by an earlier daemon with our PID that died between link and rename.
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(NotifyError::io(format!("remove {}", tmp.display()), e)),
    }
    std::fs::hard_link(socket, &tmp).map_err(|e| {
        NotifyError::io(format!("link {} to {}", socket.display(), tmp.display()), e)
    })?;
    // The socket must still be the one we bound: a daemon that replaced it in the meantime
    // has published (or will publish) its own.
    if FileId::of(&tmp) != Some(id) {
        let _ = std::fs::remove_file(&tmp);
        return Err(NotifyError::Invalid(format!(
            "{} was replaced while this daemon started (another daemon?)",
            socket.display()
        )));
    }
    let renamed = std::fs::rename(&tmp, &link);
    // rename(2) of two names of one inode does nothing: the link was ours already.
    if renamed.is_err() || FileId::of(&tmp).is_some() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.map_err(|e| {
        NotifyError::io(format!("rename {} to {}", tmp.display(), link.display()), e)
    })?;
    Ok(link)
}

/// Removes `path` when it still names the inode `id` (a newer daemon may have replaced it).
/// Returns whether it removed it.
pub fn remove_if_ours(path: &Path, id: FileId) -> bool {
    FileId::of(path) == Some(id) && std::fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};

    use super::*;

    fn bound(path: &Path) -> (UnixListener, FileId) {
        let l = UnixListener::bind(path).unwrap_or_else(|e| panic!("bind {path:?}: {e}"));
        let id = FileId::of(path).unwrap_or_else(|| panic!("{path:?} has no inode"));
        (l, id)
    }

    #[test]
    fn the_link_reaches_the_socket_and_is_the_only_entry() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = t.path().join("notify.sock");
        let (listener, id) = bound(&sock);
        let dir = t.path().join("notify.d");
        let link = publish(&sock, id, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(link, dir.join("notify.sock"));
        assert_eq!(FileId::of(&link), Some(id));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.map(|e| e.file_name()).unwrap_or_default())
            .collect();
        assert_eq!(names, ["notify.sock"]);
        let mode = std::fs::metadata(&dir).map(|m| m.mode() & 0o777).ok();
        assert_eq!(mode, Some(0o700));
        UnixStream::connect(&link).unwrap_or_else(|e| panic!("connect: {e}"));
        assert!(listener.accept().is_ok());
    }

    #[test]
    fn a_new_daemon_replaces_the_link_of_one_that_died() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = t.path().join("notify.sock");
        let dir = t.path().join("notify.d");
        // The first daemon crashed: socket and link are left, nobody listens.
        let (old, old_id) = bound(&sock);
        let link = publish(&sock, old_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        drop(old);
        assert!(UnixStream::connect(&link).is_err());
        // The second removes the stale socket, binds a new one and publishes it.
        std::fs::remove_file(&sock).unwrap_or_else(|e| panic!("{e}"));
        let (new, new_id) = bound(&sock);
        assert_ne!(old_id, new_id);
        publish(&sock, new_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(FileId::of(&link), Some(new_id));
        UnixStream::connect(&link).unwrap_or_else(|e| panic!("connect: {e}"));
        assert!(new.accept().is_ok());
        // A temporary name left by a crash between link and rename does not stop a publish.
        let tmp = dir.join(format!(".notify.sock.{}.tmp", std::process::id()));
        std::fs::hard_link(&sock, &tmp).unwrap_or_else(|e| panic!("{e}"));
        publish(&sock, new_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(FileId::of(&tmp).is_none());
        assert_eq!(FileId::of(&link), Some(new_id));
    }

    #[test]
    fn cleanup_removes_only_its_own_inode() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = t.path().join("notify.sock");
        let dir = t.path().join("notify.d");
        let (a, a_id) = bound(&sock);
        let link = publish(&sock, a_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        // Daemon B takes over both names while A still runs.
        std::fs::remove_file(&sock).unwrap_or_else(|e| panic!("{e}"));
        let (_b, b_id) = bound(&sock);
        publish(&sock, b_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        // A stops: it leaves B's names alone.
        assert!(!remove_if_ours(&link, a_id));
        assert!(!remove_if_ours(&sock, a_id));
        drop(a);
        assert_eq!(FileId::of(&link), Some(b_id));
        assert_eq!(FileId::of(&sock), Some(b_id));
        // B stops: both names go, the folder stays (running sandboxes have it mounted).
        assert!(remove_if_ours(&link, b_id));
        assert!(remove_if_ours(&sock, b_id));
        assert!(FileId::of(&link).is_none() && FileId::of(&sock).is_none());
        assert!(dir.is_dir());
    }

    #[test]
    fn a_socket_replaced_before_publishing_is_not_published() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = t.path().join("notify.sock");
        let dir = t.path().join("notify.d");
        let (_a, a_id) = bound(&sock);
        std::fs::remove_file(&sock).unwrap_or_else(|e| panic!("{e}"));
        let (_b, b_id) = bound(&sock);
        assert!(publish(&sock, a_id, &dir).is_err());
        assert!(FileId::of(&dir.join("notify.sock")).is_none());
        publish(&sock, b_id, &dir).unwrap_or_else(|e| panic!("{e}"));
        let names = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(names, 1, "no temporary name left behind");
    }

    #[test]
    fn an_insecure_folder_is_refused() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sock = t.path().join("notify.sock");
        let (_l, id) = bound(&sock);
        // A symlink where the folder should be: refused, nothing is linked through it.
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
        let dir = t.path().join("notify.d");
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap_or_else(|e| panic!("{e}"));
        let err = publish(&sock, id, &dir).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("refusing")),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read_dir(&elsewhere).map(|d| d.count()).ok(),
            Some(0)
        );
        // A folder open to others is closed.
        let open = t.path().join("open.d");
        std::fs::create_dir(&open).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        publish(&sock, id, &open).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&open).map(|m| m.mode() & 0o777).ok();
        assert_eq!(mode, Some(0o700));
    }
}
