//! `POST /v1/chat/completions`: deterministic replies, tool calls, JSON mode and SSE streams.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{
    broken_body, encode_failed, estimate_tokens, invalid_json, json_response, paced_body,
    read_body, unix_now, Faults, MockState,
};

const TOOL_CALL_ID: &str = "call_mock_1";

/// Only the fields the mock acts on; borrowing from the body keeps parsing allocation-light.
#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<Message<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default, borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(default, borrow)]
    tool_choice: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response_format: Option<ResponseFormat<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<MessageToolCall<'a>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionCall<'a>>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    arguments: Cow<'a, str>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionName<'a>>,
}

#[derive(Deserialize)]
struct FunctionName<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct NamedToolChoice<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionName<'a>>,
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

impl Content<'_> {
    fn text_chars(&self) -> usize {
        match self {
            Content::Text(t) => t.chars().count(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .map(|t| t.chars().count())
                .sum(),
        }
    }

    /// Text parts joined by newlines, the way `switchyard_api::MessageContent::text` joins them.
    fn push_text(&self, out: &mut String) {
        match self {
            Content::Text(t) => out.push_str(t),
            Content::Parts(parts) => {
                for (i, text) in parts.iter().filter_map(|p| p.text.as_deref()).enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    out.push_str(text);
                }
            }
        }
    }
}

impl Message<'_> {
    fn chars(&self) -> usize {
        let content = self.content.as_ref().map_or(0, Content::text_chars);
        let calls: usize = self
            .tool_calls
            .iter()
            .flatten()
            .filter_map(|c| c.function.as_ref())
            .map(|f| f.name.chars().count() + f.arguments.chars().count())
            .sum();
        content + calls
    }
}

impl<'a> ChatRequest<'a> {
    fn reply_text(&self) -> String {
        let mut reply = String::from("mock reply: ");
        let last_user = self.messages.iter().rev().find(|m| m.role == "user");
        if let Some(content) = last_user.and_then(|m| m.content.as_ref()) {
            content.push_text(&mut reply);
        }
        reply
    }

    /// Scripted JSON-mode answers: lines `json: {...}` in the first user message are the
    /// replies of successive assistant turns (the last one repeats), so a test can make the
    /// first answer invalid and the repair turn's valid.
    fn scripted_json(&self) -> Option<String> {
        let mut first = String::new();
        self.messages
            .iter()
            .find(|m| m.role == "user")?
            .content
            .as_ref()?
            .push_text(&mut first);
        let lines: Vec<&str> = first
            .lines()
            .filter_map(|l| l.trim().strip_prefix("json:"))
            .map(str::trim)
            .collect();
        let turn = self
            .messages
            .iter()
            .filter(|m| m.role == "assistant")
            .count();
        lines.get(turn).or(lines.last()).map(|s| (*s).to_owned())
    }

    /// The tool to call, if the request offers tools and does not forbid calling them.
    fn tool_to_call(&self) -> Option<&str> {
        let tools = self.tools.as_deref()?;
        let choice = self.tool_choice.map(RawValue::get);
        if choice == Some("\"none\"") {
            return None;
        }
        // Honour a named choice so tests of forced tool calls see the tool they forced.
        let named = choice
            .filter(|c| c.starts_with('{'))
            .and_then(|c| serde_json::from_str::<NamedToolChoice>(c).ok())
            .and_then(|c| c.function)
            .map(|f| f.name);
        let mut functions = tools.iter().filter_map(|t| t.function.as_ref());
        let first = functions.clone().next();
        named
            .and_then(|name| functions.find(|f| f.name == name))
            .or(first)
            .map(|f| &*f.name)
    }

    fn json_mode(&self) -> bool {
        self.response_format
            .as_ref()
            .is_some_and(|f| f.kind == "json_object" || f.kind == "json_schema")
    }
}

/// What the assistant says: text, or a call to one tool with empty arguments.
enum Output<'a> {
    Text(String),
    ToolCall(&'a str),
}

impl Output<'_> {
    fn finish_reason(&self) -> &'static str {
        match self {
            Output::Text(_) => "stop",
            Output::ToolCall(_) => "tool_calls",
        }
    }

    fn completion_tokens(&self) -> u64 {
        match self {
            Output::Text(text) => text.split_whitespace().count() as u64,
            Output::ToolCall(_) => 1,
        }
    }
}

#[derive(Serialize, Clone, Copy)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [CompletionChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<serde_json::Value>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
    refusal: Option<()>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'static str,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

fn tool_call(name: &str, index: Option<u32>) -> [ToolCallOut<'_>; 1] {
    [ToolCallOut {
        index,
        id: TOOL_CALL_ID,
        kind: "function",
        function: FunctionOut {
            name,
            arguments: "{}",
        },
    }]
}

pub(crate) async fn handle(State(state): State<MockState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return invalid_json(&err),
    };
    let faults = Faults::for_request(&request.model, &parts.headers);
    let flaky_ordinal = state.record(&request.model, &body, faults.flaky.is_some());
    if let Some(response) = faults.intercept(flaky_ordinal).await {
        return response;
    }

    let output = match request.tool_to_call() {
        Some(name) => Output::ToolCall(name),
        None if request.json_mode() => match request.scripted_json() {
            Some(scripted) => Output::Text(scripted),
            None => {
                let reply = serde_json::Value::String(request.reply_text());
                Output::Text(format!("{{\"reply\": {reply}}}"))
            }
        },
        None => Output::Text(request.reply_text()),
    };
    let prompt_chars = request.messages.iter().map(Message::chars).sum();
    let prompt_tokens = estimate_tokens(prompt_chars);
    let completion_tokens = output.completion_tokens();
    let usage = (!faults.no_usage).then_some(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-mock-{}", state.next_id());
    let reply = Reply {
        id: &id,
        model: &request.model,
        created: unix_now(),
        output: &output,
        usage,
    };

    let result = if request.stream.unwrap_or(false) {
        let include_usage = request
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        reply.stream(&faults, include_usage)
    } else {
        reply.complete(&faults)
    };
    result.unwrap_or_else(|err| encode_failed(&err))
}

/// OpenAI's `logprobs.content`: one entry per word, each at probability `percent`.
fn logprobs(text: &str, percent: u8) -> serde_json::Value {
    let logprob = (f64::from(percent) / 100.0).ln();
    let content: Vec<serde_json::Value> = words(text)
        .map(|w| serde_json::json!({"token": w, "logprob": logprob, "bytes": null, "top_logprobs": []}))
        .collect();
    serde_json::json!({ "content": content })
}

struct Reply<'a> {
    id: &'a str,
    model: &'a str,
    created: u64,
    output: &'a Output<'a>,
    usage: Option<Usage>,
}

impl Reply<'_> {
    fn complete(&self, faults: &Faults) -> Result<Response, serde_json::Error> {
        if faults.malformed {
            let body = format!("{{\"id\": \"{}\", \"choices\": [{{\"message\": ", self.id);
            return Ok(json_response(StatusCode::OK, body));
        }
        let (content, tool_calls) = match self.output {
            Output::Text(text) => (Some(text.as_str()), None),
            Output::ToolCall(name) => (None, Some(tool_call(name, None))),
        };
        let completion = Completion {
            id: self.id,
            object: "chat.completion",
            created: self.created,
            model: self.model,
            choices: [CompletionChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content,
                    tool_calls,
                    refusal: None,
                },
                logprobs: faults
                    .confidence
                    .map(|p| logprobs(content.unwrap_or(""), p)),
                finish_reason: self.output.finish_reason(),
            }],
            usage: self.usage,
        };
        let body = serde_json::to_vec(&completion)?;
        if faults.broken_stream {
            let half = body.len() / 2;
            let truncated = Bytes::from(body).slice(..half);
            return Ok(ok_with(
                broken_body(vec![truncated], None),
                "application/json",
            ));
        }
        Ok(json_response(StatusCode::OK, body))
    }

    fn stream(&self, faults: &Faults, include_usage: bool) -> Result<Response, serde_json::Error> {
        let mut sse = SseWriter::default();
        sse.event(&self.chunk(
            Delta {
                role: Some("assistant"),
                content: Some(""),
                tool_calls: None,
            },
            None,
        ))?;
        if faults.malformed {
            sse.raw(
                b"data: {\"id\": \"chatcmpl-mock\", \"choices\": [{\"delta\": {\"content\": \"\n\n",
            );
        }
        match self.output {
            Output::Text(text) => {
                for word in words(text) {
                    sse.event(&self.chunk(
                        Delta {
                            content: Some(word),
                            ..Delta::default()
                        },
                        None,
                    ))?;
                }
            }
            Output::ToolCall(name) => sse.event(&self.chunk(
                Delta {
                    tool_calls: Some(tool_call(name, Some(0))),
                    ..Delta::default()
                },
                None,
            ))?,
        }
        // The role event plus two content events: enough for a client to have started relaying.
        let broken_after = sse.ends.len().min(3);
        sse.event(&self.chunk(Delta::default(), Some(self.output.finish_reason())))?;
        if let (true, Some(usage)) = (include_usage, self.usage) {
            sse.event(&Chunk {
                id: self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model,
                choices: &[],
                usage: Some(usage),
            })?;
        }
        sse.raw(b"data: [DONE]\n\n");

        let body = if faults.broken_stream {
            let mut frames = sse.frames();
            frames.truncate(broken_after);
            broken_body(frames, faults.chunk_delay)
        } else if faults.chunk_delay.is_some() {
            paced_body(sse.frames().into_iter().map(Ok), faults.chunk_delay)
        } else {
            // Without pacing the whole stream goes out in one write, the cheapest for benchmarks.
            Body::from(sse.buf)
        };
        let mut response = ok_with(body, "text/event-stream");
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(response)
    }

    fn chunk<'b>(
        &'b self,
        delta: Delta<'b>,
        finish_reason: Option<&'static str>,
    ) -> OneChoiceChunk<'b> {
        OneChoiceChunk {
            reply: self,
            choice: [ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
        }
    }
}

/// A chunk with its single choice stored inline, so it can be built and serialized in one go.
struct OneChoiceChunk<'a> {
    reply: &'a Reply<'a>,
    choice: [ChunkChoice<'a>; 1],
}

impl Serialize for OneChoiceChunk<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Chunk {
            id: self.reply.id,
            object: "chat.completion.chunk",
            created: self.reply.created,
            model: self.reply.model,
            choices: &self.choice,
            usage: None,
        }
        .serialize(serializer)
    }
}

fn ok_with(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Splits text into words that keep their trailing whitespace, so the pieces concatenate back
/// to the original and there is one piece per whitespace-separated word.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text.trim_start();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let next = rest[word_end..]
            .find(|c: char| !c.is_whitespace())
            .map_or(rest.len(), |i| word_end + i);
        let (word, tail) = rest.split_at(next);
        rest = tail;
        Some(word)
    })
}

/// SSE events written back to back into one buffer, remembering where each ends so the stream
/// can be paced or cut without re-encoding.
#[derive(Default)]
struct SseWriter {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl SseWriter {
    fn event<T: Serialize>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        self.buf.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut self.buf, value)?;
        self.buf.extend_from_slice(b"\n\n");
        self.ends.push(self.buf.len());
        Ok(())
    }

    fn raw(&mut self, event: &[u8]) {
        self.buf.extend_from_slice(event);
        self.ends.push(self.buf.len());
    }

    fn frames(self) -> Vec<Bytes> {
        let all = Bytes::from(self.buf);
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let frame = all.slice(start..end);
                start = end;
                frame
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn words_keep_their_trailing_space() {
        let pieces: Vec<_> = words("mock reply: hello  big\nworld").collect();
        assert_eq!(pieces, ["mock ", "reply: ", "hello  ", "big\n", "world"]);
        assert_eq!(
            words("mock reply: ").collect::<Vec<_>>(),
            ["mock ", "reply: "]
        );
        assert_eq!(words("").count(), 0);
    }
}
