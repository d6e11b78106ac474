//! End to end: `wrapix notifyd --command …` on the host (as the test user), `wrapix run` a
//! sandbox, and `wrapix notify` (and `wrapix-notify`) inside reaches it through the mounted
//! `notify.d` folder with the session id the launcher registered. (Restarts while a sandbox
//! runs: `wrapix-cli`'s `notify_restart` tests.)

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::harness::{have, is_root, open_tempdir, skip, wait_for, wrapix_bin};

struct User {
    uid: u32,
    gid: u32,
    via_setpriv: bool,
}

impl User {
    fn detect() -> Option<User> {
        if is_root() {
            let name = std::env::var("WRAPIX_TEST_USER").unwrap_or_else(|_| "ci".into());
            let Some(u) = nix::unistd::User::from_name(&name).ok().flatten() else {
                skip(&format!(
                    "running as root and the test user `{name}` does not exist"
                ));
                return None;
            };
            Some(User {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                via_setpriv: true,
            })
        } else {
            Some(User {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                via_setpriv: false,
            })
        }
    }

    fn command(&self, bin: &Path, env: &[(&str, PathBuf)], cwd: &Path) -> Command {
        let mut c = if self.via_setpriv {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                &self.uid.to_string(),
                "--regid",
                &self.gid.to_string(),
                "--init-groups",
                "--",
            ]);
            c.arg(bin);
            c
        } else {
            Command::new(bin)
        };
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("TERM", "dumb")
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .current_dir(cwd)
            .stdin(Stdio::null());
        c
    }

    fn give(&self, p: &Path) {
        if self.via_setpriv {
            std::os::unix::fs::chown(p, Some(self.uid), Some(self.gid)).unwrap();
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sandboxed_client_reaches_the_host_daemon() {
    if !have("bwrap") {
        skip("bubblewrap (bwrap) is not installed");
        return;
    }
    let Some(user) = User::detect() else { return };
    let t = open_tempdir();
    let Some(bin) = wrapix_bin(t.path()) else {
        return;
    };
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = t.path().join("run");
    let home = t.path().join("home");
    let project = home.join("project");
    let out_dir = t.path().join("out");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    for p in [&run, &home, &project, &out_dir] {
        user.give(p);
    }
    let got = out_dir.join("got.txt");
    let env = [("XDG_RUNTIME_DIR", run.clone()), ("HOME", home.clone())];

    // No daemon yet: the client inside says so and still exits 0.
    let o = user
        .command(&bin, &env, &project)
        .args([
            "run",
            "--network",
            "none",
            "--",
            "/run/wrapix/bin/wrapix",
            "notify",
            "nobody listens",
        ])
        .output()
        .unwrap();
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sandbox") {
        skip(&format!("wrapix cannot start sandboxes here: {}", text(&o)));
        return;
    }
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no notification daemon"),
        "{}",
        text(&o)
    );

    let script = format!(
        "printf '%s|%s|%s\\n' \"$WRAPIX_NOTIFY_TITLE\" \"$WRAPIX_SESSION_ID\" \"$(cat)\" >> {}",
        got.display()
    );
    let daemon = user
        .command(&bin, &env, &home)
        .args(["notifyd", "--command", "/bin/sh", "-c", &script, "sh"])
        .env("WRAPIX_NOTIFY_VERBOSE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Killed(daemon);
    let sock = run.join("wrapix/notify.sock");
    assert!(
        wait_for(Duration::from_secs(10), || UnixStream::connect(&sock)
            .is_ok()),
        "the daemon did not start: {:?}",
        daemon.0.try_wait()
    );

    for (prog, msg) in [
        ("/run/wrapix/bin/wrapix", "hi from the sandbox"),
        ("wrapix-notify", "via the link"),
    ] {
        let mut args = vec!["run", "--network", "none", "--", prog];
        if prog.ends_with("/wrapix") {
            args.push("notify");
        }
        args.extend(["--title", "T", msg]);
        let o = user
            .command(&bin, &env, &project)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            wait_for(Duration::from_secs(10), || std::fs::read_to_string(&got)
                .unwrap_or_default()
                .contains(msg)),
            "{msg:?} did not arrive; {}",
            std::fs::read_to_string(&got).unwrap_or_default()
        );
    }
    let lines = std::fs::read_to_string(&got).unwrap();
    for line in lines.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[0], "T", "{line}");
        assert!(
            f[1].starts_with("wrapix-"),
            "session id registered by the launcher: {line}"
        );
    }
    // The launcher removed its session record when the sandbox ended.
    let sessions = run.join("wrapix/sessions");
    let left: Vec<_> = std::fs::read_dir(&sessions)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let _ = daemon.0.kill();
}
