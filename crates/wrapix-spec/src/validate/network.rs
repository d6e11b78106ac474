//! `network` (a string or a table), `--network` and `--allow-host` → [`Network`].
//!
//! - `network = "open" | "none"`, or `network = { allow = [...], deny = [...] }` (deny wins;
//!   `*.` is subdomains only; `@name` is a set from `[network.sets]`).
//! - `[network.sets]` only in the user's config: a set is defined once and used by name.
//! - `[network] notify_denied`: the last layer that sets it.
//! - `[[network.credentials]]`: headers the proxy adds for a host (see [`credentials`]); they
//!   add up across layers (a later entry for the same host and port replaces an earlier one),
//!   and need an allowlist that allows their host.
//! - The last layer with a policy (a string, or a table with `allow`) wins (`deny` lists of
//!   every layer add up); `--network` over
//!   all; `--allow-host` adds to an allowlist, or makes one of its own hosts.
//! - An allowlist that is empty after expansion is `none`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Value;

use crate::egress::{Credential, Decision, Egress, Host, HostPattern, SecretSource};
use crate::error::{Location, SpecError};
use crate::layer::{FileKind, Layers, Origin};
use crate::spec::Network;

const TABLE_KEYS: &[&str] = &["allow", "deny", "sets", "notify_denied", "credentials"];

pub fn network(
    layers: &Layers,
    host_home: &Path,
    project: &Path,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Network, SpecError> {
    let sets = sets(layers)?;
    let mut policy: Option<(Network, Origin)> = None;
    let mut notify_denied = false;
    let mut creds: Vec<Credential> = Vec::new();
    let mut creds_loc: Option<Location> = None;
    // Deny lists add up across layers: a project's allowlist never drops the user's denials.
    let mut deny = Vec::new();
    for file in layers.files() {
        let Some(v) = &file.raw.network else { continue };
        let loc = file.at_key("network");
        match v {
            Value::String(s) => {
                policy = Some((simple(s, loc)?, file.origin()));
            }
            Value::Table(t) => {
                for k in t.keys() {
                    if !TABLE_KEYS.contains(&k.as_str()) {
                        return Err(SpecError::invalid(
                            loc,
                            format!("network.{k}"),
                            format!("unknown key {k:?}"),
                            format!("use one of {}", TABLE_KEYS.join(", ")),
                        ));
                    }
                }
                if let Some(c) = t.get("credentials") {
                    for new in credentials(c, &file.at_key("credentials"), host_home, project)? {
                        creds.retain(|old| (old.host.as_str(), old.port) != (&new.host, new.port));
                        creds.push(new);
                    }
                    creds_loc = Some(file.at_key("credentials"));
                }
                if let Some(n) = t.get("notify_denied") {
                    notify_denied = n.as_bool().ok_or_else(|| {
                        SpecError::invalid(
                            loc.clone(),
                            "network.notify_denied",
                            format!("expected true or false, found {n}"),
                            "use notify_denied = true",
                        )
                    })?;
                }
                if t.contains_key("deny") && !t.contains_key("allow") {
                    return Err(SpecError::invalid(
                        loc,
                        "network.deny",
                        "`deny` narrows an allowlist, and this table has no `allow`",
                        "add allow = [\"…\"] (deny wins over it), or use network = \"none\"",
                    ));
                }
                if let Some(d) = t.get("deny") {
                    deny.extend(list(d, "network.deny", &loc, &sets)?);
                }
                if let Some(allow) = t.get("allow") {
                    let allow = list(allow, "network.allow", &loc, &sets)?;
                    policy = Some((
                        Network::Filtered(Egress {
                            allow,
                            deny: Vec::new(),
                            notify_denied: false,
                            credentials: Vec::new(),
                        }),
                        file.origin(),
                    ));
                }
            }
            other => {
                return Err(SpecError::invalid(
                    loc,
                    "network",
                    format!(
                        "expected \"open\", \"none\" or a table, found {}",
                        other.type_str()
                    ),
                    "use network = \"open\", \"none\" or { allow = [\"github.com\"] }",
                ))
            }
        }
    }
    if let Some(flag) = &layers.flags.network {
        policy = Some((
            simple(flag, Location::Flag("--network".into()))?,
            Origin::Flag("--network"),
        ));
    }
    if !layers.flags.allow_hosts.is_empty() {
        let loc = Location::Flag("--allow-host".into());
        if layers.flags.network.is_some() {
            return Err(SpecError::invalid(
                loc,
                "network",
                "--allow-host makes an allowlist, and --network chooses another policy",
                "use one of them",
            ));
        }
        let mut hosts = Vec::new();
        for h in &layers.flags.allow_hosts {
            hosts.extend(entry(h, "--allow-host", &loc, &sets)?);
        }
        policy = Some(match policy {
            Some((Network::Filtered(mut e), _)) => {
                e.allow.extend(hosts);
                (Network::Filtered(e), Origin::Flag("--allow-host"))
            }
            _ => (
                Network::Filtered(Egress {
                    allow: hosts,
                    deny: Vec::new(),
                    notify_denied: false,
                    credentials: Vec::new(),
                }),
                Origin::Flag("--allow-host"),
            ),
        });
    }
    let (mut net, origin) = policy.unwrap_or((Network::Open, Origin::Default));
    if let Network::Filtered(e) = &mut net {
        e.notify_denied = notify_denied;
        e.deny = deny;
        dedup(&mut e.allow);
        dedup(&mut e.deny);
        if e.allow.is_empty() {
            net = Network::None;
        }
    }
    if let Some(loc) = creds_loc {
        let Network::Filtered(e) = &mut net else {
            return Err(SpecError::invalid(
                loc,
                "network.credentials",
                format!("credentials are added by the egress proxy of an allowlist, and the network is {net}"),
                "use an allowlist that names the credential's host: [network] allow = [\"api.anthropic.com\"]",
            ));
        };
        for c in &creds {
            if let Decision::Deny(rule) = e.decide(&Host::Name(c.host.clone())) {
                return Err(SpecError::invalid(
                    loc,
                    "network.credentials.host",
                    format!(
                        "the credential's host {:?} is not allowed by the allowlist ({rule})",
                        c.host
                    ),
                    format!(
                        "add {:?} to [network] allow (a credential never allows a host by itself)",
                        c.host
                    ),
                ));
            }
        }
        e.credentials = creds;
    }
    if origin != Origin::Default {
        origins.insert("network", origin);
    }
    Ok(net)
}

/// Header names the proxy will not set: they frame or route the request, not authenticate it.
const FRAMING_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
];

/// `[[network.credentials]]` of one file: a list of tables with `host`, `header`, exactly one
/// of `from_env` and `from_file`, and optionally `port`, `prefix` and `ca_file`.
fn credentials(
    v: &Value,
    loc: &Location,
    host_home: &Path,
    project: &Path,
) -> Result<Vec<Credential>, SpecError> {
    const KEYS: &[&str] = &[
        "host",
        "port",
        "header",
        "prefix",
        "from_env",
        "from_file",
        "ca_file",
    ];
    let example = "write [[network.credentials]] with host = \"api.anthropic.com\", header = \"x-api-key\", from_env = \"ANTHROPIC_API_KEY\"";
    let bad = |key: &str, msg: String, fix: &str| SpecError::invalid(loc.clone(), key, msg, fix);
    let Some(list) = v.as_array() else {
        return Err(bad(
            "network.credentials",
            format!("expected a list of tables, found {}", v.type_str()),
            example,
        ));
    };
    let mut out: Vec<Credential> = Vec::new();
    for item in list {
        let Some(t) = item.as_table() else {
            return Err(bad(
                "network.credentials",
                format!("expected a table, found {}", item.type_str()),
                example,
            ));
        };
        if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(
                &format!("network.credentials.{k}"),
                format!("unknown key {k:?}"),
                &format!("use {}", KEYS.join(", ")),
            ));
        }
        let string = |k: &str| -> Result<Option<&str>, SpecError> {
            match t.get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(other) => Err(bad(
                    &format!("network.credentials.{k}"),
                    format!("expected a string, found {}", other.type_str()),
                    example,
                )),
            }
        };
        let host_s = string("host")?.ok_or_else(|| {
            bad(
                "network.credentials.host",
                "a credential needs the host it is for".into(),
                example,
            )
        })?;
        let host = match HostPattern::parse(host_s) {
            Ok(HostPattern::Exact(n)) => n,
            _ => return Err(bad("network.credentials.host", format!("{host_s:?} is not one host name (a credential names exactly one host: no `*.`, no address, no URL)"), "write the name, as host = \"api.anthropic.com\"")),
        };
        let port = match t.get("port") {
            None => 443,
            Some(p) => p
                .as_integer()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    bad(
                        "network.credentials.port",
                        format!("{p} is not a port (1 to 65535)"),
                        "leave it out for 443",
                    )
                })?,
        };
        let header_s = string("header")?.ok_or_else(|| {
            bad(
                "network.credentials.header",
                format!("the credential for {host} needs the header it sets"),
                example,
            )
        })?;
        let header = header_s.to_ascii_lowercase();
        let token = !header.is_empty()
            && header
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
        if !token {
            return Err(bad(
                "network.credentials.header",
                format!("{header_s:?} is not a header name"),
                "write the name only, as header = \"x-api-key\" or \"authorization\"",
            ));
        }
        if FRAMING_HEADERS.contains(&header.as_str()) || header.starts_with("proxy-") {
            return Err(bad(
                "network.credentials.header",
                format!("{header_s:?} frames or routes the request: the proxy does not set it"),
                "name the header that carries the secret, as \"x-api-key\" or \"authorization\"",
            ));
        }
        let prefix = string("prefix")?.unwrap_or("").to_owned();
        if prefix.bytes().any(|c| c.is_ascii_control()) {
            return Err(bad(
                "network.credentials.prefix",
                format!("{prefix:?} holds a control character"),
                "write text such as prefix = \"Bearer \"",
            ));
        }
        let source = match (string("from_env")?, string("from_file")?) {
            (Some(name), None) => {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(bad(
                        "network.credentials.from_env",
                        format!("{name:?} is not a variable name"),
                        "write the variable's name, as from_env = \"ANTHROPIC_API_KEY\"",
                    ));
                }
                SecretSource::Env(name.to_owned())
            }
            (None, Some(file)) => {
                let path = home_path(file, host_home).ok_or_else(|| {
                    bad(
                        "network.credentials.from_file",
                        format!("{file:?} is not an absolute or ~/ path"),
                        "write from_file = \"~/.config/anthropic/key\"",
                    )
                })?;
                let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if real.starts_with(project) || path.starts_with(project) {
                    return Err(bad(
                        "network.credentials.from_file",
                        format!(
                            "{} is in the project, which the sandbox reads and writes",
                            path.display()
                        ),
                        "keep the secret outside the project, e.g. in ~/.config",
                    ));
                }
                SecretSource::File(path)
            }
            _ => {
                return Err(bad(
                    "network.credentials",
                    format!(
                        "the credential for {host} needs exactly one of from_env and from_file"
                    ),
                    example,
                ))
            }
        };
        let ca_file = match string("ca_file")? {
            None => None,
            Some(f) => Some(home_path(f, host_home).ok_or_else(|| {
                bad(
                    "network.credentials.ca_file",
                    format!("{f:?} is not an absolute or ~/ path"),
                    "write ca_file = \"~/corp-ca.pem\"",
                )
            })?),
        };
        if out
            .iter()
            .any(|c| (c.host.as_str(), c.port) == (host.as_str(), port))
        {
            return Err(bad(
                "network.credentials.host",
                format!("two credentials for {host}:{port}"),
                "keep one",
            ));
        }
        out.push(Credential {
            host,
            port,
            header,
            prefix,
            source,
            ca_file,
        });
    }
    Ok(out)
}

/// `~/x` (in the host's home) or an absolute path.
fn home_path(s: &str, host_home: &Path) -> Option<PathBuf> {
    if s.contains('\0') {
        return None;
    }
    if let Some(rest) = s.strip_prefix("~/") {
        return Some(host_home.join(rest));
    }
    Path::new(s).is_absolute().then(|| PathBuf::from(s))
}

fn dedup(v: &mut Vec<HostPattern>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|p| seen.insert(p.clone()));
}

fn simple(s: &str, loc: Location) -> Result<Network, SpecError> {
    match s {
        "open" => Ok(Network::Open),
        "none" => Ok(Network::None),
        other => Err(SpecError::invalid(
            loc,
            "network",
            format!("unknown network policy {other:?}"),
            "use \"open\", \"none\", or an allowlist: network = { allow = [\"github.com\"] } (or --allow-host github.com)",
        )),
    }
}

/// `[network.sets]` of the user's config, expanded (a set may not name another set).
fn sets(layers: &Layers) -> Result<BTreeMap<String, Vec<HostPattern>>, SpecError> {
    let mut out = BTreeMap::new();
    for file in layers.files() {
        let Some(v) = &file.raw.network else { continue };
        let Some(sets) = v.as_table().and_then(|t| t.get("sets")) else {
            continue;
        };
        let loc = file.at_key("network");
        if file.kind == FileKind::Project {
            return Err(SpecError::invalid(
                loc,
                "network.sets",
                "named sets are defined in your user config, not in a project's wrapix.toml",
                "move [network.sets] to ~/.config/wrapix/config.toml, or list the hosts in allow",
            ));
        }
        let Some(t) = sets.as_table() else {
            return Err(SpecError::invalid(
                loc,
                "network.sets",
                "expected a table of lists ([network.sets] work = [\"github.com\"])",
                "write [network.sets] with NAME = [\"host\", …] entries",
            ));
        };
        for (name, v) in t {
            let key = format!("network.sets.{name}");
            if !valid_set_name(name) {
                return Err(SpecError::invalid(
                    loc.clone(),
                    key,
                    format!("{name:?} is not a set name (letters, digits, `-`, `_`)"),
                    "rename the set",
                ));
            }
            let items = strings(v, &key, &loc)?;
            let mut patterns = Vec::new();
            for item in items {
                if item.starts_with('@') {
                    return Err(SpecError::invalid(
                        loc.clone(),
                        key.clone(),
                        format!("{item:?}: a set lists hosts, not other sets"),
                        "list the hosts of that set here",
                    ));
                }
                patterns.push(pattern(item, &key, &loc)?);
            }
            out.insert(name.clone(), patterns);
        }
    }
    Ok(out)
}

fn valid_set_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

fn strings<'a>(v: &'a Value, key: &str, loc: &Location) -> Result<Vec<&'a str>, SpecError> {
    let bad = || {
        SpecError::invalid(
            loc.clone(),
            key,
            format!("expected a list of strings, found {v}"),
            "write a list: [\"github.com\", \"*.example.org\", \"@work\"]",
        )
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|i| i.as_str().ok_or_else(bad))
        .collect()
}

fn list(
    v: &Value,
    key: &str,
    loc: &Location,
    sets: &BTreeMap<String, Vec<HostPattern>>,
) -> Result<Vec<HostPattern>, SpecError> {
    let mut out = Vec::new();
    for item in strings(v, key, loc)? {
        out.extend(entry(item, key, loc, sets)?);
    }
    Ok(out)
}

/// One entry: a pattern, or `@name` (the set's patterns).
fn entry(
    item: &str,
    key: &str,
    loc: &Location,
    sets: &BTreeMap<String, Vec<HostPattern>>,
) -> Result<Vec<HostPattern>, SpecError> {
    if let Some(name) = item.strip_prefix('@') {
        return sets.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = sets.keys().map(String::as_str).collect();
            SpecError::invalid(
                loc.clone(),
                key,
                format!(
                    "unknown host set {item:?} (defined: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
                format!("define it in ~/.config/wrapix/config.toml: [network.sets] {name} = [\"example.com\"]"),
            )
        });
    }
    Ok(vec![pattern(item, key, loc)?])
}

fn pattern(item: &str, key: &str, loc: &Location) -> Result<HostPattern, SpecError> {
    HostPattern::parse(item).map_err(|e| {
        SpecError::invalid(
            loc.clone(),
            key,
            e.to_string(),
            "write a host name (github.com), subdomains of one (*.github.com), an IP address, or @set",
        )
    })
}
