//! The request's record, filled in as it moves through the pipeline and handed to the
//! asynchronous request log exactly once — on success, on error, or (through `Drop`) when the
//! client goes away mid-request, so nothing that reached the gateway goes unrecorded.

use std::time::{Duration, Instant};

use http::HeaderMap;
use serde_json::{Map, Value};
use switchyard_api::Usage;
use switchyard_store::{RequestLog, RequestRecord};

use std::sync::Arc;

use crate::metrics::{self, RequestMetrics};
use crate::stages::admission::{Admission, Ticket};
use crate::stages::auth::Principal;
use crate::stages::call::CallError;
use crate::stages::routing::ModelEntry;

const MAX_TAGS: usize = 32;
const MAX_TAG_LEN: usize = 128;

pub struct RequestContext {
    log: RequestLog,
    /// `x-switchyard-route`, once routing has decided.
    route_header: Option<String>,
    started: Instant,
    ttft: Option<Duration>,
    record: RequestRecord,
    finished: bool,
    /// What admission granted; settled (tokens, concurrency, spend) when the request ends.
    ticket: Ticket,
    settler: Option<Arc<Admission>>,
}

impl RequestContext {
    pub fn begin(log: RequestLog, endpoint: &str, headers: &HeaderMap) -> Self {
        metrics::inflight(1.0);
        let ts_ms = crate::server::now_ms();
        let record = RequestRecord {
            request_id: format!("req_{}", uuid::Uuid::now_v7().simple()),
            ts_ms,
            endpoint: endpoint.to_owned(),
            tags: header_tags(headers),
            ..Default::default()
        };
        Self {
            log,
            route_header: None,
            started: Instant::now(),
            ttft: None,
            record,
            finished: false,
            ticket: Ticket::default(),
            settler: None,
        }
    }

    /// From here on, the request's admission ticket is settled when it ends.
    pub fn bind_admission(&mut self, admission: Arc<Admission>) {
        self.settler = Some(admission);
    }

    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    pub fn ticket_mut(&mut self) -> &mut Ticket {
        &mut self.ticket
    }

    pub fn tags(&self) -> &[String] {
        &self.record.tags
    }

    /// Guardrail findings (kind, action, score; never the value) go into the record's metadata,
    /// appended to those of earlier stages.
    pub fn add_guardrail_findings(&mut self, findings: Vec<serde_json::Value>) {
        if findings.is_empty() {
            return;
        }
        match self.record.metadata.get_mut("guardrails") {
            Some(Value::Array(list)) => list.extend(findings),
            _ => {
                self.record
                    .metadata
                    .insert("guardrails".to_owned(), Value::Array(findings));
            }
        }
    }

    /// The prompt as logged (see `crate::logbodies`); the answer is added by `set_answer_body`.
    pub fn set_prompt_body(&mut self, bodies: Option<Value>) {
        self.record.bodies = bodies;
    }

    pub fn set_answer_body(&mut self, answer: &str) {
        if let Some(bodies) = self.record.bodies.as_mut() {
            crate::logbodies::add_answer(bodies, answer);
        }
    }

    /// The end user the client named in the body's `user` field.
    pub fn set_user(&mut self, user: Option<&str>) {
        self.record.user = user.map(|u| u.chars().take(256).collect());
    }

    pub fn request_id(&self) -> &str {
        &self.record.request_id
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn set_principal(&mut self, p: &Principal) {
        self.record.tenant = p.tenant.to_string();
        self.record.key_id = p.key_id.to_string();
    }

    /// What the client asked for, and the tags it attached in the body's `metadata`.
    pub fn set_request(
        &mut self,
        model: &str,
        stream: bool,
        metadata: Option<&Map<String, Value>>,
    ) {
        self.record.model_requested = model.chars().take(256).collect();
        self.record.stream = stream;
        let Some(meta) = metadata else { return };
        if let Some(Value::Array(tags)) = meta.get("tags") {
            for t in tags.iter().filter_map(Value::as_str) {
                push_tag(&mut self.record.tags, t);
            }
        }
        // `experiment` is the gateway's to write (`set_experiment`): reports trust it.
        self.record.metadata = meta
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "tags" | "experiment"))
            .take(MAX_TAGS)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }

    pub fn set_route(&mut self, model: &ModelEntry, attempts: u32) {
        self.record.model_used = Some(model.name.clone());
        self.record.provider = Some(model.provider_name().to_owned());
        self.record.attempts = attempts;
    }

    /// Records how far a call got before every candidate failed: attempts and the last model.
    pub fn set_failed_call(&mut self, e: &CallError) {
        self.record.attempts = e.attempts;
        if let Some(m) = &e.last_model {
            self.set_route(m, e.attempts);
        }
    }

    /// `hit-exact`, `hit-semantic`, `miss` or `bypass`.
    pub fn set_cache(&mut self, outcome: &str) {
        self.record.cache = Some(outcome.to_owned());
    }

    pub fn cache_outcome(&self) -> Option<&str> {
        self.record.cache.as_deref()
    }

    /// A cache hit: the answer came from `model`'s earlier call, at no cost now.
    pub fn set_cached_route(&mut self, model_used: &str, provider: &str, usage: Usage) {
        self.record.model_used = Some(model_used.to_owned());
        self.record.provider = Some(provider.to_owned());
        self.record.attempts = 0;
        self.record.prompt_tokens = usage.prompt_tokens;
        self.record.completion_tokens = usage.completion_tokens;
        self.record.cost_usd = 0.0;
    }

    pub fn set_usage(&mut self, model: &ModelEntry, usage: Usage) {
        self.record.prompt_tokens = usage.prompt_tokens;
        self.record.completion_tokens = usage.completion_tokens;
        self.record.cost_usd = model.cost_usd(usage.prompt_tokens, usage.completion_tokens);
    }

    /// How routing decided (`auto` decisions also go into `metadata.route`).
    pub fn set_route_decision(&mut self, decision: Option<Value>, header: String) {
        if let Some(d) = decision {
            self.record.metadata.insert("route".to_owned(), d);
        }
        self.route_header = Some(header);
    }

    /// The experiment arm that served the request, as `metadata.experiment`
    /// (`{"name": ..., "arm": ...}`); experiment reports group the log by it.
    pub fn set_experiment(&mut self, assignment: &crate::stages::experiment::Assignment) {
        self.record
            .metadata
            .insert("experiment".to_owned(), assignment.log_value());
    }

    pub fn route_header(&self) -> Option<&str> {
        self.route_header.as_deref()
    }

    /// Adds a further call's usage (a repair, a cascade escalation) at that model's prices.
    pub fn add_usage(&mut self, model: &ModelEntry, usage: Usage) {
        self.record.prompt_tokens += usage.prompt_tokens;
        self.record.completion_tokens += usage.completion_tokens;
        self.record.cost_usd += model.cost_usd(usage.prompt_tokens, usage.completion_tokens);
    }

    /// The usage recorded so far.
    pub fn usage(&self) -> Usage {
        Usage::new(self.record.prompt_tokens, self.record.completion_tokens)
    }

    pub fn cost_usd(&self) -> f64 {
        self.record.cost_usd
    }

    pub fn mark_first_token(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.started.elapsed());
        }
    }

    pub fn finish_ok(mut self, status: u16) {
        self.record.status = status;
        self.emit();
    }

    pub fn finish_err(mut self, status: u16, kind: &str, message: &str) {
        self.record.status = status;
        self.record.error_kind = Some(kind.to_owned());
        self.record.error_message = Some(message.chars().take(500).collect());
        self.emit();
    }

    fn emit(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        metrics::inflight(-1.0);
        let duration = self.started.elapsed();
        let r = &mut self.record;
        r.latency_ms = duration.as_millis() as u64;
        r.ttft_ms = self.ttft.map(|t| t.as_millis() as u64);
        metrics::request_finished(&RequestMetrics {
            model: r.model_used.as_deref().unwrap_or(&r.model_requested),
            provider: r.provider.as_deref().unwrap_or("none"),
            tenant: &r.tenant,
            status: r.status,
            duration,
            ttft: self.ttft,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_usd: r.cost_usd,
        });
        if let Some(admission) = self.settler.take().filter(|_| !self.ticket.is_empty()) {
            let ticket = std::mem::take(&mut self.ticket);
            let tokens = r.prompt_tokens + r.completion_tokens;
            let cost = r.cost_usd;
            // Settling talks to the limit state (maybe Redis): never on the response path.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { admission.settle(ticket, tokens, cost).await });
            }
        }
        self.log.record(std::mem::take(&mut self.record));
    }
}

impl Drop for RequestContext {
    fn drop(&mut self) {
        if !self.finished {
            // The response future was dropped: the client disconnected (or shutdown cut it off).
            self.record.status = 499;
            self.record.error_kind = Some("client_closed".to_owned());
            self.emit();
        }
    }
}

fn header_tags(headers: &HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    if let Some(v) = headers
        .get("x-switchyard-tags")
        .and_then(|v| v.to_str().ok())
    {
        for t in v.split(',') {
            push_tag(&mut tags, t);
        }
    }
    tags
}

fn push_tag(tags: &mut Vec<String>, tag: &str) {
    let tag = tag.trim();
    if !tag.is_empty() && tags.len() < MAX_TAGS && !tags.iter().any(|t| t == tag) {
        tags.push(tag.chars().take(MAX_TAG_LEN).collect());
    }
}

/// A rough token count for upstreams that report no usage: about four characters a token for
/// English text, never zero for non-empty text.
pub fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_header_are_trimmed_deduplicated_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-switchyard-tags",
            " support, faq ,support,,".parse().unwrap(),
        );
        assert_eq!(header_tags(&h), vec!["support", "faq"]);
        let mut many = Vec::new();
        for i in 0..100 {
            push_tag(&mut many, &format!("t{i}"));
        }
        assert_eq!(many.len(), MAX_TAGS);
    }

    #[test]
    fn token_estimate() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
    }
}
