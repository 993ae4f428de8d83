//! Anthropic's Messages API (`POST /v1/messages`).
//!
//! The request side folds OpenAI's flat message list into Anthropic's shape: system prompts move
//! to a top-level field, tool results become `user` turns, and same-role turns are merged because
//! Anthropic insists on strict user/assistant alternation. Embeddings are not offered by
//! Anthropic, so the trait's default (`Unsupported`) stands.

pub(crate) mod request;
mod response;
pub(crate) mod stream;

use async_trait::async_trait;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};

use crate::http::{send, send_json, sse_events, with_headers};
use crate::{ChunkStream, Provider, ProviderError, ProviderSettings};

pub use request::{messages_body, MessagesRequest};

/// The API version this adapter's translation was written against.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct AnthropicProvider {
    settings: ProviderSettings,
    client: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self { settings, client }
    }

    /// `{base}/v1/messages`; a base URL that already ends in `/v1` (as the SDKs' docs show it)
    /// is not doubled.
    pub(crate) fn url(&self) -> String {
        let base = &self.settings.base_url;
        match base.strip_suffix("/v1") {
            Some(root) => format!("{root}/v1/messages"),
            None => format!("{base}/v1/messages"),
        }
    }

    fn post(&self, body: &MessagesRequest) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(self.url())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body);
        if let Some(key) = &self.settings.api_key {
            req = req.header("x-api-key", key);
        }
        with_headers(req, &self.settings.headers)
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChatCompletionResponse, ProviderError> {
        let body = messages_body(req, upstream_model, self.settings.default_max_tokens, false)?;
        let resp: response::MessagesResponse = send_json(self.post(&body)).await?;
        Ok(response::to_openai(resp))
    }

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChunkStream, ProviderError> {
        let body = messages_body(req, upstream_model, self.settings.default_max_tokens, true)?;
        let resp = send(self.post(&body)).await?;
        Ok(stream::translate_stream(
            sse_events(resp),
            stream::AnthropicEvents::new(upstream_model),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderKind;

    #[test]
    fn messages_url_with_or_without_version() {
        let p = |base: &str| {
            AnthropicProvider::new(
                ProviderSettings::new("a", ProviderKind::Anthropic, base),
                reqwest::Client::new(),
            )
        };
        assert_eq!(
            p("https://api.anthropic.com").url(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            p("https://proxy.test/anthropic/v1/").url(),
            "https://proxy.test/anthropic/v1/messages"
        );
    }
}
