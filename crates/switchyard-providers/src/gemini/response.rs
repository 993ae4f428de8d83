//! Gemini `GenerateContentResponse` → OpenAI chat completion. Stream events share these types.

use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_api::{
    ChatCompletionResponse, ChatMessage, Choice, FunctionCall, MessageContent, Role, ToolCall,
    Usage,
};

use super::request::{Part, SIGNATURE_SEPARATOR};
use crate::{unix_now, ProviderError};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(crate) model_version: Option<String>,
    #[serde(default)]
    pub(crate) response_id: Option<String>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    /// Only inside streams: an upstream failure after the 200 status was sent.
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<CandidateContent>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
    #[serde(default)]
    pub(crate) index: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CandidateContent {
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens are billed as output but reported apart from `candidatesTokenCount`.
    pub(crate) fn to_usage(self) -> Usage {
        let prompt = self.prompt_token_count.unwrap_or(0);
        let completion =
            self.candidates_token_count.unwrap_or(0) + self.thoughts_token_count.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self.total_token_count.unwrap_or(prompt + completion),
            prompt_tokens_details: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
}

impl GenerateContentResponse {
    /// Set when Gemini refused the prompt itself; there are no candidates then.
    pub(crate) fn prompt_blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }

    pub(crate) fn error_message(&self) -> Option<String> {
        self.error.as_ref().map(|e| {
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("error event in Gemini stream")
                .to_owned()
        })
    }
}

pub(crate) fn finish_reason(reason: Option<&str>, has_calls: bool) -> Option<String> {
    let reason = match reason? {
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        "MAX_TOKENS" => "length",
        // Gemini reports STOP after a function call; OpenAI clients look for tool_calls.
        _ if has_calls => "tool_calls",
        _ => "stop",
    };
    Some(reason.to_owned())
}

/// Text and function calls of one candidate's parts. Thought summaries are not answer text.
/// `next_call` numbers the generated call ids across a whole response or stream.
pub(crate) fn collect_parts(parts: Vec<Part>, next_call: &mut u32) -> (String, Vec<ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in parts {
        if part.thought == Some(true) {
            continue;
        }
        if let Some(t) = part.text {
            text.push_str(&t);
        }
        if let Some(call) = part.function_call {
            let mut id = call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{next_call}"));
            *next_call += 1;
            if let Some(signature) = part.thought_signature {
                id = format!("{id}{SIGNATURE_SEPARATOR}{signature}");
            }
            let arguments = match call.args {
                Value::Null => "{}".to_owned(),
                args => args.to_string(),
            };
            calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: call.name,
                    arguments,
                },
            });
        }
    }
    (text, calls)
}

/// Gemini sends a `responseId` nowadays; older deployments did not, and ids must not be empty.
pub(crate) fn response_id(response_id: Option<String>) -> String {
    response_id.filter(|id| !id.is_empty()).unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("chatcmpl-gemini-{nanos:x}")
    })
}

pub(crate) fn to_openai(
    resp: GenerateContentResponse,
    upstream_model: &str,
) -> Result<ChatCompletionResponse, ProviderError> {
    let blocked = resp.prompt_blocked();
    if resp.candidates.is_empty() && !blocked {
        return Err(ProviderError::Malformed(
            "Gemini response has neither candidates nor a block reason".into(),
        ));
    }
    let mut next_call = 0;
    let mut choices: Vec<Choice> = resp
        .candidates
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let parts = c.content.map(|c| c.parts).unwrap_or_default();
            let (text, calls) = collect_parts(parts, &mut next_call);
            let finish = finish_reason(c.finish_reason.as_deref(), !calls.is_empty());
            Choice {
                index: c.index.unwrap_or(i as u32),
                message: assistant_message(text, calls),
                finish_reason: finish,
                logprobs: None,
            }
        })
        .collect();
    if blocked {
        choices.push(Choice {
            index: 0,
            message: assistant_message(String::new(), Vec::new()),
            finish_reason: Some("content_filter".to_owned()),
            logprobs: None,
        });
    }
    Ok(ChatCompletionResponse {
        id: response_id(resp.response_id),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: resp
            .model_version
            .unwrap_or_else(|| upstream_model.to_owned()),
        choices,
        usage: resp.usage_metadata.map(UsageMetadata::to_usage),
        system_fingerprint: None,
        extra: Map::new(),
    })
}

fn assistant_message(text: String, calls: Vec<ToolCall>) -> ChatMessage {
    // OpenAI sends `content: null` on a pure tool-call turn; some clients rely on it.
    let content = if text.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(MessageContent::Text(text))
    };
    ChatMessage {
        role: Role::Assistant,
        content,
        name: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> GenerateContentResponse {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("STOP"), false).as_deref(), Some("stop"));
        assert_eq!(
            finish_reason(Some("STOP"), true).as_deref(),
            Some("tool_calls")
        );
        assert_eq!(
            finish_reason(Some("MAX_TOKENS"), false).as_deref(),
            Some("length")
        );
        assert_eq!(
            finish_reason(Some("RECITATION"), false).as_deref(),
            Some("content_filter")
        );
        assert_eq!(finish_reason(None, true), None);
    }

    #[test]
    fn blocked_prompt_is_a_content_filter_choice() {
        let out = to_openai(
            parse(json!({"promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}})),
            "gemini-x",
        )
        .unwrap();
        assert_eq!(
            out.choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert_eq!(out.model, "gemini-x");
        assert!(to_openai(parse(json!({})), "gemini-x").is_err());
    }

    #[test]
    fn thoughts_are_skipped_and_counted_as_output() {
        let out = to_openai(
            parse(json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"text": "pondering", "thought": true},
                    {"text": "42"}
                ]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1,
                    "thoughtsTokenCount": 20, "totalTokenCount": 26}
            })),
            "gemini-x",
        )
        .unwrap();
        assert_eq!(out.first_text(), "42");
        let usage = out.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (5, 21, 26)
        );
    }

    #[test]
    fn signed_function_calls_carry_the_signature_in_the_id() {
        let mut n = 0;
        let parts = serde_json::from_value(json!([
            {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "b"}}
        ]))
        .unwrap();
        let (_, calls) = collect_parts(parts, &mut n);
        assert_eq!(calls[0].id, "call_0__thought__c2ln");
        assert_eq!(calls[1].id, "call_1");
        assert_eq!(calls[1].function.arguments, "{}");
        assert_eq!(n, 2);
    }
}
