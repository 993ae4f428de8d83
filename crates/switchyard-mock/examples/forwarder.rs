//! The practical ceiling for a gateway on this machine: axum in front, reqwest behind, both JSON
//! bodies parsed, nothing else. `bench/` runs it beside Switchyard so the cost of every feature
//! above bare forwarding is visible in the same run.
//!
//! `cargo run --release -p switchyard-mock --example forwarder -- LISTEN UPSTREAM_BASE_URL`

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

async fn forward(State(up): State<Arc<Upstream>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let sent = up.client.post(up.url.clone()).json(&req).send().await;
    let Ok(resp) = sent else {
        return (StatusCode::BAD_GATEWAY, "upstream").into_response();
    };
    let Ok(bytes) = resp.bytes().await else {
        return (StatusCode::BAD_GATEWAY, "upstream body").into_response();
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return (StatusCode::BAD_GATEWAY, "upstream json").into_response();
    };
    let out = serde_json::to_vec(&value).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9100/v1".to_owned());
    let url = reqwest::Url::parse(&format!("{base}/chat/completions"))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let up = Arc::new(Upstream {
        client: reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(std::io::Error::other)?,
        url,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(up);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
