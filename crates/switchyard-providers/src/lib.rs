//! Provider adapters behind one trait.
//!
//! Each adapter translates Switchyard's OpenAI wire types (`switchyard-api`) to one upstream API and
//! back, including streams. Retries, timeouts, breakers and fallbacks are not here: they belong to
//! the gateway's call stage, which treats every provider alike through [`Provider`] and
//! classifies failures through [`ProviderError`].

pub mod anthropic;
pub mod azure;
mod error;
pub mod gemini;
mod http;
pub mod openai;
mod plain;
mod upstream_body;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse,
};

pub use error::{ErrorClass, ProviderError};

/// A stream of OpenAI-shaped chunks. Adapters end it with a usage-only chunk (empty `choices`)
/// whenever the upstream reports usage; the gateway decides whether the client sees it.
pub type ChunkStream = BoxStream<'static, Result<ChatCompletionChunk, ProviderError>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's configured name, as used in logs, metrics and `x-switchyard-provider`.
    fn name(&self) -> &str;

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChatCompletionResponse, ProviderError>;

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChunkStream, ProviderError>;

    async fn embeddings(
        &self,
        _req: &EmbeddingsRequest,
        _upstream_model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        Err(ProviderError::Unsupported(format!(
            "provider {} does not serve embeddings",
            self.name()
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Azure,
    Gemini,
}

/// What an adapter needs to reach its upstream; built by the gateway from `[[providers]]`.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// Azure's `api-version` query parameter.
    pub api_version: Option<String>,
    /// Anthropic requires `max_tokens`; used when the client sent none.
    pub default_max_tokens: u32,
    /// Extra headers sent on every upstream request (e.g. an organization id).
    pub headers: Vec<(String, String)>,
}

impl ProviderSettings {
    pub fn new(name: &str, kind: ProviderKind, base_url: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: None,
            api_version: None,
            default_max_tokens: 4096,
            headers: Vec::new(),
        }
    }
}

/// Builds the adapter for `settings.kind`, sharing one connection pool across providers.
pub fn build_provider(settings: ProviderSettings, client: reqwest::Client) -> Arc<dyn Provider> {
    match settings.kind {
        ProviderKind::OpenAi => Arc::new(openai::OpenAiProvider::new(settings, client)),
        ProviderKind::Azure => Arc::new(azure::AzureProvider::new(settings, client)),
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicProvider::new(settings, client)),
        ProviderKind::Gemini => Arc::new(gemini::GeminiProvider::new(settings, client)),
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
