//! `display = "wayland"`: the compositor's socket of `$WAYLAND_DISPLAY` only (no X: no
//! `DISPLAY`, no Xwayland socket), at an absolute path named by `WAYLAND_DISPLAY` inside
//! (libwayland takes an absolute path since 1.15).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, SandboxPath};

use super::{missing, Provided};
use crate::error::SandboxError;
use crate::prepare::Bind;

/// The compositor's socket inside the sandbox.
pub const SANDBOX_WAYLAND_SOCKET: &str = "/run/wrapix/wayland/wayland-0";

/// The host compositor's socket: `$WAYLAND_DISPLAY` (absolute, or relative to
/// `$XDG_RUNTIME_DIR`).
pub fn host_socket(env: &BTreeMap<String, String>) -> Result<PathBuf, SandboxError> {
    let name = env
        .get("WAYLAND_DISPLAY")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            missing(
                "display = \"wayland\" forwards the compositor of $WAYLAND_DISPLAY, and WAYLAND_DISPLAY is not set",
                "run wrapix from your Wayland session, or use display = \"xvfb\" for a private display",
            )
        })?;
    let socket = if Path::new(name).is_absolute() {
        PathBuf::from(name)
    } else {
        let dir = env
            .get("XDG_RUNTIME_DIR")
            .filter(|d| Path::new(d).is_absolute())
            .ok_or_else(|| {
                missing(
                    format!("WAYLAND_DISPLAY={name} is relative to XDG_RUNTIME_DIR, which is not set"),
                    "run wrapix from your Wayland session (XDG_RUNTIME_DIR set), or set WAYLAND_DISPLAY to the socket's absolute path",
                )
            })?;
        Path::new(dir).join(name)
    };
    let is_socket = std::fs::metadata(&socket)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    if !is_socket {
        return Err(missing(
            format!(
                "WAYLAND_DISPLAY={name}: no compositor socket at {}",
                socket.display()
            ),
            "start your compositor (or fix WAYLAND_DISPLAY), or use display = \"xvfb\"",
        ));
    }
    Ok(socket)
}

/// `display = "wayland"`.
pub fn provide(env: &BTreeMap<String, String>, out: &mut Provided) -> Result<(), SandboxError> {
    let socket = host_socket(env)?;
    out.binds.push(Bind {
        source: socket,
        dest: SandboxPath::from_static(SANDBOX_WAYLAND_SOCKET),
        mode: MountMode::ReadOnly,
    });
    out.env
        .insert("WAYLAND_DISPLAY".into(), SANDBOX_WAYLAND_SOCKET.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compositors_socket_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let _l = std::os::unix::net::UnixListener::bind(dir.path().join("wayland-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        let env = BTreeMap::from([
            ("WAYLAND_DISPLAY".to_owned(), "wayland-1".to_owned()),
            (
                "XDG_RUNTIME_DIR".to_owned(),
                dir.path().to_string_lossy().into_owned(),
            ),
        ]);
        let mut out = Provided::default();
        provide(&env, &mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.binds.len(), 1);
        assert_eq!(out.binds[0].source, dir.path().join("wayland-1"));
        assert_eq!(
            out.env.keys().collect::<Vec<_>>(),
            ["WAYLAND_DISPLAY"],
            "no DISPLAY, nothing of X"
        );
        let e = provide(&BTreeMap::new(), &mut out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("WAYLAND_DISPLAY is not set"), "{e}");
        let env = BTreeMap::from([("WAYLAND_DISPLAY".to_owned(), "/nope/wayland-9".to_owned())]);
        let e = provide(&env, &mut out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no compositor socket at /nope/wayland-9"), "{e}");
    }
}
