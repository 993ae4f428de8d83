//! The HTTP surface: OpenAI-compatible endpoints, admin API, health and metrics.

mod admin;
mod cached;
mod chat;
mod embeddings;
mod error;
mod feedback;
mod health;
mod route;
mod stream;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use switchyard_store::{RequestLog, Store};

pub use admin::{reload_audited, run_retention};
pub use error::ApiError;

use crate::config::Config;
use crate::requestlog::RequestContext;
use crate::stages::admission::Admission;
use crate::stages::auth::{KeyRing, Principal};
use crate::stages::call::Caller;
use crate::stages::routing::ModelTable;
use arc_swap::ArcSwap;
use switchyard_state::StateBackend;

/// Everything built from the config file; swapped whole on a hot reload, while requests in
/// flight finish on the runtime they started with.
pub struct Runtime {
    pub config: Config,
    pub admission: Arc<Admission>,
    pub guardrails: crate::stages::guardrails::GuardrailSet,
    /// What of prompts and answers goes into the request log.
    pub bodies: crate::logbodies::BodyPolicy,
    pub models: ModelTable,
    pub caller: Caller,
    /// `"model": "auto"` and the tenants' routing rules.
    pub router: crate::stages::routing::auto::AutoRouter,
    /// `[[router.experiments]]`, by the model name each claims.
    pub experiments: crate::stages::experiment::Experiments,
    /// Per-model feedback outcomes for bandits; seeded from the store whenever the runtime is
    /// built, then counted by `POST /v1/feedback`.
    pub feedback: Arc<crate::stages::experiment::FeedbackStats>,
}

pub struct AppState {
    pub runtime: ArcSwap<Runtime>,
    /// Keys outlive reloads: API-created keys live in the store, config keys are re-synced.
    pub keys: KeyRing,
    pub log: RequestLog,
    pub store: Arc<dyn Store>,
    pub state: Arc<dyn StateBackend>,
    pub metrics: Option<PrometheusHandle>,
    pub shutting_down: AtomicBool,
    /// The file a reload reads (None when built from text, as in tests).
    pub config_path: Option<std::path::PathBuf>,
    pub(crate) http: reqwest::Client,
    /// Cached answers survive reloads; the cache policy is read from the current runtime.
    pub cache: Arc<crate::stages::cache::CacheStores>,
}

impl AppState {
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(embeddings::list_models))
        .route("/v1/feedback", post(feedback::feedback))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(admin::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish (up to
/// `[server] shutdown_grace_secs`), and flushes the request log before returning.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled_tx, mut signalled_rx) = tokio::sync::watch::channel(false);
    let drain_state = state.clone();
    // Responses are written whole; Nagle would only hold the last segment back.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown(async move {
        shutdown.await;
        drain_state.shutting_down.store(true, Ordering::SeqCst);
        tracing::info!("shutdown requested: draining in-flight requests");
        let _ = signalled_tx.send(true);
    });
    let grace = Duration::from_secs(state.runtime().config.server.shutdown_grace_secs);
    let grace_expired = async move {
        let _ = signalled_rx.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server => r,
        _ = grace_expired => {
            tracing::warn!("shutdown grace period expired with requests still in flight");
            Ok(())
        }
    };
    state.log.shutdown().await;
    tracing::info!("request log flushed");
    result
}

/// Auth and admission for an API request: the stages that need only headers run before a byte of
/// the body is read, then the body is read (capped) and parsed.
pub(crate) async fn admit<T: DeserializeOwned>(
    app: &AppState,
    rt: &Runtime,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Principal, T), ApiError> {
    let principal = app.keys.authenticate(headers, now_ms())?;
    ctx.set_principal(&principal);
    rt.admission.check_declared_size(headers)?;
    ctx.bind_admission(rt.admission.clone());
    rt.admission
        .admit_request(&principal, ctx.ticket_mut())
        .await?;
    // Backpressure from a request log that fell behind its store, before the body is read.
    app.log.wait_for_room().await;
    let bytes = read_body(body, rt.admission.max_body_bytes()).await?;
    let parsed = parse_json(&bytes)?;
    Ok((principal, parsed))
}

async fn read_body(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )),
        Err(e) => Err(ApiError::invalid_request(
            "body_read_error",
            format!("could not read the request body: {e}"),
        )),
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::invalid_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    // Tracking the path costs on every parse; only a body that fails is parsed again for it.
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("invalid JSON body: {inner}")
        } else if path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid value for `{path}`: {inner}")
        };
        ApiError::invalid_request("invalid_request", message)
    })
}

/// Answers an error, recording it in the request log first.
pub(crate) fn fail(ctx: RequestContext, err: ApiError) -> axum::response::Response {
    use axum::response::IntoResponse;
    let request_id = header_value(ctx.request_id());
    let rate_headers = ctx.ticket().rate_headers.clone();
    ctx.finish_err(err.status.as_u16(), err.code, &err.message);
    let mut resp = err.into_response();
    resp.headers_mut().insert("x-request-id", request_id);
    rate_headers.write(resp.headers_mut());
    resp
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
