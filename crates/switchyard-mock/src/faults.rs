//! Fault directives, parsed from the request's model name or the `x-mock-fault` header.
//!
//! The spec is split on `+`; each segment that names a directive turns it on and anything else
//! is ignored, so ordinary model names (`gpt-4o-mini`) carry no faults and `slow-300+flaky-500-2`
//! combines two.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::error_response;

/// Header that overrides the faults named by the model.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// Long enough that any sane client timeout fires first; the task dies with the server anyway.
const HANG: Duration = Duration::from_secs(3600);

/// Delay advertised by `retry-after-ms` on 429s: short so that retrying tests stay fast.
const RETRY_AFTER_MS: &str = "10";

/// The set of directives that apply to one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// `status-<code>`: every call answers this status.
    pub status: Option<StatusCode>,
    /// `flaky-<code>-<n>`: the first n calls for the model string answer this status.
    pub flaky: Option<Flaky>,
    /// `retry-after-<secs>`: error responses carry `retry-after` instead of `retry-after-ms`.
    pub retry_after_secs: Option<u64>,
    /// `slow-<ms>`: delay before the response head.
    pub slow: Option<Duration>,
    /// `hang`: never answer.
    pub hang: bool,
    /// `chunk-delay-<ms>`: delay between stream events.
    pub chunk_delay: Option<Duration>,
    /// `broken-stream`: drop the connection part-way through the body.
    pub broken_stream: bool,
    /// `malformed`: a body (or one stream event) that is not JSON.
    pub malformed: bool,
    /// `context-limit`: OpenAI's `context_length_exceeded` 400.
    pub context_limit: bool,
    /// `no-usage`: leave usage out of responses and streams.
    pub no_usage: bool,
    /// `confidence-<percent>`: non-streamed answers carry token logprobs whose mean
    /// probability is this (what a cascade reads as the model's confidence).
    pub confidence: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flaky {
    pub status: StatusCode,
    pub count: u64,
}

impl Faults {
    /// Parses a directive spec; unknown or ill-formed segments are ignored.
    pub fn parse(spec: &str) -> Faults {
        let mut faults = Faults::default();
        for segment in spec.split('+') {
            faults.apply(segment);
        }
        faults
    }

    /// The faults for a request: the header's when present, otherwise the model's.
    pub fn for_request(model: &str, headers: &HeaderMap) -> Faults {
        match headers.get(FAULT_HEADER).and_then(|v| v.to_str().ok()) {
            Some(spec) if !spec.trim().is_empty() => Faults::parse(spec.trim()),
            _ => Faults::parse(model),
        }
    }

    /// Whether nothing is injected, i.e. the request gets the normal answer.
    pub fn is_empty(&self) -> bool {
        *self == Faults::default()
    }

    fn apply(&mut self, segment: &str) {
        if segment == "hang" {
            self.hang = true;
        } else if segment == "broken-stream" {
            self.broken_stream = true;
        } else if segment == "malformed" {
            self.malformed = true;
        } else if segment == "context-limit" {
            self.context_limit = true;
        } else if segment == "no-usage" {
            self.no_usage = true;
        } else if let Some(code) = segment.strip_prefix("status-") {
            if let Some(status) = error_status(code) {
                self.status = Some(status);
            }
        } else if let Some(rest) = segment.strip_prefix("flaky-") {
            if let Some((code, n)) = rest.split_once('-') {
                if let (Some(status), Ok(count)) = (error_status(code), n.parse()) {
                    self.flaky = Some(Flaky { status, count });
                }
            }
        } else if let Some(secs) = segment.strip_prefix("retry-after-") {
            if let Ok(secs) = secs.parse() {
                self.retry_after_secs = Some(secs);
            }
        } else if let Some(ms) = segment.strip_prefix("slow-") {
            if let Ok(ms) = ms.parse() {
                self.slow = Some(Duration::from_millis(ms));
            }
        } else if let Some(p) = segment.strip_prefix("confidence-") {
            if let Ok(p) = p.parse::<u8>() {
                self.confidence = Some(p.clamp(1, 100));
            }
        } else if let Some(ms) = segment.strip_prefix("chunk-delay-") {
            if let Ok(ms) = ms.parse() {
                self.chunk_delay = Some(Duration::from_millis(ms));
            }
        }
    }

    /// Runs the directives that act before any body is built: delays, then error statuses.
    /// `flaky_ordinal` is this call's 1-based position among flaky calls for its model string.
    pub(crate) async fn intercept(&self, flaky_ordinal: u64) -> Option<Response> {
        if self.hang {
            tokio::time::sleep(HANG).await;
        }
        if let Some(delay) = self.slow {
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = self.status {
            return Some(self.injected_error(status));
        }
        if let Some(flaky) = self.flaky {
            if flaky_ordinal <= flaky.count {
                return Some(self.injected_error(flaky.status));
            }
        }
        if self.context_limit {
            return Some(error_response(
                StatusCode::BAD_REQUEST,
                "This model's maximum context length is 4096 tokens. However, your messages \
                 resulted in 9000 tokens.",
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            ));
        }
        None
    }

    fn injected_error(&self, status: StatusCode) -> Response {
        let (kind, code) = error_kind(status);
        let message = format!("mock fault: injected HTTP {}", status.as_u16());
        let mut response = error_response(status, &message, kind, None, Some(code));
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert("retry-after", HeaderValue::from(secs));
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert("retry-after-ms", HeaderValue::from_static(RETRY_AFTER_MS));
        }
        response
    }
}

/// Only 4xx/5xx make sense as injected failures; anything else leaves the segment ignored.
fn error_status(code: &str) -> Option<StatusCode> {
    let code: u16 = code.parse().ok()?;
    if (400..=599).contains(&code) {
        StatusCode::from_u16(code).ok()
    } else {
        None
    }
}

/// OpenAI's `type` and `code` for a status, so clients that branch on them see familiar values.
fn error_kind(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("invalid_request_error", "invalid_request"),
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("not_found_error", "model_not_found"),
        408 => ("timeout_error", "request_timeout"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        _ if status.is_client_error() => ("invalid_request_error", "client_error"),
        503 => ("server_error", "service_unavailable"),
        504 => ("server_error", "gateway_timeout"),
        _ => ("server_error", "server_error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_model_names_have_no_faults() {
        for name in [
            "gpt-4o-mini",
            "claude-3-5-sonnet",
            "status",
            "slow-",
            "flaky-500",
            "",
        ] {
            assert!(Faults::parse(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn segments_combine() {
        let f = Faults::parse("gpt-4o+slow-300+flaky-500-2+retry-after-3+chunk-delay-5+no-usage");
        assert_eq!(f.slow, Some(Duration::from_millis(300)));
        assert_eq!(
            f.flaky,
            Some(Flaky {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                count: 2
            })
        );
        assert_eq!(f.retry_after_secs, Some(3));
        assert_eq!(f.chunk_delay, Some(Duration::from_millis(5)));
        assert!(f.no_usage && !f.hang && !f.malformed);
    }

    #[test]
    fn flags_and_statuses() {
        let f = Faults::parse("hang+broken-stream+malformed+context-limit+status-429");
        assert!(f.hang && f.broken_stream && f.malformed && f.context_limit);
        assert_eq!(f.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert!(Faults::parse("status-200").is_empty());
        assert!(Faults::parse("status-abc+flaky-x-1+flaky-500-y").is_empty());
    }

    #[test]
    fn header_wins_over_model() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            Faults::for_request("status-500", &headers).status,
            StatusCode::from_u16(500).ok()
        );
        headers.insert(FAULT_HEADER, HeaderValue::from_static("slow-1"));
        let f = Faults::for_request("status-500", &headers);
        assert_eq!(f.status, None);
        assert_eq!(f.slow, Some(Duration::from_millis(1)));
    }
}
