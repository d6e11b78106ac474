//! Metrics: the host's (sysinfo), each session's processes (the `wrapix run` of its window and
//! everything under it), and its agent's own numbers from Claude Code's JSONL transcripts,
//! read incrementally: only new bytes, a partial last line kept for the next read, unknown
//! records skipped. The transcripts are written by the sandbox: they are opened beneath their
//! folder without following symlinks, and each read is bounded.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use crate::service::Manager;
use crate::ApiError;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemMetrics {
    /// Over all CPUs since the previous sample, 0–100.
    pub cpu_percent: f32,
    pub cpus: usize,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// The file system of the state folder.
    pub disk_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub load_average: [f64; 3],
    pub uptime_seconds: u64,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct AgentMetrics {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Tool uses by tool name.
    pub tool_uses: BTreeMap<String, u64>,
    pub message_count: u64,
    pub model: Option<String>,
    /// The newest record's timestamp.
    pub last_activity: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionMetrics {
    pub id: String,
    pub status: crate::model::Status,
    /// The session's processes (sandbox included), percent of one CPU.
    pub cpu_percent: f32,
    pub memory_bytes: u64,
    pub processes: usize,
    pub agent: AgentMetrics,
}

/// Where each transcript was read up to.
#[derive(Default)]
struct FileState {
    offset: u64,
    partial: Vec<u8>,
}

#[derive(Default)]
struct Transcripts {
    files: HashMap<PathBuf, FileState>,
    totals: AgentMetrics,
}

#[derive(Default)]
pub struct Metrics {
    sys: Mutex<Option<sysinfo::System>>,
    agents: Mutex<HashMap<String, Transcripts>>,
}

/// New bytes read from one transcript per call, at most.
const READ_LIMIT: u64 = 4 << 20;
/// A line longer than this is skipped (a partial line is kept up to it).
const LINE_LIMIT: usize = 4 << 20;
/// Transcript files followed per session (the agent writes that folder: it could make many).
const FILE_LIMIT: usize = 256;
/// Partial lines kept per session, all files together.
const PARTIAL_BUDGET: usize = 16 << 20;

impl Metrics {
    fn with_sys<T>(&self, f: impl FnOnce(&mut sysinfo::System) -> T) -> T {
        let mut g = match self.sys.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let sys = g.get_or_insert_with(sysinfo::System::new);
        f(sys)
    }

    pub fn system(&self, state_dir: &Path) -> SystemMetrics {
        let (cpu, cpus, total, used) = self.with_sys(|s| {
            s.refresh_cpu_usage();
            s.refresh_memory();
            (
                s.global_cpu_usage(),
                s.cpus().len(),
                s.total_memory(),
                s.used_memory(),
            )
        });
        // The field types differ between Linux (u64) and macOS (u32 block counts).
        #[allow(clippy::unnecessary_cast)]
        let (dt, du) = nix::sys::statvfs::statvfs(state_dir)
            .map(|v| {
                let f = v.fragment_size() as u64;
                let total = v.blocks() as u64 * f;
                (total, total.saturating_sub(v.blocks_free() as u64 * f))
            })
            .unwrap_or((0, 0));
        let l = sysinfo::System::load_average();
        SystemMetrics {
            cpu_percent: cpu,
            cpus,
            memory_total_bytes: total,
            memory_used_bytes: used,
            disk_total_bytes: dt,
            disk_used_bytes: du,
            load_average: [l.one, l.five, l.fifteen],
            uptime_seconds: sysinfo::System::uptime(),
        }
    }

    /// CPU, memory and count of `root` and its descendants.
    fn tree(&self, root: u32) -> (f32, u64, usize) {
        self.with_sys(|s| {
            s.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
            let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
            for (pid, p) in s.processes() {
                if let Some(parent) = p.parent() {
                    children
                        .entry(parent.as_u32())
                        .or_default()
                        .push(pid.as_u32());
                }
            }
            let (mut cpu, mut mem, mut n) = (0.0, 0, 0);
            let mut todo = vec![root];
            while let Some(pid) = todo.pop() {
                if let Some(p) = s.process(sysinfo::Pid::from_u32(pid)) {
                    cpu += p.cpu_usage();
                    mem += p.memory();
                    n += 1;
                }
                if let Some(c) = children.get(&pid) {
                    todo.extend(c);
                }
            }
            (cpu, mem, n)
        })
    }

    fn agent(&self, id: &str, dir: Option<&Path>) -> AgentMetrics {
        let mut g = match self.agents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let t = g.entry(id.to_owned()).or_default();
        if let Some(dir) = dir {
            t.update(dir);
        }
        t.totals.clone()
    }
}

impl Transcripts {
    /// Reads what is new in `dir/*/*.jsonl` (Claude Code's `projects/<cwd>/<session>.jsonl`).
    fn update(&mut self, dir: &Path) {
        // `dir` is `<state>/claude/projects`: the `claude` folder is wrapix's, its contents the
        // agent's, so `projects` is opened below it without following a link.
        let (Some(parent), Some(leaf)) = (dir.parent(), dir.file_name()) else {
            return;
        };
        let Ok(claude) = wrapix_hostfs::Dir::open(parent) else {
            return;
        };
        let Ok(Some(root)) = claude.open_dir(Path::new(leaf)) else {
            return;
        };
        let Ok(projects) = root.entries() else { return };
        for (name, kind) in projects {
            if kind != wrapix_hostfs::Kind::Dir {
                continue;
            }
            let Ok(Some(sub)) = root.open_dir(Path::new(&name)) else {
                continue;
            };
            let Ok(files) = sub.entries() else { continue };
            for (f, kind) in files {
                if kind != wrapix_hostfs::Kind::File || !f.to_string_lossy().ends_with(".jsonl") {
                    continue;
                }
                let key = dir.join(&name).join(&f);
                if !self.files.contains_key(&key) && self.files.len() >= FILE_LIMIT {
                    continue;
                }
                let st = self.files.entry(key).or_default();
                if let Ok(Some((file, meta))) = sub.open_file(Path::new(&f)) {
                    if meta.size < st.offset {
                        // Rewritten from the start: its earlier counts stay counted.
                        *st = FileState::default();
                    }
                    read_new(file, st, &mut self.totals);
                }
            }
        }
        // Partial lines over the budget are dropped, largest first (their records go
        // uncounted; memory stays bounded whatever the agent writes).
        let mut total: usize = self.files.values().map(|f| f.partial.len()).sum();
        while total > PARTIAL_BUDGET {
            let Some(big) = self.files.values_mut().max_by_key(|f| f.partial.len()) else {
                break;
            };
            total -= big.partial.len();
            big.partial = Vec::new();
        }
    }
}

fn read_new(mut file: std::fs::File, st: &mut FileState, totals: &mut AgentMetrics) {
    if file.seek(SeekFrom::Start(st.offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    let Ok(n) = file.take(READ_LIMIT).read_to_end(&mut buf) else {
        return;
    };
    st.offset += n as u64;
    st.partial.extend_from_slice(&buf);
    let mut start = 0;
    while let Some(i) = st.partial[start..].iter().position(|&b| b == b'\n') {
        add_line(&st.partial[start..start + i], totals);
        start += i + 1;
    }
    st.partial.drain(..start);
    if st.partial.len() > LINE_LIMIT {
        st.partial.clear();
    }
}

/// Adds one transcript record; anything not understood is skipped.
pub fn add_line(line: &[u8], t: &mut AgentMetrics) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return;
    };
    let kind = v.get("type").and_then(|k| k.as_str()).unwrap_or_default();
    if kind != "user" && kind != "assistant" {
        return;
    }
    t.message_count += 1;
    if let Some(ts) = v.get("timestamp").and_then(|x| x.as_str()) {
        if t.last_activity.as_deref().is_none_or(|l| ts > l) {
            t.last_activity = Some(ts.chars().take(64).collect());
        }
    }
    let Some(msg) = v.get("message") else { return };
    if kind == "assistant" {
        if let Some(m) = msg.get("model").and_then(|m| m.as_str()) {
            t.model = Some(m.chars().take(128).collect());
        }
        if let Some(u) = msg.get("usage") {
            let n = |k: &str| u.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
            t.input_tokens += n("input_tokens");
            t.output_tokens += n("output_tokens");
            t.cache_creation_input_tokens += n("cache_creation_input_tokens");
            t.cache_read_input_tokens += n("cache_read_input_tokens");
        }
        if let Some(items) = msg.get("content").and_then(|c| c.as_array()) {
            for it in items {
                if it.get("type").and_then(|x| x.as_str()) == Some("tool_use") {
                    let name: String = it
                        .get("name")
                        .and_then(|x| x.as_str())
                        .unwrap_or("?")
                        .chars()
                        .take(128)
                        .collect();
                    if t.tool_uses.len() < 1000 || t.tool_uses.contains_key(&name) {
                        *t.tool_uses.entry(name).or_default() += 1;
                    }
                }
            }
        }
    }
}

/// `GET /api/sandboxes/{id}/metrics`.
pub fn session(m: &Manager, key: &str) -> Result<SessionMetrics, ApiError> {
    let s = m.find(key)?;
    let (cpu_percent, memory_bytes, processes) = match m.pid(&s.id) {
        Some(pid) if s.status.is_live() => m.metrics.tree(pid),
        _ => (0.0, 0, 0),
    };
    let dir = m.launcher.transcripts(&s.project_dir);
    Ok(SessionMetrics {
        agent: m.metrics.agent(&s.id, dir.as_deref()),
        id: s.id,
        status: s.status,
        cpu_percent,
        memory_bytes,
        processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_are_read_incrementally_and_tolerantly() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("-workspace");
        std::fs::create_dir(&p).unwrap();
        let f = p.join("s.jsonl");
        let a = r#"{"type":"assistant","timestamp":"2026-01-01T00:00:01Z","message":{"model":"claude-x","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":7},"content":[{"type":"tool_use","name":"Bash"},{"type":"text"}]}}"#;
        // A partial line at the end, an unknown record, a broken line.
        std::fs::write(
            &f,
            format!("{a}\n{{\"type\":\"summary\"}}\nnot json\n{{\"type\":\"user\",\"mess"),
        )
        .unwrap();
        let mut tr = Transcripts::default();
        tr.update(t.path());
        assert_eq!(tr.totals.input_tokens, 10);
        assert_eq!(tr.totals.message_count, 1);
        assert_eq!(tr.totals.tool_uses.get("Bash"), Some(&1));
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        write!(h, "age\":{{\"content\":\"hi\"}}}}\n{a}\n").unwrap();
        tr.update(t.path());
        assert_eq!(tr.totals.message_count, 3);
        assert_eq!(tr.totals.input_tokens, 20);
        assert_eq!(tr.totals.output_tokens, 10);
        assert_eq!(tr.totals.cache_read_input_tokens, 14);
        assert_eq!(tr.totals.model.as_deref(), Some("claude-x"));
        // Nothing new: nothing counted twice.
        tr.update(t.path());
        assert_eq!(tr.totals.message_count, 3);
        // A symlinked transcript is not followed.
        std::os::unix::fs::symlink("/etc/passwd", p.join("evil.jsonl")).unwrap();
        tr.update(t.path());
        assert_eq!(tr.totals.message_count, 3);
    }
}
