//! Processes under test: captured output, a timeout, and host-side process and address facts.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A run that takes longer than this is killed and fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished process left.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Out {
    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success:\n{self}");
        &self.stdout
    }
}

/// Runs `cmd` (stdout and stderr captured, stdin null unless set) with [`TIMEOUT`].
pub fn output(cmd: Command, cwd: &Path, stdin: Option<Stdio>) -> std::io::Result<Out> {
    output_within(cmd, cwd, stdin, TIMEOUT)
}

/// [`output`] with another time limit (an image build takes minutes).
pub fn output_within(
    mut cmd: Command,
    cwd: &Path,
    stdin: Option<Stdio>,
    limit: Duration,
) -> std::io::Result<Out> {
    cmd.current_dir(cwd)
        .stdin(stdin.unwrap_or_else(Stdio::null));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    Running::start(cmd).map(|r| r.finish_within(limit))
}

/// A process under test; killed when dropped.
pub struct Running {
    pub child: Child,
    readers: Vec<std::thread::JoinHandle<String>>,
}

impl Running {
    pub fn start(mut cmd: Command) -> std::io::Result<Running> {
        let mut child = cmd.spawn()?;
        let mut readers = Vec::new();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for pipe in pipes {
            readers.push(std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            }));
        }
        Ok(Running { child, readers })
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Waits (at most [`TIMEOUT`]); a hang kills the process and fails the test.
    pub fn finish(self) -> Out {
        self.finish_within(TIMEOUT)
    }

    /// Waits at most `limit`; a hang kills the process and fails the test.
    pub fn finish_within(mut self, limit: Duration) -> Out {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("timed out after {} s: {:?}", limit.as_secs(), self.child);
                }
                Err(e) => panic!("wait failed: {e}"),
            }
        };
        let mut texts = std::mem::take(&mut self.readers)
            .into_iter()
            .map(|h| h.join().unwrap_or_default());
        let stdout = texts.next().unwrap_or_default();
        let stderr = texts.next().unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Out {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Host processes whose command line contains `marker`: `(pid, cmdline)`.
pub fn host_procs_with(marker: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = std::fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(marker) {
                out.push((name, line));
            }
        }
    }
    out
}

/// Polls `cond` every 20 ms for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Local IPv4 addresses (not 127/8) listed in a `/proc/net/fib_trie` text.
pub fn local_ipv4s(fib_trie: &str) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.parse().ok();
        } else if t == "/32 host LOCAL" {
            if let Some(a) = last.filter(|a| !a.is_loopback() && !out.contains(a)) {
                out.push(a);
            }
        }
    }
    out
}
