//! Answer checks on the way out: PII, secrets and banned terms in the model's text
//! (`output_pii`, `output_secrets`, `banned_terms`), and `response_format` validation with one
//! repair retry (`response_format = "repair"`).
//!
//! They run on the upstream's text before input placeholders are put back, so the caller's own
//! redacted values are never judged as the model's. A redacted answer is what gets cached.

use serde_json::{json, Value};
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Role};
use switchyard_guardrails::{
    OutputFinding, OutputScanner, OutputStep, OutputStream, ResponseFormatCheck, SchemaViolation,
};

use super::{action_name, texts_mut, FormatAction, Guardrails, BANNED_TERM};
use crate::requestlog::RequestContext;
use crate::server::ApiError;

/// Kind of the `response_format` finding in the request log and metrics.
pub const RESPONSE_FORMAT: &str = "RESPONSE_FORMAT";

fn count(f: &OutputFinding) {
    metrics::counter!("switchyard_guardrail_findings_total",
        "kind" => f.kind, "action" => action_name(f.action))
    .increment(1);
}

fn finding_json(f: &OutputFinding, choice: u32, stream: bool) -> Value {
    json!({
        "kind": f.kind,
        "action": action_name(f.action),
        "score": f.score,
        "choice": choice,
        "output": true,
        "stream": stream,
    })
}

fn record(ctx: &mut RequestContext, findings: &[OutputFinding], choice: u32, stream: bool) {
    if findings.is_empty() {
        return;
    }
    findings.iter().for_each(count);
    ctx.add_guardrail_findings(
        findings
            .iter()
            .map(|f| finding_json(f, choice, stream))
            .collect(),
    );
}

/// The refusal for an answer an output scanner blocked: a 400 like the input blocks, since the
/// request is what produced it.
pub fn blocked_error(f: &OutputFinding) -> ApiError {
    let (guardrail, code) = if f.kind == BANNED_TERM {
        ("banned_terms", "guardrail_banned_terms")
    } else if switchyard_guardrails::Kind::parse(f.kind).is_some_and(|k| k.is_secret()) {
        ("output_secrets", "guardrail_secrets")
    } else {
        ("output_pii", "guardrail_pii")
    };
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        "guardrail_blocked",
        code,
        format!(
            "response blocked by the {guardrail} guardrail: {} found in the answer",
            f.kind
        ),
    )
}

/// Non-streamed answers (served calls and cache hits).
pub struct AnswerScreen;

impl AnswerScreen {
    /// Redacts each choice's text, or refuses the answer.
    pub fn screen(
        scanner: &OutputScanner,
        ctx: &mut RequestContext,
        resp: &mut ChatCompletionResponse,
    ) -> Result<(), ApiError> {
        for choice in &mut resp.choices {
            for text in texts_mut(&mut choice.message) {
                let verdict = scanner.screen(text);
                record(ctx, &verdict.findings, choice.index, false);
                if let Some(f) = &verdict.blocked {
                    return Err(blocked_error(f));
                }
                if let Some(redacted) = verdict.redacted {
                    *text = redacted;
                }
            }
        }
        Ok(())
    }
}

/// Streamed answers: one [`OutputStream`] per choice index.
pub struct OutputRelay {
    scanner: OutputScanner,
    streams: Vec<(u32, OutputStream)>,
}

impl OutputRelay {
    pub fn new(scanner: &OutputScanner) -> Self {
        Self {
            scanner: scanner.clone(),
            streams: Vec::new(),
        }
    }

    fn stream_for(&mut self, index: u32) -> &mut OutputStream {
        let pos = match self.streams.iter().position(|(i, _)| *i == index) {
            Some(p) => p,
            None => {
                self.streams.push((index, self.scanner.stream()));
                self.streams.len() - 1
            }
        };
        &mut self.streams[pos].1
    }

    /// Passes one choice's delta through its check; `last` at its `finish_reason`. Returns the
    /// text to forward, or the finding that blocks the answer.
    pub fn push(
        &mut self,
        ctx: Option<&mut RequestContext>,
        index: u32,
        text: &str,
        last: bool,
    ) -> Result<String, OutputFinding> {
        let stream = self.stream_for(index);
        let mut step = stream.push(text);
        if last {
            let end = stream.finish();
            step.emit.push_str(&end.emit);
            step.findings.extend(end.findings);
            step.blocked = step.blocked.or(end.blocked);
        }
        Self::settle(ctx, index, step)
    }

    /// The upstream ended without finish reasons: release every choice's held text.
    pub fn finish_all(
        &mut self,
        mut ctx: Option<&mut RequestContext>,
    ) -> Result<Vec<(u32, String)>, OutputFinding> {
        let mut out = Vec::new();
        for (index, stream) in &mut self.streams {
            let step = stream.finish();
            let text = Self::settle(ctx.as_deref_mut(), *index, step)?;
            if !text.is_empty() {
                out.push((*index, text));
            }
        }
        Ok(out)
    }

    fn settle(
        ctx: Option<&mut RequestContext>,
        index: u32,
        step: OutputStep,
    ) -> Result<String, OutputFinding> {
        if let Some(ctx) = ctx {
            record(ctx, &step.findings, index, true);
        }
        match step.blocked {
            Some(f) => Err(f),
            None => Ok(step.emit),
        }
    }
}

/// `response_format` validation for one request.
pub struct FormatCheck {
    check: ResponseFormatCheck,
    action: FormatAction,
}

impl FormatCheck {
    /// `Ok(None)` when the check is off or the request asks for plain text; a malformed
    /// `response_format` is the client's mistake (400).
    pub fn for_request(
        guardrails: Option<&Guardrails>,
        req: &ChatCompletionRequest,
    ) -> Result<Option<Self>, ApiError> {
        let action = guardrails.map_or(FormatAction::Off, Guardrails::format_action);
        let (FormatAction::Detect | FormatAction::Repair, Some(rf)) =
            (action, req.response_format.as_ref())
        else {
            return Ok(None);
        };
        match ResponseFormatCheck::from_response_format(rf) {
            Ok(Some(check)) => Ok(Some(Self { check, action })),
            Ok(None) => Ok(None),
            Err(e) => Err(
                ApiError::invalid_request("invalid_response_format", e.to_string())
                    .with_param("response_format"),
            ),
        }
    }

    pub fn repairs(&self) -> bool {
        self.action == FormatAction::Repair
    }

    /// The first choice whose text does not validate.
    pub fn violation(&self, resp: &ChatCompletionResponse) -> Option<SchemaViolation> {
        resp.choices
            .iter()
            .find_map(|c| self.check.check(&c.message.text()).err())
    }

    /// Checks a whole streamed answer (detect only: it has been delivered already).
    pub fn check_text(&self, text: &str) -> Option<SchemaViolation> {
        self.check.check(text).err()
    }

    /// The same request with the invalid answer and the validation errors appended.
    pub fn repair_request(
        &self,
        req: &ChatCompletionRequest,
        resp: &ChatCompletionResponse,
        violation: &SchemaViolation,
    ) -> ChatCompletionRequest {
        let mut repaired = req.clone();
        let answer = resp
            .choices
            .first()
            .map(|c| c.message.text())
            .unwrap_or_default();
        repaired
            .messages
            .push(ChatMessage::new(Role::Assistant, answer));
        repaired.messages.push(ChatMessage::new(
            Role::User,
            self.check.repair_instruction(violation),
        ));
        // One answer to repair, whatever `n` asked for the first time.
        repaired.n = None;
        repaired
    }

    /// Records the outcome: `repaired` is `None` without a repair attempt.
    pub fn record(
        &self,
        ctx: &mut RequestContext,
        violation: &SchemaViolation,
        repaired: Option<bool>,
        stream: bool,
    ) {
        let action = match self.action {
            FormatAction::Repair if !stream => "repair",
            _ => "detect",
        };
        metrics::counter!("switchyard_guardrail_findings_total",
            "kind" => RESPONSE_FORMAT, "action" => action)
        .increment(1);
        let mut f = json!({
            "kind": RESPONSE_FORMAT,
            "action": action,
            "errors": violation.errors.len(),
            "stream": stream,
        });
        if let Some(r) = repaired {
            f["repaired"] = json!(r);
        }
        ctx.add_guardrail_findings(vec![f]);
    }
}

/// The error when a repaired answer still does not match the requested format.
pub fn format_error(violation: &SchemaViolation) -> ApiError {
    let first = violation.errors.first().map_or("", String::as_str);
    ApiError::new(
        http::StatusCode::BAD_GATEWAY,
        "upstream_error",
        "invalid_response_format",
        format!(
            "the model's answer did not match response_format after one repair attempt: {first}"
        ),
    )
}
