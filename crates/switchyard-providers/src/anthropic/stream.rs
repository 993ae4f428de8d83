//! Anthropic's typed SSE events → OpenAI chunks, plus the event-loop driver shared with Gemini.

use std::collections::{HashMap, VecDeque};

use eventsource_stream::Event;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use switchyard_api::{ChatCompletionChunk, Delta, FunctionCallDelta, Role, ToolCallDelta, Usage};

use super::response::{arguments_string, finish_reason, AnthropicUsage, ResponseBlock};
use crate::http::parse_event;
use crate::{unix_now, ChunkStream, ProviderError};

/// Turns one upstream's SSE events into OpenAI chunks. Upstreams that are not OpenAI-shaped
/// need state across events (ids, tool indexes, usage), which this carries.
pub(crate) trait EventTranslator: Send + 'static {
    fn on_event(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError>;

    /// True once the upstream signalled a complete answer; the driver stops reading there.
    fn is_done(&self) -> bool;

    /// Called when the transport ends before `is_done`: the last chunks, or why the stream is
    /// incomplete.
    fn on_end(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError>;
}

struct Driver<T> {
    events: BoxStream<'static, Result<Event, ProviderError>>,
    translator: T,
    pending: VecDeque<Result<ChatCompletionChunk, ProviderError>>,
    finished: bool,
}

/// Feeds SSE events through `translator`. The stream ends after the first error, so callers never
/// see chunks from an answer that already failed.
pub(crate) fn translate_stream<T: EventTranslator>(
    events: impl Stream<Item = Result<Event, ProviderError>> + Send + 'static,
    translator: T,
) -> ChunkStream {
    let driver = Driver {
        events: events.boxed(),
        translator,
        pending: VecDeque::new(),
        finished: false,
    };
    futures::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(item) = d.pending.pop_front() {
                return Some((item, d));
            }
            if d.finished {
                return None;
            }
            let step = match d.events.next().await {
                Some(Ok(event)) => d.translator.on_event(&event),
                Some(Err(e)) => Err(e),
                None => {
                    d.finished = true;
                    d.translator.on_end()
                }
            };
            match step {
                Ok(chunks) => d.pending.extend(chunks.into_iter().map(Ok)),
                Err(e) => {
                    d.finished = true;
                    d.pending.push_back(Err(e));
                }
            }
            if d.translator.is_done() {
                d.finished = true;
            }
        }
    })
    .boxed()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop,
    Error {
        error: Value,
    },
    /// `ping`, `content_block_stop` and event types newer than this adapter.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    id: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking, signature and citation deltas have no OpenAI counterpart.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Per-stream state of an Anthropic answer.
pub(crate) struct AnthropicEvents {
    id: String,
    model: String,
    created: u64,
    started: bool,
    stopped: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// Content-block index → OpenAI tool-call index. Anthropic numbers all blocks (text and
    /// tools together); OpenAI numbers tool calls alone, from 0.
    tool_indexes: HashMap<u32, u32>,
}

impl AnthropicEvents {
    pub(crate) fn new(upstream_model: &str) -> Self {
        Self {
            id: String::new(),
            model: upstream_model.to_owned(),
            created: unix_now(),
            started: false,
            stopped: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            tool_indexes: HashMap::new(),
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk::new(&self.id, &self.model, self.created)
            .with_delta(delta, finish_reason)
    }

    fn tool_delta(&self, tool: ToolCallDelta) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                tool_calls: Some(vec![tool]),
                ..Default::default()
            },
            None,
        )
    }

    fn text_delta(&self, text: String) -> ChatCompletionChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Default::default()
            },
            None,
        )
    }

    fn translate(&mut self, event: StreamEvent) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if !self.started
            && !matches!(
                event,
                StreamEvent::MessageStart { .. } | StreamEvent::Error { .. } | StreamEvent::Other
            )
        {
            return Err(ProviderError::Malformed(
                "Anthropic stream did not begin with message_start".into(),
            ));
        }
        let chunks = match event {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                if let Some(model) = message.model {
                    self.model = model;
                }
                self.prompt_tokens = message.usage.prompt_tokens();
                self.completion_tokens = message.usage.output_tokens.unwrap_or(0);
                vec![self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                )]
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ResponseBlock::Text { text } if !text.is_empty() => vec![self.text_delta(text)],
                ResponseBlock::ToolUse { id, name, input } => {
                    let tool_index = self.tool_indexes.len() as u32;
                    self.tool_indexes.insert(index, tool_index);
                    // The opening block's input is `{}` and the real arguments follow as
                    // deltas; a non-empty input here is already complete.
                    let arguments = match &input {
                        Value::Object(o) if !o.is_empty() => arguments_string(&input),
                        _ => String::new(),
                    };
                    vec![self.tool_delta(ToolCallDelta {
                        index: tool_index,
                        id: Some(id),
                        kind: Some("function".to_owned()),
                        function: Some(FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(arguments),
                        }),
                    })]
                }
                _ => Vec::new(),
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => vec![self.text_delta(text)],
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    let tool_index = *self.tool_indexes.get(&index).ok_or_else(|| {
                        ProviderError::Malformed(format!(
                            "input_json_delta for block {index}, which is not a tool_use block"
                        ))
                    })?;
                    vec![self.tool_delta(ToolCallDelta {
                        index: tool_index,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(partial_json),
                        }),
                        ..Default::default()
                    })]
                }
                _ => Vec::new(),
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    // Output counts are cumulative. Newer API versions also restate input
                    // counts here; keep the larger so a partial restatement cannot shrink them.
                    if let Some(out) = usage.output_tokens {
                        self.completion_tokens = out;
                    }
                    self.prompt_tokens = self.prompt_tokens.max(usage.prompt_tokens());
                }
                match delta.stop_reason {
                    Some(reason) => {
                        vec![self.chunk(Delta::default(), Some(finish_reason(&reason)))]
                    }
                    None => Vec::new(),
                }
            }
            StreamEvent::MessageStop => {
                self.stopped = true;
                let mut last = ChatCompletionChunk::new(&self.id, &self.model, self.created);
                last.usage = Some(Usage::new(self.prompt_tokens, self.completion_tokens));
                vec![last]
            }
            StreamEvent::Error { error } => {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error event in Anthropic stream");
                return Err(ProviderError::StreamBroken(message.to_owned()));
            }
            StreamEvent::Other => Vec::new(),
        };
        Ok(chunks)
    }
}

impl EventTranslator for AnthropicEvents {
    fn on_event(&mut self, event: &Event) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: StreamEvent = parse_event(&event.data)?;
        self.translate(parsed)
    }

    fn is_done(&self) -> bool {
        self.stopped
    }

    fn on_end(&mut self) -> Result<Vec<ChatCompletionChunk>, ProviderError> {
        Err(ProviderError::StreamBroken(
            "Anthropic stream ended before message_stop".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feed(t: &mut AnthropicEvents, v: Value) -> Vec<ChatCompletionChunk> {
        let ev = Event {
            data: v.to_string(),
            ..Default::default()
        };
        t.on_event(&ev).unwrap()
    }

    #[test]
    fn tool_indexes_count_tools_only() {
        let mut t = AnthropicEvents::new("m");
        feed(
            &mut t,
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x",
            "usage": {"input_tokens": 7, "output_tokens": 1}}}),
        );
        feed(
            &mut t,
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        );
        let c = feed(
            &mut t,
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
        );
        let call = &c[0].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.index, 0);
        assert_eq!(
            call.function.as_ref().unwrap().arguments.as_deref(),
            Some("")
        );
        let c = feed(
            &mut t,
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
        );
        let call = &c[0].choices[0].delta.tool_calls.as_ref().unwrap()[0];
        assert_eq!((call.index, call.id.as_ref()), (0, None));
        assert!(feed(&mut t, json!({"type": "ping"})).is_empty());
        feed(
            &mut t,
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 12}}),
        );
        let last = feed(&mut t, json!({"type": "message_stop"}));
        assert!(t.is_done());
        assert!(last[0].choices.is_empty());
        assert_eq!(last[0].usage, Some(Usage::new(7, 12)));
        assert_eq!(last[0].model, "claude-x");
    }

    #[test]
    fn error_event_and_missing_start() {
        let mut t = AnthropicEvents::new("m");
        let ev = Event {
            data: json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "x"}})
            .to_string(),
            ..Default::default()
        };
        assert!(matches!(t.on_event(&ev), Err(ProviderError::Malformed(_))));
        let ev = Event {
            data: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
            ..Default::default()
        };
        match t.on_event(&ev) {
            Err(ProviderError::StreamBroken(m)) => assert_eq!(m, "Overloaded"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
