//! The dashboard through the router (no server): pages render and list sessions, untrusted
//! text is escaped, the create form goes through the JSON API's service call and shows its
//! refusals inline, every page carries the CSP, assets are cached for long, and the TCP
//! door wants the token for `/` too.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use wrapix_manager::auth::{Door, Peer};

use super::api::{call, me, setup, sock, tcp, untouched, Fake};

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// A form post through the socket door, as the dashboard's own page sends it: Chromium
/// sends `Origin: null` (the pages' `Referrer-Policy: no-referrer`) and
/// `Sec-Fetch-Site: same-origin`.
fn form(uri: &str, body: &str) -> Request<Body> {
    let mut r = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, "null")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(Peer { uid: Some(me()) }));
    r
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn index_renders_lists_and_escapes() {
    let t = setup();
    let (st, h, b) = call(&t, Door::Socket, sock("GET", "/", "", Some(me()))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("img-src 'self' data:"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let page = text(&b);
    assert!(page.contains("No sessions yet"));
    assert!(page.contains("<form class=\"create\" method=\"post\" action=\"/sandboxes\""));
    // No inline script, no other host.
    assert!(!page.contains("<script>"));
    assert!(!page.contains("http://") && !page.contains("https://"));

    // A real folder whose name is markup (a file name has no `/`).
    let hostile = t
        .root
        .join("<script>alert(1)<img src=x onerror=alert(2)>\"'&");
    std::fs::create_dir(&hostile).unwrap();
    let body = serde_json::json!({"name": "evil", "project_dir": hostile}).to_string();
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("POST", "/api/sandboxes", &body, Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{}", text(&b));
    let id = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for uri in ["/", "/ui/sessions", &format!("/sandboxes/{id}")] {
        let (st, h, b) = call(&t, Door::Socket, sock("GET", uri, "", Some(me()))).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {}", text(&b));
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY), "{uri}");
        let page = text(&b);
        assert!(page.contains("evil"), "{uri}");
        assert!(page.contains(&id), "{uri}");
        assert!(
            page.contains(
                "&lt;script&gt;alert(1)&lt;img src=x onerror=alert(2)&gt;&quot;&#39;&amp;"
            ),
            "{uri}: {page}"
        );
        assert!(!page.contains("<script>alert"), "{uri}");
        assert!(!page.contains("<img src=x"), "{uri}");
        assert!(page.contains("running"), "{uri}");
    }
    // The detail page: the attach command, stop and delete forms, the polled log.
    let (_, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", &format!("/sandboxes/{}", &id[..8]), "", Some(me())),
    )
    .await;
    let page = text(&b);
    assert!(page.contains(&format!("<code>wrapix remote attach {id}</code>")));
    assert!(page.contains(&format!("action=\"/sandboxes/{id}/stop\"")));
    assert!(page.contains(&format!("action=\"/sandboxes/{id}/delete\"")));
    assert!(page.contains(&format!("hx-get=\"/ui/sandboxes/{id}/log\"")));
    // The fragments answer.
    for uri in [
        format!("/ui/sandboxes/{id}/log"),
        format!("/ui/sandboxes/{id}/metrics"),
        format!("/ui/sandboxes/{id}/shot"),
        "/ui/system".to_owned(),
    ] {
        let (st, _, b) = call(&t, Door::Socket, sock("GET", &uri, "", Some(me()))).await;
        assert_eq!(st, StatusCode::OK, "{uri}: {}", text(&b));
        assert!(!text(&b).contains("<script"), "{uri}");
    }
    // An unknown session: a 404 page, escaped.
    let (st, _, b) = call(
        &t,
        Door::Socket,
        sock("GET", "/sandboxes/%3Cb%3Enope", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(!text(&b).contains("<b>nope"));
}

#[tokio::test]
async fn the_form_creates_through_the_service_and_shows_refusals_inline() {
    let t = setup();
    let p = t.root.join("p");
    // A bad name: the page again, with the API's message, the values kept, nothing started.
    let bad = format!(
        "name={}&project_dir={}&backend=&profile=&network=open",
        enc("a;b<i>"),
        enc(&p.to_string_lossy())
    );
    let (st, h, b) = call(&t, Door::Socket, form("/sandboxes", &bad)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{}", text(&b));
    assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
    let page = text(&b);
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(page.contains("name"), "{page}");
    assert!(page.contains("value=\"a;b&lt;i&gt;\""), "{page}");
    assert!(!page.contains("<i>"));
    untouched(&t);
    // Outside the roots and an unknown profile: refused the same way as the API.
    let (st, _, _) = call(
        &t,
        Door::Socket,
        form("/sandboxes", "name=x&project_dir=%2Fetc"),
    )
    .await;
    assert!(st.is_client_error(), "{st}");
    let nope = format!(
        "name=x&project_dir={}&profile=nope",
        enc(&p.to_string_lossy())
    );
    let (st, _, b) = call(&t, Door::Socket, form("/sandboxes", &nope)).await;
    assert!(st.is_client_error(), "{st}");
    assert!(text(&b).contains("profile &quot;nope&quot; is not defined"));
    untouched(&t);

    // A good one: a redirect to its page, the same record as the API's.
    let good = format!(
        "name=web&project_dir={}&backend=bubblewrap&profile=&network=none",
        enc(&p.to_string_lossy())
    );
    let (st, h, b) = call(&t, Door::Socket, form("/sandboxes", &good)).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{}", text(&b));
    let list = t.mgr.list().unwrap();
    assert_eq!(list.len(), 1);
    let s = &list[0];
    assert_eq!(s.name, "web");
    assert_eq!(s.backend, "bwrap");
    assert_eq!(s.network.map(|n| n.as_str()), Some("none"));
    assert_eq!(s.profile, None);
    assert_eq!(
        h[header::LOCATION].to_str().unwrap(),
        format!("/sandboxes/{}", s.id)
    );
    // The same name again: the API's conflict, inline.
    let (st, _, b) = call(&t, Door::Socket, form("/sandboxes", &good)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(text(&b).contains("class=\"error\""));
    assert_eq!(t.mgr.list().unwrap().len(), 1);

    // A form from another site is refused before anything runs.
    let mut r = form(&format!("/sandboxes/{}/stop", s.id), "");
    r.headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    r.headers_mut().remove("sec-fetch-site");
    let (st, _, _) = call(&t, Door::Socket, r).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Nor an opaque origin (a sandboxed frame, a data: page) without the browser's word
    // that it is this site.
    for site in [None, Some("cross-site"), Some("same-site")] {
        let mut r = form(&format!("/sandboxes/{}/stop", s.id), "");
        r.headers_mut().remove("sec-fetch-site");
        if let Some(site) = site {
            r.headers_mut()
                .insert("sec-fetch-site", site.parse().unwrap());
        }
        let (st, _, _) = call(&t, Door::Socket, r).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{site:?}");
    }
    assert_eq!(t.mgr.find(&s.id).unwrap().status.as_str(), "running");

    // Stop, then delete, through the page's forms.
    let (st, h, _) = call(
        &t,
        Door::Socket,
        form(&format!("/sandboxes/{}/stop", s.id), ""),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(
        h[header::LOCATION].to_str().unwrap(),
        format!("/sandboxes/{}", s.id)
    );
    assert_eq!(t.mgr.find(&s.id).unwrap().status.as_str(), "stopped");
    let (st, h, _) = call(
        &t,
        Door::Socket,
        form(&format!("/sandboxes/{}/delete", s.id), ""),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION].to_str().unwrap(), "/");
    assert!(t.mgr.list().unwrap().is_empty());
}

#[tokio::test]
async fn assets_are_embedded_and_cached_for_long() {
    let t = setup();
    let (_, _, b) = call(&t, Door::Socket, sock("GET", "/", "", Some(me()))).await;
    let page = text(&b);
    let src = page
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(src.starts_with("/assets/htmx.min.js?v="), "{src}");
    let (st, h, b) = call(&t, Door::Socket, sock("GET", &src, "", Some(me()))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(text(&b).contains("htmx"));
    assert!(text(&b).contains("Zero-Clause BSD"));
    let (st, h, _) = call(
        &t,
        Door::Socket,
        sock("GET", "/assets/style.css", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let (st, _, _) = call(
        &t,
        Door::Socket,
        sock("GET", "/assets/..%2Ftoken", "", Some(me())),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_tcp_door_wants_the_token_for_the_dashboard() {
    let t = setup();
    for uri in ["/", "/sandboxes/x", "/ui/sessions", "/assets/style.css"] {
        let (st, _, _) = call(&t, Door::Tcp, tcp("GET", uri, "")).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let (st, _, _) = call(
        &t,
        Door::Tcp,
        tcp("POST", "/sandboxes", "name=x&project_dir=%2F"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    untouched(&t);
    // With the cookie `/login` sets: the page.
    let token = std::fs::read_to_string(t.mgr.cfg.state_dir.join("token")).unwrap();
    let (st, h, _) = call(
        &t,
        Door::Tcp,
        tcp("GET", &format!("/login?token={}", token.trim()), ""),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let cookie = h[header::SET_COOKIE].to_str().unwrap();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let mut r = tcp("GET", "/", "");
    r.headers_mut()
        .insert(header::COOKIE, pair.parse().unwrap());
    let (st, _, b) = call(&t, Door::Tcp, r).await;
    assert_eq!(st, StatusCode::OK);
    assert!(text(&b).contains("wrapix manager"));
}

#[tokio::test]
async fn manager_static_dir_serves_assets_from_a_folder() {
    use std::sync::Arc;
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let assets = dir.path().join("assets");
    std::fs::create_dir(&assets).unwrap();
    std::fs::write(assets.join("style.css"), "body { color: red }").unwrap();
    let opts = wrapix_manager::daemon::Options {
        listen: None,
        state_dir: dir.path().join("state"),
        roots: vec![dir.path().to_owned()],
        static_dir: Some(assets),
    };
    let (mgr, _lock) = wrapix_manager::daemon::open(&opts, Arc::new(Fake)).unwrap();
    let get = |uri: &str| {
        let app = wrapix_manager::api::router(mgr.clone(), Door::Socket);
        let req = sock("GET", uri, "", Some(me()));
        async move { app.oneshot(req).await.unwrap() }
    };
    let r = get("/assets/style.css").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
    use http_body_util::BodyExt;
    let b = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&b[..], b"body { color: red }");
    // A file the folder lacks is a 404, and names outside the known assets are never read.
    assert_eq!(
        get("/assets/htmx.min.js").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/assets/token").await.status(), StatusCode::NOT_FOUND);
}
