//! Numbers, times and their units must agree: "transfer $50" is not "transfer $500", and
//! "50 dollars" is not "50 euros".

use super::tokens::{Class, Prompt};

pub(super) fn numbers_differ(a: &Prompt, b: &Prompt) -> Option<&'static str> {
    let quantities = |p: &Prompt| -> Vec<(String, bool, Option<String>)> {
        p.tokens
            .iter()
            .filter(|t| matches!(t.class, Class::Number | Class::Time))
            .map(|t| {
                let key = if t.class == Class::Time {
                    format!("t{}", t.text)
                } else {
                    t.text.clone()
                };
                (key, t.weak, t.unit.clone())
            })
            .collect()
    };
    let qa = quantities(a);
    let qb = quantities(b);
    // An identifier that starts with the number spells it too: "2FA" / "two-factor".
    let spelled = |p: &Prompt, n: &str| {
        p.tokens.iter().any(|t| {
            t.entity
                && t.class == Class::Word
                && t.text
                    .strip_prefix(n)
                    .is_some_and(|r| r.starts_with(char::is_alphabetic))
        })
    };
    let strong_missing = |x: &[(String, bool, Option<String>)],
                          y: &[(String, bool, Option<String>)],
                          other: &Prompt| {
        x.iter()
            .any(|(n, weak, _)| !weak && !y.iter().any(|(m, _, _)| m == n) && !spelled(other, n))
    };
    if strong_missing(&qa, &qb, b) || strong_missing(&qb, &qa, a) {
        return Some("numbers_differ");
    }
    for (n, _, unit) in &qa {
        let Some(unit) = unit else { continue };
        let others: Vec<&String> = qb
            .iter()
            .filter(|(m, _, _)| m == n)
            .filter_map(|(_, _, u)| u.as_ref())
            .collect();
        if !others.is_empty() && !others.contains(&unit) {
            return Some("units_differ");
        }
    }
    None
}
