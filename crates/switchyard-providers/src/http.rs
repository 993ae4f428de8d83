//! HTTP plumbing shared by the adapters: sending, status classification, SSE decoding.

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use crate::ProviderError;

/// Sends the request and turns transport failures and non-2xx answers into `ProviderError`s.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    Err(ProviderError::from_status(status.as_u16(), &headers, &body))
}

/// Sends the request and decodes a JSON body of type `T`.
pub(crate) async fn send_json<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, ProviderError> {
    let resp = send(req).await?;
    let body = resp.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed(e.to_string()))
}

pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else if e.is_connect() {
        ProviderError::Connect(error_chain(&e))
    } else if e.is_decode() || e.is_body() {
        ProviderError::StreamBroken(error_chain(&e))
    } else {
        ProviderError::Connect(error_chain(&e))
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The SSE events of a streaming response. Transport errors mid-stream become `StreamBroken`.
pub(crate) fn sse_events(
    resp: reqwest::Response,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + 'static {
    sse_from_bytes(resp.bytes_stream())
}

/// [`sse_events`] over any byte stream (reqwest's or hyper's body).
pub(crate) fn sse_from_bytes<S, B, E>(
    bytes: S,
) -> impl Stream<Item = Result<Event, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send,
    E: std::error::Error + Send,
{
    bytes.eventsource().map(|ev| {
        ev.map_err(|e| match e {
            eventsource_stream::EventStreamError::Transport(t) => {
                ProviderError::StreamBroken(error_chain(&t))
            }
            other => ProviderError::Malformed(other.to_string()),
        })
    })
}

/// Decodes one SSE `data:` payload as JSON.
pub(crate) fn parse_event<T: DeserializeOwned>(data: &str) -> Result<T, ProviderError> {
    serde_json::from_str(data)
        .map_err(|e| ProviderError::Malformed(format!("bad stream event: {e}")))
}

/// Adds `bearer` auth and the configured extra headers.
pub(crate) fn with_headers(
    mut req: reqwest::RequestBuilder,
    headers: &[(String, String)],
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req
}
