//! Second-stage ranker: a LightGBM model over (user, candidate) feature vectors. The LightGBM
//! model file is the source of truth; its feature names are checked on load so a model can
//! never be fed columns in the wrong order.

use crate::error::ModelError;
use lightgbm3::{Booster, Dataset, ImportanceType};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// Training knobs for the binary (click/relevance) objective.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankerParams {
    pub num_iterations: u32,
    pub learning_rate: f64,
    pub num_leaves: u32,
    pub min_data_in_leaf: u32,
    pub feature_fraction: f64,
    pub bagging_fraction: f64,
    pub lambda_l2: f64,
    pub early_stopping_rounds: u32,
    pub seed: u64,
}

impl Default for RankerParams {
    fn default() -> Self {
        Self {
            num_iterations: 300,
            learning_rate: 0.05,
            num_leaves: 31,
            min_data_in_leaf: 50,
            feature_fraction: 0.9,
            bagging_fraction: 0.8,
            lambda_l2: 1.0,
            early_stopping_rounds: 30,
            seed: 7,
        }
    }
}

/// Row-major features with one label per row.
#[derive(Debug, Clone, Copy)]
pub struct LabelledRows<'a> {
    pub features: &'a [f32],
    pub labels: &'a [f32],
}

struct SharedBooster(Booster);

// SAFETY: after training the booster is only read. LightGBM's C API guards prediction with a
// shared lock on the booster, so concurrent `predict` calls from several threads are sound.
unsafe impl Send for SharedBooster {}
unsafe impl Sync for SharedBooster {}

/// A trained LightGBM ranker and the feature names it expects, in order.
pub struct Ranker {
    booster: SharedBooster,
    feature_names: Vec<String>,
}

impl std::fmt::Debug for Ranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranker")
            .field("features", &self.feature_names)
            .finish()
    }
}

impl Ranker {
    /// Trains with the binary objective; `valid` enables early stopping on its AUC.
    pub fn train(
        train: LabelledRows<'_>,
        valid: Option<LabelledRows<'_>>,
        feature_names: Vec<String>,
        params: &RankerParams,
    ) -> Result<Self, ModelError> {
        let n_features = feature_names.len();
        check_shape(train, n_features, "training")?;
        let mut dataset =
            Dataset::from_slice(train.features, train.labels, n_features as i32, true)?;
        dataset.set_feature_names(&feature_names)?;
        let valid_dataset = match valid {
            Some(rows) => {
                check_shape(rows, n_features, "validation")?;
                Some(Dataset::from_slice_with_reference(
                    rows.features,
                    rows.labels,
                    n_features as i32,
                    true,
                    Some(&dataset),
                )?)
            }
            None => None,
        };
        let mut config = json!({
            "objective": "binary",
            "metric": "auc",
            "num_iterations": params.num_iterations,
            "learning_rate": params.learning_rate,
            "num_leaves": params.num_leaves,
            "min_data_in_leaf": params.min_data_in_leaf,
            "feature_fraction": params.feature_fraction,
            "bagging_fraction": params.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": params.lambda_l2,
            "seed": params.seed,
            "deterministic": true,
            "num_threads": 2,
            "verbosity": -1,
        });
        if valid_dataset.is_some() && params.early_stopping_rounds > 0 {
            config["early_stopping_rounds"] = json!(params.early_stopping_rounds);
        }
        let booster = Booster::train_with_valid(dataset, valid_dataset, &config)?;
        Ok(Self {
            booster: SharedBooster(booster),
            feature_names,
        })
    }

    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    pub fn num_trees(&self) -> usize {
        self.booster.0.num_iterations().max(0) as usize
    }

    /// Probabilities for row-major `features` (`rows × feature_names.len()`).
    pub fn predict(&self, features: &[f32]) -> Result<Vec<f64>, ModelError> {
        let n = self.feature_names.len();
        if features.is_empty() {
            return Ok(Vec::new());
        }
        if !features.len().is_multiple_of(n) {
            return Err(ModelError::Invalid(format!(
                "{} values are not rows of {n} features",
                features.len()
            )));
        }
        Ok(self
            .booster
            .0
            .predict_with_params(features, n as i32, true, "num_threads=1")?)
    }

    /// Gain importance per feature, largest first.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64)>, ModelError> {
        let gains = self.booster.0.feature_importance(ImportanceType::Gain)?;
        let mut pairs: Vec<(String, f64)> = self.feature_names.iter().cloned().zip(gains).collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(pairs)
    }

    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
        }
        self.booster.0.save_file(path.to_string_lossy().as_ref())?;
        Ok(())
    }

    /// Loads a model file and refuses it unless its features are exactly `expected`, in order.
    pub fn load(path: &Path, expected: &[String]) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let booster = Booster::from_string(&text)?;
        let names = booster.feature_name()?;
        if names != expected {
            return Err(ModelError::Invalid(format!(
                "{}: model features {names:?} differ from the expected {expected:?}",
                path.display()
            )));
        }
        Ok(Self {
            booster: SharedBooster(booster),
            feature_names: names,
        })
    }
}

fn check_shape(rows: LabelledRows<'_>, n_features: usize, what: &str) -> Result<(), ModelError> {
    if n_features == 0
        || rows.features.len() != rows.labels.len() * n_features
        || rows.labels.is_empty()
    {
        return Err(ModelError::Invalid(format!(
            "{what} data: {} values for {} labels and {n_features} features",
            rows.features.len(),
            rows.labels.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Label is 1 when x0 + 0.5·x1 > 0.8, plus a noise column.
    fn synthetic(n: usize, offset: usize) -> (Vec<f32>, Vec<f32>) {
        let mut features = Vec::with_capacity(n * 3);
        let mut labels = Vec::with_capacity(n);
        for i in offset..offset + n {
            let x0 = ((i * 37) % 101) as f32 / 100.0;
            let x1 = ((i * 53) % 89) as f32 / 88.0;
            let noise = ((i * 17) % 13) as f32;
            features.extend([x0, x1, noise]);
            labels.push(f32::from(u8::from(x0 + 0.5 * x1 > 0.8)));
        }
        (features, labels)
    }

    fn names() -> Vec<String> {
        vec!["x0".into(), "x1".into(), "noise".into()]
    }

    #[test]
    fn trains_predicts_and_learns_the_signal() {
        let (xt, yt) = synthetic(2000, 0);
        let (xv, yv) = synthetic(500, 5000);
        let params = RankerParams {
            num_iterations: 100,
            min_data_in_leaf: 10,
            ..Default::default()
        };
        let ranker = Ranker::train(
            LabelledRows {
                features: &xt,
                labels: &yt,
            },
            Some(LabelledRows {
                features: &xv,
                labels: &yv,
            }),
            names(),
            &params,
        )
        .unwrap();
        let p = ranker.predict(&xv).unwrap();
        assert_eq!(p.len(), 500);
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        let accuracy = p
            .iter()
            .zip(&yv)
            .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
            .count() as f64
            / 500.0;
        assert!(accuracy > 0.9, "accuracy {accuracy}");
        let importance = ranker.feature_importance().unwrap();
        assert_eq!(importance.last().unwrap().0, "noise");
    }

    #[test]
    fn save_load_round_trip_checks_feature_names() {
        let (xt, yt) = synthetic(500, 0);
        let params = RankerParams {
            num_iterations: 20,
            min_data_in_leaf: 5,
            ..Default::default()
        };
        let ranker = Ranker::train(
            LabelledRows {
                features: &xt,
                labels: &yt,
            },
            None,
            names(),
            &params,
        )
        .unwrap();
        let path = std::env::temp_dir().join(format!("ranker-{}.txt", std::process::id()));
        ranker.save(&path).unwrap();
        let loaded = Ranker::load(&path, &names()).unwrap();
        assert_eq!(
            ranker.predict(&xt[..30]).unwrap(),
            loaded.predict(&xt[..30]).unwrap()
        );

        let wrong: Vec<String> = vec!["x1".into(), "x0".into(), "noise".into()];
        let err = Ranker::load(&path, &wrong).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");

        std::fs::write(&path, "tree\nversion=v4\ngarbage").unwrap();
        assert!(Ranker::load(&path, &names()).is_err());
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn ragged_input_is_refused() {
        let err = Ranker::train(
            LabelledRows {
                features: &[1.0, 2.0],
                labels: &[1.0],
            },
            None,
            names(),
            &RankerParams::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ModelError::Invalid(_)));
    }
}
