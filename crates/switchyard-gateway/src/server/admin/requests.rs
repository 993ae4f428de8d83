//! The request log and the circuit breakers, for admins.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::{authorize, store_error, ApiError, AppState};
use crate::stages::auth::Role;

const MAX_LIMIT: u32 = 1_000;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

pub async fn list_requests(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(e) = authorize(&app, &headers, Role::Admin) {
        return e.into_response();
    }
    // Read-your-writes: whatever was answered before this call is in the store when we read.
    app.log.flush().await;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    match app.store.list_requests(limit).await {
        Ok(rows) => Json(json!({ "object": "list", "data": rows })).into_response(),
        Err(e) => store_error(e).into_response(),
    }
}

pub async fn get_request(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Response {
    if let Err(e) = authorize(&app, &headers, Role::Admin) {
        return e.into_response();
    }
    app.log.flush().await;
    match app.store.get_request(&request_id).await {
        Ok(Some(row)) => Json(row).into_response(),
        Ok(None) => ApiError::not_found(format!("no request with id {request_id}")).into_response(),
        Err(e) => store_error(e).into_response(),
    }
}

pub async fn breakers(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&app, &headers, Role::Admin) {
        return e.into_response();
    }
    let data: Vec<_> = app
        .runtime()
        .caller
        .breakers
        .snapshot()
        .into_iter()
        .map(|(deployment, state)| json!({ "deployment": deployment, "state": state }))
        .collect();
    Json(json!({ "data": data })).into_response()
}
