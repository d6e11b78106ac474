//! Agent wiring for Claude Code: where its state lives, how it logs in.
//!
//! The agent's state is kept in wrapix's state folder, outside the project
//! (`$XDG_STATE_HOME/wrapix/projects/<id>/`, see [`wrapix_spec::state`]): nothing the agent
//! leaves in `/workspace` is read as agent state by the next run, and wrapix writes nothing of
//! its own into the project.
//!
//! * `home = "project"` (default): state in `<state>/claude/`, mounted as `~/.claude` with
//!   `CLAUDE_CONFIG_DIR` pointing there (so `.claude.json` lives inside it too). Seeded once by
//!   *copying* the host's settings, memory, `.claude.json` and credentials (or, once, from the
//!   `<project>/.wrapix/agent/claude` of older wrapix versions). Nothing the agent writes
//!   reaches the host's own Claude config.
//! * `home = "host"`: the host's `~/.claude` read-write, and `~/.claude.json` copied into a
//!   private per-run home (`<state>/run/home-<pid>/`) and copied back atomically afterwards
//!   (Claude rewrites it by rename, so it can never be bind-mounted). The agent can then change
//!   the host's Claude config, including hooks that run outside the sandbox: documented in
//!   docs/security.md.
//!
//! The agent writes the state folder's contents, so every host-side access to them goes
//! through [`wrapix_hostfs::Dir`]: no symlink it planted is followed, only regular files of
//! bounded size are read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wrapix_hostfs::{Dir, Kind};
use wrapix_spec::{AgentHome, McpServer, MountMode, SandboxPath, Spec};

use crate::error::SandboxError;
use crate::prepare::Bind;

pub mod claude;
mod merge;

/// What `wire_claude` adds to a run.
#[derive(Debug, Default)]
pub struct Wiring {
    pub binds: Vec<Bind>,
    pub env: BTreeMap<String, String>,
    pub home_source: Option<PathBuf>,
    pub after_exit: Vec<AfterExit>,
    pub notices: Vec<String>,
}

/// Work after the sandbox exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterExit {
    /// Copy `<state>/<staging>/.claude.json` over `to` atomically if it changed, then remove
    /// `<state>/<staging>`.
    CopyBack {
        /// The project's state folder.
        state: PathBuf,
        /// The staged home, relative to `state`.
        staging: PathBuf,
        /// The host's `~/.claude.json`.
        to: PathBuf,
        /// `mcpServers` entries wrapix put into the staged file: restored from `to` (or
        /// removed) before the copy, so the host's own config never gets them.
        mcp_servers: Vec<String>,
    },
}

/// Files copied from the host's `~/.claude/` into a new agent state folder.
const SEED_FILES: &[&str] = &["settings.json", "CLAUDE.md", ".credentials.json"];
/// The agent's state folder in the project's state folder.
const CLAUDE_DIR: &str = "claude";
/// Where older wrapix versions kept it, inside the project.
const LEGACY_DIR: &str = ".wrapix/agent/claude";
/// The JSON files wrapix reads back are Claude Code's config: generous, but bounded.
const JSON_LIMIT: u64 = 16 * 1024 * 1024;
/// A migrated file larger than this is left behind (said in the notice).
const MIGRATE_FILE_LIMIT: u64 = 256 * 1024 * 1024;

/// `dry_run`: compute the same wiring without creating or copying anything.
pub fn wire_claude(
    spec: &Spec,
    home: &SandboxPath,
    host_env: &BTreeMap<String, String>,
    dry_run: bool,
) -> Result<Wiring, SandboxError> {
    let mut w = Wiring::default();
    let claude_dir = home.join(".claude");
    w.env.insert("DISABLE_AUTOUPDATER".into(), "1".into());
    if let Some(token) = oauth_token(&spec.user.home, host_env) {
        w.env.insert("CLAUDE_CODE_OAUTH_TOKEN".into(), token);
    }
    if spec.agent.forward_api_key {
        if let Some(key) = host_env.get("ANTHROPIC_API_KEY") {
            w.env.insert("ANTHROPIC_API_KEY".into(), key.clone());
        }
    }
    let state_root = wrapix_spec::state::root(&spec.user.home, host_env);
    let state_path = wrapix_spec::state::project_dir(&state_root, &spec.project);
    let host_claude = spec.user.home.join(".claude");
    let host_json = spec.user.home.join(".claude.json");
    match spec.agent.home {
        AgentHome::Project => {
            if !dry_run {
                let state = ensure_state(&state_root, &spec.project)?;
                let dir =
                    project_agent_dir(&state, &spec.project, &spec.user.home, &mut w.notices)?;
                add_notify_hooks(&dir, Path::new("settings.json"))?;
                register_mcp_servers(&dir, &spec.mcp, Some(&state))?;
            }
            w.binds.push(Bind {
                source: state_path.join(CLAUDE_DIR),
                dest: claude_dir.clone(),
                mode: MountMode::ReadWrite,
            });
            w.env
                .insert("CLAUDE_CONFIG_DIR".into(), claude_dir.to_string());
        }
        AgentHome::Host => {
            if !dry_run {
                mkdir_private(&host_claude)?;
            }
            w.binds.push(Bind {
                source: host_claude,
                dest: claude_dir,
                mode: MountMode::ReadWrite,
            });
            let staging = PathBuf::from(format!("run/home-{}", std::process::id()));
            if !dry_run {
                let state = ensure_state(&state_root, &spec.project)?;
                let home_dir = fresh_dir(&state, &staging)?;
                if let Some(bytes) = read_host_file(&spec.user.home, ".claude.json")? {
                    write(&home_dir, ".claude.json", &bytes)?;
                }
                if !spec.mcp.is_empty() {
                    register_mcp_servers(&home_dir, &spec.mcp, None)?;
                }
            }
            w.home_source = Some(state_path.join(&staging));
            w.after_exit.push(AfterExit::CopyBack {
                state: state_path,
                staging,
                to: host_json,
                mcp_servers: spec.mcp.keys().cloned().collect(),
            });
        }
    }
    Ok(w)
}

fn ensure_state(root: &Path, project: &Path) -> Result<Dir, SandboxError> {
    Ok(wrapix_spec::state::ensure_project_dir(root, project)?)
}

fn fs_err(e: wrapix_hostfs::HostFsError) -> SandboxError {
    SandboxError::HostFs(e)
}

/// `CLAUDE_CODE_OAUTH_TOKEN` from the host environment, else `~/.config/wrapix/claude-token`.
fn oauth_token(host_home: &Path, env: &BTreeMap<String, String>) -> Option<String> {
    if let Some(t) = env.get("CLAUDE_CODE_OAUTH_TOKEN").filter(|t| !t.is_empty()) {
        return Some(t.clone());
    }
    let config = env
        .get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| host_home.join(".config"));
    let token = std::fs::read_to_string(config.join("wrapix/claude-token")).ok()?;
    let token = token.trim();
    (!token.is_empty() && !token.contains('\0')).then(|| token.to_owned())
}

/// A file of the host user's own (`~/.claude.json`, `~/.claude/settings.json`): read without
/// following a symlink (with `home = "host"`, an agent could have planted one in `~/.claude`).
fn read_host_file(host_home: &Path, rel: &str) -> Result<Option<Vec<u8>>, SandboxError> {
    let home = match Dir::open(host_home) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(fs_err(e)),
    };
    home.read(Path::new(rel), JSON_LIMIT).map_err(fs_err)
}

/// `<state>/claude`, created and seeded on first use: migrated from an older wrapix's
/// `<project>/.wrapix/agent/claude` when there is one, else copied from the host's config.
fn project_agent_dir(
    state: &Dir,
    project: &Path,
    host_home: &Path,
    notices: &mut Vec<String>,
) -> Result<Dir, SandboxError> {
    if let Some(dir) = state.open_dir(Path::new(CLAUDE_DIR)).map_err(fs_err)? {
        return Ok(dir);
    }
    // Seed into a temporary folder and rename, so a failed seed is never half-used.
    let tmp = Path::new(".claude.seeding");
    let seed = fresh_dir(state, tmp)?;
    match legacy_dir(project) {
        Ok(Some(old)) => {
            let skipped = copy_tree(&old, &seed)?;
            notices.push(format!(
                "moved the agent's state from {} (older wrapix) to {}; the old folder is no longer used: remove it with `rm -r {}`{}",
                old.path().display(),
                state.path().join(CLAUDE_DIR).display(),
                project.join(".wrapix").display(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (not copied: {}, links and special files are never followed)",
                        skipped.join(", ")
                    )
                }
            ));
        }
        Ok(None) => {
            for name in SEED_FILES {
                let rel = format!(".claude/{name}");
                if let Some(bytes) = read_host_file(host_home, &rel)? {
                    write(&seed, name, &bytes)?;
                }
            }
            if let Some(bytes) = read_host_file(host_home, ".claude.json")? {
                write(&seed, ".claude.json", &bytes)?;
            }
        }
        Err(why) => notices.push(format!(
            "{}/{LEGACY_DIR} (agent state of an older wrapix) was not migrated: {why}",
            project.display()
        )),
    }
    state
        .rename(tmp, state, Path::new(CLAUDE_DIR))
        .map_err(fs_err)?;
    state
        .open_dir(Path::new(CLAUDE_DIR))
        .map_err(fs_err)?
        .ok_or_else(|| {
            SandboxError::io(
                "open the agent's state folder",
                std::io::ErrorKind::NotFound.into(),
            )
        })
}

/// The agent state folder an older wrapix kept in the project, if there is one and it can be
/// opened without following a link (a link there is a reason not to migrate, said as such).
fn legacy_dir(project: &Path) -> Result<Option<Dir>, String> {
    let project = Dir::open(project).map_err(|e| e.to_string())?;
    project
        .open_dir(Path::new(LEGACY_DIR))
        .map_err(|e| e.to_string())
}

/// Copies folders and regular files from `from` into `to`; symlinks, special files and files
/// over the limit are left behind and named in the result.
fn copy_tree(from: &Dir, to: &Dir) -> Result<Vec<String>, SandboxError> {
    let mut skipped = Vec::new();
    for (name, kind) in from.entries().map_err(fs_err)? {
        let rel = Path::new(&name);
        match kind {
            Kind::Dir => {
                let Some(sub) = from.open_dir(rel).map_err(fs_err)? else {
                    continue;
                };
                let dest = to.create_dir_all(rel, 0o700).map_err(fs_err)?;
                skipped.extend(
                    copy_tree(&sub, &dest)?
                        .into_iter()
                        .map(|s| format!("{}/{s}", name.to_string_lossy())),
                );
            }
            Kind::File => match from.read(rel, MIGRATE_FILE_LIMIT) {
                Ok(Some(bytes)) => to.write_atomic(rel, &bytes, 0o600).map_err(fs_err)?,
                Ok(None) => {}
                Err(_) => skipped.push(name.to_string_lossy().into_owned()),
            },
            Kind::Symlink | Kind::Other => skipped.push(name.to_string_lossy().into_owned()),
        }
    }
    Ok(skipped)
}

/// An empty private folder `rel` below `dir` (whatever was there is removed first).
fn fresh_dir(dir: &Dir, rel: &Path) -> Result<Dir, SandboxError> {
    dir.remove_all(rel).map_err(fs_err)?;
    dir.create_dir_all(rel, 0o700).map_err(fs_err)
}

fn write(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), SandboxError> {
    dir.write_atomic(Path::new(name), bytes, 0o600)
        .map_err(fs_err)
}

fn mkdir_private(dir: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(SandboxError::io(format!("create {}", dir.display()), e)),
    }
}

/// Runs the after-exit work; errors are reported, never dropped.
pub fn after_exit(work: &[AfterExit]) -> Result<(), SandboxError> {
    for w in work {
        match w {
            AfterExit::CopyBack {
                state,
                staging,
                to,
                mcp_servers,
            } => {
                let state = Dir::open(state).map_err(fs_err)?;
                let result = copy_back(&state, &staging.join(".claude.json"), to, mcp_servers);
                let cleaned = state.remove_all(staging).map_err(fs_err);
                result?;
                cleaned?;
            }
        }
    }
    Ok(())
}

/// Replaces the host file `to` with the agent's `from` (below `state`, never through a link)
/// by writing a temporary file beside `to`, fsync, rename. The `mcpServers` entries named in
/// `ours` are first set back to what `to` has (or removed).
fn copy_back(state: &Dir, from: &Path, to: &Path, ours: &[String]) -> Result<(), SandboxError> {
    let Some(mut new) = state.read(from, JSON_LIMIT).map_err(fs_err)? else {
        return Ok(());
    };
    let (Some(to_dir), Some(to_name)) = (to.parent(), to.file_name()) else {
        return Ok(());
    };
    let host = Dir::open(to_dir).map_err(fs_err)?;
    let current = host.read(Path::new(to_name), JSON_LIMIT).map_err(fs_err)?;
    if !ours.is_empty() {
        // When the agent left something that is not JSON, it is copied back as it is: the
        // user's data matters more than removing our entries.
        if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&new) {
            let host_doc: Option<serde_json::Value> = current
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok());
            if merge::restore_mcp_servers(&mut doc, host_doc.as_ref(), ours) {
                new = merge::to_json_text(&doc);
            }
        }
    }
    if current.as_deref() == Some(new.as_slice()) {
        return Ok(());
    }
    host.write_atomic(Path::new(to_name), &new, 0o600)
        .map_err(|e| {
            SandboxError::io(
                format!("copy the agent's .claude.json back to {}", to.display()),
                std::io::Error::other(e),
            )
        })
}

/// Adds wrapix's `Stop` and `Notification` hooks (desktop notifications through
/// `wrapix notify`) to the agent's `settings.json`, keeping the user's own hooks and settings.
/// Written atomically, and only when something changed; settings that are not valid JSON are
/// a loud error, never overwritten.
fn add_notify_hooks(dir: &Dir, rel: &Path) -> Result<(), SandboxError> {
    let mut settings = read_json(dir, rel)?;
    let changed = merge::merge_notify_hooks(&mut settings).map_err(|problem| {
        SandboxError::io(
            format!(
                "add notification hooks to {}",
                dir.display_path(rel).display()
            ),
            std::io::Error::new(std::io::ErrorKind::InvalidData, problem),
        )
    })?;
    if !changed {
        return Ok(());
    }
    dir.write_atomic(rel, &merge::to_json_text(&settings), 0o600)
        .map_err(fs_err)
}

/// Reads a JSON object file: missing or blank is `{}`; anything that is not JSON is a loud
/// error and the file is left alone. A symlink or special file is an error.
fn read_json(dir: &Dir, rel: &Path) -> Result<serde_json::Value, SandboxError> {
    match dir.read(rel, JSON_LIMIT).map_err(fs_err)? {
        None => Ok(serde_json::json!({})),
        Some(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Some(b) => serde_json::from_slice(&b).map_err(|e| {
            SandboxError::io(
                format!(
                    "read {} (fix or remove it: it is not valid JSON)",
                    dir.display_path(rel).display()
                ),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
    }
}

/// The file in the project's state folder (never mounted) that lists the `mcpServers` wrapix
/// wrote, so that a server removed from `wrapix.toml` is removed from the agent's config too,
/// while servers the user added themselves are never touched.
const MCP_RECORD: &str = "wrapix-mcp-servers.json";

/// Registers `servers` in Claude Code's `mcpServers` (in `<dir>/.claude.json`, user scope),
/// merged with the user's own entries. Written atomically and only when something changed.
/// `record`: the state folder that keeps [`MCP_RECORD`].
fn register_mcp_servers(
    dir: &Dir,
    servers: &BTreeMap<String, McpServer>,
    record: Option<&Dir>,
) -> Result<(), SandboxError> {
    let record_path = Path::new(MCP_RECORD);
    let previous: Vec<String> = match record.map(|r| r.read(record_path, JSON_LIMIT)) {
        Some(Ok(Some(b))) => serde_json::from_slice(&b).unwrap_or_default(),
        Some(Err(e)) => return Err(fs_err(e)),
        _ if servers.is_empty() => return Ok(()),
        _ => Vec::new(),
    };
    if previous.is_empty() && servers.is_empty() {
        return Ok(());
    }
    let json = Path::new(".claude.json");
    let mut doc = read_json(dir, json)?;
    let changed = merge::merge_mcp_servers(&mut doc, servers, &previous).map_err(|problem| {
        SandboxError::io(
            format!(
                "register MCP servers in {}",
                dir.display_path(json).display()
            ),
            std::io::Error::new(std::io::ErrorKind::InvalidData, problem),
        )
    })?;
    if changed {
        dir.write_atomic(json, &merge::to_json_text(&doc), 0o600)
            .map_err(fs_err)?;
    }
    if let Some(record) = record {
        let names: Vec<&String> = servers.keys().collect();
        let names = serde_json::to_vec(&names).unwrap_or_default();
        if record
            .read(record_path, JSON_LIMIT)
            .ok()
            .flatten()
            .as_deref()
            != Some(names.as_slice())
        {
            record
                .write_atomic(record_path, &names, 0o600)
                .map_err(fs_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
