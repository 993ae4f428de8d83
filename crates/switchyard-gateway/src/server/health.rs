//! Liveness, readiness and the Prometheus exposition.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;

use super::AppState;

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// Ready when the store answers and no shutdown is under way, so a load balancer stops sending
/// traffic to a draining replica.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.shutting_down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        )
            .into_response();
    }
    match app.store.ping().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "store": app.store.backend(),
            "log_spool_pending": app.log.spooled_pending(),
        }))
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "store_unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    match &app.metrics {
        Some(handle) => (
            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}
