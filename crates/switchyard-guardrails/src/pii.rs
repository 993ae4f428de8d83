//! PII rules. Patterns are ASCII-only (`unicode(false)`), which keeps every match on char
//! boundaries and lets the lazy DFA handle `\b` even in non-ASCII text.

use std::net::Ipv6Addr;

use crate::detect::{Need, RuleSpec};
use crate::validate::{
    byte_at, byte_before, card_issuer_ok, digits, has_context_word, iban_prefix, luhn, ssn_ok,
};
use crate::Kind;

const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "mobile",
    "cell",
    "call",
    "fax",
    "whatsapp",
    "sms",
    "text me",
    "ring",
];
const DOB_WORDS: &[&str] = &[
    "born",
    "dob",
    "d.o.b",
    "date of birth",
    "birth date",
    "birthdate",
    "birthday",
    "geburtsdatum",
];
const SSN_WORDS: &[&str] = &["ssn", "social security"];

pub(crate) static RULES: &[RuleSpec] = &[
    RuleSpec {
        name: "email",
        kind: Kind::Email,
        pattern: r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
        group: 0,
        score: 0.99,
        need: Need::At,
        triggers: &[],
        validate: Some(email),
    },
    RuleSpec {
        name: "phone_intl",
        kind: Kind::Phone,
        pattern: r"\+[1-9][0-9]{0,3}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}",
        group: 0,
        score: 0.9,
        need: Need::Digit,
        triggers: &["+"],
        validate: Some(phone_intl),
    },
    RuleSpec {
        name: "phone_nanp",
        kind: Kind::Phone,
        pattern: r"(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[-. ])[2-9][0-9]{2}[-. ][0-9]{4}\b",
        group: 0,
        score: 0.85,
        need: Need::Digit,
        triggers: &[],
        validate: Some(phone_nanp),
    },
    RuleSpec {
        name: "phone_national",
        kind: Kind::Phone,
        pattern: r"(?:\b0[1-9][0-9]{0,4}|\(0[1-9][0-9]{0,4}\))(?:[ .-][0-9]{2,8}){1,5}\b",
        group: 0,
        score: 0.75,
        need: Need::Digit,
        triggers: &[],
        validate: Some(phone_national),
    },
    RuleSpec {
        name: "phone_context",
        kind: Kind::Phone,
        pattern: r"\b[0-9][0-9 .-]{7,18}[0-9]\b",
        group: 0,
        score: 0.7,
        need: Need::Digit,
        triggers: PHONE_WORDS,
        validate: Some(phone_context),
    },
    RuleSpec {
        name: "credit_card",
        kind: Kind::CreditCard,
        pattern: r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
        group: 0,
        score: 0.97,
        need: Need::Digit,
        triggers: &[],
        validate: Some(credit_card),
    },
    RuleSpec {
        name: "iban",
        kind: Kind::Iban,
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        group: 0,
        score: 0.98,
        need: Need::Digit,
        triggers: &[],
        validate: Some(iban),
    },
    RuleSpec {
        name: "us_ssn",
        kind: Kind::UsSsn,
        pattern: r"\b([0-9]{3})([- ]?)([0-9]{2})([- ]?)([0-9]{4})\b",
        group: 0,
        score: 0.9,
        need: Need::Digit,
        triggers: &[],
        validate: Some(us_ssn),
    },
    RuleSpec {
        name: "ipv4",
        kind: Kind::IpAddress,
        pattern: r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\b",
        group: 0,
        score: 0.9,
        need: Need::Digit,
        triggers: &[],
        validate: Some(ipv4),
    },
    RuleSpec {
        name: "ipv6",
        kind: Kind::IpAddress,
        pattern: r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?",
        group: 0,
        score: 0.9,
        need: Need::Colon,
        triggers: &[
            "::", ":0", ":1", ":2", ":3", ":4", ":5", ":6", ":7", ":8", ":9", ":a", ":b", ":c",
            ":d", ":e", ":f",
        ],
        validate: Some(ipv6),
    },
    RuleSpec {
        name: "date_of_birth",
        kind: Kind::DateOfBirth,
        pattern: concat!(
            r"(?i)\b(?:",
            r"[0-9]{1,2}[./-][0-9]{1,2}[./-](?:19|20)?[0-9]{2}",
            r"|(?:19|20)[0-9]{2}[-/.][0-9]{1,2}[-/.][0-9]{1,2}",
            r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.? [0-9]{1,2}(?:st|nd|rd|th)?,? (?:19|20)[0-9]{2}",
            r"|[0-9]{1,2}(?:st|nd|rd|th)? (?:of )?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?,? (?:19|20)[0-9]{2}",
            r")\b"
        ),
        group: 0,
        score: 0.85,
        need: Need::Digit,
        triggers: DOB_WORDS,
        validate: Some(date_of_birth),
    },
    RuleSpec {
        name: "street_address",
        kind: Kind::StreetAddress,
        pattern: concat!(
            r"\b[0-9]{1,5}[A-Za-z]?,? (?:(?:[A-Z][a-z]+|[0-9]{1,3}(?:st|nd|rd|th)|[NSEW]\.?) ){1,4}",
            r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl",
            r"|Terrace|Circle|Highway|Hwy|Parkway|Pkwy|Square|Sq)\b\.?"
        ),
        group: 0,
        score: 0.7,
        need: Need::Digit,
        triggers: &[],
        validate: None,
    },
];

fn email(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let local_end = s + text[s..e].find('@')?;
    let local = &text[s..local_end];
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return None;
    }
    // `user:pass@host` is a credential in a URL, not an address; let the password rule have it.
    let token_start = text[..s]
        .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '('))
        .map_or(0, |i| i + 1);
    if text[token_start..s].contains("://")
        || (matches!(byte_before(text, s), Some(b':' | b'/')) && !text[..s].ends_with("mailto:"))
    {
        return None;
    }
    // Extend over non-ASCII letters the ASCII pattern could not match (`jürgen@…`).
    let mut start = s;
    for (i, c) in text[..s].char_indices().rev() {
        if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+') {
            start = i;
        } else {
            break;
        }
    }
    Some((start, e, score))
}

fn separators(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.bytes().filter(|b| matches!(b, b' ' | b'.' | b'-'))
}

fn phone_intl(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    if byte_before(text, s).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    // A trailing `(` belongs to surrounding prose, not the number.
    let e = s + text[s..e].trim_end_matches(['(', ' ', '.', '-']).len();
    let (_, n) = digits::<32>(&text[s..e])?;
    if !(8..=15).contains(&n) || byte_at(text, e).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((s, e, score))
}

fn phone_nanp(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let before = byte_before(text, s);
    // Part of a longer dotted/dashed id (`ID-555-123-4567`) or an international number.
    if matches!(before, Some(b'-' | b'.' | b'+' | b'/')) {
        return None;
    }
    if matches!(byte_at(text, e), Some(b'-' | b'.' | b'/'))
        && text.as_bytes().get(e + 1).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let body = &text[s..e];
    if !body.starts_with('(') {
        let mut seps = separators(body);
        let first = seps.next()?;
        if seps.any(|b| b != first) {
            return None;
        }
    }
    Some((s, e, score))
}

fn phone_national(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    if matches!(byte_before(text, s), Some(b'-' | b'.' | b'+' | b'/' | b'$')) {
        return None;
    }
    // Digit groups following `DE89 ` are the BBAN of an IBAN-shaped string (valid or not).
    let prev = text[..s].trim_end_matches(' ');
    let prev_tok = prev.rsplit(' ').next().unwrap_or("").as_bytes();
    if prev.len() < s
        && prev_tok.len() == 4
        && prev_tok[..2].iter().all(u8::is_ascii_uppercase)
        && prev_tok[2..].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let body = &text[s..e];
    let (_, n) = digits::<32>(body)?;
    if !(9..=13).contains(&n) {
        return None;
    }
    // Separators after an optional `(0xx)` trunk must agree: `01.02.2024 12` is a date and a
    // number, not a phone.
    let tail = body.rsplit_once(')').map_or(body, |(_, t)| t.trim_start());
    let mut seps = separators(tail);
    let first = seps.next();
    if first.is_some_and(|f| seps.any(|b| b != f)) {
        return None;
    }
    Some((s, e, score))
}

fn phone_context(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let (_, n) = digits::<32>(&text[s..e])?;
    if !(9..=15).contains(&n) || text[s..e].contains("  ") {
        return None;
    }
    has_context_word(text, s.saturating_sub(24), s, PHONE_WORDS).then_some((s, e, score))
}

fn credit_card(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let (d, n) = digits::<19>(&text[s..e])?;
    let d = &d[..n];
    if !(13..=19).contains(&n) || !luhn(d) || !card_issuer_ok(d) {
        return None;
    }
    // Mixed separators (`4111-1111 1111-1111`) are almost never how a card is written.
    let mut seps = text[s..e].bytes().filter(|b| matches!(b, b' ' | b'-'));
    if let Some(f) = seps.next() {
        if seps.any(|b| b != f) {
            return None;
        }
    }
    Some((s, e, score))
}

fn iban(text: &str, s: usize, _e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let len = iban_prefix(&text[s.._e])?;
    Some((s, s + len, score))
}

fn us_ssn(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let body = &text.as_bytes()[s..e];
    let num = |r: std::ops::Range<usize>| {
        body[r]
            .iter()
            .fold(0u32, |a, &b| a * 10 + u32::from(b.wrapping_sub(b'0')))
    };
    let (area, sep1, group, sep2, serial) = match body.len() {
        11 => (num(0..3), body[3], num(4..6), body[6], num(7..11)),
        9 => (num(0..3), 0, num(3..5), 0, num(5..9)),
        _ => return None,
    };
    if sep1 != sep2 || !ssn_ok(area, group, serial) {
        return None;
    }
    if matches!(byte_before(text, s), Some(b'-' | b'.' | b'/' | b'+'))
        || matches!(byte_at(text, e), Some(b'-' | b'/'))
    {
        return None;
    }
    let context = has_context_word(text, s.saturating_sub(32), s, SSN_WORDS);
    match (sep1, context) {
        (b'-', true) => Some((s, e, 0.97)),
        (b'-', false) => Some((s, e, score)),
        (_, true) => Some((s, e, 0.85)),
        _ => None,
    }
}

fn ipv4(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    // `1.2.3.4.5` or `v1.2.3.4`-style versions and OIDs are not addresses.
    if matches!(byte_before(text, s), Some(b'.'))
        || (matches!(byte_at(text, e), Some(b'.'))
            && text.as_bytes().get(e + 1).is_some_and(u8::is_ascii_digit))
        || matches!(byte_before(text, s), Some(b'v' | b'V'))
        || has_context_word(
            text,
            s.saturating_sub(12),
            s,
            &["version", "ver", "build", "v"],
        )
    {
        return None;
    }
    Some((s, e, score))
}

fn ipv6(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    let near =
        |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_');
    if near(byte_before(text, s)) || near(byte_at(text, e)) {
        return None;
    }
    let cand = &text[s..e];
    let groups = cand.split(':').filter(|g| !g.is_empty()).count();
    if groups < 2 || cand.len() < 6 {
        return None;
    }
    cand.parse::<Ipv6Addr>().ok().map(|_| (s, e, score))
}

fn date_of_birth(text: &str, s: usize, e: usize, score: f32) -> Option<(usize, usize, f32)> {
    if matches!(byte_before(text, s), Some(b'.' | b'/' | b'-'))
        || matches!(byte_at(text, e), Some(b'.' | b'/' | b'-'))
            && text.as_bytes().get(e + 1).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let near = has_context_word(text, s.saturating_sub(40), s, DOB_WORDS)
        || has_context_word(text, e, e + 16, DOB_WORDS);
    near.then_some((s, e, score))
}

#[cfg(test)]
mod tests {
    use crate::detect::test_util::{found, kinds};
    use crate::Kind;

    fn only(text: &str, kind: Kind, expect: &str) {
        assert_eq!(found(text), vec![(kind, expect)], "in {text:?}");
    }

    #[test]
    fn emails() {
        only(
            "mail jane.doe+tag@example.co.uk now",
            Kind::Email,
            "jane.doe+tag@example.co.uk",
        );
        only(
            "<bob@mail.example.org>",
            Kind::Email,
            "bob@mail.example.org",
        );
        only(
            "schreib jürgen@example.de",
            Kind::Email,
            "jürgen@example.de",
        );
        assert!(kinds("@handle and user@localhost and a@b").is_empty());
    }

    #[test]
    fn phones_positive() {
        only(
            "call +44 20 7946 0958 today",
            Kind::Phone,
            "+44 20 7946 0958",
        );
        only("(415) 555-2671", Kind::Phone, "(415) 555-2671");
        only("cell 415.555.2671", Kind::Phone, "415.555.2671");
        only("+1-415-555-2671", Kind::Phone, "+1-415-555-2671");
        only("Tel: 030 1234 5678", Kind::Phone, "030 1234 5678");
        only("06 12 34 56 78", Kind::Phone, "06 12 34 56 78");
        only("+49 (0)30 12345678", Kind::Phone, "+49 (0)30 12345678");
        only("phone 4155552671", Kind::Phone, "4155552671");
    }

    #[test]
    fn phone_hard_negatives() {
        for t in [
            "order 12345678 shipped",
            "order number 1234567890",
            "total $1,299.00",
            "in 2024 we grew",
            "invoice INV-2024-0042",
            "released 2024-03-15",
            "tracking 1Z999AA10123456784",
            "ID-555-123-4567-88",
            "version 1.2.3",
            "pi is 3.14159265358979",
        ] {
            assert!(kinds(t).is_empty(), "{t:?} -> {:?}", found(t));
        }
    }

    #[test]
    fn credit_cards() {
        only(
            "card 4111 1111 1111 1111 exp 12/27",
            Kind::CreditCard,
            "4111 1111 1111 1111",
        );
        only(
            "5555-5555-5555-4444",
            Kind::CreditCard,
            "5555-5555-5555-4444",
        );
        only("amex 378282246310005", Kind::CreditCard, "378282246310005");
        // Luhn failure, unknown IIN, mixed separators.
        assert!(kinds("4111 1111 1111 1112").is_empty());
        assert!(kinds("1234 5678 1234 5670").is_empty());
        assert!(kinds("4111-1111 1111-1111").is_empty());
    }

    #[test]
    fn ibans() {
        only(
            "pay to GB82 WEST 1234 5698 7654 32 by friday",
            Kind::Iban,
            "GB82 WEST 1234 5698 7654 32",
        );
        only(
            "DE89370400440532013000",
            Kind::Iban,
            "DE89370400440532013000",
        );
        assert!(kinds("GB82 WEST 1234 5698 7654 33").is_empty());
        assert!(kinds("SKU AB12CDEF3456GHIJ78").is_empty());
    }

    #[test]
    fn ssns() {
        only("SSN 123-45-6789", Kind::UsSsn, "123-45-6789");
        only("ssn: 123456789", Kind::UsSsn, "123456789");
        for t in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "123-45 6789",
        ] {
            assert!(!kinds(t).contains(&Kind::UsSsn), "{t}");
        }
    }

    #[test]
    fn ip_addresses() {
        only("from 192.168.1.20 at", Kind::IpAddress, "192.168.1.20");
        only(
            "host 2001:db8:85a3::8a2e:370:7334 ok",
            Kind::IpAddress,
            "2001:db8:85a3::8a2e:370:7334",
        );
        only(
            "link fe80::1ff:fe23:4567:890a",
            Kind::IpAddress,
            "fe80::1ff:fe23:4567:890a",
        );
        for t in [
            "version 1.2.3.4",
            "256.1.1.1",
            "1.2.3.4.5",
            "at 10:30:45",
            "std::vec::Vec",
            "00:1A:2B:3C:4D:5E",
        ] {
            assert!(
                !kinds(t).contains(&Kind::IpAddress),
                "{t} -> {:?}",
                found(t)
            );
        }
    }

    #[test]
    fn dates_of_birth_need_context() {
        only(
            "I was born on 12 March 1985.",
            Kind::DateOfBirth,
            "12 March 1985",
        );
        only("DOB: 1985-03-12", Kind::DateOfBirth, "1985-03-12");
        only("date of birth 03/12/1985", Kind::DateOfBirth, "03/12/1985");
        only(
            "her birthday is July 4th, 1990",
            Kind::DateOfBirth,
            "July 4th, 1990",
        );
        assert!(kinds("the meeting is on 03/12/2025").is_empty());
        assert!(kinds("released on March 12, 2024").is_empty());
    }

    #[test]
    fn street_addresses() {
        only(
            "ship to 1600 Pennsylvania Avenue, Washington",
            Kind::StreetAddress,
            "1600 Pennsylvania Avenue",
        );
        only(
            "221B Baker St. London",
            Kind::StreetAddress,
            "221B Baker St.",
        );
        only("at 350 5th Ave", Kind::StreetAddress, "350 5th Ave");
        assert!(kinds("we sold 300 units on Main").is_empty());
    }
}
