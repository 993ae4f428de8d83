//! The Gemini adapter against fixtures modelled on Google's Gemini API documentation.

mod common;

use std::time::Duration;

use common::{assemble, fixture, fixture_json, Canned, FakeUpstream};
use serde_json::{json, Value};
use switchyard_api::{ChatCompletionRequest, EmbeddingsRequest, Role, Usage};
use switchyard_providers::gemini::{generate_content_body, GeminiProvider};
use switchyard_providers::{ErrorClass, Provider, ProviderError, ProviderKind, ProviderSettings};

const MODEL: &str = "gemini-2.0-flash";

fn openai_request(name: &str) -> ChatCompletionRequest {
    serde_json::from_value(fixture_json(&format!("gemini/{name}"))).unwrap()
}

fn provider(base_url: &str) -> GeminiProvider {
    let mut settings = ProviderSettings::new("gemini", ProviderKind::Gemini, base_url);
    settings.api_key = Some("AIza-test".into());
    GeminiProvider::new(settings, reqwest::Client::new())
}

fn simple_request() -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "gemini", "messages": [{"role": "user", "content": "Explain how AI works in a few words"}]
    }))
    .unwrap()
}

#[test]
fn translates_a_tool_conversation() {
    let body = generate_content_body(&openai_request("request_tools.openai.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        fixture_json("gemini/request_tools.gemini.json")
    );
}

#[test]
fn translates_structured_output() {
    let body = generate_content_body(&openai_request("request_json_schema.openai.json")).unwrap();
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        fixture_json("gemini/request_json_schema.gemini.json")
    );
}

#[tokio::test]
async fn chat_sends_key_and_maps_text() {
    let upstream = FakeUpstream::start(Canned::json(fixture("gemini/response_text.json"))).await;
    let resp = provider(&upstream.base_url)
        .chat(&simple_request(), MODEL)
        .await
        .unwrap();

    let sent = upstream.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("AIza-test"));
    assert!(sent.header("authorization").is_none());
    assert_eq!(
        sent.body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Explain how AI works in a few words"}]}]})
    );

    assert_eq!(resp.id, "mYRHaKbqDZKjz7IP7cKk0Q0");
    assert_eq!(resp.model, MODEL);
    assert!(resp.created > 0);
    assert_eq!(
        resp.first_text(),
        "AI learns patterns from data to make predictions or decisions."
    );
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(resp.choices[0].message.role, Role::Assistant);
    assert_eq!(resp.usage, Some(Usage::new(5, 11)));
}

#[tokio::test]
async fn chat_maps_function_calls() {
    let upstream =
        FakeUpstream::start(Canned::json(fixture("gemini/response_function_call.json"))).await;
    let resp = provider(&upstream.base_url)
        .chat(&openai_request("request_tools.openai.json"), MODEL)
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().body,
        fixture_json("gemini/request_tools.gemini.json")
    );

    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_0");
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "set_light_values");
    let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert_eq!(args, json!({"brightness": 25, "color_temp": "warm"}));
    assert_eq!(calls[1].id, "call_1");
    assert_eq!(calls[1].function.arguments, "{}");
    assert_eq!(resp.usage, Some(Usage::new(125, 21)));
}

#[tokio::test]
async fn safety_stop_is_content_filter() {
    let upstream = FakeUpstream::start(Canned::json(fixture("gemini/response_safety.json"))).await;
    let resp = provider(&upstream.base_url)
        .chat(&simple_request(), MODEL)
        .await
        .unwrap();
    assert_eq!(
        resp.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(resp.first_text(), "");
}

#[tokio::test]
async fn stream_of_text() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("gemini/stream_text.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), MODEL)
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.error.is_none(), "{:?}", out.error);

    let sent = upstream.only_request();
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("AIza-test"));

    assert_eq!(out.first_role(), Some(Role::Assistant));
    let roles = out
        .chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter(|c| c.delta.role.is_some())
        .count();
    assert_eq!(roles, 1, "only the first chunk names the role");
    assert_eq!(out.text, "The quick brown fox jumps over the lazy dog.");
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));
    assert!(out.ends_with_usage_chunk());
    assert_eq!(out.usage, Some(Usage::new(9, 12)));
    assert!(out.chunks.iter().all(|c| c.id == "mYRHaKbqDZKjz7IP7cKk0Q0"));
    assert!(out
        .chunks
        .iter()
        .all(|c| c.object == "chat.completion.chunk"));
}

#[tokio::test]
async fn stream_of_function_call() {
    let upstream =
        FakeUpstream::start(Canned::sse(fixture("gemini/stream_function_call.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), "gemini-2.5-flash")
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.error.is_none(), "{:?}", out.error);

    assert_eq!(out.text, "Let me look that up.");
    assert_eq!(out.tool_calls.len(), 1);
    let (id, name, args) = &out.tool_calls[0];
    // The thought signature rides in the id so it can be replayed on the next turn.
    assert_eq!(id, "call_0__thought__CiQB0e2Kb1NpZ25hdHVyZQ==");
    assert_eq!(name, "get_current_temperature");
    assert_eq!(
        serde_json::from_str::<Value>(args).unwrap(),
        json!({"location": "London"})
    );
    assert_eq!(out.finish_reason.as_deref(), Some("tool_calls"));
    // Thinking tokens are output tokens.
    let usage = out.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (70, 66, 136)
    );
    assert!(out.ends_with_usage_chunk());

    // Sending the call back restores the signature next to the functionCall part.
    let follow_up: ChatCompletionRequest = serde_json::from_value(json!({
        "model": "gemini", "messages": [
            {"role": "user", "content": "How warm is it in London?"},
            {"role": "assistant", "content": out.text, "tool_calls": [{"id": id, "type": "function",
                "function": {"name": name, "arguments": out.tool_calls[0].2}}]},
            {"role": "tool", "tool_call_id": id, "content": "11 degrees"}
        ]
    }))
    .unwrap();
    let body = serde_json::to_value(generate_content_body(&follow_up).unwrap()).unwrap();
    assert_eq!(
        body["contents"][1]["parts"][1],
        json!({"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}},
               "thoughtSignature": "CiQB0e2Kb1NpZ25hdHVyZQ=="})
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "get_current_temperature",
               "response": {"content": "11 degrees"}}})
    );
}

#[tokio::test]
async fn truncated_stream_is_broken() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("gemini/stream_truncated.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), MODEL)
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.text.starts_with("The"));
    assert!(!out.ends_with_usage_chunk());
    let err = out.error.expect("a stream without finishReason must fail");
    assert!(matches!(err, ProviderError::StreamBroken(_)), "{err:?}");
}

#[tokio::test]
async fn error_event_breaks_the_stream() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("gemini/stream_error.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), MODEL)
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert_eq!(out.text, "Once upon");
    match out.error {
        Some(ProviderError::StreamBroken(m)) => assert!(m.contains("internal error"), "{m}"),
        other => panic!("expected StreamBroken, got {other:?}"),
    }
}

async fn chat_error(canned: Canned) -> ProviderError {
    let upstream = FakeUpstream::start(canned).await;
    provider(&upstream.base_url)
        .chat(&simple_request(), MODEL)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn rate_limit_reads_retry_info_from_the_body() {
    let err = chat_error(Canned::error(429, fixture("gemini/error_rate_limit.json"))).await;
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(17)));
    assert!(
        err.to_string().contains("exceeded your current quota"),
        "{err}"
    );
}

#[tokio::test]
async fn retry_after_header_wins_over_the_body() {
    let err = chat_error(
        Canned::error(429, fixture("gemini/error_rate_limit.json")).with_header("retry-after", "3"),
    )
    .await;
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn input_too_long_is_context_length() {
    let err = chat_error(Canned::error(
        400,
        fixture("gemini/error_context_length.json"),
    ))
    .await;
    assert_eq!(err.class(), ErrorClass::ContextLength);
}

#[tokio::test]
async fn overloaded_is_a_retryable_server_error() {
    let err = chat_error(Canned::error(503, fixture("gemini/error_overloaded.json"))).await;
    assert_eq!(err.class(), ErrorClass::ServerError);
    assert!(err.class().is_retryable());
}

#[tokio::test]
async fn embeddings_batch() {
    let upstream =
        FakeUpstream::start(Canned::json(fixture("gemini/embeddings_response.json"))).await;
    let req: EmbeddingsRequest = serde_json::from_value(json!({
        "model": "embed",
        "input": ["What is the meaning of life?", "How does the brain work?"],
        "dimensions": 3
    }))
    .unwrap();
    let resp = provider(&upstream.base_url)
        .embeddings(&req, "text-embedding-004")
        .await
        .unwrap();

    let sent = upstream.only_request();
    assert_eq!(
        sent.target,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("AIza-test"));
    assert_eq!(
        sent.body,
        fixture_json("gemini/embeddings_request.gemini.json")
    );

    assert_eq!(resp.object, "list");
    assert_eq!(resp.model, "text-embedding-004");
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.data[1].index, 1);
    assert_eq!(resp.data[0].object, "embedding");
    assert_eq!(
        resp.data[0].embedding,
        json!([0.013168523, -0.008711934, -0.046782676])
    );
}

#[tokio::test]
async fn embeddings_in_base64() {
    let upstream =
        FakeUpstream::start(Canned::json(fixture("gemini/embeddings_response.json"))).await;
    let req: EmbeddingsRequest = serde_json::from_value(json!({
        "model": "embed", "input": ["a", "b"], "encoding_format": "base64"
    }))
    .unwrap();
    let resp = provider(&upstream.base_url)
        .embeddings(&req, "models/text-embedding-004")
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().target,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );
    // [1.0, 2.0, -0.5] as little-endian f32s.
    assert_eq!(resp.data[1].embedding, json!("AACAPwAAAEAAAAC/"));
}

#[tokio::test]
async fn token_embeddings_are_invalid() {
    let req: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "embed", "input": [[1, 2], [3]]})).unwrap();
    let err = provider("http://127.0.0.1:9")
        .embeddings(&req, "text-embedding-004")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn embedding_count_mismatch_is_malformed() {
    let upstream =
        FakeUpstream::start(Canned::json(fixture("gemini/embeddings_response.json"))).await;
    let req: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "embed", "input": "only one"})).unwrap();
    let err = provider(&upstream.base_url)
        .embeddings(&req, "text-embedding-004")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Malformed);
}
