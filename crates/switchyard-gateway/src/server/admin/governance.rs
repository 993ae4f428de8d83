//! Tenants created at run time, the audit trail, end-user deletion, retention and hot reload.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use switchyard_store::TenantRecord;

use super::{audit, authorize, details, store_error, ApiError, AppState};
use crate::config::TenantConfig;
use crate::server::now_ms;
use crate::stages::auth::{Principal, Role, ADMIN_TENANT};

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<u32>,
}

pub async fn list_audit(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<Limit>,
) -> Response {
    let actor = match authorize(&app, &headers, Role::Viewer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let tenant = (!actor.is_admin()).then(|| actor.tenant.to_string());
    match app
        .store
        .list_audit(q.limit.unwrap_or(100).clamp(1, 1_000), tenant.as_deref())
        .await
    {
        Ok(events) => Json(json!({ "object": "list", "data": events })).into_response(),
        Err(e) => store_error(e).into_response(),
    }
}

/// Deletes every request record of one end user (the `user` field clients send).
pub async fn delete_user(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(user): Path<String>,
) -> Response {
    let actor = match authorize(&app, &headers, Role::Admin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    app.log.flush().await;
    match app.store.delete_user_requests(&user).await {
        Ok(n) => {
            // The audit entry names the user only by a digest: the point was to forget them.
            let target = format!(
                "user:{}",
                &hex::encode(crate::stages::auth::digest(&user))[..16]
            );
            audit(
                &app,
                &actor,
                "user.delete",
                &target,
                "ok",
                details(&[("deleted_requests", json!(n))]),
            )
            .await;
            Json(json!({ "object": "user.deleted", "deleted_requests": n })).into_response()
        }
        Err(e) => store_error(e).into_response(),
    }
}

pub async fn retention_now(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let actor = match authorize(&app, &headers, Role::Admin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    app.log.flush().await;
    let purged = run_retention(&app, Some(&actor)).await;
    Json(json!({ "object": "retention.run", "purged": purged })).into_response()
}

/// Rolls up and deletes request rows past each tenant's `retention_days`; audited per tenant.
pub async fn run_retention(
    app: &AppState,
    actor: Option<&Principal>,
) -> serde_json::Map<String, serde_json::Value> {
    let system = system_principal();
    let actor = actor.unwrap_or(&system);
    let rt = app.runtime();
    let mut purged = serde_json::Map::new();
    for (tenant, policy) in rt.admission.tenants() {
        let Some(days) = policy.retention_days else {
            continue;
        };
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        match app.store.purge_requests(tenant, cutoff).await {
            Ok(n) => {
                purged.insert(tenant.clone(), json!(n));
                if n > 0 {
                    audit(
                        app,
                        actor,
                        "retention.purge",
                        tenant,
                        "ok",
                        details(&[
                            ("deleted_requests", json!(n)),
                            ("retention_days", json!(days)),
                        ]),
                    )
                    .await;
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, error = %e, "retention purge failed");
                audit(
                    app,
                    actor,
                    "retention.purge",
                    tenant,
                    "error",
                    details(&[("error", json!(e.to_string()))]),
                )
                .await;
            }
        }
    }
    purged
}

pub async fn list_tenants(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let actor = match authorize(&app, &headers, Role::Viewer) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let rt = app.runtime();
    let data: Vec<_> = rt
        .config
        .tenants
        .iter()
        .filter(|t| actor.can_see_tenant(&t.name))
        .map(|t| {
            // The effective settings: the config merged with API changes, without key material.
            let effective = rt.admission.tenant(&t.name);
            json!({
                "name": t.name,
                "rpm": effective.and_then(|p| p.limits.rpm),
                "tpm": effective.and_then(|p| p.limits.tpm),
                "max_concurrent": effective.and_then(|p| p.limits.max_concurrent),
                "budget_usd": effective.and_then(|p| p.budget.map(|b| b.usd)),
                "retention_days": effective.and_then(|p| p.retention_days),
                "config_keys": t.keys.len(),
            })
        })
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

/// Creates a tenant, or changes an existing one's limits, budget and retention.
pub async fn upsert_tenant(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let actor = match authorize(&app, &headers, Role::Admin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let tenant: TenantConfig = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return ApiError::invalid_request("invalid_request", format!("invalid tenant: {e}"))
                .into_response()
        }
    };
    if !tenant.keys.is_empty() {
        return ApiError::invalid_request(
            "invalid_request",
            "keys: create keys with POST /admin/keys",
        )
        .into_response();
    }
    let mut check = app.runtime().config.clone();
    check.tenants.retain(|t| t.name != tenant.name);
    check.tenants.push(tenant.clone());
    if let Err(e) = check.validate() {
        return ApiError::invalid_request("invalid_request", e.to_string()).into_response();
    }
    let now = now_ms();
    let record = TenantRecord {
        name: tenant.name.clone(),
        settings: serde_json::to_value(&tenant).unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
    };
    if let Err(e) = app.store.upsert_tenant(&record).await {
        return store_error(e).into_response();
    }
    let outcome = match crate::startup::reload(&app).await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::error!(error = %e, "tenant stored but the runtime could not be rebuilt");
            "error"
        }
    };
    audit(
        &app,
        &actor,
        "tenant.upsert",
        &tenant.name,
        outcome,
        details(&[("settings", record.settings.clone())]),
    )
    .await;
    Json(json!({ "object": "tenant", "name": tenant.name, "settings": record.settings }))
        .into_response()
}

pub async fn reload_config(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let actor = match authorize(&app, &headers, Role::Admin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match reload_audited(&app, Some(&actor)).await {
        Ok(()) => Json(json!({ "object": "config.reload", "status": "ok" })).into_response(),
        Err(e) => ApiError::invalid_request(
            "invalid_config",
            format!("reload failed, the running configuration is unchanged: {e}"),
        )
        .into_response(),
    }
}

/// Hot reload (admin API or SIGHUP), written to the audit log either way.
pub async fn reload_audited(
    app: &AppState,
    actor: Option<&Principal>,
) -> Result<(), crate::StartError> {
    let system = system_principal();
    let actor = actor.unwrap_or(&system);
    let result = crate::startup::reload(app).await;
    match &result {
        Ok(()) => audit(app, actor, "config.reload", "config", "ok", details(&[])).await,
        Err(e) => {
            audit(
                app,
                actor,
                "config.reload",
                "config",
                "error",
                details(&[("error", json!(e.to_string()))]),
            )
            .await
        }
    }
    result
}

/// The actor of actions the gateway takes on its own (timers, signals).
fn system_principal() -> Principal {
    Principal {
        tenant: Arc::from(ADMIN_TENANT),
        key_id: Arc::from("system"),
        role: Role::Admin,
        key: None,
    }
}
