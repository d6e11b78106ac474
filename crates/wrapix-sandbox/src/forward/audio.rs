//! `audio = true`: the host's sound server sockets, whichever it has: PulseAudio's (also what
//! PipeWire's `pipewire-pulse` serves) and PipeWire's native one. Only the sockets: no
//! runtime folder, no session bus. Inside, `PULSE_SERVER` and `PIPEWIRE_RUNTIME_DIR` name them.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use wrapix_spec::{MountMode, SandboxPath};

use super::{missing, Provided};
use crate::error::SandboxError;
use crate::prepare::Bind;

/// PulseAudio's socket inside the sandbox.
pub const SANDBOX_PULSE_SOCKET: &str = "/run/wrapix/pulse/native";
/// PipeWire's runtime folder inside the sandbox, holding only its socket.
pub const SANDBOX_PIPEWIRE_DIR: &str = "/run/wrapix/pipewire";

fn is_socket(p: &Path) -> bool {
    std::fs::metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// The host's PulseAudio socket: `$PULSE_SERVER` (`unix:PATH` or `PATH`) when set, else
/// `$XDG_RUNTIME_DIR/pulse/native`. `Err`: `PULSE_SERVER` names something not forwardable.
pub fn pulse_socket(env: &BTreeMap<String, String>) -> Result<Option<PathBuf>, SandboxError> {
    if let Some(server) = env.get("PULSE_SERVER").filter(|s| !s.is_empty()) {
        let path = server.strip_prefix("unix:").unwrap_or(server);
        if !path.starts_with('/') {
            return Err(missing(
                format!("PULSE_SERVER={server} is not a local socket: only a Unix socket is forwarded"),
                "unset PULSE_SERVER (the default socket is $XDG_RUNTIME_DIR/pulse/native) or point it at unix:/PATH",
            ));
        }
        let p = PathBuf::from(path);
        if !is_socket(&p) {
            return Err(missing(
                format!("PULSE_SERVER={server}: no socket there"),
                "start your sound server (pulseaudio --start), or fix PULSE_SERVER",
            ));
        }
        return Ok(Some(p));
    }
    Ok(env
        .get("XDG_RUNTIME_DIR")
        .map(|d| Path::new(d).join("pulse/native"))
        .filter(|p| p.is_absolute() && is_socket(p)))
}

/// The host's PipeWire socket: `$PIPEWIRE_RUNTIME_DIR` (else `$XDG_RUNTIME_DIR`) /
/// `$PIPEWIRE_REMOTE` (else `pipewire-0`).
pub fn pipewire_socket(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let dir = env
        .get("PIPEWIRE_RUNTIME_DIR")
        .or_else(|| env.get("XDG_RUNTIME_DIR"))?;
    let name = env
        .get("PIPEWIRE_REMOTE")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(String::as_str)
        .unwrap_or("pipewire-0");
    Some(Path::new(dir).join(name)).filter(|p| p.is_absolute() && is_socket(p))
}

/// `audio = true`: each socket the host has; neither is an error naming the fix.
pub fn provide(env: &BTreeMap<String, String>, out: &mut Provided) -> Result<(), SandboxError> {
    let pulse = pulse_socket(env)?;
    let pipewire = pipewire_socket(env);
    if pulse.is_none() && pipewire.is_none() {
        return Err(missing(
            "audio = true forwards your sound server, and this host has none running (no PulseAudio socket at $PULSE_SERVER or $XDG_RUNTIME_DIR/pulse/native, no PipeWire socket at $XDG_RUNTIME_DIR/pipewire-0)",
            "start it in your desktop session (pulseaudio --start, or systemctl --user start pipewire pipewire-pulse) and run wrapix from there, or remove audio",
        ));
    }
    if let Some(sock) = pulse {
        out.binds.push(Bind {
            source: sock,
            dest: SandboxPath::from_static(SANDBOX_PULSE_SOCKET),
            mode: MountMode::ReadOnly,
        });
        out.env.insert(
            "PULSE_SERVER".into(),
            format!("unix:{SANDBOX_PULSE_SOCKET}"),
        );
        // No cookie: the server admits a client of its own user by the socket's credentials
        // (SO_PEERCRED maps the sandbox's user back to yours), and the cookie would also open
        // a TCP listener of the same server, if it has one.
    }
    if let Some(sock) = pipewire {
        out.binds.push(Bind {
            source: sock,
            dest: SandboxPath::from_static(&format!("{SANDBOX_PIPEWIRE_DIR}/pipewire-0")),
            mode: MountMode::ReadOnly,
        });
        out.env
            .insert("PIPEWIRE_RUNTIME_DIR".into(), SANDBOX_PIPEWIRE_DIR.into());
        out.env
            .insert("PIPEWIRE_REMOTE".into(), "pipewire-0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sound_server_is_an_error_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = BTreeMap::from([(
            "XDG_RUNTIME_DIR".to_owned(),
            dir.path().to_string_lossy().into_owned(),
        )]);
        let mut out = Provided::default();
        let e = provide(&env, &mut out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("has none running"), "{e}");
        assert!(e.contains("pulseaudio --start"), "{e}");
        let env = BTreeMap::from([("PULSE_SERVER".to_owned(), "tcp:10.0.0.1".to_owned())]);
        let e = provide(&env, &mut out)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a local socket"), "{e}");
    }

    #[test]
    fn the_sockets_the_host_has() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("pulse")).unwrap_or_else(|e| panic!("{e}"));
        let _pulse = std::os::unix::net::UnixListener::bind(dir.path().join("pulse/native"))
            .unwrap_or_else(|e| panic!("{e}"));
        let env = BTreeMap::from([(
            "XDG_RUNTIME_DIR".to_owned(),
            dir.path().to_string_lossy().into_owned(),
        )]);
        let mut out = Provided::default();
        provide(&env, &mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.binds.len(), 1);
        assert_eq!(out.binds[0].source, dir.path().join("pulse/native"));
        assert_eq!(
            out.env.get("PULSE_SERVER").map(String::as_str),
            Some("unix:/run/wrapix/pulse/native")
        );
        assert!(!out.env.contains_key("PIPEWIRE_RUNTIME_DIR"));
        let _pw = std::os::unix::net::UnixListener::bind(dir.path().join("pipewire-0"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Provided::default();
        provide(&env, &mut out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.binds.len(), 2);
        assert_eq!(
            out.env.get("PIPEWIRE_RUNTIME_DIR").map(String::as_str),
            Some("/run/wrapix/pipewire")
        );
    }
}
