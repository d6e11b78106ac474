//! Where the daemon's socket and the session registry live on the host.
//!
//! * Linux: `$XDG_RUNTIME_DIR/wrapix/notify.sock`, the same socket published for sandboxes in
//!   `$XDG_RUNTIME_DIR/wrapix/notify.d/` (see [`crate::publish`]), and
//!   `$XDG_RUNTIME_DIR/wrapix/sessions/`.
//! * macOS: the socket in `$TMPDIR/wrapix/` (per-user there), sessions in
//!   `$XDG_DATA_HOME/wrapix/sessions/` (default `~/.local/share`).
//! * Without `XDG_RUNTIME_DIR`: `/tmp/wrapix-<uid>/`.
//!
//! Every folder is created 0700 and must be owned by the current user.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::NotifyError;

/// The socket path inside every sandbox: a symlink to [`SANDBOX_LINK_TARGET`].
pub const SANDBOX_SOCKET: &str = "/run/wrapix/notify.sock";
/// Where every sandbox mounts [`published_dir`] (read-only).
pub const SANDBOX_DIR: &str = "/run/wrapix/notify.d";
/// What the sandbox's [`SANDBOX_SOCKET`] points to (relative to `/run/wrapix`).
pub const SANDBOX_LINK_TARGET: &str = "notify.d/notify.sock";
/// The name of the daemon's socket in [`published_dir`].
pub const PUBLISHED_NAME: &str = "notify.sock";
/// Environment variable naming the socket the client uses.
pub const ENV_SOCKET: &str = "WRAPIX_NOTIFY_SOCKET";
/// Environment variable naming a TCP address (`HOST:PORT`) the client uses (VM backends).
pub const ENV_TCP: &str = "WRAPIX_NOTIFY_TCP";
/// Environment variable carrying the session id the launcher registered.
pub const ENV_SESSION: &str = "WRAPIX_SESSION_ID";
/// The default TCP port for VM backends.
pub const DEFAULT_TCP_PORT: u16 = 5959;

/// The host-side folder holding the socket: `$XDG_RUNTIME_DIR/wrapix`.
pub fn runtime_dir(env: &BTreeMap<String, String>) -> PathBuf {
    let base = env
        .get("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    #[cfg(target_os = "macos")]
    let base = base.or_else(|| {
        env.get("TMPDIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    });
    match base {
        Some(b) => b.join("wrapix"),
        None => PathBuf::from(format!("/tmp/wrapix-{}", nix::unistd::getuid())),
    }
}

/// The daemon's Unix socket on the host.
pub fn host_socket(env: &BTreeMap<String, String>) -> PathBuf {
    runtime_dir(env).join("notify.sock")
}

/// The folder a daemon on `socket` publishes it in, for sandboxes: `notify.d` beside it
/// (`$XDG_RUNTIME_DIR/wrapix/notify.d` for the default socket).
pub fn published_dir(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/"))
        .join("notify.d")
}

/// The session registry folder.
pub fn sessions_dir(env: &BTreeMap<String, String>) -> PathBuf {
    if cfg!(target_os = "macos") {
        let data = env
            .get("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".local/share")));
        if let Some(d) = data {
            return d.join("wrapix/sessions");
        }
    }
    runtime_dir(env).join("sessions")
}

/// The process environment as a map (non-UTF-8 entries skipped).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Creates `dir` (and parents) 0700, and checks that it is ours and closed to others.
pub fn private_dir(dir: &Path) -> Result<(), NotifyError> {
    let io = |e| NotifyError::io(format!("create {}", dir.display()), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let uid = nix::unistd::getuid().as_raw();
    if !meta.is_dir() || meta.uid() != uid {
        return Err(NotifyError::Insecure {
            path: dir.to_owned(),
            problem: format!(
                "it is not a folder owned by uid {uid} (owner {}); remove it",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_under_runtime_dir() {
        let env: BTreeMap<String, String> =
            [("XDG_RUNTIME_DIR".to_owned(), "/run/user/1000".to_owned())].into();
        assert_eq!(
            host_socket(&env),
            PathBuf::from("/run/user/1000/wrapix/notify.sock")
        );
        if cfg!(target_os = "linux") {
            assert_eq!(
                sessions_dir(&env),
                PathBuf::from("/run/user/1000/wrapix/sessions")
            );
        }
        assert_eq!(
            published_dir(&host_socket(&env)),
            PathBuf::from("/run/user/1000/wrapix/notify.d")
        );
        assert_eq!(
            Path::new(SANDBOX_DIR).join(PUBLISHED_NAME),
            Path::new(SANDBOX_SOCKET)
                .parent()
                .map(|p| p.join(SANDBOX_LINK_TARGET))
                .unwrap_or_default()
        );
        let none = BTreeMap::new();
        assert!(host_socket(&none).starts_with("/tmp"));
    }

    #[test]
    fn private_dir_tightens_mode() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = t.path().join("a/b");
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        private_dir(&d).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&d).map(|m| m.mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o700);
    }
}
