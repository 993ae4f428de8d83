//! Feature extraction: a conversation becomes a fixed-size vector of values in 0..1.
//!
//! The last user message is split into its *instruction* (what the user asks) and its *payload*
//! (pasted code, quoted text, anything after "here is the text:"). Cue words count fully in the
//! instruction and only partly in the payload or in earlier turns, so that "fix the typos in this
//! paragraph" stays cheap even when the pasted paragraph talks about distributed systems.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{dfa::DFA, Anchored, MatchKind, StartKind};
use switchyard_api::{ChatMessage, MessageContent, Role};

use crate::lexicon::{FAMILIES, FAMILY_COUNT, FAMILY_NAMES};
use crate::text::{
    is_code_line, is_list_item, is_question_starter, is_trace_line, math_symbols, parse_number,
    requested_words,
};
use crate::RouterError;

const STRUCTURAL_COUNT: usize = 18;

/// Number of features in the vector.
pub const FEATURE_COUNT: usize = STRUCTURAL_COUNT + FAMILY_COUNT;

const STRUCTURAL_NAMES: [&str; STRUCTURAL_COUNT] = [
    "last_user_tokens",
    "instruction_tokens",
    "payload_tokens",
    "conversation_tokens",
    "system_prompt_tokens",
    "user_turns",
    "code_fence",
    "code_lines",
    "stack_trace_lines",
    "math_symbols",
    "numbers",
    "list_items",
    "extra_questions",
    "sentences",
    "requested_length",
    "simple_question_form",
    "non_ascii",
    "avg_word_length",
];

/// Stable feature names, in vector order. Model files refer to features by these names.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = concat_names();

const fn concat_names() -> [&'static str; FEATURE_COUNT] {
    let mut out = [""; FEATURE_COUNT];
    let mut i = 0;
    while i < STRUCTURAL_COUNT {
        out[i] = STRUCTURAL_NAMES[i];
        i += 1;
    }
    let mut j = 0;
    while j < FAMILY_COUNT {
        out[STRUCTURAL_COUNT + j] = FAMILY_NAMES[j];
        j += 1;
    }
    out
}

/// A feature vector.
pub type Features = [f32; FEATURE_COUNT];

// Payload and earlier turns still say something about the task (a long pasted stack trace is a
// debugging job), just much less than the instruction itself.
const PAYLOAD_WEIGHT: f32 = 0.35;
const CONTEXT_WEIGHT: f32 = 0.25;

/// Compiled cue automaton; built once per router.
pub(crate) struct Extractor {
    automaton: DFA,
    start: StateID,
    // Per pattern: its family and whether it is a prefix (`*`) pattern.
    meta: Vec<(usize, bool)>,
}

#[derive(Default)]
struct Acc {
    family: [f32; FAMILY_COUNT],
    last_bytes: usize,
    instruction_bytes: usize,
    payload_bytes: usize,
    total_bytes: usize,
    system_bytes: usize,
    user_turns: usize,
    fence: f32,
    code_lines: f32,
    trace_lines: f32,
    math_symbols: f32,
    numbers: u32,
    list_items: u32,
    questions: u32,
    sentences: u32,
    requested_words: f32,
    instruction_words: u32,
    instruction_letters: u32,
    first_word_is_question: Option<bool>,
    ends_with_question: bool,
    chars: u32,
    non_ascii_chars: u32,
}

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Instruction,
    Payload,
    Context,
}

impl Scope {
    fn weight(self) -> f32 {
        match self {
            Scope::Instruction => 1.0,
            Scope::Payload => PAYLOAD_WEIGHT,
            Scope::Context => CONTEXT_WEIGHT,
        }
    }
}

impl Extractor {
    pub(crate) fn new() -> Result<Self, RouterError> {
        let mut patterns = Vec::new();
        let mut meta = Vec::new();
        for (family, list) in FAMILIES.iter().enumerate() {
            for pattern in list.iter() {
                let prefix = pattern.ends_with('*');
                patterns.push(pattern.trim_end_matches('*'));
                meta.push((family, prefix));
            }
        }
        let automaton = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .build(&patterns)
            .map_err(|e| RouterError::InvalidModel(format!("cue lexicon: {e}")))?;
        let start = automaton
            .start_state(Anchored::Yes)
            .map_err(|e| RouterError::InvalidModel(format!("cue lexicon: {e}")))?;
        Ok(Self {
            automaton,
            start,
            meta,
        })
    }

    /// Computes the feature vector of a conversation. Allocation-free apart from the automaton's
    /// internal state.
    pub(crate) fn extract(&self, messages: &[ChatMessage]) -> Features {
        let mut acc = Acc::default();
        let main = messages
            .iter()
            .rposition(|m| m.role == Role::User)
            .or(messages.len().checked_sub(1));
        for (i, message) in messages.iter().enumerate() {
            if message.role == Role::User {
                acc.user_turns += 1;
            }
            let is_system = matches!(message.role, Role::System | Role::Developer);
            for text in texts(message) {
                acc.total_bytes += text.len();
                if is_system {
                    acc.system_bytes += text.len();
                }
                if Some(i) == main {
                    acc.last_bytes += text.len();
                    self.main_text(text, &mut acc);
                } else {
                    self.context_text(text, &mut acc);
                }
            }
        }
        finish(&acc)
    }

    fn context_text(&self, text: &str, acc: &mut Acc) {
        self.scan(text, Scope::Context, acc);
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("```") {
                acc.fence = acc.fence.max(CONTEXT_WEIGHT * 2.0);
            } else if is_code_line(t) {
                acc.code_lines += CONTEXT_WEIGHT;
            } else if is_trace_line(t) {
                acc.trace_lines += CONTEXT_WEIGHT;
            }
        }
    }

    fn main_text(&self, text: &str, acc: &mut Acc) {
        let mut in_fence = false;
        // After "...:" the following block of lines is pasted material, until a blank line ends
        // it or a fenced block closes: a question written after the paste is instruction again.
        let mut after_colon = false;
        let mut in_pasted_block = false;
        let mut first_line = true;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("```") {
                acc.fence = 1.0;
                in_fence = !in_fence;
                if !in_fence {
                    after_colon = false;
                }
                continue;
            }
            if t.is_ascii() {
                acc.chars += t.len() as u32;
            } else {
                for c in t.chars() {
                    acc.chars += 1;
                    acc.non_ascii_chars += u32::from(!c.is_ascii());
                }
            }
            acc.math_symbols += math_symbols(t);
            let code = is_code_line(t);
            let trace = !code && is_trace_line(t);
            acc.code_lines += f32::from(u8::from(code));
            acc.trace_lines += f32::from(u8::from(trace));
            let list_item = is_list_item(t);
            if list_item && !in_fence {
                acc.list_items += 1;
            }
            if t.is_empty() {
                if in_pasted_block {
                    after_colon = false;
                    in_pasted_block = false;
                }
                continue;
            }
            let asks = !code && !trace && t.ends_with('?');
            let payload = in_fence || t.starts_with('>') || (after_colon && !list_item && !asks);
            if payload {
                in_pasted_block = after_colon;
                acc.payload_bytes += t.len();
                self.scan(t, Scope::Payload, acc);
                continue;
            }
            // "Fix the typos: <long pasted text>" on one line: only the part before the colon
            // is the instruction.
            let (instruction, rest) = if first_line {
                split_inline_payload(t)
            } else {
                (t, "")
            };
            first_line = false;
            self.scan(instruction, Scope::Instruction, acc);
            instruction_stats(instruction, acc);
            if !rest.is_empty() {
                acc.payload_bytes += rest.len();
                self.scan(rest, Scope::Payload, acc);
            }
            if t.ends_with(':') {
                after_colon = true;
            }
        }
    }

    /// Counts cue matches in `text`. Cues must start a word, so the automaton is only run,
    /// anchored, at word starts: far fewer steps and matches than an unanchored scan, which
    /// would stop at every "hi" inside "this".
    fn scan(&self, text: &str, scope: Scope, acc: &mut Acc) {
        let weight = scope.weight();
        let mut prev_word = false;
        if text.is_ascii() {
            for (i, b) in text.bytes().enumerate() {
                let word = b.is_ascii_alphanumeric();
                if word && !prev_word {
                    self.match_at(text, i, weight, acc);
                }
                prev_word = word;
            }
        } else {
            for (i, c) in text.char_indices() {
                let word = c.is_alphanumeric();
                if word && !prev_word {
                    self.match_at(text, i, weight, acc);
                }
                prev_word = word;
            }
        }
    }

    /// The longest cue starting at byte `start`, if it also ends where its pattern says. Walks
    /// the DFA by hand: most word starts die after a byte or two, so the per-call setup of the
    /// high-level search API would dominate.
    fn match_at(&self, text: &str, start: usize, weight: f32, acc: &mut Acc) {
        let dfa = &self.automaton;
        let mut sid = self.start;
        let mut best = None;
        let rest = text.as_bytes().get(start..).unwrap_or_default();
        for (i, &b) in rest.iter().enumerate() {
            sid = dfa.next_state(Anchored::Yes, sid, b);
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    break;
                }
                if dfa.is_match(sid) {
                    best = Some((dfa.match_pattern(sid, 0), start + i + 1));
                }
            }
        }
        let Some((pattern, end)) = best else {
            return;
        };
        let Some(&(family, prefix)) = self.meta.get(pattern.as_usize()) else {
            return;
        };
        let ends_word = text
            .get(end..)
            .and_then(|s| s.chars().next())
            .is_none_or(|c| !c.is_alphanumeric());
        if prefix || ends_word {
            acc.family[family] += weight;
        }
    }
}

/// Text segments of a message without joining multi-part content into a new string.
fn texts(message: &ChatMessage) -> impl Iterator<Item = &str> {
    let (single, parts) = match &message.content {
        Some(MessageContent::Text(t)) => (Some(t.as_str()), None),
        Some(MessageContent::Parts(p)) => (None, Some(p.iter())),
        None => (None, None),
    };
    single.into_iter().chain(
        parts
            .into_iter()
            .flatten()
            .filter_map(|p| p.text.as_deref()),
    )
}

fn split_inline_payload(line: &str) -> (&str, &str) {
    if let Some(idx) = line.find(':') {
        let (head, tail) = line.split_at(idx);
        let tail = &tail[1..];
        if head.split_whitespace().count() <= 12 && tail.split_whitespace().count() >= 20 {
            return (head, tail);
        }
    }
    (line, "")
}

fn instruction_stats(text: &str, acc: &mut Acc) {
    acc.instruction_bytes += text.len();
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'?' | b'.' | b'!') {
            continue;
        }
        acc.questions += u32::from(b == b'?');
        let at_end = bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        acc.sentences += u32::from(at_end);
    }
    if let Some(last) = text.trim_end().chars().next_back() {
        acc.ends_with_question = last == '?';
    }
    let mut previous_number: Option<f32> = None;
    // The ASCII splitter is several times faster, and most prompts are ASCII.
    if text.is_ascii() {
        for raw in text.split_ascii_whitespace() {
            word_stats(raw, acc, &mut previous_number);
        }
    } else {
        for raw in text.split_whitespace() {
            word_stats(raw, acc, &mut previous_number);
        }
    }
}

fn word_stats(raw: &str, acc: &mut Acc, previous_number: &mut Option<f32>) {
    let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
    let Some(&first) = word.as_bytes().first() else {
        return;
    };
    acc.instruction_words += 1;
    let letters = if word.is_ascii() {
        word.bytes().filter(u8::is_ascii_alphabetic).count()
    } else {
        word.chars().filter(|c| c.is_alphabetic()).count()
    };
    acc.instruction_letters += letters as u32;
    if acc.first_word_is_question.is_none() {
        acc.first_word_is_question = Some(is_question_starter(word));
    }
    // "1500-word essay", "2,000 words", "3 pages", "2k words".
    if first.is_ascii_digit() {
        let (num_part, unit_part) = match word.split_once('-') {
            Some((n, u)) => (n, Some(u)),
            None => (word, None),
        };
        if let Some(n) = parse_number(num_part) {
            acc.numbers += 1;
            match unit_part {
                Some(unit) => note_length(acc, n, unit),
                None => *previous_number = Some(n),
            }
            return;
        }
    }
    if let Some(n) = previous_number.take() {
        note_length(acc, n, word);
    }
}

fn note_length(acc: &mut Acc, n: f32, unit: &str) {
    if let Some(words) = requested_words(n, unit) {
        acc.requested_words = acc.requested_words.max(words);
    }
}

/// Rises quickly for the first few occurrences and then saturates below 1.
fn saturate(x: f32, half: f32) -> f32 {
    if x <= 0.0 {
        0.0
    } else {
        x / (x + half)
    }
}

fn log_scale(tokens: f32, max_tokens: f32) -> f32 {
    ((1.0 + tokens).ln() / (1.0 + max_tokens).ln()).clamp(0.0, 1.0)
}

fn tokens(bytes: usize) -> f32 {
    // The usual ~4 bytes per token; precise enough for a log-scaled feature.
    bytes as f32 / 4.0
}

fn finish(acc: &Acc) -> Features {
    let mut f = [0.0f32; FEATURE_COUNT];
    let words = acc.instruction_words as f32;
    f[0] = log_scale(tokens(acc.last_bytes), 2000.0);
    f[1] = log_scale(tokens(acc.instruction_bytes), 1000.0);
    f[2] = log_scale(tokens(acc.payload_bytes), 2000.0);
    f[3] = log_scale(tokens(acc.total_bytes), 8000.0);
    f[4] = log_scale(tokens(acc.system_bytes), 2000.0);
    f[5] = (acc.user_turns.saturating_sub(1) as f32 / 4.0).min(1.0);
    f[6] = acc.fence;
    f[7] = saturate(acc.code_lines, 4.0);
    f[8] = saturate(acc.trace_lines, 2.0);
    f[9] = saturate(acc.math_symbols, 3.0);
    f[10] = saturate(acc.numbers as f32, 3.0);
    f[11] = saturate(acc.list_items as f32, 3.0);
    f[12] = saturate(acc.questions.saturating_sub(1) as f32, 2.0);
    f[13] = saturate(acc.sentences.saturating_sub(1) as f32, 3.0);
    f[14] = if acc.requested_words > 150.0 {
        ((acc.requested_words / 150.0).ln() / (5000.0f32 / 150.0).ln()).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let question_form = acc.first_word_is_question == Some(true) || acc.ends_with_question;
    f[15] = if question_form && acc.instruction_words <= 15 && acc.fence == 0.0 {
        1.0
    } else {
        0.0
    };
    f[16] = if acc.chars == 0 {
        0.0
    } else {
        (2.0 * acc.non_ascii_chars as f32 / acc.chars as f32).min(1.0)
    };
    f[17] = if words > 0.0 {
        ((acc.instruction_letters as f32 / words - 3.5) / 4.0).clamp(0.0, 1.0)
    } else {
        0.0
    };
    for (k, hits) in acc.family.iter().enumerate() {
        f[STRUCTURAL_COUNT + k] = saturate(*hits, 1.0);
    }
    f
}

#[cfg(test)]
mod tests;
