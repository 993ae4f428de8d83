//! `streamGenerateContent?alt=sse` events → OpenAI chunks.
//!
//! Every event is a whole `GenerateContentResponse` holding the next slice of each candidate.
//! There is no terminal event: the stream is complete when every candidate has reported a
//! `finishReason` and the connection closes.

use std::collections::{BTreeMap, HashMap};

use eventsource_stream::Event;
use switchyard_api::{
    ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, Role, ToolCallDelta, Usage,
};

use super::response::{collect_parts, finish_reason, response_id, GenerateContentResponse};
use crate::anthropic::stream::EventTranslator;
use crate::http::parse_event;
use crate::{unix_now, ProviderError};

#[derive(Default)]
struct ChoiceState {
    role_sent: bool,
    tool_calls: u32,
    finished: bool,
}

pub(crate) struct GeminiEvents {
    id: Option<String>,
    model: String,
    created: u64,
    choices: HashMap<u32, ChoiceState>,
    /// Numbers generated call ids across the stream, as `collect_parts` does for one response.
    next_call: u32,
    usage: Option<Usage>,
}

impl GeminiEvents {
    pub(crate) fn new(upstream_model: &str) -> Self {
        Self {
            id: None,
            model: upstream_model.to_owned(),
            created: unix_now(),
            choices: HashMap::new(),
            next_call: 0,
            usage: None,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatCompletionChunk {
        let mut chunk = ChatCompletionChunk::new(
            self.id.as_deref().unwrap_or_default(),
            &self.model,
            self.created,
        );
        chunk.choices = choices;
        chunk
    }

    fn translate(
        &mut self,
        resp: GenerateContentResponse,
    ) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if let Some(message) = resp.error_message() {
            return Err(ProviderError::StreamBroken(message));
        }
        if self.id.is_none() {
            self.id = Some(response_id(resp.response_id.clone()));
        }
        if let Some(model) = &resp.model_version {
            self.model.clone_from(model);
        }
        if let Some(usage) = resp.usage_metadata {
            // Counts are cumulative; the last report is the total.
            self.usage = Some(usage.to_usage());
        }
        if resp.prompt_blocked() {
            let state = self.choices.entry(0).or_default();
            state.finished = true;
            let delta = Delta {
                role: (!state.role_sent).then_some(Role::Assistant),
                ..Default::default()
            };
            state.role_sent = true;
            let choice = ChunkChoice {
                index: 0,
                delta,
                finish_reason: Some("content_filter".to_owned()),
                logprobs: None,
            };
            return Ok(vec![self.chunk(vec![choice])]);
        }
        // Ordered so a multi-candidate chunk lists its choices deterministically.
        let mut choices = BTreeMap::new();
        for (i, candidate) in resp.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(i as u32);
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            let (text, calls) = collect_parts(parts, &mut self.next_call);
            let state = self.choices.entry(index).or_default();
            let first = !state.role_sent;
            state.role_sent = true;
            let tool_calls: Vec<ToolCallDelta> = calls
                .into_iter()
                .map(|call| {
                    let delta = ToolCallDelta {
                        index: state.tool_calls,
                        id: Some(call.id),
                        kind: Some(call.kind),
                        function: Some(FunctionCallDelta {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                        }),
                    };
                    state.tool_calls += 1;
                    delta
                })
                .collect();
            let finish = finish_reason(candidate.finish_reason.as_deref(), state.tool_calls > 0);
            if finish.is_some() {
                state.finished = true;
            }
            if !first && text.is_empty() && tool_calls.is_empty() && finish.is_none() {
                continue;
            }
            let delta = Delta {
                role: first.then_some(Role::Assistant),
                content: (first || !text.is_empty()).then_some(text),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..Default::default()
            };
            choices.insert(
                index,
                ChunkChoice {
                    index,
                    delta,
                    finish_reason: finish,
                    logprobs: None,
                },
            );
        }
        if choices.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![self.chunk(choices.into_values().collect())])
    }
}

impl EventTranslator for GeminiEvents {
    fn on_event(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let resp: GenerateContentResponse = parse_event(&event.data)?;
        self.translate(resp)
    }

    /// Gemini has no terminal event, so completion is only judged at end of stream.
    fn is_done(&self) -> bool {
        false
    }

    fn on_end(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        let complete = !self.choices.is_empty() && self.choices.values().all(|c| c.finished);
        if !complete {
            return Err(ProviderError::StreamBroken(
                "Gemini stream ended before a finishReason".into(),
            ));
        }
        Ok(self
            .usage
            .map(|usage| {
                let mut last = self.chunk(Vec::new());
                last.usage = Some(usage);
                last
            })
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn feed(t: &mut GeminiEvents, v: Value) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        t.on_event(&Event {
            data: v.to_string(),
            ..Default::default()
        })
    }

    #[test]
    fn function_call_stream_numbers_tools_and_ends_with_usage() {
        let mut t = GeminiEvents::new("gemini-x");
        let c = feed(
            &mut t,
            json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "a", "args": {"x": 1}}},
            {"functionCall": {"name": "b", "args": {}}}
        ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3,
            "candidatesTokenCount": 4, "totalTokenCount": 7}, "responseId": "r1"}),
        )
        .unwrap();
        let choice = &c[0].choices[0];
        assert_eq!(choice.delta.role, Some(Role::Assistant));
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        let calls = choice.delta.tool_calls.as_ref().unwrap();
        assert_eq!((calls[0].index, calls[1].index), (0, 1));
        assert_eq!(calls[1].id.as_deref(), Some("call_1"));
        assert_eq!(c[0].id, "r1");
        let end = t.on_end().unwrap();
        assert_eq!(end[0].usage, Some(Usage::new(3, 4)));
        assert!(end[0].choices.is_empty());
    }

    #[test]
    fn errors_and_truncation() {
        let mut t = GeminiEvents::new("gemini-x");
        feed(
            &mut t,
            json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}),
        )
        .unwrap();
        assert!(matches!(t.on_end(), Err(ProviderError::StreamBroken(_))));
        let err = feed(
            &mut t,
            json!({"error": {"code": 503, "message": "overloaded"}}),
        );
        assert!(matches!(err, Err(ProviderError::StreamBroken(m)) if m == "overloaded"));
    }

    #[test]
    fn blocked_prompt_finishes_the_stream() {
        let mut t = GeminiEvents::new("gemini-x");
        let c = feed(
            &mut t,
            json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}),
        )
        .unwrap();
        assert_eq!(
            c[0].choices[0].finish_reason.as_deref(),
            Some("content_filter")
        );
        assert!(t.on_end().unwrap().is_empty());
    }
}
