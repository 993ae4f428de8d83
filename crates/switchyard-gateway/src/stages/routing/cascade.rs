//! Quality escalation for `auto`: how sure a cheap model's answer looks. Token log-probabilities
//! when the provider returns them (the mean token probability), a rule-based verifier otherwise.
//! Below `[router] cascade_threshold` (0.7) the request is asked again one tier up.

use serde::Serialize;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Confidence {
    pub value: f32,
    /// `logprobs` or `verifier`.
    pub source: &'static str,
}

/// Phrases with which models say they could not really answer.
const HEDGES: [&str; 10] = [
    "i'm not sure",
    "i am not sure",
    "i don't know",
    "i do not know",
    "i cannot",
    "i can't help",
    "as an ai",
    "unable to",
    "not able to",
    "i'm sorry, but",
];

/// Prompt cues that the answer should contain code.
const CODE_ASKS: [&str; 6] = [
    "write a function",
    "implement",
    "write code",
    "write a program",
    "write a script",
    "```",
];

pub fn confidence(req: &ChatCompletionRequest, resp: &ChatCompletionResponse) -> Confidence {
    let Some(choice) = resp.choices.first() else {
        return verifier(0.0);
    };
    if let Some(p) = choice.logprobs.as_ref().and_then(mean_token_probability) {
        return Confidence {
            value: p,
            source: "logprobs",
        };
    }
    let answer = choice.message.text();
    let text = answer.trim().to_lowercase();
    if text.is_empty() {
        return verifier(0.0);
    }
    if choice.finish_reason.as_deref() == Some("length") {
        return verifier(0.4);
    }
    if HEDGES.iter().any(|h| text.contains(h)) {
        return verifier(0.3);
    }
    let question = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == switchyard_api::Role::User)
        .map(|m| m.text().to_lowercase())
        .unwrap_or_default();
    if CODE_ASKS.iter().any(|c| question.contains(c)) && !looks_like_code(&answer) {
        return verifier(0.5);
    }
    if question.len() > 400 && text.len() < 40 {
        return verifier(0.5);
    }
    verifier(0.9)
}

fn verifier(value: f32) -> Confidence {
    Confidence {
        value,
        source: "verifier",
    }
}

/// `exp(mean logprob)` over OpenAI's `logprobs.content[]`.
fn mean_token_probability(logprobs: &serde_json::Value) -> Option<f32> {
    let content = logprobs.get("content")?.as_array()?;
    let lps: Vec<f64> = content
        .iter()
        .filter_map(|t| t.get("logprob")?.as_f64())
        .collect();
    if lps.is_empty() {
        return None;
    }
    let mean = lps.iter().sum::<f64>() / lps.len() as f64;
    Some(mean.exp() as f32)
}

fn looks_like_code(answer: &str) -> bool {
    answer.contains("```")
        || answer.lines().filter(|l| l.starts_with("    ")).count() >= 2
        || ["fn ", "def ", "function ", "class ", "return ", "#include"]
            .iter()
            .any(|k| answer.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_api::{ChatMessage, Choice, Role};

    fn resp(text: &str, logprobs: Option<serde_json::Value>) -> ChatCompletionResponse {
        ChatCompletionResponse {
            choices: vec![Choice {
                index: 0,
                message: ChatMessage::new(Role::Assistant, text),
                finish_reason: Some("stop".into()),
                logprobs,
            }],
            id: "x".into(),
            object: "chat.completion".into(),
            created: 0,
            model: "m".into(),
            usage: None,
            system_fingerprint: None,
            extra: serde_json::Map::new(),
        }
    }

    fn ask(q: &str) -> ChatCompletionRequest {
        ChatCompletionRequest {
            model: "auto".into(),
            messages: vec![ChatMessage::new(Role::User, q)],
            ..Default::default()
        }
    }

    #[test]
    fn logprobs_win_over_the_verifier() {
        let lp = json!({"content": [{"token": "a", "logprob": (0.5f64).ln()},
                                    {"token": "b", "logprob": (0.5f64).ln()}]});
        let c = confidence(&ask("hi"), &resp("Paris.", Some(lp)));
        assert_eq!(c.source, "logprobs");
        assert!((c.value - 0.5).abs() < 1e-5);
    }

    #[test]
    fn the_verifier_flags_hedges_empty_answers_and_missing_code() {
        let q = ask("What is the capital of France?");
        assert!(confidence(&q, &resp("Paris is the capital.", None)).value >= 0.7);
        assert!(confidence(&q, &resp("I'm not sure, maybe Lyon?", None)).value < 0.7);
        assert!(confidence(&q, &resp("  ", None)).value < 0.7);
        let code = ask("Implement a binary search in Rust.");
        assert!(confidence(&code, &resp("Use a loop that halves the range.", None)).value < 0.7);
        let answer = "```rust\nfn search() {}\n```";
        assert!(confidence(&code, &resp(answer, None)).value >= 0.7);
    }
}
