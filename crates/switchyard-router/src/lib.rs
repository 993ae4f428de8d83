//! Learned prompt-complexity router: "not every request needs GPT-4".
//!
//! Clients send `"model": "auto"`; the gateway asks [`ComplexityRouter::classify`] for the lowest
//! model tier the conversation needs (1 = small and cheap, 2 = mid, 3 = strongest). The
//! classifier is an ordinal logistic regression over a few dozen hand-designed features
//! ([`FEATURE_NAMES`]: lengths, code, math, planning verbs, multi-part structure, requested
//! output size, simple-question and formatting-only cues...). Applying it is a few linear scans
//! of the text plus a dot product: about 0.5 µs for a short question and about 50 µs for a
//! dense 2,000-token prompt on one core, with one small allocation (the `reasons` vector).
//!
//! ```
//! use switchyard_api::{ChatMessage, Role};
//! use switchyard_router::ComplexityRouter;
//!
//! let router = ComplexityRouter::embedded()?;
//! let easy = router.classify(&[ChatMessage::new(Role::User, "What is the capital of France?")]);
//! assert_eq!(easy.tier, 1);
//! # Ok::<(), switchyard_router::RouterError>(())
//! ```
//!
//! # Features
//! Every feature is scaled to 0..1 and has a stable name ([`FEATURE_NAMES`]):
//! - sizes: `last_user_tokens`, `instruction_tokens` (the last user message minus pasted
//!   material), `payload_tokens` (fenced code, `>` quotes, the block after "...:"),
//!   `conversation_tokens`, `system_prompt_tokens`, `user_turns` (log-scaled token estimates);
//! - structure: `code_fence`, `code_lines`, `stack_trace_lines`, `math_symbols` (operators,
//!   LaTeX), `numbers`, `list_items`, `extra_questions`, `sentences`, `requested_length`
//!   ("2,000-word", "3 pages"), `simple_question_form` (a short wh-/yes-no question),
//!   `non_ascii`, `avg_word_length`;
//! - cue families (broad word lists with es/fr/de variants, see `src/lexicon.rs`):
//!   `code_terms`, `error_terms`, `math_terms`, `proof_terms`, `reasoning_verbs`,
//!   `system_design_terms`, `multi_part_connectives`, `constraint_terms`, `output_size_terms`,
//!   `long_form_genres`, `expert_domain_terms`, `research_terms`, `wh_question_cues`,
//!   `greeting_cues`, `translate_cues`, `format_only_cues`, `summarize_cues`,
//!   `conversion_cues`, `explain_cues`, `write_verbs`, `short_creative_cues`, `artifact_terms`.
//!
//! Cue words count fully in the instruction, 0.35 in pasted material and 0.25 in earlier turns
//! and system prompts, so that "fix the typos in this paragraph: ..." stays cheap whatever the
//! paragraph is about.
//!
//! # Training
//! [`read_examples`] reads labeled JSONL, [`train`] fits a model with grouped cross-validation
//! and returns a [`TrainReport`], and [`RouterModel::save`] writes the small JSON model file that
//! [`ComplexityRouter::load`] reads back. [`evaluate`] scores a router on labeled examples.
//!
//! The embedded default model (`data/default_model.json`) is trained on the training split of
//! `data/labeled.jsonl` only (rows whose group is not [`is_held_out`]; `data/README.md` describes
//! every data file). Regenerate it after changing features or data with
//!
//! ```text
//! cargo test --release -p switchyard-router --test router_eval -- --ignored regenerate_default_model
//! ```
//!
//! and print the held-out numbers with
//! `cargo test --release -p switchyard-router --test router_eval -- --nocapture`. Apply latency:
//! `cargo run --release -p switchyard-router --example bench_router`.

mod data;
mod error;
mod eval;
mod features;
mod lexicon;
mod model;
mod text;
mod train;

pub use data::{fnv1a, is_held_out, read_examples, split_held_out, Example};
pub use error::RouterError;
pub use eval::{curve, evaluate, CurvePoint, Evaluation};
pub use features::{Features, FEATURE_COUNT, FEATURE_NAMES};
pub use model::{ComplexityRouter, Decision, RouterModel, TrainingSummary, MODEL_FORMAT_VERSION};
pub use train::{train, TrainOptions, TrainReport};
