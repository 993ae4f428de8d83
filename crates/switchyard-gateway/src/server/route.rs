//! Routing glue for the chat endpoint: `auto` decisions, tenant rules on explicit models, and the
//! `x-switchyard-route` explanation.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::json;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};

use super::{ApiError, Runtime};
use crate::stages::auth::Principal;
use crate::stages::call::CallOutcome;
use crate::stages::routing::auto::{RouteDecision, RouteRequest};
use crate::stages::routing::cascade;
use crate::stages::routing::ModelEntry;

/// Where a request goes, and why when `auto` chose.
pub(super) struct Routed {
    pub plan: Vec<Arc<ModelEntry>>,
    pub decision: Option<RouteDecision>,
}

pub(super) fn route(
    rt: &Runtime,
    principal: &Principal,
    headers: &HeaderMap,
    req: &ChatCompletionRequest,
) -> Result<Routed, ApiError> {
    let tenant: &str = &principal.tenant;
    let router = &rt.router;
    if router.is_auto(&req.model) {
        let session = session_of(headers, req);
        let tier_header = headers
            .get("x-switchyard-tier")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u8>().ok());
        let decision = router
            .decide(&RouteRequest {
                tenant,
                session,
                messages: &req.messages,
                tier_header,
                key_models: principal.key.as_ref().map(|k| k.models.as_slice()),
            })
            .map_err(|e| {
                ApiError::new(
                    http::StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "no_route",
                    e.to_string(),
                )
                .with_param("model")
            })?;
        let plan = rt.models.plan(&decision.model)?;
        let plan = keep_allowed(rt, tenant, req, plan);
        return Ok(Routed {
            plan,
            decision: Some(decision),
        });
    }
    let plan = rt.models.plan(&req.model)?;
    if let Some(primary) = plan.first() {
        if let Some(rule) =
            router.forbids(tenant, &primary.name, primary.self_hosted, &req.messages)
        {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                format!(
                    "the model `{}` may not serve this request under the tenant's {rule} rule",
                    primary.name
                ),
            )
            .with_param("model"));
        }
    }
    Ok(Routed {
        plan: keep_allowed(rt, tenant, req, plan),
        decision: None,
    })
}

/// Fallbacks obey the tenant's rules like the primary model.
fn keep_allowed(
    rt: &Runtime,
    tenant: &str,
    req: &ChatCompletionRequest,
    plan: Vec<Arc<ModelEntry>>,
) -> Vec<Arc<ModelEntry>> {
    plan.into_iter()
        .filter(|m| {
            rt.router
                .forbids(tenant, &m.name, m.self_hosted, &req.messages)
                .is_none()
        })
        .collect()
}

/// The decision as the request log keeps it.
pub(super) fn log_value(d: &RouteDecision) -> serde_json::Value {
    json!(d)
}

/// Whether a cascade may judge this `auto` answer: on, and a stronger tier exists above it.
pub(super) fn cascades(rt: &Runtime, d: &RouteDecision) -> bool {
    rt.config.router.cascade && d.tier < 3
}

/// Judges the first answer; below the threshold, asks the cheapest allowed model one tier up.
/// `None` keeps the first answer: confident enough, nowhere to escalate to, or the escalation
/// failed (a worse answer beats an error).
pub(super) async fn cascade(
    rt: &Runtime,
    principal: &Principal,
    headers: &HeaderMap,
    req: &Arc<ChatCompletionRequest>,
    decision: &mut RouteDecision,
    resp: &ChatCompletionResponse,
) -> Option<CallOutcome<ChatCompletionResponse>> {
    let confidence = cascade::confidence(req, resp);
    decision.confidence = Some(confidence);
    if confidence.value >= rt.config.router.cascade_threshold {
        return None;
    }
    let route_req = RouteRequest {
        tenant: &principal.tenant,
        session: session_of(headers, req),
        messages: &req.messages,
        tier_header: None,
        key_models: principal.key.as_ref().map(|k| k.models.as_slice()),
    };
    let (name, tier) = rt.router.escalation(&route_req, decision.tier)?;
    let plan = keep_allowed(rt, &principal.tenant, req, rt.models.plan(&name).ok()?);
    let result = rt
        .caller
        .call(&rt.models, plan, |m| {
            let req = req.clone();
            async move { m.provider.chat(&req, &m.upstream).await }
        })
        .await;
    match result {
        Ok(out) => {
            metrics::counter!("switchyard_router_escalations_total", "from_tier" => tier_label(decision.tier))
                .increment(1);
            decision.escalated_from = Some(std::mem::replace(&mut decision.model, name));
            decision.tier = tier;
            decision.reason = "cascade";
            Some(out)
        }
        Err(e) => {
            tracing::warn!(error = %e.message, kind = e.kind.as_str(), "cascade escalation failed; keeping the first answer");
            None
        }
    }
}

fn tier_label(t: u8) -> &'static str {
    match t {
        1 => "1",
        2 => "2",
        _ => "3",
    }
}

fn session_of<'a>(headers: &'a HeaderMap, req: &'a ChatCompletionRequest) -> Option<&'a str> {
    headers
        .get("x-switchyard-session")
        .and_then(|v| v.to_str().ok())
        .or(req.user.as_deref())
        .filter(|s| !s.is_empty())
}
