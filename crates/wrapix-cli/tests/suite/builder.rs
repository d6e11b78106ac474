//! `wrapix builder` end to end, as the test user with rootless podman: start (its image is
//! built once per machine into the shared store `/tmp/wrapix-test-images`, as the podman
//! escape pass's), `nix-store` through `wrapix builder ssh`, a store path and the keys that
//! survive a restart, `setup`'s Host block used by the real ssh, stop; and bad input.
//! One test runs the container: the container's name is per user, so two tests would share it.

use std::path::Path;
use std::time::Duration;

use super::harness::{skip, Case, Out};
use super::proc::output_within;

const SHARED: &str = "/tmp/wrapix-test-images";
/// A first start builds the image (a minute or two with mmdebstrap).
const START_TIMEOUT: Duration = Duration::from_secs(20 * 60);

fn have(prog: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(prog).exists())
}

fn run_long(c: &Case, args: &[&str]) -> Out {
    output_within(c.command(args), &c.project, None, START_TIMEOUT).unwrap()
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the builder when the test ends, also when it fails.
struct Stop<'a>(&'a Case);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let out = self.0.run(&["builder", "stop"]);
        if out.code != 0 {
            eprintln!("cleanup: wrapix builder stop failed:\n{out}");
        }
    }
}

fn status(c: &Case) -> serde_json::Value {
    let out = c.run(&["builder", "status", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

fn ssh(c: &Case, cmd: &[&str]) -> Out {
    let mut args = vec!["builder", "ssh", "--"];
    args.extend_from_slice(cmd);
    c.run(&args)
}

#[test]
fn builder_serves_nix_over_ssh_and_keeps_store_and_keys_across_restarts() {
    for tool in ["podman", "mmdebstrap", "ssh"] {
        if !have(tool) {
            skip(&format!("{tool} is not installed"));
            return;
        }
    }
    let Some(c) = Case::new() else { return };
    std::fs::create_dir_all(SHARED).unwrap();
    c.give(Path::new(SHARED));
    let c = c.host_env("XDG_DATA_HOME", SHARED);
    let port = free_port();
    let port_s = port.to_string();

    // Not started: ssh refuses, status says so.
    let out = ssh(&c, &["true"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("not running"), "{out}");

    // A taken port is refused before anything starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let out = c.run(&["builder", "start", "--port", &taken_port]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is not free"), "{out}");
    drop(taken);

    let out = run_long(&c, &["builder", "start", "--port", &port_s]);
    let _stop = Stop(&c);
    assert_eq!(out.code, 0, "{out}");
    let s = status(&c);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["port"], port, "{s}");
    let host_fp = s["host_key_fingerprint"].as_str().unwrap().to_owned();
    let user_fp = s["user_key_fingerprint"].as_str().unwrap().to_owned();
    assert!(host_fp.starts_with("SHA256:"), "{s}");
    // The keys are private; sshd listens on loopback only.
    let dir = c.home.join(".local/state/wrapix/builder");
    for key in ["ssh_host_ed25519_key", "id_ed25519"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let ss = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .unwrap();
    let listening = String::from_utf8_lossy(&ss.stdout);
    assert!(
        listening.contains(&format!("127.0.0.1:{port}")),
        "{listening}"
    );
    assert!(
        !listening.contains(&format!("0.0.0.0:{port}")),
        "{listening}"
    );

    // The round trip, and arguments that a shell string would mangle.
    let out = ssh(&c, &["nix-store", "--version"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("nix-store (Nix) 2."), "{out}");
    let text = "it's a $(test); with spaces";
    let out = ssh(
        &c,
        &[
            "sh",
            "-c",
            "printf %s \"$1\" > /tmp/wrapix-probe && nix-store --add /tmp/wrapix-probe",
            "sh",
            text,
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    let path = out.stdout.trim().to_owned();
    assert!(path.starts_with("/nix/store/"), "{out}");

    // Running: start again is a no-op.
    let out = c.run(&["builder", "start"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("already running"), "{out}");

    // Restart: the same keys, the path still in the store.
    let out = c.run(&["builder", "stop"]);
    assert_eq!(out.code, 0, "{out}");
    let s = status(&c);
    assert_eq!(s["running"], false, "{s}");
    assert!(s["store_bytes"].as_u64().unwrap() > 0, "{s}");
    let out = run_long(&c, &["builder", "start"]);
    assert_eq!(out.code, 0, "{out}");
    let s = status(&c);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["port"], port, "the saved port: {s}");
    assert_eq!(s["host_key_fingerprint"], host_fp.as_str(), "{s}");
    assert_eq!(s["user_key_fingerprint"], user_fp.as_str(), "{s}");
    let out = ssh(&c, &["nix-store", "--check-validity", &path]);
    assert_eq!(out.code, 0, "{out}");
    let out = ssh(&c, &["cat", &path]);
    assert_eq!(out.stdout, text, "{out}");

    // config: the machines entry pins the host key.
    let out = c.run(&["builder", "config"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("builders = ssh-ng://builder@wrapix-builder "),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("Port {port}")), "{out}");

    // setup: the user's file is kept, backed up, and the block works with the real ssh.
    let user_config = "Host example\n  User someone\n";
    c.write(&c.home.join(".ssh/config"), user_config);
    let out = c.run(&["builder", "setup"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("sudo tee -a /etc/nix/machines"),
        "{out}"
    );
    let written = std::fs::read_to_string(c.home.join(".ssh/config")).unwrap();
    assert!(written.ends_with(user_config), "{written}");
    assert!(written.contains("Host wrapix-builder\n"), "{written}");
    let backup = std::fs::read_to_string(c.home.join(".ssh/config.wrapix-backup")).unwrap();
    assert_eq!(backup, user_config);
    let out = c.run(&["builder", "setup"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("already has"), "{out}");
    assert_eq!(
        std::fs::read_to_string(c.home.join(".ssh/config")).unwrap(),
        written
    );
    let cfg = c.home.join(".ssh/config");
    let out = c.host_as_user(
        "ssh",
        &[
            "-F",
            &cfg.to_string_lossy(),
            "-o",
            "BatchMode=yes",
            "wrapix-builder",
            "nix-store",
            "--version",
        ],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("nix-store (Nix) 2."), "{out}");

    let out = c.run(&["builder", "stop"]);
    assert_eq!(out.code, 0, "{out}");
    let out = c.run(&["builder", "stop"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("not running"), "{out}");
}

/// Refused before podman is asked anything (so this test never touches the container the
/// test above runs under the same user).
#[test]
fn builder_refuses_bad_input() {
    let Some(c) = Case::new() else { return };
    for (args, want) in [
        (&["builder", "start", "--port", "80"][..], "not in 1024"),
        (&["builder", "start", "--port", "nope"][..], "invalid value"),
        (&["builder", "status", "--bogus"][..], "unexpected argument"),
        (
            &["builder", "config"][..],
            "`wrapix builder start` generates the keys",
        ),
        (
            &["builder", "setup"][..],
            "`wrapix builder start` generates the keys",
        ),
    ] {
        let out = c.run(args);
        assert_eq!(out.code, 2, "{args:?}\n{out}");
        assert!(out.stderr.contains(want), "{args:?}\n{out}");
    }
}
