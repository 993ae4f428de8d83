//! Test support shared by the adapter tests: fixtures, a recording fake upstream, and a stream
//! assembler that folds OpenAI chunks back into one answer.
#![allow(dead_code)] // each test crate uses a different subset

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use serde_json::Value;
use switchyard_api::{ChatCompletionChunk, Role, Usage};
use switchyard_providers::{ChunkStream, ProviderError};

pub fn fixture(path: &str) -> String {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

pub fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture(path)).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// What the fake upstream answers to every request.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Canned {
    pub fn json(body: String) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/json")],
            body,
        }
    }

    pub fn sse(body: String) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "text/event-stream")],
            body,
        }
    }

    pub fn error(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json")],
            body,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// One request as the fake upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path plus query string.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct FakeUpstream {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeUpstream {
    /// Binds an ephemeral local port and answers every request with `canned`.
    pub async fn start(canned: Canned) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                let canned = canned.clone();
                async move {
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let target = uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(Recorded {
                        method,
                        target,
                        headers,
                        body,
                    });
                    respond(&canned)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}"),
            requests,
        }
    }

    /// The single request the test expects to have been made.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests.lock().unwrap();
        assert_eq!(requests.len(), 1, "expected exactly one upstream request");
        requests[0].clone()
    }
}

fn respond(canned: &Canned) -> Response {
    let mut headers = HeaderMap::new();
    for (k, v) in &canned.headers {
        headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let status = StatusCode::from_u16(canned.status).unwrap();
    (status, headers, canned.body.clone()).into_response()
}

/// A stream's chunks folded back into one answer, the way an OpenAI client would.
#[derive(Debug, Default)]
pub struct Assembled {
    pub chunks: Vec<ChatCompletionChunk>,
    pub text: String,
    /// (id, name, arguments) by tool-call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub error: Option<ProviderError>,
}

impl Assembled {
    pub fn first_role(&self) -> Option<Role> {
        self.chunks
            .first()
            .and_then(|c| c.choices.first())
            .and_then(|c| c.delta.role)
    }

    /// Whether the stream ended with the usage-only chunk OpenAI sends for `include_usage`.
    pub fn ends_with_usage_chunk(&self) -> bool {
        self.chunks
            .last()
            .is_some_and(|c| c.choices.is_empty() && c.usage.is_some())
    }
}

pub async fn assemble(mut stream: ChunkStream) -> Assembled {
    let mut out = Assembled::default();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                assert!(out.error.is_none(), "stream yielded after an error");
                out.error = Some(e);
                continue;
            }
        };
        assert!(out.error.is_none(), "stream yielded after an error");
        for choice in &chunk.choices {
            if let Some(t) = &choice.delta.content {
                out.text.push_str(t);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                let i = call.index as usize;
                if out.tool_calls.len() <= i {
                    out.tool_calls.resize(i + 1, Default::default());
                }
                let slot = &mut out.tool_calls[i];
                if let Some(id) = &call.id {
                    slot.0.clone_from(id);
                }
                if let Some(f) = &call.function {
                    if let Some(name) = &f.name {
                        slot.1.clone_from(name);
                    }
                    if let Some(args) = &f.arguments {
                        slot.2.push_str(args);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                out.finish_reason.clone_from(&choice.finish_reason);
            }
        }
        if chunk.usage.is_some() {
            out.usage = chunk.usage;
        }
        out.chunks.push(chunk);
    }
    out
}
