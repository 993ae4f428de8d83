//! Answer-side guardrails and the logged bodies, through the real server: PII and secrets the
//! model writes are redacted or blocked (streamed or not), banned terms, per-tenant overrides,
//! `response_format` validation with one repair retry, and prompts/answers in the request log
//! redacted unless a tenant opted in.

mod common;

use common::*;
use serde_json::{json, Value};

const RAW_KEY: &str = "sk-rawlog-test-key";

async fn start(extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let extra = format!(
        "[[tenants]]\nname = \"rawlog\"\nkeys = [\"{RAW_KEY}\"]\nlog_raw_bodies = true\n{extra}"
    );
    TestGateway::start_with(dir, &url, &extra).await
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "small", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

fn rid_of(resp: &reqwest::Response) -> String {
    resp.headers()["x-request-id"].to_str().unwrap().to_owned()
}

async fn record(gw: &TestGateway, rid: &str) -> Value {
    gw.admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap()
}

fn kinds(rec: &Value) -> Vec<String> {
    rec["metadata"]["guardrails"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The streamed text and the last event (an error object when a guardrail stopped the answer).
async fn stream_text(resp: reqwest::Response) -> (String, Value) {
    let body = resp.text().await.unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let text = events
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, events.last().cloned().unwrap_or(Value::Null))
}

const OUTPUT_REDACT: &str = "[guardrails]\noutput_pii = \"redact\"\noutput_secrets = \"block\"\n";

#[tokio::test]
async fn pii_in_answers_is_redacted_streamed_or_not() {
    let gw = start(OUTPUT_REDACT).await;
    // The mock repeats the question, so the answer carries the email the model "wrote".
    let q = "Write to jane.doe@example.com about order 98765432";
    let resp = gw.chat(ACME_KEY, ask(q, false)).await;
    assert_eq!(resp.status(), 200);
    let rid = rid_of(&resp);
    let body: Value = resp.json().await.unwrap();
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text, "mock reply: Write to [EMAIL] about order 98765432");
    assert!(kinds(&record(&gw, &rid).await).contains(&"EMAIL".to_owned()));

    let resp = gw.chat(ACME_KEY, ask(q, true)).await;
    assert_eq!(resp.status(), 200);
    let (text, last) = stream_text(resp).await;
    assert_eq!(text, "mock reply: Write to [EMAIL] about order 98765432");
    assert!(last["error"].is_null(), "{last}");
    gw.shutdown().await;
}

#[tokio::test]
async fn secrets_in_answers_are_blocked_streamed_or_not() {
    let gw = start(OUTPUT_REDACT).await;
    let q = "Say: the key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD ok";
    let (status, err) = error_of(gw.chat(ACME_KEY, ask(q, false)).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["type"], "guardrail_blocked");
    assert_eq!(err["error"]["code"], "guardrail_secrets");

    let resp = gw.chat(ACME_KEY, ask(q, true)).await;
    let rid = rid_of(&resp);
    let (text, last) = stream_text(resp).await;
    assert!(!text.contains("sk-proj"), "{text}");
    assert_eq!(last["error"]["code"], "guardrail_secrets", "{last}");
    let rec = record(&gw, &rid).await;
    assert_eq!(rec["status"], 400);
    assert!(!rec.to_string().contains("sk-proj-abc"), "{rec}");
    gw.shutdown().await;
}

#[tokio::test]
async fn input_placeholders_are_not_judged_as_the_models_pii() {
    let extra = "[guardrails]\npii = \"redact\"\noutput_pii = \"block\"\n";
    let gw = start(extra).await;
    let q = "Mail jane.doe@example.com please";
    let resp = gw.chat(ACME_KEY, ask(q, false)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The caller gets its own value back; the model only ever saw [EMAIL_1].
    assert_eq!(
        body["choices"][0]["message"]["content"],
        format!("mock reply: {q}")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn banned_terms_block_or_redact_and_overrides_apply_per_tenant() {
    let extra = r#"[guardrails]
banned_terms = ["project falcon"]
banned_terms_action = "block"
[[guardrails.overrides]]
tenant = "rawlog"
banned_terms_action = "redact"
"#;
    let gw = start(extra).await;
    let q = "What is the status of Project Falcon?";
    let (status, err) = error_of(gw.chat(ACME_KEY, ask(q, false)).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "guardrail_banned_terms");
    // Whole words only: "falconry" is not the term.
    let ok = gw
        .chat(ACME_KEY, ask("Tell me about project falconry", false))
        .await;
    assert_eq!(ok.status(), 200);

    let resp = gw.chat(RAW_KEY, ask(q, false)).await;
    assert_eq!(resp.status(), 200);
    let sent = gw.mock.last_request("gpt-4o-mini").unwrap().to_string();
    assert!(
        sent.contains("[BANNED]") && !sent.to_lowercase().contains("falcon?"),
        "{sent}"
    );
    gw.shutdown().await;
}

fn schema_request(first_user: &str) -> Value {
    json!({
        "model": "small",
        "messages": [{"role": "user", "content": first_user}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true,
            "schema": {"type": "object", "required": ["name", "age"],
                       "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}}
    })
}

#[tokio::test]
async fn invalid_json_answers_get_one_repair_retry() {
    let gw = start("[guardrails]\nresponse_format = \"repair\"\n").await;
    // The mock answers the Nth assistant turn with the Nth `json:` line.
    let script = "Extract the person.\njson: {\"name\": \"Ada\", \"age\": \"x\"}\njson: {\"name\": \"Ada\", \"age\": 36}";
    let resp = gw.chat(ACME_KEY, schema_request(script)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    let rid = rid_of(&resp);
    let body: Value = resp.json().await.unwrap();
    let answer: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(answer, json!({"name": "Ada", "age": 36}));
    // The repair turn told the model what was wrong.
    let sent = gw.mock.last_request("gpt-4o-mini").unwrap();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["role"], "assistant");
    assert!(
        msgs[2]["content"].as_str().unwrap().contains("/age"),
        "{sent}"
    );
    let rec = record(&gw, &rid).await;
    let f = rec["metadata"]["guardrails"][0].clone();
    assert_eq!(
        (f["kind"].as_str(), f["repaired"].as_bool()),
        (Some("RESPONSE_FORMAT"), Some(true))
    );

    // Still invalid after the repair: a 502 naming the problem.
    let script = "json: {\"name\": 1}";
    let (status, err) = error_of(gw.chat(ACME_KEY, schema_request(script)).await).await;
    assert_eq!(status, 502);
    assert_eq!(err["error"]["code"], "invalid_response_format");

    // Valid at once: one call, untouched.
    let script = "json: {\"name\": \"Bo\", \"age\": 7}";
    let resp = gw.chat(ACME_KEY, schema_request(script)).await;
    assert_eq!(resp.headers()["x-switchyard-attempts"], "1");

    // A malformed response_format is the client's mistake.
    let mut bad = schema_request("hi");
    bad["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "x"}});
    let (status, err) = error_of(gw.chat(ACME_KEY, bad).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["param"], "response_format");
    gw.shutdown().await;
}

#[tokio::test]
async fn logged_bodies_are_redacted_unless_the_tenant_opted_in() {
    let gw = start("").await;
    let q = "Refund card 4111 1111 1111 1111 for jane.doe@example.com, order 98765432";
    let resp = gw.chat(ACME_KEY, ask(q, false)).await;
    let rid = rid_of(&resp);
    let rec = record(&gw, &rid).await;
    let logged = rec["bodies"].to_string();
    assert!(
        !logged.contains("4111 1111") && !logged.contains("jane.doe@"),
        "{logged}"
    );
    assert!(logged.contains("order 98765432"), "{logged}");
    assert_eq!(rec["bodies"]["redacted"], true);
    assert!(rec["bodies"]["answer"]
        .as_str()
        .unwrap()
        .starts_with("mock reply:"));

    let resp = gw.chat(RAW_KEY, ask(q, true)).await;
    let rid = rid_of(&resp);
    let _ = resp.text().await.unwrap();
    let rec = record(&gw, &rid).await;
    assert_eq!(rec["bodies"]["redacted"], false);
    assert_eq!(rec["bodies"]["messages"][0]["content"], q);
    assert_eq!(rec["bodies"]["answer"], format!("mock reply: {q}"));
    gw.shutdown().await;
}

#[tokio::test]
async fn logged_bodies_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let gw = TestGateway::start_with(dir, &format!("{url}\"\nlog_bodies = \"off"), "").await;
    let resp = gw.chat(ACME_KEY, hello("small")).await;
    let rid = rid_of(&resp);
    let rec = record(&gw, &rid).await;
    assert!(rec.get("bodies").is_none(), "{rec}");
    gw.shutdown().await;
}
