//! X11: the window manager publishes the focused window in the root window's
//! `_NET_ACTIVE_WINDOW` property (EWMH); read with x11rb, no X libraries needed.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt};

use super::with_timeout;

/// The active window on `display`, `None` when no window is active.
pub fn active_window(display: &str) -> Result<Option<u32>, String> {
    let display = display.to_owned();
    with_timeout("X11", move || {
        let e = |e: &dyn std::fmt::Display| format!("X11 display {display}: {e}");
        let (conn, screen) = x11rb::connect(Some(&display)).map_err(|x| e(&x))?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .map(|s| s.root)
            .ok_or_else(|| e(&"no such screen"))?;
        let atom = conn
            .intern_atom(true, b"_NET_ACTIVE_WINDOW")
            .map_err(|x| e(&x))?
            .reply()
            .map_err(|x| e(&x))?
            .atom;
        if atom == x11rb::NONE {
            return Err(e(&"the window manager does not publish _NET_ACTIVE_WINDOW"));
        }
        let reply = conn
            .get_property(false, root, atom, AtomEnum::WINDOW, 0, 1)
            .map_err(|x| e(&x))?
            .reply()
            .map_err(|x| e(&x))?;
        let id = reply.value32().and_then(|mut v| v.next());
        Ok(id.filter(|w| *w != x11rb::NONE))
    })
}
