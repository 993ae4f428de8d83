//! Tokenizing and normalisation: a prompt becomes a sequence of classified tokens in
//! canonical form, so that spelling, inflection, number formats, units and times written
//! differently compare equal.

use super::lexicon::{
    canonical, date_word, number_word, roman, unit_of, unit_word, ENTITIES, NEGATIONS, STOPWORDS,
    TIME_SPANS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Function words, fillers and politeness: they carry no answer-changing meaning.
    Stop,
    Word,
    /// A quantity; `text` is canonical ("1000", "2.5"), so "1,000" and "one thousand" agree.
    Number,
    /// A time of day in minutes after midnight, so "7pm", "7:00 pm" and "19:00" agree.
    Time,
    /// A unit or currency, canonical ("usd" for "$", "dollars" and "USD").
    Unit,
    /// Weekdays, months, seasons and relative days: the answer is about another date.
    Date,
    Negation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) text: String,
    pub(super) class: Class,
    /// Written like a name (capitalised mid-sentence, an acronym, a known country or
    /// language, or letters mixed with digits such as "mp3").
    pub(super) entity: bool,
    /// "one" is a pronoun and "first" an adverb as often as they are numbers: they may match
    /// a 1 but never contradict.
    pub(super) weak: bool,
    /// A sentence or clause boundary precedes the token.
    pub(super) boundary: bool,
    /// Unit attached to a number ("50 dollars", "$50", "6-month").
    pub(super) unit: Option<String>,
}

impl Token {
    pub(super) fn is_content(&self) -> bool {
        matches!(
            self.class,
            Class::Word | Class::Unit | Class::Date | Class::Number | Class::Time
        )
    }
}

#[derive(Debug)]
pub(super) struct Prompt {
    pub(super) tokens: Vec<Token>,
}

impl Prompt {
    pub(super) fn parse(text: &str) -> Prompt {
        let raw = split(text);
        let title_case = is_title_case(&raw);
        let mut tokens = Vec::with_capacity(raw.len());
        for r in &raw {
            classify(r, title_case, &mut tokens);
        }
        join_number_words(&mut tokens);
        attach_units_and_times(&mut tokens);
        apply_phrases(&mut tokens);
        Prompt { tokens }
    }

    pub(super) fn negated(&self) -> bool {
        self.tokens.iter().any(|t| t.class == Class::Negation)
    }

    pub(super) fn content(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| t.is_content())
    }
}

/// A piece of text as written, before normalisation.
#[derive(Debug)]
struct Raw<'a> {
    text: &'a str,
    boundary: bool,
    symbol: bool,
}

/// Splits into words, numbers (keeping "1,000.5" and "7:30" whole) and currency/percent
/// symbols. Hyphens split ("two-factor", "6-month-old"): compounds are re-joined when
/// comparing, so "wi-fi" still matches "wifi".
fn split(text: &str) -> Vec<Raw<'_>> {
    let mut out = Vec::new();
    let mut boundary = true;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_alphanumeric() {
            let numeric = c.is_ascii_digit();
            let mut end = start + c.len_utf8();
            while let Some(&(i, d)) = chars.peek() {
                let after = text[i + d.len_utf8()..].chars().next();
                let next_digit = after.is_some_and(|n| n.is_ascii_digit());
                let next_alpha = after.is_some_and(char::is_alphabetic);
                if d.is_alphanumeric()
                    || (numeric && matches!(d, '.' | ',' | ':') && next_digit)
                    || (is_apostrophe(d) && next_alpha)
                {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            // "C#", "C++", "F#": the marks name a different language.
            let rest = &text[end..];
            if !numeric && (rest.starts_with('#') || rest.starts_with("++")) {
                let mark = if rest.starts_with('#') { 1 } else { 2 };
                end += mark;
                for _ in 0..mark {
                    chars.next();
                }
            }
            out.push(Raw {
                text: &text[start..end],
                boundary,
                symbol: false,
            });
            boundary = false;
            continue;
        }
        match c {
            '$' | '€' | '£' | '¥' | '%' | '°' | '+' => {
                out.push(Raw {
                    text: &text[start..start + c.len_utf8()],
                    boundary,
                    symbol: true,
                });
                boundary = false;
            }
            '.' | '!' | '?' | ':' | ';' | '\n' | '¿' | '¡' | '"' | '(' | ')' | '[' | ']' => {
                boundary = true
            }
            _ => {}
        }
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`')
}

/// Headlines and shouted text capitalise everything; capitals then say nothing about names.
fn is_title_case(raw: &[Raw]) -> bool {
    let words: Vec<&Raw> = raw
        .iter()
        .filter(|r| r.text.chars().next().is_some_and(char::is_alphabetic))
        .collect();
    if words.len() < 5 {
        return false;
    }
    let capitalised = words
        .iter()
        .filter(|r| r.text.chars().next().is_some_and(char::is_uppercase))
        .count();
    capitalised * 10 >= words.len() * 8
}

fn classify(r: &Raw<'_>, title_case: bool, out: &mut Vec<Token>) {
    let mut push = |text: String, class: Class, entity: bool| {
        out.push(Token {
            text,
            class,
            entity,
            weak: false,
            boundary: r.boundary,
            unit: None,
        })
    };
    if r.symbol {
        let unit = match r.text {
            "$" => "usd",
            "€" => "eur",
            "£" => "gbp",
            "¥" => "jpy",
            "%" => "percent",
            "°" => "degree",
            _ => "plus",
        };
        push(unit.to_owned(), Class::Unit, false);
        return;
    }
    let first = r.text.chars().next().unwrap_or(' ');
    if first.is_ascii_digit() {
        let (number, suffix) = split_number(r.text);
        match suffix.as_str() {
            "" => push(number, Class::Number, false),
            // Ordinals: "the 15th" is the same day as "the 15".
            "st" | "nd" | "rd" | "th" => push(number, Class::Number, false),
            "am" | "pm" => {
                push(number, Class::Number, false);
                push(suffix, Class::Stop, false);
            }
            s => match unit_of(s) {
                Some(unit) => {
                    push(number, Class::Number, false);
                    push(unit.to_owned(), Class::Unit, false);
                }
                // "2fa", "4k", "3d": an identifier, compared as a whole word.
                None => push(r.text.to_lowercase(), Class::Word, true),
            },
        }
        return;
    }
    // Allocates only for text that has capitals or typographic apostrophes.
    let lower: std::borrow::Cow<'_, str> = if r
        .text
        .chars()
        .any(|c| c.is_uppercase() || (c != '\'' && is_apostrophe(c)))
    {
        r.text
            .chars()
            .map(|c| if is_apostrophe(c) { '\'' } else { c })
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .into()
    } else {
        r.text.into()
    };
    let lower: &str = &lower;
    let upper_letters = r.text.chars().filter(|c| c.is_uppercase()).count();
    let letters = r.text.chars().filter(|c| c.is_alphabetic()).count();
    let acronym = letters >= 2 && upper_letters == letters && !title_case;
    let capitalised = first.is_uppercase() && !r.boundary && !title_case && lower != "i";
    let has_digit = r.text.chars().any(|c| c.is_ascii_digit());

    if lower.ends_with("n't") || lower.starts_with("n'") {
        push("not".to_owned(), Class::Negation, false);
        return;
    }
    // "size M", "vitamin D", "plan B"; not the pronoun, not a sentence-initial article.
    if r.text.chars().count() == 1
        && first.is_uppercase()
        && r.text != "I"
        && !(r.boundary && r.text == "A")
    {
        push(lower.to_owned(), Class::Word, true);
        return;
    }
    if r.text == "US" || r.text == "U.S" {
        push("usa".to_owned(), Class::Word, true);
        return;
    }
    if let Some(n) = roman(r.text) {
        push(n.to_string(), Class::Number, false);
        return;
    }
    // German marks direction with "von"/"nach" where English uses "from"/"to".
    if lower == "von" || lower == "nach" {
        let english = if lower == "von" { "from" } else { "to" };
        push(english.to_owned(), Class::Stop, false);
        return;
    }
    if NEGATIONS.contains(lower) {
        push(lower.to_owned(), Class::Negation, false);
        return;
    }
    if let Some(n) = number_word(lower) {
        out.push(Token {
            text: n.to_string(),
            class: Class::Number,
            entity: false,
            // "one" is a pronoun as often as a number, "first" an adverb ("work here first").
            weak: lower == "one" || lower == "first",
            boundary: r.boundary,
            unit: None,
        });
        return;
    }
    if lower == "may" {
        // The modal verb is far more common than the month; only a capital mid-sentence
        // says month ("in May", "May 5" is caught by the number next to it).
        if capitalised {
            push("may".to_owned(), Class::Date, false);
        } else {
            push("may".to_owned(), Class::Stop, false);
        }
        return;
    }
    if let Some(d) = date_word(lower) {
        push(d.to_owned(), Class::Date, false);
        return;
    }
    // Possessive and contraction tails ("Anna's", "what's") do not change the word; elided
    // articles ("l'Australie", "d'accord") do not either.
    let base = match lower.split_once('\'') {
        Some((head, tail)) if head.chars().count() <= 2 && tail.chars().count() >= 3 => tail,
        Some((head, _)) => head,
        None => lower,
    };
    if base.chars().count() < 2 && unit_of(base).is_some() {
        push(base.to_owned(), Class::Stop, false);
        return;
    }
    if let Some(unit) = unit_word(base) {
        push(unit.to_owned(), Class::Unit, false);
        return;
    }
    if STOPWORDS.contains(base) {
        push(base.to_owned(), Class::Stop, false);
        return;
    }
    let text = canonical(base);
    let entity = acronym || capitalised || has_digit || ENTITIES.contains(base);
    push(text, Class::Word, entity);
}

/// "1,000" -> "1000", "1,5" -> "1.5", "07" -> "7", "2.50" -> "2.5"; letters after the digits
/// are returned separately ("7pm" -> ("7", "pm")).
fn split_number(text: &str) -> (String, String) {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || matches!(c, '.' | ',' | ':')))
        .map_or(text.len(), |(i, _)| i);
    let (digits, suffix) = text.split_at(end);
    let suffix = suffix.to_lowercase();
    if digits.contains(':') {
        return (digits.to_owned(), suffix);
    }
    let groups: Vec<&str> = digits.split(',').collect();
    let thousands = groups.len() > 1
        && groups[0].len() <= 3
        && groups[1..].iter().enumerate().all(|(i, g)| {
            g.len() == 3
                || (i + 2 == groups.len()
                    && g.starts_with(|c: char| c.is_ascii_digit())
                    && g.split('.').next().is_some_and(|h| h.len() == 3))
        });
    let mut n = if thousands {
        digits.replace(',', "")
    } else {
        digits.replace(',', ".")
    };
    if n.matches('.').count() == 1 {
        let trimmed = n.trim_end_matches('0').trim_end_matches('.').to_owned();
        n = trimmed;
    }
    let n = n.trim_start_matches('0');
    let n = if n.is_empty() || n.starts_with('.') {
        format!("0{n}")
    } else {
        n.to_owned()
    };
    (n, suffix)
}

/// Consecutive number words become one number: "twenty five" -> 25, "two hundred" -> 200.
fn join_number_words(tokens: &mut Vec<Token>) {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for t in tokens.drain(..) {
        if t.class == Class::Number && !t.text.contains(['.', ':']) {
            if let Some(prev) = out.last_mut() {
                if prev.class == Class::Number && !prev.weak && !t.weak {
                    if let (Ok(p), Ok(n)) = (prev.text.parse::<u64>(), t.text.parse::<u64>()) {
                        let combined = match n {
                            100 | 1000 | 1_000_000 | 1_000_000_000 if p > 0 && p < 1000 => {
                                Some(p.saturating_mul(n))
                            }
                            1..=9 if (20..100).contains(&p) && p % 10 == 0 => Some(p + n),
                            _ => None,
                        };
                        if let Some(c) = combined {
                            prev.text = c.to_string();
                            continue;
                        }
                    }
                }
            }
        }
        out.push(t);
    }
    *tokens = out;
}

/// Units after a number ("50 dollars", "5 km", "6 month") and currency before it ("$50")
/// belong to that number; "7 pm" and "19:30" become times.
fn attach_units_and_times(tokens: &mut [Token]) {
    for i in 0..tokens.len() {
        if tokens[i].class != Class::Number {
            continue;
        }
        if let Some((h, m)) = tokens[i].text.split_once(':') {
            if let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) {
                if h < 24 && m < 60 {
                    let pm = tokens.get(i + 1).is_some_and(|t| t.text == "pm");
                    let h = if pm && h < 12 { h + 12 } else { h };
                    tokens[i].text = (h * 60 + m).to_string();
                    tokens[i].class = Class::Time;
                    continue;
                }
            }
        }
        if let Some(ampm @ ("am" | "pm")) = tokens.get(i + 1).map(|t| t.text.as_str()) {
            if let Ok(h) = tokens[i].text.parse::<u32>() {
                if (1..=12).contains(&h) {
                    let h = (h % 12) + if ampm == "pm" { 12 } else { 0 };
                    tokens[i].text = (h * 60).to_string();
                    tokens[i].class = Class::Time;
                    continue;
                }
            }
        }
        if let Some(next) = tokens.get(i + 1) {
            if next.class == Class::Unit && next.text != "plus" {
                tokens[i].unit = Some(next.text.clone());
                continue;
            }
            if let Some(span) = TIME_SPANS.iter().find(|s| next.text == **s) {
                tokens[i].unit = Some((*span).to_owned());
                continue;
            }
        }
        if i > 0 && tokens[i - 1].class == Class::Unit && tokens[i - 1].text != "percent" {
            tokens[i].unit = Some(tokens[i - 1].text.clone());
        }
    }
}

/// Multi-word expressions that mean one thing ("turn off" = "disable") or nothing ("how
/// long" asks for a duration, not about length).
fn apply_phrases(tokens: &mut Vec<Token>) {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut it = std::mem::take(tokens).into_iter().peekable();
    while let Some(mut t) = it.next() {
        let next = it.peek().map(|n| n.text.as_str());
        let replaced = match (t.text.as_str(), next) {
            ("turn" | "switch", Some("on")) => Some("enabl"),
            ("turn" | "switch", Some("off")) => Some("disabl"),
            ("log" | "sign", Some("in" | "into")) => Some("login"),
            ("log" | "sign", Some("out")) => Some("logout"),
            ("check", Some("in")) => Some("checkin"),
            ("check", Some("out")) => Some("checkout"),
            ("set", Some("up")) => Some("setup"),
            ("sign", Some("up")) => Some("register"),
            ("work", Some("out")) => Some("exercis"),
            ("get", Some("rid")) => Some("remov"),
            ("2", Some("hand")) => Some("used"),
            _ => None,
        };
        if let Some(word) = replaced {
            t.text = word.to_owned();
            t.class = Class::Word;
            it.next();
        } else if t.text == "long" && out.last().is_some_and(|p| p.text == "how") {
            continue;
        }
        out.push(t);
    }
    *tokens = out;
}
