//! Checksums and context helpers. Regexes only propose candidates; these functions decide, which
//! is what keeps order numbers, prices and random digit runs from being flagged.

/// Collect ASCII digits of `s` into a fixed buffer; `None` if there are more than `N`.
pub(crate) fn digits<const N: usize>(s: &str) -> Option<([u8; N], usize)> {
    let mut out = [0u8; N];
    let mut n = 0;
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if n == N {
            return None;
        }
        out[n] = b - b'0';
        n += 1;
    }
    Some((out, n))
}

pub(crate) fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0, |acc, &x| acc * 10 + u32::from(x))
}

/// Known issuer ranges with their valid lengths. A Luhn pass alone is a 1-in-10 event for random
/// digits, so the IIN table is what makes 16-digit ids stop looking like cards.
pub(crate) fn card_issuer_ok(d: &[u8]) -> bool {
    let len = d.len();
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        2 | 5 => ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16,
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39))
                    && (14..=19).contains(&len))
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        }
        6 => {
            (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || p2 == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// Registered IBAN lengths for common countries. Unknown countries still need mod-97.
fn iban_len(cc: &[u8]) -> Option<usize> {
    const T: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AT", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BR", 29),
        (b"CH", 21),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"EE", 20),
        (b"ES", 24),
        (b"FI", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GR", 27),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IS", 26),
        (b"IT", 27),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MT", 31),
        (b"NL", 18),
        (b"NO", 15),
        (b"PL", 28),
        (b"PT", 25),
        (b"RO", 24),
        (b"SA", 24),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"TR", 26),
    ];
    T.iter().find(|(c, _)| c.as_slice() == cc).map(|(_, n)| *n)
}

/// Validate an IBAN candidate (spaces allowed). Returns the byte length of the prefix of
/// `candidate` that forms the IBAN, because the regex may have swallowed a trailing token.
pub(crate) fn iban_prefix(candidate: &str) -> Option<usize> {
    let bytes = candidate.as_bytes();
    let mut compact = [0u8; 34];
    let mut n = 0;
    let mut ends = [0usize; 34];
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            continue;
        }
        if n == 34 {
            break;
        }
        compact[n] = b.to_ascii_uppercase();
        ends[n] = i + 1;
        n += 1;
    }
    let want = match iban_len(&compact[..2]) {
        Some(l) if l <= n => l,
        Some(_) => return None,
        None if (15..=34).contains(&n) => n,
        None => return None,
    };
    if mod97(&compact[..want]) == 1 {
        Some(ends[want - 1])
    } else {
        None
    }
}

fn mod97(iban: &[u8]) -> u32 {
    let rotated = iban[4..].iter().chain(iban[..4].iter());
    let mut rem: u32 = 0;
    for &c in rotated {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return 0,
        };
    }
    rem
}

/// SSA never issues area 000, 666 or 900–999, group 00 or serial 0000.
pub(crate) fn ssn_ok(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

pub(crate) fn byte_before(text: &str, at: usize) -> Option<u8> {
    at.checked_sub(1)
        .and_then(|i| text.as_bytes().get(i).copied())
}

pub(crate) fn byte_at(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at).copied()
}

/// True if any of `words` occurs as a whole word (ASCII case-insensitive) in `text[from..to]`.
/// Works on bytes so window edges need not fall on char boundaries.
pub(crate) fn has_context_word(text: &str, from: usize, to: usize, words: &[&str]) -> bool {
    let bytes = text.as_bytes();
    let to = to.min(bytes.len());
    if from >= to {
        return false;
    }
    let hay = &bytes[from..to];
    words.iter().any(|w| {
        let w = w.as_bytes();
        hay.windows(w.len()).enumerate().any(|(i, win)| {
            win.eq_ignore_ascii_case(w)
                && !(from + i > 0 && bytes[from + i - 1].is_ascii_alphabetic())
                && !bytes
                    .get(from + i + w.len())
                    .is_some_and(|b| b.is_ascii_alphabetic())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_off_by_one() {
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("378282246310005")));
        assert!(!luhn(&d("4111111111111112")));
    }

    #[test]
    fn issuer_table() {
        assert!(card_issuer_ok(&d("4111111111111111")));
        assert!(card_issuer_ok(&d("5555555555554444")));
        assert!(card_issuer_ok(&d("2223003122003222")));
        assert!(card_issuer_ok(&d("378282246310005")));
        assert!(card_issuer_ok(&d("6011111111111117")));
        assert!(!card_issuer_ok(&d("1234567812345670")));
        assert!(!card_issuer_ok(&d("411111111111111")));
    }

    #[test]
    fn iban_checksum_and_trailing_token() {
        assert_eq!(iban_prefix("DE89370400440532013000"), Some(22));
        assert_eq!(iban_prefix("GB82 WEST 1234 5698 7654 32"), Some(27));
        assert_eq!(iban_prefix("DE89 3704 0044 0532 0130 00 AB12"), Some(27));
        assert_eq!(iban_prefix("DE88370400440532013000"), None);
        assert_eq!(iban_prefix("DE8937040044"), None);
    }

    #[test]
    fn ssn_ranges() {
        assert!(ssn_ok(123, 45, 6789));
        assert!(!ssn_ok(0, 45, 6789));
        assert!(!ssn_ok(666, 45, 6789));
        assert!(!ssn_ok(901, 45, 6789));
        assert!(!ssn_ok(123, 0, 6789));
        assert!(!ssn_ok(123, 45, 0));
    }

    #[test]
    fn context_words_need_word_boundaries() {
        let t = "my dob is";
        assert!(has_context_word(t, 0, t.len(), &["dob"]));
        let t = "adobe files";
        assert!(!has_context_word(t, 0, t.len(), &["dob"]));
        assert!(!has_context_word("hotel", 0, 5, &["tel"]));
    }
}
