//! The trained user tower evaluated in plain Rust, for serving. One user's forward pass is
//! about 70,000 multiply-adds, yet through libtorch it costs half a millisecond of tensor set-up
//! and runs under a lock (tch tensors are not `Sync`). Here the weights are copied out once,
//! batch norm is folded into a scale and shift, and any number of threads embed users at once.
//!
//! The arithmetic is the tower's in evaluation mode — id embedding ⧺ features → Dense → ReLU →
//! BatchNorm (running statistics) → Dense → ReLU → Dense → L2 — in f32, with sums taken in a
//! different order than libtorch's kernels, so results agree to about 1e-6, not bit for bit.

use crate::error::ModelError;
use crate::two_tower::TowerInputs;
use std::collections::HashMap;
use tch::Tensor;

/// tch's default batch-norm epsilon, which the tower is built with.
const BATCH_NORM_EPS: f32 = 1e-5;

#[derive(Debug, Clone)]
struct Dense {
    /// Row-major `outputs × inputs` (tch's layout).
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

fn values(vars: &HashMap<String, Tensor>, name: &str) -> Result<(Vec<f32>, Vec<i64>), ModelError> {
    let t = vars
        .get(name)
        .ok_or_else(|| ModelError::Invalid(format!("the user tower has no {name}")))?;
    let shape = t.size();
    let flat = t.to_device(tch::Device::Cpu).flatten(0, -1).contiguous();
    Ok((Vec::<f32>::try_from(&flat)?, shape))
}

fn dense(vars: &HashMap<String, Tensor>, name: &str) -> Result<Dense, ModelError> {
    let (weight, shape) = values(vars, &format!("user.{name}.weight"))?;
    let (bias, _) = values(vars, &format!("user.{name}.bias"))?;
    Ok(Dense {
        weight,
        bias,
        inputs: shape[1] as usize,
    })
}

impl UserEncoder {
    /// Copies the user tower's weights out of a model's variables (`user.*`).
    pub(crate) fn from_variables(
        vars: &HashMap<String, Tensor>,
        feature_dim: usize,
    ) -> Result<Self, ModelError> {
        let (ids, id_shape) = values(vars, "user.id.weight")?;
        let dense1 = dense(vars, "dense1")?;
        let (weight, _) = values(vars, "user.norm.weight")?;
        let (bias, _) = values(vars, "user.norm.bias")?;
        let (mean, _) = values(vars, "user.norm.running_mean")?;
        let (var, _) = values(vars, "user.norm.running_var")?;
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
        let id_dim = id_shape[1] as usize;
        if dense1.inputs != id_dim + feature_dim {
            return Err(ModelError::Invalid(format!(
                "the user tower's first layer takes {} inputs, not {id_dim} + {feature_dim}",
                dense1.inputs
            )));
        }
        Ok(Self {
            ids,
            id_dim,
            feature_dim,
            dense1,
            scale,
            shift,
            dense2: dense(vars, "dense2")?,
            dense3: dense(vars, "dense3")?,
        })
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
