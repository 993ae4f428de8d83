//! What makes two chat requests the same request.
//!
//! The exact key covers everything that changes the answer — model, the whole conversation,
//! sampling parameters, tools, response format, and unknown fields forwarded upstream — and
//! nothing that does not (`stream`, `stream_options`, `user`, `metadata`). Message text is
//! whitespace-normalized, so trailing newlines and double spaces do not split the cache.
//! The tenant is part of the key: one tenant can never read another's entry.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use switchyard_api::{ChatCompletionRequest, ChatMessage, MessageContent, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[derive(Serialize)]
struct Normalized<'a> {
    tenant: &'a str,
    model: &'a str,
    messages: Vec<NormalizedMessage<'a>>,
    params: Params<'a>,
}

#[derive(Serialize)]
struct NormalizedMessage<'a> {
    role: Role,
    text: String,
    name: Option<&'a str>,
    tool_call_id: Option<&'a str>,
    /// Tool calls and non-text parts (images, audio, files): they change the answer too.
    attachments: Option<Value>,
}

/// The request fields, other than the conversation, that change the answer.
#[derive(Serialize)]
struct Params<'a> {
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
    n: Option<u32>,
    stop: Option<Vec<String>>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    seed: Option<i64>,
    tools: Option<Value>,
    tool_choice: Option<&'a Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<&'a Value>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    extra: &'a Map<String, Value>,
}

/// Collapses runs of whitespace and trims, so formatting noise does not split the cache.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn normalize_message(m: &ChatMessage) -> NormalizedMessage<'_> {
    let calls = m
        .tool_calls
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok());
    let parts: Vec<Value> = match &m.content {
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter(|p| p.text.is_none())
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect(),
        _ => Vec::new(),
    };
    let attachments = (calls.is_some() || !parts.is_empty())
        .then(|| serde_json::json!({ "calls": calls, "parts": parts }));
    NormalizedMessage {
        role: m.role,
        text: normalize_text(&m.text()),
        name: m.name.as_deref(),
        tool_call_id: m.tool_call_id.as_deref(),
        attachments,
    }
}

/// The exact-cache key of a chat request, scoped by tenant.
pub fn exact_key(tenant: &str, req: &ChatCompletionRequest) -> CacheKey {
    key_with_messages(tenant, req, &req.messages)
}

/// The key of `req` as if its conversation were `messages`: the semantic layer keys a request's
/// context (its conversation minus the question) without copying the request.
fn key_with_messages(
    tenant: &str,
    req: &ChatCompletionRequest,
    messages: &[ChatMessage],
) -> CacheKey {
    let normalized = Normalized {
        tenant,
        model: &req.model,
        messages: messages.iter().map(normalize_message).collect(),
        params: Params {
            temperature: req.temperature,
            top_p: req.top_p,
            max_tokens: req.max_output_tokens(),
            n: req.n,
            stop: req.stop.as_ref().map(|s| s.to_vec()),
            presence_penalty: req.presence_penalty,
            frequency_penalty: req.frequency_penalty,
            seed: req.seed,
            tools: req
                .tools
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
            tool_choice: req.tool_choice.as_ref(),
            parallel_tool_calls: req.parallel_tool_calls,
            response_format: req.response_format.as_ref(),
            logprobs: req.logprobs,
            top_logprobs: req.top_logprobs,
            extra: &req.extra,
        },
    };
    // Serializing plain data into a Vec cannot fail; an empty key would still be tenant-blind,
    // so fall back to hashing the debug form rather than to a constant.
    let bytes = serde_json::to_vec(&normalized)
        .unwrap_or_else(|_| format!("{tenant}\u{0}{req:?}").into_bytes());
    CacheKey(Sha256::digest(&bytes).into())
}

/// The semantic layer's split of a request: the conversation context that must match exactly
/// (everything but the last user message, plus every parameter), and the last user message,
/// which is compared by meaning. A follow-up like "cancel it" only ever matches within the same
/// preceding conversation.
pub fn semantic_parts(tenant: &str, req: &ChatCompletionRequest) -> Option<(CacheKey, String)> {
    let last = req.messages.iter().rposition(|m| m.role == Role::User)?;
    if last + 1 != req.messages.len() {
        return None;
    }
    let question = normalize_text(&req.messages[last].text());
    Some((
        key_with_messages(tenant, req, &req.messages[..last]),
        question,
    ))
}

/// Requests that ask for randomness are not cached by default: a second call is expected to
/// give a different answer. Greedy or seeded requests, and requests that leave the temperature
/// to the model's default, are.
pub fn is_deterministic(req: &ChatCompletionRequest) -> bool {
    req.n.unwrap_or(1) <= 1 && (req.seed.is_some() || req.temperature.is_none_or(|t| t == 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> ChatCompletionRequest {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({"model": "m", "messages": [{"role": "user", "content": "What is  the capital of France?\n"}]})
    }

    #[test]
    fn formatting_and_delivery_fields_do_not_change_the_key() {
        let a = exact_key("t", &req(base()));
        let mut v = base();
        v["messages"][0]["content"] = json!("What is the capital of France?");
        v["stream"] = json!(true);
        v["user"] = json!("u-1");
        v["metadata"] = json!({"tags": ["x"]});
        assert_eq!(a, exact_key("t", &req(v)));
    }

    #[test]
    fn tenant_model_params_and_context_change_the_key() {
        let a = exact_key("t", &req(base()));
        assert_ne!(a, exact_key("other", &req(base())));
        for (field, value) in [
            ("model", json!("m2")),
            ("temperature", json!(0.5)),
            ("max_tokens", json!(10)),
            ("response_format", json!({"type": "json_object"})),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("logit_bias", json!({"1": 2})),
        ] {
            let mut v = base();
            v[field] = value;
            assert_ne!(a, exact_key("t", &req(v)), "{field}");
        }
        let mut v = base();
        v["messages"] = json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is the capital of France?"}]);
        assert_ne!(a, exact_key("t", &req(v)));
    }

    #[test]
    fn images_are_part_of_the_key() {
        let with = |url: &str| {
            req(
                json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}}]}]}),
            )
        };
        assert_ne!(
            exact_key("t", &with("http://a/1.png")),
            exact_key("t", &with("http://a/2.png"))
        );
    }

    #[test]
    fn semantic_parts_split_context_from_the_question() {
        let a = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "Book a table"}, {"role": "assistant", "content": "Done"},
            {"role": "user", "content": "cancel it"}]}));
        let b = req(json!({"model": "m", "messages": [
            {"role": "user", "content": "Order a taxi"}, {"role": "assistant", "content": "Done"},
            {"role": "user", "content": "cancel  it"}]}));
        let (ca, qa) = semantic_parts("t", &a).unwrap();
        let (cb, qb) = semantic_parts("t", &b).unwrap();
        assert_eq!(qa, qb);
        assert_ne!(
            ca, cb,
            "the same words after different conversations are different questions"
        );
        let tail = req(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        );
        assert!(semantic_parts("t", &tail).is_none());
    }

    #[test]
    fn randomness_is_not_cached_by_default() {
        assert!(is_deterministic(&req(base())));
        let mut v = base();
        v["temperature"] = json!(0);
        assert!(is_deterministic(&req(v.clone())));
        v["temperature"] = json!(0.9);
        assert!(!is_deterministic(&req(v.clone())));
        v["seed"] = json!(7);
        assert!(is_deterministic(&req(v.clone())));
        v["n"] = json!(3);
        assert!(!is_deterministic(&req(v)));
    }
}
