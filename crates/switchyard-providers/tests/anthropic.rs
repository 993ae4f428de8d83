//! The Anthropic adapter against fixtures modelled on Anthropic's Messages API documentation.

mod common;

use std::time::Duration;

use common::{assemble, fixture, fixture_json, Canned, FakeUpstream};
use serde_json::json;
use switchyard_api::{ChatCompletionRequest, MessageContent, Usage};
use switchyard_providers::anthropic::{messages_body, AnthropicProvider};
use switchyard_providers::{ErrorClass, Provider, ProviderError, ProviderKind, ProviderSettings};

fn openai_request(name: &str) -> ChatCompletionRequest {
    serde_json::from_value(fixture_json(&format!("anthropic/{name}"))).unwrap()
}

fn provider(base_url: &str) -> AnthropicProvider {
    let mut settings = ProviderSettings::new("claude", ProviderKind::Anthropic, base_url);
    settings.api_key = Some("sk-ant-test".into());
    settings.headers = vec![("anthropic-beta".into(), "prompt-caching-2024-07-31".into())];
    AnthropicProvider::new(settings, reqwest::Client::new())
}

fn simple_request() -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "claude", "messages": [{"role": "user", "content": "Hello, Claude"}]
    }))
    .unwrap()
}

#[test]
fn translates_a_tool_conversation() {
    let req = openai_request("request_tools.openai.json");
    let body = messages_body(&req, "claude-sonnet-4-20250514", 4096, false).unwrap();
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        fixture_json("anthropic/request_tools.anthropic.json")
    );
}

#[test]
fn translates_a_stream_request_with_the_default_max_tokens() {
    let req = openai_request("request_stream.openai.json");
    let body = messages_body(&req, "claude-opus-4-20250514", 4096, true).unwrap();
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        fixture_json("anthropic/request_stream.anthropic.json")
    );
}

#[tokio::test]
async fn chat_sends_auth_and_version_and_maps_text() {
    let upstream = FakeUpstream::start(Canned::json(fixture("anthropic/response_text.json"))).await;
    let resp = provider(&upstream.base_url)
        .chat(&simple_request(), "claude-sonnet-4-20250514")
        .await
        .unwrap();

    let sent = upstream.only_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert!(sent
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert!(sent.header("authorization").is_none());
    assert_eq!(sent.body["model"], "claude-sonnet-4-20250514");
    assert_eq!(sent.body["max_tokens"], 4096);
    assert!(sent.body.get("stream").is_none());

    assert_eq!(resp.id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(resp.object, "chat.completion");
    assert_eq!(resp.model, "claude-sonnet-4-20250514");
    assert!(resp.created > 0);
    assert_eq!(resp.first_text(), "Hi! My name is Claude.");
    assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(resp.choices[0].message.tool_calls.is_none());
    assert_eq!(resp.usage, Some(Usage::new(2095, 503)));
}

#[tokio::test]
async fn chat_maps_tool_use() {
    let upstream =
        FakeUpstream::start(Canned::json(fixture("anthropic/response_tool_use.json"))).await;
    let resp = provider(&upstream.base_url)
        .chat(
            &openai_request("request_tools.openai.json"),
            "claude-sonnet-4-20250514",
        )
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().body,
        fixture_json("anthropic/request_tools.anthropic.json")
    );

    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        choice.message.content,
        Some(MessageContent::Text(
            "I'll check the current weather in San Francisco for you.".into()
        ))
    );
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_weather");
    let args: serde_json::Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(resp.usage, Some(Usage::new(384, 92)));
}

#[tokio::test]
async fn stream_of_text() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("anthropic/stream_text.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(
            &openai_request("request_stream.openai.json"),
            "claude-opus-4-20250514",
        )
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        upstream.only_request().body,
        fixture_json("anthropic/request_stream.anthropic.json")
    );

    assert_eq!(out.first_role(), Some(switchyard_api::Role::Assistant));
    assert_eq!(out.text, "Hello!");
    assert!(out.tool_calls.is_empty());
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));
    assert!(out.ends_with_usage_chunk());
    assert_eq!(out.usage, Some(Usage::new(25, 15)));
    let first = &out.chunks[0];
    assert_eq!(first.id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    assert_eq!(first.model, "claude-opus-4-20250514");
    assert_eq!(first.object, "chat.completion.chunk");
    assert!(out.chunks.iter().all(|c| c.id == first.id));
}

#[tokio::test]
async fn stream_of_tool_use() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("anthropic/stream_tool_use.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), "claude-opus-4-20250514")
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.error.is_none(), "{:?}", out.error);

    assert_eq!(
        out.text,
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(out.tool_calls.len(), 2);
    let (id, name, args) = &out.tool_calls[0];
    assert_eq!(id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(name, "get_weather");
    let args: serde_json::Value = serde_json::from_str(args).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    let (id, name, args) = &out.tool_calls[1];
    assert_eq!(
        (id.as_str(), name.as_str()),
        ("toolu_01QnZ6vSmW3Pdn6Y4mFdGvTt", "get_time")
    );
    assert_eq!(args, r#"{"timezone": "America/Los_Angeles"}"#);
    // The opening tool delta carries id, type and name; later ones only arguments.
    let opening = out
        .chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .filter(|d| d.id.is_some())
        .count();
    assert_eq!(opening, 2);
    assert_eq!(out.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(out.usage, Some(Usage::new(472, 89)));
    assert!(out.ends_with_usage_chunk());
}

#[tokio::test]
async fn truncated_stream_is_broken() {
    let upstream =
        FakeUpstream::start(Canned::sse(fixture("anthropic/stream_truncated.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), "claude-opus-4-20250514")
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert!(out.text.starts_with("Hello"));
    assert!(out.usage.is_none());
    let err = out.error.expect("a truncated stream must fail");
    assert!(matches!(err, ProviderError::StreamBroken(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::StreamBroken);
}

#[tokio::test]
async fn error_event_breaks_the_stream() {
    let upstream = FakeUpstream::start(Canned::sse(fixture("anthropic/stream_error.sse"))).await;
    let stream = provider(&upstream.base_url)
        .chat_stream(&simple_request(), "claude-opus-4-20250514")
        .await
        .unwrap();
    let out = assemble(stream).await;
    assert_eq!(out.text, "Once upon");
    match out.error {
        Some(ProviderError::StreamBroken(m)) => assert_eq!(m, "Overloaded"),
        other => panic!("expected StreamBroken, got {other:?}"),
    }
}

async fn chat_error(canned: Canned) -> ProviderError {
    let upstream = FakeUpstream::start(canned).await;
    provider(&upstream.base_url)
        .chat(&simple_request(), "claude-sonnet-4-20250514")
        .await
        .unwrap_err()
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let err = chat_error(
        Canned::error(429, fixture("anthropic/error_rate_limit.json"))
            .with_header("retry-after", "7"),
    )
    .await;
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.to_string().contains("rate limit"), "{err}");
}

#[tokio::test]
async fn prompt_too_long_is_context_length() {
    let err = chat_error(Canned::error(
        400,
        fixture("anthropic/error_prompt_too_long.json"),
    ))
    .await;
    assert_eq!(err.class(), ErrorClass::ContextLength);
    assert!(!err.class().is_retryable());
}

#[tokio::test]
async fn overloaded_is_a_retryable_server_error() {
    let err = chat_error(Canned::error(
        529,
        fixture("anthropic/error_overloaded.json"),
    ))
    .await;
    assert_eq!(err.class(), ErrorClass::ServerError);
    assert!(err.class().is_retryable() && err.class().is_provider_fault());
    assert!(err.to_string().contains("Overloaded"));
}

#[tokio::test]
async fn stream_errors_surface_before_the_stream() {
    let upstream = FakeUpstream::start(Canned::error(
        529,
        fixture("anthropic/error_overloaded.json"),
    ))
    .await;
    let result = provider(&upstream.base_url)
        .chat_stream(&simple_request(), "claude-sonnet-4-20250514")
        .await;
    assert!(matches!(
        result,
        Err(ProviderError::Status { status: 529, .. })
    ));
}

#[tokio::test]
async fn embeddings_are_unsupported() {
    let req = serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap();
    let err = provider("http://127.0.0.1:9")
        .embeddings(&req, "claude")
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unsupported);
}

#[test]
fn untranslatable_requests_are_invalid() {
    let cases = [
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}]}]}),
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}),
        json!({"model": "m", "messages": [{"role": "tool", "content": "orphan"}]}),
    ];
    for case in cases {
        let req: ChatCompletionRequest = serde_json::from_value(case.clone()).unwrap();
        let err = messages_body(&req, "claude", 1024, false).unwrap_err();
        assert_eq!(err.class(), ErrorClass::BadRequest, "{case}");
    }
}
