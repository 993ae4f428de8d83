//! The content words themselves: what one prompt says and the other does not decides,
//! after inflections, synonyms, compounds and acronyms have been matched up.

use std::collections::HashSet;

use super::lexicon::{
    antonyms_of, synonym, AUDIENCE, DIRECTIONAL, GENERIC, OPPOSITES, ORDER, SCOPE,
};
use super::tokens::{Class, Prompt, Token};
use super::MAX_ADDED;

/// Compares the content words. Words on both sides, inflections, known synonyms, compounds
/// ("wifi" / "wi fi") and acronyms ("2FA" / "two factor authentication") match; what is left
/// over decides.
pub(super) fn words_differ(a: &Prompt, b: &Prompt) -> Option<&'static str> {
    let only_a = unmatched(a, b);
    let only_b = unmatched(b, a);
    if only_a.is_empty() && only_b.is_empty() {
        return None;
    }
    for w in &only_a {
        if antonyms_of(&w.text).any(|o| only_b.iter().any(|x| x.text == o)) {
            return Some("antonym");
        }
    }
    let all = || only_a.iter().chain(only_b.iter());
    if all().any(|t| t.class == Class::Date) {
        return Some("date_differs");
    }
    if all().any(|t| t.class == Class::Unit) {
        return Some("units_differ");
    }
    if all().any(|t| t.entity) {
        return Some("entity_differs");
    }
    if all().any(|t| SCOPE.contains(&t.text) || AUDIENCE.contains(&t.text)) {
        return Some("scope_differs");
    }
    if all().any(|t| ORDER.contains(&t.text)) {
        return Some("order_differs");
    }
    if all().any(|t| DIRECTIONAL.contains(&t.text)) {
        return Some("direction_differs");
    }
    let specific = |side: &[&Token]| {
        side.iter()
            .filter(|t| !GENERIC.contains(t.text.as_str()))
            .count()
    };
    let (sa, sb) = (specific(&only_a), specific(&only_b));
    // One word swapped for another with everything else kept ("savings" / "checking account",
    // "dental" / "vision" cover) is how near-misses are made. Without a thesaurus a swap
    // cannot be told from a synonym, so a swap is a miss unless the synonym table knows it.
    if sa > 0 && sb > 0 {
        return Some("content_words_differ");
    }
    // Words added on one side usually spell out what the other implies ("capital city",
    // "CSV file"); many of them change the question.
    if sa + sb > MAX_ADDED {
        return Some("content_words_differ");
    }
    None
}

/// Content tokens of `p` with no counterpart in `other`.
fn unmatched<'a>(p: &'a Prompt, other: &Prompt) -> Vec<&'a Token> {
    let other_words: HashSet<&str> = other.content().map(|t| t.text.as_str()).collect();
    let other_syn: HashSet<&str> = other_words.iter().map(|w| synonym(w)).collect();
    let other_list: Vec<&Token> = other.content().collect();
    // "wifi" against "wi fi": the word is two adjacent words of the other side run together.
    let joined = |w: &str| {
        other_list.windows(2).any(|pair| {
            w.strip_prefix(pair[0].text.as_str())
                .is_some_and(|rest| rest == pair[1].text)
        })
    };
    let own: Vec<&Token> = p.content().collect();
    let mut out = Vec::new();
    for (i, t) in own.iter().enumerate() {
        if matches!(t.class, Class::Number | Class::Time) {
            continue; // compared by numbers_differ
        }
        let w = t.text.as_str();
        if other_words.contains(w) || other_syn.contains(synonym(w)) || joined(w) {
            continue;
        }
        let with_next = own.get(i + 1).map(|n| format!("{w}{}", n.text));
        let with_prev = i
            .checked_sub(1)
            .and_then(|j| own.get(j))
            .map(|p| format!("{}{w}", p.text));
        if with_next.is_some_and(|c| other_words.contains(c.as_str()))
            || with_prev.is_some_and(|c| other_words.contains(c.as_str()))
        {
            continue;
        }
        if is_acronym_of(t, &other_list) || expands_acronym(&own, i, &other_list) {
            continue;
        }
        if !is_critical(t) && other_words.iter().any(|o| same_stem(w, o)) {
            continue;
        }
        out.push(*t);
    }
    out
}

fn is_critical(t: &Token) -> bool {
    t.entity
        || t.class != Class::Word
        || OPPOSITES.contains_key(t.text.as_str())
        || SCOPE.contains(&t.text)
        || ORDER.contains(&t.text)
        || DIRECTIONAL.contains(&t.text)
        || AUDIENCE.contains(&t.text)
}

/// Inflections the light stemmer misses, in any language: a long shared prefix with at most
/// three letters of difference ("restablezco" / "restablecer").
fn same_stem(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let shorter = a.chars().count().min(b.chars().count());
    common >= 6 && shorter - common <= 3
}

/// "NYC" against "New York City", "2FA" against "two factor authentication": the letters are
/// the initials of consecutive content words on the other side.
fn is_acronym_of(t: &Token, other: &[&Token]) -> bool {
    let letters: Vec<char> = t.text.chars().collect();
    if !(2..=5).contains(&letters.len()) || !t.entity {
        return false;
    }
    let initials: Vec<char> = other.iter().map(|o| initial(o)).collect();
    initials
        .windows(letters.len())
        .any(|w| w.iter().zip(&letters).all(|(x, y)| x == y))
}

/// The other direction: this token is one of the words an acronym on the other side stands for.
fn expands_acronym(own: &[&Token], i: usize, other: &[&Token]) -> bool {
    other.iter().any(|o| {
        let letters: Vec<char> = o.text.chars().collect();
        if !(2..=5).contains(&letters.len()) || !o.entity {
            return false;
        }
        let n = letters.len();
        (i.saturating_sub(n - 1)..=i).any(|start| {
            own.get(start..start + n).is_some_and(|run| {
                run.iter()
                    .map(|t| initial(t))
                    .zip(&letters)
                    .all(|(x, y)| x == *y)
            })
        })
    })
}

fn initial(t: &Token) -> char {
    t.text.chars().next().unwrap_or(' ')
}
