//! Output guardrail against system-prompt leakage (`[guardrails] system_prompt_leak`).
//!
//! Before the call a random canary is appended to the request's first system (or developer)
//! message; the answer is then checked for the canary and for word runs / shingle overlap with
//! the system prompt (`switchyard_guardrails::SystemPromptGuard`). Streamed answers go through a
//! `StreamLeakGuard` per choice, which holds back only the words a match can still span. In
//! `block` mode a leaking answer is never delivered; in `detect` mode it is delivered with the
//! canary cut out. Either way the finding (kind, action, evidence — never text) is recorded and
//! the answer is not cached.

use serde_json::json;
use switchyard_api::{ChatCompletionResponse, ChatMessage, ContentPart, MessageContent, Role};
use switchyard_guardrails::{Action, GuardrailError, LeakEvidence, StreamLeakGuard};
use switchyard_guardrails::{GuardConfig, SystemPromptGuard};

use super::{action_name, texts_mut};
use crate::requestlog::RequestContext;

/// Finding kind in the request log and metrics.
pub const SYSTEM_PROMPT_LEAK: &str = "SYSTEM_PROMPT_LEAK";
/// OpenAI error `code` of a blocked answer.
pub const LEAK_CODE: &str = "guardrail_system_prompt_leak";
pub const LEAK_MESSAGE: &str =
    "response blocked by the system_prompt_leak guardrail: the answer repeats the system prompt";

/// The leak guard armed for one request.
pub struct LeakGuard {
    guard: SystemPromptGuard,
    /// `Detect` or `Block`.
    action: Action,
}

/// Builds the guard for a request, or `None` when it has no system or developer text.
pub(super) fn arm(
    action: Action,
    messages: &[ChatMessage],
) -> Result<Option<LeakGuard>, GuardrailError> {
    let prompt: Vec<String> = messages
        .iter()
        .filter(|m| is_system(m.role))
        .map(ChatMessage::text)
        .filter(|t| !t.trim().is_empty())
        .collect();
    if prompt.is_empty() {
        return Ok(None);
    }
    let guard = SystemPromptGuard::with_config(&prompt.join("\n"), GuardConfig::default())?;
    Ok(Some(LeakGuard { guard, action }))
}

fn is_system(role: Role) -> bool {
    matches!(role, Role::System | Role::Developer)
}

impl LeakGuard {
    pub fn blocks(&self) -> bool {
        self.action == Action::Block
    }

    /// Appends the canary to the first system or developer message. Called after the cache
    /// lookup: the canary is random per request and must not become part of the cache key.
    pub fn inject(&self, messages: &mut [ChatMessage]) {
        let Some(message) = messages.iter_mut().find(|m| is_system(m.role)) else {
            return;
        };
        match &mut message.content {
            Some(MessageContent::Text(t)) => *t = self.guard.inject(t),
            Some(MessageContent::Parts(parts)) => {
                match parts.iter_mut().rev().find_map(|p| p.text.as_mut()) {
                    Some(t) => *t = self.guard.inject(t),
                    None => parts.push(ContentPart {
                        kind: "text".to_owned(),
                        text: Some(self.guard.canary().to_owned()),
                        image_url: None,
                        extra: serde_json::Map::new(),
                    }),
                }
            }
            None => message.content = Some(MessageContent::Text(self.guard.canary().to_owned())),
        }
    }

    /// Checks every choice of a whole answer, cuts the canary out of it and records each leak.
    /// Returns whether any choice leaked; the caller refuses the answer when `blocks()`.
    pub fn screen_response(
        &mut self,
        ctx: &mut RequestContext,
        resp: &mut ChatCompletionResponse,
    ) -> bool {
        let mut leaked = false;
        for choice in &mut resp.choices {
            if let Some(evidence) = self.guard.leaked(&choice.message.text()) {
                self.record(ctx, choice.index, &evidence, false);
                leaked = true;
            }
            for text in texts_mut(&mut choice.message) {
                strip_canary(&self.guard, text);
            }
            for call in choice.message.tool_calls.iter_mut().flatten() {
                strip_canary(&self.guard, &mut call.function.arguments);
            }
        }
        leaked
    }

    /// Counts the finding and adds it to the request log's findings.
    pub fn record(
        &mut self,
        ctx: &mut RequestContext,
        choice: u32,
        evidence: &LeakEvidence,
        stream: bool,
    ) {
        let action = action_name(self.action);
        metrics::counter!("switchyard_guardrail_findings_total",
            "kind" => SYSTEM_PROMPT_LEAK, "action" => action)
        .increment(1);
        ctx.add_guardrail_findings(vec![json!({
            "kind": SYSTEM_PROMPT_LEAK,
            "action": action,
            "evidence": evidence,
            "choice": choice,
            "stream": stream,
        })]);
    }

    /// A fresh streaming check for one choice.
    pub fn stream(&self) -> LeakStream {
        LeakStream {
            check: Some(self.guard.clone().into_stream()),
            pending: String::new(),
            passthrough: false,
            canary: self.guard.canary().to_owned(),
        }
    }
}

/// One choice's streamed text on its way through the leak guard.
pub struct LeakStream {
    /// `None` once the choice is finished or stopped.
    check: Option<StreamLeakGuard<'static>>,
    /// Pushed but not yet released text. While watching this mirrors the guard's window (what it
    /// emits is always a prefix of it), so `detect` mode can release it after a leak, which the
    /// guard itself would swallow.
    pending: String,
    /// `detect` mode after a leak: everything is forwarded, only the canary is cut out.
    passthrough: bool,
    canary: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct LeakStep {
    /// Text safe to forward now.
    pub emit: String,
    /// Set on the step where a leak is first seen.
    pub leak: Option<LeakEvidence>,
}

impl LeakStream {
    pub fn push(&mut self, chunk: &str, block: bool) -> LeakStep {
        self.pending.push_str(chunk);
        let Some(check) = self.check.as_mut() else {
            return self.release(false);
        };
        let r = check.push(chunk);
        match r.leak {
            Some(evidence) => self.fired(evidence, block, false),
            None => {
                self.take_emitted(&r.emit);
                LeakStep {
                    emit: r.emit,
                    leak: None,
                }
            }
        }
    }

    /// The choice ended: whatever is still held back is judged as a complete answer.
    pub fn finish(&mut self, block: bool) -> LeakStep {
        let Some(check) = self.check.take() else {
            return self.release(true);
        };
        let r = check.finish();
        match r.leak {
            Some(evidence) => self.fired(evidence, block, true),
            None => {
                self.pending.clear();
                LeakStep {
                    emit: r.emit,
                    leak: None,
                }
            }
        }
    }

    fn fired(&mut self, evidence: LeakEvidence, block: bool, last: bool) -> LeakStep {
        self.check = None;
        if block {
            self.pending.clear();
            return LeakStep {
                emit: String::new(),
                leak: Some(evidence),
            };
        }
        self.passthrough = true;
        LeakStep {
            leak: Some(evidence),
            ..self.release(last)
        }
    }

    fn take_emitted(&mut self, emitted: &str) {
        if self.pending.starts_with(emitted) {
            self.pending.drain(..emitted.len());
        } else {
            // Cannot happen (the guard emits from the front of what it was given); dropping the
            // mirror only costs `detect` mode the held-back tail, never leaks anything.
            self.pending.clear();
        }
    }

    /// After a `block`, nothing; in `detect` pass-through, the pending text minus the canary,
    /// keeping back a tail that could still grow into the canary (or its bare hex token).
    fn release(&mut self, last: bool) -> LeakStep {
        if !self.passthrough {
            self.pending.clear();
            return LeakStep::default();
        }
        let (emit, used) = cut_canary(&self.pending, &self.canary, last);
        self.pending.drain(..used);
        LeakStep { emit, leak: None }
    }
}

/// The hex token inside `⟦sy-canary:1a2b3c4d⟧`: what the guard looks for, brackets or not.
fn canary_token(canary: &str) -> &str {
    let inner = canary.trim_end_matches('⟧');
    inner.rsplit(':').next().unwrap_or(inner)
}

fn strip_canary(guard: &SystemPromptGuard, text: &mut String) {
    // The token is inside the canary, so one test covers both forms.
    if contains_ci(text.as_bytes(), canary_token(guard.canary()).as_bytes()) {
        *text = cut_canary(text, guard.canary(), true).0;
    }
}

/// `text` without the canary or its bare token (ASCII case-insensitive, as the guard matches),
/// scanned left to right like a streaming replace. Unless `last`, stops at a tail that could
/// still grow into either. Returns the text and how many bytes of `text` it accounts for.
///
/// Positions stay on char boundaries: a match starts on one, and equals a valid UTF-8 needle up
/// to ASCII case, so it also ends on one.
fn cut_canary(text: &str, canary: &str, last: bool) -> (String, usize) {
    let needles = [canary.as_bytes(), canary_token(canary).as_bytes()];
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(c) = text.get(i..).and_then(|t| t.chars().next()) {
        let rest = text.as_bytes().get(i..).unwrap_or_default();
        if let Some(n) = needles.iter().find(|n| starts_with_ci(rest, n)) {
            i += n.len();
            continue;
        }
        if !last
            && needles
                .iter()
                .any(|n| n.len() > rest.len() && starts_with_ci(n, rest))
        {
            break;
        }
        out.push(c);
        i += c.len_utf8();
    }
    (out, i)
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.get(..prefix.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "You are Atlas, the support assistant for Northwind Bank. Never reveal \
        internal policy codes and escalate fraud reports to the security team within one hour.";
    const LEAK: &str = "escalate fraud reports to the security team within one hour";

    fn armed(action: Action) -> LeakGuard {
        let msgs = vec![
            ChatMessage::new(Role::System, PROMPT),
            ChatMessage::new(Role::User, "hi"),
        ];
        arm(action, &msgs).unwrap().unwrap()
    }

    fn run(s: &mut LeakStream, text: &str, chunk: usize, block: bool) -> (String, bool) {
        let (mut out, mut fired) = (String::new(), false);
        let chars: Vec<char> = text.chars().collect();
        for piece in chars.chunks(chunk) {
            let step = s.push(&piece.iter().collect::<String>(), block);
            out += &step.emit;
            fired |= step.leak.is_some();
        }
        let step = s.finish(block);
        out += &step.emit;
        (out, fired || step.leak.is_some())
    }

    #[test]
    fn no_system_prompt_arms_nothing_and_injection_hits_the_first_system_message() {
        let msgs = vec![ChatMessage::new(Role::User, "hi")];
        assert!(arm(Action::Block, &msgs).unwrap().is_none());
        let g = armed(Action::Block);
        let mut msgs = vec![
            ChatMessage::new(Role::User, "hi"),
            ChatMessage::new(Role::Developer, PROMPT),
        ];
        g.inject(&mut msgs);
        assert_eq!(msgs[0].text(), "hi");
        assert!(msgs[1].text().starts_with(PROMPT));
        assert!(msgs[1].text().ends_with(g.guard.canary()));
    }

    #[test]
    fn streamed_block_never_emits_the_leaked_run() {
        for chunk in [1, 3, 7, 200] {
            let mut s = armed(Action::Block).stream();
            let (out, fired) = run(
                &mut s,
                &format!("Sure. Rule: {LEAK}. Bye now."),
                chunk,
                true,
            );
            assert!(fired, "chunk {chunk}");
            assert!(!out.contains("security team"), "chunk {chunk}: {out}");
        }
    }

    #[test]
    fn streamed_detect_delivers_everything_but_the_canary() {
        let g = armed(Action::Detect);
        let canary = g.guard.canary().to_owned();
        let answer = format!(
            "Sure. Rule: {LEAK}. Marker {canary} and {} too.",
            canary_token(&canary).to_uppercase()
        );
        for chunk in [1, 2, 5, 300] {
            let mut s = g.stream();
            let (out, fired) = run(&mut s, &answer, chunk, false);
            assert!(fired);
            assert_eq!(
                out,
                format!("Sure. Rule: {LEAK}. Marker  and  too."),
                "{chunk}"
            );
        }
    }

    #[test]
    fn clean_stream_passes_byte_for_byte() {
        let answer = "Your card was blocked after unusual activity — ünïcode [EMAIL_1] ok.";
        for chunk in [1, 4, 100] {
            let mut s = armed(Action::Block).stream();
            assert_eq!(run(&mut s, answer, chunk, true), (answer.to_owned(), false));
        }
    }

    #[test]
    fn cut_canary_removes_every_form_and_holds_only_possible_starts() {
        let canary = "⟦sy-canary:1b2b⟧";
        let all = "a1B2B x ⟦SY-canary:1b2b⟧ü";
        assert_eq!(cut_canary(all, canary, true), ("a x ü".into(), all.len()));
        // Held: only tails that are the start of the canary or of its token.
        assert_eq!(cut_canary("ok 1b2", canary, false), ("ok ".into(), 3));
        assert_eq!(
            cut_canary("text ⟦sy-canary:1b2b", canary, false),
            ("text ".into(), 5)
        );
        assert_eq!(
            cut_canary("plain 1c", canary, false),
            ("plain 1c".into(), 8)
        );
        assert_eq!(cut_canary("plain 1", canary, true), ("plain 1".into(), 7));
    }
}
