//! Streaming chat: the call stage waits for the upstream's first event before committing to a
//! model (so fallbacks still work for streams), then chunks are relayed as SSE while usage and
//! time-to-first-token are collected for the request log. On the way out each choice's text
//! passes the system-prompt leak check (when armed), the output scanners (PII, secrets, banned
//! terms) and then placeholder restoration; each holds back only the tail a match could still
//! span.

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

use super::chat::{leak_error, route_headers};
use super::{cached, fail, now_ms, ApiError, AppState, Runtime};
use crate::requestlog::{estimate_tokens, RequestContext};
use crate::stages::cache::CachePlan;
use crate::stages::guardrails::{
    blocked_error, FormatCheck, LeakGuard, LeakStream, OutputRelay, StreamRestore,
};
use crate::stages::routing::ModelEntry;
use switchyard_guardrails::Vault;

/// What the guardrails need on the way back to the client.
pub(super) struct AnswerGuards {
    /// Redacted values to put back into the answer.
    pub vault: Vault,
    /// The system-prompt leak check, when armed for this request.
    pub leak: Option<LeakGuard>,
    /// PII, secrets and banned terms in the answer.
    pub output: Option<OutputRelay>,
    /// `response_format` validation: a streamed answer can only be checked once delivered.
    pub format: Option<FormatCheck>,
}

/// Most of choice 0's text kept for the request log and the `response_format` check.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn respond(
    app: Arc<AppState>,
    rt: Arc<Runtime>,
    mut ctx: RequestContext,
    req: ChatCompletionRequest,
    plan: Vec<Arc<ModelEntry>>,
    guards: AnswerGuards,
    cache_plan: Option<CachePlan>,
) -> Response {
    let AnswerGuards {
        vault,
        leak,
        output,
        format,
    } = guards;
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
        leak: leak.map(|guard| LeakRelay {
            guard,
            streams: Vec::new(),
        }),
        output,
        format,
        answer: String::new(),
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
    /// The system-prompt leak check, run before restoration (it compares redacted text with the
    /// redacted prompt the upstream saw).
    leak: Option<LeakRelay>,
    /// Output scanners, after the leak check and before restoration (same reason).
    output: Option<OutputRelay>,
    format: Option<FormatCheck>,
    /// Choice 0's screened text (placeholders not yet restored), bounded.
    answer: String,
    /// A cache miss being recorded: the answer is stored once the stream ends normally.
    fill: Option<CacheFill>,
}

struct LeakRelay {
    guard: LeakGuard,
    /// One check per choice index; a list, not a vector indexed by the upstream's number.
    streams: Vec<(u32, LeakStream)>,
}

impl LeakRelay {
    fn stream_for(&mut self, index: u32) -> &mut LeakStream {
        match self.streams.iter().position(|(i, _)| *i == index) {
            Some(p) => &mut self.streams[p].1,
            None => {
                self.streams.push((index, self.guard.stream()));
                let last = self.streams.len() - 1;
                &mut self.streams[last].1
            }
        }
    }
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
                    if self.screen_leaks(&mut chunk) {
                        return Some(self.block_with(leak_error()));
                    }
                    if let Err(e) = self.screen_output(&mut chunk) {
                        return Some(self.block_with(e));
                    }
                    self.keep_answer(&chunk);
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

    /// Runs each choice's text through its leak check, which holds back what a match could
    /// still span. True when the answer must be stopped (a leak in `block` mode).
    fn screen_leaks(&mut self, chunk: &mut ChatCompletionChunk) -> bool {
        let Some(leak) = &mut self.leak else {
            return false;
        };
        let block = leak.guard.blocks();
        for choice in &mut chunk.choices {
            let stream = leak.stream_for(choice.index);
            let mut found = None;
            if let Some(text) = &mut choice.delta.content {
                let step = stream.push(text, block);
                *text = step.emit;
                found = step.leak;
            }
            if choice.finish_reason.is_some() {
                let step = stream.finish(block);
                if !step.emit.is_empty() {
                    choice
                        .delta
                        .content
                        .get_or_insert_with(String::new)
                        .push_str(&step.emit);
                }
                found = found.or(step.leak);
            }
            if let Some(evidence) = found {
                if let Some(ctx) = self.ctx.as_mut() {
                    leak.guard.record(ctx, choice.index, &evidence, true);
                }
                // Detect mode delivers the answer but never caches it.
                if let Some(fill) = self.fill.as_mut() {
                    fill.cacheable = false;
                }
                if block {
                    return true;
                }
            }
        }
        false
    }

    /// Runs each choice's (leak-checked) text through the output scanners. A redaction makes the
    /// answer uncacheable (the cache keeps what the upstream said); a block ends the stream.
    fn screen_output(&mut self, chunk: &mut ChatCompletionChunk) -> Result<(), ApiError> {
        let Some(output) = &mut self.output else {
            return Ok(());
        };
        for choice in &mut chunk.choices {
            let last = choice.finish_reason.is_some();
            let text = choice.delta.content.take().unwrap_or_default();
            if text.is_empty() && !last {
                continue;
            }
            let emitted = output
                .push(self.ctx.as_mut(), choice.index, &text, last)
                .map_err(|f| blocked_error(&f))?;
            if emitted != text {
                if let Some(fill) = self.fill.as_mut() {
                    fill.cacheable = false;
                }
            }
            if !emitted.is_empty() || !text.is_empty() {
                choice.delta.content = Some(emitted);
            }
        }
        Ok(())
    }

    fn keep_answer(&mut self, chunk: &ChatCompletionChunk) {
        let text = chunk
            .choices
            .iter()
            .filter(|c| c.index == 0)
            .filter_map(|c| c.delta.content.as_deref());
        for t in text {
            if self.answer.len() + t.len() <= MAX_ANSWER_BYTES {
                self.answer.push_str(t);
            }
        }
    }

    /// The upstream ended without a finish_reason: release (or judge) what the leak checks still
    /// hold. `None` when that tail leaks in `block` mode.
    fn flush_leaks(&mut self) -> Option<Vec<ChatCompletionChunk>> {
        let Some(leak) = &mut self.leak else {
            return Some(Vec::new());
        };
        let block = leak.guard.blocks();
        let mut chunks = Vec::new();
        for (index, stream) in &mut leak.streams {
            let step = stream.finish(block);
            if let Some(evidence) = &step.leak {
                if let Some(ctx) = self.ctx.as_mut() {
                    leak.guard.record(ctx, *index, evidence, true);
                }
                if let Some(fill) = self.fill.as_mut() {
                    fill.cacheable = false;
                }
                if block {
                    return None;
                }
            }
            if !step.emit.is_empty() {
                chunks.push(content_chunk(&self.model.name, *index, step.emit));
            }
        }
        Some(chunks)
    }

    /// An answer a guardrail stopped: no more content, and an error object as the last event, as
    /// `fail` does for upstream errors (the 200 status is long gone).
    fn block_with(&mut self, err: ApiError) -> Bytes {
        self.fill = None;
        if let Some(mut ctx) = self.ctx.take() {
            // The upstream produced (and billed) the tokens even though the client never sees
            // them, so the log carries their cost.
            let usage = self.usage.unwrap_or_else(|| self.estimated_usage());
            ctx.set_usage(&self.model, usage);
            ctx.set_answer_body(&self.answer);
            ctx.finish_err(err.status.as_u16(), err.code, &err.message);
        }
        sse_json(&err.body())
    }

    fn estimated_usage(&self) -> Usage {
        Usage::new(
            estimate_tokens(self.prompt_chars),
            estimate_tokens(self.completion_chars),
        )
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
        // A stream that ended without a finish_reason may still hold a leak-check tail, which
        // then goes through restoration like any other text.
        let Some(tails) = self.flush_leaks() else {
            return self.block_with(leak_error());
        };
        for mut chunk in tails {
            if let Err(e) = self.screen_output(&mut chunk) {
                return self.block_with(e);
            }
            self.keep_answer(&chunk);
            self.restore_placeholders(&mut chunk);
            out.extend_from_slice(&sse_json(&chunk));
        }
        // ...then what the output scanners still hold...
        if let Some(output) = &mut self.output {
            match output.finish_all(self.ctx.as_mut()) {
                Ok(tails) => {
                    for (index, text) in tails {
                        let mut chunk = content_chunk(&self.model.name, index, text);
                        self.keep_answer(&chunk);
                        self.restore_placeholders(&mut chunk);
                        out.extend_from_slice(&sse_json(&chunk));
                    }
                }
                Err(f) => return self.block_with(blocked_error(&f)),
            }
        }
        // ...and a restorer tail.
        if let Some((vault, restorers)) = &mut self.restore {
            for (i, r) in restorers.iter_mut().enumerate() {
                let rest = r.finish(vault);
                if !rest.is_empty() {
                    let chunk = content_chunk(&self.model.name, i as u32, rest);
                    out.extend_from_slice(&sse_json(&chunk));
                }
            }
        }
        let estimated = self.usage.is_none();
        let usage = self.usage.unwrap_or_else(|| self.estimated_usage());
        if estimated && self.wants_usage {
            // The client asked for usage and the upstream gave none: send our estimate.
            let mut chunk = ChatCompletionChunk::new("", &self.model.name, 0);
            chunk.usage = Some(usage);
            out.extend_from_slice(&sse_json(&chunk));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        if let Some(mut ctx) = self.ctx.take() {
            ctx.set_usage(&self.model, usage);
            ctx.set_answer_body(&self.answer);
            if let Some(v) = self
                .format
                .as_ref()
                .and_then(|f| f.check_text(&self.answer))
            {
                if let Some(f) = &self.format {
                    f.record(&mut ctx, &v, None, true);
                }
                self.fill = None;
            }
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
            ctx.set_answer_body(&self.answer);
            ctx.finish_err(502, e.class().as_str(), &message);
        }
        // Headers are gone already; OpenAI's convention is an error object as the last event.
        let body = ErrorBody::new(message, "upstream_error", e.class().as_str());
        sse_json(&body)
    }
}

/// A chunk carrying only `text` for choice `index`.
fn content_chunk(model: &str, index: u32, text: String) -> ChatCompletionChunk {
    let delta = switchyard_api::Delta {
        content: Some(text),
        ..Default::default()
    };
    let mut chunk = ChatCompletionChunk::new("", model, 0).with_delta(delta, None);
    if let Some(c) = chunk.choices.first_mut() {
        c.index = index;
    }
    chunk
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
