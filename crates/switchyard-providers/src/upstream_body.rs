//! The body an OpenAI-compatible upstream receives: the client's request with the upstream model
//! id, without gateway-only fields, and with usage requested on streams so cost can always be
//! attributed.
//!
//! It borrows the client's request instead of cloning it: a clone copied every message (a 32 KiB
//! prompt twice per attempt) only to change three fields before serializing.

use serde::Serialize;
use serde_json::{Map, Value};
use switchyard_api::{ChatCompletionRequest, ChatMessage, Stop, StreamOptions, Tool};

#[derive(Serialize)]
pub(crate) struct UpstreamChatBody<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsWithUsage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    // `metadata` holds the gateway's own tags: never forwarded.
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

/// The client's stream options with `include_usage` forced on.
#[derive(Serialize)]
struct StreamOptionsWithUsage<'a> {
    include_usage: bool,
    #[serde(flatten)]
    extra: Option<&'a Map<String, Value>>,
}

impl<'a> UpstreamChatBody<'a> {
    pub(crate) fn new(
        req: &'a ChatCompletionRequest,
        upstream_model: &'a str,
        stream: bool,
    ) -> Self {
        // Destructured so that a field added to the request fails to compile here until it is
        // decided whether the upstream gets it.
        let ChatCompletionRequest {
            model: _,
            messages,
            stream: _,
            stream_options,
            temperature,
            top_p,
            max_tokens,
            max_completion_tokens,
            n,
            stop,
            presence_penalty,
            frequency_penalty,
            seed,
            user,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            logprobs,
            top_logprobs,
            metadata: _,
            extra,
        } = req;
        let stream_options = stream.then(|| StreamOptionsWithUsage {
            include_usage: true,
            extra: stream_options.as_ref().map(|o: &StreamOptions| &o.extra),
        });
        UpstreamChatBody {
            model: upstream_model,
            messages,
            stream: stream.then_some(true),
            stream_options,
            temperature: *temperature,
            top_p: *top_p,
            max_tokens: *max_tokens,
            max_completion_tokens: *max_completion_tokens,
            n: *n,
            stop: stop.as_ref(),
            presence_penalty: *presence_penalty,
            frequency_penalty: *frequency_penalty,
            seed: *seed,
            user: user.as_deref(),
            tools: tools.as_deref(),
            tool_choice: tool_choice.as_ref(),
            parallel_tool_calls: *parallel_tool_calls,
            response_format: response_format.as_ref(),
            logprobs: *logprobs,
            top_logprobs: *top_logprobs,
            extra,
        }
    }

    /// What the serialized body is expected to weigh: dominated by the messages' text.
    pub(crate) fn json_size_hint(&self) -> usize {
        let text = self.messages.iter().map(ChatMessage::text_len).sum();
        switchyard_api::json_size_hint(text, self.messages.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the upstream body was defined as before it borrowed: a modified clone.
    fn modified_clone(req: &ChatCompletionRequest, model: &str, stream: bool) -> Value {
        let mut body = req.clone();
        body.model = model.to_owned();
        body.metadata = None;
        if stream {
            body.stream = Some(true);
            body.stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        } else {
            body.stream = None;
            body.stream_options = None;
        }
        serde_json::to_value(body).unwrap()
    }

    #[test]
    fn matches_a_modified_clone_of_every_field() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "alias",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": false, "vendor_flag": 1},
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 12,
            "n": 1, "stop": ["\n"], "presence_penalty": 0.1, "frequency_penalty": 0.3,
            "seed": 7, "user": "u1",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "auto", "parallel_tool_calls": false,
            "response_format": {"type": "json_object"}, "logprobs": true, "top_logprobs": 2,
            "metadata": {"team": "search"},
            "reasoning_effort": "low"
        }))
        .unwrap();
        for stream in [true, false] {
            let borrowed =
                serde_json::to_value(UpstreamChatBody::new(&req, "gpt-4o-mini", stream)).unwrap();
            assert_eq!(
                borrowed,
                modified_clone(&req, "gpt-4o-mini", stream),
                "stream={stream}"
            );
        }
        let body = serde_json::to_value(UpstreamChatBody::new(&req, "up", true)).unwrap();
        assert_eq!(body["model"], "up");
        assert_eq!(
            body["stream_options"],
            json!({"include_usage": true, "vendor_flag": 1})
        );
        assert_eq!(body["reasoning_effort"], "low");
        assert!(body.get("metadata").is_none());
    }

    #[test]
    fn minimal_request_gets_usage_only_when_streaming() {
        let req: ChatCompletionRequest = serde_json::from_value(
            json!({"model": "a", "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        let plain = serde_json::to_value(UpstreamChatBody::new(&req, "b", false)).unwrap();
        assert_eq!(
            plain,
            json!({"model": "b", "messages": [{"role": "user", "content": "x"}]})
        );
        let streamed = serde_json::to_value(UpstreamChatBody::new(&req, "b", true)).unwrap();
        assert_eq!(streamed["stream"], true);
        assert_eq!(streamed["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn size_hint_holds_the_serialized_body_without_regrowing() {
        // A long document with the line breaks and quotes JSON escapes, as in a pasted prompt.
        let document = "Line with \"quotes\" and a tab\tthen more text.\n".repeat(700);
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "a",
            "messages": [
                {"role": "system", "content": document},
                {"role": "user", "content": "Summarize the document above."}
            ],
            "max_tokens": 64, "temperature": 0
        }))
        .unwrap();
        for stream in [false, true] {
            let body = UpstreamChatBody::new(&req, "gpt-4o-mini", stream);
            let len = serde_json::to_vec(&body).unwrap().len();
            let hint = body.json_size_hint();
            assert!(len > 30_000, "{len}");
            assert!(hint >= len, "stream={stream}: hint {hint} < {len} bytes");
            // An estimate, not a blanket over-allocation.
            assert!(
                hint < len + len / 4,
                "stream={stream}: hint {hint} for {len} bytes"
            );
        }
    }
}
