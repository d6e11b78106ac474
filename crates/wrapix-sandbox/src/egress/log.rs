//! The egress audit log: one JSON line per decision, appended by the host-side proxy only, at
//! `$XDG_STATE_HOME/wrapix/egress.log` (outside every sandbox). `wrapix net log` reads it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The log's file name in wrapix's state folder.
pub const FILE: &str = "egress.log";

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// The run's id (`<project>-<pid>`, as `wrapix ps` shows it).
    pub sandbox: String,
    /// The host the client asked for (as asked, lower-case).
    pub host: String,
    pub port: u16,
    /// `allow`, `deny`, or `error` (allowed, but the connection failed).
    pub verdict: String,
    /// The rule or the reason: `allow github.com`, `deny *.evil.example`, `no rule`,
    /// `address 10.0.0.1 is private (LAN)`, `SNI other.example differs from the CONNECT host`.
    pub rule: String,
    /// `connect` (an HTTP CONNECT tunnel) or `http` (a forwarded plain-HTTP request).
    pub kind: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// `$XDG_STATE_HOME/wrapix/egress.log`.
pub fn path(host_home: &Path, env: &BTreeMap<String, String>) -> PathBuf {
    wrapix_spec::state::root(host_home, env).join(FILE)
}

/// The open log, shared by the proxy's connections.
#[derive(Debug)]
pub struct Log {
    file: Mutex<std::fs::File>,
    /// Bytes this run may still append (the sandbox drives how many lines there are).
    budget: std::sync::atomic::AtomicU64,
}

/// What one run may write into the log; past it, one line says so and the rest is dropped.
const RUN_BUDGET: u64 = 64 << 20;

impl Log {
    /// Opens (creates, 0600, in a 0700 folder) the log for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Log {
            file: Mutex::new(file),
            budget: std::sync::atomic::AtomicU64::new(RUN_BUDGET),
        })
    }

    /// Appends one line (one `write`, so that concurrent runs do not interleave).
    pub fn write(&self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        use std::sync::atomic::Ordering;
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 {
            return;
        }
        if (line.len() as u64) >= left {
            self.budget.store(0, Ordering::Relaxed);
            line = format!(
                "{{\"time\":{:?},\"sandbox\":{},\"verdict\":\"log-full\",\"rule\":\"this run wrote {} MiB of decisions; later ones are not logged\"}}\n",
                now(),
                serde_json::to_string(&entry.sandbox).unwrap_or_default(),
                RUN_BUDGET >> 20
            )
            .into_bytes();
        } else {
            self.budget.fetch_sub(line.len() as u64, Ordering::Relaxed);
        }
        let Ok(mut f) = self.file.lock() else { return };
        if let Err(e) = f.write_all(&line) {
            tracing::warn!("egress log: {e}");
        }
    }
}

/// Now, RFC 3339.
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}
