//! `[forward]`, `--forward`, `[[ports]]` and `-p` → [`Forward`]. A key in a later layer
//! replaces the earlier one (user < project < flag); ports add up across layers.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use toml::Value;

use crate::error::{Location, SpecError};
use crate::forward::{parse_port_flag, split_forward_flag, Display, Forward, Port, SshAgent, KEYS};
use crate::layer::{Layers, Origin};
use crate::spec::Network;

pub fn forward(
    layers: &Layers,
    host_home: &Path,
    network: &Network,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Forward, SpecError> {
    let mut out = Forward::default();
    for file in layers.files() {
        let Some(f) = &file.raw.forward else { continue };
        if let Some(d) = &f.display {
            out.display = Some(display(d.get_ref()).map_err(|e| e.at(file.at(d.span())))?);
            origins.insert("forward.display", file.origin());
        }
        if let Some(a) = &f.ssh_agent {
            out.ssh_agent =
                ssh_agent_value(a.get_ref(), host_home).map_err(|e| e.at(file.at(a.span())))?;
            origins.insert("forward.ssh_agent", file.origin());
        }
        if let Some(g) = &f.git_config {
            out.git_config = *g.get_ref();
            origins.insert("forward.git_config", file.origin());
        }
        for (value, field, name) in [
            (&f.audio, &mut out.audio, "forward.audio"),
            (&f.nix, &mut out.nix, "forward.nix"),
            (&f.gpu, &mut out.gpu, "forward.gpu"),
        ] {
            if let Some(v) = value {
                *field = *v.get_ref();
                origins.insert(name, file.origin());
            }
        }
        if let Some(d) = &f.dbus {
            out.dbus = bus_names(d.get_ref().iter().map(String::as_str))
                .map_err(|e| e.at(file.at(d.span())))?;
            origins.insert("forward.dbus", file.origin());
        }
    }
    for flag in &layers.flags.forward {
        let loc = Location::Flag(format!("--forward {flag:?}"));
        let (key, value) = split_forward_flag(flag);
        let err = |e: Bad| e.at(loc.clone());
        match (key.as_str(), value) {
            ("display", Some(v)) => out.display = Some(display(v).map_err(err)?),
            ("ssh_agent", None) => out.ssh_agent = Some(SshAgent::Host),
            ("ssh_agent", Some(list)) => {
                let keys = list
                    .split(',')
                    .map(|k| key_file(k, host_home))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                out.ssh_agent = Some(SshAgent::Keys(keys));
            }
            ("git_config", None) => out.git_config = true,
            ("audio", None) => out.audio = true,
            ("nix", None) => out.nix = true,
            ("gpu", None) => out.gpu = true,
            ("dbus", Some(list)) => out.dbus = bus_names(list.split(',')).map_err(err)?,
            _ => {
                return Err(SpecError::invalid(
                    loc,
                    "forward",
                    format!("unknown forward {flag:?}"),
                    format!(
                        "use --forward KEY[=VALUE] with KEY one of {} (display needs a value: x11, wayland or xvfb; dbus a list: dbus=NAME,NAME)",
                        KEYS.join(", ")
                    ),
                ))
            }
        }
        let name = match key.as_str() {
            "display" => "forward.display",
            "ssh_agent" => "forward.ssh_agent",
            "audio" => "forward.audio",
            "nix" => "forward.nix",
            "gpu" => "forward.gpu",
            "dbus" => "forward.dbus",
            _ => "forward.git_config",
        };
        origins.insert(name, Origin::Flag("--forward"));
    }

    for file in layers.files() {
        for (i, p) in file.raw.ports.iter().enumerate() {
            let key = format!("ports[{i}]");
            let p = p.get_ref();
            let num = |v: &toml::Spanned<i64>, what: &str| {
                port_number(&v.get_ref().to_string())
                    .map_err(|e| e.at(file.at(v.span())).rekey(format!("{key}.{what}")))
            };
            let host_address = match &p.host_address {
                None => Port::LOOPBACK,
                Some(a) => address(a.get_ref())
                    .map_err(|e| e.at(file.at(a.span())).rekey(format!("{key}.host_address")))?,
            };
            let port = Port {
                host_address,
                host: num(&p.host, "host")?,
                sandbox: num(&p.sandbox, "sandbox")?,
            };
            push_port(&mut out.ports, port, file.at(p.host.span()), &key)?;
            origins.insert("ports", file.origin());
        }
    }
    for flag in &layers.flags.ports {
        let loc = Location::Flag(format!("-p {flag:?}"));
        let bad = |m: String| {
            SpecError::invalid(
                loc.clone(),
                "ports",
                m,
                "write -p HOST:SANDBOX (published on 127.0.0.1) or -p ADDRESS:HOST:SANDBOX",
            )
        };
        let (addr, host, sandbox) = parse_port_flag(flag).map_err(bad)?;
        let host_address = match addr {
            None => Port::LOOPBACK,
            Some(a) => address(a).map_err(|e| e.at(loc.clone()).rekey("ports"))?,
        };
        let port = Port {
            host_address,
            host: port_number(host).map_err(|e| e.at(loc.clone()).rekey("ports"))?,
            sandbox: port_number(sandbox).map_err(|e| e.at(loc.clone()).rekey("ports"))?,
        };
        push_port(&mut out.ports, port, loc.clone(), "ports")?;
        origins.insert("ports", Origin::Flag("-p"));
    }
    if !out.ports.is_empty() && *network != Network::Open {
        let origin = origins.get("ports").cloned().unwrap_or(Origin::Default);
        return Err(SpecError::invalid(
            Location::Flag(format!("ports (from {origin})")),
            "ports",
            "published ports need network = \"open\": pasta, the sandbox's userspace network, is what forwards them, and network = \"none\" has none",
            "remove the ports, or use network = \"open\" (outbound stays as it is; only the published ports open inbound)",
        ));
    }
    Ok(out)
}

fn push_port(ports: &mut Vec<Port>, port: Port, loc: Location, key: &str) -> Result<(), SpecError> {
    if let Some(prev) = ports
        .iter()
        .find(|p| p.host == port.host && p.host_address == port.host_address)
    {
        return Err(SpecError::invalid(
            loc,
            key,
            format!("host port {} is already published ({prev})", port.host),
            "give each published port its own host port",
        ));
    }
    ports.push(port);
    Ok(())
}

/// A problem found before its location is known.
struct Bad {
    key: String,
    message: String,
    fix: String,
}

impl Bad {
    fn new(key: &str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Bad {
            key: key.to_owned(),
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn at(self, loc: Location) -> SpecError {
        SpecError::invalid(loc, self.key, self.message, self.fix)
    }
}

trait Rekey {
    fn rekey(self, key: impl Into<String>) -> Self;
}

impl Rekey for SpecError {
    fn rekey(self, key: impl Into<String>) -> Self {
        match self {
            SpecError::Invalid {
                location, problem, ..
            } => SpecError::Invalid {
                location,
                key: crate::error::escape_controls(&key.into()),
                problem,
            },
            other => other,
        }
    }
}

fn display(s: &str) -> Result<Display, Bad> {
    Display::parse(s).ok_or_else(|| {
        Bad::new(
            "forward.display",
            format!("unknown display {s:?}"),
            "use \"x11\" (the host's X server), \"wayland\" (the compositor's socket) or \"xvfb\" (a private virtual display)",
        )
    })
}

/// `dbus = [NAME, …]`: well-known bus names (or `NAME.*`), each once; an empty list is no
/// bus at all.
fn bus_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<Vec<String>, Bad> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !crate::forward::is_bus_name(n) {
            return Err(Bad::new(
                "forward.dbus",
                format!("{n:?} is not a bus name the sandbox may be given"),
                "name well-known bus names, e.g. dbus = [\"org.freedesktop.Notifications\"] (NAME.* for a name and those below it; not unique names like :1.2, not org.freedesktop.DBus)",
            ));
        }
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

fn ssh_agent_value(v: &Value, host_home: &Path) -> Result<Option<SshAgent>, Bad> {
    let shape = || {
        Bad::new(
            "forward.ssh_agent",
            "ssh_agent must be true, false, or a list of private key files",
            "write ssh_agent = true (your agent, every key) or ssh_agent = [\"~/.ssh/id_deploy\"] (a private agent with only those keys)",
        )
    };
    match v {
        Value::Boolean(true) => Ok(Some(SshAgent::Host)),
        Value::Boolean(false) => Ok(None),
        Value::Array(list) if !list.is_empty() => {
            let mut keys = Vec::new();
            for k in list {
                let k = k.as_str().ok_or_else(shape)?;
                keys.push(key_file(k, host_home)?);
            }
            Ok(Some(SshAgent::Keys(keys)))
        }
        _ => Err(shape()),
    }
}

/// A private key file: `~/…` or absolute, an existing regular file.
fn key_file(s: &str, host_home: &Path) -> Result<PathBuf, Bad> {
    let path = if let Some(rest) = s.strip_prefix("~/") {
        host_home.join(rest)
    } else if Path::new(s).is_absolute() && !s.contains('\0') {
        PathBuf::from(s)
    } else {
        return Err(Bad::new(
            "forward.ssh_agent",
            format!("key {s:?} is not an absolute or ~/ path"),
            "name the private key file as ~/.ssh/NAME or an absolute path",
        ));
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(Bad::new(
            "forward.ssh_agent",
            format!("key {} is not a file", path.display()),
            "name the private key file (not its folder)",
        )),
        Err(e) => Err(Bad::new(
            "forward.ssh_agent",
            format!("key {} cannot be read ({e})", path.display()),
            "create it (ssh-keygen -t ed25519 -f FILE) or fix the path",
        )),
    }
}

fn port_number(s: &str) -> Result<u16, Bad> {
    match s.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Bad::new(
            "ports",
            format!("{s:?} is not a port number"),
            "use a number from 1 to 65535",
        )),
    }
}

fn address(s: &str) -> Result<IpAddr, Bad> {
    s.parse::<IpAddr>().map_err(|_| {
        Bad::new(
            "ports",
            format!("host_address {s:?} is not an IP address"),
            "use an address of this host, e.g. \"127.0.0.1\" (the default) or \"0.0.0.0\" for every interface",
        )
    })
}
