//! `network` (a string or a table), `--network` and `--allow-host` → [`Network`].
//!
//! - `network = "open" | "none"`, or `network = { allow = [...], deny = [...] }` (deny wins;
//!   `*.` is subdomains only; `@name` is a set from `[network.sets]`).
//! - `[network.sets]` only in the user's config: a set is defined once and used by name.
//! - `[network] notify_denied`: the last layer that sets it.
//! - `[[network.credentials]]`: not built yet, so refused (a run never goes ahead without
//!   something its config asks for).
//! - The last layer with a policy (a string, or a table with `allow`) wins (`deny` lists of
//!   every layer add up); `--network` over
//!   all; `--allow-host` adds to an allowlist, or makes one of its own hosts.
//! - An allowlist that is empty after expansion is `none`.

use std::collections::BTreeMap;

use toml::Value;

use crate::egress::{Egress, HostPattern};
use crate::error::{Location, SpecError};
use crate::layer::{FileKind, Layers, Origin};
use crate::spec::Network;

const TABLE_KEYS: &[&str] = &["allow", "deny", "sets", "notify_denied", "credentials"];

pub fn network(
    layers: &Layers,
    origins: &mut BTreeMap<&'static str, Origin>,
) -> Result<Network, SpecError> {
    let sets = sets(layers)?;
    let mut policy: Option<(Network, Origin)> = None;
    let mut notify_denied = false;
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
                if t.contains_key("credentials") {
                    return Err(SpecError::invalid(
                        loc,
                        "network.credentials",
                        "credential injection ([[network.credentials]]) is not built in this wrapix yet, and a run never goes ahead without what its config asks for",
                        "remove [[network.credentials]]; until it exists, pass the token with [env] (the sandbox then holds it)",
                    ));
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
                }),
                Origin::Flag("--allow-host"),
            ),
        });
    }
    let Some((mut net, origin)) = policy else {
        return Ok(Network::Open);
    };
    origins.insert("network", origin);
    if let Network::Filtered(e) = &mut net {
        e.notify_denied = notify_denied;
        e.deny = deny;
        dedup(&mut e.allow);
        dedup(&mut e.deny);
        if e.allow.is_empty() {
            return Ok(Network::None);
        }
    }
    Ok(net)
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
