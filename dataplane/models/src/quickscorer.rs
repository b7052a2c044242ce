//! QuickScorer (Lucchese et al., SIGIR 2015) for the forest's plain rows: instead of walking
//! each tree, every split node is visited once per feature in threshold order and, where a row
//! goes right, clears the bits of the leaves it can no longer reach. A tree's exit leaf is then
//! the lowest bit left set. Rows are taken 16 at a time with the bitvectors laid out
//! `[tree][row]`, so each node is one compare and one masked AND across the whole block, which
//! the compiler turns into vector instructions (AVX-512 or AVX2 when the CPU has them).
//!
//! The arithmetic is the forest's: the same f32 thresholds, the same `>` test, leaves summed in
//! tree order in f64, so the scores are bit for bit those of the tree walk.

/// Rows scored together.
pub const LANES: usize = 16;

/// One tree as the scorer needs it: internal nodes with f32 thresholds and child indices
/// (negative = `!leaf`), and its leaf values by LightGBM's leaf index.
pub struct TreeShape<'a> {
    pub thresholds: Vec<f32>,
    pub features: Vec<u32>,
    pub left: Vec<i32>,
    pub right: Vec<i32>,
    pub leaves: &'a [f64],
}

/// 16 bytes, read in order: four to a cache line.
#[derive(Debug, Clone, Copy)]
struct SplitNode {
    threshold: f32,
    tree: u32,
    /// Set bits: the leaves still reachable when the row goes right at this node.
    mask: u64,
}

/// Buffers reused across the blocks of one batch.
#[derive(Default)]
pub struct Scratch {
    values: Vec<f32>,
    bits: Vec<u64>,
}

#[derive(Debug, Clone)]
pub struct QuickScorer {
    features: usize,
    trees: usize,
    /// Split nodes grouped by feature (`by_feature[f]..by_feature[f + 1]`), ascending threshold.
    by_feature: Vec<usize>,
    nodes: Vec<SplitNode>,
    /// Leaf values per tree in left-to-right order, `tree * 64 + position`.
    leaves: Vec<f64>,
}

impl QuickScorer {
    /// `None` when a tree has more than 64 leaves (one bit per leaf).
    pub fn new(features: usize, trees: &[TreeShape<'_>]) -> Option<Self> {
        if trees.iter().any(|t| t.leaves.len() > 64) {
            return None;
        }
        let mut nodes: Vec<(u32, f32, u32, u64)> = Vec::new();
        let mut leaves = vec![0f64; trees.len() * 64];
        for (t, tree) in trees.iter().enumerate() {
            if tree.thresholds.is_empty() {
                leaves[t * 64] = tree.leaves[0];
                continue;
            }
            let mut next_leaf = 0u32;
            let mut span = vec![(0u32, 0u32); tree.thresholds.len()];
            // In-order positions of the leaves, and of every subtree the [first, end) range.
            fn visit(
                tree: &TreeShape<'_>,
                node: i32,
                next: &mut u32,
                span: &mut [(u32, u32)],
                out: &mut [f64],
            ) -> (u32, u32) {
                if node < 0 {
                    out[*next as usize] = tree.leaves[(!node) as usize];
                    *next += 1;
                    return (*next - 1, *next);
                }
                let (first, _) = visit(tree, tree.left[node as usize], next, span, out);
                let (_, end) = visit(tree, tree.right[node as usize], next, span, out);
                span[node as usize] = (first, end);
                (first, end)
            }
            visit(
                tree,
                0,
                &mut next_leaf,
                &mut span,
                &mut leaves[t * 64..(t + 1) * 64],
            );
            for (n, &threshold) in tree.thresholds.iter().enumerate() {
                // Going right rules out the left subtree's leaves, which start this subtree.
                let (first, _) = span[n];
                let left_end = match tree.left[n] {
                    c if c < 0 => first + 1,
                    c => span[c as usize].1,
                };
                let width = left_end - first;
                let cleared = if width == 64 {
                    u64::MAX
                } else {
                    ((1u64 << width) - 1) << first
                };
                nodes.push((tree.features[n], threshold, t as u32, !cleared));
            }
        }
        nodes.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut by_feature = vec![0usize; features + 1];
        for &(f, ..) in &nodes {
            by_feature[f as usize + 1] += 1;
        }
        for f in 0..features {
            by_feature[f + 1] += by_feature[f];
        }
        Some(Self {
            features,
            trees: trees.len(),
            by_feature,
            nodes: nodes
                .iter()
                .map(|&(_, threshold, tree, mask)| SplitNode {
                    threshold,
                    tree,
                    mask,
                })
                .collect(),
            leaves,
        })
    }

    /// Each row's leaf values summed tree by tree into `sums` (one per row, at most
    /// [`LANES`] rows, none holding NaN), starting from zero as LightGBM does.
    pub fn score(&self, rows: &[&[f32]], sums: &mut [f64], scratch: &mut Scratch) {
        debug_assert!(rows.len() <= LANES && rows.len() == sums.len() && !rows.is_empty());
        // Feature-major values; empty lanes repeat the first row and are never read back.
        let values = &mut scratch.values;
        values.clear();
        values.resize(self.features * LANES, 0.0);
        for lane in 0..LANES {
            let row = &rows.get(lane).unwrap_or(&rows[0])[..self.features];
            for (f, &v) in row.iter().enumerate() {
                values[f * LANES + lane] = v;
            }
        }
        let bits = &mut scratch.bits;
        bits.clear();
        bits.resize(self.trees * LANES, u64::MAX);
        let totals = self.dispatch(values, bits);
        sums.copy_from_slice(&totals[..sums.len()]);
    }

    /// Clears the unreachable leaves, then sums each lane's exit leaves in tree order.
    #[inline(always)]
    fn score_lanes(&self, values: &[f32], bits: &mut [u64]) -> [f64; LANES] {
        self.clear_unreachable(values, bits);
        let mut totals = [0f64; LANES];
        for (lanes, leaves) in bits.chunks_exact(LANES).zip(self.leaves.chunks_exact(64)) {
            for (total, &b) in totals.iter_mut().zip(lanes) {
                // A lane always keeps at least its exit leaf's bit, so this is below 64.
                *total += leaves[(b.trailing_zeros() & 63) as usize];
            }
        }
        totals
    }

    fn dispatch(&self, values: &[f32], bits: &mut [u64]) -> [f64; LANES] {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512cd")
            {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { self.score_lanes_avx512(values, bits) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("bmi1")
            {
                // SAFETY: as above.
                return unsafe { self.score_lanes_avx2(values, bits) };
            }
        }
        self.score_lanes(values, bits)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512cd")]
    fn score_lanes_avx512(&self, values: &[f32], bits: &mut [u64]) -> [f64; LANES] {
        self.score_lanes(values, bits)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1")]
    fn score_lanes_avx2(&self, values: &[f32], bits: &mut [u64]) -> [f64; LANES] {
        self.score_lanes(values, bits)
    }

    #[inline(always)]
    fn clear_unreachable(&self, values: &[f32], bits: &mut [u64]) {
        for f in 0..self.features {
            let x: &[f32; LANES] = values[f * LANES..(f + 1) * LANES]
                .try_into()
                .expect("LANES values per feature");
            let highest = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for node in &self.nodes[self.by_feature[f]..self.by_feature[f + 1]] {
                let (threshold, mask) = (node.threshold, node.mask);
                // Thresholds ascend: once no row exceeds this one, none exceeds the rest.
                if threshold >= highest {
                    break;
                }
                let t = node.tree as usize * LANES;
                let lanes: &mut [u64; LANES] = (&mut bits[t..t + LANES])
                    .try_into()
                    .expect("LANES bitvectors per tree");
                for lane in 0..LANES {
                    lanes[lane] &= if x[lane] > threshold { mask } else { u64::MAX };
                }
            }
        }
    }
}
