//! Each session's terminal: a tmux server of its own (`DIR/tmux/ID.sock`, in the 0700 state
//! folder) whose one window runs the sandbox. The command is given to tmux as separate
//! arguments, which tmux executes directly (no shell); the window stays after the command
//! ends (`remain-on-exit`) so that its exit status and last output can be read.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tmux session's name inside each server.
pub const SESSION: &str = "wrapix";
/// tmux's configuration for every session server: constant text.
const CONF: &str = "set -g remain-on-exit on\nset -g history-limit 20000\n";

/// What a session's tmux server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The window's command runs, as process `pid` (the `wrapix run` of the sandbox).
    Alive { pid: u32 },
    /// The command ended with this status (`None`: killed by a signal).
    Dead { code: Option<i32> },
    /// No server answers on the socket.
    Gone,
}

#[derive(Debug, Clone)]
pub struct Tmux {
    dir: PathBuf,
}

impl Tmux {
    /// Session servers under `dir` (created 0700 by the caller).
    pub fn new(dir: PathBuf) -> Tmux {
        Tmux { dir }
    }

    pub fn socket(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.sock"))
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("tmux.conf")
    }

    fn cmd(&self, id: &str) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(self.socket(id)).arg("-f").arg(self.conf());
        c.env_remove("TMUX").stdin(Stdio::null());
        c
    }

    /// Starts the server with `argv` in its window, `cwd` as its folder.
    pub fn start(&self, id: &str, argv: &[OsString], cwd: &Path) -> Result<(), String> {
        if argv.is_empty() {
            return Err("no command to run".into());
        }
        let conf = self.conf();
        if std::fs::read(&conf).ok().as_deref() != Some(CONF.as_bytes()) {
            let tmp = self.dir.join(".tmux.conf.tmp");
            std::fs::write(&tmp, CONF)
                .and_then(|()| std::fs::rename(&tmp, &conf))
                .map_err(|e| format!("write {}: {e}", conf.display()))?;
        }
        let out = self
            .cmd(id)
            .args([
                "new-session",
                "-d",
                "-s",
                SESSION,
                "-x",
                "160",
                "-y",
                "48",
                "-c",
            ])
            .arg(cwd)
            .arg("--")
            .args(argv)
            .output()
            .map_err(|e| format!("cannot run tmux: {e} (install tmux)"))?;
        if !out.status.success() {
            return Err(format!(
                "tmux new-session failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    pub fn probe(&self, id: &str) -> Probe {
        if !self.socket(id).exists() {
            return Probe::Gone;
        }
        let out = self
            .cmd(id)
            .args([
                "list-panes",
                "-t",
                SESSION,
                "-F",
                "#{pane_dead} #{pane_dead_status} #{pane_pid}",
            ])
            .stderr(Stdio::null())
            .output();
        let Ok(out) = out else { return Probe::Gone };
        if !out.status.success() {
            return Probe::Gone;
        }
        parse_probe(&String::from_utf8_lossy(&out.stdout))
    }

    /// [`Tmux::probe`], asking once more when a dead window has no status yet (tmux records
    /// it just after the window dies).
    pub fn probe_settled(&self, id: &str) -> Probe {
        match self.probe(id) {
            Probe::Dead { code: None } => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                self.probe(id)
            }
            p => p,
        }
    }

    /// The window's text, with its scroll-back (bounded by tmux's history limit).
    pub fn capture(&self, id: &str) -> Option<String> {
        let out = self
            .cmd(id)
            .args([
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-",
                "-E",
                "-",
                "-t",
                SESSION,
            ])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// Ends the server: tmux hangs up the window's process (wrapix forwards SIGHUP to the
    /// agent and removes the sandbox). Waits up to `wait` for that process to end.
    pub fn kill(&self, id: &str, wait: std::time::Duration) {
        let pid = match self.probe(id) {
            Probe::Alive { pid } => Some(pid),
            _ => None,
        };
        let _ = self
            .cmd(id)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid {
            let start = std::time::Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < wait {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_file(self.socket(id));
    }

    /// The command that attaches a terminal to the session, as argv.
    pub fn attach_argv(&self, id: &str) -> Vec<String> {
        vec![
            "tmux".into(),
            "-S".into(),
            self.socket(id).to_string_lossy().into_owned(),
            "attach".into(),
            "-t".into(),
            SESSION.into(),
        ]
    }
}

fn parse_probe(out: &str) -> Probe {
    let line = out.lines().next().unwrap_or_default();
    let mut f = line.split(' ');
    match (f.next(), f.next(), f.next()) {
        (Some("1"), status, _) => Probe::Dead {
            code: status.and_then(|s| s.parse().ok()),
        },
        (Some("0"), _, Some(pid)) => pid
            .parse()
            .map(|pid| Probe::Alive { pid })
            .unwrap_or(Probe::Gone),
        _ => Probe::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes() {
        assert_eq!(parse_probe("0  123\n"), Probe::Alive { pid: 123 });
        assert_eq!(parse_probe("1 3 123\n"), Probe::Dead { code: Some(3) });
        assert_eq!(parse_probe("1  123\n"), Probe::Dead { code: None });
        assert_eq!(parse_probe(""), Probe::Gone);
    }

    #[test]
    /// (The command lingers a moment before it exits: tmux may drop the output of a window
    /// whose process ends before the pane is read the first time.)
    fn runs_argv_without_a_shell_and_keeps_the_status() {
        let t = tempfile::tempdir().unwrap();
        let tm = Tmux::new(t.path().to_owned());
        let argv: Vec<OsString> = [
            "sh",
            "-c",
            "printf '%s\\n' \"$0\"; sleep 0.5; exit 7",
            "a;b $(id)",
        ]
        .map(OsString::from)
        .to_vec();
        tm.start("s1", &argv, t.path()).unwrap();
        let start = std::time::Instant::now();
        while !matches!(tm.probe("s1"), Probe::Dead { .. }) {
            assert!(start.elapsed().as_secs() < 10, "{:?}", tm.probe("s1"));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // tmux 3.3 sometimes marks the pane dead (its terminal closed) without recording the
        // status: the session is then `exited` without a code, never a wrong one.
        match tm.probe_settled("s1") {
            Probe::Dead { code: Some(c) } => assert_eq!(c, 7),
            Probe::Dead { code: None } => eprintln!("tmux recorded no exit status this time"),
            other => panic!("{other:?}"),
        }
        assert!(tm.capture("s1").unwrap().contains("a;b $(id)"));
        tm.kill("s1", std::time::Duration::from_secs(5));
        assert_eq!(tm.probe("s1"), Probe::Gone);
    }
}
