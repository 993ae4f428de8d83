//! Direction and order: the same words in swapped roles ask the opposite question.

use std::collections::{HashMap, HashSet};

use super::lexicon::{antonyms_of, is_asymmetric, is_connective, is_symmetric, OPPOSITES};
use super::tokens::{Class, Prompt};
use super::MAX_ORDERED;

/// Same words, swapped roles: "from savings to current" / "from current to savings",
/// "Is Rust faster than Go" / "Is Go faster than Rust", "China exports more than it imports".
pub(super) fn direction_swapped(a: &Prompt, b: &Prompt) -> bool {
    let ea = edges(a);
    let eb = edges(b);
    if ea.iter().any(|(x, y)| eb.contains(&(y.clone(), x.clone()))) {
        return true;
    }
    // Names, numbers and opposite pairs that occur once on each side and appear in the other
    // order across an asymmetric word ("Alice paid Bob" is symmetric in the words, not in the
    // meaning). Roles stated the same way on both sides explain a reordering ("to NYC from
    // Boston" = "from Boston to NYC"), and "and"/"between" make the order meaningless.
    let ra = roles(a);
    let rb = roles(b);
    let salient: HashSet<&str> = a
        .tokens
        .iter()
        .chain(&b.tokens)
        .filter(|t| t.entity || matches!(t.class, Class::Number | Class::Time))
        .map(|t| t.text.as_str())
        .collect();
    let salient_b = salient_positions(b);
    let mut shared: Vec<(&str, usize, usize)> = salient_positions(a)
        .into_iter()
        .filter_map(|(w, pa)| salient_b.get(w).map(|pb| (w, pa, *pb)))
        .filter(|(w, _, _)| salient.contains(w) || OPPOSITES.contains_key(*w))
        .collect();
    shared.sort_by_key(|(_, pa, _)| *pa);
    shared.truncate(MAX_ORDERED);
    if shared.len() < 2 {
        return false;
    }
    let (asym_a, sym_a) = (
        prefix_counts(a, is_asymmetric),
        prefix_counts(a, is_symmetric),
    );
    let (asym_b, sym_b) = (
        prefix_counts(b, is_asymmetric),
        prefix_counts(b, is_symmetric),
    );
    // Occurrences strictly between positions x and y.
    let between = |counts: &[usize], x: usize, y: usize| {
        let (lo, hi) = (x.min(y), x.max(y));
        counts.get(hi).copied().unwrap_or(0) > counts.get(lo + 1).copied().unwrap_or(0)
    };
    let explained = |w: &str| {
        (ra.0.as_deref() == Some(w) && rb.0.as_deref() == Some(w))
            || (ra.1.as_deref() == Some(w) && rb.1.as_deref() == Some(w))
    };
    for (i, (w1, a1, b1)) in shared.iter().enumerate() {
        for (w2, a2, b2) in shared.iter().skip(i + 1) {
            if (a1 < a2) == (b1 < b2) || explained(w1) || explained(w2) {
                continue;
            }
            if between(&sym_a, *a1, *a2) || between(&sym_b, *b1, *b2) {
                continue;
            }
            let opposite = antonyms_of(w1).any(|o| o == *w2);
            let names = salient.contains(w1) && salient.contains(w2);
            let asymmetric = between(&asym_a, *a1, *a2) || between(&asym_b, *b1, *b2);
            if opposite || (asymmetric && names) {
                return true;
            }
        }
    }
    false
}

/// `counts[i]` = how many of the first `i` tokens are in `words`.
fn prefix_counts(p: &Prompt, member: fn(&str) -> bool) -> Vec<usize> {
    let mut counts = Vec::with_capacity(p.tokens.len() + 1);
    let mut n = 0;
    counts.push(0);
    for t in &p.tokens {
        if member(&t.text) {
            n += 1;
        }
        counts.push(n);
    }
    counts
}

/// Content tokens that occur exactly once, with their position.
fn salient_positions(p: &Prompt) -> HashMap<&str, usize> {
    let mut seen: HashMap<&str, Option<usize>> = HashMap::new();
    for (i, t) in p.tokens.iter().enumerate() {
        if t.is_content() {
            seen.entry(t.text.as_str())
                .and_modify(|once| *once = None)
                .or_insert(Some(i));
        }
    }
    seen.into_iter()
        .filter_map(|(w, once)| once.map(|i| (w, i)))
        .collect()
}

/// The first content word after "from" and after "to".
fn roles(p: &Prompt) -> (Option<String>, Option<String>) {
    let after = |word: &str| {
        p.tokens
            .iter()
            .position(|t| t.text == word)
            .and_then(|i| p.tokens[i + 1..].iter().take(3).find(|t| t.is_content()))
            .map(|t| t.text.clone())
    };
    (after("from"), after("to"))
}

/// Directed pairs around asymmetric connectives: (source, target) for "X to Y", "X into Y",
/// "from X ... to Y" and "X than Y", up to two content words on each side within a clause.
fn edges(p: &Prompt) -> Vec<(String, String)> {
    let t = &p.tokens;
    let mut out = Vec::new();
    let window = |range: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        let mut words = Vec::new();
        for j in range {
            let tok = &t[j];
            if tok.is_content() {
                words.push(tok.text.clone());
                if words.len() == 2 {
                    break;
                }
            } else if is_connective(&tok.text) || tok.class == Class::Negation {
                break;
            }
        }
        words
    };
    for (i, tok) in t.iter().enumerate() {
        if !matches!(tok.text.as_str(), "to" | "into" | "than" | "from") || tok.class != Class::Stop
        {
            continue;
        }
        let mut fwd = (i + 1..t.len()).take_while(|&j| !t[j].boundary || j == i + 1);
        let after = window(&mut fwd);
        if tok.text == "from" {
            // "from X ... to Y": X is the source of whatever follows "to".
            if let Some(to) = t[i + 1..]
                .iter()
                .position(|x| x.text == "to" || x.text == "into")
                .map(|k| i + 1 + k)
            {
                let mut fwd = (to + 1..t.len()).take_while(|&j| !t[j].boundary || j == to + 1);
                let target = window(&mut fwd);
                for x in after.iter().take(1) {
                    for y in &target {
                        if x != y {
                            out.push((x.clone(), y.clone()));
                        }
                    }
                }
            }
            continue;
        }
        let mut back = (0..i)
            .rev()
            .take_while(|&j| !t[j + 1].boundary || j + 1 == i);
        let before = window(&mut back);
        for x in &before {
            for y in &after {
                if x != y && !before.contains(y) {
                    out.push((x.clone(), y.clone()));
                }
            }
        }
    }
    out
}
