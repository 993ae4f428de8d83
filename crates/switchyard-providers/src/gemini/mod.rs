//! Google's Gemini API (`generativelanguage.googleapis.com`, `v1beta`): `generateContent`,
//! `streamGenerateContent` and `batchEmbedContents`.
//!
//! Tool calls are the awkward part of the translation: Gemini identifies them by function name
//! and has no call ids of its own, so ids are generated on the way out and tool messages are
//! matched back to names on the way in.

mod embeddings;
mod request;
mod response;
mod schema;
mod stream;

use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard_api::{
    ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest, EmbeddingsResponse,
};

use crate::anthropic::stream::translate_stream;
use crate::http::{sse_events, transport_error, with_headers};
use crate::{ChunkStream, Provider, ProviderError, ProviderSettings};

pub use request::{generate_content_body, GenerateContentRequest};

pub struct GeminiProvider {
    settings: ProviderSettings,
    client: reqwest::Client,
}

impl GeminiProvider {
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self { settings, client }
    }

    /// `{base}/v1beta/models/{model}:{method}`. A base URL that already names the API version is
    /// used as is, and a model configured in resource form (`models/...`) is not doubled.
    pub(crate) fn url(&self, model: &str, method: &str) -> String {
        let base = &self.settings.base_url;
        let root = if base.ends_with("/v1beta") || base.ends_with("/v1") {
            base.clone()
        } else {
            format!("{base}/v1beta")
        };
        format!("{root}/models/{}:{method}", model_id(model))
    }

    fn post(&self, url: String) -> reqwest::RequestBuilder {
        let mut req = self.client.post(url);
        // A header rather than the `?key=` query parameter keeps the key out of URL logs.
        if let Some(key) = &self.settings.api_key {
            req = req.header("x-goog-api-key", key);
        }
        with_headers(req, &self.settings.headers)
    }
}

fn model_id(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// `http::send`, except that a 429's back-off also comes from the body: Gemini states it as a
/// `google.rpc.RetryInfo` detail rather than a `retry-after` header.
async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let resp = req.send().await.map_err(transport_error)?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    let mut err = ProviderError::from_status(status, &headers, &body);
    if let ProviderError::Status { retry_after, .. } = &mut err {
        if retry_after.is_none() {
            *retry_after = retry_delay(&body);
        }
    }
    Err(err)
}

async fn send_json<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, ProviderError> {
    let body = send(req).await?.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
}

/// `RetryInfo.retryDelay` is a protobuf Duration in JSON form, e.g. `"17s"` or `"0.5s"`.
fn retry_delay(body: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.pointer("/error/details")?
        .as_array()?
        .iter()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))?
        .strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[async_trait]
impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChatCompletionResponse, ProviderError> {
        let body = generate_content_body(req)?;
        let url = self.url(upstream_model, "generateContent");
        let resp: response::GenerateContentResponse = send_json(self.post(url).json(&body)).await?;
        response::to_openai(resp, model_id(upstream_model))
    }

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChunkStream, ProviderError> {
        let body = generate_content_body(req)?;
        // Without alt=sse Gemini streams one long JSON array instead of SSE events.
        let url = self.url(upstream_model, "streamGenerateContent?alt=sse");
        let resp = send(self.post(url).json(&body)).await?;
        Ok(translate_stream(
            sse_events(resp),
            stream::GeminiEvents::new(model_id(upstream_model)),
        ))
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        upstream_model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let model = model_id(upstream_model);
        let body = embeddings::batch_request(req, model)?;
        let expected = req.input.texts().map_or(0, |t| t.len());
        let url = self.url(model, "batchEmbedContents");
        let resp: embeddings::BatchEmbedResponse = send_json(self.post(url).json(&body)).await?;
        embeddings::to_openai(resp, req, model, expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderKind;

    #[test]
    fn retry_delay_from_body() {
        let body = br#"{"error": {"code": 429, "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}"#;
        assert_eq!(retry_delay(body), Some(Duration::from_millis(1500)));
        assert_eq!(retry_delay(b"{}"), None);
        assert_eq!(
            retry_delay(br#"{"error": {"details": [{"retryDelay": "soon"}]}}"#),
            None
        );
    }

    #[test]
    fn urls() {
        let p = |base: &str| {
            GeminiProvider::new(
                ProviderSettings::new("g", ProviderKind::Gemini, base),
                reqwest::Client::new(),
            )
        };
        assert_eq!(
            p("https://generativelanguage.googleapis.com/").url("models/gemini-2.0-flash", "generateContent"),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            p("https://proxy.test/v1beta").url("gemini-2.0-flash", "batchEmbedContents"),
            "https://proxy.test/v1beta/models/gemini-2.0-flash:batchEmbedContents"
        );
    }
}
