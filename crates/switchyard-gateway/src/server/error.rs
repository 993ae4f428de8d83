//! Every failure the client can see, mapped to a status and OpenAI's error envelope.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use switchyard_api::ErrorBody;
use switchyard_providers::ErrorClass;

use crate::stages::admission::AdmissionError;
use crate::stages::auth::AuthError;
use crate::stages::call::{CallError, CallErrorKind};
use crate::stages::guardrails::Blocked;
use crate::stages::routing::RoutingError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            message,
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "missing_api_key",
                e.to_string(),
            ),
            AuthError::Invalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_api_key",
                e.to_string(),
            ),
            AuthError::Expired => Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "expired_api_key",
                e.to_string(),
            ),
            AuthError::NotAdmin => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "forbidden",
                e.to_string(),
            ),
        }
    }
}

impl From<AdmissionError> for ApiError {
    fn from(e: AdmissionError) -> Self {
        match &e {
            AdmissionError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                e.to_string(),
            ),
            AdmissionError::RateLimited { retry_after, .. } => Self {
                retry_after: Some(*retry_after),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    e.to_string(),
                )
            },
            AdmissionError::TooManyConcurrent { .. } => Self {
                retry_after: Some(Duration::from_secs(1)),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "concurrency_limit_exceeded",
                    e.to_string(),
                )
            },
            // OpenAI answers an exhausted quota with 429 `insufficient_quota`; SDKs know it.
            AdmissionError::BudgetExhausted { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "budget_exceeded",
                e.to_string(),
            ),
            AdmissionError::ModelNotAllowed(_) => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                e.to_string(),
            )
            .with_param("model"),
        }
    }
}

impl From<Blocked> for ApiError {
    fn from(e: Blocked) -> Self {
        let code = match e.guardrail {
            "secrets" => "guardrail_secrets",
            "injection" => "guardrail_injection",
            "banned_terms" => "guardrail_banned_terms",
            _ => "guardrail_pii",
        };
        Self::new(
            StatusCode::BAD_REQUEST,
            "guardrail_blocked",
            code,
            e.to_string(),
        )
        .with_param("messages")
    }
}

impl From<RoutingError> for ApiError {
    fn from(e: RoutingError) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            e.to_string(),
        )
        .with_param("model")
    }
}

impl From<CallError> for ApiError {
    /// After every fallback: the client's own mistakes are 400s; otherwise the last failure
    /// decides between 429 (rate limited), 504 (timed out), 503 (unreachable) and 502 (bad answer).
    fn from(e: CallError) -> Self {
        let upstream = |status, code, what: &str| {
            Self::new(
                status,
                "upstream_error",
                code,
                format!("{what} after {} attempt(s): {}", e.attempts, e.message),
            )
        };
        match e.kind {
            CallErrorKind::Upstream(ErrorClass::BadRequest) => {
                Self::invalid_request("upstream_rejected_request", e.message.clone())
            }
            CallErrorKind::Upstream(ErrorClass::Unsupported) => {
                Self::invalid_request("unsupported", e.message.clone())
            }
            CallErrorKind::Upstream(ErrorClass::ContextLength) => {
                Self::invalid_request("context_length_exceeded", e.message.clone())
                    .with_param("messages")
            }
            CallErrorKind::Upstream(ErrorClass::RateLimited) => Self {
                kind: "rate_limit_error",
                ..upstream(
                    StatusCode::TOO_MANY_REQUESTS,
                    "upstream_rate_limited",
                    "upstream rate limited",
                )
            },
            CallErrorKind::Upstream(ErrorClass::Timeout) | CallErrorKind::DeadlineExceeded => {
                upstream(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "upstream timed out",
                )
            }
            CallErrorKind::Upstream(ErrorClass::Connect) | CallErrorKind::CircuitOpen => upstream(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "upstream unavailable",
            ),
            CallErrorKind::Upstream(_) => {
                upstream(StatusCode::BAD_GATEWAY, "upstream_error", "upstream failed")
            }
        }
    }
}

impl ApiError {
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.message.clone(), self.kind, self.code);
        body.error.param = self.param.map(str::to_owned);
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(ra) = self.retry_after {
            let secs = ra.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
