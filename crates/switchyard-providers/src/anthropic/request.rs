//! OpenAI chat request → Anthropic Messages request.

use serde::Serialize;
use serde_json::{json, Map, Value};
use switchyard_api::{ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, Role, Tool};

use crate::ProviderError;

/// The body of `POST /v1/messages`. Built by [`messages_body`]; serialize it to inspect it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessagesRequest {
    model: String,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolDefinition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Message {
    role: &'static str,
    content: Vec<Block>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ToolResultContent>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Metadata {
    user_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct ToolDefinition {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

/// Translates an OpenAI chat request into the Messages API body for `upstream_model`.
///
/// `default_max_tokens` fills Anthropic's mandatory `max_tokens` when the client set no cap.
/// Parameters Anthropic has no equivalent for (`seed`, penalties, `logprobs`,
/// `response_format`) are dropped rather than rejected: they tune output, they do not change
/// what the caller asked for.
pub fn messages_body(
    req: &ChatCompletionRequest,
    upstream_model: &str,
    default_max_tokens: u32,
    stream: bool,
) -> Result<MessagesRequest, ProviderError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(ProviderError::InvalidRequest(
            "Anthropic returns a single choice per request; n > 1 is not supported".into(),
        ));
    }
    let (system, messages) = translate_messages(&req.messages)?;
    let tools = translate_tools(req.tools.as_deref())?;
    let tool_choice = match tools {
        Some(_) => translate_tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)?,
        // Anthropic rejects a tool_choice without tools; OpenAI clients sometimes send one.
        None => None,
    };
    Ok(MessagesRequest {
        model: upstream_model.to_owned(),
        max_tokens: req.max_output_tokens().unwrap_or(default_max_tokens),
        system,
        messages,
        // OpenAI accepts up to 2.0, Anthropic only up to 1.0 and answers 400 above it; clamping
        // keeps the request servable with the closest setting.
        temperature: req.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: req.top_p,
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|v| !v.is_empty()),
        metadata: req.user.clone().map(|user_id| Metadata { user_id }),
        stream: stream.then_some(true),
        tools,
        tool_choice,
    })
}

fn translate_messages(
    messages: &[ChatMessage],
) -> Result<(Option<String>, Vec<Message>), ProviderError> {
    let mut system = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    for msg in messages {
        let (role, blocks) = match msg.role {
            Role::System | Role::Developer => {
                let text = msg.text();
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => ("user", content_blocks(msg.content.as_ref())?),
            Role::Assistant => ("assistant", assistant_blocks(msg)?),
            Role::Tool => ("user", vec![tool_result(msg)?]),
            Role::Function => {
                return Err(ProviderError::InvalidRequest(
                    "the deprecated `function` role is not supported; send `tool` messages".into(),
                ))
            }
        };
        // Anthropic rejects empty turns, so messages that carried nothing translatable vanish.
        if blocks.is_empty() {
            continue;
        }
        // Anthropic requires strict alternation; OpenAI allows runs of one role (several tool
        // results in a row, or a user message after tool results), which become one turn.
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => out.push(Message {
                role,
                content: blocks,
            }),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    Ok((system, out))
}

fn content_blocks(content: Option<&MessageContent>) -> Result<Vec<Block>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        // Anthropic rejects empty text blocks, which OpenAI clients send freely.
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![Block::Text {
            text: t.clone(),
            cache_control: None,
        }]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| part_block(p).transpose())
            .collect(),
    }
}

fn part_block(part: &ContentPart) -> Result<Option<Block>, ProviderError> {
    // Clients that know Anthropic put prompt-caching marks on parts; honour them.
    let cache_control = part.extra.get("cache_control").cloned();
    let text = |t: Option<&str>| {
        t.filter(|t| !t.is_empty()).map(|t| Block::Text {
            text: t.to_owned(),
            cache_control: cache_control.clone(),
        })
    };
    match part.kind.as_str() {
        "text" => Ok(text(part.text.as_deref())),
        // Assistant history may carry a refusal part; its text is still the turn's content.
        "refusal" => Ok(text(part.extra.get("refusal").and_then(Value::as_str))),
        "image_url" => {
            let url = part.image_url.as_ref().ok_or_else(|| {
                ProviderError::InvalidRequest("image_url content part without a url".into())
            })?;
            Ok(Some(Block::Image {
                source: image_source(&url.url)?,
                cache_control,
            }))
        }
        other => Err(ProviderError::InvalidRequest(format!(
            "content part type `{other}` is not supported by Anthropic"
        ))),
    }
}

fn image_source(url: &str) -> Result<ImageSource, ProviderError> {
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url)?;
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(ProviderError::InvalidRequest(
        "image urls must be http(s) URLs or base64 data URLs".into(),
    ))
}

/// Splits `data:<mime>;base64,<data>` into its media type and payload.
pub(crate) fn parse_data_url(url: &str) -> Result<(&str, &str), ProviderError> {
    let bad = || {
        ProviderError::InvalidRequest(
            "data URLs must have the form data:<media type>;base64,<data>".into(),
        )
    };
    let rest = url.strip_prefix("data:").ok_or_else(bad)?;
    let (header, data) = rest.split_once(',').ok_or_else(bad)?;
    let media_type = header.strip_suffix(";base64").ok_or_else(bad)?;
    if media_type.is_empty() || data.is_empty() {
        return Err(bad());
    }
    Ok((media_type, data))
}

fn assistant_blocks(msg: &ChatMessage) -> Result<Vec<Block>, ProviderError> {
    let mut blocks = content_blocks(msg.content.as_ref())?;
    for call in msg.tool_calls.iter().flatten() {
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input: parse_arguments(&call.function.name, &call.function.arguments)?,
        });
    }
    Ok(blocks)
}

/// Decodes OpenAI's JSON-string tool arguments into the object both Anthropic and Gemini want.
pub(crate) fn parse_arguments(name: &str, arguments: &str) -> Result<Value, ProviderError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ProviderError::InvalidRequest(format!(
            "arguments of tool call `{name}` are not a JSON object"
        ))),
    }
}

fn tool_result(msg: &ChatMessage) -> Result<Block, ProviderError> {
    let tool_use_id = msg
        .tool_call_id
        .clone()
        .ok_or_else(|| ProviderError::InvalidRequest("tool message without tool_call_id".into()))?;
    let content = match &msg.content {
        None => None,
        Some(MessageContent::Text(t)) if t.is_empty() => None,
        Some(MessageContent::Text(t)) => Some(ToolResultContent::Text(t.clone())),
        Some(parts @ MessageContent::Parts(_)) => {
            let blocks = content_blocks(Some(parts))?;
            (!blocks.is_empty()).then_some(ToolResultContent::Blocks(blocks))
        }
    };
    Ok(Block::ToolResult {
        tool_use_id,
        content,
    })
}

fn translate_tools(tools: Option<&[Tool]>) -> Result<Option<Vec<ToolDefinition>>, ProviderError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    tools
        .iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err(ProviderError::InvalidRequest(format!(
                    "tool type `{}` is not supported by Anthropic",
                    tool.kind
                )));
            }
            Ok(ToolDefinition {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                // input_schema is mandatory for Anthropic, optional for OpenAI.
                input_schema: tool
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn translate_tool_choice(
    choice: Option<&Value>,
    parallel_tool_calls: Option<bool>,
) -> Result<Option<ToolChoice>, ProviderError> {
    let simple = |kind| ToolChoice {
        kind,
        name: None,
        disable_parallel_tool_use: None,
    };
    let mut choice = match choice {
        None if parallel_tool_calls == Some(false) => simple("auto"),
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => simple("auto"),
            "required" => simple("any"),
            // `none` takes no parallelism flag.
            "none" => return Ok(Some(simple("none"))),
            other => {
                return Err(ProviderError::InvalidRequest(format!(
                    "unknown tool_choice `{other}`"
                )))
            }
        },
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::InvalidRequest(
                        "tool_choice must be auto, none, required or a named function".into(),
                    )
                })?;
            ToolChoice {
                kind: "tool",
                name: Some(name.to_owned()),
                disable_parallel_tool_use: None,
            }
        }
    };
    if parallel_tool_calls == Some(false) {
        choice.disable_parallel_tool_use = Some(true);
    }
    Ok(Some(choice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(req: Value) -> Value {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        serde_json::to_value(messages_body(&req, "claude-x", 1024, false).unwrap()).unwrap()
    }

    #[test]
    fn system_messages_are_lifted_and_joined() {
        let b = body(json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "hi"}
        ]}));
        assert_eq!(b["system"], "Be brief.\n\nUse French.");
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
        assert_eq!(b["max_tokens"], 1024);
    }

    #[test]
    fn consecutive_user_turns_merge() {
        let b = body(json!({"model": "m", "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": ""},
            {"role": "user", "content": "b"}
        ]}));
        assert_eq!(
            b["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "a"}, {"type": "text", "text": "b"}
            ]}])
        );
    }

    #[test]
    fn tool_choice_variants() {
        let t = |c: Option<Value>, p: Option<bool>| {
            serde_json::to_value(translate_tool_choice(c.as_ref(), p).unwrap()).unwrap()
        };
        assert_eq!(t(Some(json!("auto")), None), json!({"type": "auto"}));
        assert_eq!(t(Some(json!("required")), None), json!({"type": "any"}));
        assert_eq!(t(Some(json!("none")), Some(false)), json!({"type": "none"}));
        assert_eq!(
            t(
                Some(json!({"type": "function", "function": {"name": "f"}})),
                None
            ),
            json!({"type": "tool", "name": "f"})
        );
        assert_eq!(
            t(None, Some(false)),
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert_eq!(t(None, None), Value::Null);
        assert!(translate_tool_choice(Some(&json!("sometimes")), None).is_err());
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAAA").unwrap(),
            ("image/png", "AAAA")
        );
        assert!(parse_data_url("data:image/png,AAAA").is_err());
        assert!(parse_data_url("data:;base64,AAAA").is_err());
        assert!(image_source("ftp://x/y.png").is_err());
    }

    #[test]
    fn bad_arguments_and_n_are_rejected() {
        assert!(parse_arguments("f", "[1]").is_err());
        assert!(parse_arguments("f", "{oops").is_err());
        assert_eq!(parse_arguments("f", " ").unwrap(), json!({}));
        let req: ChatCompletionRequest = serde_json::from_value(
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
        )
        .unwrap();
        assert!(matches!(
            messages_body(&req, "c", 1, false),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn temperature_is_clamped_and_tool_choice_needs_tools() {
        let b = body(
            json!({"model": "m", "temperature": 1.7, "tool_choice": "required",
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(b["temperature"], 1.0);
        assert!(b.get("tool_choice").is_none());
    }
}
