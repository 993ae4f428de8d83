//! `/admin/experiments`: the configured experiments, and per-arm results from the request log
//! joined with feedback (computed by the store, so a report reads only the experiment's rows).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_store::{ArmStats, ExperimentQuery};

use super::{authorize, store_error, ApiError, AppState};
use crate::stages::auth::Role;
use crate::stages::experiment::{Arm, Experiment};

/// `GET /admin/experiments`: what is configured, in configuration order.
pub async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&app, &headers, Role::Admin) {
        return e.into_response();
    }
    let rt = app.runtime();
    let data: Vec<Value> = rt.experiments.iter().map(|e| describe(e)).collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

fn describe(e: &Experiment) -> Value {
    let arms: Vec<Value> = e
        .arms
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "model": a.model,
                "weight": a.weight,
                "system_prompt": a.system_prompt,
                "system_prompt_mode": a.system_prompt_mode,
            })
        })
        .collect();
    json!({
        "object": "experiment",
        "name": e.name,
        "model": e.model,
        "sticky_by": e.sticky_by,
        "arms": arms,
    })
}

#[derive(Deserialize)]
pub struct ReportParams {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /admin/experiments/{name}[?from=MS&to=MS]`: per arm, requests and their share, error
/// rate (status >= 400), cache hits, cost (total and per request), p50/p95 latency of the
/// successful requests, and mean feedback score with its count. Configured arms without traffic
/// are listed with zeros; arms that served requests but are no longer configured are listed
/// with `"configured": false`. An experiment that is neither configured nor in the log is a 404.
pub async fn report(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<ReportParams>,
) -> Response {
    if let Err(e) = authorize(&app, &headers, Role::Admin) {
        return e.into_response();
    }
    let query = match bounds(&params) {
        Ok((from_ms, to_ms)) => ExperimentQuery {
            name: name.clone(),
            from_ms,
            to_ms,
        },
        Err(e) => return e.into_response(),
    };
    // Read-your-writes: every request answered before this call is counted.
    app.log.flush().await;
    let stats = match app.store.experiment_report(&query).await {
        Ok(s) => s,
        Err(e) => return store_error(e).into_response(),
    };
    let rt = app.runtime();
    let configured = rt.experiments.get(&name);
    if configured.is_none() && stats.is_empty() {
        return ApiError::not_found(format!(
            "no experiment named {name:?} is configured or in the request log"
        ))
        .into_response();
    }
    let total: u64 = stats.iter().map(|s| s.requests).sum();
    let mut rows: Vec<Value> = Vec::new();
    if let Some(exp) = configured {
        for arm in &exp.arms {
            let s = stats.iter().find(|s| s.arm == arm.name);
            rows.push(arm_row(&arm.name, Some(arm), s, total));
        }
    }
    for s in &stats {
        if configured.and_then(|e| e.arm(&s.arm)).is_none() {
            rows.push(arm_row(&s.arm, None, Some(s), total));
        }
    }
    Json(json!({
        "object": "experiment.report",
        "name": name,
        "model": configured.map(|e| e.model.as_str()),
        "configured": configured.is_some(),
        "from_ms": query.from_ms,
        "to_ms": query.to_ms,
        "requests": total,
        "data": rows,
    }))
    .into_response()
}

fn arm_row(name: &str, arm: Option<&Arm>, s: Option<&ArmStats>, total: u64) -> Value {
    let zero = ArmStats::default();
    let s = s.unwrap_or(&zero);
    let ratio = |n: f64, d: u64| if d == 0 { 0.0 } else { n / d as f64 };
    json!({
        "arm": name,
        "model": arm.map(|a| a.model.as_str()),
        "weight": arm.map(|a| a.weight),
        "configured": arm.is_some(),
        "requests": s.requests,
        "share": ratio(s.requests as f64, total),
        "errors": s.errors,
        "error_rate": ratio(s.errors as f64, s.requests),
        "cache_hits": s.cache_hits,
        "cost_usd": s.cost_usd,
        "cost_per_request_usd": ratio(s.cost_usd, s.requests),
        "latency_p50_ms": s.latency_p50_ms,
        "latency_p95_ms": s.latency_p95_ms,
        "feedback_count": s.feedback_count,
        "feedback_mean": s.feedback_mean,
    })
}

/// `from` (inclusive) and `to` (exclusive), in unix milliseconds.
fn bounds(p: &ReportParams) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let parse = |name: &'static str, raw: &Option<String>| -> Result<Option<i64>, ApiError> {
        raw.as_deref()
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ApiError::invalid_request(
                        "invalid_request",
                        format!("`{name}` must be a time in unix milliseconds"),
                    )
                    .with_param(name)
                })
            })
            .transpose()
    };
    Ok((parse("from", &p.from)?, parse("to", &p.to)?))
}
