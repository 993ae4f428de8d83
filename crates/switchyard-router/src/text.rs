//! Line- and word-level heuristics used by the feature extractor.

/// Words that open a direct question in the supported languages.
const QUESTION_STARTERS: &[&str] = &[
    "what",
    "what's",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "which",
    "why",
    "how",
    "is",
    "are",
    "was",
    "were",
    "do",
    "does",
    "did",
    "can",
    "could",
    "will",
    "would",
    "should",
    "shall",
    "may",
    "qué",
    "que",
    "quién",
    "quien",
    "cuál",
    "cual",
    "cuándo",
    "cuando",
    "dónde",
    "donde",
    "cómo",
    "como",
    "cuánto",
    "cuántos",
    "cuántas",
    "hay",
    "puedo",
    "qu'est-ce",
    "quel",
    "quelle",
    "quels",
    "qui",
    "quand",
    "où",
    "comment",
    "combien",
    "est-ce",
    "pourquoi",
    "wer",
    "wie",
    "wo",
    "wann",
    "welche",
    "welcher",
    "warum",
    "ist",
    "sind",
    "kann",
    "gibt",
];

/// Whether `word` opens a direct question ("what", "¿qué", "wie"...).
pub(crate) fn is_question_starter(word: &str) -> bool {
    QUESTION_STARTERS
        .iter()
        .any(|s| s.as_bytes().eq_ignore_ascii_case(word.as_bytes()))
}

pub(crate) fn parse_number(s: &str) -> Option<f32> {
    let (digits, scale) = match s.strip_suffix(['k', 'K']) {
        Some(d) if !d.is_empty() => (d, 1000.0),
        _ => (s, 1.0),
    };
    let mut value = 0.0f32;
    let mut fraction: Option<f32> = None;
    let mut any_digit = false;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                let d = f32::from(b - b'0');
                match fraction.as_mut() {
                    Some(place) => {
                        *place /= 10.0;
                        value += d * *place;
                    }
                    None => value = value * 10.0 + d,
                }
            }
            b',' if fraction.is_none() => {}
            b'.' if fraction.is_none() => fraction = Some(1.0),
            _ => return None,
        }
    }
    any_digit.then_some(value * scale)
}

/// Words of output that "`n` `unit`" asks for ("2,000 words", "3 pages"), if `unit` is a length unit.
pub(crate) fn requested_words(n: f32, unit: &str) -> Option<f32> {
    const UNITS: &[(&str, f32)] = &[
        ("word", 1.0),
        ("words", 1.0),
        ("palabras", 1.0),
        ("mots", 1.0),
        ("wörter", 1.0),
        ("worte", 1.0),
        ("wörtern", 1.0),
        ("page", 500.0),
        ("pages", 500.0),
        ("páginas", 500.0),
        ("seiten", 500.0),
        ("paragraph", 100.0),
        ("paragraphs", 100.0),
        ("párrafos", 100.0),
        ("paragraphes", 100.0),
        ("absätze", 100.0),
        ("lines", 10.0),
        ("line", 10.0),
        ("sentences", 20.0),
        ("tokens", 0.75),
    ];
    UNITS
        .iter()
        .find(|(u, _)| u.as_bytes().eq_ignore_ascii_case(unit.as_bytes()))
        .map(|(_, mult)| n * mult)
}

pub(crate) fn is_code_line(t: &str) -> bool {
    const STARTS: &[&str] = &[
        "def ", "fn ", "pub ", "class ", "import ", "#include", "return ", "const ", "let ",
        "var ", "func ", "public ", "private ", "select ", "SELECT ", "for (", "if (", "while (",
        "elif ", "else:", "try:", "except", "print(", "console.", "std::", "//", "/*", "#!/", "$ ",
        "package ", "using ", "async ", "await ", "<div", "</", "@", "impl ", "struct ", "int ",
        "void ", "static ",
    ];
    let bytes = t.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if matches!(last, b';' | b'{' | b'}') {
        return true;
    }
    // Comparing the first byte before the whole prefix keeps this cheap on long prose.
    if STARTS
        .iter()
        .any(|s| s.as_bytes()[0] == first && bytes.starts_with(s.as_bytes()))
    {
        return true;
    }
    if t.starts_with("from ") && t.contains(" import ") {
        return true;
    }
    let (mut paren, mut assign) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        match (b, next) {
            (b'=', Some(b'>')) | (b'-', Some(b'>')) | (b':', Some(b':')) => return true,
            (b'(', Some(b')')) if bytes.get(i + 2) == Some(&b';') => return true,
            (b'(', _) => paren = true,
            (b' ', Some(b'=')) if bytes.get(i + 2) == Some(&b' ') => assign = true,
            _ => {}
        }
    }
    paren && assign
}

pub(crate) fn is_trace_line(t: &str) -> bool {
    (t.starts_with("at ") && (t.contains('(') || t.contains(".java:") || t.contains(".js:")))
        || t.starts_with("File \"")
        || t.starts_with("Traceback")
        || t.contains("panicked at")
        || t.contains("Exception")
        || t.contains("Error:")
        || t.contains("error[E")
        || t.contains(".py\", line")
}

pub(crate) fn is_list_item(t: &str) -> bool {
    if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("• ") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let letter = t.bytes().next().is_some_and(|b| b.is_ascii_lowercase()) && digits == 0;
    let marker_at = if digits > 0 && digits <= 2 {
        digits
    } else if letter {
        1
    } else {
        return false;
    };
    let bytes = t.as_bytes();
    let marker = bytes.get(marker_at).copied();
    let next = bytes.get(marker_at + 1).copied();
    match marker {
        Some(b'.') => digits > 0 && next == Some(b' '),
        Some(b')') => next == Some(b' '),
        _ => false,
    }
}

pub(crate) fn math_symbols(t: &str) -> f32 {
    // Integer counts (halves for `$`) keep the byte loop free of a floating-point dependency
    // chain; every ASCII symbol of interest is one byte and the non-ASCII ones are only looked
    // for on lines that have non-ASCII text at all.
    let mut halves = 0u32;
    let mut prev_backslash = false;
    for &b in t.as_bytes() {
        halves += match b {
            b'=' | b'^' => 2,
            b'$' => 1,
            b if prev_backslash && b.is_ascii_alphabetic() => 2,
            _ => 0,
        };
        prev_backslash = b == b'\\';
    }
    if !t.is_ascii() {
        let symbols = t.chars().filter(|c| {
            matches!(
                c,
                '×' | '÷'
                    | '√'
                    | '∑'
                    | '∫'
                    | '∏'
                    | '≤'
                    | '≥'
                    | '≠'
                    | '≈'
                    | '∞'
                    | 'π'
                    | 'θ'
                    | 'λ'
                    | 'σ'
                    | 'μ'
                    | '∂'
                    | '∇'
                    | '∈'
                    | '∀'
                    | '∃'
                    | '²'
                    | '³'
            )
        });
        halves += 2 * symbols.count() as u32;
    }
    halves as f32 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_units() {
        assert_eq!(parse_number("2,000"), Some(2000.0));
        assert_eq!(parse_number("2k"), Some(2000.0));
        assert_eq!(parse_number("1.5"), Some(1.5));
        assert_eq!(parse_number("k8s"), None);
        assert_eq!(parse_number("abc"), None);
        assert_eq!(requested_words(3.0, "Pages"), Some(1500.0));
        assert_eq!(requested_words(3.0, "apples"), None);
    }

    #[test]
    fn line_shapes() {
        assert!(is_code_line("let x = compute(y);"));
        assert!(is_code_line("def main():") || is_code_line("def main(): pass"));
        assert!(!is_code_line("Please summarize the text below"));
        assert!(is_trace_line("  File \"/app/x.py\", line 3, in <module>"));
        assert!(is_trace_line("at com.acme.Foo.bar(Foo.java:12)"));
        assert!(is_list_item("1. first"));
        assert!(is_list_item("b) second"));
        assert!(is_list_item("- third"));
        assert!(!is_list_item("1.5 liters"));
        assert!(!is_list_item("a lot of things"));
        assert!(math_symbols("x^2 + y^2 = z^2") >= 4.0);
        assert!(math_symbols(r"\frac{a}{b}") >= 1.0);
        assert!(is_question_starter("Qué"));
        assert!(!is_question_starter("Write"));
    }
}
