//! `[forward]` and `[[ports]]`: host and desktop integrations, each off by default, each one
//! key. Every one of them widens the sandbox (see docs/desktop.md for what each costs), so a
//! project file that asks for one needs the user's trust ([`crate::trust`]).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// `display = "x11" | "wayland" | "xvfb"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// The host's X server: its socket for `$DISPLAY` only, and that display's cookie.
    X11,
    /// The compositor's socket (`$WAYLAND_DISPLAY`) only.
    Wayland,
    /// A private virtual X display started by wrapix for this sandbox.
    Xvfb,
}

impl Display {
    pub const NAMES: &'static [&'static str] = &["x11", "wayland", "xvfb"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "x11" => Some(Display::X11),
            "wayland" => Some(Display::Wayland),
            "xvfb" => Some(Display::Xvfb),
            _ => None,
        }
    }
}

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Display::X11 => "x11",
            Display::Wayland => "wayland",
            Display::Xvfb => "xvfb",
        })
    }
}

/// `ssh_agent = true | ["~/.ssh/id_deploy", …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshAgent {
    /// The host's agent (`$SSH_AUTH_SOCK`): every key loaded in it can sign.
    Host,
    /// A private agent started by wrapix holding only these private keys (existing files).
    Keys(Vec<PathBuf>),
}

/// One `[[ports]]` entry / `-p` flag: the host's `host_address:host` reaches the sandbox's
/// `sandbox` port (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub host_address: IpAddr,
    pub host: u16,
    pub sandbox: u16,
}

impl Port {
    /// Where a port is published unless `host_address` says otherwise.
    pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_address {
            IpAddr::V6(a) => write!(f, "[{a}]:{} -> {}", self.host, self.sandbox),
            IpAddr::V4(a) => write!(f, "{a}:{} -> {}", self.host, self.sandbox),
        }
    }
}

/// Everything forwarded into the sandbox; the default forwards nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forward {
    pub display: Option<Display>,
    pub ssh_agent: Option<SshAgent>,
    /// `~/.gitconfig` and `~/.config/git/` read-only.
    pub git_config: bool,
    /// `[[ports]]` and `-p`.
    pub ports: Vec<Port>,
    /// The host's PipeWire and/or PulseAudio socket.
    pub audio: bool,
    /// Bus names the sandbox may talk to on the session bus, through a filtering
    /// `xdg-dbus-proxy` (empty: no bus at all).
    pub dbus: Vec<String>,
    /// `/nix/store` read-only and the Nix daemon's socket.
    pub nix: bool,
    /// `/dev/dri` render nodes and NVIDIA device nodes.
    pub gpu: bool,
}

impl Forward {
    /// Whether anything at all is forwarded.
    pub fn any(&self) -> bool {
        !self.names().is_empty()
    }

    /// The keys that are on, as `wrapix config show` and errors name them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.display.is_some() {
            out.push("display");
        }
        if self.ssh_agent.is_some() {
            out.push("ssh_agent");
        }
        if self.git_config {
            out.push("git_config");
        }
        if !self.ports.is_empty() {
            out.push("ports");
        }
        if self.audio {
            out.push("audio");
        }
        if !self.dbus.is_empty() {
            out.push("dbus");
        }
        if self.nix {
            out.push("nix");
        }
        if self.gpu {
            out.push("gpu");
        }
        out
    }
}

/// The `[forward]` keys, for errors and `--forward`.
pub const KEYS: &[&str] = &[
    "display",
    "ssh_agent",
    "git_config",
    "audio",
    "dbus",
    "nix",
    "gpu",
];

/// Whether `s` is a D-Bus well-known bus name (`org.freedesktop.Notifications`), or such a
/// name followed by `.*` (the name and every name below it, as `xdg-dbus-proxy` takes it).
/// Unique names (`:1.42`) and the bus itself (`org.freedesktop.DBus`) are not.
pub fn is_bus_name(s: &str) -> bool {
    let name = s.strip_suffix(".*").unwrap_or(s);
    if name.len() > 255
        || name == "org.freedesktop.DBus"
        || name.starts_with("org.freedesktop.DBus.")
    {
        return false;
    }
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with(|c: char| c.is_ascii_digit())
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A `--forward` flag split into its key and value: `KEY`, `KEY=VALUE`, or one of the display
/// names alone (`x11`, `wayland`, `xvfb`, short for `display=NAME`). `-` may stand for `_`.
pub fn split_forward_flag(s: &str) -> (String, Option<&str>) {
    let (key, value) = match s.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (s, None),
    };
    if value.is_none() && Display::parse(key).is_some() {
        return ("display".to_owned(), Some(s));
    }
    (key.replace('-', "_"), value)
}

/// `-p [ADDR:]HOST:SANDBOX` (an IPv6 address in brackets).
pub fn parse_port_flag(s: &str) -> Result<(Option<&str>, &str, &str), String> {
    let shape = || format!("{s:?} is not HOST:SANDBOX or ADDRESS:HOST:SANDBOX (e.g. 8080:3000)");
    let (addr, rest) = if let Some(v6) = s.strip_prefix('[') {
        let (a, rest) = v6.split_once("]:").ok_or_else(shape)?;
        (Some(a), rest)
    } else if s.matches(':').count() == 2 {
        let (a, rest) = s.split_once(':').ok_or_else(shape)?;
        (Some(a), rest)
    } else {
        (None, s)
    };
    let (host, sandbox) = rest.split_once(':').ok_or_else(shape)?;
    Ok((addr, host, sandbox))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_flags() {
        assert_eq!(split_forward_flag("x11"), ("display".into(), Some("x11")));
        assert_eq!(
            split_forward_flag("display=xvfb"),
            ("display".into(), Some("xvfb"))
        );
        assert_eq!(split_forward_flag("ssh-agent"), ("ssh_agent".into(), None));
        assert_eq!(
            split_forward_flag("ssh_agent=~/.ssh/a,~/.ssh/b"),
            ("ssh_agent".into(), Some("~/.ssh/a,~/.ssh/b"))
        );
    }

    #[test]
    fn port_flags() {
        assert_eq!(parse_port_flag("8080:3000"), Ok((None, "8080", "3000")));
        assert_eq!(
            parse_port_flag("0.0.0.0:8080:3000"),
            Ok((Some("0.0.0.0"), "8080", "3000"))
        );
        assert_eq!(
            parse_port_flag("[::1]:8080:3000"),
            Ok((Some("::1"), "8080", "3000"))
        );
        assert!(parse_port_flag("8080").is_err());
    }

    #[test]
    fn bus_names() {
        assert!(is_bus_name("org.freedesktop.Notifications"));
        assert!(is_bus_name("org.mpris.MediaPlayer2.*"));
        assert!(is_bus_name("com.example.my-app_2"));
        for bad in [
            "org",
            ":1.42",
            "org.freedesktop.DBus",
            "org..x",
            "org.1x",
            "*",
            "org.*.x",
            "org.x y",
        ] {
            assert!(!is_bus_name(bad), "{bad}");
        }
    }
}
