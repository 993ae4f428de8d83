//! OpenAI chat request → Gemini `GenerateContentRequest`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_api::{ChatCompletionRequest, ChatMessage, ContentPart, MessageContent, Role, Tool};

use super::schema::{is_empty_object, to_gemini_schema};
use crate::anthropic::request::{parse_arguments, parse_data_url};
use crate::ProviderError;

/// Joins a generated tool-call id and Gemini's thought signature. Gemini requires the signature
/// of each function call to come back with it on the next turn, and the OpenAI wire format's
/// only opaque field that clients echo verbatim is the tool-call id.
pub(crate) const SIGNATURE_SEPARATOR: &str = "__thought__";

/// The body of `generateContent` / `streamGenerateContent`. Built by [`generate_content_body`];
/// serialize it to inspect it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolDeclarations>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    pub(crate) parts: Vec<Part>,
}

/// One part of a turn, in either direction. Gemini's `Part` is a union whose members are sibling
/// fields, and `thoughtSignature` rides next to whichever member it signs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inline_data: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file_data: Option<FileData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_call: Option<FunctionCallPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_response: Option<FunctionResponsePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought_signature: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob {
    pub(crate) mime_type: String,
    pub(crate) data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
    pub(crate) file_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FunctionCallPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct FunctionResponsePart {
    pub(crate) name: String,
    pub(crate) response: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ToolDeclarations {
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct FunctionDeclaration {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Value>,
}

/// Translates an OpenAI chat request into a Gemini `GenerateContentRequest`. The model and the
/// streaming choice live in the URL, not the body.
pub fn generate_content_body(
    req: &ChatCompletionRequest,
) -> Result<GenerateContentRequest, ProviderError> {
    let (system_instruction, contents) = translate_messages(&req.messages)?;
    let tools = translate_tools(req.tools.as_deref())?;
    let tool_config = match tools {
        Some(_) => translate_tool_choice(req.tool_choice.as_ref())?,
        // Gemini rejects a toolConfig that names functions it was not given.
        None => None,
    };
    let (response_mime_type, response_schema) = response_format(req.response_format.as_ref())?;
    let config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        max_output_tokens: req.max_output_tokens(),
        stop_sequences: req
            .stop
            .as_ref()
            .map(|s| s.to_vec())
            .filter(|v| !v.is_empty()),
        candidate_count: req.n,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_mime_type,
        response_schema,
    };
    Ok(GenerateContentRequest {
        contents,
        system_instruction,
        tools: tools.map(|function_declarations| {
            vec![ToolDeclarations {
                function_declarations,
            }]
        }),
        tool_config,
        generation_config: (config != GenerationConfig::default()).then_some(config),
    })
}

fn translate_messages(
    messages: &[ChatMessage],
) -> Result<(Option<Content>, Vec<Content>), ProviderError> {
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let (role, parts) = match msg.role {
            Role::System | Role::Developer => {
                let text = msg.text();
                if !text.is_empty() {
                    system.push(text_part(text));
                }
                continue;
            }
            Role::User => ("user", content_parts(msg.content.as_ref())?),
            Role::Assistant => ("model", assistant_parts(msg)?),
            // Gemini takes function results as user-turn parts.
            Role::Tool => ("user", vec![function_response(msg, &messages[..i])?]),
            Role::Function => {
                return Err(ProviderError::InvalidRequest(
                    "the deprecated `function` role is not supported; send `tool` messages".into(),
                ))
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Parallel function responses must arrive in one turn, and Gemini wants turns to
        // alternate; runs of one role therefore become a single turn.
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role),
                parts,
            }),
        }
    }
    let system = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    Ok((system, contents))
}

fn text_part(text: String) -> Part {
    Part {
        text: Some(text),
        ..Default::default()
    }
}

fn content_parts(content: Option<&MessageContent>) -> Result<Vec<Part>, ProviderError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) if t.is_empty() => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![text_part(t.clone())]),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .filter_map(|p| content_part(p).transpose())
            .collect(),
    }
}

fn content_part(part: &ContentPart) -> Result<Option<Part>, ProviderError> {
    let nested = |outer: &str, inner: &str| {
        part.extra
            .get(outer)
            .and_then(|v| v.get(inner))
            .and_then(Value::as_str)
    };
    let text = |t: Option<&str>| t.filter(|t| !t.is_empty()).map(|t| text_part(t.to_owned()));
    match part.kind.as_str() {
        "text" => Ok(text(part.text.as_deref())),
        "refusal" => Ok(text(part.extra.get("refusal").and_then(Value::as_str))),
        "image_url" => {
            let url = part.image_url.as_ref().ok_or_else(|| {
                ProviderError::InvalidRequest("image_url content part without a url".into())
            })?;
            media_part(&url.url).map(Some)
        }
        "input_audio" => {
            let (Some(data), Some(format)) = (
                nested("input_audio", "data"),
                nested("input_audio", "format"),
            ) else {
                return Err(ProviderError::InvalidRequest(
                    "input_audio content part needs data and format".into(),
                ));
            };
            Ok(Some(Part {
                inline_data: Some(Blob {
                    mime_type: format!("audio/{format}"),
                    data: data.to_owned(),
                }),
                ..Default::default()
            }))
        }
        "file" => match nested("file", "file_data") {
            Some(data_url) => media_part(data_url).map(Some),
            None => Err(ProviderError::InvalidRequest(
                "file content parts must carry file_data; Gemini cannot resolve OpenAI file ids"
                    .into(),
            )),
        },
        other => Err(ProviderError::InvalidRequest(format!(
            "content part type `{other}` is not supported by Gemini"
        ))),
    }
}

/// Data URLs travel inline; any other URL is left for Gemini to fetch (`gs://`, Files API URIs,
/// and public URLs on models that support them).
fn media_part(url: &str) -> Result<Part, ProviderError> {
    if url.starts_with("data:") {
        let (mime_type, data) = parse_data_url(url)?;
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: mime_type.to_owned(),
                data: data.to_owned(),
            }),
            ..Default::default()
        });
    }
    Ok(Part {
        file_data: Some(FileData {
            mime_type: guess_mime_type(url).map(str::to_owned),
            file_uri: url.to_owned(),
        }),
        ..Default::default()
    })
}

fn guess_mime_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => return None,
    })
}

fn assistant_parts(msg: &ChatMessage) -> Result<Vec<Part>, ProviderError> {
    let mut parts = content_parts(msg.content.as_ref())?;
    for call in msg.tool_calls.iter().flatten() {
        let signature = call
            .id
            .split_once(SIGNATURE_SEPARATOR)
            .map(|(_, sig)| sig.to_owned())
            .filter(|sig| !sig.is_empty());
        parts.push(Part {
            function_call: Some(FunctionCallPart {
                // Our ids are synthetic; Gemini matches calls to responses by name and order.
                id: None,
                name: call.function.name.clone(),
                args: parse_arguments(&call.function.name, &call.function.arguments)?,
            }),
            thought_signature: signature,
            ..Default::default()
        });
    }
    Ok(parts)
}

/// Gemini identifies a function response by the function's name, which OpenAI tool messages do
/// not carry: it comes from the nearest earlier assistant call with the same id (ids may repeat
/// across turns, since Gemini's are generated per response).
fn function_response(msg: &ChatMessage, earlier: &[ChatMessage]) -> Result<Part, ProviderError> {
    let id = msg
        .tool_call_id
        .as_deref()
        .ok_or_else(|| ProviderError::InvalidRequest("tool message without tool_call_id".into()))?;
    let name = earlier
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())
        .or_else(|| msg.name.clone())
        .ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "tool message answers tool call `{id}`, which no earlier assistant message made"
            ))
        })?;
    let text = msg.text();
    // `response` must be a JSON object.
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({ "content": other }),
        Err(_) => json!({ "content": text }),
    };
    Ok(Part {
        function_response: Some(FunctionResponsePart { name, response }),
        ..Default::default()
    })
}

fn translate_tools(
    tools: Option<&[Tool]>,
) -> Result<Option<Vec<FunctionDeclaration>>, ProviderError> {
    let Some(tools) = tools.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    tools
        .iter()
        .map(|tool| {
            if tool.kind != "function" {
                return Err(ProviderError::InvalidRequest(format!(
                    "tool type `{}` is not supported by Gemini",
                    tool.kind
                )));
            }
            Ok(FunctionDeclaration {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                parameters: tool
                    .function
                    .parameters
                    .as_ref()
                    .map(to_gemini_schema)
                    .filter(|s| !is_empty_object(s)),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<ToolConfig>, ProviderError> {
    let config = |mode, allowed_function_names| {
        Some(ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode,
                allowed_function_names,
            },
        })
    };
    match choice {
        None => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(config("AUTO", None)),
            "none" => Ok(config("NONE", None)),
            "required" => Ok(config("ANY", None)),
            other => Err(ProviderError::InvalidRequest(format!(
                "unknown tool_choice `{other}`"
            ))),
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => Ok(config("ANY", Some(vec![name.to_owned()]))),
            None => Err(ProviderError::InvalidRequest(
                "tool_choice must be auto, none, required or a named function".into(),
            )),
        },
    }
}

type ResponseFormat = (Option<&'static str>, Option<Value>);

fn response_format(format: Option<&Value>) -> Result<ResponseFormat, ProviderError> {
    let Some(format) = format else {
        return Ok((None, None));
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some("application/json"), None)),
        Some("json_schema") => Ok((
            Some("application/json"),
            format.pointer("/json_schema/schema").map(to_gemini_schema),
        )),
        Some(other) => Err(ProviderError::InvalidRequest(format!(
            "response_format type `{other}` is not supported by Gemini"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(req: Value) -> Value {
        let req: ChatCompletionRequest = serde_json::from_value(req).unwrap();
        serde_json::to_value(generate_content_body(&req).unwrap()).unwrap()
    }

    #[test]
    fn minimal_request_has_no_config() {
        let b = body(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(
            b,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn tool_choice_modes() {
        let mode = |c: Value| {
            serde_json::to_value(translate_tool_choice(Some(&c)).unwrap()).unwrap()
                ["functionCallingConfig"]
                .clone()
        };
        assert_eq!(mode(json!("auto")), json!({"mode": "AUTO"}));
        assert_eq!(mode(json!("none")), json!({"mode": "NONE"}));
        assert_eq!(mode(json!("required")), json!({"mode": "ANY"}));
        assert_eq!(
            mode(json!({"type": "function", "function": {"name": "f"}})),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]})
        );
        assert!(translate_tool_choice(Some(&json!(3))).is_err());
    }

    #[test]
    fn signature_in_tool_call_id_goes_back_to_gemini() {
        let b = body(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0__thought__c2ln",
                "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0__thought__c2ln", "content": "[1, 2]"}
        ]}));
        assert_eq!(
            b["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "get_weather", "args": {}}, "thoughtSignature": "c2ln"})
        );
        assert_eq!(
            b["contents"][2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"content": [1, 2]}})
        );
    }

    #[test]
    fn unknown_tool_call_id_is_rejected() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({"model": "m", "messages": [
            {"role": "tool", "tool_call_id": "nope", "content": "x"}
        ]}))
        .unwrap();
        assert!(matches!(
            generate_content_body(&req),
            Err(ProviderError::InvalidRequest(_))
        ));
    }

    #[test]
    fn media_parts() {
        assert_eq!(
            media_part("https://x.test/cat.JPG?s=1").unwrap().file_data,
            Some(FileData {
                mime_type: Some("image/jpeg".into()),
                file_uri: "https://x.test/cat.JPG?s=1".into()
            })
        );
        assert_eq!(guess_mime_type("gs://bucket/blob"), None);
        assert!(media_part("data:image/png,raw").is_err());
    }

    #[test]
    fn json_object_format() {
        let b = body(
            json!({"model": "m", "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "x"}]}),
        );
        assert_eq!(
            b["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
    }
}
