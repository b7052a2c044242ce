//! The trained user tower evaluated in plain Rust, for serving. One user's forward pass is
//! about 70,000 multiply-adds, yet through libtorch it costs half a millisecond of tensor set-up
//! and runs under a lock (tch tensors are not `Sync`). Here the weights are copied out once,
//! batch norm is folded into a scale and shift, and any number of threads embed users at once.
//!
//! The arithmetic is the tower's in evaluation mode — id embedding ⧺ features → Dense → ReLU →
//! BatchNorm (running statistics) → Dense → ReLU → Dense → L2 — in f32, with sums taken in a
//! different order than libtorch's kernels, so results agree to about 1e-6, not bit for bit.

use crate::error::ModelError;
use crate::tower::{self, TowerInputs};
use std::collections::HashMap;
use std::path::Path;

/// libtorch's default batch-norm epsilon, which the tower is built with.
const BATCH_NORM_EPS: f32 = 1e-5;

#[derive(Debug, Clone)]
struct Dense {
    /// Row-major `outputs × inputs` (libtorch's layout).
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Dense {
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(
            self.weight
                .chunks_exact(self.inputs)
                .zip(&self.bias)
                .map(|(row, b)| dot(row, x) + b),
        );
    }
}

/// Eight running sums, so the compiler can keep them in one vector register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[derive(Debug, Clone)]
pub struct UserEncoder {
    /// `vocab × id_dim`, row-major.
    ids: Vec<f32>,
    id_dim: usize,
    feature_dim: usize,
    dense1: Dense,
    /// Batch norm folded: `y = x · scale + shift`.
    scale: Vec<f32>,
    shift: Vec<f32>,
    dense2: Dense,
    dense3: Dense,
}

/// A tensor as the encoder takes it: its values, row-major, and its shape.
pub type Array = (Vec<f32>, Vec<i64>);

fn values<'a>(arrays: &'a HashMap<String, Array>, name: &str) -> Result<&'a Array, ModelError> {
    arrays
        .get(name)
        .ok_or_else(|| ModelError::Invalid(format!("the user tower has no {name}")))
}

/// A vector of `len` values, or an error naming the tensor.
fn vector(arrays: &HashMap<String, Array>, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let (v, shape) = values(arrays, name)?;
    if shape.len() != 1 || v.len() != len {
        return Err(ModelError::Invalid(format!(
            "{name} has shape {shape:?}, not [{len}]"
        )));
    }
    Ok(v.clone())
}

fn dense(arrays: &HashMap<String, Array>, name: &str) -> Result<Dense, ModelError> {
    let weight_name = format!("user.{name}.weight");
    let (weight, shape) = values(arrays, &weight_name)?;
    let [outputs, inputs] = shape[..] else {
        return Err(ModelError::Invalid(format!(
            "{weight_name} has shape {shape:?}, not a matrix"
        )));
    };
    let (outputs, inputs) = (outputs.max(0) as usize, inputs.max(0) as usize);
    if weight.len() != outputs * inputs || inputs == 0 {
        return Err(ModelError::Invalid(format!(
            "{weight_name} holds {} values for shape {shape:?}",
            weight.len()
        )));
    }
    Ok(Dense {
        weight: weight.clone(),
        bias: vector(arrays, &format!("user.{name}.bias"), outputs)?,
        inputs,
    })
}

impl UserEncoder {
    /// The user tower from its tensors (`user.*`, as the trainer names them), for
    /// `feature_dim` features per user. Every shape is checked against the next layer's.
    pub fn from_arrays(
        arrays: &HashMap<String, Array>,
        feature_dim: usize,
    ) -> Result<Self, ModelError> {
        let (ids, id_shape) = values(arrays, "user.id.weight")?;
        let id_dim = match id_shape[..] {
            [vocab, dim] if vocab > 0 && dim > 0 && ids.len() == (vocab * dim) as usize => {
                dim as usize
            }
            _ => {
                return Err(ModelError::Invalid(format!(
                    "user.id.weight has shape {id_shape:?} for {} values",
                    ids.len()
                )))
            }
        };
        let dense1 = dense(arrays, "dense1")?;
        if dense1.inputs != id_dim + feature_dim {
            return Err(ModelError::Invalid(format!(
                "the user tower's first layer takes {} inputs, not {id_dim} + {feature_dim}",
                dense1.inputs
            )));
        }
        let hidden = dense1.bias.len();
        let weight = vector(arrays, "user.norm.weight", hidden)?;
        let bias = vector(arrays, "user.norm.bias", hidden)?;
        let mean = vector(arrays, "user.norm.running_mean", hidden)?;
        let var = vector(arrays, "user.norm.running_var", hidden)?;
        let scale: Vec<f32> = weight
            .iter()
            .zip(&var)
            .map(|(w, v)| w / (v + BATCH_NORM_EPS).sqrt())
            .collect();
        let shift = bias
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let dense2 = dense(arrays, "dense2")?;
        let dense3 = dense(arrays, "dense3")?;
        if dense2.inputs != hidden || dense3.inputs != dense2.bias.len() {
            return Err(ModelError::Invalid(format!(
                "the user tower's layers do not chain: {hidden} → {} inputs, {} → {} inputs",
                dense2.inputs,
                dense2.bias.len(),
                dense3.inputs
            )));
        }
        Ok(Self {
            ids: ids.clone(),
            id_dim,
            feature_dim,
            dense1,
            scale,
            shift,
            dense2,
            dense3,
        })
    }

    /// The user tower of the model saved in `dir` ([`tower::CONFIG_FILE`] and
    /// [`tower::WEIGHTS_FILE`]), read without libtorch. Only `user.*` tensors are copied out;
    /// the item tower and its id table (the largest tensor, 128 MB at 1M items) are dropped
    /// with the file's bytes once loading ends.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config = tower::read_config(dir)?;
        tower::check_config(&config, 1, dir)?;
        let path = dir.join(tower::WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| ModelError::Invalid(format!("{}: {e:?}", path.display())))?;
        let mut arrays = HashMap::new();
        for (name, view) in file.tensors() {
            if !name.starts_with("user.") || name.ends_with("num_batches_tracked") {
                continue;
            }
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ModelError::Invalid(format!(
                    "{}: {name} is {:?}, not f32",
                    path.display(),
                    view.dtype()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            arrays.insert(name, (values, shape));
        }
        let expected_ids = [config.user_vocab, config.id_embedding_dim];
        match arrays.get("user.id.weight") {
            Some((_, shape)) if shape[..] != expected_ids => {
                return Err(ModelError::Invalid(format!(
                    "{}: user.id.weight has shape {shape:?}, the config needs {expected_ids:?}",
                    path.display()
                )))
            }
            _ => {}
        }
        let encoder = Self::from_arrays(&arrays, config.user_feature_dim as usize)
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", path.display())))?;
        if encoder.output_dim() != config.output_dim as usize {
            return Err(ModelError::Invalid(format!(
                "{}: the user tower answers {} values, the config says {}",
                path.display(),
                encoder.output_dim(),
                config.output_dim
            )));
        }
        Ok(encoder)
    }

    /// The width of an embedding.
    pub fn output_dim(&self) -> usize {
        self.dense3.bias.len()
    }

    /// User embeddings, `inputs.len() × output_dim`, row-major, unit length.
    pub fn embed(&self, inputs: &TowerInputs) -> Result<Vec<f32>, ModelError> {
        if inputs.feature_dim != self.feature_dim
            || inputs.features.len() != inputs.ids.len() * self.feature_dim
        {
            return Err(ModelError::Invalid(format!(
                "user inputs: {} ids, {} features with dim {} (model expects dim {})",
                inputs.ids.len(),
                inputs.features.len(),
                inputs.feature_dim,
                self.feature_dim
            )));
        }
        let vocab = self.ids.len() / self.id_dim;
        let mut out = Vec::with_capacity(inputs.ids.len() * self.dense3.bias.len());
        let (mut x, mut h, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for (row, &id) in inputs.ids.iter().enumerate() {
            let id = usize::try_from(id)
                .ok()
                .filter(|&i| i < vocab)
                .ok_or_else(|| {
                    ModelError::Invalid(format!(
                        "user id {id} is outside the vocabulary of {vocab}"
                    ))
                })?;
            x.clear();
            x.extend_from_slice(&self.ids[id * self.id_dim..(id + 1) * self.id_dim]);
            x.extend_from_slice(
                &inputs.features[row * self.feature_dim..(row + 1) * self.feature_dim],
            );
            self.dense1.apply(&x, &mut h);
            for ((v, s), t) in h.iter_mut().zip(&self.scale).zip(&self.shift) {
                *v = v.max(0.0) * s + t;
            }
            self.dense2.apply(&h, &mut y);
            y.iter_mut().for_each(|v| *v = v.max(0.0));
            self.dense3.apply(&y, &mut h);
            let norm = h.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            out.extend(h.iter().map(|v| v / norm));
        }
        Ok(out)
    }
}
