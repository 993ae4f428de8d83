//! `/admin/*`: the request log, keys, tenants, spend, audit trail, retention, reload and
//! experiment reports.
//!
//! Roles: `admin` (the admin key and admin-role keys) reaches everything; `tenant_admin` manages
//! its own tenant's keys and reads its spend and audit trail; `viewer` only reads those. Every
//! change, and every refused attempt at one, is written to the append-only audit log.

mod cache;
mod experiments;
mod governance;
mod keys;
mod requests;
mod spend;

use axum::routing::{delete, get, post};
use axum::Router;
use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use std::sync::Arc;
use switchyard_store::AuditEvent;

pub use governance::{reload_audited, run_retention};

use super::{now_ms, ApiError, AppState};
use crate::stages::auth::{Principal, Role};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/requests", get(requests::list_requests))
        .route("/admin/requests/{request_id}", get(requests::get_request))
        .route("/admin/breakers", get(requests::breakers))
        .route("/admin/keys", post(keys::create_key).get(keys::list_keys))
        .route("/admin/keys/{key_id}", delete(keys::revoke_key))
        .route(
            "/admin/tenants",
            post(governance::upsert_tenant).get(governance::list_tenants),
        )
        .route("/admin/spend", get(spend::spend))
        .route("/admin/audit", get(governance::list_audit))
        .route("/admin/users/{user}", delete(governance::delete_user))
        .route("/admin/retention/run", post(governance::retention_now))
        .route("/admin/config/reload", post(governance::reload_config))
        .route("/admin/cache/invalidate", post(cache::invalidate))
        .route("/admin/cache/stats", get(cache::stats))
        .route("/admin/experiments", get(experiments::list))
        .route("/admin/experiments/{name}", get(experiments::report))
}

/// Authenticates an admin-API caller holding at least `min` role.
pub(super) fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    min: Role,
) -> Result<Principal, ApiError> {
    let p = app.keys.authenticate_admin(headers, now_ms())?;
    if p.role < min {
        return Err(forbidden(format!(
            "this action needs the {} role",
            min.as_str()
        )));
    }
    Ok(p)
}

pub(super) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "forbidden",
        message,
    )
}

pub(super) fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "store_unavailable",
        format!("the store is unavailable: {e}"),
    )
}

/// Appends to the audit log. A failure to audit is logged loudly but does not undo the action,
/// which has already happened.
pub(super) async fn audit(
    app: &AppState,
    actor: &Principal,
    action: &str,
    target: &str,
    outcome: &str,
    details: Map<String, Value>,
) {
    let event = AuditEvent {
        id: format!("aud_{}", uuid::Uuid::now_v7().simple()),
        ts_ms: now_ms(),
        actor: actor.key_id.to_string(),
        actor_tenant: actor.tenant.to_string(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        details,
    };
    if let Err(e) = app.store.append_audit(&event).await {
        tracing::error!(error = %e, action, target, "could not write the audit log");
    }
}

pub(super) fn details(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
