//! Output scanners: PII, secrets and banned terms in model answers, for whole answers and streams.
//!
//! Answers are redacted with unnumbered placeholders (`[EMAIL]`, `[BANNED]`). Numbered ones
//! (`[EMAIL_1]`) belong to the input [`Vault`](crate::Vault) and are restored by the gateway, so
//! an output placeholder must never be mistaken for one, and neither kind is flagged again here.

use std::sync::Arc;

use serde::Serialize;

use crate::banned::BannedTerms;
use crate::scanner::{Scanner, ScannerConfig};
use crate::{Action, GuardrailError, Kind};

const BANNED_TERM: &str = "BANNED_TERM";
/// Bytes held back before the trailing word. Longer than any bounded multi-word match (an
/// international phone number with spaces, an IBAN in groups, a street address with four words),
/// so a match that is still growing always starts after the cut.
const HOLD: usize = 96;
/// Already-emitted bytes kept as scan context: context words sit at most 40 bytes before a date
/// of birth, and validators look at the byte before a match.
const LOOKBEHIND: usize = 128;
/// Held-back text past this is released after scanning, so a stream without whitespace (or an
/// endless key block) cannot grow memory without bound.
const MAX_HELD: usize = 16 * 1024;

/// One finding in an answer. Like [`Finding`](crate::Finding), never carries the matched text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputFinding {
    /// [`Kind::as_str`] or `"BANNED_TERM"`.
    pub kind: &'static str,
    pub action: Action,
    pub score: f32,
}

#[derive(Debug, Default)]
pub struct OutputVerdict {
    /// `Some(new text)` only when something was redacted.
    pub redacted: Option<String>,
    /// Every finding whose action is `Detect`, `Redact` or `Block`, in answer order.
    pub findings: Vec<OutputFinding>,
    /// The first finding whose action is `Block`; the caller refuses the answer.
    pub blocked: Option<OutputFinding>,
}

#[derive(Debug, Default, PartialEq)]
pub struct OutputStep {
    /// Text safe to forward now (already redacted).
    pub emit: String,
    pub findings: Vec<OutputFinding>,
    pub blocked: Option<OutputFinding>,
}

#[derive(Debug)]
struct Inner {
    scanner: Option<Scanner>,
    banned: Option<(BannedTerms, Action)>,
    /// `HOLD`, or more when a banned term is longer.
    hold: usize,
}

/// Scans model answers. Cheap to clone: the compiled state is shared.
#[derive(Debug, Clone)]
pub struct OutputScanner {
    inner: Arc<Inner>,
}

#[derive(Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    kind: &'static str,
    action: Action,
    score: f32,
}

impl Hit {
    fn finding(&self) -> OutputFinding {
        OutputFinding {
            kind: self.kind,
            action: self.action,
            score: self.score,
        }
    }
}

impl OutputScanner {
    /// `pii` applies to the PII kinds, `secrets` to the secret kinds ([`Kind::is_secret`]),
    /// `banned_action` to `banned_terms`. `Ok(None)` when there is nothing to do.
    pub fn new(
        pii: Action,
        secrets: Action,
        banned_terms: &[String],
        banned_action: Action,
    ) -> Result<Option<Self>, GuardrailError> {
        let scanner = if pii == Action::Off && secrets == Action::Off {
            None
        } else {
            let mut config = ScannerConfig::all(pii);
            for kind in Kind::ALL.into_iter().filter(|k| k.is_secret()) {
                config.kinds.insert(kind, secrets);
            }
            Some(Scanner::new(config)?)
        };
        let banned = if banned_action == Action::Off {
            None
        } else {
            Some(BannedTerms::new(banned_terms)?).filter(|t| !t.is_empty())
        };
        if scanner.is_none() && banned.is_none() {
            return Ok(None);
        }
        let longest_term = banned.as_ref().map_or(0, |t| {
            (0..)
                .map_while(|i| t.term(i))
                .map(str::len)
                .max()
                .unwrap_or(0)
        });
        Ok(Some(OutputScanner {
            inner: Arc::new(Inner {
                scanner,
                banned: banned.map(|t| (t, banned_action)),
                // One more byte than the term: whole-word matching needs the character after it.
                hold: HOLD.max(longest_term + 1),
            }),
        }))
    }

    /// Judge a whole answer.
    pub fn screen(&self, text: &str) -> OutputVerdict {
        let hits = self.inner.hits(text);
        let redacted = hits
            .iter()
            .any(|h| h.action == Action::Redact)
            .then(|| redact(text, 0, text.len(), &hits));
        let findings: Vec<OutputFinding> = hits.iter().map(Hit::finding).collect();
        let blocked = findings.iter().find(|f| f.action == Action::Block).cloned();
        OutputVerdict {
            redacted,
            findings,
            blocked,
        }
    }

    /// A fresh streaming check for one choice. Owns a handle to the scanner, so it can live in a
    /// `'static` response body.
    pub fn stream(&self) -> OutputStream {
        OutputStream {
            inner: Arc::clone(&self.inner),
            buf: String::new(),
            held: 0,
            base: 0,
            judged: Vec::new(),
            blocked: false,
        }
    }
}

impl Inner {
    /// Every hit in `text`, placeholders excluded, sorted by start (scanner hits before banned
    /// terms at the same start, so whole-answer and streamed findings come out in one order).
    fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        if let Some(scanner) = &self.scanner {
            hits.extend(scanner.scan(text).detections.into_iter().map(|d| Hit {
                start: d.start,
                end: d.end,
                kind: d.kind.as_str(),
                action: d.action,
                score: d.score,
            }));
        }
        if let Some((terms, action)) = &self.banned {
            hits.extend(terms.find(text).into_iter().map(|m| Hit {
                start: m.start,
                end: m.end,
                kind: BANNED_TERM,
                action: *action,
                score: 1.0,
            }));
        }
        if !hits.is_empty() {
            let placeholders = placeholder_spans(text);
            if !placeholders.is_empty() {
                hits.retain(|h| {
                    !placeholders
                        .iter()
                        .any(|&(s, e)| s <= h.start && h.end <= e)
                });
            }
            hits.sort_by_key(|h| h.start);
        }
        hits
    }
}

/// Spans of `[KIND]`, `[KIND_n]` and `[BANNED]`: a banned term like "email" would otherwise match
/// inside `[EMAIL]`, and re-flagging a redaction would make it unstable.
fn placeholder_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(p) = text[from..].find('[') {
        let open = from + p;
        from = open + 1;
        let name_len = bytes[from..]
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
            .count();
        if bytes.get(from + name_len) != Some(&b']') {
            continue;
        }
        let inner = &text[from..from + name_len];
        let name = match inner.rsplit_once('_') {
            Some((n, d)) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => inner,
        };
        if name == "BANNED" || Kind::parse(name).is_some() {
            spans.push((open, from + name_len + 1));
        }
    }
    spans
}

fn push_placeholder(out: &mut String, kind: &str) {
    out.push('[');
    out.push_str(if kind == BANNED_TERM { "BANNED" } else { kind });
    out.push(']');
}

/// `text[from..to]` with every `Redact` hit replaced by its placeholder. Overlapping hits (a
/// banned term inside an email) share the first one's placeholder; a hit that began before
/// `from` still gets one for its remaining part.
fn redact(text: &str, from: usize, to: usize, hits: &[Hit]) -> String {
    let mut out = String::with_capacity(to.saturating_sub(from));
    let mut last = from;
    for h in hits.iter().filter(|h| h.action == Action::Redact) {
        let (s, e) = (h.start.max(from), h.end.min(to));
        if e <= last {
            continue;
        }
        if s < last {
            last = e;
            continue;
        }
        out.push_str(&text[last..s]);
        push_placeholder(&mut out, h.kind);
        last = e;
    }
    out.push_str(&text[last..to]);
    out
}

/// Streaming check for one choice.
///
/// Hold-back rule: the trailing run of non-whitespace (keys, JWTs, emails, card fragments) plus
/// `HOLD` bytes before it, extended back to a word start; never a cut through a match; and from
/// an unterminated `-----BEGIN … PRIVATE KEY-----` until its END line. Everything before the cut
/// is judged and forwarded at once. The last `LOOKBEHIND` emitted bytes stay as scan context and
/// are never emitted or reported again. Past `MAX_HELD` held bytes, text is released anyway
/// (after scanning). Once blocked, nothing more is emitted.
pub struct OutputStream {
    inner: Arc<Inner>,
    /// Emitted lookbehind followed by the held-back text.
    buf: String,
    /// Where the held-back part of `buf` starts.
    held: usize,
    /// Offset of `buf[0]` in the whole answer.
    base: usize,
    /// Judged spans (answer offsets) still reachable from `buf`, so a longer match that later
    /// grows out of one is not reported twice.
    judged: Vec<(usize, usize)>,
    blocked: bool,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The buffers hold raw answer text, which may be exactly what is being withheld.
        f.debug_struct("OutputStream")
            .field("held_bytes", &self.held_bytes())
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

impl OutputStream {
    pub fn push(&mut self, chunk: &str) -> OutputStep {
        if self.blocked {
            return OutputStep::default();
        }
        self.buf.push_str(chunk);
        self.release(false)
    }

    /// End of the choice: judge and release everything held.
    pub fn finish(&mut self) -> OutputStep {
        if self.blocked {
            return OutputStep::default();
        }
        self.release(true)
    }

    /// Bytes received but not yet emitted.
    pub fn held_bytes(&self) -> usize {
        self.buf.len() - self.held
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    fn release(&mut self, last: bool) -> OutputStep {
        let len = self.buf.len();
        let (mut cut, mut floor) = if last {
            (len, len)
        } else if len - self.held > MAX_HELD {
            let c = floor_boundary(&self.buf, len.saturating_sub(self.inner.hold));
            (c, c.max(self.held))
        } else {
            (self.safe_cut(), self.held)
        };
        if cut <= self.held {
            // Nothing would be forwarded; judging now could only be premature.
            return OutputStep::default();
        }
        let hits = self.inner.hits(&self.buf);
        for h in &hits {
            // Begun in emitted text (only after a forced release): judge it now, in full.
            if h.start < self.held && h.end > self.held {
                floor = floor.max(h.end);
            }
        }
        cut = cut.max(floor);
        // A match cut in two would be judged on a fragment: move the cut before it, or past it
        // when it must be released now.
        let mut moved = true;
        while moved {
            moved = false;
            for h in &hits {
                if h.start < cut && cut < h.end {
                    if h.start >= floor {
                        cut = h.start;
                    } else {
                        cut = h.end;
                        floor = cut;
                    }
                    moved = true;
                }
            }
        }
        if cut <= self.held {
            return OutputStep::default();
        }
        let acted: Vec<Hit> = hits
            .into_iter()
            .filter(|h| h.end > self.held && h.end <= cut)
            .collect();
        let mut findings = Vec::new();
        for h in &acted {
            let (s, e) = (self.base + h.start, self.base + h.end);
            let seen = h.start < self.held && self.judged.iter().any(|&(js, je)| s < je && js < e);
            if !seen || h.action == Action::Block {
                findings.push(h.finding());
            }
        }
        let blocked = findings.iter().find(|f| f.action == Action::Block).cloned();
        if blocked.is_some() {
            self.blocked = true;
            self.buf = String::new();
            self.judged = Vec::new();
            return OutputStep {
                emit: String::new(),
                findings,
                blocked,
            };
        }
        let emit = redact(&self.buf, self.held, cut, &acted);
        let base = self.base;
        self.judged
            .extend(acted.iter().map(|h| (base + h.start, base + h.end)));
        let keep = tail_start(&self.buf[..cut]);
        self.buf.drain(..keep);
        self.base += keep;
        self.held = cut - keep;
        let new_base = self.base;
        self.judged.retain(|&(_, e)| e > new_base);
        OutputStep {
            emit,
            findings,
            blocked: None,
        }
    }

    /// The cut the hold-back rule allows, before looking at matches.
    fn safe_cut(&self) -> usize {
        let b = &self.buf;
        let run = b
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let mut cut = word_start(b, floor_boundary(b, run.saturating_sub(self.inner.hold)));
        if let Some(p) = open_private_key(&b[self.held..]) {
            cut = cut.min(self.held + p);
        }
        cut
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Start of the word containing byte `i` (or `i` itself at a word start).
fn word_start(s: &str, i: usize) -> usize {
    s[..i]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(j, c)| j + c.len_utf8())
}

/// Where the lookbehind kept from `emitted` starts: about `LOOKBEHIND` bytes back, at a word
/// start so the scanner never sees a token cut in half, unless that word is itself huge.
fn tail_start(emitted: &str) -> usize {
    let want = floor_boundary(emitted, emitted.len().saturating_sub(LOOKBEHIND));
    let at_word = word_start(emitted, want);
    if want - at_word <= LOOKBEHIND {
        at_word
    } else {
        want
    }
}

/// Start of a `-----BEGIN … PRIVATE KEY-----` block (or a header still arriving) whose END line
/// is not complete yet: the key body has newlines, so the word rule alone would release it.
fn open_private_key(text: &str) -> Option<usize> {
    const BEGIN: &str = "-----BEGIN ";
    let begin = text.rfind(BEGIN)?;
    let rest = &text[begin + BEGIN.len()..];
    let Some(close) = rest.find("-----") else {
        let header_so_far = rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
        return header_so_far.then_some(begin);
    };
    if !rest[..close].ends_with("PRIVATE KEY") {
        return None;
    }
    let body = &rest[close + 5..];
    match body.find("-----END ") {
        Some(e) if body[e + 9..].contains("-----") => None,
        _ => Some(begin),
    }
}

#[cfg(test)]
mod tests;
