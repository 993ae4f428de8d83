//! `[guardrails]`: one action per scanner, with per-tenant and per-model overrides.
//!
//! ```toml
//! [guardrails]
//! pii = "redact"
//! injection = "block"
//! banned_terms = ["project falcon"]
//!
//! [[guardrails.overrides]]      # applied in order, later wins; unset keys keep their value
//! tenant = "bank"
//! output_pii = "block"
//! ```

use serde::{Deserialize, Deserializer, Serialize};
use switchyard_guardrails::Action;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardrailsConfig {
    /// Emails, phone numbers, cards, IBANs, SSNs, IPs, dates of birth, street addresses.
    pub pii: Action,
    /// API keys, tokens, private keys, passwords in connection strings.
    pub secrets: Action,
    /// Prompt injection and jailbreak attempts in user and tool messages: `off`, `detect` or
    /// `block`. There is nothing to redact, so `redact` is rejected when the config is read.
    #[serde(deserialize_with = "injection_action")]
    pub injection: Action,
    /// Score (0..1) at or above which a message counts as an injection. Unset: the detector's
    /// trained default, `switchyard_guardrails::DEFAULT_INJECTION_THRESHOLD`.
    #[serde(deserialize_with = "injection_threshold")]
    pub injection_threshold: Option<f32>,
    /// Answers that repeat the system prompt (or its canary): `off`, `detect` or `block`,
    /// streamed or not. `redact` is rejected: a leak cannot be cut out of an answer reliably.
    #[serde(deserialize_with = "leak_action")]
    pub system_prompt_leak: Action,
    /// PII the model writes into its answer (not the caller's own redacted values, which are
    /// put back after this check).
    pub output_pii: Action,
    /// Secrets in answers.
    pub output_secrets: Action,
    /// Whole words or phrases, case-insensitive, checked in user/tool messages and in answers.
    pub banned_terms: Vec<String>,
    /// What a banned term does: `detect`, `redact` (replaced by `[BANNED]`) or `block`.
    pub banned_terms_action: Action,
    /// Answers to requests with a `response_format` of `json_object` / `json_schema`:
    /// `off`, `detect` (record invalid answers) or `repair` (one retry with the validation
    /// errors, then a 502 if the answer is still invalid).
    #[serde(deserialize_with = "format_action")]
    pub response_format: FormatAction,
    /// Per-tenant and per-model exceptions, applied in order (later wins).
    #[serde(skip_serializing)]
    pub overrides: Vec<GuardrailsOverride>,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        Self {
            pii: Action::Off,
            secrets: Action::Off,
            injection: Action::Off,
            injection_threshold: None,
            system_prompt_leak: Action::Off,
            output_pii: Action::Off,
            output_secrets: Action::Off,
            banned_terms: Vec::new(),
            banned_terms_action: Action::Block,
            response_format: FormatAction::Off,
            overrides: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatAction {
    #[default]
    Off,
    Detect,
    Repair,
}

/// One `[[guardrails.overrides]]` entry: matches a tenant, a requested model, or both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsOverride {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub pii: Option<Action>,
    pub secrets: Option<Action>,
    #[serde(default, deserialize_with = "some_injection_action")]
    pub injection: Option<Action>,
    #[serde(default, deserialize_with = "some_injection_threshold")]
    pub injection_threshold: Option<f32>,
    #[serde(default, deserialize_with = "some_leak_action")]
    pub system_prompt_leak: Option<Action>,
    pub output_pii: Option<Action>,
    pub output_secrets: Option<Action>,
    pub banned_terms: Option<Vec<String>>,
    pub banned_terms_action: Option<Action>,
    #[serde(default, deserialize_with = "some_format_action")]
    pub response_format: Option<FormatAction>,
}

impl GuardrailsOverride {
    pub fn matches(&self, tenant: Option<&str>, model: Option<&str>) -> bool {
        let t = self.tenant.as_deref().is_none_or(|t| Some(t) == tenant);
        let m = self.model.as_deref().is_none_or(|m| Some(m) == model);
        t && m
    }
}

impl GuardrailsConfig {
    /// The settings for one request: the global ones with every matching override applied in
    /// order. `None` stands for "a tenant/model no override names".
    pub fn effective(&self, tenant: Option<&str>, model: Option<&str>) -> GuardrailsConfig {
        let mut c = self.clone();
        c.overrides = Vec::new();
        for o in self.overrides.iter().filter(|o| o.matches(tenant, model)) {
            set(&mut c.pii, o.pii);
            set(&mut c.secrets, o.secrets);
            set(&mut c.injection, o.injection);
            if o.injection_threshold.is_some() {
                c.injection_threshold = o.injection_threshold;
            }
            set(&mut c.system_prompt_leak, o.system_prompt_leak);
            set(&mut c.output_pii, o.output_pii);
            set(&mut c.output_secrets, o.output_secrets);
            if let Some(terms) = &o.banned_terms {
                c.banned_terms.clone_from(terms);
            }
            set(&mut c.banned_terms_action, o.banned_terms_action);
            set(&mut c.response_format, o.response_format);
        }
        c
    }

    /// Problems the parser cannot see, each prefixed with its key.
    pub fn problems(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.banned_terms_action == Action::Off && !self.banned_terms.is_empty() {
            errs.push(
                "guardrails.banned_terms_action: \"off\" with a non-empty banned_terms list; \
                 use \"detect\", \"redact\" or \"block\" (or empty the list)"
                    .to_owned(),
            );
        }
        for (i, o) in self.overrides.iter().enumerate() {
            if o.tenant.is_none() && o.model.is_none() {
                errs.push(format!(
                    "guardrails.overrides[{i}]: name a tenant, a model or both"
                ));
            }
        }
        errs
    }
}

fn set<T: Copy>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn injection_action<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    match Action::deserialize(d)? {
        Action::Redact => Err(serde::de::Error::custom(
            "guardrails.injection = \"redact\" is not supported: an injection cannot be \
             redacted away; use \"off\", \"detect\" or \"block\"",
        )),
        a => Ok(a),
    }
}

fn some_injection_action<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Action>, D::Error> {
    injection_action(d).map(Some)
}

fn leak_action<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    // Read as a string so a typo gets an error naming the key, not just the enum's variants.
    let value = String::deserialize(d)?;
    match value.as_str() {
        "off" => Ok(Action::Off),
        "detect" => Ok(Action::Detect),
        "block" => Ok(Action::Block),
        "redact" => Err(serde::de::Error::custom(
            "guardrails.system_prompt_leak = \"redact\" is not supported: a leaked system \
             prompt cannot be cut out of an answer reliably; use \"off\", \"detect\" or \"block\"",
        )),
        other => Err(serde::de::Error::custom(format!(
            "guardrails.system_prompt_leak = {other:?} is not valid: use \"off\", \"detect\" or \
             \"block\""
        ))),
    }
}

fn some_leak_action<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Action>, D::Error> {
    leak_action(d).map(Some)
}

fn format_action<'de, D: Deserializer<'de>>(d: D) -> Result<FormatAction, D::Error> {
    let value = String::deserialize(d)?;
    match value.as_str() {
        "off" => Ok(FormatAction::Off),
        "detect" => Ok(FormatAction::Detect),
        "repair" => Ok(FormatAction::Repair),
        other => Err(serde::de::Error::custom(format!(
            "guardrails.response_format = {other:?} is not valid: use \"off\", \"detect\" or \
             \"repair\""
        ))),
    }
}

fn some_format_action<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FormatAction>, D::Error> {
    format_action(d).map(Some)
}

fn injection_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    let t = f32::deserialize(d)?;
    if t > 0.0 && t < 1.0 {
        Ok(Some(t))
    } else {
        Err(serde::de::Error::custom(format!(
            "guardrails.injection_threshold = {t} must be between 0 and 1 (exclusive)"
        )))
    }
}

fn some_injection_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    injection_threshold(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_in_order_and_keep_unset_keys() {
        let c: GuardrailsConfig = toml::from_str(
            r#"
pii = "redact"
injection = "block"
banned_terms = ["falcon"]

[[overrides]]
tenant = "bank"
pii = "block"
output_pii = "redact"

[[overrides]]
model = "local-chat"
pii = "off"

[[overrides]]
tenant = "bank"
model = "local-chat"
banned_terms = []
"#,
        )
        .unwrap();
        assert!(c.problems().is_empty());
        let other = c.effective(Some("other"), Some("gpt-4o"));
        assert_eq!((other.pii, other.output_pii), (Action::Redact, Action::Off));
        let bank = c.effective(Some("bank"), Some("gpt-4o"));
        assert_eq!((bank.pii, bank.output_pii), (Action::Block, Action::Redact));
        assert_eq!(bank.injection, Action::Block);
        let local = c.effective(Some("other"), Some("local-chat"));
        assert_eq!(local.pii, Action::Off);
        assert_eq!(local.banned_terms, vec!["falcon".to_owned()]);
        // The model override comes after the tenant's, so it wins on `pii`.
        let both = c.effective(Some("bank"), Some("local-chat"));
        assert_eq!((both.pii, both.output_pii), (Action::Off, Action::Redact));
        assert!(both.banned_terms.is_empty());
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("response_format = \"fix\"", "response_format"),
            (
                "[[overrides]]\ntenant = \"a\"\ninjection = \"redact\"",
                "injection",
            ),
            (
                "[[overrides]]\ntenant = \"a\"\nsystem_prompt_leak = \"x\"",
                "system_prompt_leak",
            ),
            (
                "[[overrides]]\ntenant = \"a\"\ninjection_threshold = 2.0",
                "injection_threshold",
            ),
            ("[[overrides]]\ntenant = \"a\"\npi = \"off\"", "pi"),
        ] {
            let err = toml::from_str::<GuardrailsConfig>(text).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        let c: GuardrailsConfig = toml::from_str("[[overrides]]\npii = \"off\"").unwrap();
        assert!(c.problems()[0].contains("guardrails.overrides[0]"));
        let c: GuardrailsConfig =
            toml::from_str("banned_terms = [\"x\"]\nbanned_terms_action = \"off\"").unwrap();
        assert!(c.problems()[0].contains("banned_terms_action"));
    }
}
