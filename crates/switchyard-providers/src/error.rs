use std::time::Duration;

/// Why an upstream call failed, classified so the call stage can decide: retry, fall back, or
/// hand the error to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("upstream returned HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
        context_length_exceeded: bool,
    },
    #[error("could not connect to upstream: {0}")]
    Connect(String),
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream sent a malformed response: {0}")]
    Malformed(String),
    #[error("upstream stream broke: {0}")]
    StreamBroken(String),
    /// The provider cannot serve this kind of request at all (e.g. embeddings on Anthropic).
    #[error("{0}")]
    Unsupported(String),
    /// The request cannot be expressed in this provider's API.
    #[error("{0}")]
    InvalidRequest(String),
}

/// Coarse failure classes, used for retry decisions, metrics labels and the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    RateLimited,
    ServerError,
    Connect,
    Timeout,
    Malformed,
    StreamBroken,
    ContextLength,
    /// The upstream rejected our credentials or does not know the model: a configuration problem,
    /// so another deployment may still serve the request.
    UpstreamConfig,
    /// The upstream says the request itself is bad: no other model will accept it either.
    BadRequest,
    Unsupported,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::ServerError => "server_error",
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Malformed => "malformed_response",
            ErrorClass::StreamBroken => "stream_broken",
            ErrorClass::ContextLength => "context_length_exceeded",
            ErrorClass::UpstreamConfig => "upstream_config",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::Unsupported => "unsupported",
        }
    }

    /// Worth another attempt at the same model after a backoff.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::ServerError
                | ErrorClass::Connect
                | ErrorClass::Timeout
                | ErrorClass::Malformed
                | ErrorClass::StreamBroken
        )
    }

    /// Counts against the provider's circuit breaker: the provider, not the request, is unwell.
    pub fn is_provider_fault(self) -> bool {
        matches!(
            self,
            ErrorClass::ServerError
                | ErrorClass::Connect
                | ErrorClass::Timeout
                | ErrorClass::Malformed
                | ErrorClass::StreamBroken
        )
    }
}

impl ProviderError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Status {
                context_length_exceeded: true,
                ..
            } => ErrorClass::ContextLength,
            ProviderError::Status { status, .. } => match *status {
                429 => ErrorClass::RateLimited,
                401 | 403 | 404 => ErrorClass::UpstreamConfig,
                408 => ErrorClass::Timeout,
                400..=499 => ErrorClass::BadRequest,
                _ => ErrorClass::ServerError,
            },
            ProviderError::Connect(_) => ErrorClass::Connect,
            ProviderError::Timeout => ErrorClass::Timeout,
            ProviderError::Malformed(_) => ErrorClass::Malformed,
            ProviderError::StreamBroken(_) => ErrorClass::StreamBroken,
            ProviderError::Unsupported(_) => ErrorClass::Unsupported,
            ProviderError::InvalidRequest(_) => ErrorClass::BadRequest,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds a `Status` error from an upstream's non-2xx answer, whatever its error format.
    pub fn from_status(status: u16, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let message = error_message(body);
        let context_length_exceeded = is_context_length_error(status, &message, body);
        ProviderError::Status {
            status,
            message,
            retry_after: retry_after(headers),
            context_length_exceeded,
        }
    }
}

/// The human-readable message from OpenAI (`error.message`), Anthropic (`error.message`) and
/// Gemini (`error.message`) error bodies, or the raw body cut short.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let msg = v
            .pointer("/error/message")
            .or_else(|| v.pointer("/message"))
            .or_else(|| v.get("error"))
            .and_then(|m| m.as_str());
        if let Some(m) = msg {
            return m.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

fn is_context_length_error(status: u16, message: &str, body: &[u8]) -> bool {
    if !(400..500).contains(&status) || status == 429 {
        return false;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if v.pointer("/error/code").and_then(|c| c.as_str()) == Some("context_length_exceeded") {
            return true;
        }
    }
    let m = message.to_ascii_lowercase();
    [
        "context length",
        "context_length",
        "context window",
        "maximum context",
        "prompt is too long",
        "input is too long",
        "too many tokens",
        "exceeds the maximum number of tokens",
        "input token count",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds. HTTP-date values are ignored: upstreams
/// that rate-limit LLM calls send seconds, and a wrong clock would make a date dangerous.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    get("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| get("retry-after").map(Duration::from_secs_f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_openai_context_length() {
        let body = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#;
        let e = ProviderError::from_status(400, &http::HeaderMap::new(), body);
        assert_eq!(e.class(), ErrorClass::ContextLength);
    }

    #[test]
    fn classifies_anthropic_prompt_too_long() {
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        let e = ProviderError::from_status(400, &http::HeaderMap::new(), body);
        assert_eq!(e.class(), ErrorClass::ContextLength);
        assert!(e.to_string().contains("prompt is too long"));
    }

    #[test]
    fn reads_retry_after() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", http::HeaderValue::from_static("2"));
        let e = ProviderError::from_status(429, &h, b"slow down");
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", http::HeaderValue::from_static("150"));
        let e = ProviderError::from_status(429, &h, b"");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(150)));
    }

    #[test]
    fn plain_bad_request_is_not_retryable() {
        let e = ProviderError::from_status(
            400,
            &http::HeaderMap::new(),
            b"{\"error\":{\"message\":\"bad temperature\"}}",
        );
        assert_eq!(e.class(), ErrorClass::BadRequest);
        assert!(!e.class().is_retryable());
        let e = ProviderError::from_status(503, &http::HeaderMap::new(), b"");
        assert!(e.class().is_retryable() && e.class().is_provider_fault());
    }
}
