//! The session registry: one JSON file per running sandbox in the sessions folder
//! (`$XDG_RUNTIME_DIR/wrapix/sessions/<session id>.json`), written atomically by the launcher,
//! read by the daemon to decide on focus, removed when the launcher exits. A file whose
//! launcher is gone (crash, SIGKILL) is stale and is removed by the next reader.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::focus::{self, TmuxRef, WindowRef};
use crate::frame::is_token;
use crate::{paths, NotifyError};

/// A registered session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub v: u32,
    pub session_id: String,
    /// The launcher (`wrapix`) process, alive as long as the sandbox runs.
    pub pid: u32,
    /// Its start time (clock ticks since boot, Linux), so a reused PID is not mistaken for it.
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub project: Option<PathBuf>,
    pub window: WindowRef,
    #[serde(default)]
    pub tmux: Option<TmuxRef>,
}

impl SessionRecord {
    /// A record for the current process, from its environment (asks the desktop and tmux).
    pub fn for_this_process(env: &BTreeMap<String, String>, project: Option<&Path>) -> Self {
        let pid = std::process::id();
        let window = focus::detect(env);
        let tmux = focus::tmux::detect(env);
        let name = tmux
            .as_ref()
            .and_then(focus::tmux::pane_name)
            .or_else(|| match &window {
                WindowRef::Niri { id: Some(id), .. } => Some(format!("niri-{id}")),
                WindowRef::Sway { id: Some(id), .. } => Some(format!("sway-{id}")),
                WindowRef::Hyprland {
                    address: Some(a), ..
                } => Some(format!("hypr-{a}")),
                WindowRef::X11 { id: Some(id), .. } => Some(format!("x11-{id:#x}")),
                _ => None,
            });
        let session_id = match name.map(|n| sanitize(&n)).filter(|n| is_token(n)) {
            // Several sandboxes can start from one terminal: the PID keeps ids apart.
            Some(n) if !registered_elsewhere(env, &n, pid) => n,
            Some(n) => format!("{n}.{pid}"),
            None => format!("wrapix-{pid}"),
        };
        SessionRecord {
            v: 1,
            session_id,
            pid,
            start_time: start_time(pid),
            project: project.map(Path::to_owned),
            window,
            tmux,
        }
    }

    /// Whether the launcher that wrote the record still runs.
    pub fn is_alive(&self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let exists = match nix::sys::signal::kill(pid, None) {
            Ok(()) => true,
            Err(e) => e == nix::errno::Errno::EPERM,
        };
        exists
            && match (self.start_time, start_time(self.pid)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

fn registered_elsewhere(env: &BTreeMap<String, String>, id: &str, pid: u32) -> bool {
    lookup(&paths::sessions_dir(env), id).is_some_and(|r| r.pid != pid)
}

/// Characters outside [`is_token`] become `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:%@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

/// Field 22 of `/proc/PID/stat` (after the parenthesised command name).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A registration that removes its file when dropped (only if the file is still its own).
#[derive(Debug)]
pub struct Registration {
    pub record: SessionRecord,
    pub path: PathBuf,
}

impl Registration {
    pub fn session_id(&self) -> &str {
        &self.record.session_id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let ours = read(&self.path).is_some_and(|r| r.pid == self.record.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The launcher side: records this process's session. Also removes stale records.
pub fn register(
    env: &BTreeMap<String, String>,
    project: Option<&Path>,
) -> Result<Registration, NotifyError> {
    let dir = paths::sessions_dir(env);
    let record = SessionRecord::for_this_process(env, project);
    register_in(&dir, record)
}

/// Writes `record` into `dir` atomically (temporary file, rename). No fsync: the registry is
/// runtime state that dies with the session, and the launch path must stay fast.
pub fn register_in(dir: &Path, record: SessionRecord) -> Result<Registration, NotifyError> {
    if !is_token(&record.session_id) {
        return Err(NotifyError::Invalid(format!(
            "session id {:?} is not a safe file name",
            record.session_id
        )));
    }
    paths::private_dir(dir)?;
    clean_stale(dir);
    let path = dir.join(format!("{}.json", record.session_id));
    let tmp = dir.join(format!(".{}.{}.tmp", record.session_id, record.pid));
    let body = serde_json::to_vec_pretty(&record)
        .map_err(|e| NotifyError::Invalid(format!("cannot encode the session record: {e}")))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&body)?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        NotifyError::io(format!("write {}", path.display()), e)
    })?;
    Ok(Registration { record, path })
}

fn read(path: &Path) -> Option<SessionRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The live record of `id`; a stale one is removed and `None` returned.
pub fn lookup(dir: &Path, id: &str) -> Option<SessionRecord> {
    if !is_token(id) {
        return None;
    }
    let path = dir.join(format!("{id}.json"));
    let record = read(&path)?;
    if record.is_alive() {
        Some(record)
    } else {
        let _ = std::fs::remove_file(&path);
        None
    }
}

/// Removes records whose launcher is gone, and unreadable ones; returns how many.
pub fn clean_stale(dir: &Path) -> usize {
    let mut removed = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let stale = read(&path).is_none_or(|r| !r.is_alive());
        if stale && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, pid: u32) -> SessionRecord {
        SessionRecord {
            v: 1,
            session_id: id.into(),
            pid,
            start_time: start_time(pid),
            project: None,
            window: WindowRef::None,
            tmux: None,
        }
    }

    #[test]
    fn register_lookup_drop() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = t.path().join("sessions");
        let reg = register_in(&dir, record("0:1.0", std::process::id()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            lookup(&dir, "0:1.0").map(|r| r.pid),
            Some(std::process::id())
        );
        assert_eq!(lookup(&dir, "../sessions/0:1.0"), None);
        drop(reg);
        assert!(!dir.join("0:1.0.json").exists());
    }

    #[test]
    fn stale_records_are_removed() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = t.path().join("sessions");
        // A child that has exited: its PID is free.
        let mut child = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let dead = child.id();
        let _ = child.wait();
        let stale = register_in(&dir, record("dead", dead)).unwrap_or_else(|e| panic!("{e}"));
        std::mem::forget(stale);
        std::fs::write(dir.join("garbage.json"), "{").unwrap_or_else(|e| panic!("{e}"));
        let live =
            register_in(&dir, record("live", std::process::id())).unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.join("dead.json").exists());
        assert!(!dir.join("garbage.json").exists());
        assert!(lookup(&dir, "live").is_some());
        drop(live);
    }

    #[test]
    fn this_process_gets_a_safe_id() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env: BTreeMap<String, String> = [(
            "XDG_RUNTIME_DIR".to_owned(),
            t.path().to_string_lossy().into_owned(),
        )]
        .into();
        let r = SessionRecord::for_this_process(&env, None);
        assert!(is_token(&r.session_id), "{}", r.session_id);
        assert!(r.is_alive());
        assert_eq!(sanitize("a b/c"), "a_b_c");
    }
}
