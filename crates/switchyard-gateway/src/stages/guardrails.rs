//! Stage 3 — input guardrails: PII and secrets in the messages are detected, redacted into typed
//! placeholders (`[EMAIL_1]`) before any upstream sees them, or the request is blocked. The
//! placeholders are put back into the answer for the caller, streamed or not, so the user sees
//! their own data while the provider never does. Off unless `[guardrails]` turns it on.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchyard_api::{ChatCompletionResponse, ChatMessage, MessageContent};
use switchyard_guardrails::{
    Action, GuardrailError, Kind, Redactor, Scanner, ScannerConfig, Vault,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailsConfig {
    /// Emails, phone numbers, cards, IBANs, SSNs, IPs, dates of birth, street addresses.
    pub pii: Action,
    /// API keys, tokens, private keys, passwords in connection strings.
    pub secrets: Action,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        Self {
            pii: Action::Off,
            secrets: Action::Off,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("request blocked by the {guardrail} guardrail: {kind} found in messages[{index}]")]
pub struct Blocked {
    pub guardrail: &'static str,
    pub kind: &'static str,
    pub index: usize,
}

pub struct InputGuardrails {
    scanner: Scanner,
    redactor: Redactor,
}

/// What screening found (kinds, actions, scores — never the values) and the vault that can put
/// redacted values back into the answer.
#[derive(Default)]
pub struct Screened {
    pub vault: Vault,
    pub findings: Vec<Value>,
}

impl InputGuardrails {
    pub fn new(cfg: &GuardrailsConfig) -> Result<Option<Self>, GuardrailError> {
        if cfg.pii == Action::Off && cfg.secrets == Action::Off {
            return Ok(None);
        }
        let mut scanner_cfg = ScannerConfig::all(Action::Off);
        for kind in Kind::ALL {
            let action = if kind.is_secret() {
                cfg.secrets
            } else {
                cfg.pii
            };
            scanner_cfg.kinds.insert(kind, action);
        }
        Ok(Some(Self {
            scanner: Scanner::new(scanner_cfg.clone())?,
            redactor: Redactor::with_scanner(Scanner::new(scanner_cfg)?),
        }))
    }

    pub fn screen(&self, messages: &mut [ChatMessage]) -> Result<Screened, Blocked> {
        let mut out = Screened::default();
        for (index, message) in messages.iter_mut().enumerate() {
            for text in texts_mut(message) {
                let report = self.scanner.scan(text);
                if report.is_empty() {
                    continue;
                }
                for d in &report.detections {
                    metrics::counter!("switchyard_guardrail_findings_total",
                        "kind" => d.kind.as_str(), "action" => action_name(d.action))
                    .increment(1);
                    out.findings.push(json!({
                        "kind": d.kind.as_str(),
                        "action": action_name(d.action),
                        "score": d.score,
                        "message": index,
                    }));
                }
                if let Some(d) = report.detections.iter().find(|d| d.action == Action::Block) {
                    return Err(Blocked {
                        guardrail: if d.kind.is_secret() { "secrets" } else { "pii" },
                        kind: d.kind.as_str(),
                        index,
                    });
                }
                if report.detections.iter().any(|d| d.action == Action::Redact) {
                    *text = self.redactor.redact_with(&mut out.vault, text);
                }
            }
        }
        Ok(out)
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Off => "off",
        Action::Detect => "detect",
        Action::Redact => "redact",
        Action::Block => "block",
    }
}

fn texts_mut(message: &mut ChatMessage) -> Vec<&mut String> {
    match &mut message.content {
        Some(MessageContent::Text(t)) => vec![t],
        Some(MessageContent::Parts(parts)) => {
            parts.iter_mut().filter_map(|p| p.text.as_mut()).collect()
        }
        None => Vec::new(),
    }
}

/// Puts redacted values back into a non-streamed answer.
pub fn restore_response(vault: &Vault, resp: &mut ChatCompletionResponse) {
    if vault.is_empty() {
        return;
    }
    for choice in &mut resp.choices {
        for text in texts_mut(&mut choice.message) {
            *text = vault.restore(text);
        }
        for call in choice.message.tool_calls.iter_mut().flatten() {
            call.function.arguments = vault.restore(&call.function.arguments);
        }
    }
}

/// Restores placeholders in streamed text, holding back only a tail that could still become a
/// placeholder (`[EMA` …) until it completes or cannot.
#[derive(Default)]
pub struct StreamRestore {
    pending: String,
}

/// Placeholders look like `[CREDIT_CARD_12]`: well under this many bytes.
const MAX_PLACEHOLDER: usize = 40;

impl StreamRestore {
    pub fn push(&mut self, vault: &Vault, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let hold_from = self.pending.rfind('[').filter(|&i| {
            let tail = &self.pending[i..];
            !tail.contains(']')
                && tail.len() < MAX_PLACEHOLDER
                && tail[1..]
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        let cut = hold_from.unwrap_or(self.pending.len());
        let ready = vault.restore(&self.pending[..cut]);
        self.pending.drain(..cut);
        ready
    }

    pub fn finish(&mut self, vault: &Vault) -> String {
        let rest = vault.restore(&self.pending);
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_api::Role;

    fn guard(pii: Action, secrets: Action) -> InputGuardrails {
        InputGuardrails::new(&GuardrailsConfig { pii, secrets })
            .unwrap()
            .unwrap()
    }

    #[test]
    fn off_builds_nothing() {
        assert!(InputGuardrails::new(&GuardrailsConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn redacts_and_restores_across_stream_chunks() {
        let g = guard(Action::Redact, Action::Block);
        let mut msgs = vec![ChatMessage::new(
            Role::User,
            "Card 4111 1111 1111 1111, mail jane@example.com, order 12345678",
        )];
        let screened = g.screen(&mut msgs).unwrap();
        let sent = msgs[0].text();
        assert!(!sent.contains("4111") && !sent.contains("jane@"), "{sent}");
        assert!(sent.contains("order 12345678"));
        assert_eq!(screened.findings.len(), 2);
        let answer = format!(
            "I will charge {} and write to {}.",
            "[CREDIT_CARD_1]", "[EMAIL_1]"
        );
        for split in 1..answer.len() {
            if !answer.is_char_boundary(split) {
                continue;
            }
            let mut r = StreamRestore::default();
            let mut out = r.push(&screened.vault, &answer[..split]);
            out.push_str(&r.push(&screened.vault, &answer[split..]));
            out.push_str(&r.finish(&screened.vault));
            assert_eq!(
                out,
                "I will charge 4111 1111 1111 1111 and write to jane@example.com."
            );
        }
    }

    #[test]
    fn secrets_block_names_the_guardrail() {
        let g = guard(Action::Redact, Action::Block);
        let mut msgs = vec![
            ChatMessage::new(Role::System, "be brief"),
            ChatMessage::new(
                Role::User,
                "my key is sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
            ),
        ];
        let err = g.screen(&mut msgs).err().unwrap();
        assert_eq!((err.guardrail, err.index), ("secrets", 1));
    }
}
