//! Matrix-factorization baseline: implicit-feedback ALS (Hu, Koren & Volinsky, 2008). Every
//! observed (user, item) pair is a positive with confidence 1 + α, every other pair a weak
//! negative; user and item factors are solved in turn in closed form. Pure Rust, no libraries:
//! a baseline should be easy to trust.

use crate::error::ModelError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// ALS knobs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct MfParams {
    pub factors: usize,
    /// L2 penalty λ on every factor vector.
    pub regularization: f32,
    /// Confidence of an observed pair is 1 + α.
    pub alpha: f32,
    pub iterations: usize,
    pub seed: u64,
}

impl Default for MfParams {
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 1.0,
            alpha: 10.0,
            iterations: 10,
            seed: 11,
        }
    }
}

/// Trained user and item factors, row-major.
#[derive(Debug, Clone)]
pub struct ImplicitMf {
    params: MfParams,
    users: Vec<f32>,
    items: Vec<f32>,
}

impl ImplicitMf {
    /// Fits on distinct (user, item) pairs with ids below `n_users` / `n_items`.
    pub fn fit(
        n_users: usize,
        n_items: usize,
        pairs: &[(u32, u32)],
        params: MfParams,
    ) -> Result<Self, ModelError> {
        let k = params.factors;
        if k == 0 || n_users == 0 || n_items == 0 {
            return Err(ModelError::Invalid(
                "matrix factorization needs factors, users and items".into(),
            ));
        }
        if let Some(&(u, i)) = pairs
            .iter()
            .find(|(u, i)| *u as usize >= n_users || *i as usize >= n_items)
        {
            return Err(ModelError::Invalid(format!(
                "pair ({u}, {i}) outside {n_users} users × {n_items} items"
            )));
        }
        let by_user = adjacency(n_users, pairs.iter().map(|&(u, i)| (u, i)));
        let by_item = adjacency(n_items, pairs.iter().map(|&(u, i)| (i, u)));
        let mut rng = StdRng::seed_from_u64(params.seed);
        let mut init = |n: usize| -> Vec<f32> {
            (0..n * k)
                .map(|_| rng.random_range(-0.01..0.01f32))
                .collect()
        };
        let mut users = init(n_users);
        let mut items = init(n_items);
        for _ in 0..params.iterations {
            solve_side(&mut users, &items, &by_user, &params);
            solve_side(&mut items, &users, &by_item, &params);
        }
        Ok(Self {
            params,
            users,
            items,
        })
    }

    pub fn params(&self) -> MfParams {
        self.params
    }

    /// Predicted preference of `user` for every item (zeros for a user without history).
    pub fn scores(&self, user: u32) -> Vec<f32> {
        let k = self.params.factors;
        let Some(p) = self.users.get(user as usize * k..(user as usize + 1) * k) else {
            return vec![0.0; self.items.len() / k];
        };
        self.items
            .chunks_exact(k)
            .map(|q| p.iter().zip(q).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// Neighbour lists per row, deduplicated.
fn adjacency(n: usize, edges: impl Iterator<Item = (u32, u32)>) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); n];
    for (a, b) in edges {
        out[a as usize].push(b);
    }
    for list in &mut out {
        list.sort_unstable();
        list.dedup();
    }
    out
}

/// Solves every row of `target` given the fixed `other` side, on two threads.
fn solve_side(target: &mut [f32], other: &[f32], neighbours: &[Vec<u32>], params: &MfParams) {
    let k = params.factors;
    let gram = gram(other, k);
    let rows_per_thread = neighbours.len().div_ceil(2).max(1);
    std::thread::scope(|scope| {
        for (chunk_index, chunk) in target.chunks_mut(rows_per_thread * k).enumerate() {
            let gram = &gram;
            scope.spawn(move || {
                let mut a = vec![0f32; k * k];
                let mut b = vec![0f32; k];
                for (offset, row) in chunk.chunks_exact_mut(k).enumerate() {
                    let index = chunk_index * rows_per_thread + offset;
                    solve_row(row, other, &neighbours[index], gram, params, &mut a, &mut b);
                }
            });
        }
    });
}

/// YᵀY of the fixed side: shared by every row's system.
fn gram(factors: &[f32], k: usize) -> Vec<f32> {
    let mut g = vec![0f32; k * k];
    for y in factors.chunks_exact(k) {
        for r in 0..k {
            for c in 0..=r {
                g[r * k + c] += y[r] * y[c];
            }
        }
    }
    for r in 0..k {
        for c in 0..r {
            g[c * k + r] = g[r * k + c];
        }
    }
    g
}

/// x = (YᵀY + α·Σ yyᵀ + λI)⁻¹ · (1 + α)·Σ y over the row's observed neighbours.
fn solve_row(
    row: &mut [f32],
    other: &[f32],
    observed: &[u32],
    gram: &[f32],
    params: &MfParams,
    a: &mut [f32],
    b: &mut [f32],
) {
    let k = params.factors;
    if observed.is_empty() {
        row.fill(0.0);
        return;
    }
    a.copy_from_slice(gram);
    b.fill(0.0);
    for &j in observed {
        let y = &other[j as usize * k..(j as usize + 1) * k];
        for r in 0..k {
            let ar = params.alpha * y[r];
            for c in 0..=r {
                a[r * k + c] += ar * y[c];
            }
            b[r] += (1.0 + params.alpha) * y[r];
        }
    }
    for r in 0..k {
        a[r * k + r] += params.regularization;
    }
    cholesky_solve(a, b, k);
    row.copy_from_slice(b);
}

/// Solves A·x = b in place (x written to `b`) for symmetric positive-definite A, of which only
/// the lower triangle is read.
fn cholesky_solve(a: &mut [f32], b: &mut [f32], k: usize) {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        let d = d.max(1e-12).sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i * k + p] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= a[p * k + i] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        // A = [[4, 2], [2, 3]], b = [2, 5] → x = [-0.5, 2].
        let mut a = vec![4.0, 0.0, 2.0, 3.0];
        let mut b = vec![2.0, 5.0];
        cholesky_solve(&mut a, &mut b, 2);
        assert!(
            (b[0] + 0.5).abs() < 1e-5 && (b[1] - 2.0).abs() < 1e-5,
            "{b:?}"
        );
    }

    fn unseen(user: u32, local_item: u32) -> bool {
        local_item == user % 10 || local_item == (user + 3) % 10
    }

    #[test]
    fn recovers_two_blocks_of_taste() {
        // Users 0..20 like items 0..10, users 20..40 like items 10..20; each user has seen all
        // but two items of their block. Those two must outrank every item of the other block.
        let mut pairs = Vec::new();
        for u in 0..40u32 {
            let block = if u < 20 { 0 } else { 10 };
            for i in 0..10u32 {
                if !unseen(u, i) {
                    pairs.push((u, block + i));
                }
            }
        }
        let params = MfParams {
            // Two tastes, two factors: more would also fit who skipped which item.
            factors: 2,
            regularization: 0.1,
            alpha: 10.0,
            ..Default::default()
        };
        let mf = ImplicitMf::fit(41, 20, &pairs, params).unwrap();
        for u in 0..40u32 {
            let s = mf.scores(u);
            let (own, other) = if u < 20 {
                (0..10, 10..20)
            } else {
                (10..20, 0..10)
            };
            let worst_own = own
                .clone()
                .filter(|i| unseen(u, i % 10))
                .map(|i| s[i as usize])
                .fold(f32::INFINITY, f32::min);
            let best_other = other
                .map(|i| s[i as usize])
                .fold(f32::NEG_INFINITY, f32::max);
            assert!(
                worst_own > best_other,
                "user {u}: {worst_own} vs {best_other}"
            );
        }
        assert!(
            mf.scores(40).iter().all(|&x| x == 0.0),
            "no history, no taste"
        );
    }

    #[test]
    fn out_of_range_pairs_are_refused() {
        let err = ImplicitMf::fit(2, 2, &[(0, 5)], MfParams::default()).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }
}
