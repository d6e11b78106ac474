//! The audit log: one JSON line per tool call, and optionally every capture in full.
//!
//! Line format (keys in this order; `pane_id`, `output_bytes` and `error` only when known):
//! `{"ts":"2026-01-30T10:15:46.123Z","tool":"tmux_capture_pane","pane_id":"server",
//!   "arguments":{"pane_id":"server","lines":200},"output_bytes":4523}`
//! Captured text is never in the log, only its size; with `audit_full` each capture is written
//! to `DIR/<pane_id>-capture-NNN.txt` (NNN counts per pane from 001).
//!
//! A write that fails is reported to the caller, which tells the client and logs to stderr.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::error::McpError;

/// Where audit records go.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    log: Option<PathBuf>,
    full: Option<PathBuf>,
}

/// One call, as logged.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub ts: String,
    pub tool: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pane_id: Option<&'a str>,
    pub arguments: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl Audit {
    /// Checks that the log can be appended to and the capture folder created, so that a
    /// misconfiguration stops the server at start instead of failing every call.
    pub fn open(log: Option<PathBuf>, full: Option<PathBuf>) -> Result<Audit, McpError> {
        if let Some(path) = &log {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| McpError::Audit {
                    what: "log",
                    key: "audit",
                    env: "TMUX_DEBUG_AUDIT",
                    path: path.clone(),
                    source,
                })?;
        }
        if let Some(dir) = &full {
            std::fs::create_dir_all(dir).map_err(|source| McpError::Audit {
                what: "capture folder",
                key: "audit_full",
                env: "TMUX_DEBUG_AUDIT_FULL",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(Audit { log, full })
    }

    pub fn keeps_captures(&self) -> bool {
        self.full.is_some()
    }

    /// Appends one line (one `write` of the whole line, `O_APPEND`).
    pub async fn record(&self, record: &Record<'_>) -> Result<(), String> {
        let Some(path) = &self.log else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(record).map_err(|e| format!("encode: {e}"))?;
        line.push(b'\n');
        append(path, &line)
            .await
            .map_err(|e| format!("audit log {}: {e}", path.display()))
    }

    /// Writes a capture to `DIR/<pane_id>-capture-NNN.txt`.
    pub async fn capture(&self, pane_id: &str, seq: u32, text: &str) -> Result<(), String> {
        let Some(dir) = &self.full else {
            return Ok(());
        };
        let path = dir.join(capture_file_name(pane_id, seq));
        tokio::fs::write(&path, text)
            .await
            .map_err(|e| format!("audit capture {}: {e}", path.display()))
    }
}

pub fn capture_file_name(pane_id: &str, seq: u32) -> String {
    format!("{pane_id}-capture-{seq:03}.txt")
}

async fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        let args = serde_json::json!({"pane_id": "server", "lines": 200});
        let r = Record {
            ts: "2026-01-30T10:15:46.123Z".into(),
            tool: "tmux_capture_pane",
            pane_id: Some("server"),
            arguments: &args,
            output_bytes: Some(4523),
            error: None,
        };
        let line = serde_json::to_string(&r).unwrap_or_default();
        assert!(
            line.starts_with(r#"{"ts":"2026-01-30T10:15:46.123Z","tool":"tmux_capture_pane","pane_id":"server","arguments":{"#),
            "{line}"
        );
        assert!(line.ends_with(r#"},"output_bytes":4523}"#), "{line}");
        assert_eq!(capture_file_name("server", 7), "server-capture-007.txt");
        assert!(now().ends_with('Z'));
    }

    #[tokio::test]
    async fn appends_and_reports_failures() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = t.path().join("audit.log");
        let audit = Audit::open(Some(log.clone()), Some(t.path().join("full")))
            .unwrap_or_else(|e| panic!("{e}"));
        let args = serde_json::json!({});
        let r = Record {
            ts: now(),
            tool: "tmux_list_panes",
            pane_id: None,
            arguments: &args,
            output_bytes: None,
            error: None,
        };
        audit.record(&r).await.unwrap_or_else(|e| panic!("{e}"));
        audit.record(&r).await.unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(text.lines().count(), 2);
        audit
            .capture("p", 1, "hello")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(t.path().join("full/p-capture-001.txt").exists());

        // The log vanishes and its folder becomes a file: the failure is reported.
        std::fs::remove_dir_all(t.path().join("full")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(t.path().join("full"), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(audit.capture("p", 2, "x").await.is_err());

        assert!(Audit::open(Some(t.path().join("no/such/dir/log")), None).is_err());
    }
}
