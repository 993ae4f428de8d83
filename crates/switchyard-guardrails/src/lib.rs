//! Input and output scanners for the gateway: PII, secrets and system-prompt leakage, output
//! scanners for model answers (whole or streamed), and `response_format` validation.
//!
//! Everything here is a pure library: no I/O, no async, no HTTP. The request path only ever sees
//! `Result`s from constructors (patterns are compiled once, lazily, and a broken pattern surfaces
//! as [`GuardrailError`] when a [`Scanner`] is built) and infallible, allocation-light scans.
//!
//! A [`Finding`] never carries the matched text, so findings can be logged, serialized into the
//! request log or exported as metrics without leaking what they describe. Only the [`Vault`] holds
//! raw values, because restoring them is its whole purpose, and its `Debug` output hides them.

mod banned;
mod detect;
mod guard;
mod injection;
mod output;
mod pii;
mod scanner;
mod schema;
mod secrets;
mod validate;
mod vault;

pub use banned::{BannedMatch, BannedTerms};
pub use guard::{GuardConfig, LeakEvidence, StreamCheck, StreamLeakGuard, SystemPromptGuard};
pub use injection::{
    InjectionDetector, InjectionScore, Origin, Signal, DEFAULT_INJECTION_THRESHOLD,
};
pub use output::{OutputFinding, OutputScanner, OutputStep, OutputStream, OutputVerdict};
pub use scanner::{Detection, ScanReport, Scanner, ScannerConfig};
pub use schema::{ResponseFormatCheck, SchemaError, SchemaViolation};
pub use vault::{Redactor, StreamRestorer, Vault};

use serde::{Deserialize, Serialize};

/// What a finding is. The serialized name is also the placeholder prefix (`[EMAIL_1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    DateOfBirth,
    StreetAddress,
    ApiKey,
    Jwt,
    BearerToken,
    PrivateKey,
    Password,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Email,
        Kind::Phone,
        Kind::CreditCard,
        Kind::Iban,
        Kind::UsSsn,
        Kind::IpAddress,
        Kind::DateOfBirth,
        Kind::StreetAddress,
        Kind::ApiKey,
        Kind::Jwt,
        Kind::BearerToken,
        Kind::PrivateKey,
        Kind::Password,
    ];

    /// Stable upper-case name, identical to the serde representation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone => "PHONE",
            Kind::CreditCard => "CREDIT_CARD",
            Kind::Iban => "IBAN",
            Kind::UsSsn => "US_SSN",
            Kind::IpAddress => "IP_ADDRESS",
            Kind::DateOfBirth => "DATE_OF_BIRTH",
            Kind::StreetAddress => "STREET_ADDRESS",
            Kind::ApiKey => "API_KEY",
            Kind::Jwt => "JWT",
            Kind::BearerToken => "BEARER_TOKEN",
            Kind::PrivateKey => "PRIVATE_KEY",
            Kind::Password => "PASSWORD",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub const fn is_secret(self) -> bool {
        matches!(
            self,
            Kind::ApiKey | Kind::Jwt | Kind::BearerToken | Kind::PrivateKey | Kind::Password
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detected span. `start..end` are byte offsets into the scanned `&str`, always on char
/// boundaries. Deliberately no text field: see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// Confidence in `0.0..=1.0`; checksum-validated kinds score highest.
    pub score: f32,
}

/// What to do when a kind is found. Ordered by severity so the strictest action wins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Off,
    #[default]
    Detect,
    Redact,
    Block,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    #[error("built-in pattern `{name}` failed to compile: {message}")]
    Pattern { name: &'static str, message: String },
    #[error("banned terms could not be compiled: {0}")]
    BannedTerms(String),
    #[error("operating-system randomness unavailable: {0}")]
    Random(String),
}

/// Scan `text` with every built-in detector and return non-overlapping findings sorted by start.
///
/// Convenience over [`Scanner`] for callers that do not need per-kind actions.
pub fn scan(text: &str) -> Result<Vec<Finding>, GuardrailError> {
    Ok(detect::Detectors::shared()?.scan(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_through_serde_and_parse() {
        for k in Kind::ALL {
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn action_serde_is_lowercase_and_ordered() {
        let a: Action = serde_json::from_str("\"redact\"").unwrap_or(Action::Off);
        assert_eq!(a, Action::Redact);
        assert_eq!(
            serde_json::to_string(&Action::Block).unwrap_or_default(),
            "\"block\""
        );
        assert!(Action::Block > Action::Redact && Action::Redact > Action::Detect);
        assert!(Action::Detect > Action::Off);
    }
}
