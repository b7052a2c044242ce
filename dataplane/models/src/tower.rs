//! What both halves of the two-tower model share without libtorch: its saved configuration,
//! the file names a version holds it under, and the row-major inputs a tower takes. Training
//! (`recsys-two-tower`, libtorch) writes these; serving reads them with [`crate::UserEncoder`].

use crate::error::ModelError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The configuration beside the weights, as JSON.
pub const CONFIG_FILE: &str = "two_tower.json";
/// Both towers' weights, in the safetensors format, named `user.*` and `item.*`.
pub const WEIGHTS_FILE: &str = "two_tower.safetensors";

/// Hyper-parameters and input shapes; saved beside the weights so a loader rebuilds the same
/// graph.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TwoTowerConfig {
    /// Size of the user id vocabulary; id 0 is reserved for unknown users.
    pub user_vocab: i64,
    /// Size of the item id vocabulary; id 0 is reserved for unknown items.
    pub item_vocab: i64,
    pub user_feature_dim: i64,
    pub item_feature_dim: i64,
    pub id_embedding_dim: i64,
    pub hidden_dim: i64,
    pub output_dim: i64,
    /// Softmax temperature on cosine similarities.
    pub temperature: f64,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Probability of replacing an id by the unknown id during training, which teaches the
    /// towers to serve cold users and items from their features alone.
    pub id_dropout: f64,
    pub seed: u64,
}

impl TwoTowerConfig {
    pub fn new(
        user_vocab: i64,
        item_vocab: i64,
        user_feature_dim: i64,
        item_feature_dim: i64,
    ) -> Self {
        Self {
            user_vocab,
            item_vocab,
            user_feature_dim,
            item_feature_dim,
            id_embedding_dim: 32,
            hidden_dim: 256,
            output_dim: 128,
            temperature: 0.1,
            // Chosen on validation Recall@50 over 5e-4, 1e-3 and 2e-3 (docs/evaluation.md,
            // session 15): at 2e-3 early stopping kept the first epoch.
            learning_rate: 1e-3,
            weight_decay: 1e-5,
            batch_size: 512,
            max_epochs: 30,
            patience: 3,
            id_dropout: 0.1,
            seed: 7,
        }
    }
}

/// Row-major tower inputs: one id (0 = unknown) and `feature_dim` dense features per row.
#[derive(Debug, Clone, Default)]
pub struct TowerInputs {
    pub ids: Vec<i64>,
    pub features: Vec<f32>,
    pub feature_dim: usize,
}

impl TowerInputs {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// An error unless every row has `expected_dim` features.
    pub fn validate(&self, expected_dim: i64, what: &str) -> Result<(), ModelError> {
        if self.feature_dim as i64 != expected_dim
            || self.features.len() != self.ids.len() * self.feature_dim
        {
            return Err(ModelError::Invalid(format!(
                "{what} inputs: {} ids, {} features with dim {} (model expects dim {expected_dim})",
                self.ids.len(),
                self.features.len(),
                self.feature_dim
            )));
        }
        Ok(())
    }
}

/// The configuration saved in `dir` by the trainer.
pub fn read_config(dir: &Path) -> Result<TwoTowerConfig, ModelError> {
    let config_path = dir.join(CONFIG_FILE);
    let json = std::fs::read(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
    serde_json::from_slice(&json)
        .map_err(|e| ModelError::Invalid(format!("{}: {e}", config_path.display())))
}

/// Refuses a configuration whose shapes are implausible for the weights file beside it: every
/// size positive, and the user tower (with `item_vocab` item ids, 1 when only the user side is
/// built) no larger than the file. A corrupt config would otherwise make a loader allocate
/// the impossible (found by tests/it/fuzz_inputs.rs).
pub fn check_config(
    config: &TwoTowerConfig,
    item_vocab: i64,
    dir: &Path,
) -> Result<(), ModelError> {
    let weights = dir.join(WEIGHTS_FILE);
    let file_bytes = std::fs::metadata(&weights)
        .map_err(|e| ModelError::io(&weights, e))?
        .len();
    let invalid =
        |what: String| ModelError::Invalid(format!("{}: {what}", dir.join(CONFIG_FILE).display()));
    for (name, v) in [
        ("user_vocab", config.user_vocab),
        ("item_vocab", config.item_vocab),
        ("id_embedding_dim", config.id_embedding_dim),
        ("hidden_dim", config.hidden_dim),
        ("output_dim", config.output_dim),
    ] {
        if !(1..=1 << 31).contains(&v) {
            return Err(invalid(format!("{name} {v} is not a size")));
        }
    }
    for (name, v) in [
        ("user_feature_dim", config.user_feature_dim),
        ("item_feature_dim", config.item_feature_dim),
    ] {
        if !(0..=1 << 20).contains(&v) {
            return Err(invalid(format!("{name} {v} is not a width")));
        }
    }
    let user_table = (config.user_vocab + item_vocab).checked_mul(config.id_embedding_dim);
    let layers = (config.user_feature_dim + config.id_embedding_dim)
        .checked_mul(config.hidden_dim)
        .zip(config.hidden_dim.checked_mul(config.output_dim));
    let user_values = user_table
        .zip(layers)
        .and_then(|(t, (a, b))| t.checked_add(a)?.checked_add(b));
    match user_values {
        Some(n) if (n as u64).saturating_mul(4) <= file_bytes => Ok(()),
        _ => Err(invalid(format!(
            "its user tower ({user_values:?} values) is larger than the {file_bytes}-byte weights file"
        ))),
    }
}
