//! The dashboard: server-rendered HTML with htmx (vendored into the binary, no JS build step,
//! no request to any other host). Plain HTML forms post to the same service calls the JSON
//! API makes (create, stop, delete: [`crate::service::Manager`]); htmx only polls fragments
//! (the session list, metrics, the log, the screenshots) every few seconds.
//!
//! Every response carries a strict Content-Security-Policy (no inline scripts or styles, no
//! other host); everything a session or an agent wrote (names, paths, model names, the log)
//! is HTML-escaped.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use crate::api::{blocking, AppState};
use crate::model::{CreateRequest, Session};
use crate::ApiError;

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The assets compiled into the binary (`MANAGER_STATIC_DIR` overrides them by file name).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/htmx.min.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
];

/// htmx without `eval` (hx-on, `js:` values), without script tags in swapped content and
/// without the inline indicator style (the CSP would refuse both anyway).
const HTMX_CONFIG: &str = r#"{"allowEval":false,"allowScriptTags":false,"includeIndicatorStyles":false,"selfRequestsOnly":true,"historyCacheSize":0}"#;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/sandboxes", post(create))
        .route("/sandboxes/{id}", get(detail))
        .route("/sandboxes/{id}/stop", post(stop))
        .route("/sandboxes/{id}/delete", post(delete))
        .route("/ui/sessions", get(sessions_fragment))
        .route("/ui/system", get(system_fragment))
        .route("/ui/sandboxes/{id}/shot", get(shot_fragment))
        .route("/ui/sandboxes/{id}/metrics", get(metrics_fragment))
        .route("/ui/sandboxes/{id}/log", get(log_fragment))
        .route("/assets/{file}", get(asset))
        .layer(axum::middleware::map_response(secure_headers))
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A short hash of the embedded assets: their URLs change when they do, so they may be
/// cached for a year.
fn asset_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        // FNV-1a over every embedded asset.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, _, bytes) in ASSETS {
            for b in *bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    })
}

async fn asset(State(st): State<AppState>, Path(file): Path<String>) -> Response {
    let Some((name, ctype, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return ApiError::not_found("no such asset").into_response();
    };
    if let Some(dir) = st.mgr.cfg.static_dir.clone() {
        // Served from the folder: it may change at any time, so revalidate every time.
        let path = dir.join(name);
        return match tokio::fs::read(&path).await {
            Ok(b) => (
                [
                    (header::CONTENT_TYPE, *ctype),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                b,
            )
                .into_response(),
            Err(e) => ApiError::not_found(format!("{}: {e}", path.display())).into_response(),
        };
    }
    (
        [
            (header::CONTENT_TYPE, *ctype),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        *bytes,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> String {
    let v = asset_version();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="htmx-config" content="{cfg}">
<title>{title} · wrapix manager</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css?v={v}">
<script src="/assets/htmx.min.js?v={v}" defer></script>
</head>
<body>
<header><h1><a href="/">wrapix manager</a></h1>
<section aria-label="System metrics" hx-get="/ui/system" hx-trigger="load, every 5s">{sys}</section>
</header>
<main>
{body}
</main>
</body>
</html>
"#,
        cfg = esc(HTMX_CONFIG),
        title = esc(title),
        sys = "<span class=\"muted\">loading system metrics…</span>",
    )
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body))).into_response()
}

fn error_page(e: &ApiError) -> Response {
    html(
        e.status,
        "Error",
        &format!(
            "<h2>Error</h2><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/\">Back to the sessions</a></p>",
            esc(&e.message)
        ),
    )
}

fn fragment(s: String) -> Response {
    Html(s).into_response()
}

fn badge(s: &Session) -> String {
    let st = s.status.as_str();
    format!("<span class=\"badge {st}\">{st}</span>")
}

/// The picture of a session: a fragment that polls itself; the image URL carries the
/// picture's ETag, so the browser fetches it again only when it changed. `etag`: the last
/// picture taken, shown at once (no flicker when the list is redrawn).
fn shot_holder(s: &Session, etag: Option<&str>) -> String {
    if !s.status.is_live() {
        return "<div class=\"shot\"><div class=\"none\">no display</div></div>".into();
    }
    let inner = match etag {
        Some(etag) => shot_img(s, etag),
        None => "<div class=\"none\">waiting for a picture…</div>".into(),
    };
    format!(
        "<div class=\"shot\" hx-get=\"/ui/sandboxes/{id}/shot\" hx-trigger=\"load, every 3s\">{inner}</div>",
        id = esc(&s.id)
    )
}

fn shot_img(s: &Session, etag: &str) -> String {
    format!(
        "<img src=\"/api/sandboxes/{id}/screenshot?v={etag}\" alt=\"The display of session {name}\">",
        id = esc(&s.id),
        etag = esc(etag),
        name = esc(&s.name),
    )
}

/// The sessions with the ETag of each one's last picture (none is taken here).
fn list_with_shots(m: &crate::Manager) -> Result<Vec<(Session, Option<String>)>, ApiError> {
    let list = m.list()?;
    let shots = m.shots.lock().ok();
    Ok(list
        .into_iter()
        .map(|s| {
            let etag = shots
                .as_ref()
                .and_then(|c| c.get(&s.id).map(|x| x.etag.clone()));
            (s, etag)
        })
        .collect())
}

fn session_list(list: &[(Session, Option<String>)]) -> String {
    if list.is_empty() {
        return "<p class=\"muted\">No sessions yet: create one below.</p>".into();
    }
    let mut o = String::from("<ul class=\"cards\">");
    for (s, etag) in list {
        let _ = write!(
            o,
            "<li class=\"card\"><h3><a href=\"/sandboxes/{id}\">{name}</a> {badge}</h3>\
             <p class=\"path\">{path}</p>{shot}<p class=\"muted\">{backend}{profile}</p></li>",
            id = esc(&s.id),
            name = esc(&s.name),
            badge = badge(s),
            path = esc(&s.project_dir.to_string_lossy()),
            shot = shot_holder(s, etag.as_deref()),
            backend = esc(&s.backend),
            profile = s
                .profile
                .as_deref()
                .map(|p| format!(" · {}", esc(p)))
                .unwrap_or_default(),
        );
    }
    o.push_str("</ul>");
    o
}

/// The create form's fields, kept when the form comes back with an error.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    project_dir: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    network: String,
}

impl CreateForm {
    /// The JSON API's request: empty fields mean "the project's config decides".
    fn request(&self) -> CreateRequest {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        CreateRequest {
            name: self.name.trim().to_owned(),
            backend: opt(&self.backend),
            project_dir: self.project_dir.trim().to_owned(),
            network: opt(&self.network).map(serde_json::Value::String),
            profile: opt(&self.profile),
        }
    }
}

fn options(current: &str, choices: &[(&str, &str)]) -> String {
    let mut o = String::new();
    for (value, label) in choices {
        let sel = if *value == current { " selected" } else { "" };
        let _ = write!(
            o,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(value),
            esc(label)
        );
    }
    o
}

fn create_form(f: &CreateForm, error: Option<&str>) -> String {
    let mut backends: Vec<(&str, &str)> = vec![("", "auto (the project's config)")];
    for n in wrapix_sandbox::backend::names() {
        backends.push((n.name, n.name));
    }
    let err = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"create-error\" role=\"alert\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    let described = if error.is_some() {
        " aria-describedby=\"create-error\""
    } else {
        ""
    };
    format!(
        r#"<h2 id="create-title">New session</h2>
{err}<form class="create" method="post" action="/sandboxes" aria-labelledby="create-title"{described}>
<label>Name <input name="name" required maxlength="64" pattern="[A-Za-z0-9._\-]{{1,64}}" autocomplete="off" value="{name}"></label>
<label>Project folder <input name="project_dir" required autocomplete="off" placeholder="/home/you/project" value="{dir}"></label>
<label>Backend <select name="backend">{backends}</select></label>
<label>Profile <input name="profile" autocomplete="off" placeholder="the project's config" value="{profile}"></label>
<label>Network <select name="network">{network}</select></label>
<button type="submit">Create</button>
</form>"#,
        name = esc(&f.name),
        dir = esc(&f.project_dir),
        backends = options(&f.backend, &backends),
        profile = esc(&f.profile),
        network = options(
            &f.network,
            &[
                ("", "the project's config"),
                ("open", "open"),
                ("none", "none")
            ]
        ),
    )
}

fn index_body(
    list: &[(Session, Option<String>)],
    form: &CreateForm,
    error: Option<&str>,
) -> String {
    format!(
        "<h2>Sessions</h2>\
         <div id=\"sessions\" hx-get=\"/ui/sessions\" hx-trigger=\"every 5s\" aria-live=\"polite\">{}</div>\
         {}",
        session_list(list),
        create_form(form, error)
    )
}

async fn index(State(st): State<AppState>) -> Response {
    match blocking(&st.mgr, list_with_shots).await {
        Ok(list) => html(
            StatusCode::OK,
            "Sessions",
            &index_body(&list, &CreateForm::default(), None),
        ),
        Err(e) => error_page(&e),
    }
}

/// `POST /sandboxes` (a form): the JSON API's create, through the same service call; on a
/// refusal the form comes back with the error and the values.
async fn create(
    State(st): State<AppState>,
    form: Result<Form<CreateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(r) => return error_page(&ApiError::bad_request(format!("cannot read the form: {r}"))),
    };
    let req = form.request();
    match blocking(&st.mgr, move |m| m.create(&req)).await {
        Ok(s) => Redirect::to(&format!("/sandboxes/{}", s.id)).into_response(),
        Err(e) => {
            let list = blocking(&st.mgr, list_with_shots).await.unwrap_or_default();
            html(
                e.status,
                "Sessions",
                &index_body(&list, &form, Some(&e.message)),
            )
        }
    }
}

async fn sessions_fragment(State(st): State<AppState>) -> Response {
    match blocking(&st.mgr, list_with_shots).await {
        Ok(list) => fragment(session_list(&list)),
        Err(e) => fragment(format!("<p class=\"error\">{}</p>", esc(&e.message))),
    }
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
}

fn dl(items: &[(&str, String)]) -> String {
    let mut o = String::from("<dl class=\"metrics\">");
    for (k, v) in items {
        let _ = write!(o, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(v));
    }
    o.push_str("</dl>");
    o
}

async fn system_fragment(State(st): State<AppState>) -> Response {
    let m = match blocking(&st.mgr, |m| Ok(m.metrics.system(&m.cfg.state_dir))).await {
        Ok(m) => m,
        Err(e) => return fragment(format!("<p class=\"error\">{}</p>", esc(&e.message))),
    };
    fragment(dl(&[
        ("CPU", format!("{:.0}% of {}", m.cpu_percent, m.cpus)),
        (
            "Memory",
            format!(
                "{} / {}",
                gib(m.memory_used_bytes),
                gib(m.memory_total_bytes)
            ),
        ),
        (
            "Disk",
            format!("{} / {}", gib(m.disk_used_bytes), gib(m.disk_total_bytes)),
        ),
        (
            "Load",
            format!(
                "{:.2} {:.2} {:.2}",
                m.load_average[0], m.load_average[1], m.load_average[2]
            ),
        ),
        (
            "Up",
            format!(
                "{}d {}h",
                m.uptime_seconds / 86400,
                m.uptime_seconds % 86400 / 3600
            ),
        ),
    ]))
}

async fn shot_fragment(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let key = id.clone();
    let shot = blocking(&st.mgr, move |m| {
        let s = m.find(&key)?;
        let shot = crate::screenshot::latest(m, &s.id, Duration::from_secs(2))?;
        Ok((s, shot.etag))
    })
    .await;
    fragment(match shot {
        Ok((s, etag)) => shot_img(&s, &etag),
        Err(e) => format!("<div class=\"none\">{}</div>", esc(&e.message)),
    })
}

async fn metrics_fragment(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let m = match blocking(&st.mgr, move |m| crate::metrics::session(m, &id)).await {
        Ok(m) => m,
        Err(e) => return fragment(format!("<p class=\"error\">{}</p>", esc(&e.message))),
    };
    let a = &m.agent;
    let tools = a
        .tool_uses
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    fragment(dl(&[
        ("CPU", format!("{:.0}%", m.cpu_percent)),
        ("Memory", mib(m.memory_bytes)),
        ("Processes", m.processes.to_string()),
        ("Model", a.model.clone().unwrap_or_else(|| "—".into())),
        ("Messages", a.message_count.to_string()),
        (
            "Tokens in/out",
            format!("{} / {}", a.input_tokens, a.output_tokens),
        ),
        (
            "Cache write/read",
            format!(
                "{} / {}",
                a.cache_creation_input_tokens, a.cache_read_input_tokens
            ),
        ),
        (
            "Tools",
            if tools.is_empty() {
                "—".into()
            } else {
                tools
            },
        ),
        (
            "Last activity",
            a.last_activity.clone().unwrap_or_else(|| "—".into()),
        ),
    ]))
}

/// The log's last part (the page polls it; the whole text is at `/api/sandboxes/{id}/logs`).
const LOG_TAIL: usize = 64 * 1024;

async fn log_fragment(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match blocking(&st.mgr, move |m| m.log(&id)).await {
        Ok((_, text)) => {
            let mut start = text.len().saturating_sub(LOG_TAIL);
            while !text.is_char_boundary(start) {
                start += 1;
            }
            fragment(esc(&text[start..]))
        }
        Err(e) => fragment(esc(&e.message)),
    }
}

async fn detail(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let s = match blocking(&st.mgr, move |m| m.find(&id)).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    let id = esc(&s.id);
    let reason = s
        .reason
        .as_deref()
        .map(|r| format!("<p class=\"muted\">{}</p>", esc(r)))
        .unwrap_or_default();
    let code = s
        .exit_code
        .map(|c| format!("<p class=\"muted\">exit code {c}</p>"))
        .unwrap_or_default();
    let stop = if s.status.is_live() {
        format!(
            "<form method=\"post\" action=\"/sandboxes/{id}/stop\"><button type=\"submit\">Stop</button></form>"
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<div class="detail">
<h2>{name} {badge}</h2>
<p class="path">{path}</p>
{reason}{code}
<p>Attach to its terminal: <code>{attach}</code></p>
<p class="muted">{backend}{profile}{network} · created {created} · id {id}</p>
<div class="actions">{stop}<form method="post" action="/sandboxes/{id}/delete"><button class="danger" type="submit">Delete</button></form></div>
<div class="grid2">
<section aria-label="Screen">{shot}</section>
<section aria-labelledby="m-title"><h2 id="m-title">Agent metrics</h2>
<div hx-get="/ui/sandboxes/{id}/metrics" hx-trigger="load, every 5s"><span class="muted">loading…</span></div>
</section>
</div>
<h2 id="log-title">Log</h2>
<pre class="log" aria-labelledby="log-title" hx-get="/ui/sandboxes/{id}/log" hx-trigger="load, every 2s" hx-swap="innerHTML scroll:bottom"></pre>
</div>"#,
        name = esc(&s.name),
        badge = badge(&s),
        path = esc(&s.project_dir.to_string_lossy()),
        attach = esc(&format!("wrapix remote attach {}", s.id)),
        backend = esc(&s.backend),
        profile = s
            .profile
            .as_deref()
            .map(|p| format!(" · profile {}", esc(p)))
            .unwrap_or_default(),
        network = s
            .network
            .map(|n| format!(" · network {}", n.as_str()))
            .unwrap_or_default(),
        created = esc(&s.created_at),
        shot = shot_holder(&s, None),
    );
    html(StatusCode::OK, &s.name, &body)
}

async fn stop(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match blocking(&st.mgr, move |m| m.stop(&id)).await {
        Ok(s) => Redirect::to(&format!("/sandboxes/{}", s.id)).into_response(),
        Err(e) => error_page(&e),
    }
}

async fn delete(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match blocking(&st.mgr, move |m| m.delete(&id)).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => error_page(&e),
    }
}
