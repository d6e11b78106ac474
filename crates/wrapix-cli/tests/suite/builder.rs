//! `wrapix builder` end to end, as the test user with rootless podman: start (its image is
//! built once per machine into the shared store `/tmp/wrapix-test-images`, as the podman
//! escape pass's), `nix-store` through `wrapix builder ssh`, a store path and the keys that
//! survive a restart, `setup`'s Host block used by the real ssh, stop; and bad input.
//! The same again through Apple `container`'s command lines (`WRAPIX_BUILDER_ENGINE=apple`),
//! carried out by a stand-in `container` that hands each one to podman. The container's name
//! is per user, so the two run one after the other.

use std::path::Path;
use std::sync::Mutex;
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

/// One builder container at a time (its name is per user).
static ONE: Mutex<()> = Mutex::new(());

/// A stand-in for Apple's `container`: each command the builder uses, carried out by podman,
/// with `container list --format json`'s shape. Anything else fails, so a command line the
/// builder should not use is caught.
const FAKE_CONTAINER: &str = r#"#!/usr/bin/python3
import json, os, subprocess, sys
a = sys.argv[1:]
def podman(*args):
    os.execvp("podman", ["podman", *args])
if a[:1] == ["run"]:
    allowed = ("--detach", "--name=", "--label=", "--publish=", "--volume=", "--mount=", "--entrypoint=")
    i = 1
    while a[i].startswith("--"):
        if not a[i].startswith(allowed):
            sys.exit("fake container: unexpected run option " + a[i])
        i += 1
    podman("run", *a[1:])
elif a[:4] == ["list", "--all", "--format", "json"]:
    out = subprocess.run(["podman", "ps", "--all", "--format", "json"], check=True, capture_output=True, text=True).stdout
    print(json.dumps([{"configuration": {"id": c["Names"][0], "labels": c.get("Labels") or {}},
                       "status": "running" if c["State"] == "running" else "stopped"}
                      for c in json.loads(out or "[]")]))
elif a[:2] == ["image", "inspect"] and len(a) == 3:
    podman("image", "exists", a[2])
elif a[:3] == ["image", "load", "--input"] and len(a) == 4:
    podman("load", "--quiet", "--input", a[3])
elif a[:2] == ["image", "tag"] and len(a) == 4:
    podman("tag", a[2], a[3])
elif a[:2] == ["volume", "inspect"] and len(a) == 3:
    podman("volume", "exists", a[2])
elif a[:3] == ["volume", "create", "-s"] and len(a) == 5:
    podman("volume", "create", a[4])
elif a[:3] == ["stop", "--time", "10"] and len(a) == 4:
    podman("stop", "--time", "10", a[3])
elif a[:2] == ["delete", "--force"] and len(a) == 3:
    podman("rm", "--force", a[2])
elif a[:2] == ["logs", "-n"] and len(a) == 4:
    podman("logs", "--tail", a[2], a[3])
else:
    sys.exit("fake container: unexpected command " + " ".join(a))
"#;

#[test]
fn builder_serves_nix_over_ssh_and_keeps_store_and_keys_across_restarts() {
    let Some(c) = builder_case() else { return };
    let _one = ONE.lock();
    exercise(&c, true);
}

/// The Apple engine's command lines, run by podman through the stand-in: the same start,
/// round trip, restart and stop; the store is the named volume, which outlives a stop.
#[test]
fn builder_through_apple_container_command_lines() {
    let Some(c) = builder_case() else { return };
    let _one = ONE.lock();
    let bin = c.home.join("fake-bin");
    c.write_executable(&bin.join("container"), FAKE_CONTAINER);
    let c = c.host_env("WRAPIX_BUILDER_ENGINE", "apple").host_env(
        "PATH",
        &format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
    );
    // A volume left by an earlier run would carry its store into this one.
    c.host_as_user("podman", &["volume", "rm", "--force", "wrapix-builder-nix"]);
    exercise(&c, false);
    let s = status(&c);
    assert_eq!(s["engine"], "apple", "{s}");
    assert_eq!(s["store"], "volume:wrapix-builder-nix", "{s}");
    // The share holds the host key and the public key, never the login key.
    let share = c.home.join(".local/state/wrapix/builder/share");
    assert_eq!(
        Case::listing(&share),
        ["authorized_keys", "ssh_host_ed25519_key"]
            .map(String::from)
            .to_vec(),
    );
    let out = c.host_as_user("podman", &["volume", "rm", "--force", "wrapix-builder-nix"]);
    assert_eq!(out.code, 0, "{out}");
    let bad = c
        .command(&["builder", "status"])
        .env("WRAPIX_BUILDER_ENGINE", "docker")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WRAPIX_BUILDER_ENGINE=\"docker\""));
}

fn builder_case() -> Option<Case> {
    for tool in ["podman", "mmdebstrap", "ssh"] {
        if !have(tool) {
            skip(&format!("{tool} is not installed"));
            return None;
        }
    }
    let c = Case::new()?;
    std::fs::create_dir_all(SHARED).unwrap();
    c.give(Path::new(SHARED));
    Some(c.host_env("XDG_DATA_HOME", SHARED))
}

/// Start, round trip, restart, config, setup, stop. `store_folder`: the store is a host
/// folder (podman), whose size `status` reports.
fn exercise(c: &Case, store_folder: bool) {
    let port = free_port();
    let port_s = port.to_string();

    // Not started: ssh refuses, status says so.
    let out = ssh(c, &["true"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("not running"), "{out}");

    // A taken port is refused before anything starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port().to_string();
    let out = c.run(&["builder", "start", "--port", &taken_port]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is not free"), "{out}");
    drop(taken);

    let out = run_long(c, &["builder", "start", "--port", &port_s]);
    let _stop = Stop(c);
    assert_eq!(out.code, 0, "{out}");
    let s = status(c);
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
    let out = ssh(c, &["nix-store", "--version"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("nix-store (Nix) 2."), "{out}");
    let text = "it's a $(test); with spaces";
    let out = ssh(
        c,
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
    let s = status(c);
    assert_eq!(s["running"], false, "{s}");
    if store_folder {
        assert!(s["store_bytes"].as_u64().unwrap() > 0, "{s}");
    }
    let out = run_long(c, &["builder", "start"]);
    assert_eq!(out.code, 0, "{out}");
    let s = status(c);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["port"], port, "the saved port: {s}");
    assert_eq!(s["host_key_fingerprint"], host_fp.as_str(), "{s}");
    assert_eq!(s["user_key_fingerprint"], user_fp.as_str(), "{s}");
    let out = ssh(c, &["nix-store", "--check-validity", &path]);
    assert_eq!(out.code, 0, "{out}");
    let out = ssh(c, &["cat", &path]);
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
