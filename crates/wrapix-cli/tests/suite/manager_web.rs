//! The manager's TCP door with real outside clients, against the real daemon run as the
//! unprivileged test user: the dashboard in headless Chromium with JavaScript on
//! (`support/dashboard_cdp.py` drives it over the DevTools protocol: log in with the token
//! URL, create a session with the form, see its thumbnail, open it, press Stop; no CSP
//! violation, no console error; a PNG of every page is kept), and the JSON API fuzzed from
//! its own OpenAPI document by schemathesis (no 5xx, every answer documented and fast).
//!
//! Both tools come from `scripts/install-deps.sh --test`; without them the tests skip with
//! the reason, except in CI (`CI=true`), where a missing tool fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::desktop::first_png_pixel;
use super::harness::skip;
use super::manager::{until, COLOUR, M, PIXEL};
use super::proc::{output_within, Out, Running};

/// Skips with the reason; in CI (where install-deps installed the tool) fails instead.
fn required(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true: this test may not skip: {reason}");
    }
    skip(reason);
}

/// A port nobody listens on now (the daemon binds it a moment later).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn token(m: &M) -> String {
    std::fs::read_to_string(m.state.join("token"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The daemon's SIGTERM (sessions stay), then `--stop-all`; nothing of the state folder
/// may be left running.
fn shut_down(m: &M, d: Running) {
    nix::sys::signal::kill(d.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = d.finish_within(Duration::from_secs(20));
    assert!(
        !out.stderr.contains("ERROR"),
        "the daemon logged errors:\n{}",
        out.stderr
    );
    let out = m.c.run(&[
        "manager",
        "--state-dir",
        &m.state.to_string_lossy(),
        "--stop-all",
    ]);
    assert_eq!(out.code, 0, "{out}");
    until(
        "the sessions' processes to end",
        Duration::from_secs(20),
        || {
            let left = Command::new("pgrep")
                .args(["-f", &m.state.to_string_lossy()])
                .output()
                .unwrap();
            left.stdout.is_empty().then_some(())
        },
    );
}

/// Where the dashboard's screenshots are kept: `$WRAPIX_TEST_ARTIFACTS/manager-dashboard`,
/// else `target/tmp/manager-dashboard` (both outlive the test's temporary folder).
fn artifacts() -> PathBuf {
    let base = std::env::var_os("WRAPIX_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = base.join("manager-dashboard");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[test]
fn manager_dashboard_works_in_headless_chromium() {
    let Some(m) = M::new() else { return };
    let Some(browser) = chromium() else {
        required("chromium is missing (scripts/install-deps.sh --test installs it)");
        return;
    };
    let port = free_port();
    let d = m.daemon_with(&m.c.home, Some(port));
    let script = m.c.root.join("dashboard_cdp.py");
    std::fs::write(&script, include_str!("../support/dashboard_cdp.py")).unwrap();
    let shots = m.c.root.join("shots");
    std::fs::create_dir(&shots).unwrap();
    m.c.give(&m.c.root);
    // The browser runs as the test user (with Chromium's own sandbox; as root it would need
    // --no-sandbox), like a person on the server.
    let base = format!("http://127.0.0.1:{port}");
    let project = m.c.project.to_string_lossy();
    let mut cmd = m.c.env.as_user(
        "python3",
        &[
            &script.to_string_lossy(),
            browser,
            &base,
            &token(&m),
            &project,
            "web",
            COLOUR,
            &shots.to_string_lossy(),
        ],
    );
    m.c.clean_env(&mut cmd);
    let out: Out = output_within(cmd, &m.c.root, None, Duration::from_secs(240)).unwrap();
    let keep = artifacts();
    for e in std::fs::read_dir(&shots).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, keep.join(p.file_name().unwrap())).unwrap();
    }
    eprintln!(
        "the dashboard's pages as Chromium showed them: {}",
        keep.display()
    );
    assert_eq!(out.code, 0, "the browser scenario failed:\n{out}");
    let summary: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let id = summary["session"].as_str().unwrap();
    // The daemon agrees: the form's session exists, and Stop stopped it.
    let (s, v) = m.json("GET", &format!("/api/sandboxes/{id}"), "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "web", "{v}");
    assert_eq!(v["backend"], "bwrap", "{v}");
    assert_eq!(v["network"], "none", "{v}");
    assert_eq!(v["status"], "stopped", "{v}");
    for page in [
        "1-sessions-empty.png",
        "2-create-form.png",
        "3-session.png",
        "4-sessions-thumbnail.png",
        "5-stopped.png",
    ] {
        let png = std::fs::read(keep.join(page)).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{page}");
    }
    shut_down(&m, d);
}

/// schemathesis: `$WRAPIX_TEST_SCHEMATHESIS`, else the venv install-deps makes in target/.
fn schemathesis() -> Option<PathBuf> {
    let p = std::env::var_os("WRAPIX_TEST_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/py-schemathesis/bin/schemathesis")
        });
    p.exists().then_some(p)
}

/// The checks every answer must pass. Not `positive_data_acceptance`: no project folder
/// exists under the daemon's `--allow-root` in the first run, so no create may succeed.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,negative_data_rejection,\
    missing_required_header,ignored_auth,unsupported_method";

/// One bounded schemathesis run against the daemon on `port`, with the config file `config`
/// (given explicitly: none is looked for in the folders above) and more arguments.
fn fuzz(st: &Path, work: &Path, port: u16, token: &str, config: &str, more: &[&str]) -> Out {
    let file = work.join("schemathesis.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(st);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", work)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(&file)
        .args(["run", &format!("http://127.0.0.1:{port}/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        // Bounded: a few seconds each on two cores; each answer within 5 s, none hangs.
        .args(["--max-examples", "40", "--workers", "2"])
        .args(["--max-response-time", "5", "--request-timeout", "10"])
        .args([
            "--generation-database",
            "none",
            "--output-truncate",
            "false",
        ])
        .args(more);
    let out = output_within(cmd, work, None, Duration::from_secs(180)).unwrap();
    eprintln!("{}", out.stdout);
    assert_eq!(out.code, 0, "schemathesis found failures:\n{out}");
    assert!(out.stdout.contains("passed"), "{out}");
    out
}

#[test]
fn manager_api_survives_schemathesis_from_its_openapi_document() {
    let Some(m) = M::new() else { return };
    let Some(st) = schemathesis() else {
        required(
            "schemathesis is missing (scripts/install-deps.sh --test installs it into target/py-schemathesis)",
        );
        return;
    };
    // Project folders must be under a folder that is empty at first: every generated create
    // is refused before anything starts, so the fuzzing starts no sandbox.
    let roots = m.c.root.join("projects");
    std::fs::create_dir(&roots).unwrap();
    m.c.give(&roots);
    let port = free_port();
    let d = m.daemon_with(&roots, Some(port));
    let work = m.c.root.join("schemathesis");
    std::fs::create_dir(&work).unwrap();
    let token = token(&m);
    // 1. Every operation, ids and bodies generated.
    fuzz(&st, &work, port, &token, "", &[]);
    let (s, v) = m.json("GET", "/api/sandboxes", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, serde_json::json!([]), "a generated create got through");
    // 2. One real session's operations, against the document: its record, picture, metrics
    // and log, then Stop (not the endless log stream, not delete, no other create).
    let project = roots.join("p");
    std::fs::create_dir(&project).unwrap();
    m.c.give(&project);
    let body = serde_json::json!({"name": "fz", "backend": "bwrap", "project_dir": project, "network": "none"});
    let (s, v) = m.json("POST", "/api/sandboxes", &body.to_string());
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    until(
        "the session's first picture",
        Duration::from_secs(60),
        || {
            let (s, png) = m.api("GET", &format!("/api/sandboxes/{id}/screenshot"), "");
            (s == 200 && first_png_pixel(&png) == PIXEL).then_some(())
        },
    );
    fuzz(
        &st,
        &work,
        port,
        &token,
        &format!("[parameters]\n\"path.id\" = \"{id}\"\n"),
        &[
            "--exclude-method",
            "DELETE",
            "--exclude-path-regex",
            "stream|^/api/sandboxes$|^/api/metrics",
        ],
    );
    let (s, v) = m.json("GET", "/api/sandboxes", "");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["status"], "stopped", "{v}");
    shut_down(&m, d);
}
