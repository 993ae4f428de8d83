//! `switchyard replay --config NEW.toml --since 7d`: re-decides logged `auto` traffic under a new
//! routing config without calling any model, and projects the cost and the traffic share per
//! model.
//!
//! The logged prompt (`bodies`, redacted by default: a placeholder such as `[EMAIL_1]` still
//! counts as PII for data policies) goes through the same `AutoRouter` the gateway uses, oldest
//! request first so session floors apply as they would have. Cost is projected from each
//! request's logged token counts at the new model's prices: a different model would answer at a
//! different length, so read it as an estimate of the routing change, not a bill.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use switchyard_api::{ChatMessage, MessageContent, Role};
use switchyard_store::RequestRecord;

use crate::config::Config;
use crate::stages::routing::auto::{load_classifier, AutoRouter, RouteRequest};

#[derive(Debug, Default, Serialize)]
pub struct ModelShare {
    pub before: u64,
    pub after: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplayReport {
    /// `auto` requests re-decided.
    pub replayed: u64,
    /// `auto` requests without a logged prompt (`log_bodies = "off"`, or embeddings).
    pub skipped_no_prompt: u64,
    /// Requests that named a model themselves: not re-decided.
    pub explicit: u64,
    /// Requests the new rules could not route.
    pub unroutable: u64,
    pub changed: u64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    pub per_model: BTreeMap<String, ModelShare>,
    pub per_tier_after: BTreeMap<u8, u64>,
}

/// Re-decides `records` (any order) under `config`.
pub fn replay(config: &Config, records: &[RequestRecord]) -> Result<ReplayReport, String> {
    let classifier = load_classifier(config)?;
    let router = AutoRouter::new(config, Arc::new(classifier))?;
    let prices: BTreeMap<&str, (f64, f64)> = config
        .models
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                (m.input_usd_per_mtok, m.output_usd_per_mtok),
            )
        })
        .collect();
    let mut ordered: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.endpoint == "chat.completions")
        .collect();
    ordered.sort_by_key(|r| r.ts_ms);
    let mut report = ReplayReport::default();
    for rec in ordered {
        let was_auto = rec.metadata.contains_key("route") || router.is_auto(&rec.model_requested);
        if !was_auto {
            report.explicit += 1;
            continue;
        }
        let Some(messages) = logged_messages(rec) else {
            report.skipped_no_prompt += 1;
            continue;
        };
        let before = rec
            .model_used
            .clone()
            .unwrap_or_else(|| "(none)".to_owned());
        let decision = match router.decide(&RouteRequest {
            tenant: &rec.tenant,
            session: rec.user.as_deref(),
            messages: &messages,
            tier_header: None,
            key_models: None,
        }) {
            Ok(d) => d,
            Err(_) => {
                report.unroutable += 1;
                continue;
            }
        };
        report.replayed += 1;
        report.cost_before_usd += rec.cost_usd;
        let (input, output) = prices
            .get(decision.model.as_str())
            .copied()
            .unwrap_or((0.0, 0.0));
        report.cost_after_usd += (rec.prompt_tokens as f64 * input
            + rec.completion_tokens as f64 * output)
            / 1_000_000.0;
        if decision.model != before {
            report.changed += 1;
        }
        report.per_model.entry(before).or_default().before += 1;
        report
            .per_model
            .entry(decision.model.clone())
            .or_default()
            .after += 1;
        *report.per_tier_after.entry(decision.tier).or_default() += 1;
    }
    Ok(report)
}

fn logged_messages(rec: &RequestRecord) -> Option<Vec<ChatMessage>> {
    let list = rec.bodies.as_ref()?.get("messages")?.as_array()?;
    let messages: Vec<ChatMessage> = list
        .iter()
        .filter_map(|m| {
            let role: Role = serde_json::from_value(m.get("role")?.clone()).ok()?;
            let text = m.get("content")?.as_str()?.to_owned();
            Some(ChatMessage {
                content: Some(MessageContent::Text(text)),
                ..ChatMessage::new(role, "")
            })
        })
        .collect();
    (!messages.is_empty()).then_some(messages)
}

impl ReplayReport {
    pub fn to_markdown(&self, since: &str) -> String {
        let pct = |n: u64| {
            if self.replayed == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.replayed as f64
            }
        };
        let mut out = format!(
            "# Routing replay (since {since})\n\n\
             {} `auto` requests re-decided, {} changed model ({:.1}%); {} without a logged \
             prompt, {} named their model, {} unroutable under the new rules.\n\n\
             Cost of the replayed requests: ${:.6} as served, ${:.6} projected ({:+.1}%), at \
             the logged token counts.\n\n| model | before | share | after | share |\n|---|--:|--:|--:|--:|\n",
            self.replayed,
            self.changed,
            pct(self.changed),
            self.skipped_no_prompt,
            self.explicit,
            self.unroutable,
            self.cost_before_usd,
            self.cost_after_usd,
            if self.cost_before_usd > 0.0 {
                100.0 * (self.cost_after_usd / self.cost_before_usd - 1.0)
            } else {
                0.0
            },
        );
        for (model, s) in &self.per_model {
            out.push_str(&format!(
                "| {model} | {} | {:.1}% | {} | {:.1}% |\n",
                s.before,
                pct(s.before),
                s.after,
                pct(s.after)
            ));
        }
        out.push_str("\n| tier (new) | requests | share |\n|---|--:|--:|\n");
        for (tier, n) in &self.per_tier_after {
            out.push_str(&format!("| {tier} | {n} | {:.1}% |\n", pct(*n)));
        }
        out
    }
}

/// `7d`, `12h`, `30m`, `45s` → milliseconds.
pub fn parse_since(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("--since {s:?}: expected a number and a unit (7d, 12h, 30m)"))?;
    let mult = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => return Err(format!("--since {s:?}: the unit must be d, h, m or s")),
    };
    Ok(n.saturating_mul(mult))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONFIG: &str = r#"
[[providers]]
name = "cloud"
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "mini"
provider = "cloud"
tier = 1
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
[[models]]
name = "big"
provider = "cloud"
tier = 3
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
"#;

    fn rec(i: i64, text: &str, used: &str, cost: f64) -> RequestRecord {
        let mut metadata = serde_json::Map::new();
        metadata.insert("route".into(), json!({"model": used}));
        RequestRecord {
            request_id: format!("r{i}"),
            ts_ms: i,
            tenant: "t".into(),
            endpoint: "chat.completions".into(),
            model_requested: "auto".into(),
            model_used: Some(used.into()),
            prompt_tokens: 1000,
            completion_tokens: 1000,
            cost_usd: cost,
            metadata,
            bodies: Some(json!({"messages": [{"role": "user", "content": text}]})),
            ..Default::default()
        }
    }

    #[test]
    fn everything_on_the_big_model_replays_cheaper_with_tiers() {
        let config = Config::parse(CONFIG).unwrap();
        let records = vec![
            rec(1, "What is the capital of France?", "big", 0.0125),
            rec(2, "hi, how are you?", "big", 0.0125),
            rec(
                3,
                "Prove that the square root of 2 is irrational, step by step, and then \
                 generalize the proof to every prime p with a rigorous argument.",
                "big",
                0.0125,
            ),
            RequestRecord {
                model_requested: "big".into(),
                metadata: serde_json::Map::new(),
                ..rec(4, "explicit", "big", 0.0125)
            },
        ];
        let r = replay(&config, &records).unwrap();
        assert_eq!((r.replayed, r.explicit), (3, 1));
        assert_eq!(r.per_model["big"].before, 3);
        assert_eq!(r.per_model["mini"].after, 2, "{r:?}");
        assert_eq!(r.per_model["big"].after, 1);
        assert!((r.cost_before_usd - 0.0375).abs() < 1e-9);
        // Two of three at mini's prices: 2 × 0.00075 + 0.0125.
        assert!((r.cost_after_usd - 0.014).abs() < 1e-9, "{r:?}");
        let md = r.to_markdown("7d");
        assert!(md.contains("| mini | 0 | 0.0% | 2 | 66.7% |"), "{md}");
    }

    #[test]
    fn since_parses_units() {
        assert_eq!(parse_since("7d").unwrap(), 7 * 86_400_000);
        assert_eq!(parse_since("30m").unwrap(), 1_800_000);
        assert!(parse_since("7w").is_err() && parse_since("d").is_err());
    }
}
