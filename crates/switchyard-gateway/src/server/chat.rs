//! `POST /v1/chat/completions`: the whole pipeline for one chat request.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName};
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, Usage};

use super::{admit, cached, fail, header_value, route, stream, ApiError, AppState};
use crate::requestlog::{estimate_tokens, RequestContext};
use crate::stages::cache::CacheOutcome;
use crate::stages::call::CallError;
use crate::stages::call::CallOutcome;
use crate::stages::guardrails::{
    format_error, restore_response, AnswerScreen, FormatCheck, LEAK_CODE, LEAK_MESSAGE,
};
use crate::stages::routing::ModelEntry;
use switchyard_guardrails::Vault;

pub async fn chat_completions(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rt = app.runtime();
    let mut ctx = RequestContext::begin(app.log.clone(), "chat.completions", &headers);
    let (principal, mut req): (_, ChatCompletionRequest) =
        match admit(&app, &rt, &mut ctx, &headers, body).await {
            Ok(admitted) => admitted,
            Err(e) => return fail(ctx, e),
        };
    ctx.set_request(&req.model, req.is_stream(), req.metadata.as_ref());
    ctx.set_user(req.user.as_deref());
    if let Err(e) = validate(&req) {
        return fail(ctx, e);
    }
    let (plan, mut decision) =
        match route::route_and_record(&rt, &principal, &headers, &mut req, &mut ctx) {
            Ok(routed) => (routed.plan, routed.decision),
            Err(e) => return fail(ctx, e),
        };
    let tags = ctx.tags().to_vec();
    let prompt_estimate =
        estimate_tokens(req.prompt_chars()) + u64::from(req.max_output_tokens().unwrap_or(0));
    if let Err(e) = rt
        .admission
        .admit_body(
            &principal,
            ctx.ticket_mut(),
            &req.model,
            prompt_estimate,
            &tags,
        )
        .await
    {
        return fail(ctx, e.into());
    }
    // Before screening, so a blocked request's prompt is logged too (redacted by the log hook).
    ctx.set_prompt_body(rt.bodies.capture(&principal.tenant, &req.messages));
    let guardrails = rt.guardrails.for_request(&principal.tenant, &req.model);
    let vault = match guardrails.map(|g| g.screen(&mut req.messages)) {
        None => Vault::new(),
        Some(Ok(screened)) => {
            ctx.add_guardrail_findings(screened.findings);
            screened.vault
        }
        Some(Err(blocked)) => return fail(ctx, blocked.into()),
    };
    let format = match FormatCheck::for_request(guardrails.map(|g| &**g), &req) {
        Ok(f) => f,
        Err(e) => return fail(ctx, e),
    };
    let output = guardrails.and_then(|g| g.output());
    let leak_guard = guardrails.map(|g| g.leak_guard(&req.messages));
    let mut leak = match leak_guard {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(guard))) => Some(guard),
        // Without the OS RNG there is no secret canary; refusing beats an unguarded answer.
        Some(Err(e)) => {
            return fail(
                ctx,
                ApiError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "guardrail_unavailable",
                    format!("the system_prompt_leak guardrail could not be armed: {e}"),
                ),
            )
        }
    };
    let mut cache_plan =
        match app
            .cache
            .plan(&rt.config.cache, &principal.tenant, &tags, &req, &headers)
        {
            Ok(p) => p,
            Err(e) => return fail(ctx, e),
        };
    if let Some(cp) = cache_plan.as_mut() {
        if let Some(hit) = app.cache.lookup(&rt, cp).await {
            let guards = cached::HitGuards {
                vault: &vault,
                leak: leak.as_mut(),
                output,
            };
            return cached::respond(&app, ctx, &req, hit, guards);
        }
        let outcome = if cp.is_lookup() {
            CacheOutcome::Miss
        } else {
            CacheOutcome::Bypass
        };
        ctx.set_cache(outcome.as_str());
        app.cache.record(&principal.tenant, &tags, outcome, 0.0);
    }
    // After the cache lookup: the canary is random per request and must not change the key.
    if let Some(guard) = &leak {
        guard.inject(&mut req.messages);
    }
    if req.is_stream() {
        let guards = stream::AnswerGuards {
            vault,
            leak,
            output: output.map(crate::stages::guardrails::OutputRelay::new),
            format,
        };
        return stream::respond(app.clone(), rt, ctx, req, plan, guards, cache_plan).await;
    }

    // A cascade judges the cheap answer by its token probabilities where the provider has them.
    let wants_logprobs = req.logprobs == Some(true);
    let cascading = decision.as_ref().is_some_and(|d| route::cascades(&rt, d));
    if cascading && req.logprobs.is_none() {
        req.logprobs = Some(true);
    }
    let req = Arc::new(req);
    let result = call_chat(&rt, plan, &req).await;
    let CallOutcome {
        value: mut resp,
        mut model,
        mut attempts,
    } = match result {
        Ok(out) => out,
        Err(e) => {
            ctx.set_failed_call(&e);
            return fail(ctx, e.into());
        }
    };
    ctx.set_route(&model, attempts);
    ctx.mark_first_token();
    let usage = resp.usage.unwrap_or_else(|| estimated_usage(&req, &resp));
    ctx.set_usage(&model, usage);
    if let Some(d) = decision.as_mut().filter(|_| cascading) {
        if let Some(out) = route::cascade(&rt, &principal, &headers, &req, d, &resp).await {
            let more = out
                .value
                .usage
                .unwrap_or_else(|| estimated_usage(&req, &out.value));
            ctx.add_usage(&out.model, more);
            attempts += out.attempts;
            model = out.model;
            resp = out.value;
            ctx.set_route(&model, attempts);
        }
        // The cascade's verdict teaches the within-tier bandit.
        match (&d.escalated_from, d.confidence) {
            (Some(from), _) => rt.router.record_outcome(from, false),
            (None, Some(_)) => rt.router.record_outcome(&d.model, true),
            _ => {}
        }
        ctx.set_route_decision(Some(route::log_value(d)), d.header());
    }
    if !wants_logprobs {
        for c in &mut resp.choices {
            c.logprobs = None;
        }
    }
    let mut format_ok = true;
    if let Some(check) = &format {
        match repair_format(&rt, &mut ctx, check, &req, &model, resp).await {
            Ok(Repaired::Valid(r, extra)) => {
                resp = r;
                if let Some((more_usage, more_attempts)) = extra {
                    ctx.add_usage(&model, more_usage);
                    attempts += more_attempts;
                    ctx.set_route(&model, attempts);
                }
            }
            Ok(Repaired::Invalid(r)) => {
                resp = r;
                format_ok = false;
            }
            Err(e) => return fail(ctx, e),
        }
    }
    // Before the cache store: a leaking answer is never stored, whatever the mode.
    let leaked = match leak.as_mut() {
        Some(guard) => {
            let leaked = guard.screen_response(&mut ctx, &mut resp);
            if leaked && guard.blocks() {
                return fail(ctx, leak_error());
            }
            leaked
        }
        None => false,
    };
    if let Some(scanner) = output {
        if let Err(e) = AnswerScreen::screen(scanner, &mut ctx, &mut resp) {
            return fail(ctx, e);
        }
    }
    if let Some(text) = resp.choices.first().map(|c| c.message.text()) {
        ctx.set_answer_body(&text);
    }
    if let Some(cp) = cache_plan.filter(|_| !leaked && format_ok) {
        // Stored as the upstream answered: still redacted, so the cache never holds raw PII.
        cached::store_later(
            &app,
            cp,
            resp.clone(),
            model.name.clone(),
            model.provider_name().to_owned(),
            ctx.cost_usd(),
        );
    }
    restore_response(&vault, &mut resp);
    let body = match response_json(&resp) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                ctx,
                ApiError::new(
                    http::StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "malformed_response",
                    e.to_string(),
                ),
            )
        }
    };
    let mut response = ([(http::header::CONTENT_TYPE, "application/json")], body).into_response();
    route_headers(response.headers_mut(), &ctx, &model, attempts);
    ctx.finish_ok(200);
    response
}

/// The answer's JSON, serialized into a buffer sized from its text
/// ([`switchyard_api::json_size_hint`]) instead of one grown from empty.
pub(super) fn response_json(resp: &ChatCompletionResponse) -> serde_json::Result<Vec<u8>> {
    let text: usize = resp.choices.iter().map(|c| c.message.text_len()).sum();
    // The envelope (id, model, usage, finish reasons) weighs more than a request's.
    let envelope = 256;
    let mut out =
        Vec::with_capacity(switchyard_api::json_size_hint(text, resp.choices.len()) + envelope);
    serde_json::to_writer(&mut out, resp)?;
    Ok(out)
}

enum Repaired {
    /// Valid as it came, or after the repair call (whose usage and attempts are added).
    Valid(ChatCompletionResponse, Option<(Usage, u32)>),
    /// Invalid, and `detect` mode delivers it anyway (uncached).
    Invalid(ChatCompletionResponse),
}

/// `response_format` validation with one repair retry on the model that answered. The repair
/// call's usage is billed like any other; a second invalid answer is a 502.
async fn repair_format(
    rt: &super::Runtime,
    ctx: &mut RequestContext,
    check: &FormatCheck,
    req: &ChatCompletionRequest,
    model: &Arc<ModelEntry>,
    resp: ChatCompletionResponse,
) -> Result<Repaired, ApiError> {
    let Some(violation) = check.violation(&resp) else {
        return Ok(Repaired::Valid(resp, None));
    };
    if !check.repairs() {
        check.record(ctx, &violation, None, false);
        return Ok(Repaired::Invalid(resp));
    }
    let repair = Arc::new(check.repair_request(req, &resp, &violation));
    let out = match call_chat(rt, vec![model.clone()], &repair).await {
        Ok(out) => out,
        Err(e) => {
            check.record(ctx, &violation, Some(false), false);
            return Err(repair_failed(e));
        }
    };
    let usage = out
        .value
        .usage
        .unwrap_or_else(|| estimated_usage(&repair, &out.value));
    match check.violation(&out.value) {
        None => {
            check.record(ctx, &violation, Some(true), false);
            Ok(Repaired::Valid(out.value, Some((usage, out.attempts))))
        }
        Some(still) => {
            check.record(ctx, &still, Some(false), false);
            ctx.add_usage(model, usage);
            Err(format_error(&still))
        }
    }
}

fn repair_failed(e: CallError) -> ApiError {
    let mut err: ApiError = e.into();
    err.message = format!(
        "the answer did not match response_format and the repair call failed: {}",
        err.message
    );
    err
}

/// A non-streamed chat call through the plan (retries, breakers, fallbacks): the first answer,
/// a `response_format` repair and a cascade escalation all go this way.
pub(super) async fn call_chat(
    rt: &super::Runtime,
    plan: Vec<Arc<ModelEntry>>,
    req: &Arc<ChatCompletionRequest>,
) -> Result<CallOutcome<ChatCompletionResponse>, CallError> {
    rt.caller
        .call(&rt.models, plan, |m| {
            let req = req.clone();
            async move { m.provider.chat(&req, &m.upstream).await }
        })
        .await
}

/// The answer exists but is refused: a 400 like the input guardrails' blocks, since the request
/// (its system prompt plus what it asked for) is what produced the leak.
pub(super) fn leak_error() -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "guardrail_blocked",
        LEAK_CODE,
        LEAK_MESSAGE,
    )
}

fn validate(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    if req.model.trim().is_empty() {
        return Err(
            ApiError::invalid_request("invalid_request", "`model` must not be empty")
                .with_param("model"),
        );
    }
    if req.messages.is_empty() {
        return Err(ApiError::invalid_request(
            "invalid_request",
            "`messages` must contain at least one message",
        )
        .with_param("messages"));
    }
    if req.n.is_some_and(|n| n == 0) {
        return Err(
            ApiError::invalid_request("invalid_request", "`n` must be at least 1").with_param("n"),
        );
    }
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::invalid_request(
            "invalid_request",
            "`temperature` must be between 0 and 2",
        )
        .with_param("temperature"));
    }
    Ok(())
}

fn estimated_usage(req: &ChatCompletionRequest, resp: &ChatCompletionResponse) -> Usage {
    let completion: usize = resp.choices.iter().map(|c| c.message.text().len()).sum();
    Usage::new(
        estimate_tokens(req.prompt_chars()),
        estimate_tokens(completion),
    )
}

// Constants: a `&str` header name is parsed and validated again on every insert.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) const X_BUDGET_WARNING: HeaderName =
    HeaderName::from_static("x-switchyard-budget-warning");
pub(super) const X_CACHE: HeaderName = HeaderName::from_static("x-switchyard-cache");
pub(super) const X_ROUTE: HeaderName = HeaderName::from_static("x-switchyard-route");
pub(super) const X_MODEL: HeaderName = HeaderName::from_static("x-switchyard-model");
pub(super) const X_PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
pub(super) const X_COST_USD: HeaderName = HeaderName::from_static("x-switchyard-cost-usd");
pub(super) const X_ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");

/// The `x-switchyard-*` headers that say who served the request and what it cost, and the
/// `x-ratelimit-*` headers of the limits that applied.
pub(super) fn route_headers(
    headers: &mut HeaderMap,
    ctx: &RequestContext,
    model: &ModelEntry,
    attempts: u32,
) {
    served_by_headers(headers, ctx, &model.name, model.provider_name(), attempts);
}

/// [`route_headers`] by names, for answers that did not come from a call (cache hits); the cache
/// outcome, when the cache took part, is among them.
pub(super) fn served_by_headers(
    headers: &mut HeaderMap,
    ctx: &RequestContext,
    model: &str,
    provider: &str,
    attempts: u32,
) {
    // Room for these and the rate-limit headers at once, instead of regrowing the map twice.
    headers.reserve(16);
    headers.insert(X_REQUEST_ID, header_value(ctx.request_id()));
    ctx.ticket().rate_headers.write(headers);
    if let Some(w) = &ctx.ticket().budget_warning {
        headers.insert(X_BUDGET_WARNING, header_value(w));
    }
    if let Some(outcome) = ctx.cache_outcome() {
        headers.insert(X_CACHE, header_value(outcome));
    }
    if let Some(route) = ctx.route_header() {
        headers.insert(X_ROUTE, header_value(route));
    }
    headers.insert(X_MODEL, header_value(model));
    headers.insert(X_PROVIDER, header_value(provider));
    headers.insert(X_COST_USD, header_value(&format!("{:.8}", ctx.cost_usd())));
    headers.insert(X_ATTEMPTS, http::HeaderValue::from(attempts));
}
