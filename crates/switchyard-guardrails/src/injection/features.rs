//! Feature extraction: word-class hits from one Aho-Corasick pass over the canonical text, a
//! handful of structural regexes over the raw text, and co-occurrence of classes within short
//! word windows. Every feature is in `0.0..=1.0` so the trained weights are comparable.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;

use super::lexicon::{matches_anywhere, Class, CLASS_COUNT, LEXICON};
use super::normalize::{
    canonicalize, decode_base32, decode_base64, decode_binary, decode_hex, readable, rot13,
    unescape, Canonical,
};
use super::{Origin, Signal};
use crate::GuardrailError;

/// Hits kept per class: enough to count "a few", bounded for 100 KB prompts.
const MAX_HITS: usize = 48;
/// Encoded blobs decoded per text.
const MAX_BLOBS: usize = 4;
/// Longest blob or de-obfuscated text re-scanned.
const MAX_DECODED: usize = 4096;

pub(crate) struct Compiled {
    matcher: AhoCorasick,
    /// Per pattern: class bit mask, must end at a word end, may start mid-word.
    entries: Vec<(u64, bool, bool)>,
    template: Regex,
    role_line: Regex,
    boundary: Regex,
    link: Regex,
    md_exfil: Regex,
    blob: Regex,
    binary: Regex,
    escapes: Regex,
    tool_invoke: Regex,
}

fn compile(name: &'static str, pattern: &str) -> Result<Regex, GuardrailError> {
    Regex::new(pattern).map_err(|e| GuardrailError::Pattern {
        name,
        message: e.to_string(),
    })
}

impl Compiled {
    pub fn new() -> Result<Self, GuardrailError> {
        let mut merged: std::collections::BTreeMap<&str, (u64, bool)> = Default::default();
        for (class, words) in LEXICON {
            for w in words.split('|') {
                let (stem, exact) = match w.strip_suffix('$') {
                    Some(s) => (s, true),
                    None => (w, false),
                };
                let e = merged.entry(stem).or_insert((0, exact));
                e.0 |= class.bit();
                e.1 &= exact;
            }
        }
        let patterns: Vec<&str> = merged.keys().copied().collect();
        let entries = merged
            .iter()
            .map(|(p, (mask, exact))| (*mask, *exact, matches_anywhere(p)))
            .collect();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| GuardrailError::Pattern {
                name: "injection_lexicon",
                message: e.to_string(),
            })?;
        Ok(Compiled {
            matcher,
            entries,
            template: compile(
                "injection_template",
                r"(?i)<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\s*\|>|\[/?INST\]|<</?SYS>>|</?(?:system|sys|instructions?|admin|developer)>|\[/?(?:system|admin|developer)\]|\(#(?:system|override)\)",
            )?,
            role_line: compile(
                "injection_role_line",
                r"(?im)^[ \t>]*(?:#{1,4}[ \t]*)?(system|assistant|user|human|ai|developer|admin)[ \t]*:",
            )?,
            boundary: compile(
                "injection_boundary",
                r"(?im)\b(?:begin|end|start)[ \t]+(?:of[ \t]+)?(?:the[ \t]+)?(?:system|admin|user|document|input|context|session|prompt|instructions?|override|data)\b|^[ \t]*(?:-{4,}|={4,}|\*{4,}|#{4,})[ \t]*$|</(?:context|document|user|data|text|input)>",
            )?,
            link: compile(
                "injection_link",
                r"(?i)https?://|\bwww\.|\b[\w.+-]+@[\w-]+\.[a-z]{2,}\b",
            )?,
            md_exfil: compile(
                "injection_md_exfil",
                r"!\[[^\]]*\]\(\s*https?://[^)\s]*[?&][^)\s]*=",
            )?,
            blob: compile(
                "injection_blob",
                r"(?:[0-9a-fA-F]{2}[ \t]?){12,}|[A-Za-z0-9+/_-]{20,}=*",
            )?,
            binary: compile("injection_binary", r"(?:[01]{8}[ \t]+){5,}[01]{8}")?,
            escapes: compile(
                "injection_escapes",
                r"(?i)(?:%[0-9a-f]{2}[^%\s]{0,12}){3,}|(?:\\u[0-9a-f]{4}){4,}",
            )?,
            tool_invoke: compile(
                "injection_tool_invoke",
                r"(?i)\b(?:call|invoke|run|trigger|execute|use)[ \t]+(?:the[ \t]+)?`?[a-z]+_[a-z_]+`?(?:[ \t]+(?:tool|function))?",
            )?,
        })
    }

    /// Word-class hits: for each class, the word indices where it matched.
    fn hits(&self, c: &Canonical) -> Hits {
        let mut hits = Hits::default();
        let bytes = c.text.as_bytes();
        for m in self.matcher.find_overlapping_iter(&c.text) {
            let (mask, exact, anywhere) = self.entries[m.pattern().as_usize()];
            let word = c.word_at(m.start());
            let w = c.words[word];
            if !anywhere && m.start() != w.start {
                continue;
            }
            if exact && m.end() < bytes.len() && bytes[m.end()] != b' ' {
                continue;
            }
            let mut mask = mask;
            if mask & Class::Ignore.bit() != 0 && describes(c, word) {
                // "the model ignores/ignored/forgets" describes behaviour; an attack commands it.
                mask &= !Class::Ignore.bit();
            }
            for class in 0..CLASS_COUNT {
                if mask & (1 << class) != 0 {
                    let list = &mut hits.by_class[class];
                    if list.len() < MAX_HITS && list.last() != Some(&word) {
                        list.push(word);
                    }
                    if w.repaired {
                        hits.repaired |= 1 << class;
                    }
                    if w.quoted {
                        hits.quoted |= 1 << class;
                    }
                }
            }
        }
        hits.words = c.words.len();
        hits.quoted_words = c.words.iter().map(|w| w.quoted).collect();
        hits
    }

    pub fn features(&self, text: &str, origin: Origin) -> [f32; Signal::COUNT] {
        let canon = canonicalize(text);
        let h = self.hits(&canon);
        let mut f = [0.0f32; Signal::COUNT];
        let mut set = |s: Signal, v: f32| f[s as usize] = v.clamp(0.0, 1.0);

        let (ovr, ovr_quoted) = h.override_hits();
        set(Signal::Override, count(ovr.0));
        set(Signal::OverrideBare, count(ovr.1));
        set(Signal::QuotedOverride, count(ovr_quoted));
        set(
            Signal::OverrideVague,
            count(h.near(Class::Ignore, &[Class::Prior, Class::All], 1, 3)),
        );
        set(
            Signal::VoidRules,
            count(h.near(Class::Instr, &[Class::Void], 0, 5)),
        );
        let reveal = h.near(Class::Reveal, &[Class::OwnPrompt], 1, 7)
            + h.near_all(
                Class::Reveal,
                Class::SysPrompt,
                &[Class::Your, Class::Prior, Class::Determiner],
                6,
            )
            + h.near_all(Class::Reveal, Class::Instr, &[Class::Your, Class::Prior], 6);
        set(Signal::RevealPrompt, count(reveal));
        let secret = h.near(Class::Reveal, &[Class::Sensitive], 1, 6);
        set(Signal::RevealSecret, count(secret));
        set(Signal::PromptMention, count(h.n(Class::SysPrompt)));
        set(Signal::NewInstructions, count(h.n(Class::NewInstr)));
        set(Signal::FromNowOn, count(h.n(Class::FromNow)));
        set(Signal::Persona, count(h.n(Class::Persona)));
        let jailbreak_traits = h.n(Class::Unrestricted)
            + h.n(Class::NeverRefuse)
            + h.n(Class::JailbreakName)
            + h.n(Class::Policy);
        let frame = (h.n(Class::Persona) + h.n(Class::Fiction)).min(1);
        let persona_jb = frame * jailbreak_traits.min(3);
        set(Signal::PersonaJailbreak, count(persona_jb));
        set(Signal::Unrestricted, count(h.n(Class::Unrestricted)));
        set(Signal::JailbreakName, count(h.n(Class::JailbreakName)));
        let mode_on = h.near(
            Class::Mode,
            &[Class::Activate, Class::You, Class::Your],
            3,
            3,
        );
        set(Signal::ModeSwitch, count(mode_on));
        set(Signal::ModeMention, count(h.n(Class::Mode)));
        set(Signal::NeverRefuse, count(h.n(Class::NeverRefuse)));
        set(Signal::PolicyMention, count(h.n(Class::Policy)));
        let disable = h.near(Class::Disable, &[Class::Policy, Class::Instr], 0, 5);
        set(Signal::DisableSafety, count(disable));
        set(Signal::Authority, count(h.n(Class::Authority)));
        set(
            Signal::ChatTemplate,
            count(self.template.find_iter(text).count()),
        );
        // Few-shot transcripts ("Human: ... AI: ...") are normal in user prompts; there only a
        // fake system/developer turn counts. In tool content any turn marker is out of place.
        let roles = self
            .role_line
            .captures_iter(text)
            .filter(|c| {
                origin == Origin::Tool
                    || c.get(1).is_some_and(|r| {
                        matches!(
                            r.as_str().to_ascii_lowercase().as_str(),
                            "system" | "developer" | "admin"
                        )
                    })
            })
            .count();
        set(Signal::RoleLines, count(roles));
        set(
            Signal::Boundary,
            count(self.boundary.find_iter(text).count()),
        );
        let addr = h.near(Class::Note, &[Class::AiName], 0, 4);
        set(Signal::AddressesAi, count(addr));
        let link = self.link.is_match(text);
        let exfil = h.near(Class::Send, &[Class::Sensitive], 1, 6);
        set(
            Signal::Exfiltration,
            count(exfil) * if link { 1.0 } else { 0.5 },
        );
        set(Signal::MarkdownExfil, flag(self.md_exfil.is_match(text)));
        set(
            Signal::DecodeAndFollow,
            count(h.near(Class::Decode, &[Class::Follow], 6, 6)),
        );
        let (encoded, encoded_attack) = self.hidden_payloads(text, h.n(Class::Scrambled) > 0);
        set(Signal::EncodedText, flag(encoded));
        set(Signal::EncodedInjection, flag(encoded_attack));
        let strong = strong_mask();
        let obf = usize::from(h.repaired & strong != 0) * 2 + usize::from(canon.invisible > 0);
        set(Signal::Obfuscation, count(obf));
        set(Signal::ForcedOutput, count(h.n(Class::Force)));
        set(Signal::Secrecy, count(h.n(Class::Secrecy)));
        set(Signal::TellUser, count(h.n(Class::TellUser)));
        let invoke = self.tool_invoke.find_iter(text).count();
        set(Signal::ToolInvoke, count(invoke));
        let tool = origin == Origin::Tool;
        // "Every answer" and "your reply" are ordinary formatting requests from a user.
        let tamper = if tool { h.n(Class::ReplyTamper) } else { 0 };
        set(Signal::ReplyTamper, count(tamper));
        set(Signal::SystemNote, count(h.n(Class::SystemNote)));
        set(Signal::FromTool, flag(tool));
        // Content fetched by a tool has no business addressing the model or steering the user.
        let directive = usize::from(addr > 0)
            + usize::from(invoke > 0)
            + h.n(Class::TellUser).min(1)
            + h.n(Class::ReplyTamper).min(1)
            + h.n(Class::Secrecy).min(1)
            + h.n(Class::SystemNote).min(1)
            + usize::from(exfil > 0);
        set(
            Signal::ToolDirective,
            if tool { count(directive) } else { 0.0 },
        );
        set(Signal::AttackTopic, count(h.n(Class::Meta)));
        let reported = h.near(
            Class::Reported,
            &[
                Class::Ignore,
                Class::OwnPrompt,
                Class::SysPrompt,
                Class::JailbreakName,
            ],
            0,
            10,
        );
        set(Signal::ReportedSpeech, count(reported));
        set(Signal::DefensiveFrame, count(h.n(Class::Defense)));
        set(Signal::TechContext, count(h.n(Class::Tech)));
        set(Signal::QuotedTrigger, flag(h.quoted & strong != 0));
        f
    }

    /// Re-scans base64/base32/hex/binary blobs and percent/`\\u` escapes, and, when rot13 or
    /// reversed attack words were seen, the rot13 and reversed text. Returns (readable hidden
    /// text found, hidden text carries an attack).
    fn hidden_payloads(&self, text: &str, scrambled: bool) -> (bool, bool) {
        let mut found = false;
        let mut attack = false;
        // One pass finds every candidate; each is tried as hex, base32, then base64.
        let blobs = self
            .blob
            .find_iter(text)
            .filter_map(|m| {
                let s = m.as_str().trim();
                let hexy = s
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b' ' || b == b'\t');
                let b32 = s
                    .bytes()
                    .all(|b| matches!(b, b'A'..=b'Z' | b'2'..=b'7' | b'='));
                if hexy {
                    decode_hex(s)
                } else if b32 {
                    decode_base32(s)
                } else {
                    decode_base64(s)
                }
            })
            .chain(
                self.binary
                    .find_iter(text)
                    .filter_map(|m| decode_binary(m.as_str())),
            )
            .take(MAX_BLOBS);
        for bytes in blobs {
            if let Some(decoded) = readable(&bytes[..bytes.len().min(MAX_DECODED)]) {
                found = true;
                attack |= self.strong(&decoded);
            }
        }
        let head = truncate(text, MAX_DECODED);
        if self.escapes.is_match(head) {
            let unescaped = unescape(head);
            found = true;
            attack |= self.strong(&unescaped);
        }
        if scrambled {
            let reversed: String = head.chars().rev().collect();
            attack |= self.strong(&rot13(head)) || self.strong(&reversed);
        }
        (found, attack)
    }

    /// A decoded payload counts only with multi-word evidence: single words such as "aim"
    /// turn up by chance in reversed or rot13 text.
    fn strong(&self, text: &str) -> bool {
        let h = self.hits(&canonicalize(text));
        let (ovr, ovr_q) = h.override_hits();
        ovr.0 + ovr.1 + ovr_q > 0
            || h.near(Class::Reveal, &[Class::OwnPrompt], 1, 7) > 0
            || h.n(Class::Unrestricted) + h.n(Class::NewInstr) > 0
    }
}

/// Describes rather than commands: English third-person, past and progressive forms of a
/// set-aside verb, or an infinitive aimed at someone other than the model ("cause the model
/// to ignore its instructions", but not "I want you to ignore").
fn describes(c: &Canonical, i: usize) -> bool {
    let word = |k: usize| c.words.get(k).map_or("", |w| &c.text[w.start..w.end]);
    let w = word(i);
    let inflected = w.is_ascii()
        && [
            "ignor",
            "disregard",
            "forget",
            "forgot",
            "overrid",
            "bypass",
            "discard",
            "neglect",
        ]
        .iter()
        .any(|s| w.starts_with(s))
        && (["s", "ed", "ing"].iter().any(|e| w.ends_with(e))
            || w == "forgotten"
            || w == "overridden");
    let infinitive = i >= 2 && word(i - 1) == "to" && word(i - 2) != "you";
    inflected || infinitive
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Classes whose appearance in quotes or in repaired words matters.
fn strong_mask() -> u64 {
    [
        Class::Ignore,
        Class::OwnPrompt,
        Class::Unrestricted,
        Class::JailbreakName,
        Class::NewInstr,
    ]
    .iter()
    .fold(0, |m, c| m | c.bit())
}

/// Saturating count: one hit already says most of what there is to say.
fn count(n: usize) -> f32 {
    match n {
        0 => 0.0,
        1 => 0.75,
        2 => 0.9,
        _ => 1.0,
    }
}

fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

struct Hits {
    by_class: [Vec<usize>; CLASS_COUNT],
    repaired: u64,
    quoted: u64,
    quoted_words: Vec<bool>,
    words: usize,
}

impl Default for Hits {
    fn default() -> Self {
        Hits {
            by_class: std::array::from_fn(|_| Vec::new()),
            repaired: 0,
            quoted: 0,
            quoted_words: Vec::new(),
            words: 0,
        }
    }
}

impl Hits {
    fn n(&self, c: Class) -> usize {
        self.by_class[c as usize].len()
    }

    fn of(&self, c: Class) -> &[usize] {
        &self.by_class[c as usize]
    }

    /// Hits of `a` with a hit of any of `others` from `before` words earlier to `after` later.
    fn near(&self, a: Class, others: &[Class], before: usize, after: usize) -> usize {
        self.of(a)
            .iter()
            .filter(|&&i| {
                others.iter().any(|o| {
                    self.of(*o)
                        .iter()
                        .any(|&j| j + before >= i && j <= i + after && !(j == i && *o == a))
                })
            })
            .count()
    }

    /// Hits of `a` with a `b` within `window` words after it and a modifier next to the `b`.
    fn near_all(&self, a: Class, b: Class, modifiers: &[Class], window: usize) -> usize {
        self.of(a)
            .iter()
            .filter(|&&i| {
                self.of(b)
                    .iter()
                    .any(|&j| j >= i && j <= i + window && self.modified(j, modifiers))
            })
            .count()
    }

    fn modified(&self, j: usize, modifiers: &[Class]) -> bool {
        modifiers
            .iter()
            .any(|m| self.of(*m).iter().any(|&k| k + 4 >= j && k <= j + 2))
    }

    /// Set-aside verb near a rules noun, in either order (verb-final languages put the verb
    /// last). Returns ((with an earlier/all/your modifier, without), inside quotes).
    fn override_hits(&self) -> ((usize, usize), usize) {
        let mods = [Class::Prior, Class::All, Class::Your];
        let (mut strong, mut bare, mut quoted) = (0, 0, 0);
        for &i in self.of(Class::Ignore) {
            if !self
                .of(Class::Instr)
                .iter()
                .any(|&j| j + 4 >= i && j <= i + 7)
            {
                continue;
            }
            // Quoted overrides are usually reported speech ("someone replied \"ignore all
            // previous instructions\""), so they get their own, separately weighted feature.
            if self.quoted_words.get(i).copied().unwrap_or(false) {
                quoted += 1;
            } else if self
                .of(Class::Instr)
                .iter()
                .any(|&j| j + 4 >= i && j <= i + 7 && self.modified(j, &mods))
            {
                strong += 1;
            } else {
                bare += 1;
            }
        }
        ((strong, bare), quoted)
    }
}
