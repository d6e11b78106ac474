//! Is the user looking at the session's terminal?
//!
//! When a sandbox starts, the launcher records which window has the focus (the terminal the user
//! typed `wrapix` in) and, inside tmux, which pane. Later the daemon asks the same desktop which
//! window has the focus now; when it is the recorded one (and, with tmux, the pane is the active
//! one of an attached client), the notification is suppressed.
//!
//! Backends: niri (`$NIRI_SOCKET`), sway/i3 (`$SWAYSOCK`/`$I3SOCK`, i3 IPC), Hyprland
//! (`$HYPRLAND_INSTANCE_SIGNATURE`), X11 (`_NET_ACTIVE_WINDOW`), tmux. Any other desktop, or any
//! query that fails, never suppresses: a notification too many beats one lost.

mod hyprland;
mod niri;
mod sway;
pub mod tmux;
pub mod x11;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most time one focus query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// The terminal window a session was started from, on the desktop it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WindowRef {
    Niri {
        socket: PathBuf,
        id: Option<u64>,
    },
    Sway {
        socket: PathBuf,
        id: Option<i64>,
    },
    Hyprland {
        socket: PathBuf,
        address: Option<String>,
    },
    X11 {
        display: String,
        id: Option<u32>,
    },
    /// No graphical session (a console, SSH): only tmux can tell.
    None,
    /// A desktop wrapix cannot ask: never suppress.
    Unknown {
        name: String,
    },
}

/// A tmux pane: the server's socket and the pane id (`%3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmuxRef {
    pub socket: PathBuf,
    pub pane: String,
}

/// The answer of one focus query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Focus {
    Focused,
    NotFocused(String),
    /// Could not tell (the reason): treated as not focused.
    Unknown(String),
}

/// What the daemon does with a notification, and why (logged with `WRAPIX_NOTIFY_VERBOSE=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub suppress: bool,
    pub reason: String,
}

impl Decision {
    pub fn show(reason: impl Into<String>) -> Self {
        Decision {
            suppress: false,
            reason: reason.into(),
        }
    }
}

/// The desktop of this environment and its focused window now (called by the launcher).
pub fn detect(env: &BTreeMap<String, String>) -> WindowRef {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let Some(sock) = get("NIRI_SOCKET") {
        let socket = PathBuf::from(sock);
        let id = niri::focused_window(&socket).ok().flatten();
        return WindowRef::Niri { socket, id };
    }
    if let Some(sock) = get("SWAYSOCK").or_else(|| get("I3SOCK")) {
        let socket = PathBuf::from(sock);
        let id = sway::focused_window(&socket).ok().flatten();
        return WindowRef::Sway { socket, id };
    }
    if let Some(sig) = get("HYPRLAND_INSTANCE_SIGNATURE") {
        let socket = hyprland::socket_path(env.get("XDG_RUNTIME_DIR").map(String::as_str), sig);
        let address = hyprland::active_window(&socket).ok().flatten();
        return WindowRef::Hyprland { socket, address };
    }
    if get("WAYLAND_DISPLAY").is_some() {
        let name = get("XDG_CURRENT_DESKTOP")
            .cloned()
            .unwrap_or_else(|| "an unknown Wayland compositor".into());
        return WindowRef::Unknown { name };
    }
    if let Some(display) = get("DISPLAY") {
        let id = x11::active_window(display).ok().flatten();
        return WindowRef::X11 {
            display: display.clone(),
            id,
        };
    }
    if cfg!(target_os = "macos") {
        let name = get("TERM_PROGRAM")
            .map(|t| format!("macOS ({t})"))
            .unwrap_or_else(|| "macOS".into());
        return WindowRef::Unknown { name };
    }
    WindowRef::None
}

/// Whether the recorded window has the focus now.
pub fn window_focus(w: &WindowRef) -> Focus {
    fn compare<T: PartialEq + std::fmt::Debug>(
        what: &str,
        recorded: &Option<T>,
        now: Result<Option<T>, String>,
    ) -> Focus {
        let Some(recorded) = recorded else {
            return Focus::Unknown(format!(
                "{what}: no window had the focus when the session started"
            ));
        };
        match now {
            Ok(Some(n)) if &n == recorded => Focus::Focused,
            Ok(Some(n)) => Focus::NotFocused(format!(
                "{what}: window {n:?} has the focus, the session's is {recorded:?}"
            )),
            Ok(None) => Focus::NotFocused(format!("{what}: no window has the focus")),
            Err(e) => Focus::Unknown(format!("{what}: {e}")),
        }
    }
    match w {
        WindowRef::Niri { socket, id } => compare("niri", id, niri::focused_window(socket)),
        WindowRef::Sway { socket, id } => compare("sway", id, sway::focused_window(socket)),
        WindowRef::Hyprland { socket, address } => {
            compare("hyprland", address, hyprland::active_window(socket))
        }
        WindowRef::X11 { display, id } => compare("x11", id, x11::active_window(display)),
        WindowRef::None => Focus::Unknown("no graphical session".into()),
        WindowRef::Unknown { name } => {
            Focus::Unknown(format!("{name}: focus cannot be queried there"))
        }
    }
}

/// Suppress only when everything known about the session says the user is looking at it.
pub fn decide(window: &WindowRef, tmux: Option<&TmuxRef>) -> Decision {
    if let WindowRef::Unknown { name } = window {
        return Decision::show(format!("{name}: unknown desktops never suppress"));
    }
    let mut reasons = Vec::new();
    if *window != WindowRef::None {
        match window_focus(window) {
            Focus::Focused => reasons.push("terminal window focused".to_owned()),
            Focus::NotFocused(r) | Focus::Unknown(r) => return Decision::show(r),
        }
    }
    match tmux {
        Some(t) => match tmux::pane_focus(t) {
            Focus::Focused => reasons.push(format!("tmux pane {} active and attached", t.pane)),
            Focus::NotFocused(r) | Focus::Unknown(r) => return Decision::show(r),
        },
        None if *window == WindowRef::None => {
            return Decision::show("no graphical session and no tmux: nothing to watch")
        }
        None => {}
    }
    Decision {
        suppress: true,
        reason: reasons.join(", "),
    }
}

/// Runs `f` on a thread and gives up after [`QUERY_TIMEOUT`].
pub(crate) fn with_timeout<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("wrapix-focus".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    rx.recv_timeout(QUERY_TIMEOUT).map_err(|_| {
        format!(
            "{what} did not answer within {} ms",
            QUERY_TIMEOUT.as_millis()
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_desktops_never_suppress() {
        let env: BTreeMap<String, String> = [
            ("WAYLAND_DISPLAY".to_owned(), "wayland-0".to_owned()),
            ("XDG_CURRENT_DESKTOP".to_owned(), "GNOME".to_owned()),
            ("DISPLAY".to_owned(), ":0".to_owned()),
        ]
        .into();
        let w = detect(&env);
        assert_eq!(
            w,
            WindowRef::Unknown {
                name: "GNOME".into()
            }
        );
        assert!(!decide(&w, None).suppress);
    }

    #[test]
    fn nothing_to_watch_shows() {
        assert!(!decide(&WindowRef::None, None).suppress);
    }

    #[test]
    fn unreachable_desktop_shows() {
        let w = WindowRef::Niri {
            socket: "/nonexistent/niri.sock".into(),
            id: Some(3),
        };
        let d = decide(&w, None);
        assert!(!d.suppress, "{d:?}");
        let w = WindowRef::X11 {
            display: ":0".into(),
            id: None,
        };
        assert!(!decide(&w, None).suppress);
    }

    #[test]
    fn record_format_is_stable() {
        let w = WindowRef::Niri {
            socket: "/run/user/1000/niri.sock".into(),
            id: Some(7),
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap_or_default(),
            r#"{"kind":"niri","socket":"/run/user/1000/niri.sock","id":7}"#
        );
    }
}
