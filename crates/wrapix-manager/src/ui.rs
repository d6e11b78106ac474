//! The dashboard: server-rendered HTML with htmx (vendored), added in its own change.

use axum::Router;

use crate::api::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
