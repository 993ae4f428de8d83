//! `"model": "auto"` through the real server: tiers picked by the classifier, every response
//! explaining its route, the decision in the request log, data policies keeping PII on
//! self-hosted providers, and a replay of the logged traffic under a new config.

mod common;

use common::*;
use serde_json::{json, Value};

const BANK_KEY: &str = "sk-bank-test-key-1";

fn routing_config(mock_url: &str) -> String {
    format!(
        r#"
[[providers]]
name = "onprem"
kind = "openai"
base_url = "{mock_url}"
self_hosted = true
[[models]]
name = "tier1"
provider = "mock"
upstream = "gpt-4o-mini"
tier = 1
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
[[models]]
name = "tier3"
provider = "mock"
upstream = "gpt-4o"
tier = 3
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
[[models]]
name = "onprem-small"
provider = "onprem"
upstream = "onprem-model"
tier = 1
input_usd_per_mtok = 0.5
output_usd_per_mtok = 0.5
[[tenants]]
name = "bank"
keys = ["{BANK_KEY}"]
data_policy = "self-hosted-only-for-pii"
"#
    )
}

async fn start() -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let mock = switchyard_mock::MockUpstream::start().await.unwrap();
    let extra = routing_config(&mock.base_url());
    TestGateway::start_full(dir, mock, &url, &extra).await
}

fn auto(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

const EVERYDAY: [&str; 3] = [
    "hey, what's the capital of Australia?",
    "How many ounces are in a pound?",
    "Translate 'good morning' into Italian.",
];
const DEMANDING: [&str; 2] = [
    "Design the architecture of a multi-tenant billing system with usage metering, invoicing, \
     proration and dunning. Give the data model, the services and their APIs, how you keep it \
     consistent across failures, and a phased migration plan from a monolith.",
    "Prove that every bounded monotone sequence of real numbers converges, then use it to show \
     that the sequence (1 + 1/n)^n converges, with every step justified.",
];

#[tokio::test]
async fn auto_routes_by_complexity_and_explains_every_route() {
    let gw = start().await;
    for q in EVERYDAY {
        let resp = gw.chat(ACME_KEY, auto(q)).await;
        assert_eq!(resp.status(), 200);
        let route = resp.headers()["x-switchyard-route"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(route.starts_with("tier=1; model=tier1"), "{q}: {route}");
        assert_eq!(resp.headers()["x-switchyard-model"], "tier1");
    }
    for q in DEMANDING {
        let resp = gw.chat(ACME_KEY, auto(q)).await;
        assert_eq!(resp.status(), 200);
        let route = resp.headers()["x-switchyard-route"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(route.starts_with("tier=3; model=tier3"), "{q}: {route}");
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let rec: Value = gw
            .admin_get(&format!("/admin/requests/{rid}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rec["model_requested"], "auto");
        assert_eq!(rec["metadata"]["route"]["tier"], 3);
        assert_eq!(rec["metadata"]["route"]["reason"], "classifier");
    }
    // Explicit requests explain themselves too.
    let resp = gw.chat(ACME_KEY, hello("tier3")).await;
    assert_eq!(
        resp.headers()["x-switchyard-route"],
        "model=tier3; reason=requested"
    );
    // `auto` is listed.
    let models: Value = gw
        .client
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "auto"));
    gw.shutdown().await;
}

#[tokio::test]
async fn pii_of_a_restricted_tenant_stays_on_self_hosted_models() {
    let gw = start().await;
    let pii = "Update the address of jane.doe@example.com, card 4111 1111 1111 1111.";
    let resp = gw.chat(BANK_KEY, auto(pii)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "onprem-small");
    let route = resp.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        route.contains("data_policy=self-hosted-only-for-pii"),
        "{route}"
    );
    assert!(gw.mock.last_request("onprem-model").is_some());
    // A hosted model named explicitly is refused for it, and without PII it is fine.
    let mut explicit = auto(pii);
    explicit["model"] = json!("tier3");
    let (status, err) = error_of(gw.chat(BANK_KEY, explicit).await).await;
    assert_eq!(status, 403);
    assert_eq!(err["error"]["code"], "model_not_allowed");
    let resp = gw.chat(BANK_KEY, auto(EVERYDAY[0])).await;
    assert_eq!(resp.headers()["x-switchyard-model"], "tier1");
    gw.shutdown().await;
}

#[tokio::test]
async fn replay_projects_the_logged_traffic_under_a_new_config() {
    let gw = start().await;
    for q in EVERYDAY.iter().chain(DEMANDING.iter()) {
        assert_eq!(gw.chat(ACME_KEY, auto(q)).await.status(), 200);
    }
    gw.state.log.flush().await;
    let records = gw.state.store.list_requests(100).await.unwrap();
    let mock_url = gw.mock.base_url();
    // The new config has no tier 3: everything projects onto tier-1 models.
    let new = config_text(&mock_url, "sqlite://unused.db", &routing_config(&mock_url))
        .replace("tier = 3\n", "");
    let config = switchyard_gateway::Config::parse(&new).unwrap();
    let report = switchyard_gateway::replay::replay(&config, &records).unwrap();
    assert_eq!(report.replayed, 5, "{report:?}");
    assert_eq!(report.per_model["tier3"].before, 2);
    assert_eq!(report.per_model["tier3"].after, 0);
    // The demanding ones go to the strongest model left: the top tier's priciest.
    assert_eq!(report.per_model["tier1"].after, 3);
    assert_eq!(report.per_model["onprem-small"].after, 2);
    assert!(report.cost_after_usd < report.cost_before_usd, "{report:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn low_confidence_tier1_answers_escalate_one_tier_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/switchyard.db", dir.path().display());
    let mock = switchyard_mock::MockUpstream::start().await.unwrap();
    // The mock's tier-1 answers come with token probabilities around 0.4.
    let extra = routing_config(&mock.base_url()).replace(
        "upstream = \"gpt-4o-mini\"\ntier = 1",
        "upstream = \"gpt-4o-mini+confidence-40\"\ntier = 1",
    );
    let gw = TestGateway::start_full(dir, mock, &url, &extra).await;
    let resp = gw.chat(ACME_KEY, auto(EVERYDAY[1])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchyard-model"], "tier3");
    assert_eq!(resp.headers()["x-switchyard-attempts"], "2");
    let route = resp.headers()["x-switchyard-route"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        route.contains("reason=cascade")
            && route.contains("confidence=0.40 (logprobs)")
            && route.contains("escalated_from=tier1"),
        "{route}"
    );
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    // The client did not ask for logprobs, so it gets none.
    assert!(body["choices"][0]["logprobs"].is_null(), "{body}");
    let rec: Value = gw
        .admin_get(&format!("/admin/requests/{rid}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["metadata"]["route"]["escalated_from"], "tier1");
    // Both calls are billed: the tier-1 one at its price, the tier-3 one at its own.
    let tokens =
        rec["prompt_tokens"].as_u64().unwrap() + rec["completion_tokens"].as_u64().unwrap();
    assert!(tokens > 0);
    assert!(rec["cost_usd"].as_f64().unwrap() > 0.0);
    gw.shutdown().await;
}
