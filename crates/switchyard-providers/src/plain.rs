//! Plain-HTTP upstreams (self-hosted vLLM, TGI, Ollama, llama.cpp server, sidecars) go straight
//! through hyper's pooled client instead of reqwest.
//!
//! Why not reqwest here: on the gateway benchmark reqwest's own layers cost about a tenth of the
//! gateway's CPU per request on top of hyper's — its redirect policy re-parses the URL (with
//! IDNA) on every request and again for the response, plus proxy matching and a client clone per
//! call. A plain-HTTP upstream needs none of it: no TLS, no proxy, no redirects from an
//! inference server. TLS upstreams (hosted APIs) keep reqwest, where the handshake, HTTP/2 and the
//! network dominate. With an HTTP proxy configured in the environment, reqwest keeps every
//! upstream, as before.

use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Event;
use futures::Stream;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{error_chain, sse_from_bytes};
use crate::ProviderError;

/// As reqwest is configured by the gateway, so the two paths behave alike.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// One `http://` endpoint (chat or embeddings) of one provider: its URI and headers are built
/// once, so a request only clones them.
pub(crate) struct PlainEndpoint {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
}

impl PlainEndpoint {
    /// `None` when the URL is not plain `http://` or a configured header is not a valid HTTP
    /// header: such providers stay on reqwest, which reports the problem per request as before.
    pub(crate) fn new(
        client: &Client<HttpConnector, Full<Bytes>>,
        url: &str,
        auth: Option<&HeaderValue>,
        extra: &[(String, String)],
    ) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() || proxy_configured() {
            return None;
        }
        let mut headers = HeaderMap::with_capacity(2 + extra.len());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(auth) = auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        for (name, value) in extra {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            headers.append(name, HeaderValue::from_str(value).ok()?);
        }
        Some(Self {
            client: client.clone(),
            uri,
            headers,
        })
    }

    /// POSTs `body` as JSON and decodes the JSON answer. `size_hint` is the expected size of the
    /// serialized body (see [`post`](Self::post)).
    pub(crate) async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        body: &B,
        size_hint: usize,
    ) -> Result<T, ProviderError> {
        let resp = self.post(body, size_hint).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ProviderError::StreamBroken(error_chain(&e)))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Malformed(e.to_string()))
    }

    /// POSTs `body` as JSON and returns the answer's server-sent events.
    pub(crate) async fn post_sse<B: Serialize>(
        &self,
        body: &B,
        size_hint: usize,
    ) -> Result<impl Stream<Item = Result<Event, ProviderError>> + Send + 'static, ProviderError>
    {
        let resp = self.post(body, size_hint).await?;
        Ok(sse_from_bytes(resp.into_body().into_data_stream()))
    }

    /// The body is serialized into a buffer of `size_hint` bytes
    /// ([`switchyard_api::json_size_hint`]) instead of one grown from empty.
    async fn post<B: Serialize>(
        &self,
        body: &B,
        size_hint: usize,
    ) -> Result<http::Response<hyper::body::Incoming>, ProviderError> {
        let mut json = Vec::with_capacity(size_hint);
        serde_json::to_writer(&mut json, body)
            .map_err(|e| ProviderError::Malformed(format!("request body: {e}")))?;
        let mut req = Request::post(self.uri.clone())
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| ProviderError::Connect(e.to_string()))?;
        *req.headers_mut() = self.headers.clone();
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| ProviderError::Connect(error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let headers = resp.headers().clone();
        let body = match resp.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        Err(ProviderError::from_status(status.as_u16(), &headers, &body))
    }
}

/// reqwest sends plain HTTP through the proxy these variables name; with one set, every
/// upstream stays on reqwest so proxy and `NO_PROXY` rules keep applying.
fn proxy_configured() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// One pool per provider, as reqwest keeps one per host.
pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_with_valid_headers_takes_this_path() {
        let c = client();
        let auth = HeaderValue::from_static("Bearer k");
        let local = "http://127.0.0.1:8000/v1/chat/completions";
        // Under a configured proxy every upstream stays on reqwest.
        let expect_plain = !proxy_configured();
        assert_eq!(
            PlainEndpoint::new(&c, local, Some(&auth), &[]).is_some(),
            expect_plain
        );
        assert!(PlainEndpoint::new(&c, "https://api.openai.com/v1/x", None, &[]).is_none());
        assert!(PlainEndpoint::new(&c, "not a url", None, &[]).is_none());
        let bad = [("bad header".to_owned(), "v".to_owned())];
        assert!(PlainEndpoint::new(&c, local, None, &bad).is_none());
        let good = [("OpenAI-Organization".to_owned(), "org-1".to_owned())];
        if let Some(ep) = PlainEndpoint::new(&c, local, Some(&auth), &good) {
            assert_eq!(ep.headers["openai-organization"], "org-1");
            assert_eq!(ep.headers[CONTENT_TYPE], "application/json");
            assert_eq!(ep.headers[AUTHORIZATION], "Bearer k");
            assert_eq!(ep.uri.path(), "/v1/chat/completions");
        }
    }
}
