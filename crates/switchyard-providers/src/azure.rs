//! Azure OpenAI: OpenAI's wire format behind per-deployment URLs, an `api-version` query parameter
//! and an `api-key` header. The configured model's `upstream` is the deployment name.

use async_trait::async_trait;
use switchyard_api::{
    ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest, EmbeddingsResponse,
};

use crate::http::{send, send_json, with_headers};
use crate::openai::chunk_stream;
use crate::upstream_body::UpstreamChatBody;
use crate::{ChunkStream, Provider, ProviderError, ProviderSettings};

pub const DEFAULT_API_VERSION: &str = "2024-10-21";

pub struct AzureProvider {
    settings: ProviderSettings,
    client: reqwest::Client,
}

impl AzureProvider {
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self { settings, client }
    }

    pub(crate) fn url(&self, deployment: &str, operation: &str) -> String {
        let version = self
            .settings
            .api_version
            .as_deref()
            .unwrap_or(DEFAULT_API_VERSION);
        format!(
            "{}/openai/deployments/{}/{}?api-version={}",
            self.settings.base_url, deployment, operation, version
        )
    }

    fn post(&self, deployment: &str, operation: &str) -> reqwest::RequestBuilder {
        let mut req = self.client.post(self.url(deployment, operation));
        if let Some(key) = &self.settings.api_key {
            req = req.header("api-key", key);
        }
        with_headers(req, &self.settings.headers)
    }
}

#[async_trait]
impl Provider for AzureProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        deployment: &str,
    ) -> Result<ChatCompletionResponse, ProviderError> {
        let body = UpstreamChatBody::new(req, deployment, false);
        send_json(self.post(deployment, "chat/completions").json(&body)).await
    }

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        deployment: &str,
    ) -> Result<ChunkStream, ProviderError> {
        let body = UpstreamChatBody::new(req, deployment, true);
        let resp = send(self.post(deployment, "chat/completions").json(&body)).await?;
        Ok(chunk_stream(resp))
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        deployment: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let mut body = req.clone();
        body.model = deployment.to_owned();
        send_json(self.post(deployment, "embeddings").json(&body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderKind;

    #[test]
    fn deployment_url_carries_api_version() {
        let mut s =
            ProviderSettings::new("az", ProviderKind::Azure, "https://acme.openai.azure.com/");
        s.api_version = Some("2024-06-01".into());
        let p = AzureProvider::new(s, reqwest::Client::new());
        assert_eq!(
            p.url("gpt4o-prod", "chat/completions"),
            "https://acme.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01"
        );
    }
}
