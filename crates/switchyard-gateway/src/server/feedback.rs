//! `POST /v1/feedback`: an end user's verdict on one answer, by its `x-request-id`.
//!
//! Any API key may send it, for its own tenant's requests only (another tenant's request is a
//! 404, indistinguishable from a missing one). A request holds one verdict; a later one
//! replaces it. Verdicts feed the experiment reports and the per-model outcome counts bandits
//! read ([`crate::stages::experiment::FeedbackStats`]). Feedback is not a model call: it is
//! neither rate-limited nor written to the request log, and it costs one store upsert.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_store::{FeedbackRecord, RequestRecord};

use super::admin::store_error;
use super::{now_ms, parse_json, read_body, ApiError, AppState};
use crate::stages::auth::Principal;

pub const MAX_COMMENT_CHARS: usize = 2_000;
/// Gateway request ids are 36 characters; anything much longer is not one.
const MAX_REQUEST_ID_CHARS: usize = 128;
/// A verdict and a 2000-character comment fit many times over.
const MAX_BODY_BYTES: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    request_id: String,
    score: f64,
    #[serde(default)]
    comment: Option<String>,
}

pub async fn feedback(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&app, &headers, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn accept(app: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let principal = app.keys.authenticate(headers, now_ms())?;
    let bytes = read_body(body, MAX_BODY_BYTES).await?;
    let fb: FeedbackBody = parse_json(&bytes)?;
    validate(&fb)?;
    let request = find_own_request(app, &principal, &fb.request_id).await?;
    let model = request
        .model_used
        .clone()
        .unwrap_or_else(|| request.model_requested.clone());
    let record = FeedbackRecord {
        request_id: request.request_id.clone(),
        tenant: request.tenant.clone(),
        model,
        score: fb.score,
        comment: fb.comment,
        ts_ms: now_ms(),
    };
    let replaced = app.store.put_feedback(&record).await.map_err(store_error)?;
    app.runtime().feedback.record(
        &record.model,
        record.score,
        replaced.as_ref().map(|r| (r.model.as_str(), r.score)),
    );
    metrics::counter!("switchyard_feedback_total", "verdict" => verdict(record.score)).increment(1);
    Ok(json!({
        "object": "feedback",
        "request_id": record.request_id,
        "score": record.score,
        "comment": record.comment,
        "model": record.model,
        "experiment": request.metadata.get("experiment"),
        "created": record.ts_ms / 1000,
        "replaced": replaced.is_some(),
    }))
}

fn validate(fb: &FeedbackBody) -> Result<(), ApiError> {
    let id_len = fb.request_id.chars().count();
    if id_len == 0 || id_len > MAX_REQUEST_ID_CHARS {
        return Err(ApiError::invalid_request(
            "invalid_request",
            format!(
                "`request_id` must be 1-{MAX_REQUEST_ID_CHARS} characters: the x-request-id of \
                 the answer"
            ),
        )
        .with_param("request_id"));
    }
    // Also refuses NaN and the infinities, which JSON cannot carry anyway.
    if !(-1.0..=1.0).contains(&fb.score) {
        return Err(ApiError::invalid_request(
            "invalid_request",
            "`score` must be a number from -1 (bad) to 1 (good), e.g. 1, 0 or -1",
        )
        .with_param("score"));
    }
    if fb
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(ApiError::invalid_request(
            "invalid_request",
            format!("`comment` must be at most {MAX_COMMENT_CHARS} characters"),
        )
        .with_param("comment"));
    }
    Ok(())
}

/// The request, if the caller may rate it. The request log is written in batches, so a verdict
/// sent right after its answer may find the log not yet flushed: a miss on a recent request
/// flushes once and looks again.
async fn find_own_request(
    app: &AppState,
    principal: &Principal,
    request_id: &str,
) -> Result<RequestRecord, ApiError> {
    let mut found = app
        .store
        .get_request(request_id)
        .await
        .map_err(store_error)?;
    if found.is_none() && issued_recently(request_id, now_ms()) {
        app.log.flush().await;
        found = app
            .store
            .get_request(request_id)
            .await
            .map_err(store_error)?;
    }
    found
        .filter(|r| principal.can_see_tenant(&r.tenant))
        .ok_or_else(|| {
            ApiError::not_found(format!("no request with id {request_id}")).with_param("request_id")
        })
}

/// Whether `request_id` is a gateway id (`req_` + UUIDv7) minted within the last minute. Only
/// such a request can still be waiting in the log's buffer; checking first keeps made-up ids
/// from forcing a flush each (which would break up the log's batching).
fn issued_recently(request_id: &str, now_ms: i64) -> bool {
    let Some(hex) = request_id.strip_prefix("req_") else {
        return false;
    };
    let Some(ts) = uuid::Uuid::try_parse(hex)
        .ok()
        .and_then(|u| u.get_timestamp())
    else {
        return false;
    };
    let (secs, nanos) = ts.to_unix();
    let minted_ms = i64::try_from(secs)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(1000)
        .saturating_add(i64::from(nanos / 1_000_000));
    (now_ms - 60_000..=now_ms + 5_000).contains(&minted_ms)
}

fn verdict(score: f64) -> &'static str {
    if score > 0.0 {
        "positive"
    } else if score < 0.0 {
        "negative"
    } else {
        "neutral"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_gateway_ids_may_force_a_flush() {
        let now = now_ms();
        let fresh = format!("req_{}", uuid::Uuid::now_v7().simple());
        assert!(issued_recently(&fresh, now));
        assert!(!issued_recently(&fresh, now + 120_000));
        let v4 = format!("req_{}", uuid::Uuid::new_v4().simple());
        for id in ["req_nope", "nope", v4.as_str(), ""] {
            assert!(!issued_recently(id, now), "{id}");
        }
    }
}
