use super::*;
use switchyard_api::Role;

const CONFIG: &str = r#"
[[providers]]
name = "cloud"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[providers]]
name = "onprem"
kind = "openai"
base_url = "http://127.0.0.1:2/v1"
self_hosted = true
[[models]]
name = "mini"
provider = "cloud"
tier = 1
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
[[models]]
name = "cheaper-mini"
provider = "cloud"
tier = 1
input_usd_per_mtok = 0.1
output_usd_per_mtok = 0.4
[[models]]
name = "big"
provider = "cloud"
tier = 3
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
[[models]]
name = "onprem-small"
provider = "onprem"
tier = 1
input_usd_per_mtok = 0.5
output_usd_per_mtok = 0.5
[[models]]
name = "untiered"
provider = "cloud"
[[tenants]]
name = "open"
[[tenants]]
name = "trusted"
route_overrides = true
[[tenants]]
name = "pii-bank"
data_policy = "self-hosted-only-for-pii"
[[tenants]]
name = "vault"
data_policy = "self-hosted-only"
[[tenants]]
name = "narrow"
allowed_models = ["mini", "auto"]
"#;

fn router() -> AutoRouter {
    let config = Config::parse(CONFIG).unwrap();
    AutoRouter::new(&config, Arc::new(ComplexityRouter::embedded().unwrap())).unwrap()
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new(Role::User, text)]
}

const EASY: &str = "What is the capital of France?";
const HARD: &str = "Design a multi-region, strongly consistent distributed rate limiter for an \
    API gateway serving 2 million requests per second. Cover the data model, the consistency \
    protocol, failure modes, how clocks are handled, and compare token bucket with sliding \
    window log in a table, then give a step-by-step rollout plan.";

fn decide(r: &AutoRouter, tenant: &str, text: &str) -> RouteDecision {
    r.decide(&RouteRequest {
        tenant,
        session: None,
        messages: &user(text),
        tier_header: None,
        key_models: None,
    })
    .unwrap()
}

#[test]
fn easy_goes_to_the_cheapest_tier_one_and_hard_to_tier_three() {
    let r = router();
    let easy = decide(&r, "open", EASY);
    assert_eq!((easy.model.as_str(), easy.tier), ("cheaper-mini", 1));
    assert_eq!(easy.reason, "classifier");
    let hard = decide(&r, "open", HARD);
    assert_eq!((hard.model.as_str(), hard.tier), ("big", 3), "{hard:?}");
    assert!(hard
        .header()
        .starts_with("tier=3; model=big; reason=classifier"));
}

#[test]
fn sessions_never_drop_a_tier_within_the_ttl() {
    let r = router();
    let ask = |text: &str| {
        r.decide(&RouteRequest {
            tenant: "open",
            session: Some("user-42"),
            messages: &user(text),
            tier_header: None,
            key_models: None,
        })
        .unwrap()
    };
    assert_eq!(ask(HARD).tier, 3);
    let follow_up = ask(EASY);
    assert_eq!((follow_up.tier, follow_up.reason), (3, "session"));
    assert_eq!(follow_up.needed, 1);
    // Another tenant's session of the same name is its own.
    assert_eq!(decide(&r, "trusted", EASY).tier, 1);
}

#[test]
fn the_tier_header_is_honoured_only_for_trusted_tenants() {
    let r = router();
    let with_header = |tenant| {
        r.decide(&RouteRequest {
            tenant,
            session: None,
            messages: &user(EASY),
            tier_header: Some(3),
            key_models: None,
        })
        .unwrap()
    };
    let t = with_header("trusted");
    assert_eq!((t.tier, t.reason), (3, "header"));
    assert_eq!(with_header("open").tier, 1);
}

#[test]
fn data_policies_keep_pii_on_self_hosted_models() {
    let r = router();
    let pii = "My card is 4111 1111 1111 1111, what is the capital of France?";
    let d = decide(&r, "pii-bank", pii);
    assert_eq!(d.model, "onprem-small");
    assert_eq!(d.data_policy, Some("self-hosted-only-for-pii"));
    // A placeholder left by input redaction counts as PII too.
    assert_eq!(
        decide(&r, "pii-bank", "Refund [CREDIT_CARD_1] please").model,
        "onprem-small"
    );
    // Without PII the cheapest model is fine.
    assert_eq!(decide(&r, "pii-bank", EASY).model, "cheaper-mini");
    // Self-hosted only: even a hard task stays on-prem (the strongest there is).
    let v = decide(&r, "vault", HARD);
    assert_eq!((v.model.as_str(), v.reason), ("onprem-small", "policy"));
    // Explicit requests obey the policy too.
    assert_eq!(
        r.forbids("pii-bank", "big", false, &user(pii)),
        Some("self-hosted-only-for-pii")
    );
    assert_eq!(r.forbids("pii-bank", "big", false, &user(EASY)), None);
    assert_eq!(
        r.forbids("pii-bank", "onprem-small", true, &user(pii)),
        None
    );
}

#[test]
fn allowed_models_limit_the_choice() {
    let r = router();
    assert_eq!(decide(&r, "narrow", EASY).model, "mini");
    // Nothing stronger is allowed: the strongest allowed model serves.
    assert_eq!(decide(&r, "narrow", HARD).model, "mini");
    assert_eq!(
        r.forbids("narrow", "big", false, &user(EASY)),
        Some("allowed_models")
    );
    assert!(r.is_auto("auto") && !r.is_auto("mini"));
}

#[test]
fn config_errors_name_the_key() {
    for (extra, key) in [
        ("[router]\nmodel = \"mini\"", "router.model"),
        (
            "[[tenants]]\nname = \"x\"\nallowed_models = [\"nope\"]",
            "allowed_models[0]",
        ),
    ] {
        let err = Config::parse(&format!("{CONFIG}\n{extra}")).unwrap_err();
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
    let bad_tier = CONFIG.replace("tier = 3", "tier = 4");
    let err = Config::parse(&bad_tier).unwrap_err();
    assert!(err.to_string().contains("models[2].tier"), "{err}");
}

#[test]
fn the_bandit_learns_which_model_of_a_tier_does_well() {
    let config = Config::parse(&format!("{CONFIG}\n[router]\nbandit = true\n")).unwrap();
    let r = AutoRouter::new(&config, Arc::new(ComplexityRouter::embedded().unwrap())).unwrap();
    for _ in 0..40 {
        r.record_outcome("cheaper-mini", false);
        r.record_outcome("onprem-small", false);
        r.record_outcome("mini", true);
    }
    let picks: Vec<RouteDecision> = (0..50).map(|_| decide(&r, "open", EASY)).collect();
    let mini = picks.iter().filter(|d| d.model == "mini").count();
    assert!(mini >= 45, "{mini}");
    // The draws explain the choice.
    let d = &picks[0];
    assert_eq!(d.bandit.len(), 3, "{d:?}");
    let mini_arm = d.bandit.iter().find(|a| a.model == "mini").unwrap();
    assert_eq!((mini_arm.successes, mini_arm.failures), (40, 0));
    // Without `bandit`, the cheapest model of the tier, always, and no draws.
    let plain = decide(&router(), "open", EASY);
    assert!(plain.bandit.is_empty());
}
