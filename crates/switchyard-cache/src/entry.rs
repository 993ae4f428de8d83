//! What the cache stores for one answer, and how entries are selected for invalidation.

use serde::{Deserialize, Serialize};

/// One cached answer with what invalidation and accounting need. The response is stored as
/// the upstream produced it (after input redaction, before placeholders are restored), so no raw
/// PII ever sits in the cache and a hit is restored with the new request's own values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedEntry {
    /// The `ChatCompletionResponse` as JSON.
    pub response: serde_json::Value,
    pub tenant: String,
    /// The model the client asked for (the cache's scope).
    pub model: String,
    /// The model that actually answered, for the log.
    pub model_used: String,
    pub provider: String,
    /// What the original answer cost: what every hit saves.
    pub cost_usd: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub tags: Vec<String>,
    /// Documents the answer depended on, with the version it was computed from.
    pub documents: Vec<(String, u64)>,
    /// The question text for the semantic layer's verifier (empty for exact-only entries).
    pub question: String,
    pub created_ms: u64,
}

impl CachedEntry {
    /// Whether the request depends on exactly the documents, at exactly the versions, that this
    /// answer was computed from. `declared` must be sorted (as [`parse_documents`] returns it).
    pub fn is_current(&self, declared: &[(String, u64)]) -> bool {
        self.documents == declared
    }
}

/// Which entries an invalidation removes; every field set must match (an empty selector
/// matches everything).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    pub tenant: Option<String>,
    pub model: Option<String>,
    pub tag: Option<String>,
    /// Entries that depended on this document...
    pub document: Option<String>,
    /// ...at a version older than this one (all versions when absent).
    pub below_version: Option<u64>,
}

impl Selector {
    pub fn matches(&self, e: &CachedEntry) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == e.tenant)
            && self.model.as_ref().is_none_or(|m| *m == e.model)
            && self.tag.as_ref().is_none_or(|t| e.tags.contains(t))
            && self.document.as_ref().is_none_or(|doc| {
                e.documents
                    .iter()
                    .any(|(d, v)| d == doc && self.below_version.is_none_or(|below| *v < below))
            })
    }

    pub fn is_empty(&self) -> bool {
        self.tenant.is_none()
            && self.model.is_none()
            && self.tag.is_none()
            && self.document.is_none()
    }
}

/// Parses `x-switchyard-cache-deps: handbook@3, prices@12`, sorted by document.
pub fn parse_documents(header: &str) -> Result<Vec<(String, u64)>, String> {
    let mut docs = header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (doc, version) = item
                .rsplit_once('@')
                .ok_or_else(|| format!("{item:?} is not DOCUMENT@VERSION"))?;
            let version = version
                .parse::<u64>()
                .map_err(|_| format!("{item:?}: the version must be a whole number"))?;
            if doc.is_empty() {
                return Err(format!("{item:?}: the document name is empty"));
            }
            Ok((doc.to_owned(), version))
        })
        .collect::<Result<Vec<_>, String>>()?;
    docs.sort();
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> CachedEntry {
        CachedEntry {
            response: serde_json::json!({}),
            tenant: "acme".into(),
            model: "small".into(),
            model_used: "small".into(),
            provider: "p".into(),
            cost_usd: 0.01,
            prompt_tokens: 1,
            completion_tokens: 1,
            tags: vec!["faq".into()],
            documents: vec![("handbook".into(), 3)],
            question: String::new(),
            created_ms: 0,
        }
    }

    #[test]
    fn selectors_match_on_every_field_given() {
        let e = entry();
        assert!(Selector::default().matches(&e));
        let s = |t: Option<&str>, m: Option<&str>, tag: Option<&str>| Selector {
            tenant: t.map(Into::into),
            model: m.map(Into::into),
            tag: tag.map(Into::into),
            ..Selector::default()
        };
        assert!(s(Some("acme"), Some("small"), Some("faq")).matches(&e));
        assert!(!s(Some("other"), None, None).matches(&e));
        assert!(!s(None, Some("large"), None).matches(&e));
        assert!(!s(None, None, Some("news")).matches(&e));
    }

    #[test]
    fn document_versions_invalidate_older_answers_only() {
        let e = entry();
        let doc = |below: Option<u64>| Selector {
            document: Some("handbook".into()),
            below_version: below,
            ..Selector::default()
        };
        assert!(doc(None).matches(&e));
        assert!(doc(Some(4)).matches(&e));
        assert!(!doc(Some(3)).matches(&e));
        assert!(e.is_current(&[("handbook".into(), 3)]));
        assert!(!e.is_current(&[("handbook".into(), 4)]));
        assert!(
            !e.is_current(&[]),
            "an answer that used a document is not served to a request without it"
        );
    }

    #[test]
    fn document_headers_parse_or_explain() {
        assert_eq!(
            parse_documents("handbook@3, prices@12").unwrap(),
            vec![("handbook".into(), 3), ("prices".into(), 12)]
        );
        assert_eq!(
            parse_documents("prices@12,handbook@3").unwrap(),
            parse_documents("handbook@3, prices@12").unwrap()
        );
        assert!(parse_documents("handbook")
            .unwrap_err()
            .contains("DOCUMENT@VERSION"));
        assert!(parse_documents("handbook@x")
            .unwrap_err()
            .contains("whole number"));
    }
}
