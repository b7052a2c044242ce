//! Second-stage ranker: a LightGBM model over (user, candidate) feature vectors. The LightGBM
//! model file is the source of truth; its feature names are checked on load so a model can
//! never be fed columns in the wrong order.

use crate::error::ModelError;
use crate::forest::Forest;
use crate::lgbm_train::{boost, GroupedRows};
use lightgbm3::{Booster, ImportanceType};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the ranker optimizes.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Pointwise log loss: calibrated relevance (click) probabilities, early-stopped on AUC.
    #[default]
    Binary,
    /// Listwise LambdaMART per user query, early-stopped on NDCG@10. Scores are not
    /// probabilities.
    LambdaRank,
}

/// Training knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RankerParams {
    #[serde(default)]
    pub objective: Objective,
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
            objective: Objective::Binary,
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

impl RankerParams {
    /// LightGBM's `key=value` parameter string for these knobs. With query groups both
    /// objectives early-stop on NDCG@10, so their validation numbers compare directly.
    fn lightgbm_parameters(&self, grouped: bool) -> String {
        let objective = match (self.objective, grouped) {
            (Objective::Binary, false) => "objective=binary metric=auc",
            (Objective::Binary, true) => "objective=binary metric=ndcg eval_at=10",
            (Objective::LambdaRank, _) => "objective=lambdarank metric=ndcg eval_at=10",
        };
        format!(
            "{objective} learning_rate={} num_leaves={} min_data_in_leaf={} \
             feature_fraction={} bagging_fraction={} bagging_freq=1 lambda_l2={} seed={} \
             deterministic=true force_row_wise=true num_threads=2 verbosity=-1",
            self.learning_rate,
            self.num_leaves,
            self.min_data_in_leaf,
            self.feature_fraction,
            self.bagging_fraction,
            self.lambda_l2,
            self.seed
        )
    }
}

struct SharedBooster(Booster);

// SAFETY: after training the booster is only read. LightGBM's C API guards prediction with a
// shared lock on the booster, so concurrent `predict` calls from several threads are sound.
unsafe impl Send for SharedBooster {}
unsafe impl Sync for SharedBooster {}

/// A trained LightGBM ranker and the feature names it expects, in order.
pub struct Ranker {
    booster: SharedBooster,
    /// The same trees laid out for fast batch scoring; None when the model needs LightGBM's
    /// own path (see [`Forest::parse`]).
    forest: Option<Forest>,
    feature_names: Vec<String>,
    best_validation: Option<f64>,
    objective: Objective,
}

impl std::fmt::Debug for Ranker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranker")
            .field("features", &self.feature_names)
            .finish()
    }
}

impl Ranker {
    /// Trains with `params.objective`; `valid` enables early stopping on its NDCG@10 when the
    /// rows carry query groups, else on AUC. Lambdarank needs query groups on both sets.
    pub fn train(
        train: GroupedRows<'_>,
        valid: Option<GroupedRows<'_>>,
        feature_names: Vec<String>,
        params: &RankerParams,
    ) -> Result<Self, ModelError> {
        if params.objective == Objective::LambdaRank
            && (train.groups.is_none() || valid.is_some_and(|v| v.groups.is_none()))
        {
            return Err(ModelError::Invalid(
                "lambdarank needs query groups on training and validation rows".into(),
            ));
        }
        let (booster, outcome) = boost(
            train,
            valid,
            &feature_names,
            &params.lightgbm_parameters(valid.is_some_and(|v| v.groups.is_some())),
            params.num_iterations as usize,
            params.early_stopping_rounds as usize,
        )?;
        let forest = compile(&booster, feature_names.len())?;
        Ok(Self {
            booster: SharedBooster(booster),
            forest,
            feature_names,
            best_validation: outcome.best_validation,
            objective: params.objective,
        })
    }

    /// One ranker whose raw score is the mean of `members`' raw scores (for a binary ranker,
    /// the mean logit). Members must share their objective and feature columns; one member is
    /// returned as it is.
    pub fn average(mut members: Vec<Ranker>) -> Result<Self, ModelError> {
        if members.len() == 1 {
            return Ok(members.remove(0));
        }
        let first = members
            .first()
            .ok_or_else(|| ModelError::Invalid("no ranker to average".into()))?;
        let (objective, names) = (first.objective, first.feature_names.clone());
        if let Some(other) = members
            .iter()
            .find(|m| m.objective != objective || m.feature_names != names)
        {
            return Err(ModelError::Invalid(format!(
                "cannot average a {:?} ranker over {:?} with a {objective:?} one over {names:?}",
                other.objective, other.feature_names
            )));
        }
        let texts = members
            .iter()
            .map(|m| m.booster.0.save_string())
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let merged = crate::lgbm_average::average(&refs).map_err(ModelError::Invalid)?;
        crate::lgbm_text::check(&merged, names.len()).map_err(ModelError::Invalid)?;
        Self::parsed(Booster::from_string(&merged)?, names, objective)
    }

    /// A ranker around a booster parsed from text (so without a validation record).
    fn parsed(
        booster: Booster,
        names: Vec<String>,
        objective: Objective,
    ) -> Result<Self, ModelError> {
        let forest = compile(&booster, names.len())?;
        Ok(Self {
            booster: SharedBooster(booster),
            forest,
            feature_names: names,
            best_validation: None,
            objective,
        })
    }

    pub fn objective(&self) -> Objective {
        self.objective
    }

    /// The early-stopping metric (NDCG@10 or AUC) at the kept iteration, when validated.
    pub fn best_validation(&self) -> Option<f64> {
        self.best_validation
    }

    /// Whether `features` holds rows of this model's width: `Ok(false)` when empty, an error
    /// when ragged.
    fn check_rows(&self, features: &[f32]) -> Result<bool, ModelError> {
        let n = self.feature_names.len();
        if features.is_empty() {
            return Ok(false);
        }
        if !features.len().is_multiple_of(n) {
            return Err(ModelError::Invalid(format!(
                "{} values are not rows of {n} features",
                features.len()
            )));
        }
        Ok(true)
    }

    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    pub fn num_trees(&self) -> usize {
        self.booster.0.num_iterations().max(0) as usize
    }

    /// Scores for row-major `features` (`rows × feature_names.len()`): probabilities for the
    /// binary objective, raw scores for lambdarank. Identical to LightGBM's own `predict`,
    /// through the CPU-laid-out [`Forest`] when the model allows it.
    pub fn predict(&self, features: &[f32]) -> Result<Vec<f64>, ModelError> {
        if !self.check_rows(features)? {
            return Ok(Vec::new());
        }
        match &self.forest {
            Some(forest) => Ok(forest.predict(features)),
            None => self.predict_with_lightgbm(features),
        }
    }

    /// Whether [`Ranker::predict`] uses the fast evaluator.
    pub fn uses_forest(&self) -> bool {
        self.forest.is_some()
    }

    /// LightGBM's own prediction, for comparison and for models the forest refuses.
    pub fn predict_with_lightgbm(&self, features: &[f32]) -> Result<Vec<f64>, ModelError> {
        let n = self.feature_names.len();
        if !self.check_rows(features)? {
            return Ok(Vec::new());
        }
        Ok(self
            .booster
            .0
            .predict_with_params(features, n as i32, true, "num_threads=1")?)
    }

    /// Per-feature contributions (SHAP values, in raw-score units) to each row's score, the
    /// `k` largest in magnitude per row, for explanations.
    pub fn top_contributions(
        &self,
        features: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<(String, f64)>>, ModelError> {
        let n = self.feature_names.len();
        if !self.check_rows(features)? {
            return Ok(Vec::new());
        }
        let values = self.booster.0.predict_contrib(features, n as i32, true)?;
        // Each row: one value per feature, then the bias.
        Ok(values
            .chunks(n + 1)
            .map(|row| {
                let mut pairs: Vec<(String, f64)> = self
                    .feature_names
                    .iter()
                    .cloned()
                    .zip(row[..n].iter().copied())
                    .collect();
                pairs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                pairs.truncate(k);
                pairs
            })
            .collect())
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
        // LightGBM's loader can read outside its buffers on a corrupt text (SIGSEGVs found
        // by tests/it/fuzz_inputs.rs); only the shape it writes for recsys's rankers goes in.
        crate::lgbm_text::check(&text, expected.len())
            .map_err(|reason| ModelError::Invalid(format!("{}: {reason}", path.display())))?;
        // lightgbm3 unwraps LightGBM's error text as UTF-8; on some corrupt model files that
        // text is not, and the unwrap panics (found by tests/it/fuzz_inputs.rs). A panic while
        // parsing a file is a refused file, never a crashed server.
        let parsed = std::panic::catch_unwind(|| -> Result<_, ModelError> {
            let booster = Booster::from_string(&text)?;
            let names = booster.feature_name()?;
            Ok((booster, names))
        });
        let (booster, names) = parsed.map_err(|_| {
            ModelError::Invalid(format!(
                "{}: LightGBM could not parse the model (and failed to say why)",
                path.display()
            ))
        })??;
        if names != expected {
            return Err(ModelError::Invalid(format!(
                "{}: model features {names:?} differ from the expected {expected:?}",
                path.display()
            )));
        }
        // The model text names its objective on a line of its own ("objective=lambdarank").
        let objective = if text.lines().any(|l| l.starts_with("objective=lambdarank")) {
            Objective::LambdaRank
        } else {
            Objective::Binary
        };
        Self::parsed(booster, names, objective)
    }
}

/// The booster's trees as a [`Forest`], or None (with the reason logged) when only LightGBM
/// can score the model exactly.
fn compile(booster: &Booster, features: usize) -> Result<Option<Forest>, ModelError> {
    let text = booster.save_string()?;
    match Forest::parse(&text) {
        Ok(forest) if forest.num_features() == features => Ok(Some(forest)),
        Ok(forest) => Err(ModelError::Invalid(format!(
            "the model text has {} features, its names {features}",
            forest.num_features()
        ))),
        Err(reason) => {
            tracing::info!(%reason, "ranker scored by LightGBM itself");
            Ok(None)
        }
    }
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
            GroupedRows {
                features: &xt,
                labels: &yt,
                groups: None,
            },
            Some(GroupedRows {
                features: &xv,
                labels: &yv,
                groups: None,
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
        // Explanations: the planted signal, never the noise column, drives each row's score.
        let top = ranker.top_contributions(&xv[..30], 2).unwrap();
        assert_eq!(top.len(), 10);
        assert!(top
            .iter()
            .all(|row| row.len() == 2 && row.iter().all(|f| f.0 != "noise")));
    }

    /// A binary ranker of `trees` trees on 500 synthetic rows, and those rows.
    fn small_ranker(trees: u32) -> (Ranker, Vec<f32>) {
        small_ranker_from(0, trees, RankerParams::default().seed)
    }

    /// [`small_ranker`] on the 500 rows from `offset`, trained with `seed`.
    fn small_ranker_from(offset: usize, trees: u32, seed: u64) -> (Ranker, Vec<f32>) {
        let (xt, yt) = synthetic(500, offset);
        let params = RankerParams {
            num_iterations: trees,
            min_data_in_leaf: 5,
            seed,
            ..Default::default()
        };
        let grouped = GroupedRows {
            features: &xt,
            labels: &yt,
            groups: None,
        };
        let ranker = Ranker::train(grouped, None, names(), &params).unwrap();
        (ranker, xt)
    }

    #[test]
    fn an_averaged_ranker_scores_the_mean_logit_of_its_members() {
        let (one, xt) = small_ranker(7);
        let (two, _) = small_ranker_from(900, 11, 3);
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let rows = &xt[..90];
        let expected: Vec<f64> = one
            .predict(rows)
            .unwrap()
            .iter()
            .zip(two.predict(rows).unwrap())
            .map(|(a, b)| (logit(*a) + logit(b)) / 2.0)
            .collect();
        let averaged = Ranker::average(vec![one, two]).unwrap();
        assert_eq!(averaged.num_trees(), 18);
        assert!(averaged.uses_forest());
        let fast = averaged.predict(rows).unwrap();
        let native = averaged.predict_with_lightgbm(rows).unwrap();
        for ((want, fast), native) in expected.iter().zip(&fast).zip(&native) {
            assert!((logit(*fast) - want).abs() < 1e-9, "{fast} vs {want}");
            assert!((fast - native).abs() < 1e-12);
        }
        // It saves and loads like any model.
        let path = std::env::temp_dir().join(format!("ranker-avg-{}.txt", std::process::id()));
        averaged.save(&path).unwrap();
        let loaded = Ranker::load(&path, &names()).unwrap();
        assert_eq!(loaded.predict(rows).unwrap(), fast);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn save_load_round_trip_checks_feature_names() {
        let (ranker, xt) = small_ranker(20);
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
    fn a_model_text_lightgbm_could_read_outside_of_is_refused_before_it_parses() {
        let (ranker, _) = small_ranker(3);
        let path = std::env::temp_dir().join(format!("ranker-shape-{}.txt", std::process::id()));
        ranker.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // Without `tree_sizes` LightGBM parses the trees one after another: still a valid
        // model, and one whose trees can be edited without recounting their bytes.
        let sizes_line = text.lines().find(|l| l.starts_with("tree_sizes=")).unwrap();
        let sequential = text.replace(&format!("{sizes_line}\n"), "");
        // The first tree's line `field`, its values rewritten by `edit`.
        let rewrite = |field: &str, edit: &dyn Fn(&mut Vec<String>)| {
            let key = format!("\n{field}=");
            let start = sequential.find(&key).unwrap() + key.len();
            let end = start + sequential[start..].find('\n').unwrap();
            let mut values: Vec<String> = sequential[start..end]
                .split(' ')
                .map(String::from)
                .collect();
            edit(&mut values);
            let (head, tail) = (&sequential[..start], &sequential[end..]);
            format!("{head}{}{tail}", values.join(" "))
        };
        for good in [&text, &sequential] {
            std::fs::write(&path, good).unwrap();
            Ranker::load(&path, &names()).expect("LightGBM's own shape loads");
        }
        let first_size: usize = sizes_line[11..].split(' ').next().unwrap().parse().unwrap();
        let cases = [
            // A size that jumps past the end of the text.
            (
                text.replacen(sizes_line, &format!("tree_sizes={}", first_size + 1000), 1),
                "tree_sizes",
            ),
            (
                rewrite("left_child", &|v| v[0] = "9999".into()),
                "left_child value",
            ),
            (
                rewrite("leaf_value", &|v| {
                    v.pop();
                }),
                "leaf_value has",
            ),
            (
                rewrite("split_feature", &|v| v[0] = "3".into()),
                "split_feature value",
            ),
            (
                rewrite("decision_type", &|v| v[0] = "1".into()),
                "decision_type value",
            ),
            (rewrite("num_cat", &|v| v[0] = "1".into()), "categorical"),
            (
                sequential.replacen("num_tree_per_iteration=1", "num_tree_per_iteration=0", 1),
                "num_tree_per_iteration",
            ),
            // LightGBM scans a tree's line for `=` without stopping at the end of the text.
            (
                sequential.replacen("\nshrinkage=", "\nshrinkage ", 1),
                "has no `=`",
            ),
            (
                text[..text.find("end of trees").unwrap() - 40].to_owned(),
                "end of trees",
            ),
        ];
        for (damaged, expect) in cases {
            std::fs::write(&path, damaged).unwrap();
            let err = Ranker::load(&path, &names()).unwrap_err().to_string();
            assert!(err.contains(expect), "{expect}: {err}");
        }
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn lambdarank_learns_to_put_the_relevant_item_of_each_query_first() {
        // 200 queries of 10 rows; in each, the row with the largest x0 + 0.5·x1 is relevant.
        let (features, _) = synthetic(2000, 0);
        let mut labels = vec![0f32; 2000];
        for q in 0..200 {
            let best = (q * 10..q * 10 + 10)
                .max_by(|&a, &b| {
                    let s = |i: usize| features[i * 3] + 0.5 * features[i * 3 + 1];
                    s(a).total_cmp(&s(b))
                })
                .unwrap();
            labels[best] = 1.0;
        }
        let groups = vec![10i32; 200];
        let split = 150 * 10;
        let params = RankerParams {
            objective: Objective::LambdaRank,
            num_iterations: 100,
            min_data_in_leaf: 5,
            ..Default::default()
        };
        let ranker = Ranker::train(
            GroupedRows {
                features: &features[..split * 3],
                labels: &labels[..split],
                groups: Some(&groups[..150]),
            },
            Some(GroupedRows {
                features: &features[split * 3..],
                labels: &labels[split..],
                groups: Some(&groups[150..]),
            }),
            names(),
            &params,
        )
        .unwrap();
        let ndcg = ranker.best_validation().expect("validated");
        assert!(ndcg > 0.8, "validation NDCG@10 {ndcg}");
        let scores = ranker.predict(&features[split * 3..]).unwrap();
        let top_is_relevant = scores
            .chunks(10)
            .zip(labels[split..].chunks(10))
            .filter(|(s, l)| {
                let top = (0..10).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
                l[top] > 0.5
            })
            .count();
        // A random order puts the relevant row first in 5 of 50 queries.
        assert!(top_is_relevant >= 20, "{top_is_relevant} of 50 queries");
    }

    #[test]
    fn lambdarank_without_groups_or_with_wrong_groups_is_refused() {
        let (x, y) = synthetic(100, 0);
        let params = RankerParams {
            objective: Objective::LambdaRank,
            ..Default::default()
        };
        let rows = GroupedRows {
            features: &x,
            labels: &y,
            groups: None,
        };
        let err = Ranker::train(rows, None, names(), &params).unwrap_err();
        assert!(err.to_string().contains("query groups"), "{err}");
        let wrong = GroupedRows {
            groups: Some(&[60, 30]),
            ..rows
        };
        let err = Ranker::train(wrong, None, names(), &params).unwrap_err();
        assert!(err.to_string().contains("add up to 90"), "{err}");
    }

    #[test]
    fn ragged_input_is_refused() {
        let err = Ranker::train(
            GroupedRows {
                features: &[1.0, 2.0],
                labels: &[1.0],
                groups: None,
            },
            None,
            names(),
            &RankerParams::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ModelError::Invalid(_)));
    }

    /// Rows with NaNs, zeros, values within 1e-35 of zero and negative zero, so LightGBM
    /// learns every missing-value rule.
    fn awkward(n: usize, offset: usize) -> (Vec<f32>, Vec<f32>, Vec<i32>) {
        let (base, labels) = synthetic(n, offset);
        let mut features = Vec::with_capacity(n * 4);
        for (i, row) in base.chunks(3).enumerate() {
            let k = i + offset;
            let x1 = match k % 10 {
                0 | 1 => f32::NAN,
                2 => 0.0,
                3 => -0.0,
                4 => 1e-38,
                _ => row[1],
            };
            let sparse = if k.is_multiple_of(3) {
                0.0
            } else {
                row[0] * 2.0 - 1.0
            };
            features.extend([row[0], x1, row[2], sparse]);
        }
        let groups = vec![25; n / 25];
        (features, labels, groups)
    }

    #[test]
    fn the_forest_scores_exactly_like_lightgbm_for_both_objectives() {
        let names: Vec<String> = ["x0", "x1", "noise", "sparse"].map(String::from).to_vec();
        for objective in [Objective::Binary, Objective::LambdaRank] {
            let (xt, yt, gt) = awkward(3000, 0);
            let (xv, yv, gv) = awkward(500, 7000);
            let params = RankerParams {
                objective,
                num_iterations: 60,
                min_data_in_leaf: 5,
                ..Default::default()
            };
            let ranker = Ranker::train(
                GroupedRows {
                    features: &xt,
                    labels: &yt,
                    groups: Some(&gt),
                },
                Some(GroupedRows {
                    features: &xv,
                    labels: &yv,
                    groups: Some(&gv),
                }),
                names.clone(),
                &params,
            )
            .unwrap();
            assert!(ranker.uses_forest(), "{objective:?}");
            let (mut test, _, _) = awkward(4000, 20_000);
            test.extend([
                f32::NAN,
                f32::NAN,
                f32::NAN,
                f32::NAN,
                0.0,
                -0.0,
                1e-40,
                f32::MAX,
            ]);
            let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            let fast = ranker.predict(&test).unwrap();
            assert_eq!(fast.len(), 4002);
            assert!(
                fast.iter().any(|&p| p != fast[0]),
                "a model that learned something"
            );
            assert_eq!(
                bits(fast.clone()),
                bits(ranker.predict_with_lightgbm(&test).unwrap()),
                "{objective:?}"
            );
            // Trees too large for QuickScorer's bitvectors are walked, to the same bits.
            let walking = ranker.forest.as_ref().unwrap().walking();
            assert_eq!(bits(walking.predict(&test)), bits(fast), "{objective:?}");

            // A saved and reloaded model compiles to the same scores.
            let path = std::env::temp_dir().join(format!(
                "recsys-forest-{}-{objective:?}.txt",
                std::process::id()
            ));
            ranker.save(&path).unwrap();
            let loaded = Ranker::load(&path, &names).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            // The model really has NaN-aware splits (missing type NaN: decision_type 8 or 10).
            let kinds: Vec<u8> = text
                .lines()
                .filter_map(|l| l.strip_prefix("decision_type="))
                .flat_map(|l| l.split(' ').map(|v| v.parse::<u8>().unwrap()))
                .collect();
            assert!(kinds.iter().any(|k| (k >> 2) & 3 == 2), "{kinds:?}");
            assert!(loaded.uses_forest());
            assert_eq!(
                bits(loaded.predict(&test).unwrap()),
                bits(ranker.predict_with_lightgbm(&test).unwrap())
            );
        }
    }
}
