//! Banned-term matching: whole words, case-insensitive, one Aho-Corasick pass for any list size.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;

use crate::GuardrailError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BannedMatch {
    /// Index into the list given to [`BannedTerms::new`] (after empty entries are dropped).
    pub term: usize,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct BannedTerms {
    ac: Option<AhoCorasick>,
    terms: Vec<String>,
}

impl BannedTerms {
    /// Case folding is ASCII-only (Aho-Corasick's), so list non-ASCII terms in the casing they
    /// are expected to appear in.
    pub fn new<I, S>(terms: I) -> Result<Self, GuardrailError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let terms: Vec<String> = terms
            .into_iter()
            .map(|t| t.as_ref().trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let ac = if terms.is_empty() {
            None
        } else {
            // Standard (overlapping) semantics: a longest match that fails the word-boundary test
            // must not hide a shorter one that passes (`cat` inside `cats` vs. `cat`).
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&terms)
                    .map_err(|e| GuardrailError::BannedTerms(e.to_string()))?,
            )
        };
        Ok(BannedTerms { ac, terms })
    }

    pub fn term(&self, index: usize) -> Option<&str> {
        self.terms.get(index).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Non-overlapping whole-word matches, leftmost first, longest term preferred.
    pub fn find(&self, text: &str) -> Vec<BannedMatch> {
        let Some(ac) = &self.ac else {
            return Vec::new();
        };
        let mut hits: Vec<BannedMatch> = ac
            .find_overlapping_iter(text)
            .filter(|m| whole_word(text, m.start(), m.end()))
            .map(|m| BannedMatch {
                term: m.pattern().as_usize(),
                start: m.start(),
                end: m.end(),
            })
            .collect();
        hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut last_end = 0;
        hits.retain(|m| {
            let keep = m.start >= last_end;
            if keep {
                last_end = m.end;
            }
            keep
        });
        hits
    }

    pub fn contains(&self, text: &str) -> bool {
        match &self.ac {
            Some(ac) => ac
                .find_overlapping_iter(text)
                .any(|m| whole_word(text, m.start(), m.end())),
            None => false,
        }
    }
}

/// A boundary is only required on a side where the term itself starts/ends with a word char,
/// so terms like `c++` or `.env` still match.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let m = &text[start..end];
    let left_ok = !m.chars().next().is_some_and(is_word)
        || !text[..start].chars().next_back().is_some_and(is_word);
    let right_ok = !m.chars().next_back().is_some_and(is_word)
        || !text[end..].chars().next().is_some_and(is_word);
    left_ok && right_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(list: &[&str]) -> BannedTerms {
        match BannedTerms::new(list) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn whole_word_case_insensitive() {
        let b = terms(&["project titan", "cat", "cats", "c++"]);
        let t = "Project TITAN uses C++; the Cats and a cat, not concatenate or catalog.";
        let got: Vec<_> = b
            .find(t)
            .into_iter()
            .map(|m| (b.term(m.term).unwrap_or(""), &t[m.start..m.end]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("project titan", "Project TITAN"),
                ("c++", "C++"),
                ("cats", "Cats"),
                ("cat", "cat")
            ]
        );
        assert!(b.contains("my cat"));
        assert!(!b.contains("scatter"));
    }

    #[test]
    fn boundaries_respect_non_ascii_letters() {
        let b = terms(&["ber"]);
        assert!(!b.contains("über"));
        assert!(b.contains("ü ber"));
    }

    #[test]
    fn empty_list_matches_nothing() {
        let b = terms(&["", "  "]);
        assert!(b.is_empty() && b.find("anything").is_empty() && !b.contains("x"));
    }
}
