//! Streaming chat: the call stage waits for the upstream's first event before committing to a
//! model (so fallbacks still work for streams), then chunks are relayed as SSE while usage and
//! time-to-first-token are collected for the request log.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice,
    ErrorBody, Role, Usage,
};
use switchyard_providers::{ChunkStream, ProviderError};

use super::chat::route_headers;
use super::{cached, fail, now_ms, AppState, Runtime};
use crate::requestlog::{estimate_tokens, RequestContext};
use crate::stages::cache::CachePlan;
use crate::stages::guardrails::StreamRestore;
use crate::stages::routing::ModelEntry;
use switchyard_guardrails::Vault;

pub(super) async fn respond(
    app: Arc<AppState>,
    rt: Arc<Runtime>,
    mut ctx: RequestContext,
    req: ChatCompletionRequest,
    plan: Vec<Arc<ModelEntry>>,
    vault: Vault,
    cache_plan: Option<CachePlan>,
) -> Response {
    let req = Arc::new(req);
    let result = rt
        .caller
        .call(&rt.models, plan, |m| {
            let req = req.clone();
            async move {
                let mut upstream = m.provider.chat_stream(&req, &m.upstream).await?;
                match upstream.next().await {
                    Some(Ok(first)) => Ok((first, upstream)),
                    Some(Err(e)) => Err(e),
                    None => Err(ProviderError::StreamBroken(
                        "upstream closed the stream before any event".into(),
                    )),
                }
            }
        })
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            ctx.set_failed_call(&e);
            return fail(ctx, e.into());
        }
    };
    let (first, upstream) = out.value;
    ctx.set_route(&out.model, out.attempts);
    // Only the prompt side is known when headers go out; the exact cost lands in the request log.
    let prompt_estimate = Usage::new(estimate_tokens(req.prompt_chars()), 0);
    ctx.set_usage(&out.model, prompt_estimate);

    let mut builder = Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .header("x-switchyard-cost-estimated", "prompt-only");
    if let Some(h) = builder.headers_mut() {
        route_headers(h, &ctx, &out.model, out.attempts);
        if let Some(outcome) = ctx.cache_outcome() {
            h.insert("x-switchyard-cache", super::header_value(outcome));
        }
    }
    let relay = Relay {
        pending_first: Some(first),
        idle_timeout: out.model.timeout,
        upstream,
        ctx: Some(ctx),
        model: out.model,
        wants_usage: req.wants_stream_usage(),
        prompt_chars: req.prompt_chars(),
        completion_chars: 0,
        usage: None,
        restore: (!vault.is_empty()).then(|| (vault, Vec::new())),
        fill: cache_plan.map(|plan| CacheFill {
            app,
            plan,
            text: String::new(),
            finish_reason: None,
            cacheable: true,
        }),
    };
    let body = futures::stream::unfold(relay, |mut relay| async move {
        let next = relay.next_event().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(next), relay))
    });
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

struct Relay {
    pending_first: Option<ChatCompletionChunk>,
    upstream: ChunkStream,
    idle_timeout: Duration,
    /// Present until the stream ends; dropping the relay early (client gone) records a 499.
    ctx: Option<RequestContext>,
    model: Arc<ModelEntry>,
    wants_usage: bool,
    prompt_chars: usize,
    completion_chars: usize,
    usage: Option<Usage>,
    /// Redacted values to put back, with one restorer per choice index.
    restore: Option<(Vault, Vec<StreamRestore>)>,
    /// A cache miss being recorded: the answer is stored once the stream ends normally.
    fill: Option<CacheFill>,
}

struct CacheFill {
    app: Arc<AppState>,
    plan: CachePlan,
    /// Choice 0's text as the upstream sent it (before placeholders are restored).
    text: String,
    finish_reason: Option<String>,
    /// Tool calls and multiple choices are not replayed from the cache.
    cacheable: bool,
}

impl CacheFill {
    fn observe(&mut self, chunk: &ChatCompletionChunk) {
        for c in &chunk.choices {
            if c.index != 0 || c.delta.tool_calls.is_some() {
                self.cacheable = false;
            }
            if let Some(t) = &c.delta.content {
                self.text.push_str(t);
            }
            if c.finish_reason.is_some() {
                self.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    fn store(self, model: &ModelEntry, usage: Usage, cost_usd: f64) {
        if !self.cacheable {
            return;
        }
        let resp = ChatCompletionResponse {
            id: format!("chatcmpl-{}", uuid::Uuid::now_v7().simple()),
            object: "chat.completion".to_owned(),
            created: (now_ms() / 1000).max(0) as u64,
            model: model.upstream.clone(),
            choices: vec![Choice {
                index: 0,
                message: ChatMessage::new(Role::Assistant, self.text),
                finish_reason: self.finish_reason,
                logprobs: None,
            }],
            usage: Some(usage),
            system_fingerprint: None,
            extra: serde_json::Map::new(),
        };
        cached::store_later(
            &self.app,
            self.plan,
            resp,
            model.name.clone(),
            model.provider_name().to_owned(),
            cost_usd,
        );
    }
}

impl Relay {
    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            let ctx = self.ctx.as_mut()?;
            let item = match self.pending_first.take() {
                Some(first) => Some(Ok(first)),
                // A stall longer than the model's timeout is as good as a broken stream.
                None => tokio::time::timeout(self.idle_timeout, self.upstream.next())
                    .await
                    .unwrap_or(Some(Err(ProviderError::Timeout))),
            };
            match item {
                Some(Ok(mut chunk)) => {
                    if chunk.has_content() {
                        ctx.mark_first_token();
                    }
                    self.completion_chars += chunk_chars(&chunk);
                    if let Some(u) = chunk.usage {
                        self.usage = Some(u);
                    }
                    if let Some(fill) = self.fill.as_mut() {
                        fill.observe(&chunk);
                    }
                    self.restore_placeholders(&mut chunk);
                    let usage_only = chunk.choices.is_empty() && chunk.usage.is_some();
                    if !self.wants_usage {
                        if usage_only {
                            continue;
                        }
                        chunk.usage = None;
                    }
                    return Some(sse_json(&chunk));
                }
                Some(Err(e)) => return Some(self.fail(e)),
                None => return Some(self.finish()),
            }
        }
    }

    /// Puts redacted values back into the chunk's text, holding back a possible partial
    /// placeholder until the next chunk or the choice's last one.
    fn restore_placeholders(&mut self, chunk: &mut ChatCompletionChunk) {
        let Some((vault, restorers)) = &mut self.restore else {
            return;
        };
        for choice in &mut chunk.choices {
            let i = choice.index as usize;
            if restorers.len() <= i {
                restorers.resize_with(i + 1, StreamRestore::default);
            }
            let r = &mut restorers[i];
            if let Some(text) = &mut choice.delta.content {
                *text = r.push(vault, text);
            }
            if choice.finish_reason.is_some() {
                let rest = r.finish(vault);
                if !rest.is_empty() {
                    choice
                        .delta
                        .content
                        .get_or_insert_with(String::new)
                        .push_str(&rest);
                }
            }
        }
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        // A stream that ended without a finish_reason may still hold a restorer tail.
        if let Some((vault, restorers)) = &mut self.restore {
            for (i, r) in restorers.iter_mut().enumerate() {
                let rest = r.finish(vault);
                if !rest.is_empty() {
                    let delta = switchyard_api::Delta {
                        content: Some(rest),
                        ..Default::default()
                    };
                    let mut chunk =
                        ChatCompletionChunk::new("", &self.model.name, 0).with_delta(delta, None);
                    if let Some(c) = chunk.choices.first_mut() {
                        c.index = i as u32;
                    }
                    out.extend_from_slice(&sse_json(&chunk));
                }
            }
        }
        let estimated = self.usage.is_none();
        let usage = self.usage.unwrap_or_else(|| {
            Usage::new(
                estimate_tokens(self.prompt_chars),
                estimate_tokens(self.completion_chars),
            )
        });
        if estimated && self.wants_usage {
            // The client asked for usage and the upstream gave none: send our estimate.
            let mut chunk = ChatCompletionChunk::new("", &self.model.name, 0);
            chunk.usage = Some(usage);
            out.extend_from_slice(&sse_json(&chunk));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        if let Some(mut ctx) = self.ctx.take() {
            ctx.set_usage(&self.model, usage);
            if let Some(fill) = self.fill.take() {
                fill.store(&self.model, usage, ctx.cost_usd());
            }
            ctx.finish_ok(200);
        }
        Bytes::from(out)
    }

    fn fail(&mut self, e: ProviderError) -> Bytes {
        let message = format!("upstream stream failed: {e}");
        if let Some(mut ctx) = self.ctx.take() {
            if let Some(u) = self.usage {
                ctx.set_usage(&self.model, u);
            }
            ctx.finish_err(502, e.class().as_str(), &message);
        }
        // Headers are gone already; OpenAI's convention is an error object as the last event.
        let body = ErrorBody::new(message, "upstream_error", e.class().as_str());
        sse_json(&body)
    }
}

fn chunk_chars(chunk: &ChatCompletionChunk) -> usize {
    chunk
        .choices
        .iter()
        .map(|c| {
            c.delta.content.as_deref().map_or(0, str::len)
                + c.delta
                    .tool_calls
                    .iter()
                    .flatten()
                    .filter_map(|t| t.function.as_ref()?.arguments.as_deref())
                    .map(str::len)
                    .sum::<usize>()
        })
        .sum()
}

fn sse_json<T: serde::Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    // Serializing our own wire types cannot fail; an empty object keeps the stream well-formed.
    if serde_json::to_writer(&mut out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
