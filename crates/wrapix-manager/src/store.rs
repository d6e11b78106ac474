//! Durable state: one SQLite database (`DIR/state.db`, WAL, synchronous FULL) holding the
//! sessions. A row is written before anything is started, and every status change is one
//! transaction: a `kill -9` at any moment leaves either the old or the new row, never half.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{Network, Session, Status};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("a session named {0:?} exists already")]
    NameTaken(String),
    #[error("the state database holds a bad row ({0}): it was not written by this manager")]
    Corrupt(String),
    #[error("the state database's lock was poisoned")]
    Poisoned,
}

/// The sessions table. Cheap to clone; every call is short (no lock held across `.await`:
/// async callers go through `spawn_blocking`).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    project_dir TEXT NOT NULL,
    backend     TEXT NOT NULL,
    profile     TEXT,
    network     TEXT,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    reason      TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);";

pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = |source| StoreError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn).map_err(|source| StoreError::Db {
            path: self.path.clone(),
            source,
        })
    }

    /// Inserts a new session; a taken name is [`StoreError::NameTaken`].
    pub fn insert(&self, s: &Session) -> Result<(), StoreError> {
        let r = self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, name, project_dir, backend, profile, network, status,
                   exit_code, reason, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    s.id,
                    s.name,
                    s.project_dir.to_string_lossy(),
                    s.backend,
                    s.profile,
                    s.network.map(Network::as_str),
                    s.status.as_str(),
                    s.exit_code,
                    s.reason,
                    s.created_at,
                    s.updated_at
                ],
            )
        });
        match r {
            Err(StoreError::Db {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            }) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(StoreError::NameTaken(s.name.clone()))
            }
            r => r.map(|_| ()),
        }
    }

    /// Sets a session's status (and exit code, reason); returns whether the row exists.
    /// `only_if`: change it only from one of these statuses (a stop is not overwritten by the
    /// monitor's "exited").
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        exit_code: Option<i32>,
        reason: Option<&str>,
        only_if: &[Status],
    ) -> Result<bool, StoreError> {
        let now = now();
        let rows = self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let cur: Option<String> = tx
                .query_row("SELECT status FROM sessions WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(cur) = cur else { return Ok(0) };
            if !only_if.is_empty() && !only_if.iter().any(|s| s.as_str() == cur) {
                return Ok(0);
            }
            let n = tx.execute(
                "UPDATE sessions SET status = ?2, exit_code = ?3, reason = ?4, updated_at = ?5
                 WHERE id = ?1",
                params![id, status.as_str(), exit_code, reason, now],
            )?;
            tx.commit()?;
            Ok(n)
        })?;
        Ok(rows > 0)
    }

    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.with(|c| c.execute("DELETE FROM sessions WHERE id = ?1", [id]))? > 0)
    }

    pub fn list(&self) -> Result<Vec<Session>, StoreError> {
        let rows = self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, name, project_dir, backend, profile, network, status, exit_code,
                        reason, created_at, updated_at
                 FROM sessions ORDER BY created_at, name",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, Option<i32>>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, String>(10)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(
                |(id, name, dir, backend, profile, network, status, exit_code, reason, c, u)| {
                    let status = Status::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?;
                    let network = match network.as_deref() {
                        None => None,
                        Some("open") => Some(Network::Open),
                        Some("none") => Some(Network::None),
                        Some(n) => return Err(StoreError::Corrupt(format!("network {n:?}"))),
                    };
                    Ok(Session {
                        attach: String::new(),
                        id,
                        name,
                        project_dir: PathBuf::from(dir),
                        backend,
                        profile,
                        network,
                        status,
                        exit_code,
                        reason,
                        created_at: c,
                        updated_at: u,
                    })
                },
            )
            .collect()
    }

    pub fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.list()?.into_iter().find(|s| s.id == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, name: &str) -> Session {
        Session {
            id: id.into(),
            name: name.into(),
            project_dir: "/p".into(),
            backend: "bwrap".into(),
            profile: None,
            network: Some(Network::None),
            status: Status::Creating,
            exit_code: None,
            reason: None,
            created_at: now(),
            updated_at: now(),
            attach: String::new(),
        }
    }

    #[test]
    fn round_trip_unique_names_and_guarded_updates() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(&t.path().join("state.db")).unwrap();
        s.insert(&session("a", "one")).unwrap();
        assert!(matches!(
            s.insert(&session("b", "one")),
            Err(StoreError::NameTaken(_))
        ));
        assert!(s
            .set_status(
                "a",
                Status::Stopped,
                None,
                Some("asked"),
                &[Status::Creating]
            )
            .unwrap());
        // The monitor's "exited" does not overwrite a stop.
        assert!(!s
            .set_status("a", Status::Exited, Some(0), None, &[Status::Running])
            .unwrap());
        let reopened = Store::open(&t.path().join("state.db")).unwrap();
        let got = reopened.get("a").unwrap().unwrap();
        assert_eq!(got.status, Status::Stopped);
        assert_eq!(got.reason.as_deref(), Some("asked"));
        assert!(reopened.delete("a").unwrap());
        assert!(reopened.list().unwrap().is_empty());
    }
}
