//! Notifications survive the daemon's lifecycle: a sandbox keeps reaching `wrapix notifyd`
//! after the daemon is restarted (stopped cleanly, or killed) while the sandbox runs, and a
//! sandbox started before any daemon reaches the one started later. The real `wrapix notifyd`
//! (its `--command` appends each message to a file) and real sandboxes, as the test user.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};

use super::harness::{skip, wait_for, Case, Out, Running};

/// How long a notification may take to arrive (sandbox start included).
const ARRIVE: Duration = Duration::from_secs(20);

/// The sandbox side: for each step N, wait until the host creates `/workspace/go-N`, send
/// `wrapix notify N`, then mark `/workspace/sent-N`. The client always exits 0, so what it
/// said goes to stderr for the host to read.
const SANDBOX_SCRIPT: &str = r#"
set -e
echo "link: $(readlink /run/wrapix/notify.sock)"
echo "env: $WRAPIX_NOTIFY_SOCKET"
for n in "$@"; do
    while [ ! -e "/workspace/go-$n" ]; do sleep 0.02; done
    wrapix notify --title restart "message $n"
    echo "sent $n"
    echo "dir after $n: $(ls -A /run/wrapix/notify.d | tr '\n' ' ')"
    touch "/workspace/sent-$n"
done
if touch /run/wrapix/notify.d/x 2>/dev/null; then echo "notify.d is writable"; fi
ls -A /run/wrapix
"#;

struct Setup {
    case: Case,
    run: PathBuf,
    got: PathBuf,
}

impl Setup {
    /// A case with its own `XDG_RUNTIME_DIR` (0700, the test user's) and a file for the
    /// daemon's `--command` to append to; `flags` go before `--` of `wrapix run`.
    fn new(case: Case) -> Setup {
        let run = case.root.join("run");
        let out = case.root.join("out");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir(&out).unwrap();
        case.give(&run);
        case.give(&out);
        let case = case
            .host_env("XDG_RUNTIME_DIR", &run.to_string_lossy())
            .host_env("WRAPIX_NOTIFY_ALWAYS", "1");
        Setup {
            case,
            got: out.join("got.txt"),
            run,
        }
    }

    fn link(&self) -> PathBuf {
        self.run.join("wrapix/notify.d/notify.sock")
    }

    /// `wrapix notifyd --command sh -c '{ cat; echo; } >> got.txt'`, ready once its socket is
    /// published (a new inode: a crashed daemon's link is still there).
    fn daemon(&self) -> Running {
        let link = self.link();
        let stale = inode(&link);
        let got = self.got.to_string_lossy();
        let d = self.case.spawn(&[
            "notifyd",
            "--command",
            "/bin/sh",
            "-c",
            "{ cat; echo; } >> \"$1\"",
            "sh",
            &got,
        ]);
        let published = || {
            std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_socket())
                && inode(&link) != stale
                && inode(&link) == inode(&self.run.join("wrapix/notify.sock"))
        };
        if !wait_for(Duration::from_secs(10), published) {
            panic!(
                "the daemon did not publish {}: {}",
                link.display(),
                abort(d)
            );
        }
        d
    }

    fn go(&self, step: &str) {
        let p = self.case.project.join(format!("go-{step}"));
        std::fs::write(&p, "").unwrap();
        self.case.give(&p);
    }

    fn sent(&self, step: &str) -> bool {
        self.case.project.join(format!("sent-{step}")).exists()
    }

    fn arrived(&self, step: &str) -> bool {
        std::fs::read_to_string(&self.got)
            .unwrap_or_default()
            .lines()
            .any(|l| l == format!("message {step}"))
    }

    /// `wrapix run FLAGS -- sh -c SCRIPT sh STEPS…`, not waited for.
    fn sandbox(&self, flags: &[&str], steps: &[&str]) -> Running {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "/bin/sh", "-c", SANDBOX_SCRIPT, "sh"]);
        args.extend_from_slice(steps);
        self.case.spawn(&args)
    }

    fn got(&self) -> String {
        std::fs::read_to_string(&self.got).unwrap_or_default()
    }
}

fn inode(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Ends a sandbox that is stuck waiting for a step (its own child handle) and returns its
/// output, for a failure message.
fn abort(mut r: Running) -> Out {
    let _ = r.child.kill();
    r.finish()
}

/// Stops a daemon with SIGTERM (its own child handle) and returns what it logged.
fn stop(d: Running) -> String {
    kill(d.pid(), Signal::SIGTERM).unwrap();
    let out = d.finish();
    assert_eq!(out.code, 0, "notifyd did not stop cleanly: {out}");
    out.stderr
}

/// One sandbox, three daemons: the first stopped cleanly, the second killed (a crash leaves
/// its socket and link behind), the third replaces them. Every step's message arrives.
fn survives_restarts(s: &Setup, flags: &[&str]) {
    let a = s.daemon();
    let sandbox = s.sandbox(flags, &["one", "two", "three"]);
    s.go("one");
    assert!(
        wait_for(ARRIVE, || s.arrived("one")),
        "the first message did not arrive: {:?}\nsandbox: {}",
        s.got(),
        abort(sandbox)
    );

    let log = stop(a);
    assert!(
        std::fs::symlink_metadata(s.link()).is_err(),
        "a clean stop removes the published link: {log}"
    );
    assert!(
        s.run.join("wrapix/notify.d").is_dir(),
        "the folder stays (sandboxes have it mounted)"
    );
    let b = s.daemon();
    s.go("two");
    assert!(
        wait_for(ARRIVE, || s.arrived("two")),
        "after a restart the running sandbox's message did not arrive: {:?}\nsandbox: {}",
        s.got(),
        abort(sandbox)
    );

    // A crash: nothing is cleaned up, the next daemon replaces the stale socket and link.
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    assert!(std::fs::symlink_metadata(s.link()).is_ok());
    let c = s.daemon();
    s.go("three");
    assert!(
        wait_for(ARRIVE, || s.arrived("three")),
        "after a crash and a new daemon the message did not arrive: {:?}\nsandbox: {}",
        s.got(),
        abort(sandbox)
    );
    let out = sandbox.finish();
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stderr.contains("no notification daemon"), "{out}");
    assert!(out.stdout.contains("link: notify.d/notify.sock"), "{out}");
    assert!(out.stdout.contains("env: /run/wrapix/notify.sock"), "{out}");
    // The mounted folder holds the socket and nothing else, and the sandbox cannot write it;
    // the session registry next to it on the host is not visible.
    assert!(
        out.stdout.contains("dir after three: notify.sock \n"),
        "{out}"
    );
    assert!(!out.stdout.contains("writable"), "{out}");
    assert!(!out.stdout.contains("sessions"), "{out}");
    let got = s.got();
    assert_eq!(
        got.lines().filter(|l| l.starts_with("message")).count(),
        3,
        "each message exactly once: {got:?}"
    );
    stop(c);
}

#[test]
fn a_running_sandbox_reaches_a_restarted_daemon() {
    let Some(c) = Case::new() else { return };
    let s = Setup::new(c);
    survives_restarts(&s, &["--network", "none"]);
}

#[test]
fn a_sandbox_started_before_the_daemon_reaches_it() {
    let Some(c) = Case::new() else { return };
    let s = Setup::new(c);
    let sandbox = s.sandbox(&["--network", "none"], &["early", "late"]);
    // No daemon: the client says so and exits 0; the sandbox carries on.
    s.go("early");
    assert!(
        wait_for(ARRIVE, || s.sent("early")),
        "the sandbox did not get past its first notify: {}",
        abort(sandbox)
    );
    assert!(!s.arrived("early"));
    let d = s.daemon();
    s.go("late");
    assert!(
        wait_for(ARRIVE, || s.arrived("late")),
        "a daemon started after the sandbox was not reached: {:?}\nsandbox: {}",
        s.got(),
        abort(sandbox)
    );
    let out = sandbox.finish();
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("no notification daemon at /run/wrapix/notify.sock"),
        "the early send reports the missing daemon: {out}"
    );
    assert_eq!(
        out.stderr.matches("no notification daemon").count(),
        1,
        "{out}"
    );
    stop(d);
}

/// The same lifecycle with the podman backend (it stages `/run/wrapix` with the symlink),
/// from the small test image shared with `images.rs`.
#[test]
fn podman_sandbox_reaches_a_restarted_daemon() {
    let have = |p: &str| Path::new("/usr/bin").join(p).exists();
    if !have("podman") {
        skip("podman is not installed");
        return;
    }
    if !have("mmdebstrap") {
        skip("mmdebstrap is not installed, so the test image cannot be built");
        return;
    }
    let Some(c) = Case::new() else { return };
    const SHARED: &str = "/tmp/wrapix-test-images";
    std::fs::create_dir_all(SHARED).unwrap();
    c.give(Path::new(SHARED));
    let c = c.host_env("XDG_DATA_HOME", SHARED);
    c.config("profile = \"tiny\"\n[profiles.tiny]\npackages = [\"jq\", \"bash\"]\n");
    let s = Setup::new(c);
    // Built once per machine (minutes when cold), so not under the harness's timeout.
    let built = s
        .case
        .command(&["image", "build"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if !built.status.success() {
        skip(&format!(
            "the test image cannot be built here: {}",
            String::from_utf8_lossy(&built.stderr).trim()
        ));
        return;
    }
    survives_restarts(&s, &["--backend", "podman", "--network", "none"]);
}
