use std::path::Path;

use serde::{Deserialize, Serialize};
use switchyard_api::ChatMessage;

use crate::features::{Extractor, Features, FEATURE_COUNT, FEATURE_NAMES};
use crate::RouterError;

/// Version of the model file format; bumped when the meaning of a field changes.
pub const MODEL_FORMAT_VERSION: u32 = 1;

const EMBEDDED_MODEL: &str = include_str!("../data/default_model.json");

/// How many features a [`Decision`] names.
const MAX_REASONS: usize = 3;

/// A trained router: a linear score over named features plus the two tier thresholds.
///
/// `score = sigmoid(bias + Σ weights[i] · feature[i])`; a request goes to tier 3 when
/// `score >= thresholds[1]`, else to tier 2 when `score >= thresholds[0]`, else to tier 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterModel {
    pub version: u32,
    /// Feature names, parallel to `weights`. Features this build knows but the file does not
    /// mention get weight 0, so older model files keep working after features are added.
    pub features: Vec<String>,
    pub weights: Vec<f32>,
    pub bias: f32,
    /// `[t2, t3]`, both in 0..1 with `t2 <= t3`.
    pub thresholds: [f32; 2],
    pub training: TrainingSummary,
}

/// Where a model came from and how well it did in cross-validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub rows: usize,
    /// Rows per tier, tier 1 first.
    #[serde(default)]
    pub tier_counts: [usize; 3],
    pub cv_accuracy: f32,
    #[serde(default)]
    pub cv_tier3_recall: f32,
    #[serde(default)]
    pub cv_tier1_precision: f32,
    #[serde(default)]
    pub l2: f32,
    #[serde(default)]
    pub epochs: usize,
    /// The rule that placed the thresholds, in words.
    #[serde(default)]
    pub threshold_rule: String,
}

impl RouterModel {
    /// Writes the model as pretty JSON (small enough to review in a diff).
    pub fn save(&self, path: &Path) -> Result<(), RouterError> {
        let mut json = serde_json::to_string_pretty(self).map_err(RouterError::Serialize)?;
        json.push('\n');
        std::fs::write(path, json).map_err(|source| RouterError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Weights aligned to [`FEATURE_NAMES`], after checking the model makes sense.
    fn aligned_weights(&self) -> Result<Features, RouterError> {
        if self.version != MODEL_FORMAT_VERSION {
            return Err(RouterError::InvalidModel(format!(
                "format version {} is not supported (expected {MODEL_FORMAT_VERSION})",
                self.version
            )));
        }
        if self.features.len() != self.weights.len() {
            return Err(RouterError::InvalidModel(format!(
                "{} feature names but {} weights",
                self.features.len(),
                self.weights.len()
            )));
        }
        let mut aligned = [0.0f32; FEATURE_COUNT];
        let mut seen = [false; FEATURE_COUNT];
        for (name, &weight) in self.features.iter().zip(&self.weights) {
            let Some(i) = FEATURE_NAMES.iter().position(|n| n == name) else {
                return Err(RouterError::InvalidModel(format!(
                    "unknown feature {name:?} (this build knows: {})",
                    FEATURE_NAMES.join(", ")
                )));
            };
            if seen[i] {
                return Err(RouterError::InvalidModel(format!(
                    "feature {name:?} listed twice"
                )));
            }
            if !weight.is_finite() {
                return Err(RouterError::InvalidModel(format!(
                    "weight of {name:?} is not finite"
                )));
            }
            seen[i] = true;
            aligned[i] = weight;
        }
        let [t2, t3] = self.thresholds;
        let in_range = |t: f32| (0.0..=1.0).contains(&t);
        if !self.bias.is_finite() || !in_range(t2) || !in_range(t3) || t2 > t3 {
            return Err(RouterError::InvalidModel(format!(
                "bias {} / thresholds [{t2}, {t3}]: need a finite bias and 0 <= t2 <= t3 <= 1",
                self.bias
            )));
        }
        Ok(aligned)
    }
}

/// The routing verdict for one request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// 1, 2 or 3: the lowest tier the request needs.
    pub tier: u8,
    /// 0..1, how demanding the request looks; the tier is the highest threshold it reaches.
    pub score: f32,
    /// The features that pushed the score most, as (name, contribution to the logit), strongest
    /// first, for the `x-switchyard-route` header and the request log.
    pub reasons: Vec<(&'static str, f32)>,
}

/// Applies a [`RouterModel`] to conversations. Immutable after construction, so one instance can
/// be shared across request handlers behind an `Arc`.
pub struct ComplexityRouter {
    model: RouterModel,
    weights: Features,
    extractor: Extractor,
}

impl std::fmt::Debug for ComplexityRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComplexityRouter")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ComplexityRouter {
    /// The default model shipped inside the crate (`data/default_model.json`).
    pub fn embedded() -> Result<Self, RouterError> {
        let model = serde_json::from_str(EMBEDDED_MODEL).map_err(RouterError::Embedded)?;
        Self::from_model(model)
    }

    /// Loads a model file written by [`RouterModel::save`].
    pub fn load(path: &Path) -> Result<Self, RouterError> {
        let text = std::fs::read_to_string(path).map_err(|source| RouterError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let model = serde_json::from_str(&text).map_err(|source| RouterError::ModelJson {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_model(model).map_err(|e| match e {
            RouterError::InvalidModel(msg) => {
                RouterError::InvalidModel(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }

    pub fn from_model(model: RouterModel) -> Result<Self, RouterError> {
        let weights = model.aligned_weights()?;
        Ok(Self {
            model,
            weights,
            extractor: Extractor::new()?,
        })
    }

    /// Scores a conversation. Every message counts; the last user message counts most, system
    /// prompts and earlier turns act as context.
    pub fn classify(&self, messages: &[ChatMessage]) -> Decision {
        let features = self.extractor.extract(messages);
        self.decide(&features)
    }

    /// The features the router computes for a conversation, in [`FEATURE_NAMES`] order; for
    /// debugging a surprising decision.
    pub fn features(&self, messages: &[ChatMessage]) -> Features {
        self.extractor.extract(messages)
    }

    pub fn model(&self) -> &RouterModel {
        &self.model
    }

    pub(crate) fn decide(&self, features: &Features) -> Decision {
        let mut contributions = [0.0f32; FEATURE_COUNT];
        let mut logit = self.model.bias;
        for (i, (w, x)) in self.weights.iter().zip(features).enumerate() {
            contributions[i] = w * x;
            logit += contributions[i];
        }
        let score = sigmoid(logit);
        let [t2, t3] = self.model.thresholds;
        let tier = if score >= t3 {
            3
        } else if score >= t2 {
            2
        } else {
            1
        };
        Decision {
            tier,
            score,
            reasons: top_reasons(&contributions),
        }
    }
}

fn top_reasons(contributions: &Features) -> Vec<(&'static str, f32)> {
    // Selection over a fixed-size array: no sort, no allocation beyond the result.
    let mut picked = [usize::MAX; MAX_REASONS];
    let mut reasons = Vec::with_capacity(MAX_REASONS);
    for slot in 0..MAX_REASONS {
        let mut best: Option<usize> = None;
        for (i, c) in contributions.iter().enumerate() {
            if picked[..slot].contains(&i) || c.abs() < 0.05 {
                continue;
            }
            if best.is_none_or(|b| c.abs() > contributions[b].abs()) {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        picked[slot] = i;
        reasons.push((FEATURE_NAMES[i], contributions[i]));
    }
    reasons
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(weights: &[(&str, f32)], bias: f32, thresholds: [f32; 2]) -> RouterModel {
        RouterModel {
            version: MODEL_FORMAT_VERSION,
            features: weights.iter().map(|(n, _)| (*n).to_string()).collect(),
            weights: weights.iter().map(|(_, w)| *w).collect(),
            bias,
            thresholds,
            training: TrainingSummary::default(),
        }
    }

    #[test]
    fn router_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ComplexityRouter>();
        assert_send_sync::<Decision>();
    }

    #[test]
    fn rejects_bad_models() {
        let bad = [
            model(&[("no_such_feature", 1.0)], 0.0, [0.3, 0.6]),
            model(&[("code_fence", f32::NAN)], 0.0, [0.3, 0.6]),
            model(&[("code_fence", 1.0)], 0.0, [0.7, 0.6]),
            model(&[("code_fence", 1.0), ("code_fence", 1.0)], 0.0, [0.3, 0.6]),
        ];
        for m in bad {
            assert!(ComplexityRouter::from_model(m).is_err());
        }
        let mut m = model(&[], 0.0, [0.3, 0.6]);
        m.version = 99;
        let err = ComplexityRouter::from_model(m).unwrap_err().to_string();
        assert!(err.contains("version 99"), "{err}");
    }

    #[test]
    fn tiers_follow_thresholds_and_reasons_are_ordered() {
        let m = model(
            &[("code_fence", 3.0), ("user_turns", -0.01)],
            -2.0,
            [0.4, 0.7],
        );
        let router = ComplexityRouter::from_model(m).unwrap();
        let mut f = [0.0; FEATURE_COUNT];
        assert_eq!(router.decide(&f).tier, 1);
        let i = FEATURE_NAMES
            .iter()
            .position(|n| *n == "code_fence")
            .unwrap();
        f[i] = 1.0;
        let d = router.decide(&f);
        assert_eq!(d.tier, 3);
        assert_eq!(d.reasons, vec![("code_fence", 3.0)]);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = std::env::temp_dir().join(format!("router-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.json");
        let m = model(&[("code_fence", 1.5)], -0.5, [0.3, 0.6]);
        m.save(&path).unwrap();
        let loaded = ComplexityRouter::load(&path).unwrap();
        assert_eq!(loaded.model(), &m);
        std::fs::write(&path, "{not json").unwrap();
        let err = ComplexityRouter::load(&path).unwrap_err().to_string();
        assert!(err.contains("m.json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
