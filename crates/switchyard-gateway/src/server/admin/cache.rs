//! `/admin/cache/*`: invalidation and hit statistics. A tenant admin acts on its own tenant only.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use switchyard_cache::Selector;

use super::{audit, authorize, details, forbidden, AppState};
use crate::server::ApiError;
use crate::stages::auth::Role;

/// `POST /admin/cache/invalidate` with a selector: any of `tenant`, `model`, `tag`, `document`
/// (and `below_version` to drop only answers computed from older versions of that document).
pub async fn invalidate(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let actor = match authorize(&app, &headers, Role::TenantAdmin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let mut selector: Selector = if body.is_empty() {
        Selector::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(s) => s,
            Err(e) => {
                return ApiError::invalid_request(
                    "invalid_request",
                    format!("invalid invalidation request: {e}"),
                )
                .into_response()
            }
        }
    };
    if !actor.is_admin() {
        match &selector.tenant {
            Some(t) if actor.can_see_tenant(t) => {}
            Some(_) => {
                return forbidden("a tenant admin may only invalidate its own tenant")
                    .into_response()
            }
            None => selector.tenant = Some(actor.tenant.to_string()),
        }
    }
    if selector.below_version.is_some() && selector.document.is_none() {
        return ApiError::invalid_request("invalid_request", "below_version needs a document")
            .into_response();
    }
    match app.cache.invalidate(&selector).await {
        Ok((exact, semantic)) => {
            let target = selector.tenant.clone().unwrap_or_else(|| "*".to_owned());
            let selector_json = serde_json::to_value(&selector).unwrap_or_default();
            audit(
                &app,
                &actor,
                "cache.invalidate",
                &target,
                "ok",
                details(&[
                    ("selector", selector_json.clone()),
                    ("exact", json!(exact)),
                    ("semantic", json!(semantic)),
                ]),
            )
            .await;
            Json(json!({
                "object": "cache.invalidation",
                "selector": selector_json,
                "removed": { "exact": exact, "semantic": semantic },
            }))
            .into_response()
        }
        Err(e) => ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "cache_unavailable",
            format!("the cache backend is unavailable: {e}"),
        )
        .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct StatsQuery {
    tenant: Option<String>,
}

/// `GET /admin/cache/stats[?tenant=]`: hits, misses, hit rate and saved cost by tenant and tag
/// (since this replica started).
pub async fn stats(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<StatsQuery>,
) -> Response {
    let actor = match authorize(&app, &headers, Role::Viewer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let tenant = if actor.is_admin() {
        q.tenant
    } else {
        Some(actor.tenant.to_string())
    };
    let rows: Vec<_> = app
        .cache
        .stats(tenant.as_deref())
        .into_iter()
        .map(|(tenant, tag, s)| {
            let hits = s.hits_exact + s.hits_semantic;
            let looked_up = hits + s.misses;
            json!({
                "tenant": tenant,
                "tag": (!tag.is_empty()).then_some(tag),
                "hits_exact": s.hits_exact,
                "hits_semantic": s.hits_semantic,
                "misses": s.misses,
                "bypassed": s.bypassed,
                "hit_rate": if looked_up == 0 { 0.0 } else { hits as f64 / looked_up as f64 },
                "saved_usd": s.saved_usd,
            })
        })
        .collect();
    Json(json!({
        "object": "cache.stats",
        "backend": app.cache.exact.backend(),
        "exact_entries": app.cache.exact.entry_count(),
        "semantic_entries": app.cache.semantic.len(),
        "data": rows,
    }))
    .into_response()
}
