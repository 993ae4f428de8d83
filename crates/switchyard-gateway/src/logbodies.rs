//! Prompts and answers in the request log (`[store] log_bodies`).
//!
//! The request path only copies the text (after the input guardrails, bounded by
//! `log_body_max_bytes`) into the record; PII and secrets are redacted by a hook in the log
//! writer task ([`redaction_hook`]), off the request path and before the record can reach the
//! store or the spool file. A tenant sees its raw text in the log only with
//! `log_raw_bodies = true` on its `[[tenants]]` entry.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchyard_api::{ChatMessage, MessageContent};
use switchyard_guardrails::{GuardrailError, Redactor};
use switchyard_store::{RecordHook, RequestRecord};

use crate::config::Config;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodiesMode {
    /// Stored with PII and secrets replaced by typed placeholders.
    #[default]
    Redacted,
    Off,
}

/// Marks a record whose bodies the writer hook still has to redact.
const PENDING: &str = "redaction_pending";

/// What the request path needs to capture bodies, built once per config.
#[derive(Debug, Clone)]
pub struct BodyPolicy {
    mode: BodiesMode,
    max_bytes: usize,
    raw_tenants: HashSet<String>,
}

impl BodyPolicy {
    pub fn new(config: &Config) -> Self {
        Self {
            mode: config.store.log_bodies,
            max_bytes: config.store.log_body_max_bytes,
            raw_tenants: config
                .tenants
                .iter()
                .filter(|t| t.log_raw_bodies)
                .map(|t| t.name.clone())
                .collect(),
        }
    }

    /// The prompt as the upstream will see it (after input redaction), or `None` when bodies
    /// are not logged.
    pub fn capture(&self, tenant: &str, messages: &[ChatMessage]) -> Option<Value> {
        if self.mode == BodiesMode::Off {
            return None;
        }
        let mut budget = self.max_bytes;
        let mut truncated = false;
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                // Borrow plain text: a 32 KiB system prompt is not copied just to keep 4 KiB.
                let kept = match &m.content {
                    Some(MessageContent::Text(t)) => clip(t, &mut budget, &mut truncated),
                    _ => clip(&m.text(), &mut budget, &mut truncated),
                };
                json!({"role": m.role, "content": kept})
            })
            .collect();
        let raw = self.raw_tenants.contains(tenant);
        let mut body = Map::new();
        body.insert("messages".into(), Value::Array(messages));
        body.insert("redacted".into(), Value::Bool(!raw));
        if !raw {
            body.insert(PENDING.into(), Value::Bool(true));
        }
        if truncated {
            body.insert("truncated".into(), Value::Bool(true));
        }
        // The answer gets what the prompt left of the budget, at least a quarter of it.
        body.insert(
            "budget".into(),
            json!(budget.max(self.max_bytes / 4) as u64),
        );
        Some(Value::Object(body))
    }
}

/// Adds the answer to bodies captured by [`BodyPolicy::capture`].
pub fn add_answer(bodies: &mut Value, answer: &str) {
    let Some(obj) = bodies.as_object_mut() else {
        return;
    };
    let mut budget = obj
        .get("budget")
        .and_then(Value::as_u64)
        .map_or(0, |b| usize::try_from(b).unwrap_or(usize::MAX));
    let mut truncated = false;
    let kept = clip(answer, &mut budget, &mut truncated);
    obj.insert("answer".into(), Value::String(kept));
    if truncated {
        obj.insert("truncated".into(), Value::Bool(true));
    }
}

/// Takes at most `budget` bytes of `text` (on a char boundary) and charges them.
fn clip(text: &str, budget: &mut usize, truncated: &mut bool) -> String {
    if text.len() <= *budget {
        *budget -= text.len();
        return text.to_owned();
    }
    *truncated = true;
    let mut end = *budget;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    *budget = 0;
    text[..end].to_owned()
}

/// The writer hook: redacts every kind of PII and secret in the logged prompt and answer.
pub fn redaction_hook() -> Result<RecordHook, GuardrailError> {
    let redactor = Redactor::new()?;
    Ok(Arc::new(move |rec: &mut RequestRecord| {
        if let Some(bodies) = rec.bodies.as_mut() {
            redact(&redactor, bodies);
        }
    }))
}

fn redact(redactor: &Redactor, bodies: &mut Value) {
    let Some(obj) = bodies.as_object_mut() else {
        return;
    };
    obj.remove("budget");
    if obj.remove(PENDING).is_none() {
        return;
    }
    if let Some(Value::Array(messages)) = obj.get_mut("messages") {
        for m in messages {
            if let Some(Value::String(s)) = m.get_mut("content") {
                redactor.redact_in_place(s);
            }
        }
    }
    if let Some(Value::String(s)) = obj.get_mut("answer") {
        redactor.redact_in_place(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::Role;

    fn policy(raw: &[&str], max: usize) -> BodyPolicy {
        BodyPolicy {
            mode: BodiesMode::Redacted,
            max_bytes: max,
            raw_tenants: raw.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn redacted_by_the_hook_unless_the_tenant_opted_in() {
        let hook = redaction_hook().unwrap();
        let msgs = [ChatMessage::new(
            Role::User,
            "mail jane@example.com, order 12345678, ssn 123-45-6789",
        )];
        let mut rec = RequestRecord {
            bodies: policy(&[], 4096).capture("acme", &msgs),
            ..Default::default()
        };
        add_answer(
            rec.bodies.as_mut().unwrap(),
            "Card 4111 1111 1111 1111 noted.",
        );
        hook(&mut rec);
        let text = rec.bodies.as_ref().unwrap().to_string();
        assert!(!text.contains("jane@") && !text.contains("4111"), "{text}");
        assert!(!text.contains("123-45-6789"), "{text}");
        assert!(text.contains("order 12345678"), "{text}");
        assert!(
            !text.contains(PENDING) && !text.contains("budget"),
            "{text}"
        );
        assert_eq!(rec.bodies.as_ref().unwrap()["redacted"], json!(true));

        let mut raw = RequestRecord {
            bodies: policy(&["acme"], 4096).capture("acme", &msgs),
            ..Default::default()
        };
        hook(&mut raw);
        let text = raw.bodies.as_ref().unwrap().to_string();
        assert!(text.contains("jane@example.com"), "{text}");
        assert_eq!(raw.bodies.as_ref().unwrap()["redacted"], json!(false));
    }

    #[test]
    fn bodies_are_bounded_on_char_boundaries() {
        let msgs = [ChatMessage::new(Role::User, "ééééé")];
        let mut b = policy(&[], 5).capture("t", &msgs).unwrap();
        assert_eq!(b["messages"][0]["content"], json!("éé"));
        assert_eq!(b["truncated"], json!(true));
        add_answer(&mut b, "abcdef");
        // A quarter of the budget is kept for the answer.
        assert_eq!(b["answer"], json!("a"));
        let off = BodyPolicy {
            mode: BodiesMode::Off,
            ..policy(&[], 5)
        };
        assert!(off.capture("t", &msgs).is_none());
    }
}
