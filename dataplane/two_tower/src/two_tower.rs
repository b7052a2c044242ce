//! Two-tower retrieval model in libtorch: a user tower and an item tower map ids and features to
//! L2-normalised 128-d vectors, so a dot product is a cosine similarity an ANN index can search.
//!
//! Each tower is the seed's `Dense 256 → ReLU → BatchNorm → Dense 128 → ReLU → Dense 128 → L2`,
//! fed with a learned id embedding concatenated with dense features. Training uses in-batch
//! negatives (sampled softmax) with a log-q correction so popular items are not over-penalised
//! for appearing as negatives more often, and early stopping on a validation score.

use crate::error::TowerError;
use indicatif::{ProgressBar, ProgressStyle};
use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use recsys_models::tower::{self, CONFIG_FILE, WEIGHTS_FILE};
use recsys_models::user_encoder::{Array, UserEncoder};
use recsys_models::{TowerInputs, TwoTowerConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

/// The rows `rows` of `inputs` as an id tensor and a `rows × feature_dim` feature tensor.
fn gather(inputs: &TowerInputs, rows: &[usize]) -> (Tensor, Tensor) {
    let ids: Vec<i64> = rows.iter().map(|&r| inputs.ids[r]).collect();
    let mut features = Vec::with_capacity(rows.len() * inputs.feature_dim);
    for &r in rows {
        features.extend_from_slice(
            &inputs.features[r * inputs.feature_dim..(r + 1) * inputs.feature_dim],
        );
    }
    (
        Tensor::from_slice(&ids),
        Tensor::from_slice(&features).view([rows.len() as i64, inputs.feature_dim as i64]),
    )
}

#[derive(Debug)]
struct Tower {
    id_embedding: nn::Embedding,
    dense1: nn::Linear,
    norm: nn::BatchNorm,
    dense2: nn::Linear,
    dense3: nn::Linear,
}

impl Tower {
    fn new(path: nn::Path, vocab: i64, feature_dim: i64, config: &TwoTowerConfig) -> Self {
        let input = config.id_embedding_dim + feature_dim;
        Self {
            id_embedding: nn::embedding(
                &path / "id",
                vocab,
                config.id_embedding_dim,
                Default::default(),
            ),
            dense1: nn::linear(
                &path / "dense1",
                input,
                config.hidden_dim,
                Default::default(),
            ),
            norm: nn::batch_norm1d(&path / "norm", config.hidden_dim, Default::default()),
            dense2: nn::linear(
                &path / "dense2",
                config.hidden_dim,
                config.output_dim,
                Default::default(),
            ),
            dense3: nn::linear(
                &path / "dense3",
                config.output_dim,
                config.output_dim,
                Default::default(),
            ),
        }
    }

    fn forward_t(&self, ids: &Tensor, features: &Tensor, train: bool) -> Tensor {
        let x = Tensor::cat(
            &[self.id_embedding.forward(ids), features.shallow_clone()],
            1,
        );
        let x = self.dense1.forward(&x).relu().apply_t(&self.norm, train);
        let x = self.dense2.forward(&x).relu();
        let x = self.dense3.forward(&x);
        let norm = x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        x / norm
    }
}

/// Where training runs: the first CUDA device when the crate is built with the `cuda` feature
/// and libtorch sees a GPU, else the CPU. Inference after training is always on the CPU.
pub fn training_device() -> Device {
    if cfg!(feature = "cuda") {
        Device::cuda_if_available()
    } else {
        Device::Cpu
    }
}

/// Scores a model during training (higher is better), for early stopping.
pub type Validator<'a> = dyn FnMut(&TwoTower) -> Result<f64, TowerError> + 'a;

/// A trained (or freshly initialised) two-tower model.
#[derive(Debug)]
pub struct TwoTower {
    config: TwoTowerConfig,
    vs: nn::VarStore,
    user_tower: Tower,
    item_tower: Tower,
    device: Device,
}

/// What training did: epochs run, the best validation score and the epoch it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_validation: f64,
    pub final_train_loss: f64,
    pub validation_history: Vec<f64>,
}

impl TwoTower {
    /// A freshly initialised model on the CPU.
    pub fn new(config: TwoTowerConfig) -> Self {
        Self::on_device(config, Device::Cpu)
    }

    fn on_device(config: TwoTowerConfig, device: Device) -> Self {
        tch::manual_seed(config.seed as i64);
        let vs = nn::VarStore::new(device);
        let user_tower = Tower::new(
            vs.root() / "user",
            config.user_vocab,
            config.user_feature_dim,
            &config,
        );
        let item_tower = Tower::new(
            vs.root() / "item",
            config.item_vocab,
            config.item_feature_dim,
            &config,
        );
        Self {
            config,
            vs,
            user_tower,
            item_tower,
            device,
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    fn move_to_cpu(&mut self) {
        self.vs.set_device(Device::Cpu);
        self.device = Device::Cpu;
    }

    pub fn config(&self) -> &TwoTowerConfig {
        &self.config
    }

    /// One optimisation step on a batch of (user row, item row) positives; returns the loss.
    pub fn train_step(
        &self,
        optimizer: &mut nn::Optimizer,
        users: &TowerInputs,
        items: &TowerInputs,
        batch: &[(usize, usize)],
        item_log_q: &[f32],
    ) -> f64 {
        let user_rows: Vec<usize> = batch.iter().map(|p| p.0).collect();
        let item_rows: Vec<usize> = batch.iter().map(|p| p.1).collect();
        let d = self.device;
        let (user_ids, user_features) = gather(users, &user_rows);
        let (item_ids, item_features) = gather(items, &item_rows);
        let (user_ids, user_features) = (user_ids.to_device(d), user_features.to_device(d));
        let (item_ids, item_features) = (item_ids.to_device(d), item_features.to_device(d));
        let user_ids = self.drop_ids(&user_ids);
        let item_ids = self.drop_ids(&item_ids);

        let u = self.user_tower.forward_t(&user_ids, &user_features, true);
        let v = self.item_tower.forward_t(&item_ids, &item_features, true);
        let log_q: Vec<f32> = item_rows
            .iter()
            .map(|&r| item_log_q.get(r).copied().unwrap_or(0.0))
            .collect();
        let log_q = Tensor::from_slice(&log_q).to_device(d);

        let n = batch.len() as i64;
        let logits = u.matmul(&v.tr()) / self.config.temperature - log_q.unsqueeze(0);
        // The same item twice in a batch is not a negative for either row.
        let rows = Tensor::from_slice(&item_rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
            .to_device(d);
        let same_item = rows.unsqueeze(0).eq_tensor(&rows.unsqueeze(1));
        let off_diagonal = Tensor::eye(n, (Kind::Bool, d)).logical_not();
        let logits = logits.masked_fill(&same_item.logical_and(&off_diagonal), -1e9);
        let targets = Tensor::arange(n, (Kind::Int64, d));
        let loss = logits.cross_entropy_for_logits(&targets);
        optimizer.backward_step(&loss);
        loss.double_value(&[])
    }

    fn drop_ids(&self, ids: &Tensor) -> Tensor {
        if self.config.id_dropout <= 0.0 {
            return ids.shallow_clone();
        }
        let drop =
            Tensor::rand([ids.size()[0]], (Kind::Float, self.device)).lt(self.config.id_dropout);
        ids.masked_fill(&drop, 0)
    }

    /// Trains on `positives` (user row, item row). Without `weights` each epoch visits every
    /// positive once in a shuffled order; with them (one per positive, non-negative) each epoch
    /// draws as many positives with replacement, in proportion to their weight. With `validate`
    /// (higher is better) it stops early and keeps the best epoch's weights; without, it runs
    /// `max_epochs` and keeps the last.
    pub fn fit(
        config: TwoTowerConfig,
        users: &TowerInputs,
        items: &TowerInputs,
        positives: &[(usize, usize)],
        weights: Option<&[f64]>,
        item_log_q: &[f32],
        mut validate: Option<&mut Validator<'_>>,
    ) -> Result<(Self, TrainReport), TowerError> {
        users.validate(config.user_feature_dim, "user")?;
        items.validate(config.item_feature_dim, "item")?;
        if positives.is_empty() {
            return Err(TowerError::invalid("no training interactions".into()));
        }
        if let Some(&(u, i)) = positives
            .iter()
            .find(|&&(u, i)| u >= users.len() || i >= items.len())
        {
            return Err(TowerError::invalid(format!(
                "pair ({u}, {i}) is outside the tower inputs"
            )));
        }
        let sampler = weights
            .map(|w| {
                if w.len() != positives.len() {
                    return Err(TowerError::invalid(format!(
                        "{} sampling weights for {} positives",
                        w.len(),
                        positives.len()
                    )));
                }
                WeightedIndex::new(w)
                    .map_err(|e| TowerError::invalid(format!("sampling weights: {e}")))
            })
            .transpose()?;
        let mut model = Self::on_device(config.clone(), training_device());
        let mut optimizer = nn::Adam {
            wd: config.weight_decay,
            ..Default::default()
        }
        .build(&model.vs, config.learning_rate)?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut order: Vec<(usize, usize)> = positives.to_vec();
        let mut report = TrainReport {
            epochs_run: 0,
            best_epoch: 0,
            best_validation: f64::NEG_INFINITY,
            final_train_loss: f64::NAN,
            validation_history: Vec::new(),
        };
        let mut best_weights: Option<Vec<(String, Tensor)>> = None;
        let steps_per_epoch = order.len().div_ceil(config.batch_size);
        let bar = ProgressBar::new((config.max_epochs * steps_per_epoch) as u64).with_style(
            ProgressStyle::with_template("two-tower {bar:30} epoch {msg} [{elapsed}<{eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );

        for epoch in 1..=config.max_epochs {
            match &sampler {
                None => order.shuffle(&mut rng),
                Some(sampler) => {
                    for slot in order.iter_mut() {
                        *slot = positives[sampler.sample(&mut rng)];
                    }
                }
            }
            let mut loss_sum = 0.0;
            let mut batches = 0usize;
            // A batch of one has no negatives; skip the tail in that case.
            for batch in order.chunks(config.batch_size).filter(|b| b.len() > 1) {
                loss_sum += model.train_step(&mut optimizer, users, items, batch, item_log_q);
                batches += 1;
                bar.inc(1);
            }
            report.final_train_loss = loss_sum / batches.max(1) as f64;
            report.epochs_run = epoch;
            let Some(validate) = validate.as_mut() else {
                bar.set_message(format!("{epoch} loss {:.3}", report.final_train_loss));
                report.best_epoch = epoch;
                continue;
            };
            let score = validate(&model)?;
            report.validation_history.push(score);
            bar.set_message(format!(
                "{epoch} loss {:.3} val {score:.4}",
                report.final_train_loss
            ));
            if score > report.best_validation {
                report.best_validation = score;
                report.best_epoch = epoch;
                best_weights = Some(model.snapshot());
            } else if epoch - report.best_epoch >= config.patience {
                break;
            }
        }
        bar.finish_and_clear();
        if let Some(weights) = best_weights {
            model.restore(&weights);
        }
        model.move_to_cpu();
        Ok((model, report))
    }

    fn snapshot(&self) -> Vec<(String, Tensor)> {
        tch::no_grad(|| {
            self.vs
                .variables()
                .into_iter()
                .map(|(name, t)| (name, t.copy()))
                .collect()
        })
    }

    fn restore(&self, weights: &[(String, Tensor)]) {
        let mut live = self.vs.variables();
        tch::no_grad(|| {
            for (name, saved) in weights {
                if let Some(t) = live.get_mut(name) {
                    t.copy_(saved);
                }
            }
        });
    }

    /// User embeddings, `inputs.len() × output_dim`, row-major.
    pub fn embed_users(&self, inputs: &TowerInputs) -> Result<Vec<f32>, TowerError> {
        inputs.validate(self.config.user_feature_dim, "user")?;
        self.embed(&self.user_tower, inputs)
    }

    /// The user tower as plain Rust, for serving: no libtorch and no lock on the request path.
    pub fn user_encoder(&self) -> Result<UserEncoder, TowerError> {
        let mut arrays: HashMap<String, Array> = HashMap::new();
        for (name, t) in self.vs.variables() {
            if name.starts_with("user.") {
                let flat = t.to_device(Device::Cpu).flatten(0, -1).contiguous();
                arrays.insert(name, (Vec::<f32>::try_from(&flat)?, t.size()));
            }
        }
        Ok(UserEncoder::from_arrays(
            &arrays,
            self.config.user_feature_dim as usize,
        )?)
    }

    /// Item embeddings, `inputs.len() × output_dim`, row-major.
    pub fn embed_items(&self, inputs: &TowerInputs) -> Result<Vec<f32>, TowerError> {
        inputs.validate(self.config.item_feature_dim, "item")?;
        self.embed(&self.item_tower, inputs)
    }

    fn embed(&self, tower: &Tower, inputs: &TowerInputs) -> Result<Vec<f32>, TowerError> {
        let mut out = Vec::with_capacity(inputs.len() * self.config.output_dim as usize);
        let rows: Vec<usize> = (0..inputs.len()).collect();
        tch::no_grad(|| -> Result<(), TowerError> {
            for chunk in rows.chunks(4096) {
                let (ids, features) = gather(inputs, chunk);
                let (ids, features) = (ids.to_device(self.device), features.to_device(self.device));
                let vectors = tower
                    .forward_t(&ids, &features, false)
                    .to_device(Device::Cpu)
                    .contiguous();
                out.extend(Vec::<f32>::try_from(vectors.view([-1]))?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Writes the weights (safetensors) and the config (JSON) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TowerError> {
        std::fs::create_dir_all(dir).map_err(|e| TowerError::io(dir, e))?;
        let config_path = dir.join(CONFIG_FILE);
        let json = serde_json::to_vec_pretty(&self.config)
            .map_err(|e| TowerError::invalid(e.to_string()))?;
        std::fs::write(&config_path, json).map_err(|e| TowerError::io(&config_path, e))?;
        self.vs.save(dir.join(WEIGHTS_FILE))?;
        Ok(())
    }

    /// Loads a model saved by [`TwoTower::save`]; a missing, truncated or mismatched weight file
    /// is an error, never a half-initialised model.
    pub fn load(dir: &Path) -> Result<Self, TowerError> {
        let config = tower::read_config(dir)?;
        let mut model = Self::build_checked(config.clone(), &config, dir)?;
        model.vs.load(dir.join(WEIGHTS_FILE))?;
        Ok(model)
    }

    /// The model `build` describes, once `config`'s shapes are plausible for the weights file
    /// beside it ([`tower::check_config`]). A corrupt config would otherwise make libtorch
    /// allocate the impossible, and tch panics (found by tests/it/fuzz_inputs.rs).
    fn build_checked(
        build: TwoTowerConfig,
        config: &TwoTowerConfig,
        dir: &Path,
    ) -> Result<Self, TowerError> {
        tower::check_config(config, build.item_vocab, dir)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::new(build))).map_err(|_| {
            TowerError::invalid(format!(
                "{}: libtorch could not build the model it describes",
                dir.join(CONFIG_FILE).display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(n: usize, dim: usize) -> TowerInputs {
        TowerInputs {
            ids: (1..=n as i64).collect(),
            features: (0..n * dim).map(|i| ((i % 7) as f32) / 7.0).collect(),
            feature_dim: dim,
        }
    }

    fn tiny_config() -> TwoTowerConfig {
        TwoTowerConfig {
            batch_size: 16,
            max_epochs: 3,
            ..TwoTowerConfig::new(21, 31, 3, 2)
        }
    }

    #[test]
    fn embeddings_are_unit_vectors_of_the_configured_width() {
        let model = TwoTower::new(tiny_config());
        let users = inputs(5, 3);
        let e = model.embed_users(&users).unwrap();
        assert_eq!(e.len(), 5 * 128);
        for row in e.chunks(128) {
            let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        }
    }

    #[test]
    fn training_uses_the_cpu_without_the_cuda_feature_and_returns_a_cpu_model() {
        if !cfg!(feature = "cuda") {
            assert_eq!(training_device(), Device::Cpu);
        }
        let config = tiny_config();
        let users = inputs(20, 3);
        let items = inputs(30, 2);
        let positives: Vec<(usize, usize)> = (0..60).map(|i| (i % 20, (i * 7) % 30)).collect();
        let (model, report) =
            TwoTower::fit(config, &users, &items, &positives, None, &[0.0; 30], None).unwrap();
        assert_eq!(model.device(), Device::Cpu, "serving expects CPU weights");
        assert_eq!(report.epochs_run, 3);
    }

    #[test]
    fn an_optimizer_step_changes_the_weights_and_lowers_the_loss() {
        let model = TwoTower::new(tiny_config());
        let users = inputs(20, 3);
        let items = inputs(30, 2);
        let mut opt = nn::Adam::default().build(&model.vs, 1e-2).unwrap();
        let batch: Vec<(usize, usize)> = (0..16).map(|i| (i, (i * 7) % 30)).collect();
        let log_q = vec![0.0; 30];
        let before = model.embed_items(&items).unwrap();
        let first = model.train_step(&mut opt, &users, &items, &batch, &log_q);
        let mut last = first;
        for _ in 0..30 {
            last = model.train_step(&mut opt, &users, &items, &batch, &log_q);
        }
        let after = model.embed_items(&items).unwrap();
        assert_ne!(before, after);
        assert!(last < first, "loss went from {first} to {last}");

        // Training moved the batch-norm statistics; the plain-Rust user tower still agrees
        // with libtorch's, and refuses what libtorch would.
        let encoder = model.user_encoder().unwrap();
        let reference = model.embed_users(&users).unwrap();
        let ours = encoder.embed(&users).unwrap();
        assert_eq!(ours.len(), reference.len());
        let worst = ours
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        let mut outside = inputs(1, 3);
        outside.ids[0] = 21;
        assert!(encoder.embed(&outside).is_err());
        assert!(encoder.embed(&inputs(2, 4)).is_err());
    }

    #[test]
    fn weighted_epochs_learn_the_weighted_pairs_and_bad_weights_are_refused() {
        let users = inputs(20, 3);
        let items = inputs(30, 2);
        // Each user has two positives; only the first carries weight.
        let positives: Vec<(usize, usize)> = (0..20)
            .flat_map(|u| [(u, u % 10), (u, 10 + u % 20)])
            .collect();
        let weights: Vec<f64> = (0..40)
            .map(|i| if i % 2 == 0 { 1.0 } else { 0.0 })
            .collect();
        let config = TwoTowerConfig {
            max_epochs: 40,
            learning_rate: 1e-2,
            id_dropout: 0.0,
            ..tiny_config()
        };
        let fit = |w: Option<&[f64]>| {
            TwoTower::fit(
                config.clone(),
                &users,
                &items,
                &positives,
                w,
                &[0.0; 30],
                None,
            )
        };
        let (model, _) = fit(Some(&weights)).unwrap();
        let u = model.embed_users(&users).unwrap();
        let v = model.embed_items(&items).unwrap();
        let dot = |a: usize, b: usize| -> f32 {
            u[a * 128..(a + 1) * 128]
                .iter()
                .zip(&v[b * 128..(b + 1) * 128])
                .map(|(x, y)| x * y)
                .sum()
        };
        let preferred = (0..20)
            .filter(|&user| dot(user, user % 10) > dot(user, 10 + user % 20))
            .count();
        assert!(
            preferred >= 18,
            "{preferred} of 20 users prefer the weighted item"
        );

        let short = fit(Some(&weights[..39])).err().unwrap();
        assert!(
            short.to_string().contains("39 sampling weights for 40"),
            "{short}"
        );
        let zero = fit(Some(&[0.0; 40])).err().unwrap();
        assert!(zero.to_string().contains("sampling weights"), "{zero}");
    }

    #[test]
    fn wrong_feature_width_is_refused() {
        let model = TwoTower::new(tiny_config());
        let err = model.embed_users(&inputs(2, 4)).unwrap_err();
        assert!(err.to_string().contains("expects dim 3"), "{err}");
    }

    #[test]
    fn save_and_load_round_trip_and_corrupt_weights_are_refused() {
        let dir = std::env::temp_dir().join(format!("two-tower-{}", std::process::id()));
        let model = TwoTower::new(tiny_config());
        model.save(&dir).unwrap();
        let loaded = TwoTower::load(&dir).unwrap();
        let users = inputs(4, 3);
        assert_eq!(
            model.embed_users(&users).unwrap(),
            loaded.embed_users(&users).unwrap()
        );

        // Serving's user tower, read from the saved files without libtorch, embeds users as
        // the whole model does (its sums run in another order: 1e-6, not bit for bit).
        let encoder = UserEncoder::load(&dir).unwrap();
        assert_eq!(encoder.output_dim(), 128);
        let reference = model.embed_users(&users).unwrap();
        let served = encoder.embed(&users).unwrap();
        let worst = served
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");

        // A weight file for another user vocabulary is refused by shape, by both loaders.
        let other = TwoTower::new(TwoTowerConfig {
            user_vocab: 40,
            ..tiny_config()
        });
        other.vs.save(dir.join(WEIGHTS_FILE)).unwrap();
        let err = UserEncoder::load(&dir).unwrap_err();
        assert!(
            err.to_string().contains("user.id.weight has shape"),
            "{err}"
        );
        assert!(TwoTower::load(&dir).is_err());

        std::fs::write(dir.join(WEIGHTS_FILE), b"not a tensor file").unwrap();
        assert!(TwoTower::load(&dir).is_err());
        assert!(UserEncoder::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
