//! OpenAI and every OpenAI-compatible server (vLLM, TGI, Ollama, llama.cpp server, Groq, Together...).
//! The wire format is ours already, so this adapter only swaps the model id and forces usage
//! reporting on streams.

use async_trait::async_trait;
use eventsource_stream::Event;
use futures::{Stream, StreamExt};
use switchyard_api::{
    ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, EmbeddingsRequest,
    EmbeddingsResponse,
};

use crate::http::{parse_event, send, send_json, sse_events, with_headers};
use crate::plain::{self, PlainEndpoint};
use crate::upstream_body::UpstreamChatBody;
use crate::{ChunkStream, Provider, ProviderError, ProviderSettings};

pub struct OpenAiProvider {
    settings: ProviderSettings,
    client: reqwest::Client,
    // Parsed once: URL parsing (with IDNA) and auth-header formatting showed up per request.
    chat_url: String,
    embeddings_url: String,
    parsed_chat_url: Option<reqwest::Url>,
    parsed_embeddings_url: Option<reqwest::Url>,
    auth: Option<http::HeaderValue>,
    /// Set for `http://` upstreams, which skip reqwest (see [`crate::plain`]).
    plain_chat: Option<PlainEndpoint>,
    plain_embeddings: Option<PlainEndpoint>,
}

impl OpenAiProvider {
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        let chat_url = format!("{}/chat/completions", settings.base_url);
        let embeddings_url = format!("{}/embeddings", settings.base_url);
        let auth = settings.api_key.as_ref().and_then(|key| {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        let plain_client = plain::client();
        let plain =
            |url: &str| PlainEndpoint::new(&plain_client, url, auth.as_ref(), &settings.headers);
        Self {
            plain_chat: plain(&chat_url),
            plain_embeddings: plain(&embeddings_url),
            parsed_chat_url: reqwest::Url::parse(&chat_url).ok(),
            parsed_embeddings_url: reqwest::Url::parse(&embeddings_url).ok(),
            chat_url,
            embeddings_url,
            auth,
            settings,
            client,
        }
    }

    fn post(&self, parsed: &Option<reqwest::Url>, raw: &str) -> reqwest::RequestBuilder {
        // An unparsable URL goes to reqwest as text so the error surfaces on the request.
        let mut req = match parsed {
            Some(url) => self.client.post(url.clone()),
            None => self.client.post(raw),
        };
        if let Some(auth) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, auth.clone());
        }
        with_headers(req, &self.settings.headers)
    }

    fn post_chat(&self) -> reqwest::RequestBuilder {
        self.post(&self.parsed_chat_url, &self.chat_url)
    }
}

/// Decodes an OpenAI-format SSE stream, ending at `[DONE]`.
pub(crate) fn chunk_stream(resp: reqwest::Response) -> ChunkStream {
    chunk_events(sse_events(resp))
}

fn chunk_events(
    events: impl Stream<Item = Result<Event, ProviderError>> + Send + 'static,
) -> ChunkStream {
    events
        .take_while(|ev| {
            let done = matches!(ev, Ok(e) if e.data.trim() == "[DONE]");
            futures::future::ready(!done)
        })
        .filter_map(|ev| async move {
            match ev {
                Ok(e) if e.data.trim().is_empty() => None,
                Ok(e) => Some(decode_chunk(&e.data)),
                Err(err) => Some(Err(err)),
            }
        })
        .boxed()
}

fn decode_chunk(data: &str) -> Result<ChatCompletionChunk, ProviderError> {
    let value: serde_json::Value = parse_event(data)?;
    if let Some(err) = value.get("error") {
        let message = err
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("upstream error inside the stream");
        return Err(ProviderError::StreamBroken(message.to_owned()));
    }
    serde_json::from_value(value).map_err(|e| ProviderError::Malformed(format!("bad chunk: {e}")))
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.settings.name
    }

    async fn chat(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChatCompletionResponse, ProviderError> {
        let body = UpstreamChatBody::new(req, upstream_model, false);
        match &self.plain_chat {
            Some(plain) => plain.post_json(&body, body.json_size_hint()).await,
            None => send_json(self.post_chat().json(&body)).await,
        }
    }

    async fn chat_stream(
        &self,
        req: &ChatCompletionRequest,
        upstream_model: &str,
    ) -> Result<ChunkStream, ProviderError> {
        let body = UpstreamChatBody::new(req, upstream_model, true);
        if let Some(plain) = &self.plain_chat {
            return Ok(chunk_events(
                plain.post_sse(&body, body.json_size_hint()).await?,
            ));
        }
        let resp = send(self.post_chat().json(&body)).await?;
        Ok(chunk_stream(resp))
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        upstream_model: &str,
    ) -> Result<EmbeddingsResponse, ProviderError> {
        let mut body = req.clone();
        body.model = upstream_model.to_owned();
        if let Some(plain) = &self.plain_embeddings {
            return plain
                .post_json(&body, switchyard_api::json_size_hint(body.input.chars(), 1))
                .await;
        }
        send_json(
            self.post(&self.parsed_embeddings_url, &self.embeddings_url)
                .json(&body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_event_inside_stream_is_an_error() {
        assert!(decode_chunk(r#"{"error":{"message":"overloaded"}}"#).is_err());
        let ok = decode_chunk(
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert!(ok.has_content());
    }
}
