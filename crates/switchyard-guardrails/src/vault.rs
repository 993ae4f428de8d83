//! Reversible pseudonymization: sensitive values become `[KIND_n]` placeholders before the
//! prompt leaves the gateway, and are put back into the model's answer on the way out.

use std::collections::HashMap;

use crate::scanner::{ScanReport, Scanner, ScannerConfig};
use crate::{Action, GuardrailError, Kind};

/// Placeholder <-> original mapping for one request. Reuse it across all messages of the
/// request so the same value always gets the same placeholder and the model sees a consistent
/// conversation.
#[derive(Clone, Default)]
pub struct Vault {
    by_value: HashMap<(Kind, String), String>,
    by_placeholder: HashMap<String, String>,
    counters: HashMap<Kind, u32>,
    /// Longest placeholder, bounding how much a stream restorer must hold back.
    max_len: usize,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Placeholders are safe to show; the values they stand for are not.
        let mut names: Vec<&String> = self.by_placeholder.keys().collect();
        names.sort();
        f.debug_struct("Vault")
            .field("placeholders", &names)
            .finish()
    }
}

impl Vault {
    pub fn new() -> Self {
        Vault::default()
    }

    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }

    /// Placeholder for `value`, minting `[KIND_n]` on first sight.
    pub fn placeholder(&mut self, kind: Kind, value: &str) -> &str {
        let key = (kind, value.to_owned());
        if !self.by_value.contains_key(&key) {
            let n = self.counters.entry(kind).or_insert(0);
            *n += 1;
            let ph = format!("[{}_{}]", kind.as_str(), n);
            self.max_len = self.max_len.max(ph.len());
            self.by_placeholder.insert(ph.clone(), value.to_owned());
            self.by_value.insert(key.clone(), ph);
        }
        self.by_value.get(&key).map_or("", String::as_str)
    }

    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }

    /// Replace every known placeholder in `text` with its original value. Unknown bracketed
    /// text (including placeholders the model invented) is left as is.
    pub fn restore(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let (done, rest) = self.restore_into(text, &mut out, true);
        debug_assert!(rest.is_empty() && done);
        out
    }

    /// Core of both restorers. Appends the restored form of `text` to `out`; if `complete` is
    /// false, a trailing possible placeholder prefix is not emitted and is returned instead.
    fn restore_into<'t>(&self, text: &'t str, out: &mut String, complete: bool) -> (bool, &'t str) {
        let mut i = 0;
        while let Some(p) = text[i..].find('[') {
            let s = i + p;
            out.push_str(&text[i..s]);
            match self.classify(&text[s..]) {
                Match::Full(len, original) => {
                    out.push_str(original);
                    i = s + len;
                }
                Match::Partial if !complete => return (false, &text[s..]),
                Match::Partial | Match::None => {
                    out.push('[');
                    i = s + 1;
                }
            }
        }
        out.push_str(&text[i..]);
        (true, "")
    }

    fn classify(&self, at: &str) -> Match<'_> {
        let bytes = at.as_bytes();
        // Placeholders are `[A-Z_]+_[0-9]+]`; bail out on the first byte that cannot continue
        // one, so ordinary brackets (`[1]`, `[note]`) cost almost nothing.
        let mut n = 1;
        while n < bytes.len() && n < self.max_len {
            let b = bytes[n];
            if b == b']' {
                return match self.by_placeholder.get(&at[..=n]) {
                    Some(orig) => Match::Full(n + 1, orig),
                    None => Match::None,
                };
            }
            if !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                return Match::None;
            }
            n += 1;
        }
        if n == bytes.len() && self.by_placeholder.keys().any(|k| k.starts_with(at)) {
            Match::Partial
        } else {
            Match::None
        }
    }
}

enum Match<'v> {
    Full(usize, &'v str),
    Partial,
    None,
}

/// Restores placeholders in a streamed answer. Text that cannot begin a placeholder is emitted
/// immediately; only a trailing fragment that is a prefix of a known placeholder (`[`, `[EMA`,
/// `[EMAIL_1`) is held back, so the hold-back is at most the longest placeholder minus one byte.
pub struct StreamRestorer<'v> {
    vault: &'v Vault,
    pending: String,
}

impl<'v> StreamRestorer<'v> {
    pub fn new(vault: &'v Vault) -> Self {
        StreamRestorer {
            vault,
            pending: String::new(),
        }
    }

    pub fn push(&mut self, chunk: &str) -> String {
        if self.vault.is_empty() {
            return chunk.to_owned();
        }
        let mut out = String::with_capacity(self.pending.len() + chunk.len());
        if self.pending.is_empty() {
            let (_, rest) = self.vault.restore_into(chunk, &mut out, false);
            self.pending.push_str(rest);
        } else {
            self.pending.push_str(chunk);
            let joined = std::mem::take(&mut self.pending);
            let (_, rest) = self.vault.restore_into(&joined, &mut out, false);
            self.pending.push_str(rest);
        }
        out
    }

    /// Flush whatever is held back; an unfinished placeholder is emitted verbatim.
    pub fn finish(self) -> String {
        self.vault.restore(&self.pending)
    }
}

/// Replaces findings with vault placeholders. Which kinds are replaced comes from the scanner
/// config: kinds whose action is `Redact` (or stricter) are pseudonymized.
#[derive(Debug, Clone)]
pub struct Redactor {
    scanner: Scanner,
}

impl Redactor {
    /// Pseudonymize every kind.
    pub fn new() -> Result<Self, GuardrailError> {
        Ok(Redactor {
            scanner: Scanner::new(ScannerConfig::all(Action::Redact))?,
        })
    }

    pub fn with_scanner(scanner: Scanner) -> Self {
        Redactor { scanner }
    }

    /// Redact one text with a fresh vault.
    pub fn redact(&self, text: &str) -> (String, Vault) {
        let mut vault = Vault::new();
        let out = self.redact_with(&mut vault, text);
        (out, vault)
    }

    /// Redact one message of a request, sharing `vault` with the request's other messages.
    pub fn redact_with(&self, vault: &mut Vault, text: &str) -> String {
        replace_detections(vault, text, &self.scanner.scan(text))
    }

    /// Redact `text` with a fresh vault, in place: a text with nothing to redact is left as it
    /// is instead of copied (the request log redacts every prompt and answer it keeps).
    pub fn redact_in_place(&self, text: &mut String) {
        let report = self.scanner.scan(text);
        if report.detections.iter().any(|d| d.action >= Action::Redact) {
            *text = replace_detections(&mut Vault::new(), text, &report);
        }
    }
}

fn replace_detections(vault: &mut Vault, text: &str, report: &ScanReport) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for d in report
        .detections
        .iter()
        .filter(|d| d.action >= Action::Redact)
    {
        out.push_str(&text[last..d.start]);
        out.push_str(vault.placeholder(d.kind, &text[d.start..d.end]));
        last = d.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        match Redactor::new() {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    const MSG: &str = "Mail jane@example.com or bob@example.org; jane@example.com again. Card 4111 1111 1111 1111.";

    #[test]
    fn redact_assigns_stable_typed_placeholders() {
        let (red, vault) = redactor().redact(MSG);
        assert_eq!(
            red,
            "Mail [EMAIL_1] or [EMAIL_2]; [EMAIL_1] again. Card [CREDIT_CARD_1]."
        );
        assert_eq!(vault.len(), 3);
        assert_eq!(vault.restore(&red), MSG);
        let dbg = format!("{vault:?}");
        assert!(!dbg.contains("jane") && !dbg.contains("4111") && dbg.contains("[EMAIL_2]"));
    }

    #[test]
    fn redact_in_place_matches_redact_and_leaves_clean_text_alone() {
        let r = redactor();
        let mut dirty = MSG.to_owned();
        r.redact_in_place(&mut dirty);
        assert_eq!(dirty, r.redact(MSG).0);
        let mut clean = String::with_capacity(64);
        clean.push_str("nothing to see here, order 12345678");
        let before = clean.as_ptr();
        r.redact_in_place(&mut clean);
        assert_eq!(clean, "nothing to see here, order 12345678");
        assert_eq!(clean.as_ptr(), before, "clean text is kept, not copied");
    }

    #[test]
    fn vault_is_shared_across_messages() {
        let r = redactor();
        let mut vault = Vault::new();
        let a = r.redact_with(&mut vault, "I am bob@example.org");
        let b = r.redact_with(&mut vault, "Reply to carol@example.net, cc bob@example.org");
        assert_eq!(a, "I am [EMAIL_1]");
        assert_eq!(b, "Reply to [EMAIL_2], cc [EMAIL_1]");
    }

    #[test]
    fn restore_leaves_unknown_brackets_alone() {
        let (_, vault) = redactor().redact("x jane@example.com");
        let s = "see [1], [EMAIL_9], [EMAIL_1] and [ EMAIL_1] or [EMAIL_1";
        assert_eq!(
            vault.restore(s),
            "see [1], [EMAIL_9], jane@example.com and [ EMAIL_1] or [EMAIL_1"
        );
    }

    #[test]
    fn stream_restorer_handles_every_split_position() {
        let (red, vault) = redactor().redact(MSG);
        let text = format!("Sure: {red} [not a placeholder] [EMAIL_] [EMAIL_12] ü[");
        let expected = vault.restore(&text);
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                if !text.is_char_boundary(cut) || !text.is_char_boundary(cut2) {
                    continue;
                }
                let mut r = StreamRestorer::new(&vault);
                let mut got = r.push(&text[..cut]);
                got += &r.push(&text[cut..cut2]);
                got += &r.push(&text[cut2..]);
                got += &r.finish();
                assert_eq!(got, expected, "cuts at {cut}/{cut2}");
            }
        }
    }

    #[test]
    fn stream_restorer_single_byte_chunks_and_minimal_holdback() {
        let (red, vault) = redactor().redact(MSG);
        let mut r = StreamRestorer::new(&vault);
        let mut got = String::new();
        for c in red.chars() {
            got += &r.push(c.encode_utf8(&mut [0; 4]));
        }
        got += &r.finish();
        assert_eq!(got, MSG);

        let mut r = StreamRestorer::new(&vault);
        assert_eq!(r.push("Mail [EMA"), "Mail ");
        assert_eq!(r.push("IL_1"), "");
        assert_eq!(r.push("] ok [x"), "jane@example.com ok [x");
        assert_eq!(r.push("[CAR"), "[CAR");
        assert_eq!(r.push(" [EMAIL_2"), " ");
        assert_eq!(r.finish(), "[EMAIL_2");
    }

    #[test]
    fn empty_vault_passes_text_through() {
        let vault = Vault::new();
        let mut r = StreamRestorer::new(&vault);
        assert_eq!(r.push("[EMA"), "[EMA");
        assert_eq!(vault.restore("[EMAIL_1]"), "[EMAIL_1]");
    }
}
