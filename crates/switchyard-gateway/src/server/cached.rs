//! Serving an answer from the cache, as JSON or as an SSE stream, with the same headers and
//! request-log fields as a served call (cost zero, the saving recorded).

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Delta, Role, Usage,
};
use switchyard_guardrails::{OutputScanner, Vault};

use super::chat::served_by_headers;
use super::{fail, header_value, ApiError, AppState};
use crate::requestlog::RequestContext;
use crate::stages::cache::CacheHit;
use crate::stages::guardrails::{restore_response, AnswerScreen, LeakGuard};

/// The answer checks a cache hit goes through, like a fresh answer.
pub(super) struct HitGuards<'a> {
    pub vault: &'a Vault,
    pub leak: Option<&'a mut LeakGuard>,
    pub output: Option<&'a OutputScanner>,
}

pub(super) fn respond(
    app: &AppState,
    mut ctx: RequestContext,
    req: &ChatCompletionRequest,
    hit: CacheHit,
    guards: HitGuards<'_>,
) -> Response {
    let HitGuards {
        vault,
        leak,
        output,
    } = guards;
    let mut resp: ChatCompletionResponse = match serde_json::from_value(hit.entry.response.clone())
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                ctx,
                ApiError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "cache_corrupt",
                    format!("a cached answer could not be read: {e}"),
                ),
            )
        }
    };
    // Leaks are never stored, but an entry written while the guard was off may still leak.
    if let Some(guard) = leak {
        if guard.screen_response(&mut ctx, &mut resp) && guard.blocks() {
            ctx.set_cache(hit.outcome.as_str());
            return fail(ctx, super::chat::leak_error());
        }
    }
    // Entries written under other guardrail settings are screened like fresh answers.
    if let Some(scanner) = output {
        if let Err(e) = AnswerScreen::screen(scanner, &mut ctx, &mut resp) {
            ctx.set_cache(hit.outcome.as_str());
            return fail(ctx, e);
        }
    }
    if let Some(text) = resp.choices.first().map(|c| c.message.text()) {
        ctx.set_answer_body(&text);
    }
    restore_response(vault, &mut resp);
    let usage = resp.usage.unwrap_or_default();
    ctx.set_cached_route(&hit.entry.model_used, &hit.entry.provider, usage);
    ctx.set_cache(hit.outcome.as_str());
    ctx.mark_first_token();
    app.cache.record(
        &hit.entry.tenant,
        ctx.tags(),
        hit.outcome,
        hit.entry.cost_usd,
    );
    let mut response = if req.is_stream() {
        let body = as_sse(&resp, req.wants_stream_usage());
        (
            [
                (http::header::CONTENT_TYPE, "text/event-stream"),
                (http::header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from(body),
        )
            .into_response()
    } else {
        match super::chat::response_json(&resp) {
            Ok(body) => ([(http::header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => {
                return fail(
                    ctx,
                    ApiError::new(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "cache_corrupt",
                        e.to_string(),
                    ),
                )
            }
        }
    };
    let h = response.headers_mut();
    served_by_headers(h, &ctx, &req.model, &hit.entry.provider, 0);
    if let Some(s) = hit.similarity {
        h.insert(
            "x-switchyard-cache-similarity",
            header_value(&format!("{s:.4}")),
        );
    }
    h.insert(
        "x-switchyard-saved-usd",
        header_value(&format!("{:.8}", hit.entry.cost_usd)),
    );
    ctx.finish_ok(200);
    response
}

/// A cached answer replayed as the chunks a live stream would have sent: the role and the text,
/// the finish reason, usage if asked for, then `[DONE]`.
fn as_sse(resp: &ChatCompletionResponse, wants_usage: bool) -> Bytes {
    let mut out = Vec::with_capacity(512);
    let mut push = |chunk: &ChatCompletionChunk| {
        out.extend_from_slice(b"data: ");
        if serde_json::to_writer(&mut out, chunk).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    };
    for choice in &resp.choices {
        let delta = Delta {
            role: Some(Role::Assistant),
            content: Some(choice.message.text()),
            tool_calls: None,
            extra: serde_json::Map::new(),
        };
        let mut chunk =
            ChatCompletionChunk::new(&resp.id, &resp.model, resp.created).with_delta(delta, None);
        chunk.choices[0].index = choice.index;
        push(&chunk);
        let mut end = ChatCompletionChunk::new(&resp.id, &resp.model, resp.created)
            .with_delta(Delta::default(), choice.finish_reason.clone());
        end.choices[0].index = choice.index;
        push(&end);
    }
    if wants_usage {
        let mut chunk = ChatCompletionChunk::new(&resp.id, &resp.model, resp.created);
        chunk.usage = Some(resp.usage.unwrap_or_else(|| Usage::new(0, 0)));
        push(&chunk);
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Bytes::from(out)
}

/// Stores a fresh answer in the cache without holding up the response.
pub(super) fn store_later(
    app: &Arc<AppState>,
    plan: crate::stages::cache::CachePlan,
    resp: ChatCompletionResponse,
    model_used: String,
    provider: String,
    cost_usd: f64,
) {
    let app = app.clone();
    tokio::spawn(async move {
        let rt = app.runtime();
        app.cache
            .store(&rt, plan, &resp, &model_used, &provider, cost_usd)
            .await;
    });
}
