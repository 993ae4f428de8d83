//! A/B experiments and the feedback tally a bandit can learn from.
//!
//! A `[[router.experiments]]` entry claims a model name; each request for it is assigned an arm
//! by hashing the experiment name, the tenant and the caller's unit (end user or API key) into
//! the arms' weights. The hash is stateless, so every replica assigns a user the same arm with
//! no shared storage, and an arm keeps its users for as long as the weights do not change
//! (changing a weight moves only the users whose bucket crosses a boundary).
//!
//! [`FeedbackStats`] keeps per-model success and failure counts from `POST /v1/feedback`: seeded
//! from the store when the runtime is built (start and every reload), then kept current by the
//! endpoint. The store's `feedback_outcomes` stays the exact record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use switchyard_api::{ChatMessage, MessageContent, Role};
use switchyard_store::ModelFeedback;

use crate::config::RouterConfig;

/// What keeps a caller in the same arm (`sticky_by`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StickyBy {
    /// The OpenAI `user` field, else the API key.
    #[default]
    User,
    /// The API key, whatever the `user`.
    Key,
}

/// How an arm's `system_prompt` meets the client's own system messages
/// (`system_prompt_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    /// The client's system and developer messages are dropped; the arm's comes first.
    #[default]
    Replace,
    /// The arm's prompt goes in front of the client's first system message.
    Prepend,
}

/// One arm: where its traffic goes and which prompt version it tests.
#[derive(Debug)]
pub struct Arm {
    pub name: String,
    pub model: String,
    pub weight: u32,
    pub system_prompt: Option<String>,
    pub system_prompt_mode: PromptMode,
}

#[derive(Debug)]
pub struct Experiment {
    pub name: String,
    pub model: String,
    pub sticky_by: StickyBy,
    pub arms: Vec<Arm>,
    total_weight: u64,
}

impl Experiment {
    pub fn new(name: String, model: String, sticky_by: StickyBy, arms: Vec<Arm>) -> Self {
        Self {
            total_weight: arms.iter().map(|a| u64::from(a.weight)).sum(),
            name,
            model,
            sticky_by,
            arms,
        }
    }

    pub fn arm(&self, name: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The index of the arm `unit` belongs to. Validation guarantees a positive total weight;
    /// without one every unit lands in the first arm rather than failing the request.
    fn bucket(&self, tenant: &str, unit: &Unit<'_>) -> usize {
        if self.total_weight == 0 {
            return 0;
        }
        let mut h = Sha256::new();
        for part in [
            self.name.as_bytes(),
            tenant.as_bytes(),
            unit.kind(),
            unit.id(),
        ] {
            h.update(part);
            // Separators keep ("ab", "c") and ("a", "bc") apart.
            h.update([0u8]);
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // A 64-bit hash modulo a small total: the bias is far below any measurable effect.
        let mut point = u64::from_be_bytes(first) % self.total_weight;
        for (i, arm) in self.arms.iter().enumerate() {
            let w = u64::from(arm.weight);
            if point < w {
                return i;
            }
            point -= w;
        }
        0
    }
}

/// Who stays in one arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit<'a> {
    User(&'a str),
    Key(&'a str),
}

impl<'a> Unit<'a> {
    /// `user` is the request's OpenAI `user` field.
    pub fn of(sticky_by: StickyBy, key_id: &'a str, user: Option<&'a str>) -> Self {
        match (sticky_by, user.filter(|u| !u.is_empty())) {
            (StickyBy::User, Some(u)) => Unit::User(u),
            _ => Unit::Key(key_id),
        }
    }

    // A user named like a key id must not share the key's bucket.
    fn kind(&self) -> &'static [u8] {
        match self {
            Unit::User(_) => b"user",
            Unit::Key(_) => b"key",
        }
    }

    fn id(&self) -> &'a [u8] {
        match self {
            Unit::User(s) | Unit::Key(s) => s.as_bytes(),
        }
    }
}

/// A request's place in an experiment.
#[derive(Debug, Clone)]
pub struct Assignment {
    experiment: Arc<Experiment>,
    arm: usize,
}

impl Assignment {
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    pub fn arm(&self) -> &Arm {
        // In range: `assign` only builds assignments to an existing arm.
        &self.experiment.arms[self.arm]
    }

    /// What the request log keeps under `metadata.experiment`.
    pub fn log_value(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.experiment.name, "arm": self.arm().name })
    }

    /// Puts the arm's prompt version into the conversation; arms without one leave it as sent.
    pub fn apply(&self, messages: &mut Vec<ChatMessage>) {
        let arm = self.arm();
        if let Some(prompt) = &arm.system_prompt {
            apply_system_prompt(messages, prompt, arm.system_prompt_mode);
        }
    }
}

fn apply_system_prompt(messages: &mut Vec<ChatMessage>, prompt: &str, mode: PromptMode) {
    match mode {
        PromptMode::Replace => {
            messages.retain(|m| !matches!(m.role, Role::System | Role::Developer));
            messages.insert(0, ChatMessage::new(Role::System, prompt));
        }
        PromptMode::Prepend => match messages.first_mut() {
            // One system message: some chat templates and providers accept no second one.
            Some(ChatMessage {
                role: Role::System,
                content: Some(MessageContent::Text(text)),
                ..
            }) => *text = format!("{prompt}\n\n{text}"),
            _ => messages.insert(0, ChatMessage::new(Role::System, prompt)),
        },
    }
}

/// The configured experiments, by the model name they claim and by their own name.
#[derive(Debug, Default)]
pub struct Experiments {
    by_model: HashMap<String, Arc<Experiment>>,
    by_name: HashMap<String, Arc<Experiment>>,
    order: Vec<Arc<Experiment>>,
}

impl Experiments {
    pub fn new(config: &RouterConfig) -> Self {
        let mut all = Self::default();
        for c in &config.experiments {
            let arms = c
                .arms
                .iter()
                .map(|a| Arm {
                    name: a.name.clone(),
                    model: a.model.clone(),
                    weight: a.weight,
                    system_prompt: a.system_prompt.clone(),
                    system_prompt_mode: a.system_prompt_mode,
                })
                .collect();
            let e = Experiment::new(c.name.clone(), c.model.clone(), c.sticky_by, arms);
            let e = Arc::new(e);
            all.by_model.insert(e.model.clone(), e.clone());
            all.by_name.insert(e.name.clone(), e.clone());
            all.order.push(e);
        }
        all
    }

    /// The experiment that claims the requested model name, if any.
    pub fn for_model(&self, model: &str) -> Option<&Arc<Experiment>> {
        self.by_model.get(model)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Experiment>> {
        self.by_name.get(name)
    }

    /// In configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Experiment>> {
        self.order.iter()
    }

    /// Whether `model` is an experiment's name for clients.
    pub fn claims(&self, model: &str) -> bool {
        self.by_model.contains_key(model)
    }
}

/// Assigns `unit` of `tenant` an arm of `experiment`; `None` only for an experiment without
/// arms, which configuration validation refuses.
pub fn assign(experiment: &Arc<Experiment>, tenant: &str, unit: Unit<'_>) -> Option<Assignment> {
    let arm = experiment.bucket(tenant, &unit);
    (arm < experiment.arms.len()).then(|| Assignment {
        arm,
        experiment: experiment.clone(),
    })
}

/// Feedback outcomes of one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Feedback with a score above 0.
    pub successes: u64,
    /// Feedback with a score below 0.
    pub failures: u64,
    /// Feedback of exactly 0.
    pub neutral: u64,
}

impl Outcomes {
    fn slot(&mut self, score: f64) -> &mut u64 {
        if score > 0.0 {
            &mut self.successes
        } else if score < 0.0 {
            &mut self.failures
        } else {
            &mut self.neutral
        }
    }
}

/// Per-model feedback outcomes in this replica's memory, for bandits: read with
/// [`FeedbackStats::outcomes`] or [`FeedbackStats::snapshot`]. Models are the ones that
/// answered (`model_used`), so an experiment arm's fallbacks are counted as themselves.
/// Other replicas' feedback arrives at the next reload or restart (which re-read the store).
#[derive(Debug, Default)]
pub struct FeedbackStats {
    models: Mutex<HashMap<String, Outcomes>>,
}

impl FeedbackStats {
    pub fn from_store(rows: &[ModelFeedback]) -> Self {
        let models = rows
            .iter()
            .map(|r| {
                let o = Outcomes {
                    successes: r.successes,
                    failures: r.failures,
                    neutral: r.neutral,
                };
                (r.model.clone(), o)
            })
            .collect();
        Self {
            models: Mutex::new(models),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Outcomes>> {
        // The map is only ever updated whole-count by whole-count; a panic elsewhere cannot
        // leave it half-written, so a poisoned lock is still good data.
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts for `model`; zeros for a model without feedback.
    pub fn outcomes(&self, model: &str) -> Outcomes {
        self.lock().get(model).copied().unwrap_or_default()
    }

    /// Every model's counts, ordered by model name.
    pub fn snapshot(&self) -> BTreeMap<String, Outcomes> {
        self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Counts a verdict on an answer of `model`; `replaced` is the verdict it supersedes on
    /// the same request (model and score), which stops counting.
    pub fn record(&self, model: &str, score: f64, replaced: Option<(&str, f64)>) {
        let mut models = self.lock();
        if let Some((old_model, old_score)) = replaced {
            if let Some(o) = models.get_mut(old_model) {
                let slot = o.slot(old_score);
                *slot = slot.saturating_sub(1);
            }
        }
        let slot = models.entry(model.to_owned()).or_default().slot(score);
        *slot += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(weights: &[u32]) -> Arc<Experiment> {
        let arms = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Arm {
                name: format!("arm{i}"),
                model: format!("m{i}"),
                weight: *w,
                system_prompt: None,
                system_prompt_mode: PromptMode::Replace,
            })
            .collect();
        Arc::new(Experiment::new(
            "exp".into(),
            "assistant".into(),
            StickyBy::User,
            arms,
        ))
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_weights() {
        let e = experiment(&[1, 3]);
        let mut counts = [0u32; 2];
        for i in 0..4000 {
            let user = format!("user-{i}");
            let first = assign(&e, "acme", Unit::User(&user)).unwrap().arm;
            assert_eq!(first, assign(&e, "acme", Unit::User(&user)).unwrap().arm);
            counts[first] += 1;
        }
        // 1:3 within a few percent.
        assert!((850..1150).contains(&counts[0]), "{counts:?}");
        let closed = experiment(&[0, 5]);
        assert!((0..100).all(|i| assign(&closed, "t", Unit::Key(&i.to_string())).unwrap().arm == 1));
        let armless = Arc::new(Experiment::new(
            "e".into(),
            "m".into(),
            StickyBy::Key,
            vec![],
        ));
        assert!(assign(&armless, "t", Unit::Key("k")).is_none());
    }

    #[test]
    fn units_fall_back_to_the_key() {
        assert_eq!(Unit::of(StickyBy::User, "k", Some("u")), Unit::User("u"));
        assert_eq!(Unit::of(StickyBy::User, "k", Some("")), Unit::Key("k"));
        assert_eq!(Unit::of(StickyBy::User, "k", None), Unit::Key("k"));
        assert_eq!(Unit::of(StickyBy::Key, "k", Some("u")), Unit::Key("k"));
    }

    #[test]
    fn prompts_replace_or_prepend() {
        let convo = || {
            vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::Developer, "dev note"),
                ChatMessage::new(Role::User, "hi"),
            ]
        };
        let mut m = convo();
        apply_system_prompt(&mut m, "v2", PromptMode::Replace);
        let texts: Vec<_> = m.iter().map(|m| (m.role, m.text())).collect();
        assert_eq!(
            texts,
            [(Role::System, "v2".into()), (Role::User, "hi".into())]
        );
        let mut m = convo();
        apply_system_prompt(&mut m, "v2", PromptMode::Prepend);
        assert_eq!(m[0].text(), "v2\n\nbe brief");
        assert_eq!(m.len(), 3);
        let mut m = vec![ChatMessage::new(Role::User, "hi")];
        apply_system_prompt(&mut m, "v2", PromptMode::Prepend);
        assert_eq!((m[0].role, m[0].text()), (Role::System, "v2".into()));
    }

    #[test]
    fn feedback_stats_count_and_replace() {
        let s = FeedbackStats::from_store(&[ModelFeedback {
            model: "a".into(),
            successes: 2,
            failures: 0,
            neutral: 0,
        }]);
        s.record("a", -1.0, None);
        s.record("b", 0.0, None);
        // A changed mind: the earlier success on `a` stops counting.
        s.record("a", -0.5, Some(("a", 1.0)));
        assert_eq!(
            s.outcomes("a"),
            Outcomes {
                successes: 1,
                failures: 2,
                neutral: 0
            }
        );
        assert_eq!(s.outcomes("b").neutral, 1);
        assert_eq!(s.outcomes("none"), Outcomes::default());
        assert_eq!(s.snapshot().keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
