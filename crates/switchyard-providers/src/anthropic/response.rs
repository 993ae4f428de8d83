//! Anthropic Messages response → OpenAI chat completion.

use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_api::{
    ChatCompletionResponse, ChatMessage, Choice, FunctionCall, MessageContent, Role, ToolCall,
    Usage,
};

use crate::unix_now;

#[derive(Debug, Deserialize)]
pub(crate) struct MessagesResponse {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A content block of a response, or the opening of one in a stream.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResponseBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tool results and block types newer than this adapter: none of them has
    /// an OpenAI counterpart, so they are skipped rather than failing the whole response.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct AnthropicUsage {
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Anthropic counts cached prompt tokens apart from `input_tokens`; OpenAI's `prompt_tokens`
    /// includes them, and cost attribution needs every prompt token.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        self.input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0)
    }
}

pub(crate) fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer: the model stopped by itself.
        _ => "stop",
    }
    .to_owned()
}

/// Tool input as OpenAI's JSON-string arguments; a missing input means "no arguments".
pub(crate) fn arguments_string(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        v => v.to_string(),
    }
}

pub(crate) fn to_openai(resp: MessagesResponse) -> ChatCompletionResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in resp.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments_string(&input),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    // OpenAI sends `content: null` on a pure tool-call turn; some clients rely on it.
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(MessageContent::Text(text))
    };
    let message = ChatMessage {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
        extra: Map::new(),
    };
    ChatCompletionResponse {
        id: resp.id,
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: resp.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
        }],
        usage: Some(Usage::new(
            resp.usage.prompt_tokens(),
            resp.usage.output_tokens.unwrap_or(0),
        )),
        system_fingerprint: None,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mixed_blocks_and_cache_usage() {
        let resp: MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5,
                      "cache_creation_input_tokens": null, "cache_read_input_tokens": 90}
        }))
        .unwrap();
        let out = to_openai(resp);
        let choice = &out.choices[0];
        assert_eq!(choice.message.text(), "Let me check.");
        let calls = choice.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].function.arguments, r#"{"a":1}"#);
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(out.usage, Some(Usage::new(100, 5)));
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("refusal"), "content_filter");
    }
}
