//! Project config trust: a project's `wrapix.toml` lives in the folder the agent writes, so it
//! may *narrow* the sandbox freely, but anything that *widens* it is used only after the user
//! approved that exact content with `wrapix trust` (the model of direnv's `allow`). The record
//! lives in wrapix's state folder, outside every sandbox.
//!
//! The judge is an allowlist: [`widening`] names every key of a project file that is not known
//! to be safe, so a key added to the config later needs trust until it is listed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::Value;

use crate::state::{self, StateError};

/// One key of a project file that asks for more than the default sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// The dotted key (`mounts`, `env.TOKEN`, `agent.command`).
    pub key: String,
    /// The value, shortened, for `wrapix trust` to show.
    pub value: String,
    /// What it allows.
    pub why: &'static str,
}

/// Profiles wrapix ships: their package lists are wrapix's, not the project's.
const BUILTIN_PROFILES: &[&str] = &["host", "base", "rust", "python", "browser"];

/// The keys of a project config (its text) that widen the sandbox. Text that is not TOML is
/// reported by the parser elsewhere; here it widens nothing.
pub fn widening(text: &str) -> Vec<Widening> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in &table {
        judge_top(key, value, &mut out);
    }
    out
}

/// [`widening`], plus what the project file loosens of the user's own config (`user`): a
/// project may not open the network the user closed, or raise a limit the user set, even
/// though the same value would be harmless without the user config.
pub fn widening_over(text: &str, user: Option<&crate::raw::RawConfig>) -> Vec<Widening> {
    let mut out = widening(text);
    let Ok(project) = text.parse::<toml::Table>() else {
        return out;
    };
    ralph_over(&project, user.and_then(|u| u.ralph.as_ref()), &mut out);
    let Some(user) = user else {
        return out;
    };
    network_over(&project, user.network.as_ref(), &mut out);
    // The host profile (the host's own /usr and /etc) over the user's choice of an image.
    let user_profile = user.profile.as_ref().map(|p| p.get_ref().as_str());
    if let (Some(up), Some(v)) = (user_profile, project.get("profile")) {
        if up != "host" && v.as_str() == Some("host") {
            push(&mut out, "profile".into(), v, WHY_PROFILE_OVER_USER);
        }
    }
    // An MCP server the user config turns off, turned on again.
    for (name, table) in user.mcp.iter().flatten() {
        let off = table
            .get_ref()
            .get("enabled")
            .is_some_and(|e| e.get_ref().as_bool() == Some(false));
        let on_again = project
            .get("mcp")
            .and_then(|m| m.get(name))
            .and_then(Value::as_table)
            .is_some_and(|t| t.get("enabled").and_then(Value::as_bool) != Some(false));
        if off && on_again {
            let v = project
                .get("mcp")
                .and_then(|m| m.get(name))
                .cloned()
                .unwrap_or(Value::Boolean(true));
            push(&mut out, format!("mcp.{name}"), &v, WHY_MCP_OVER_USER);
        }
    }
    let user_res = user.resources.as_ref();
    let project_res = project.get("resources").and_then(Value::as_table);
    if let (Some(u), Some(p)) = (user_res, project_res) {
        for (name, limit) in [
            ("cpus", &u.cpus),
            ("memory_mb", &u.memory_mb),
            ("pids", &u.pids),
        ] {
            let (Some(limit), Some(v)) = (limit, p.get(name)) else {
                continue;
            };
            if v.as_integer().is_none_or(|n| n > *limit.get_ref()) {
                push(
                    &mut out,
                    format!("resources.{name}"),
                    v,
                    WHY_RESOURCES_OVER_USER,
                );
            }
        }
    }
    out
}

/// The project's `network` over the user's: a project may keep or narrow the user's policy,
/// not widen it. Over `none`: anything but `none` widens. Over an allowlist: `open`, or an
/// allow entry the user's list does not have (compared as written, `@set` by name), widens.
fn network_over(project: &toml::Table, user: Option<&Value>, out: &mut Vec<Widening>) {
    let (Some(theirs), Some(mine)) = (project.get("network"), user) else {
        return;
    };
    if mine.as_str() == Some("none") {
        let keeps = theirs.as_str() == Some("none")
            || theirs.as_table().is_some_and(|t| !t.contains_key("allow"));
        if !keeps {
            push(out, "network".into(), theirs, WHY_NETWORK_OVER_USER);
        }
        return;
    }
    let Some(user_allow) = mine.get("allow").and_then(Value::as_array) else {
        return;
    };
    if theirs.as_str() == Some("open") {
        push(out, "network".into(), theirs, WHY_NETWORK_OVER_USER);
        return;
    }
    let Some(allow) = theirs.get("allow").and_then(Value::as_array) else {
        return;
    };
    let wider: Vec<Value> = allow
        .iter()
        .filter(|a| !user_allow.contains(a))
        .cloned()
        .collect();
    if !wider.is_empty() {
        push(
            out,
            "network.allow".into(),
            &Value::Array(wider),
            WHY_ALLOW_OVER_USER,
        );
    }
}

/// `[ralph]` decides when the agent's work counts as done, so a project file may add to
/// that verification but not weaken what the user's config (or ralph's default) asks for:
/// another `check` than the user's, or `require_clean = false` where the user's config leaves
/// it on (the default). A check where the user has none only narrows. (`agent`,
/// `print_args` and any unknown key need trust in every case: see [`judge_top`].)
fn ralph_over(project: &toml::Table, user: Option<&crate::raw::RawRalph>, out: &mut Vec<Widening>) {
    let Some(ralph) = project.get("ralph").and_then(Value::as_table) else {
        return;
    };
    if let (Some(theirs), Some(mine)) = (ralph.get("check"), user.and_then(|u| u.check.as_ref())) {
        let same = theirs.as_array().is_some_and(|a| {
            a.len() == mine.get_ref().len()
                && a.iter()
                    .zip(mine.get_ref())
                    .all(|(t, m)| t.as_str() == Some(m))
        });
        if !same {
            push(out, "ralph.check".into(), theirs, WHY_CHECK_OVER_USER);
        }
    }
    let user_clean = user
        .and_then(|u| u.require_clean.as_ref())
        .is_none_or(|c| *c.get_ref());
    if let Some(v) = ralph.get("require_clean") {
        if user_clean && v.as_bool() != Some(true) {
            push(out, "ralph.require_clean".into(), v, WHY_CLEAN_OFF);
        }
    }
}

fn push(out: &mut Vec<Widening>, key: String, value: &Value, why: &'static str) {
    out.push(Widening {
        // Key names come from a file the agent may have written: never raw on a terminal.
        key: crate::error::escape_controls(&key),
        value: short(value),
        why,
    });
}

fn judge_top(key: &str, value: &Value, out: &mut Vec<Widening>) {
    let s = value.as_str();
    match key {
        // Narrowing or neutral: a built-in or user-defined profile (a profile the project
        // defines is judged under `profiles`), the open network (the default) or none, limits.
        "profile" if value.is_str() => {}
        "network" if matches!(s, Some("open" | "none")) => {}
        // An allowlist narrows the open default (over the user's own policy: `network_over`);
        // `@set` names a set of the user's config. Credentials widen: they hand a secret to
        // traffic the agent drives. Sets are refused in a project by validation.
        // An address in `allow` is not narrowing: it is what lets the host-side proxy connect
        // to a private one (`127.0.0.1` reaches the host's loopback services, which the open
        // default keeps out), so an allowlist narrows only when it names hosts by name.
        "network" => judge_table(key, value, out, |k, v| match k {
            "allow" if names_only(v) => Some(()),
            "deny" | "notify_denied" => Some(()),
            _ => None,
        }),
        "resources" if value.is_table() => {}
        // Every backend wrapix has is a sandbox; `none` is refused outright by validation, and
        // a name that is no backend of this build is refused there too.
        "backend"
            if s.is_some_and(|b| {
                !b.is_empty()
                    && b.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            }) => {}
        "workspace" => judge_table(key, value, out, |k, v| match k {
            "protect" => v.is_array().then_some(()),
            _ => None,
        }),
        "agent" => judge_table(key, value, out, |k, v| match k {
            "home" if v.as_str() == Some("project") => Some(()),
            "forward_api_key" if v.as_bool() == Some(false) => Some(()),
            _ => None,
        }),
        // The check and the clean-tree rule run in the sandbox like anything the agent runs
        // (weakening the user's, or the default, is judged in `ralph_over`); another agent
        // program or its arguments choose what gets the agent's login. The tracker only
        // chooses where ralph reads tasks from: `bd` runs in the sandbox, never on the host,
        // and a task is done only when ralph's own record says so.
        "ralph" => judge_table(key, value, out, |k, _| match k {
            "check" | "require_clean" | "tracker" => Some(()),
            _ => None,
        }),
        "mcp" => match value.as_table() {
            Some(servers) => {
                for (name, table) in servers {
                    judge_mcp(name, table, out);
                }
            }
            None => push(out, key.to_owned(), value, WHY_OTHER),
        },
        "env" => match value.as_table() {
            Some(t) => {
                for (name, v) in t {
                    push(out, format!("env.{name}"), v, WHY_ENV);
                }
            }
            None => push(out, key.to_owned(), value, WHY_ENV),
        },
        "mounts" => push(out, key.to_owned(), value, WHY_MOUNTS),
        // Every forward reaches something of the host's, whatever its value says: each key
        // needs trust (even `false`, which is cheap to trust and keeps the rule simple).
        "forward" => match value.as_table() {
            Some(t) if !t.is_empty() => {
                for (k, v) in t {
                    push(out, format!("forward.{k}"), v, why_forward(k));
                }
            }
            _ => push(out, key.to_owned(), value, WHY_OTHER),
        },
        "ports" => push(out, key.to_owned(), value, WHY_PORTS),
        "deploy_key" => push(out, key.to_owned(), value, WHY_DEPLOY_KEY),
        "packages" => push(out, key.to_owned(), value, WHY_PACKAGES),
        "profiles" => match value.as_table() {
            Some(t) if !t.is_empty() => {
                for (name, v) in t {
                    let why = if BUILTIN_PROFILES.contains(&name.as_str()) {
                        WHY_PROFILE_SHADOW
                    } else {
                        WHY_PACKAGES
                    };
                    push(out, format!("profiles.{name}"), v, why);
                }
            }
            _ => push(out, key.to_owned(), value, WHY_PACKAGES),
        },
        "backend" => push(out, key.to_owned(), value, WHY_BACKEND),
        _ => push(out, key.to_owned(), value, WHY_OTHER),
    }
}

/// Whether an `allow` list names hosts by name only (`github.com`, `*.example.com`, or a set
/// of the user's config, `@work`): no address, and nothing else that is not a plain pattern.
fn names_only(allow: &Value) -> bool {
    use crate::egress::HostPattern;
    allow.as_array().is_some_and(|a| {
        a.iter().all(|e| {
            e.as_str().is_some_and(|s| {
                s.starts_with('@')
                    || matches!(
                        HostPattern::parse(s),
                        Ok(HostPattern::Exact(_) | HostPattern::Subdomains(_))
                    )
            })
        })
    })
}

/// Each key of the table `name`: safe when `safe` says so, else a widening.
fn judge_table(
    name: &str,
    value: &Value,
    out: &mut Vec<Widening>,
    safe: impl Fn(&str, &Value) -> Option<()>,
) {
    let Some(table) = value.as_table() else {
        push(out, name.to_owned(), value, WHY_OTHER);
        return;
    };
    for (k, v) in table {
        if safe(k, v).is_none() {
            let why = match (name, k.as_str()) {
                ("agent", "command") | ("ralph", "agent" | "print_args") => WHY_AGENT_COMMAND,
                ("agent", "home") => WHY_AGENT_HOME,
                ("agent", "forward_api_key") => WHY_API_KEY,
                ("workspace", "unprotect") => WHY_UNPROTECT,
                ("network", "credentials") => WHY_CREDENTIALS,
                ("network", "allow") => WHY_ALLOW_ADDRESS,
                _ => WHY_OTHER,
            };
            push(out, format!("{name}.{k}"), v, why);
        }
    }
}

/// `[mcp.NAME]`: a built-in server with its own options (paths inside the sandbox) is safe;
/// a command or environment the project chooses is not.
fn judge_mcp(name: &str, table: &Value, out: &mut Vec<Widening>) {
    let key = format!("mcp.{name}");
    let Some(t) = table.as_table() else {
        push(out, key, table, WHY_MCP);
        return;
    };
    if t.get("enabled").and_then(Value::as_bool) == Some(false) && t.len() == 1 {
        return;
    }
    let Some(builtin) = crate::mcp::builtin(name) else {
        push(out, key, table, WHY_MCP);
        return;
    };
    for (k, v) in t {
        let safe = k == "enabled" || builtin.options.iter().any(|o| o.key == k);
        if !safe {
            push(out, format!("{key}.{k}"), v, WHY_MCP);
        }
    }
}

/// What each `[forward]` key gives the sandbox (docs/desktop.md has the whole story).
fn why_forward(key: &str) -> &'static str {
    match key {
        "display" => "connects the sandbox to a display (x11: it can read every window and type into them)",
        "ssh_agent" => "lets the sandbox sign with SSH keys (true: every key in your agent)",
        "git_config" => "shows your ~/.gitconfig and ~/.config/git to the sandbox (aliases, credentials helpers, URLs)",
        "audio" => "connects the sandbox to your sound server (it can play sound, and record from your microphone)",
        "dbus" => "lets the sandbox call the named services on your session bus",
        "nix" => "shows your whole /nix/store to the sandbox and lets it ask your Nix daemon to build",
        "gpu" => "gives the sandbox your GPU's device nodes (a large kernel driver surface; GPU memory of other programs)",
        _ => WHY_OTHER,
    }
}

const WHY_PORTS: &str = "publishes a sandbox port on this host, for anything that can reach it";
const WHY_ENV: &str =
    "sets a variable the agent and its tools trust (a base URL can send your login elsewhere)";
const WHY_MOUNTS: &str = "mounts a host path into the sandbox";
const WHY_DEPLOY_KEY: &str = "hands one of your SSH deploy keys to the sandbox";
const WHY_PACKAGES: &str = "installs packages, whose install scripts run when the image is built";
const WHY_PROFILE_SHADOW: &str =
    "redefines a built-in profile (its packages run install scripts at build time)";
const WHY_AGENT_COMMAND: &str = "chooses the program started as the agent, with its login";
const WHY_AGENT_HOME: &str =
    "mounts your real ~/.claude read-write (hooks there run outside the sandbox)";
const WHY_API_KEY: &str = "passes your ANTHROPIC_API_KEY into the sandbox";
const WHY_UNPROTECT: &str =
    "makes a built-in protected path (git hooks, git config, wrapix.toml) writable";
const WHY_MCP: &str = "registers an MCP server command with the agent";
const WHY_BACKEND: &str = "chooses a backend wrapix does not know to be a sandbox";
const WHY_OTHER: &str = "a setting wrapix does not know to be safe";
const WHY_CREDENTIALS: &str =
    "hands a secret of yours to requests the agent makes (credential injection)";
const WHY_ALLOW_ADDRESS: &str = "names an address, which the proxy then connects to even when it is this host's own, its loopback or on your LAN (the open network keeps those out)";
const WHY_ALLOW_OVER_USER: &str = "allows a host that the allowlist of your user config does not";
const WHY_NETWORK_OVER_USER: &str =
    "opens the network that your user config sets to \"none\" or limits to an allowlist";
const WHY_RESOURCES_OVER_USER: &str = "raises a limit that your user config sets";
const WHY_PROFILE_OVER_USER: &str =
    "runs on the host's own /usr and /etc instead of the image your user config chooses";
const WHY_CHECK_OVER_USER: &str =
    "replaces the ralph check of your user config, which decides when a task is done";
const WHY_CLEAN_OFF: &str =
    "turns off ralph's rule that a step must leave the work committed (on in your user config, or by default)";
const WHY_MCP_OVER_USER: &str = "turns on an MCP server that your user config turns off";

/// A value on one short line.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    let s = crate::error::escape_controls(&s.replace('\n', " "));
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The sha256 of a config file's bytes, as hex.
pub fn digest(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The record `wrapix trust` writes, one per project, in its state folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The project folder.
    pub project: PathBuf,
    /// sha256 of the trusted `wrapix.toml`.
    pub sha256: String,
    /// When it was trusted (RFC 3339).
    pub trusted_at: String,
    /// The keys that widened the sandbox when it was trusted.
    pub widens: Vec<String>,
}

/// The file of the trust record in a project's state folder.
pub const RECORD_FILE: &str = "trust.json";
/// Records are small; anything larger is not one.
const RECORD_LIMIT: u64 = 64 * 1024;

/// The trust record of `project`, if any. A record that cannot be read or parsed is an error
/// (a corrupt state file is loud, never silently "untrusted" or "trusted").
pub fn load(state_root: &Path, project: &Path) -> Result<Option<Record>, StateError> {
    let dir = state::project_dir(state_root, project);
    let root = match wrapix_hostfs::Dir::open(&dir) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(bytes) = root.read(Path::new(RECORD_FILE), RECORD_LIMIT)? else {
        return Ok(None);
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        path: dir.join(RECORD_FILE),
        what: "trust record",
        source,
    })?;
    Ok((record.project == project).then_some(record))
}

/// Records that the config with `sha256` is trusted for `project`.
pub fn save(state_root: &Path, record: &Record) -> Result<PathBuf, StateError> {
    let dir = state::ensure_project_dir(state_root, &record.project)?;
    // A struct of strings: serialising it cannot fail.
    let mut bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    bytes.push(b'\n');
    dir.write_atomic(Path::new(RECORD_FILE), &bytes, 0o600)?;
    Ok(dir.path().join(RECORD_FILE))
}

/// Removes the trust record of `project`; `Ok(false)` when there was none.
pub fn revoke(state_root: &Path, project: &Path) -> Result<bool, StateError> {
    let dir = state::project_dir(state_root, project);
    let root = match wrapix_hostfs::Dir::open(&dir) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let had = root.meta(Path::new(RECORD_FILE))?.is_some();
    root.remove_all(Path::new(RECORD_FILE))?;
    Ok(had)
}

/// Every trust record, by project.
pub fn list(state_root: &Path) -> Result<BTreeMap<PathBuf, Record>, StateError> {
    let mut out = BTreeMap::new();
    let projects = state_root.join(state::PROJECTS);
    let root = match wrapix_hostfs::Dir::open(&projects) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for (name, kind) in root.entries()? {
        if kind != wrapix_hostfs::Kind::Dir {
            continue;
        }
        let rel = Path::new(&name).join(RECORD_FILE);
        let Some(bytes) = root.read(&rel, RECORD_LIMIT)? else {
            continue;
        };
        let r: Record = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: projects.join(&rel),
            what: "trust record",
            source,
        })?;
        out.insert(r.project.clone(), r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
