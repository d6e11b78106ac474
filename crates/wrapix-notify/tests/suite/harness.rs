//! Shared helpers: skips, temporary runtime folders, an in-process daemon with a recording
//! sink, polling, a private X server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wrapix_notify::daemon::{Config, Daemon};
use wrapix_notify::sink::SinkSpec;
use wrapix_notify::Frame;

/// Prints why a test does not run; a skip is never silent.
pub fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
}

pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Polls `cond` every 5 ms for at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// A daemon config on a socket in `dir`, sessions in `dir/sessions`, fast reports.
pub fn config(dir: &Path) -> Config {
    let mut cfg = Config::from_env(&Default::default());
    cfg.socket = Some(dir.join("wrapix/notify.sock"));
    cfg.sessions_dir = dir.join("wrapix/sessions");
    cfg.always = false;
    cfg.verbose = true;
    cfg.report_every = Duration::from_millis(200);
    cfg
}

/// Frames the sink saw.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<Frame>>>);

impl Seen {
    pub fn sink(&self) -> SinkSpec {
        let seen = self.0.clone();
        SinkSpec::Func(Arc::new(move |f: &Frame| {
            seen.lock().unwrap().push(f.clone())
        }))
    }
    pub fn messages(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.message.clone())
            .collect()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A daemon on a fresh folder with a recording sink.
pub fn daemon(dir: &Path) -> (Daemon, Seen) {
    let seen = Seen::default();
    let d = Daemon::start(config(dir), seen.sink()).unwrap();
    (d, seen)
}

/// The `wrapix` binary next to this test binary (built by `cargo test --workspace`), copied
/// to a folder every user can read with `wrapix-serve` beside it (`wrapix notifyd` execs
/// it); `None` (after a SKIP line) when they were not built.
pub fn wrapix_bin(dir: &Path) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let built = exe.parent()?.parent()?.to_path_buf();
    for name in ["wrapix", "wrapix-serve"] {
        if !built.join(name).is_file() {
            skip(&format!(
                "{} was not built (run `cargo test --workspace`)",
                built.join(name).display()
            ));
            return None;
        }
        std::fs::copy(built.join(name), dir.join(name)).ok()?;
    }
    Some(dir.join("wrapix"))
}

/// A temporary folder every user can enter (0755), under /tmp.
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::Builder::new()
        .prefix("wrapix-notify-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// A private X server (Xvfb) on a display it picked itself; killed when dropped.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Xvfb; `None` (after a SKIP line) when it is not installed or does not start.
pub fn xvfb() -> Option<Xvfb> {
    if !have("Xvfb") {
        skip("Xvfb is not installed (apt-get install xvfb)");
        return None;
    }
    // -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
    let spawned = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "640x480x24",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            skip(&format!("cannot start Xvfb: {e}"));
            return None;
        }
    };
    // The guard first: an early return kills the server.
    let mut x = Xvfb {
        child,
        display: String::new(),
    };
    let mut line = String::new();
    if let Some(out) = x.child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let n = line.trim();
    if n.is_empty() {
        skip("Xvfb did not start");
        return None;
    }
    x.display = format!(":{n}");
    Some(x)
}

/// Two plain 100×100 top-level X windows (not mapped), for focus tests.
pub fn two_windows(conn: &impl x11rb::connection::Connection, root: u32) -> [u32; 2] {
    use x11rb::protocol::xproto::{ConnectionExt, CreateWindowAux, WindowClass};
    let mut windows = [0; 2];
    for w in &mut windows {
        *w = conn.generate_id().unwrap();
        conn.create_window(
            0,
            *w,
            root,
            0,
            0,
            100,
            100,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .unwrap();
    }
    windows
}
