//! Routing glue for the chat endpoint: `auto` decisions, experiment arms, tenant rules on explicit
//! models, and the `x-switchyard-route` explanation.

use std::sync::Arc;

use http::HeaderMap;
use serde_json::json;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};

use super::{ApiError, Runtime};
use crate::requestlog::RequestContext;
use crate::stages::auth::Principal;
use crate::stages::call::CallOutcome;
use crate::stages::experiment::{self, Assignment, Experiment, Unit};
use crate::stages::routing::auto::{RouteDecision, RouteRequest, RuleCheck};
use crate::stages::routing::cascade;
use crate::stages::routing::ModelEntry;

/// Where a request goes, and why when `auto` or an experiment chose.
pub(super) struct Routed {
    pub plan: Vec<Arc<ModelEntry>>,
    pub decision: Option<RouteDecision>,
    /// Set when the requested model is an experiment's: the arm this caller belongs to.
    pub experiment: Option<Assignment>,
}

/// [`route`], then everything routing leaves on the request: the `x-switchyard-route` header
/// and `metadata.route` / `metadata.experiment` in the request log, and the arm's system prompt
/// version in the conversation. The chat endpoint's single call into routing.
pub(super) fn route_and_record(
    rt: &Runtime,
    principal: &Principal,
    headers: &HeaderMap,
    req: &mut ChatCompletionRequest,
    ctx: &mut RequestContext,
) -> Result<Routed, ApiError> {
    let routed = route(rt, principal, headers, req)?;
    ctx.set_route_decision(
        routed.decision.as_ref().map(log_value),
        header_for(&routed, &req.model),
    );
    if let Some(a) = &routed.experiment {
        ctx.set_experiment(a);
        a.apply(&mut req.messages);
    }
    Ok(routed)
}

/// `x-switchyard-route` for a routed request that asked for `requested`.
pub(super) fn header_for(routed: &Routed, requested: &str) -> String {
    if let Some(d) = &routed.decision {
        return d.header();
    }
    match &routed.experiment {
        Some(a) => format!(
            "model={}; reason=experiment; experiment={}; arm={}",
            a.arm().model,
            a.experiment().name,
            a.arm().name
        ),
        None => format!("model={requested}; reason=requested"),
    }
}

pub(super) fn route(
    rt: &Runtime,
    principal: &Principal,
    headers: &HeaderMap,
    req: &ChatCompletionRequest,
) -> Result<Routed, ApiError> {
    let tenant: &str = &principal.tenant;
    let router = &rt.router;
    // One rules check (and at most one PII scan) serves the primary model and every fallback.
    let check = router.rules(tenant, &req.messages);
    if let Some(exp) = rt.experiments.for_model(&req.model) {
        return route_experiment(rt, principal, req, exp, &check);
    }
    if router.is_auto(&req.model) {
        let session = session_of(headers, req);
        let tier_header = headers
            .get("x-switchyard-tier")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u8>().ok());
        let decision = router
            .decide_with(
                &RouteRequest {
                    tenant,
                    session,
                    messages: &req.messages,
                    tier_header,
                    key_models: principal.key.as_ref().map(|k| k.models.as_slice()),
                },
                &check,
            )
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
        let plan = keep_allowed(&check, plan);
        return Ok(Routed {
            plan,
            decision: Some(decision),
            experiment: None,
        });
    }
    let plan = rt.models.plan(&req.model)?;
    // A model group is judged by its members: a self-hosted-only tenant is served by a
    // self-hosted member even while the group bursts to a hosted one.
    if rt.models.get(&req.model).is_none() {
        let allowed = keep_allowed(&check, plan);
        if allowed.is_empty() {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                format!(
                    "no member of `{}` may serve this request under the tenant's rules",
                    req.model
                ),
            )
            .with_param("model"));
        }
        return Ok(Routed {
            plan: allowed,
            decision: None,
            experiment: None,
        });
    }
    if let Some(primary) = plan.first() {
        if let Some(rule) = check.forbids(&primary.name, primary.self_hosted) {
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
        plan: keep_allowed(&check, plan),
        decision: None,
        experiment: None,
    })
}

/// The caller's arm, served by the arm model's plan. The arm's model is held to the tenant's
/// rules exactly like an explicitly requested one: an experiment never reaches a model the
/// tenant could not ask for by name. Refusing (rather than moving the caller to another arm)
/// keeps the arms' populations what the weights say.
fn route_experiment(
    rt: &Runtime,
    principal: &Principal,
    req: &ChatCompletionRequest,
    exp: &Arc<Experiment>,
    check: &RuleCheck<'_>,
) -> Result<Routed, ApiError> {
    let tenant: &str = &principal.tenant;
    let unit = Unit::of(exp.sticky_by, &principal.key_id, req.user.as_deref());
    let assignment = experiment::assign(exp, tenant, unit).ok_or_else(|| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "experiment_without_arms",
            format!(
                "experiment `{}` has no arms to serve this request",
                exp.name
            ),
        )
    })?;
    let arm = assignment.arm();
    let plan = rt.models.plan(&arm.model)?;
    if let Some(primary) = plan.first() {
        if let Some(rule) = check.forbids(&primary.name, primary.self_hosted) {
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                format!(
                    "experiment `{}` assigned this caller to arm `{}`, whose model `{}` may not \
                     serve this request under the tenant's {rule} rule",
                    exp.name, arm.name, primary.name
                ),
            )
            .with_param("model"));
        }
    }
    Ok(Routed {
        plan: keep_allowed(check, plan),
        decision: None,
        experiment: Some(assignment),
    })
}

/// Fallbacks obey the tenant's rules like the primary model.
fn keep_allowed(check: &RuleCheck<'_>, plan: Vec<Arc<ModelEntry>>) -> Vec<Arc<ModelEntry>> {
    plan.into_iter()
        .filter(|m| check.forbids(&m.name, m.self_hosted).is_none())
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
    let check = rt.router.rules(&principal.tenant, &req.messages);
    let (name, tier) = rt.router.escalation(&route_req, &check, decision.tier)?;
    let plan = keep_allowed(&check, rt.models.plan(&name).ok()?);
    match super::chat::call_chat(rt, plan, req).await {
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
