//! Where wrapix keeps its own per-user state: `$XDG_STATE_HOME/wrapix` (default
//! `~/.local/state/wrapix`), outside every project and every sandbox.
//!
//! ```text
//! projects/<name>-<hash>/        one folder per project (0700)
//!     project                    the project's path, for people and `wrapix trust --list`
//!     trust.json                 the trusted wrapix.toml (wrapix trust)
//!     ralph.json, ralph.lock     what ralph decided about each task (wrapix_ralph::verified)
//!     claude/                    the agent's state, mounted at ~/.claude ([agent] home = "project")
//!     wrapix-mcp-servers.json    the mcpServers wrapix registered
//!     run/home-<pid>/            the staged home of [agent] home = "host", during a run
//!     quarantine/<time>/         what the git tripwire moved out of the project
//! ```
//! Only `claude/` and `run/home-<pid>/` are ever mounted into a sandbox (their contents, not
//! the folders themselves), so nothing else here can be changed by an agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The folder of per-project state below the state root.
pub const PROJECTS: &str = "projects";

/// A state file or folder that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing it failed, or it is a link or a special file.
    #[error(transparent)]
    Fs(#[from] wrapix_hostfs::HostFsError),
    /// A record wrapix wrote that is no longer one (never silently reset).
    #[error("{}: not a wrapix {what} ({source}) (fix: remove it, then run `wrapix trust` again)", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
}

/// `$XDG_STATE_HOME/wrapix`, or `~/.local/state/wrapix`.
pub fn root(host_home: &Path, env: &BTreeMap<String, String>) -> PathBuf {
    env.get("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| host_home.join(".local/state"))
        .join("wrapix")
}

/// `<name>-<16 hex digits of sha256(path)>`: readable, and unique per canonical path.
pub fn project_id(project: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let hash = Sha256::digest(project.as_os_str().as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name: String = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if name.is_empty() {
        hex
    } else {
        format!("{name}-{hex}")
    }
}

/// The state folder of `project` (not created).
pub fn project_dir(root: &Path, project: &Path) -> PathBuf {
    root.join(PROJECTS).join(project_id(project))
}

/// The state folder of `project`, created (0700) with its `project` file.
pub fn ensure_project_dir(root: &Path, project: &Path) -> Result<wrapix_hostfs::Dir, StateError> {
    use std::os::unix::ffi::OsStrExt;
    let dir = wrapix_hostfs::Dir::create_trusted(&project_dir(root, project), 0o700)?;
    let mut text = project.as_os_str().as_bytes().to_vec();
    text.push(b'\n');
    let current = dir.read(Path::new("project"), 64 * 1024).ok().flatten();
    if current.as_deref() != Some(text.as_slice()) {
        dir.write_atomic(Path::new("project"), &text, 0o600)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_and_distinct() {
        let a = project_id(Path::new("/home/u/src/my project"));
        let b = project_id(Path::new("/home/u/other/my project"));
        assert!(a.starts_with("my_project-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.len(), "my_project-".len() + 16);
        assert_eq!(project_id(Path::new("/")).len(), 16);
    }

    #[test]
    fn root_follows_xdg() {
        let mut env = BTreeMap::new();
        assert_eq!(
            root(Path::new("/h"), &env),
            PathBuf::from("/h/.local/state/wrapix")
        );
        env.insert("XDG_STATE_HOME".into(), "relative".into());
        assert_eq!(
            root(Path::new("/h"), &env),
            PathBuf::from("/h/.local/state/wrapix")
        );
        env.insert("XDG_STATE_HOME".into(), "/s".into());
        assert_eq!(root(Path::new("/h"), &env), PathBuf::from("/s/wrapix"));
    }
}
