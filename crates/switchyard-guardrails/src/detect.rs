//! The shared detector engine: a table of rules (regex candidate + validator), compiled once, and
//! a single-pass prefilter that decides which rules can possibly match before any regex runs.
//!
//! Cost model: most prompts contain digits but no `@`, no secret prefixes and no context words.
//! One byte loop plus one Aho-Corasick pass over the text decide which rules run, so a clean
//! prompt pays for a handful of DFA scans, and a rule that requires e.g. `sk-` costs nothing
//! when the prefix is absent.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};

use crate::{Finding, GuardrailError, Kind};

/// Cheap byte-class facts about the text, computed in one loop.
#[derive(Clone, Copy, Default)]
pub(crate) struct Facts {
    digit: bool,
    at: bool,
    colon: bool,
    dash5: bool,
}

impl Facts {
    fn of(text: &str) -> Facts {
        let mut f = Facts::default();
        let mut dashes = 0u8;
        for &b in text.as_bytes() {
            match b {
                b'0'..=b'9' => f.digit = true,
                b'@' => f.at = true,
                b':' => f.colon = true,
                _ => {}
            }
            if b == b'-' {
                dashes = dashes.saturating_add(1);
                f.dash5 |= dashes >= 5;
            } else {
                dashes = 0;
            }
        }
        f
    }
}

/// Which byte facts a rule needs before its regex is worth running.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Nothing,
    Digit,
    At,
    Colon,
    Dashes,
}

/// Validator: given the text and a candidate span, return the (possibly narrowed) span and score,
/// or `None` to reject. Base score is passed in so a validator can raise or lower it.
pub(crate) type Validator = fn(&str, usize, usize, f32) -> Option<(usize, usize, f32)>;

pub(crate) struct RuleSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub pattern: &'static str,
    /// Capture group holding the sensitive part (0 = whole match).
    pub group: usize,
    pub score: f32,
    pub need: Need,
    /// If non-empty, at least one of these (ASCII case-insensitive) must occur in the text.
    pub triggers: &'static [&'static str],
    pub validate: Option<Validator>,
}

struct Rule {
    spec: &'static RuleSpec,
    re: Regex,
}

pub(crate) struct Detectors {
    rules: Vec<Rule>,
    triggers: AhoCorasick,
    /// Trigger pattern index -> bitmask of rules it enables.
    trigger_rules: Vec<u64>,
    /// Rules that need no trigger.
    always: u64,
}

static SHARED: OnceLock<Result<Detectors, (&'static str, String)>> = OnceLock::new();

impl Detectors {
    /// The process-wide compiled detectors. Compilation happens once; a failure is cached and
    /// reported to every caller as an error instead of panicking on the request path.
    pub(crate) fn shared() -> Result<&'static Detectors, GuardrailError> {
        SHARED
            .get_or_init(|| Detectors::build(crate::pii::RULES.iter().chain(crate::secrets::RULES)))
            .as_ref()
            .map_err(|(name, message)| GuardrailError::Pattern {
                name,
                message: message.clone(),
            })
    }

    fn build(
        specs: impl Iterator<Item = &'static RuleSpec>,
    ) -> Result<Detectors, (&'static str, String)> {
        let mut rules = Vec::new();
        let mut words: Vec<&'static str> = Vec::new();
        let mut trigger_rules: Vec<u64> = Vec::new();
        let mut always = 0u64;
        for spec in specs {
            let idx = rules.len();
            if idx >= 64 {
                return Err((spec.name, "more than 64 rules".into()));
            }
            let re = RegexBuilder::new(spec.pattern)
                .unicode(false)
                .build()
                .map_err(|e| (spec.name, e.to_string()))?;
            rules.push(Rule { spec, re });
            if spec.triggers.is_empty() {
                always |= 1 << idx;
            }
            for t in spec.triggers {
                match words.iter().position(|w| w.eq_ignore_ascii_case(t)) {
                    Some(p) => trigger_rules[p] |= 1 << idx,
                    None => {
                        words.push(t);
                        trigger_rules.push(1 << idx);
                    }
                }
            }
        }
        let triggers = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&words)
            .map_err(|e| ("triggers", e.to_string()))?;
        Ok(Detectors {
            rules,
            triggers,
            trigger_rules,
            always,
        })
    }

    fn enabled(&self, text: &str) -> u64 {
        let mut mask = self.always;
        for m in self.triggers.find_overlapping_iter(text) {
            mask |= self.trigger_rules[m.pattern().as_usize()];
        }
        mask
    }

    /// All findings, overlaps resolved (higher score, then longer span wins), sorted by start.
    pub(crate) fn scan(&self, text: &str) -> Vec<Finding> {
        let facts = Facts::of(text);
        let mask = self.enabled(text);
        let mut out = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if mask & (1 << i) == 0 || !need_met(rule.spec.need, facts) {
                continue;
            }
            run_rule(rule, text, &mut out);
        }
        resolve_overlaps(out)
    }
}

fn need_met(need: Need, f: Facts) -> bool {
    match need {
        Need::Nothing => true,
        Need::Digit => f.digit,
        Need::At => f.at,
        Need::Colon => f.colon,
        Need::Dashes => f.dash5,
    }
}

fn run_rule(rule: &Rule, text: &str, out: &mut Vec<Finding>) {
    let spec = rule.spec;
    let mut push = |s: usize, e: usize| {
        let verdict = match spec.validate {
            Some(v) => v(text, s, e, spec.score),
            None => Some((s, e, spec.score)),
        };
        if let Some((start, end, score)) = verdict {
            if start < end && text.is_char_boundary(start) && text.is_char_boundary(end) {
                out.push(Finding {
                    kind: spec.kind,
                    start,
                    end,
                    score,
                });
            }
        }
    };
    if spec.group == 0 {
        for m in rule.re.find_iter(text) {
            push(m.start(), m.end());
        }
    } else {
        for caps in rule.re.captures_iter(text) {
            if let Some(m) = caps.get(spec.group) {
                push(m.start(), m.end());
            }
        }
    }
}

fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    if all.len() < 2 {
        return all;
    }
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::{Finding, Kind};

    pub fn scan(text: &str) -> Vec<Finding> {
        match super::Detectors::shared() {
            Ok(d) => d.scan(text),
            Err(e) => panic!("{e}"),
        }
    }

    /// Kinds and matched substrings, for readable assertions.
    pub fn found(text: &str) -> Vec<(Kind, &str)> {
        scan(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    pub fn kinds(text: &str) -> Vec<Kind> {
        scan(text).into_iter().map(|f| f.kind).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::found;
    use crate::Kind;

    #[test]
    fn all_rules_compile() {
        assert!(super::Detectors::shared().is_ok());
    }

    #[test]
    fn clean_text_yields_nothing() {
        assert!(found("Summarize the attached meeting notes in three bullet points.").is_empty());
        assert!(found("").is_empty());
    }

    #[test]
    fn overlaps_prefer_higher_score() {
        // The IBAN's digit groups also look like a national phone number.
        let t = "IBAN DE89 3704 0044 0532 0130 00 please";
        assert_eq!(found(t), vec![(Kind::Iban, "DE89 3704 0044 0532 0130 00")]);
    }

    #[test]
    fn offsets_are_char_boundaries_around_non_ascii() {
        let t = "Grüße — schreib an jürgen.müller@example.de oder ämter@example.com";
        let got: Vec<&str> = found(t).into_iter().map(|(_, s)| s).collect();
        assert_eq!(got, vec!["jürgen.müller@example.de", "ämter@example.com"]);
    }
}
