//! Whether the answer cached for one prompt may be served for another, similar prompt.
//!
//! Sentence embeddings place "transfer from savings to current" and "transfer from current to
//! savings" at cosine 0.99: they encode topic, not the details an answer depends on. So a
//! semantic candidate is served only when, besides clearing the similarity gate, the two
//! prompts agree on what embeddings blur: numbers (with their units, times and dates),
//! negation, direction and order, antonyms, names, and the content words themselves. Every
//! rule errs towards a miss: a rejected rewording costs one model call, a served trap costs a
//! wrong answer. Measured effect and known weaknesses: `docs/cache-quality.md`.
//!
//! Pure and allocation-light; a few microseconds for short prompts, well under a millisecond
//! for prompts of several thousand characters.
//!
//! Layout: `tokens` turns a prompt into normalised tokens; `numbers`, `direction` and `words`
//! are the rule families `compare` applies in turn; `lexicon` holds the word lists they
//! consult.

mod direction;
mod lexicon;
mod numbers;
mod tokens;
mod words;

#[cfg(test)]
mod tests;

use self::direction::direction_swapped;
use self::numbers::numbers_differ;
use self::tokens::{Class, Prompt};
use self::words::words_differ;

/// Similarity (cosine of L2-normalized embeddings) at or above which a candidate is considered at all.
pub const DEFAULT_MIN_SIMILARITY: f32 = 0.80;

/// Longer prompts are not compared word by word: the cost would grow without bound, and the
/// embedding only reads the first 256 word pieces, so two long prompts that differ near the end
/// look identical to it and a hit there would rest on the verifier alone.
const MAX_CHARS: usize = 16 * 1024;

/// Content words one prompt may add without the pair being judged different.
const MAX_ADDED: usize = 2;

/// Pairs of shared salient tokens whose order is compared; bounds the quadratic check.
const MAX_ORDERED: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub accept: bool,
    pub reason: &'static str,
}

impl Verdict {
    const ACCEPT: Verdict = Verdict {
        accept: true,
        reason: "accepted",
    };

    const fn reject(reason: &'static str) -> Verdict {
        Verdict {
            accept: false,
            reason,
        }
    }
}

/// Whether the answer cached for `cached` may be served for `query`, given their cosine similarity.
/// Runs on every semantic candidate (even at similarity 0.99: traps score that high).
pub fn verify(query: &str, cached: &str, similarity: f32) -> Verdict {
    verify_at(query, cached, similarity, DEFAULT_MIN_SIMILARITY)
}

/// [`verify`] with another similarity gate, for measuring other thresholds.
pub(crate) fn verify_at(
    query: &str,
    cached: &str,
    similarity: f32,
    min_similarity: f32,
) -> Verdict {
    // NaN fails the gate too.
    if similarity.is_nan() || similarity < min_similarity {
        return Verdict::reject("below_threshold");
    }
    if query.len() > MAX_CHARS || cached.len() > MAX_CHARS {
        return Verdict::reject("too_long");
    }
    let verdict = compare(&Prompt::parse(query), &Prompt::parse(cached));
    if !verdict.accept {
        return verdict;
    }
    // In a conversation flattened to text the last line is the request, and the words it
    // uses may all occur earlier on both sides ("I ordered a lamp and a desk ... cancel the
    // lamp" / "... cancel the desk"): it must agree on its own too.
    match (last_line(query), last_line(cached)) {
        (Some(q), Some(c)) => compare(&Prompt::parse(q), &Prompt::parse(c)),
        _ => verdict,
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.trim_end()
        .rsplit_once('\n')
        .map(|(_, last)| last)
        .filter(|l| !l.trim().is_empty())
}

fn compare(a: &Prompt, b: &Prompt) -> Verdict {
    if a.tokens == b.tokens {
        return Verdict::ACCEPT;
    }
    if let Some(reason) = numbers_differ(a, b) {
        return Verdict::reject(reason);
    }
    if a.negated() != b.negated() {
        return Verdict::reject("negation_differs");
    }
    if direction_swapped(a, b) {
        return Verdict::reject("direction_swapped");
    }
    // "to my sister" / "from my sister".
    let has = |p: &Prompt, w: &str| {
        p.tokens
            .iter()
            .any(|t| t.class == Class::Stop && t.text == w)
    };
    let toward = |p: &Prompt| (has(p, "to") || has(p, "into"), has(p, "from"));
    let (ta, fa) = toward(a);
    let (tb, fb) = toward(b);
    if (ta && !fa && fb && !tb) || (fa && !ta && tb && !fb) {
        return Verdict::reject("direction_differs");
    }
    if let Some(reason) = words_differ(a, b) {
        return Verdict::reject(reason);
    }
    Verdict::ACCEPT
}
