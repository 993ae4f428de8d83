//! An OpenAI-compatible mock upstream with fault injection.
//!
//! Replies are deterministic (`"mock reply: " + <last user message>`) so tests can assert on
//! them, and failures are injected per request through directives in the model name or the
//! `x-mock-fault` header (the header, when present, replaces the model's directives). The spec
//! is split on `+`; unknown segments are ignored, so `gpt-4o-mini` is a plain model and
//! `gpt-4o-mini+slow-300+flaky-500-2` is a slow, initially failing one.
//!
//! | directive | effect |
//! | --- | --- |
//! | `status-<code>` | always answer that 4xx/5xx with an OpenAI error body (429: `retry-after-ms: 10`) |
//! | `flaky-<code>-<n>` | the first n calls for this model string fail so, later ones succeed |
//! | `retry-after-<secs>` | injected errors carry `retry-after: <secs>` instead of `retry-after-ms` |
//! | `slow-<ms>` | sleep before the response head |
//! | `hang` | never answer |
//! | `chunk-delay-<ms>` | sleep between stream events |
//! | `broken-stream` | cut the body part-way and drop the connection |
//! | `malformed` | a body (or, streaming, one `data:` line) that is not JSON |
//! | `context-limit` | OpenAI's 400 `context_length_exceeded` |
//! | `no-usage` | no usage in responses or streams |
//!
//! The server is also the baseline of the gateway benchmarks, so the hot path avoids locks held
//! across awaits, `Value` trees and copies of the request body.

mod chat;
mod embeddings;
mod faults;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub use faults::{Faults, Flaky, FAULT_HEADER};

/// Bodies larger than axum's 2 MB default are legitimate (long prompts, embedding batches).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Models listed by `GET /v1/models` even before any call has been seen.
const LISTED_MODELS: [&str; 3] = ["mock-model", "gpt-4o-mini", "text-embedding-3-small"];

/// Call counters and recorded requests, shared by every handler and the test-facing API.
#[derive(Clone, Default)]
pub struct MockState {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    total: AtomicU64,
    next_id: AtomicU64,
    models: Mutex<HashMap<Box<str>, ModelEntry>>,
}

#[derive(Default)]
struct ModelEntry {
    calls: u64,
    flaky_calls: u64,
    /// The raw body: a refcounted handle, so recording costs no copy; parsed only on demand.
    last_body: Bytes,
}

impl MockState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Chat and embedding calls received for this exact model string.
    pub fn calls(&self, model: &str) -> u64 {
        self.models().get(model).map_or(0, |e| e.calls)
    }

    pub fn total_calls(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Call counts of every model string seen since the last reset.
    pub fn calls_by_model(&self) -> BTreeMap<String, u64> {
        self.models()
            .iter()
            .map(|(model, e)| (model.to_string(), e.calls))
            .collect()
    }

    /// The last JSON body received for this model string.
    pub fn last_request(&self, model: &str) -> Option<Value> {
        let body = self.models().get(model)?.last_body.clone();
        serde_json::from_slice(&body).ok()
    }

    /// Forgets all calls, recorded bodies and flaky counters.
    pub fn reset(&self) {
        self.models().clear();
        self.inner.total.store(0, Ordering::Relaxed);
    }

    /// Counts a call and returns its 1-based ordinal among the flaky calls of its model string.
    /// Only calls carrying a flaky directive advance that ordinal, so a header-injected
    /// `flaky-…` starts from zero even if the model was called before.
    pub(crate) fn record(&self, model: &str, body: &Bytes, flaky: bool) -> u64 {
        self.inner.total.fetch_add(1, Ordering::Relaxed);
        let mut models = self.models();
        // Look up by &str first so the steady state allocates no key.
        let entry = match models.get_mut(model) {
            Some(entry) => entry,
            None => models.entry(model.into()).or_default(),
        };
        entry.calls += 1;
        entry.last_body = body.clone();
        if flaky {
            entry.flaky_calls += 1;
        }
        entry.flaky_calls
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn models(&self) -> MutexGuard<'_, HashMap<Box<str>, ModelEntry>> {
        // A panic while holding the lock cannot leave the counters inconsistent enough to matter.
        self.inner
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A mock server running in a background task; dropping it shuts the server down.
pub struct MockUpstream {
    addr: SocketAddr,
    state: MockState,
    server: JoinHandle<()>,
}

impl MockUpstream {
    /// Starts on an ephemeral port of 127.0.0.1.
    pub async fn start() -> io::Result<MockUpstream> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = MockState::new();
        let server = tokio::spawn(serve(listener, router(state.clone())));
        Ok(MockUpstream {
            addr,
            state,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        // A wildcard bind address is not something a client can connect to.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}/v1", SocketAddr::new(ip, self.addr.port()))
    }

    pub fn state(&self) -> &MockState {
        &self.state
    }

    pub fn calls(&self, model: &str) -> u64 {
        self.state.calls(model)
    }

    pub fn total_calls(&self) -> u64 {
        self.state.total_calls()
    }

    pub fn last_request(&self, model: &str) -> Option<Value> {
        self.state.last_request(model)
    }

    pub fn reset(&self) {
        self.state.reset();
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The mock's routes, for embedding in another server.
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::handle))
        .route("/v1/embeddings", post(embeddings::handle))
        .route("/v1/models", get(models))
        .route("/_mock/calls", get(calls))
        .route("/_mock/last/{model}", get(last))
        .route("/_mock/reset", post(reset))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

/// Serves `app` on `listener` forever. Dropping the future closes the listener and every open
/// connection, which `axum::serve` would instead keep alive until they go idle.
pub async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone()));
                }
                Err(err) => accept_backoff(&err).await,
            },
            // Reap finished connections so the set does not grow with every client ever seen.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, app: Router) {
    // Small SSE frames and benchmark round trips must not wait on Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    // A failed connection (client reset, broken-stream fault) concerns only that client.
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Per-connection errors are the client's problem; others (out of file descriptors) clear up
/// only with time, and retrying at once would spin.
async fn accept_backoff(err: &io::Error) {
    let per_connection = matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn models(State(state): State<MockState>) -> Response {
    let seen = state.calls_by_model();
    let created = unix_now();
    let data: Vec<Value> = LISTED_MODELS
        .iter()
        .copied()
        .chain(seen.keys().map(String::as_str))
        .filter(|m| !m.is_empty())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "switchyard-mock"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn calls(State(state): State<MockState>) -> Response {
    Json(state.calls_by_model()).into_response()
}

/// The last body received for a model string, so black-box tests can see what the upstream got.
async fn last(State(state): State<MockState>, Path(model): Path<String>) -> Response {
    match state.last_request(&model) {
        Some(body) => Json(body).into_response(),
        None => not_found().await,
    }
}

async fn reset(State(state): State<MockState>) -> Response {
    state.reset();
    Json(json!({"reset": true})).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "unknown mock endpoint",
        "invalid_request_error",
        None,
        Some("unknown_url"),
    )
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// An OpenAI-format error: `{"error": {"message", "type", "param", "code"}}`.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => json_response(status, bytes),
        Err(_) => status.into_response(),
    }
}

pub(crate) fn invalid_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
        Some("invalid_request"),
    )
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Reads the whole request body, answering 400 if it cannot be read.
pub(crate) async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|err| invalid_request(&format!("could not read request body: {err}")))
}

/// OpenAI's 400 for a body that is not JSON or not the expected shape.
pub(crate) fn invalid_json(err: &serde_json::Error) -> Response {
    invalid_request(&format!("invalid JSON body: {err}"))
}

/// Serializing our own response structs cannot fail in practice; if it ever does, say so as an
/// upstream 500 rather than panic.
pub(crate) fn encode_failed(err: &serde_json::Error) -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("mock could not encode its response: {err}"),
        "server_error",
        None,
        Some("server_error"),
    )
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token estimate used by every usage block: a quarter of the characters, never zero.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    chars.div_ceil(4).max(1) as u64
}

/// How long a broken body waits before failing: an error in the same poll as the data would
/// make hyper drop the connection before flushing it, response head included.
const FLUSH_GRACE: Duration = Duration::from_millis(5);

/// A body that sends `frames` and then fails, which hyper turns into an abrupt close instead
/// of a clean end of body.
pub(crate) fn broken_body(frames: Vec<Bytes>, delay: Option<Duration>) -> Body {
    use futures::StreamExt;
    let gap = delay.unwrap_or_default().max(FLUSH_GRACE);
    let cut = futures::stream::once(async move {
        tokio::time::sleep(gap).await;
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "mock fault: broken stream",
        ))
    });
    Body::from_stream(paced(frames.into_iter().map(Ok), delay).chain(cut))
}

/// A streamed body, optionally sleeping between items.
pub(crate) fn paced_body<I>(items: I, delay: Option<Duration>) -> Body
where
    I: IntoIterator<Item = Result<Bytes, io::Error>>,
    I::IntoIter: Send + 'static,
{
    Body::from_stream(paced(items, delay))
}

fn paced<I>(
    items: I,
    delay: Option<Duration>,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send + 'static
where
    I: IntoIterator<Item = Result<Bytes, io::Error>>,
    I::IntoIter: Send + 'static,
{
    use futures::StreamExt;
    futures::stream::iter(items.into_iter().enumerate()).then(move |(i, item)| async move {
        if let Some(delay) = delay.filter(|_| i > 0) {
            tokio::time::sleep(delay).await;
        }
        item
    })
}
