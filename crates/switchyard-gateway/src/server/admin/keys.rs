//! `POST /admin/keys`, `GET /admin/keys`, `DELETE /admin/keys/{id}`. A new key's secret is
//! shown once, in the creation response; only its SHA-256 digest is kept.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_store::ApiKeyRecord;

use super::{audit, authorize, details, forbidden, store_error, ApiError, AppState};
use crate::server::now_ms;
use crate::stages::auth::{digest, key_id, KeyEntry, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    tenant: String,
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    /// Unix seconds.
    expires_at: Option<i64>,
    rpm: Option<u64>,
    tpm: Option<u64>,
    max_concurrent: Option<u64>,
    budget_usd: Option<f64>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request("invalid_request", message)
}

fn key_json(r: &ApiKeyRecord) -> Value {
    json!({
        "id": r.key_id,
        "object": "api_key",
        "tenant": r.tenant,
        "name": r.name,
        "role": r.role,
        "models": r.models,
        "expires_at": r.expires_ms.map(|ms| ms / 1000),
        "rpm": r.rpm,
        "tpm": r.tpm,
        "max_concurrent": r.max_concurrent,
        "budget_usd": r.budget_usd,
        "created_at": r.created_ms / 1000,
        "last_used_at": r.last_used_ms.map(|ms| ms / 1000),
        "revoked": r.revoked,
        "revoked_at": r.revoked_ms.map(|ms| ms / 1000),
    })
}

pub async fn create_key(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let actor = match authorize(&app, &headers, Role::TenantAdmin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let req: CreateKey = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid key request: {e}")).into_response(),
    };
    let role = match req.role.as_deref().map(Role::parse) {
        None => Role::User,
        Some(Some(r)) => r,
        Some(None) => {
            return bad("role must be one of user, viewer, tenant_admin, admin").into_response()
        }
    };
    if !actor.can_see_tenant(&req.tenant) || (role == Role::Admin && !actor.is_admin()) {
        audit(
            &app,
            &actor,
            "key.create",
            &req.tenant,
            "denied",
            details(&[("role", json!(role.as_str()))]),
        )
        .await;
        return forbidden(format!(
            "you may not create {} keys for tenant {}",
            role.as_str(),
            req.tenant
        ))
        .into_response();
    }
    let rt = app.runtime();
    if rt.admission.tenant(&req.tenant).is_none() {
        return ApiError::not_found(format!("no tenant named {}", req.tenant)).into_response();
    }
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return bad("name must be 1 to 128 characters").into_response();
    }
    if let Some(m) = req.models.iter().find(|m| rt.models.get(m).is_none()) {
        return bad(format!("models: unknown model {m}")).into_response();
    }
    let now = now_ms();
    if req.expires_at.is_some_and(|e| e * 1000 <= now) {
        return bad("expires_at must be in the future").into_response();
    }
    if req.budget_usd.is_some_and(|b| !b.is_finite() || b < 0.0)
        || [req.rpm, req.tpm, req.max_concurrent].contains(&Some(0))
    {
        return bad("limits must be positive").into_response();
    }
    let secret = format!("sk-sy-{}", hex::encode(rand::random::<[u8; 24]>()));
    let d = digest(&secret);
    let record = ApiKeyRecord {
        key_id: key_id(&d),
        key_hash: hex::encode(d),
        tenant: req.tenant.clone(),
        name: req.name.clone(),
        role: role.as_str().to_owned(),
        models: req.models,
        expires_ms: req.expires_at.map(|s| s * 1000),
        rpm: req.rpm,
        tpm: req.tpm,
        max_concurrent: req.max_concurrent,
        budget_usd: req.budget_usd,
        created_ms: now,
        ..Default::default()
    };
    if let Err(e) = app.store.upsert_api_key(&record).await {
        audit(
            &app,
            &actor,
            "key.create",
            &record.key_id,
            "error",
            details(&[("tenant", json!(record.tenant))]),
        )
        .await;
        return store_error(e).into_response();
    }
    app.keys.insert(d, KeyEntry::from_record(&record));
    audit(
        &app,
        &actor,
        "key.create",
        &record.key_id,
        "ok",
        details(&[
            ("tenant", json!(record.tenant)),
            ("name", json!(record.name)),
            ("role", json!(record.role)),
        ]),
    )
    .await;
    let mut body = key_json(&record);
    body["key"] = json!(secret);
    (StatusCode::CREATED, Json(body)).into_response()
}

#[derive(Deserialize)]
pub struct ListKeys {
    tenant: Option<String>,
}

pub async fn list_keys(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListKeys>,
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
    match app.store.list_api_keys().await {
        Ok(keys) => {
            let data: Vec<Value> = keys
                .iter()
                .filter(|k| tenant.as_deref().is_none_or(|t| k.tenant == t))
                .map(key_json)
                .collect();
            Json(json!({ "object": "list", "data": data })).into_response()
        }
        Err(e) => store_error(e).into_response(),
    }
}

pub async fn revoke_key(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let actor = match authorize(&app, &headers, Role::TenantAdmin) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let record = match app.store.get_api_key(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return ApiError::not_found(format!("no key with id {id}")).into_response(),
        Err(e) => return store_error(e).into_response(),
    };
    if !actor.can_see_tenant(&record.tenant) || (record.role == "admin" && !actor.is_admin()) {
        audit(
            &app,
            &actor,
            "key.revoke",
            &id,
            "denied",
            details(&[("tenant", json!(record.tenant))]),
        )
        .await;
        return forbidden("you may not revoke this key").into_response();
    }
    // Local first: the key stops working on this replica at once, even if the store write fails.
    app.keys.remove(&id);
    match app.store.revoke_api_key(&id, now_ms()).await {
        Ok(changed) => {
            audit(
                &app,
                &actor,
                "key.revoke",
                &id,
                "ok",
                details(&[
                    ("tenant", json!(record.tenant)),
                    ("was_active", json!(changed)),
                ]),
            )
            .await;
            Json(json!({ "id": id, "object": "api_key", "revoked": true })).into_response()
        }
        Err(e) => {
            audit(
                &app,
                &actor,
                "key.revoke",
                &id,
                "error",
                details(&[("tenant", json!(record.tenant))]),
            )
            .await;
            store_error(e).into_response()
        }
    }
}
