//! Words that qualify what is asked (scope, order, direction, audience), and the words that
//! make word order matter or not.

use std::sync::LazyLock;

use super::stem::canonical;
use super::FastSet;

/// Words that set how much of something the question covers.
pub(in crate::verify) static SCOPE: LazyLock<FastSet<String>> = LazyLock::new(|| {
    [
        "all",
        "only",
        "both",
        "entire",
        "whole",
        "single",
        "except",
        "excluding",
        "exclusively",
        "partial",
        "either",
        "alone",
        "total",
        "full",
        "part",
    ]
    .into_iter()
    .map(canonical)
    .collect()
});

/// Position in a sequence: the first episode is not the last.
pub(in crate::verify) static ORDER: LazyLock<FastSet<String>> = LazyLock::new(|| {
    [
        "first", "second", "third", "fourth", "fifth", "last", "next", "previous", "final",
        "latest", "earliest", "upcoming", "past", "recent", "initial", "middle", "ago", "since",
        "until",
    ]
    .into_iter()
    .map(canonical)
    .collect()
});

/// Where, which way and how much relative to something: "over £50" is not "£50".
pub(in crate::verify) static DIRECTIONAL: LazyLock<FastSet<String>> = LazyLock::new(|| {
    [
        "before", "after", "over", "under", "above", "below", "more", "less", "fewer", "off",
        "inside", "outside", "north", "south", "east", "west", "within", "beyond", "higher",
        "lower", "longer", "shorter", "faster", "slower", "cheaper", "bigger", "smaller", "larger",
        "older", "younger", "earlier", "later",
    ]
    .into_iter()
    .map(canonical)
    .collect()
});

/// Who the question is about: advice for a child is not advice for an adult.
pub(in crate::verify) static AUDIENCE: LazyLock<FastSet<String>> = LazyLock::new(|| {
    [
        "child",
        "children",
        "kid",
        "kids",
        "baby",
        "babies",
        "infant",
        "toddler",
        "teen",
        "teenager",
        "adult",
        "senior",
        "elderly",
        "pregnant",
        "pregnancy",
        "woman",
        "women",
        "man",
        "men",
        "boy",
        "girl",
        "dog",
        "dogs",
        "cat",
        "cats",
        "puppy",
        "kitten",
        "student",
        "employee",
        "employer",
        "manager",
        "admin",
        "guest",
        "beginner",
        "expert",
    ]
    .into_iter()
    .map(canonical)
    .collect()
});

/// Words that make the order of what surrounds them matter (canonical forms).
pub(in crate::verify) fn is_asymmetric(w: &str) -> bool {
    matches!(
        w,
        "to" | "into"
            | "from"
            | "than"
            | "of"
            | "by"
            | "over"
            | "under"
            | "befor"
            | "after"
            | "own"
            | "owned"
            | "beat"
            | "send"
            | "sent"
            | "pay"
            | "paid"
            | "giv"
            | "gav"
            | "power"
            | "divid"
            | "minus"
            | "time"
    )
}

/// Words that make it not matter.
pub(in crate::verify) fn is_symmetric(w: &str) -> bool {
    matches!(
        w,
        "and" | "or" | "between" | "vs" | "versus" | "with" | "both"
    )
}

/// Function words that bound the two sides of a directed relation.
pub(in crate::verify) fn is_connective(w: &str) -> bool {
    matches!(
        w,
        "to" | "into" | "than" | "from" | "and" | "or" | "but" | "vs" | "versus"
    )
}
