//! `nix = true`: the host's `/nix/store` read-only and its Nix daemon's socket
//! (`NIX_REMOTE=daemon`): the sandbox can use every store path and ask the daemon to build or
//! fetch more, but not write the store itself. The default profile's `bin` (when the host has
//! one) is added to `PATH`.

use std::path::Path;

use wrapix_spec::{MountMode, SandboxPath};

use super::{missing, Provided};
use crate::error::SandboxError;
use crate::prepare::{Bind, SANDBOX_PATH};

pub const STORE: &str = "/nix/store";
pub const DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";
pub const DEFAULT_PROFILE: &str = "/nix/var/nix/profiles/default";

/// What the host has, checked under `host_root` (`/` in production, a fixture in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostNix {
    pub default_profile: bool,
}

/// Checks that the host has a Nix store and a running daemon; the error names the fix.
pub fn check(host_root: &Path) -> Result<HostNix, SandboxError> {
    let under = |p: &str| host_root.join(p.trim_start_matches('/'));
    if !under(STORE).is_dir() {
        return Err(missing(
            "nix = true mounts the host's /nix/store, and this host has no /nix/store",
            "install Nix in multi-user mode (https://nixos.org/download: sh <(curl -L https://nixos.org/nix/install) --daemon), or remove nix",
        ));
    }
    let is_socket = std::fs::metadata(under(DAEMON_SOCKET))
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    if !is_socket {
        return Err(missing(
            format!("nix = true needs the Nix daemon, and there is no socket at {DAEMON_SOCKET} (a single-user Nix has no daemon)"),
            "start it (sudo systemctl start nix-daemon, or install Nix in multi-user mode with --daemon), or remove nix",
        ));
    }
    Ok(HostNix {
        default_profile: under(DEFAULT_PROFILE).exists(),
    })
}

/// The binds and environment for a host that has `host`.
pub fn provide(host: HostNix, out: &mut Provided) {
    for (path, mode) in [
        (STORE, MountMode::ReadOnly),
        (DAEMON_SOCKET, MountMode::ReadOnly),
    ] {
        out.binds.push(Bind {
            source: path.into(),
            dest: SandboxPath::from_static(path),
            mode,
        });
    }
    out.env.insert("NIX_REMOTE".into(), "daemon".into());
    if host.default_profile {
        out.binds.push(Bind {
            source: DEFAULT_PROFILE.into(),
            dest: SandboxPath::from_static(DEFAULT_PROFILE),
            mode: MountMode::ReadOnly,
        });
        out.env.insert(
            "PATH".into(),
            format!("{SANDBOX_PATH}:{DEFAULT_PROFILE}/bin"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_without_nix_is_an_error_naming_the_fix() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let e = check(root.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no /nix/store"), "{e}");
        assert!(e.contains("--daemon"), "{e}");
        std::fs::create_dir_all(root.path().join("nix/store")).unwrap_or_else(|e| panic!("{e}"));
        let e = check(root.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("no socket at /nix/var/nix/daemon-socket/socket"),
            "{e}"
        );
        let sock = root.path().join("nix/var/nix/daemon-socket");
        std::fs::create_dir_all(&sock).unwrap_or_else(|e| panic!("{e}"));
        let _l = std::os::unix::net::UnixListener::bind(sock.join("socket"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check(root.path()).ok(),
            Some(HostNix {
                default_profile: false
            })
        );
    }
}
