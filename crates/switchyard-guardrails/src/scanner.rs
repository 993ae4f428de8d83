//! Policy layer: detectors say *what* was found, the config says what to *do* about each kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detect::Detectors;
use crate::{Action, Finding, GuardrailError, Kind};

/// Per-kind actions. Deserializes from e.g.
/// `{ "default": "detect", "kinds": { "CREDIT_CARD": "block", "EMAIL": "redact" }, "min_score": 0.8 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScannerConfig {
    pub default: Action,
    pub kinds: BTreeMap<Kind, Action>,
    /// Findings scoring below this are dropped (context-only phone numbers score 0.7).
    pub min_score: f32,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            default: Action::Detect,
            kinds: BTreeMap::new(),
            min_score: 0.0,
        }
    }
}

impl ScannerConfig {
    /// Every kind gets `action`.
    pub fn all(action: Action) -> Self {
        ScannerConfig {
            default: action,
            ..ScannerConfig::default()
        }
    }

    pub fn action_for(&self, kind: Kind) -> Action {
        self.kinds.get(&kind).copied().unwrap_or(self.default)
    }
}

/// A finding plus the action the policy assigns. Like [`Finding`], carries no matched text.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub kind: Kind,
    pub action: Action,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub detections: Vec<Detection>,
}

impl ScanReport {
    /// The strictest action any detection demands (`Off` when nothing was found).
    pub fn action(&self) -> Action {
        self.detections
            .iter()
            .map(|d| d.action)
            .max()
            .unwrap_or(Action::Off)
    }

    pub fn is_blocked(&self) -> bool {
        self.action() == Action::Block
    }

    pub fn is_empty(&self) -> bool {
        self.detections.is_empty()
    }
}

/// Runs all PII and secret detectors in one pass and applies a [`ScannerConfig`].
/// Cheap to clone: the compiled patterns are shared process-wide.
#[derive(Clone)]
pub struct Scanner {
    detectors: &'static Detectors,
    config: ScannerConfig,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// Compiles the built-in patterns on first use; a pattern error is returned here, at
    /// startup/config time, never while serving.
    pub fn new(config: ScannerConfig) -> Result<Self, GuardrailError> {
        Ok(Scanner {
            detectors: Detectors::shared()?,
            config,
        })
    }

    pub fn config(&self) -> &ScannerConfig {
        &self.config
    }

    /// Raw findings for kinds that are not `Off`, above `min_score`.
    pub fn findings(&self, text: &str) -> Vec<Finding> {
        let mut f = self.detectors.scan(text);
        f.retain(|f| {
            f.score >= self.config.min_score && self.config.action_for(f.kind) != Action::Off
        });
        f
    }

    pub fn scan(&self, text: &str) -> ScanReport {
        let detections = self
            .findings(text)
            .into_iter()
            .map(|f| Detection {
                kind: f.kind,
                action: self.config.action_for(f.kind),
                start: f.start,
                end: f.end,
                score: f.score,
            })
            .collect();
        ScanReport { detections }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(cfg: ScannerConfig) -> Scanner {
        match Scanner::new(cfg) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    const TEXT: &str = "Card 4111 1111 1111 1111, mail jane@example.com, key AKIAIOSFODNN7EXAMPLE";

    #[test]
    fn actions_follow_config() {
        let mut cfg = ScannerConfig::default();
        cfg.kinds.insert(Kind::CreditCard, Action::Block);
        cfg.kinds.insert(Kind::Email, Action::Off);
        let report = scanner(cfg).scan(TEXT);
        let got: Vec<_> = report
            .detections
            .iter()
            .map(|d| (d.kind, d.action))
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::CreditCard, Action::Block),
                (Kind::ApiKey, Action::Detect)
            ]
        );
        assert!(report.is_blocked());
    }

    #[test]
    fn config_deserializes_with_lowercase_actions() {
        let cfg: ScannerConfig = match serde_json::from_str(
            r#"{"default":"redact","kinds":{"US_SSN":"block"},"min_score":0.8}"#,
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.action_for(Kind::UsSsn), Action::Block);
        assert_eq!(cfg.action_for(Kind::Email), Action::Redact);
        assert!(serde_json::from_str::<ScannerConfig>(r#"{"default":"Redact"}"#).is_err());
    }

    #[test]
    fn debug_and_json_never_contain_raw_values() {
        let report = scanner(ScannerConfig::all(Action::Redact)).scan(TEXT);
        assert_eq!(report.detections.len(), 3);
        let debug = format!("{report:?} {:?}", report.detections[0]);
        let json = serde_json::to_string(&report).unwrap_or_default();
        let findings = scanner(ScannerConfig::default()).findings(TEXT);
        let fdebug = format!("{findings:?}");
        let fjson = serde_json::to_string(&findings).unwrap_or_default();
        for out in [&debug, &json, &fdebug, &fjson] {
            for raw in ["4111", "jane", "example.com", "AKIA", "EXAMPLE"] {
                assert!(!out.contains(raw), "{raw} leaked into {out}");
            }
        }
        assert!(json.contains("\"CREDIT_CARD\"") && json.contains("\"redact\""));
    }

    #[test]
    fn min_score_drops_weak_findings() {
        let cfg = ScannerConfig {
            min_score: 0.8,
            ..ScannerConfig::default()
        };
        assert!(scanner(cfg).scan("call me at 4155552671").is_empty());
        assert!(!scanner(ScannerConfig::default())
            .scan("call me at 4155552671")
            .is_empty());
    }
}
