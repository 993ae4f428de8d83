//! System-prompt leakage: a random canary injected into the system prompt, plus word-shingle
//! overlap between the answer and the prompt for leaks that paraphrase the canary away.
//!
//! Normalization: words are maximal runs of Unicode alphanumerics, lower-cased; everything else
//! (whitespace, punctuation, markdown) is a separator. So `**You are** a helpful…` and
//! `you are a helpful` compare equal.

use std::borrow::Cow;
use std::collections::HashSet;

use rand::rngs::OsRng;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use crate::GuardrailError;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuardConfig {
    /// A run of this many consecutive prompt words in the answer is a leak. Prompts shorter than
    /// this use their full length (but at least `min_prompt_words`).
    pub verbatim_words: usize,
    /// Shingle size for the fraction test.
    pub ngram: usize,
    /// Leak if at least this fraction of the prompt's distinct n-grams appear in the answer.
    pub ngram_fraction: f32,
    /// Prompts with fewer words are only protected by the canary: short overlaps are too common.
    pub min_prompt_words: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            verbatim_words: 8,
            ngram: 5,
            ngram_fraction: 0.5,
            min_prompt_words: 4,
        }
    }
}

/// Why an answer is considered to leak the system prompt. Carries no answer text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LeakEvidence {
    Canary,
    VerbatimRun { words: usize },
    NgramOverlap { matched: usize, total: usize },
}

#[derive(Clone)]
pub struct SystemPromptGuard {
    canary: String,
    token: String,
    run_len: usize,
    runs: HashSet<u64>,
    ngram: usize,
    ngrams: HashSet<u64>,
    ngram_needed: usize,
}

impl std::fmt::Debug for SystemPromptGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemPromptGuard")
            .field("run_len", &self.run_len)
            .field("ngrams", &self.ngrams.len())
            .finish_non_exhaustive()
    }
}

impl SystemPromptGuard {
    /// Guard with default thresholds and a fresh random canary from the OS RNG.
    pub fn new(system_prompt: &str) -> Result<Self, GuardrailError> {
        Self::with_config(system_prompt, GuardConfig::default())
    }

    pub fn with_config(system_prompt: &str, config: GuardConfig) -> Result<Self, GuardrailError> {
        let mut b = [0u8; 4];
        OsRng
            .try_fill_bytes(&mut b)
            .map_err(|e| GuardrailError::Random(e.to_string()))?;
        Ok(Self::with_canary(
            system_prompt,
            config,
            u32::from_be_bytes(b),
        ))
    }

    /// Deterministic constructor for tests and replays.
    pub fn with_canary(system_prompt: &str, config: GuardConfig, canary: u32) -> Self {
        let token = format!("{canary:08x}");
        let words: Vec<u64> = words(system_prompt).map(|w| w.hash).collect();
        let enough = words.len() >= config.min_prompt_words.max(1);
        let run_len = if enough {
            config.verbatim_words.clamp(1, words.len())
        } else {
            0
        };
        let ngram = config.ngram.max(1);
        let runs = if enough {
            shingles(&words, run_len).collect()
        } else {
            HashSet::new()
        };
        let ngrams: HashSet<u64> = if enough {
            shingles(&words, ngram).collect()
        } else {
            HashSet::new()
        };
        let ngram_needed = if ngrams.len() >= 4 {
            ((ngrams.len() as f32 * config.ngram_fraction).ceil() as usize).max(1)
        } else {
            usize::MAX
        };
        SystemPromptGuard {
            canary: format!("⟦sy-canary:{token}⟧"),
            token,
            run_len,
            runs,
            ngram,
            ngrams,
            ngram_needed,
        }
    }

    /// The marker to place in the system prompt.
    pub fn canary(&self) -> &str {
        &self.canary
    }

    /// `system_prompt` with the canary appended on its own line.
    pub fn inject(&self, system_prompt: &str) -> String {
        format!("{system_prompt}\n\n{}", self.canary)
    }

    /// Whole-answer check. Only the hex part of the canary is looked for, since models often
    /// drop or re-render the brackets.
    pub fn leaked(&self, answer: &str) -> Option<LeakEvidence> {
        let mut matched = HashSet::new();
        self.check(answer, true, &mut matched)
    }

    pub fn stream(&self) -> StreamLeakGuard<'_> {
        StreamLeakGuard::over(Cow::Borrowed(self))
    }

    /// A stream check that owns the guard, for holders that cannot borrow it: an async response
    /// body must be `'static`, and a relay with several choices needs one check per choice.
    pub fn into_stream(self) -> StreamLeakGuard<'static> {
        StreamLeakGuard::over(Cow::Owned(self))
    }

    fn check(&self, text: &str, final_: bool, matched: &mut HashSet<u64>) -> Option<LeakEvidence> {
        if contains_ascii_ci(text, &self.token) {
            return Some(LeakEvidence::Canary);
        }
        if self.run_len == 0 {
            return None;
        }
        let mut hashes: Vec<u64> = words(text).map(|w| w.hash).collect();
        // A word still being streamed may grow; judge it only once it is complete.
        if !final_ && text.chars().next_back().is_some_and(char::is_alphanumeric) {
            hashes.pop();
        }
        if shingles(&hashes, self.run_len).any(|h| self.runs.contains(&h)) {
            return Some(LeakEvidence::VerbatimRun {
                words: self.run_len,
            });
        }
        matched.extend(shingles(&hashes, self.ngram).filter(|h| self.ngrams.contains(h)));
        (matched.len() >= self.ngram_needed).then_some(LeakEvidence::NgramOverlap {
            matched: matched.len(),
            total: self.ngrams.len(),
        })
    }

    /// Words a streaming match can span minus one: the start of a run must still be in the
    /// window when its last word arrives.
    fn hold_words(&self) -> usize {
        self.run_len.max(self.ngram).saturating_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamCheck {
    /// Text safe to forward to the client now.
    pub emit: String,
    pub leak: Option<LeakEvidence>,
}

/// Streaming leak check. Holds back exactly what a match could still span: the last
/// `max(verbatim_words, ngram) - 1` complete words plus any partial word (7 words by default),
/// and at least the canary's byte length minus one, so neither a full verbatim run nor the
/// canary ever reaches the client. Once a leak is reported, nothing more is emitted.
pub struct StreamLeakGuard<'g> {
    guard: Cow<'g, SystemPromptGuard>,
    window: String,
    matched: HashSet<u64>,
    leak: Option<LeakEvidence>,
}

impl<'g> StreamLeakGuard<'g> {
    fn over(guard: Cow<'g, SystemPromptGuard>) -> Self {
        StreamLeakGuard {
            guard,
            window: String::new(),
            matched: HashSet::new(),
            leak: None,
        }
    }

    pub fn push(&mut self, chunk: &str) -> StreamCheck {
        if self.leak.is_some() {
            return self.leaked();
        }
        self.window.push_str(chunk);
        if let Some(l) = self.guard.check(&self.window, false, &mut self.matched) {
            self.leak = Some(l);
            self.window.clear();
            return self.leaked();
        }
        let hold = self.hold_from();
        let emit: String = self.window.drain(..hold).collect();
        StreamCheck { emit, leak: None }
    }

    pub fn finish(mut self) -> StreamCheck {
        if self.leak.is_some() {
            return self.leaked();
        }
        match self.guard.check(&self.window, true, &mut self.matched) {
            Some(l) => StreamCheck {
                emit: String::new(),
                leak: Some(l),
            },
            None => StreamCheck {
                emit: std::mem::take(&mut self.window),
                leak: None,
            },
        }
    }

    fn leaked(&self) -> StreamCheck {
        StreamCheck {
            emit: String::new(),
            leak: self.leak.clone(),
        }
    }

    fn hold_from(&self) -> usize {
        let w = &self.window;
        let mut canary_hold = w
            .len()
            .saturating_sub(self.guard.canary.len().saturating_sub(1));
        while !w.is_char_boundary(canary_hold) {
            canary_hold -= 1;
        }
        let starts: Vec<usize> = words(w).map(|x| x.start).collect();
        let partial = w.chars().next_back().is_some_and(char::is_alphanumeric);
        let complete = starts.len() - usize::from(partial && !starts.is_empty());
        let keep_from = complete.saturating_sub(self.guard.hold_words());
        let word_hold = starts.get(keep_from).copied().unwrap_or(w.len());
        canary_hold.min(word_hold)
    }
}

struct Word {
    start: usize,
    hash: u64,
}

/// FNV-1a over lower-cased chars; no allocation per word.
fn words(text: &str) -> impl Iterator<Item = Word> + '_ {
    let mut it = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while it.next_if(|(_, c)| !c.is_alphanumeric()).is_some() {}
        let (start, _) = *it.peek()?;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        while let Some((_, c)) = it.next_if(|(_, c)| c.is_alphanumeric()) {
            for lc in c.to_lowercase() {
                h = (h ^ u64::from(u32::from(lc))).wrapping_mul(0x0100_0000_01b3);
            }
        }
        Some(Word { start, hash: h })
    })
}

fn shingles(words: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    words.windows(n.max(1)).map(move |w| {
        w.iter().fold(n as u64, |acc, &x| {
            acc.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ x
        })
    })
}

fn contains_ascii_ci(hay: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty()
        && hay
            .as_bytes()
            .windows(n.len())
            .any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "You are Atlas, the support assistant for Northwind Bank. Never reveal \
        internal policy codes. Always answer in a friendly tone and escalate fraud reports to \
        the security team within one hour. Do not discuss competitors or interest rate forecasts.";

    fn guard() -> SystemPromptGuard {
        SystemPromptGuard::with_canary(PROMPT, GuardConfig::default(), 0x1a2b_3c4d)
    }

    #[test]
    fn canary_is_detected_even_without_brackets() {
        let g = guard();
        assert_eq!(g.canary(), "⟦sy-canary:1a2b3c4d⟧");
        assert!(g.inject(PROMPT).ends_with(g.canary()));
        assert_eq!(
            g.leaked("my marker is 1A2B3C4D."),
            Some(LeakEvidence::Canary)
        );
        assert_eq!(g.leaked("Happy to help with your card."), None);
    }

    #[test]
    fn random_canaries_differ() {
        let a = SystemPromptGuard::new(PROMPT).map(|g| g.canary().to_owned());
        let b = SystemPromptGuard::new(PROMPT).map(|g| g.canary().to_owned());
        assert!(matches!((a, b), (Ok(a), Ok(b)) if a != b));
    }

    #[test]
    fn verbatim_run_is_detected_after_normalization() {
        let g = guard();
        let answer = "Sure! My instructions say: **never REVEAL internal policy-codes; always \
                      answer in a friendly** tone.";
        assert_eq!(
            g.leaked(answer),
            Some(LeakEvidence::VerbatimRun { words: 8 })
        );
        // Seven words in a row is below the threshold.
        assert_eq!(
            g.leaked("I never reveal internal policy codes, always answer."),
            None
        );
    }

    #[test]
    fn ngram_fraction_catches_reordered_leak() {
        let g = SystemPromptGuard::with_canary(
            PROMPT,
            GuardConfig {
                verbatim_words: 40,
                ngram_fraction: 0.3,
                ..GuardConfig::default()
            },
            7,
        );
        let answer = "Do not discuss competitors or interest rate forecasts. Also: escalate fraud \
                      reports to the security team within one hour. And: you are Atlas, the \
                      support assistant for Northwind Bank.";
        assert!(matches!(
            g.leaked(answer),
            Some(LeakEvidence::NgramOverlap { .. })
        ));
    }

    #[test]
    fn short_prompts_rely_on_the_canary() {
        let g = SystemPromptGuard::with_canary("Be brief.", GuardConfig::default(), 9);
        assert_eq!(g.leaked("Be brief."), None);
    }

    fn stream_all(
        g: &SystemPromptGuard,
        text: &str,
        chunk: usize,
    ) -> (String, Option<LeakEvidence>) {
        let mut s = g.stream();
        let mut out = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut n = chunk.min(rest.len());
            while !rest.is_char_boundary(n) {
                n += 1;
            }
            let r = s.push(&rest[..n]);
            out += &r.emit;
            if r.leak.is_some() {
                return (out, r.leak);
            }
            rest = &rest[n..];
        }
        let r = s.finish();
        out += &r.emit;
        (out, r.leak)
    }

    #[test]
    fn streaming_detects_canary_split_across_tiny_chunks_before_emitting_it() {
        let g = guard();
        let answer = format!("Here you go: {} and more text after it.", g.canary());
        for chunk in 1..8 {
            let (out, leak) = stream_all(&g, &answer, chunk);
            assert_eq!(leak, Some(LeakEvidence::Canary), "chunk {chunk}");
            assert!(
                !out.contains("1a2b3c4d"),
                "canary emitted with chunk {chunk}: {out}"
            );
        }
    }

    #[test]
    fn streaming_detects_verbatim_run_without_emitting_all_of_it() {
        let g = guard();
        let answer =
            "Well, escalate fraud reports to the security team within one hour is the rule.";
        for chunk in 1..6 {
            let (out, leak) = stream_all(&g, answer, chunk);
            assert_eq!(leak, Some(LeakEvidence::VerbatimRun { words: 8 }));
            assert!(!out.contains("within one"), "emitted {out:?}");
        }
    }

    #[test]
    fn owned_stream_behaves_like_a_borrowed_one() {
        let g = guard();
        let answer = "Well, escalate fraud reports to the security team within one hour.";
        let mut s = g.clone().into_stream();
        let r = s.push(answer);
        assert_eq!(r.leak, Some(LeakEvidence::VerbatimRun { words: 8 }));
        assert_eq!(r.emit, "");
    }

    #[test]
    fn streaming_clean_answer_is_emitted_exactly() {
        let g = guard();
        let answer =
            "Your card ending in 4242 was blocked because of unusual activity — ünïcode ok.";
        for chunk in [1, 2, 3, 7, 100] {
            assert_eq!(stream_all(&g, answer, chunk), (answer.to_owned(), None));
        }
    }
}
