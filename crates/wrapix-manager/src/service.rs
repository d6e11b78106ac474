//! The one service every front end (JSON API, dashboard, `--stop-all`) calls: create, list,
//! find, stop, delete, reconcile and watch sessions. Blocking work (SQLite, tmux, the file
//! system) runs here in plain functions; async callers wrap them in `spawn_blocking`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::{CreateRequest, NewSession, Session, Status};
use crate::store::{now, Store, StoreError};
use crate::tmux::{Probe, Tmux};
use crate::{validate, ApiError};

/// What the manager needs from wrapix's launch path (implemented by the CLI, which owns it).
pub trait Launcher: Send + Sync + 'static {
    /// Whether `wrapix run` in the session's project folder, with its choices, would start:
    /// the configs (with the project's trust) are loaded and validated. The error is shown
    /// to the client.
    fn check(&self, s: &NewSession) -> Result<(), String>;
    /// The program and arguments of the session's tmux window.
    fn argv(&self, s: &NewSession) -> Vec<OsString>;
    /// Where the agent of `project` keeps its Claude Code transcripts (`…/projects/`).
    fn transcripts(&self, project: &Path) -> Option<PathBuf>;
}

/// The daemon's fixed facts.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    /// Where project folders may be (resolved when checked).
    pub roots: Vec<PathBuf>,
    /// The daemon's user: the only peer of the socket, the only owner of projects.
    pub uid: u32,
    /// The TCP address, when listening there (the `Host` check names it).
    pub listen: Option<std::net::SocketAddr>,
    /// The TCP door's token.
    pub token: String,
    /// `MANAGER_STATIC_DIR`: assets from this folder instead of the binary.
    pub static_dir: Option<PathBuf>,
}

/// The newest screenshot of a session.
#[derive(Clone)]
pub struct Shot {
    pub png: Arc<Vec<u8>>,
    pub etag: String,
    pub at: std::time::Instant,
}

pub struct Manager {
    pub cfg: Config,
    pub store: Store,
    pub tmux: Tmux,
    pub launcher: Arc<dyn Launcher>,
    pub shots: Mutex<HashMap<String, Shot>>,
    pub metrics: crate::metrics::Metrics,
    /// One create at a time (the name check and the insert; starting is quick).
    create: Mutex<()>,
}

/// How long `wrapix run` has to remove its sandbox after tmux hangs it up.
const STOP_WAIT: Duration = Duration::from_secs(15);

fn uuid_v4() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(_) => ApiError::conflict(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

impl Manager {
    pub fn new(cfg: Config, launcher: Arc<dyn Launcher>) -> Result<Manager, String> {
        let store = Store::open(&cfg.state_dir.join("state.db")).map_err(|e| e.to_string())?;
        let tdir = cfg.state_dir.join("tmux");
        crate::daemon::private_dir(&tdir)?;
        crate::daemon::private_dir(&cfg.state_dir.join("logs"))?;
        Ok(Manager {
            tmux: Tmux::new(tdir),
            store,
            cfg,
            launcher,
            shots: Mutex::new(HashMap::new()),
            metrics: crate::metrics::Metrics::default(),
            create: Mutex::new(()),
        })
    }

    fn decorate(&self, mut s: Session) -> Session {
        s.attach = format!("wrapix remote attach {}", s.id);
        s
    }

    pub fn list(&self) -> Result<Vec<Session>, ApiError> {
        Ok(self
            .store
            .list()?
            .into_iter()
            .map(|s| self.decorate(s))
            .collect())
    }

    /// The session with this id, or the one whose id starts with it, or whose name it is.
    pub fn find(&self, key: &str) -> Result<Session, ApiError> {
        let all = self.list()?;
        if let Some(s) = all.iter().find(|s| s.id == key || s.name == key) {
            return Ok(s.clone());
        }
        let m: Vec<&Session> = if key.is_empty() {
            Vec::new()
        } else {
            all.iter().filter(|s| s.id.starts_with(key)).collect()
        };
        match m.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ApiError::not_found(format!("no session {key:?}"))),
            _ => Err(ApiError::conflict(format!(
                "{key:?} is the start of more than one session's id: give more of it"
            ))),
        }
    }

    /// Validates, records (`creating`), starts the tmux session, records `running` (or
    /// `failed` with the reason). A refused request starts and writes nothing.
    pub fn create(&self, req: &CreateRequest) -> Result<Session, ApiError> {
        let new = validate::request(req, self.cfg.uid, &self.cfg.roots)
            .map_err(|e| ApiError::unprocessable(e.0))?;
        // The manager's own sockets (its door and every session's tmux server) run commands
        // on the host: a sandbox whose project holds the state folder could connect to them.
        // (The default state folder is hidden in every sandbox; one named by --state-dir may
        // be anywhere.)
        let state = std::fs::canonicalize(&self.cfg.state_dir)
            .unwrap_or_else(|_| self.cfg.state_dir.clone());
        if state.starts_with(&new.project_dir) {
            return Err(ApiError::unprocessable(format!(
                "project_dir: {} contains the manager's state folder {} (its sockets control every session); choose a folder that does not",
                new.project_dir.display(),
                state.display()
            )));
        }
        let _one = self
            .create
            .lock()
            .map_err(|_| ApiError::internal("lock poisoned"))?;
        if self.store.list()?.iter().any(|s| s.name == new.name) {
            return Err(ApiError::conflict(format!(
                "a session named {:?} exists already",
                new.name
            )));
        }
        self.launcher.check(&new).map_err(ApiError::unprocessable)?;
        let t = now();
        let mut s = Session {
            id: uuid_v4()?,
            name: new.name.clone(),
            project_dir: new.project_dir.clone(),
            backend: new.backend.clone(),
            profile: new.profile.clone(),
            network: new.network,
            status: Status::Creating,
            exit_code: None,
            reason: None,
            created_at: t.clone(),
            updated_at: t,
            attach: String::new(),
        };
        self.store.insert(&s)?;
        let argv = self.launcher.argv(&new);
        match self.tmux.start(&s.id, &argv, &new.project_dir) {
            Ok(()) => {
                self.store
                    .set_status(&s.id, Status::Running, None, None, &[Status::Creating])?;
                s.status = Status::Running;
            }
            Err(e) => {
                tracing::warn!(id = %s.id, "session failed to start: {e}");
                self.store.set_status(
                    &s.id,
                    Status::Failed,
                    None,
                    Some(&e),
                    &[Status::Creating],
                )?;
                s.status = Status::Failed;
                s.reason = Some(e);
            }
        }
        Ok(self.decorate(self.store.get(&s.id)?.unwrap_or(s)))
    }

    /// Ends a live session (tmux hangs up `wrapix run`, which removes the sandbox).
    pub fn stop(&self, key: &str) -> Result<Session, ApiError> {
        let s = self.find(key)?;
        if s.status.is_live() {
            self.save_log(&s.id);
            self.store.set_status(
                &s.id,
                Status::Stopped,
                None,
                Some("stopped on request"),
                &[Status::Creating, Status::Running],
            )?;
            self.tmux.kill(&s.id, STOP_WAIT);
        }
        self.find(&s.id)
    }

    /// Stops it first, then forgets it (its log too).
    pub fn delete(&self, key: &str) -> Result<(), ApiError> {
        let s = self.stop(key)?;
        self.store.delete(&s.id)?;
        let _ = std::fs::remove_file(self.log_path(&s.id));
        if let Ok(mut shots) = self.shots.lock() {
            shots.remove(&s.id);
        }
        Ok(())
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.cfg.state_dir.join("logs").join(format!("{id}.log"))
    }

    /// Keeps the window's text (last 1 MiB) beside the state, for after the session.
    fn save_log(&self, id: &str) {
        let Some(text) = self.tmux.capture(id) else {
            return;
        };
        let bytes = text.as_bytes();
        let bytes = &bytes[bytes.len().saturating_sub(1 << 20)..];
        let path = self.log_path(id);
        let tmp = path.with_extension("log.tmp");
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(bytes)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            tracing::warn!("cannot keep the log of {id}: {e}");
        }
    }

    /// The session's terminal text: live from tmux, else what was kept.
    pub fn log(&self, key: &str) -> Result<(Session, String), ApiError> {
        let s = self.find(key)?;
        let text = if s.status.is_live() {
            self.tmux.capture(&s.id)
        } else {
            None
        };
        let text = text
            .or_else(|| std::fs::read_to_string(self.log_path(&s.id)).ok())
            .unwrap_or_default();
        Ok((s, text))
    }

    /// The process of the session's `wrapix run`, when it runs.
    pub fn pid(&self, id: &str) -> Option<u32> {
        match self.tmux.probe(id) {
            Probe::Alive { pid } => Some(pid),
            _ => None,
        }
    }

    /// At start: adopt the sessions whose tmux still runs; mark the others `exited` with
    /// the reason. Then [`Manager::watch`] keeps doing so.
    pub fn reconcile(&self) -> Result<(), ApiError> {
        for s in self.store.list()? {
            if s.status.is_live() {
                self.check_one(&s, true);
            }
        }
        Ok(())
    }

    /// One pass over the running sessions: those whose command ended become `exited`.
    pub fn watch(&self) -> Result<(), ApiError> {
        for s in self.store.list()? {
            if s.status == Status::Running {
                self.check_one(&s, false);
            }
        }
        Ok(())
    }

    fn check_one(&self, s: &Session, starting: bool) {
        let live = [Status::Creating, Status::Running];
        let r = match self.tmux.probe_settled(&s.id) {
            Probe::Alive { .. } => {
                if starting {
                    tracing::info!(id = %s.id, name = %s.name, "adopted a running session");
                    self.store
                        .set_status(&s.id, Status::Running, None, None, &live)
                } else {
                    Ok(true)
                }
            }
            Probe::Dead { code } => {
                self.save_log(&s.id);
                let reason = match code {
                    Some(c) => format!("the sandbox exited with status {c}"),
                    None => "the sandbox was killed by a signal".to_owned(),
                };
                let r = self
                    .store
                    .set_status(&s.id, Status::Exited, code, Some(&reason), &live);
                self.tmux.kill(&s.id, Duration::from_secs(1));
                r
            }
            Probe::Gone => {
                let reason = if s.status == Status::Creating {
                    "the manager stopped before the session had started, and no tmux session of it is left"
                } else {
                    "its tmux session is gone (killed, or the host restarted)"
                };
                self.store
                    .set_status(&s.id, Status::Exited, None, Some(reason), &live)
            }
        };
        if let Err(e) = r {
            tracing::warn!(id = %s.id, "cannot record the session's status: {e}");
        }
    }

    /// `--stop-all`: ends every live session.
    pub fn stop_all(&self) -> Result<usize, ApiError> {
        let mut n = 0;
        for s in self.store.list()? {
            if s.status.is_live() {
                self.stop(&s.id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
