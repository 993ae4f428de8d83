//! Starts the real gateway on an ephemeral port in front of the workspace's mock upstream.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_gateway::{AppState, Config};
use switchyard_mock::MockUpstream;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const ADMIN_KEY: &str = "sk-admin-test-0123456789";
pub const ACME_KEY: &str = "sk-acme-test-key-1";
pub const LIMITED_KEY: &str = "sk-limited-test-key";

pub struct TestGateway {
    pub url: String,
    pub state: Arc<AppState>,
    pub mock: MockUpstream,
    pub dir: TempDir,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    log_task: Option<tokio::task::JoinHandle<()>>,
}

/// The gateway config used by the tests: every fault of the mock has a model in front of it.
pub fn config_text(mock_url: &str, store_url: &str, extra: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
[admin]
key = "{ADMIN_KEY}"
[retry]
backoff_base_ms = 5
backoff_max_ms = 20
[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_url}"
api_key = "sk-upstream"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "small"
provider = "mock"
upstream = "gpt-4o-mini"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
fallbacks = ["large"]
[[models]]
name = "large"
provider = "mock"
upstream = "gpt-4o"
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
context_window = 128000
[[models]]
name = "dead"
provider = "dead"
upstream = "gpt-4o-mini"
fallbacks = ["large"]
[[models]]
name = "error500"
provider = "mock"
upstream = "status-500"
fallbacks = ["large"]
[[models]]
name = "hang"
provider = "mock"
upstream = "hang"
timeout_ms = 300
fallbacks = ["large"]
[[models]]
name = "flaky429"
provider = "mock"
upstream = "flaky-429-2"
[[models]]
name = "always429"
provider = "mock"
upstream = "status-429"
[[models]]
name = "short-context"
provider = "mock"
upstream = "context-limit"
context_window = 4096
fallbacks = ["small", "large"]
[[models]]
name = "broken"
provider = "mock"
upstream = "broken-stream"
fallbacks = ["large"]
[[models]]
name = "malformed"
provider = "mock"
upstream = "malformed"
fallbacks = ["large"]
[[models]]
name = "bad-request"
provider = "mock"
upstream = "status-400"
fallbacks = ["large"]
[[models]]
name = "no-usage"
provider = "mock"
upstream = "no-usage"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 1.0
[[tenants]]
name = "acme"
keys = ["{ACME_KEY}"]
[[tenants]]
name = "limited"
keys = ["{LIMITED_KEY}"]
rpm = 2
{extra}
"#
    )
}

impl TestGateway {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url = format!("sqlite://{}/switchyard.db", dir.path().display());
        Self::start_with(dir, &store_url, "").await
    }

    pub async fn start_with(dir: TempDir, store_url: &str, extra: &str) -> Self {
        let mock = MockUpstream::start().await.expect("mock upstream");
        Self::start_full(dir, mock, store_url, extra).await
    }

    pub async fn start_full(
        dir: TempDir,
        mock: MockUpstream,
        store_url: &str,
        extra: &str,
    ) -> Self {
        let text = config_text(&mock.base_url(), store_url, extra);
        let config = Config::parse(&text).expect("test config is valid");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, &text).expect("config written");
        let gateway = switchyard_gateway::build_from(config, Some(path))
            .await
            .expect("gateway builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let state = gateway.state.clone();
        let server = tokio::spawn(switchyard_gateway::serve(
            gateway.state,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            state,
            mock,
            dir,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            log_task: Some(gateway.log_task),
        }
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.url, path))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.url, path))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("request sent")
    }

    /// Graceful shutdown, as on SIGTERM: waits for the server and the request log to finish.
    pub async fn shutdown(mut self) -> (MockUpstream, TempDir) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server io");
        }
        if let Some(log) = self.log_task.take() {
            log.await.expect("log task");
        }
        (self.mock, self.dir)
    }
}

pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

/// Error bodies must be OpenAI's envelope.
pub async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body is JSON");
    let err = &body["error"];
    assert!(err["message"].is_string(), "error.message missing: {body}");
    assert!(err["type"].is_string(), "error.type missing: {body}");
    assert!(err.get("code").is_some(), "error.code missing: {body}");
    (status, body)
}
