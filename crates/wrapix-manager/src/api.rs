//! The JSON API (the original's paths, extended) and the router that puts the doors' checks
//! ([`crate::auth`]) in front of it and of the dashboard ([`crate::ui`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::auth::{self, Door};
use crate::model::{CreateRequest, ErrorBody, Session};
use crate::service::Manager;
use crate::ApiError;

/// Request bodies are small: a create request is a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub mgr: Arc<Manager>,
    pub door: Door,
}

/// Runs blocking service work off the async threads.
pub async fn blocking<T: Send + 'static>(
    mgr: &Arc<Manager>,
    f: impl FnOnce(&Manager) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let mgr = mgr.clone();
    tokio::task::spawn_blocking(move || f(&mgr))
        .await
        .map_err(|e| ApiError::internal(format!("a worker failed: {e}")))?
}

/// The whole application for one door.
pub fn router(mgr: Arc<Manager>, door: Door) -> Router {
    let st = AppState { mgr, door };
    Router::new()
        .route("/api/sandboxes", get(list).post(create))
        .route("/api/sandboxes/{id}", get(show).delete(delete))
        .route("/api/sandboxes/{id}/stop", post(stop))
        .route("/api/sandboxes/{id}/screenshot", get(screenshot))
        .route("/api/sandboxes/{id}/metrics", get(metrics))
        .route("/api/sandboxes/{id}/logs", get(logs))
        .route("/api/sandboxes/{id}/logs/stream", get(log_stream))
        .route("/api/metrics/system", get(system_metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/login", get(login))
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::not_found("no such page or API path") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            auth::check,
        ))
        .with_state(st)
}

#[derive(OpenApi)]
#[openapi(
    info(title = "wrapix manager", description = "Sessions of AI agents in sandboxes: create, watch, stop."),
    paths(list, create, show, delete, stop, screenshot, metrics, logs, log_stream, system_metrics),
    components(schemas(Session, CreateRequest, ErrorBody, crate::model::Status, crate::model::Network,
        crate::metrics::SystemMetrics, crate::metrics::SessionMetrics, crate::metrics::AgentMetrics)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;
impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        api.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
        // The doors' refusals (crate::auth), possible on every operation.
        let refusal = |why: &str| {
            ResponseBuilder::new()
                .description(why)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in api.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let r = &mut op.responses.responses;
                r.entry("401".into()).or_insert_with(|| {
                    refusal("No token (the TCP door): `Authorization: Bearer TOKEN`").into()
                });
                r.entry("403".into()).or_insert_with(|| {
                    refusal("A foreign Host or Origin, or another user on the socket").into()
                });
            }
        }
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Every session.
#[utoipa::path(get, path = "/api/sandboxes", responses((status = 200, body = [Session])))]
async fn list(State(st): State<AppState>) -> Result<Json<Vec<Session>>, ApiError> {
    blocking(&st.mgr, |m| m.list()).await.map(Json)
}

/// Parses a JSON body: 413 over the limit, 400 for bad JSON, 422 for wrong fields.
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, format!("the body is over {BODY_LIMIT} bytes"))
        } else {
            ApiError::bad_request(format!("cannot read the body: {r}"))
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::unprocessable(format!("the body: {e}")),
            _ => ApiError::bad_request(format!("the body is not JSON: {e}")),
        }
    })
}

/// Creates a session and starts it.
#[utoipa::path(post, path = "/api/sandboxes", request_body = CreateRequest, responses(
    (status = 201, body = Session), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
    (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let req: CreateRequest = parse_body(body)?;
    let s = blocking(&st.mgr, move |m| m.create(&req)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// One session (by id, a unique prefix of it, or its name).
#[utoipa::path(get, path = "/api/sandboxes/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody)))]
async fn show(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    blocking(&st.mgr, move |m| m.find(&id)).await.map(Json)
}

/// Stops the session (its sandbox ends; the record stays).
#[utoipa::path(post, path = "/api/sandboxes/{id}/stop", params(("id" = String, Path)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody)))]
async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Session>, ApiError> {
    blocking(&st.mgr, move |m| m.stop(&id)).await.map(Json)
}

/// Stops the session if it runs, then forgets it.
#[utoipa::path(delete, path = "/api/sandboxes/{id}", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(&st.mgr, move |m| m.delete(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The session's display as PNG (cached for a second or two; `ETag`).
#[utoipa::path(get, path = "/api/sandboxes/{id}/screenshot", params(("id" = String, Path)),
    responses((status = 200, content_type = "image/png"), (status = 304), (status = 404, body = ErrorBody)))]
async fn screenshot(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let shot = blocking(&st.mgr, move |m| {
        crate::screenshot::latest(m, &id, Duration::from_secs(2))
    })
    .await?;
    let etag = format!("\"{}\"", shot.etag);
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(header::CONTENT_TYPE, "image/png".to_owned())],
        shot.png.as_ref().clone(),
    )
        .into_response())
}

/// CPU and memory of the session's processes, and its agent's numbers.
#[utoipa::path(get, path = "/api/sandboxes/{id}/metrics", params(("id" = String, Path)),
    responses((status = 200, body = crate::metrics::SessionMetrics), (status = 404, body = ErrorBody)))]
async fn metrics(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::metrics::SessionMetrics>, ApiError> {
    blocking(&st.mgr, move |m| crate::metrics::session(m, &id))
        .await
        .map(Json)
}

/// The host: CPU, memory, disk, load, uptime.
#[utoipa::path(get, path = "/api/metrics/system",
    responses((status = 200, body = crate::metrics::SystemMetrics)))]
async fn system_metrics(
    State(st): State<AppState>,
) -> Result<Json<crate::metrics::SystemMetrics>, ApiError> {
    blocking(&st.mgr, |m| Ok(m.metrics.system(&m.cfg.state_dir)))
        .await
        .map(Json)
}

/// The session's terminal text (its window and scroll-back), as plain text.
#[utoipa::path(get, path = "/api/sandboxes/{id}/logs", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/plain"), (status = 404, body = ErrorBody)))]
async fn logs(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (_, text) = blocking(&st.mgr, move |m| m.log(&id)).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The log as server-sent events: `reset` (the whole text) then `append` (new text), until
/// the session ends (`end`).
#[utoipa::path(get, path = "/api/sandboxes/{id}/logs/stream", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
async fn log_stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = id.clone();
    let (s, first) = blocking(&st.mgr, move |m| m.log(&key)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(8);
    let mgr = st.mgr.clone();
    tokio::spawn(async move {
        let mut last = first;
        if tx
            .send(Ok(Event::default().event("reset").data(last.clone())))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let id = s.id.clone();
            let Ok((now, text)) = blocking(&mgr, move |m| m.log(&id)).await else {
                let _ = tx
                    .send(Ok(Event::default().event("end").data("deleted")))
                    .await;
                return;
            };
            let ev = if text == last {
                None
            } else if let Some(new) = text.strip_prefix(last.as_str()) {
                Some(Event::default().event("append").data(new))
            } else {
                Some(Event::default().event("reset").data(text.clone()))
            };
            last = text;
            if let Some(ev) = ev {
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            if !now.status.is_live() {
                let _ = tx
                    .send(Ok(Event::default().event("end").data(now.status.as_str())))
                    .await;
                return;
            }
        }
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

/// `GET /login?token=TOKEN`: sets the HttpOnly, SameSite=Strict cookie and goes to the
/// dashboard.
async fn login(
    State(st): State<AppState>,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let token = q.ok().and_then(|q| q.0.token).unwrap_or_default();
    if st.door == Door::Tcp && !auth::same(token.as_bytes(), st.mgr.cfg.token.as_bytes()) {
        return ApiError::unauthorized(
            "wrong or missing token: open the URL `wrapix remote ui` or the manager printed",
        )
        .into_response();
    }
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Strict; Path=/",
        auth::COOKIE,
        st.mgr.cfg.token
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}
