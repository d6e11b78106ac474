//! The JSON API through the router, without a server: every refusal of the security
//! bar (paths outside the roots, bad names, big bodies, wrong Host, foreign Origin, no token,
//! another user on the socket) starts nothing and writes nothing; the happy path runs a real
//! tmux session (a `sleep`, not a sandbox: the launcher is a stand-in).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use wrapix_manager::auth::{Door, Peer};
use wrapix_manager::daemon::{open, Options};
use wrapix_manager::model::NewSession;
use wrapix_manager::{Launcher, Manager};

pub(super) struct Fake;

impl Launcher for Fake {
    fn check(&self, s: &NewSession) -> Result<(), String> {
        match s.profile.as_deref() {
            Some("nope") => Err("profile \"nope\" is not defined".into()),
            _ => Ok(()),
        }
    }
    fn argv(&self, _: &NewSession) -> Vec<OsString> {
        vec!["sleep".into(), "600".into()]
    }
    fn transcripts(&self, _: &Path) -> Option<PathBuf> {
        None
    }
}

pub(super) struct T {
    _dir: tempfile::TempDir,
    pub(super) root: PathBuf,
    outside: PathBuf,
    pub(super) mgr: Arc<Manager>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Drop for T {
    fn drop(&mut self) {
        let _ = self.mgr.stop_all();
    }
}

pub(super) fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("projects");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("p")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    let opts = Options {
        listen: Some("127.0.0.1:3000".parse().unwrap()),
        state_dir: dir.path().join("state"),
        roots: vec![root.clone()],
        static_dir: None,
    };
    let (mgr, lock) = open(&opts, Arc::new(Fake)).unwrap();
    T {
        _dir: dir,
        root,
        outside,
        mgr,
        _lock: lock,
    }
}

#[test]
fn a_state_folder_too_long_for_the_tmux_sockets_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s".repeat(120));
    let opts = Options {
        listen: None,
        state_dir: state.clone(),
        roots: vec![dir.path().to_path_buf()],
        static_dir: None,
    };
    let Err(e) = open(&opts, Arc::new(Fake)) else {
        panic!(
            "a state folder of {} bytes was accepted",
            state.as_os_str().len()
        );
    };
    assert!(e.contains("--state-dir") && e.contains("too long"), "{e}");
    assert!(!state.exists(), "nothing is created");
}

pub(super) fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A request through the socket door from `uid`.
pub(super) fn sock(method: &str, uri: &str, body: &str, uid: Option<u32>) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    r.extensions_mut().insert(ConnectInfo(Peer { uid }));
    r
}

pub(super) async fn call(
    t: &T,
    door: Door,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let app = wrapix_manager::api::router(t.mgr.clone(), door);
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// Nothing was recorded or started.
pub(super) fn untouched(t: &T) {
    assert!(t.mgr.list().unwrap().is_empty(), "a session was recorded");
    let tmux = t.mgr.cfg.state_dir.join("tmux");
    let socks: Vec<_> = std::fs::read_dir(&tmux)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .collect();
    assert!(socks.is_empty(), "a tmux session was started: {socks:?}");
    assert_eq!(
        std::fs::read_dir(t.mgr.cfg.state_dir.join("logs"))
            .unwrap()
            .count(),
        0
    );
}

fn body(name: &str, dir: &Path) -> String {
    serde_json::json!({"name": name, "backend": "bubblewrap", "project_dir": dir, "network": true})
        .to_string()
}

async fn refused(t: &T, req: Request<Body>, want: StatusCode) -> String {
    let (st, _, b) = call(t, Door::Socket, req).await;
    assert_eq!(st, want, "{}", String::from_utf8_lossy(&b));
    let v = json(&b);
    let msg = v["error"].as_str().expect("an error message").to_owned();
    untouched(t);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_stop_delete_through_the_socket() {
    let t = setup();
    let p = t.root.join("p");
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("POST", "/api/sandboxes", &body("one", &p), Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    let s = json(&b);
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["status"], "running");
    assert_eq!(s["backend"], "bwrap");
    assert_eq!(s["network"], "open");
    assert_eq!(id.len(), 36);
    // A duplicate name.
    let (st, _, _) = call(
        &t,
        Door::Socket,
        sock("POST", "/api/sandboxes", &body("one", &p), Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // List, get by prefix and by name.
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", "/api/sandboxes", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(json(&b).as_array().unwrap().len(), 1);
    for key in [&id[..8], "one"] {
        let (st, _, b) = call(
            &t,
            Door::Socket,
            sock("GET", &format!("/api/sandboxes/{key}"), "", Some(me())),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(json(&b)["id"], id.as_str());
    }
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock(
            "GET",
            &format!("/api/sandboxes/{id}/metrics"),
            "",
            Some(me()),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        json(&b)["processes"].as_u64().unwrap() >= 1,
        "{}",
        String::from_utf8_lossy(&b)
    );
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("POST", &format!("/api/sandboxes/{id}/stop"), "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(json(&b)["status"], "stopped");
    assert!(!t.mgr.tmux.socket(&id).exists());
    let (st, _, _) = call(
        &t,
        Door::Socket,
        sock("DELETE", &format!("/api/sandboxes/{id}"), "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", &format!("/api/sandboxes/{id}"), "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(json(&b)["error"].is_string());
}

#[tokio::test]
async fn project_dirs_outside_the_roots_are_refused() {
    let t = setup();
    let up = format!("{}/p/../../outside", t.root.display());
    for dir in [
        t.outside.to_string_lossy().into_owned(),
        up,
        t.root.join("escape").to_string_lossy().into_owned(),
        t.root.join("missing").to_string_lossy().into_owned(),
        "relative/p".to_owned(),
        "/".to_owned(),
    ] {
        let b = serde_json::json!({"name": "x", "project_dir": dir}).to_string();
        let msg = refused(
            &t,
            sock("POST", "/api/sandboxes", &b, Some(me())),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(msg.contains("project_dir"), "{dir}: {msg}");
    }
}

#[tokio::test]
async fn bad_names_backends_profiles_and_bodies_are_refused() {
    let t = setup();
    let p = t.root.join("p");
    let long = "a".repeat(200);
    for name in [
        "a;b",
        "$(touch /tmp/pwned)",
        "a\nb",
        "",
        long.as_str(),
        "..",
        "a b",
        "a/b",
    ] {
        let msg = refused(
            &t,
            sock("POST", "/api/sandboxes", &body(name, &p), Some(me())),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(msg.starts_with("name:"), "{name:?}: {msg}");
    }
    for (b, want) in [
        (
            serde_json::json!({"name": "x", "project_dir": p, "backend": "none"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": "x", "project_dir": p, "backend": "docker"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": "x", "project_dir": p, "profile": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": "x", "project_dir": p, "profile": "../etc"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": "x", "project_dir": p, "network": "maybe"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": "x", "project_dir": p, "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"name": 5, "project_dir": p}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"project_dir": p}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        refused(
            &t,
            sock("POST", "/api/sandboxes", &b.to_string(), Some(me())),
            want,
        )
        .await;
    }
    refused(
        &t,
        sock("POST", "/api/sandboxes", "{not json", Some(me())),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // 1 MiB.
    let big = format!(
        "{{\"name\":\"x\",\"project_dir\":\"{}\",\"profile\":\"{}\"}}",
        p.display(),
        "a".repeat(1 << 20)
    );
    refused(
        &t,
        sock("POST", "/api/sandboxes", &big, Some(me())),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // Unknown sessions.
    refused(
        &t,
        sock("POST", "/api/sandboxes/nope/stop", "", Some(me())),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &t,
        sock("DELETE", "/api/sandboxes/nope", "", Some(me())),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &t,
        sock("GET", "/api/sandboxes/nope/screenshot", "", Some(me())),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &t,
        sock("GET", "/api/nothing", "", Some(me())),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn wrong_host_foreign_origin_and_other_users_are_refused() {
    let t = setup();
    let good = body("x", &t.root.join("p"));
    let mut r = sock("POST", "/api/sandboxes", &good, Some(me()));
    r.headers_mut()
        .insert(header::HOST, "evil.example".parse().unwrap());
    refused(&t, r, StatusCode::FORBIDDEN).await;
    let mut r = sock("POST", "/api/sandboxes", &good, Some(me()));
    r.headers_mut().remove(header::HOST);
    refused(&t, r, StatusCode::FORBIDDEN).await;
    let mut r = sock("POST", "/api/sandboxes", &good, Some(me()));
    r.headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    refused(&t, r, StatusCode::FORBIDDEN).await;
    let mut r = sock("POST", "/api/sandboxes", &good, Some(me()));
    r.headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    refused(&t, r, StatusCode::FORBIDDEN).await;
    // Another user on the socket, or a peer whose credentials are unknown.
    refused(
        &t,
        sock("POST", "/api/sandboxes", &good, Some(me() + 1)),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &t,
        sock("GET", "/api/sandboxes", "", Some(me() + 1)),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &t,
        sock("POST", "/api/sandboxes", &good, None),
        StatusCode::FORBIDDEN,
    )
    .await;
    // The same-origin form post of the dashboard passes the Origin check.
    let mut r = sock("GET", "/api/sandboxes", "", Some(me()));
    r.headers_mut()
        .insert(header::ORIGIN, "http://localhost".parse().unwrap());
    let (st, _, _) = call(&t, Door::Socket, r).await;
    assert_eq!(st, StatusCode::OK);
}

pub(super) fn tcp(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:3000")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn tcp_needs_the_token() {
    let t = setup();
    let token = std::fs::read_to_string(t.mgr.cfg.state_dir.join("token")).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.mgr.cfg.state_dir.join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let good = body("x", &t.root.join("p"));
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong".to_owned()), StatusCode::UNAUTHORIZED),
        (
            Some(format!("Bearer {}", &token[..63])),
            StatusCode::UNAUTHORIZED,
        ),
        (Some(format!("Basic {token}")), StatusCode::UNAUTHORIZED),
    ] {
        for (m, u, b) in [
            ("POST", "/api/sandboxes", good.as_str()),
            ("GET", "/api/sandboxes", ""),
            ("GET", "/", ""),
            ("GET", "/api/openapi.json", ""),
        ] {
            let mut r = tcp(m, u, b);
            if let Some(a) = &auth {
                r.headers_mut()
                    .insert(header::AUTHORIZATION, a.parse().unwrap());
            }
            let (st, _, body) = call(&t, Door::Tcp, r).await;
            assert_eq!(st, want, "{m} {u}");
            assert!(json(&body)["error"].is_string());
            untouched(&t);
        }
    }
    // Another name in Host is another site (DNS rebinding).
    let mut r = tcp("GET", "/api/sandboxes", "");
    r.headers_mut()
        .insert(header::HOST, "rebind.example:3000".parse().unwrap());
    r.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    assert_eq!(call(&t, Door::Tcp, r).await.0, StatusCode::FORBIDDEN);
    // Bearer works.
    let mut r = tcp("GET", "/api/sandboxes", "");
    r.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    assert_eq!(call(&t, Door::Tcp, r).await.0, StatusCode::OK);
    // /login: a wrong token sets nothing; the right one sets the strict cookie, which works.
    let (st, h, _) = call(&t, Door::Tcp, tcp("GET", "/login?token=nope", "")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(h.get(header::SET_COOKIE).is_none());
    let (st, h, _) = call(
        &t,
        Door::Tcp,
        tcp("GET", &format!("/login?token={token}"), ""),
    )
    .await;
    assert!(st.is_redirection());
    let cookie = h
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let mut r = tcp("GET", "/api/sandboxes", "");
    r.headers_mut()
        .insert(header::COOKIE, pair.parse().unwrap());
    assert_eq!(call(&t, Door::Tcp, r).await.0, StatusCode::OK);
}

#[tokio::test]
async fn openapi_document_lists_the_paths() {
    let t = setup();
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", "/api/openapi.json", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let v = json(&b);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/sandboxes",
        "/api/sandboxes/{id}",
        "/api/sandboxes/{id}/stop",
        "/api/sandboxes/{id}/screenshot",
        "/api/sandboxes/{id}/metrics",
        "/api/metrics/system",
        "/api/sandboxes/{id}/logs",
    ] {
        assert!(v["paths"].get(p).is_some(), "{p}");
    }
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", "/api/metrics/system", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(json(&b)["memory_total_bytes"].as_u64().unwrap() > 0);
}

/// A project folder that holds the manager's state folder is refused: a sandbox there could
/// connect to the manager's socket and to every session's tmux server.
#[tokio::test]
async fn a_project_holding_the_state_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("projects");
    std::fs::create_dir_all(root.join("p")).unwrap();
    let opts = Options {
        listen: None,
        state_dir: root.join("p/.manager"),
        roots: vec![root.clone()],
        static_dir: None,
    };
    let (mgr, lock) = open(&opts, Arc::new(Fake)).unwrap();
    let t = T {
        _dir: dir,
        root: root.clone(),
        outside: root.clone(),
        mgr,
        _lock: lock,
    };
    for project in [root.join("p"), root.clone()] {
        let b = serde_json::json!({"name": "x", "project_dir": project}).to_string();
        let msg = refused(
            &t,
            sock("POST", "/api/sandboxes", &b, Some(me())),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(msg.contains("state folder"), "{msg}");
    }
}
