//! A tree evaluator laid out for the CPU. LightGBM trains and its model text stays the source
//! of truth; this parses that text into flat per-tree node arrays and scores a batch tree by
//! tree (each tree stays in L1 while every candidate walks it), reproducing LightGBM's
//! arithmetic exactly: the same f32→f64 inputs, the same `<=` against the stored double
//! thresholds, the same missing-value rules, leaf outputs summed in tree order in f64, and the
//! same sigmoid. Models it cannot reproduce exactly (categorical splits, linear trees,
//! averaged outputs, several classes) are refused, and the caller keeps LightGBM's own path.

use crate::quickscorer::{QuickScorer, Scratch, TreeShape, LANES};

/// LightGBM's `kZeroThreshold`: inputs this close to zero are read as zero.
const ZERO_THRESHOLD: f64 = 1e-35;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Missing {
    None,
    Zero,
    NaN,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    /// Child indices; negative values are `!leaf`.
    left: i32,
    right: i32,
    missing: Missing,
    default_left: bool,
}

#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    /// The same tree for branch-free walking: internal nodes, then one self-looping node per
    /// leaf, so every row can take exactly `depth` steps and end on its leaf.
    flat: Vec<FlatNode>,
    depth: usize,
}

/// 16 bytes: four to a cache line.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    /// The largest f32 not above the double threshold: for an f32 input `v`,
    /// `v <= threshold_f32` exactly when LightGBM's `f64::from(v) <= threshold`.
    threshold: f32,
    feature: u32,
    /// [left, right].
    children: [u32; 2],
}

/// The largest f32 that is ≤ `t`.
fn f32_at_or_below(t: f64) -> f32 {
    let nearest = t as f32;
    if f64::from(nearest) > t {
        nearest.next_down()
    } else {
        nearest
    }
}

/// What the model's output means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    Raw,
    Sigmoid(f64),
}

#[derive(Debug, Clone)]
pub struct Forest {
    trees: Vec<Tree>,
    features: usize,
    output: Output,
    /// Whether any split treats zero as missing (then zeros leave the branch-free path).
    zero_missing: bool,
    /// The plain rows' scorer; `None` (trees over 64 leaves) walks the trees instead.
    quick: Option<QuickScorer>,
}

/// Rows walked together per tree.
const BLOCK: usize = 16;

fn numbers<T: std::str::FromStr>(line: &str, what: &str) -> Result<Vec<T>, String> {
    line.split_whitespace()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| format!("{what}: `{v}` is not a number"))
        })
        .collect()
}

impl Tree {
    fn parse(lines: &[(&str, &str)]) -> Result<Self, String> {
        let get = |key: &str| lines.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let leaves: Vec<f64> = numbers(
            get("leaf_value").ok_or("tree without leaf_value")?,
            "leaf_value",
        )?;
        if get("num_cat").is_some_and(|v| v.trim() != "0") {
            return Err("categorical splits".into());
        }
        if get("is_linear").is_some_and(|v| v.trim() != "0") {
            return Err("linear trees".into());
        }
        if leaves.len() == 1 {
            return Ok(Self::new(Vec::new(), leaves));
        }
        let field = |key: &str| get(key).ok_or_else(|| format!("tree without {key}"));
        let features: Vec<u32> = numbers(field("split_feature")?, "split_feature")?;
        let thresholds: Vec<f64> = numbers(field("threshold")?, "threshold")?;
        let kinds: Vec<u8> = numbers(field("decision_type")?, "decision_type")?;
        let left: Vec<i32> = numbers(field("left_child")?, "left_child")?;
        let right: Vec<i32> = numbers(field("right_child")?, "right_child")?;
        let n = leaves.len() - 1;
        if [
            features.len(),
            thresholds.len(),
            kinds.len(),
            left.len(),
            right.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            return Err(format!(
                "a tree of {} leaves needs {n} nodes in every node field",
                leaves.len()
            ));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let kind = kinds[i];
            if kind & 1 != 0 {
                return Err("categorical splits".into());
            }
            let in_range = |c: i32| {
                if c >= 0 {
                    (c as usize) < n
                } else {
                    ((!c) as usize) < leaves.len()
                }
            };
            if !in_range(left[i]) || !in_range(right[i]) {
                return Err(format!("node {i} points outside its tree"));
            }
            nodes.push(Node {
                threshold: thresholds[i],
                feature: features[i],
                left: left[i],
                right: right[i],
                missing: match (kind >> 2) & 3 {
                    0 => Missing::None,
                    1 => Missing::Zero,
                    _ => Missing::NaN,
                },
                default_left: kind & 2 != 0,
            });
        }
        Ok(Self::new(nodes, leaves))
    }

    fn new(nodes: Vec<Node>, leaves: Vec<f64>) -> Self {
        let internal = nodes.len() as u32;
        let index = |c: i32| {
            if c >= 0 {
                c as u32
            } else {
                internal + (!c) as u32
            }
        };
        let mut flat: Vec<FlatNode> = nodes
            .iter()
            .map(|n| FlatNode {
                threshold: f32_at_or_below(n.threshold),
                feature: n.feature,
                children: [index(n.left), index(n.right)],
            })
            .collect();
        for leaf in 0..leaves.len() as u32 {
            let me = internal + leaf;
            flat.push(FlatNode {
                threshold: 0.0,
                feature: 0,
                children: [me, me],
            });
        }
        // Depth: the longest root-to-leaf path (0 for a single leaf).
        let mut depth = 0;
        let mut stack = if nodes.is_empty() {
            vec![]
        } else {
            vec![(0u32, 1usize)]
        };
        while let Some((at, d)) = stack.pop() {
            depth = depth.max(d);
            for c in flat[at as usize].children {
                if c < internal {
                    stack.push((c, d + 1));
                }
            }
        }
        Self {
            nodes,
            leaves,
            flat,
            depth,
        }
    }

    /// The leaves of up to `BLOCK` rows at once, without branches: each step is a compare and
    /// an indexed select, and the rows' walks overlap instead of waiting on each other.
    #[inline]
    fn leaves_of_block(&self, rows: &[&[f32]; BLOCK], count: usize, out: &mut [f64; BLOCK]) {
        let mut at = [0u32; BLOCK];
        if self.nodes.is_empty() {
            out[..count].fill(self.leaves[0]);
            return;
        }
        let internal = self.nodes.len() as u32;
        for _ in 0..self.depth {
            for j in 0..BLOCK {
                let node = &self.flat[at[j] as usize];
                let v = rows[j][node.feature as usize];
                // Rows here hold no NaN (see `plain`), so `>` is the exact negation of `<=`.
                at[j] = node.children[usize::from(v > node.threshold)];
            }
            // Leaf-wise trees are lopsided: stop when every row has reached a leaf.
            if at.iter().all(|&a| a >= internal) {
                break;
            }
        }
        for j in 0..count {
            out[j] = self.leaves[(at[j] - internal) as usize];
        }
    }

    #[inline]
    fn leaf(&self, row: &[f32]) -> f64 {
        if self.nodes.is_empty() {
            return self.leaves[0];
        }
        let mut at = 0i32;
        while at >= 0 {
            let node = &self.nodes[at as usize];
            let mut v = f64::from(row[node.feature as usize]);
            // The common case, a finite value away from zero, takes one comparison.
            if v.is_nan() || v.abs() <= ZERO_THRESHOLD {
                if v.is_nan() && node.missing != Missing::NaN {
                    v = 0.0;
                }
                if v.abs() <= ZERO_THRESHOLD && !v.is_nan() {
                    v = 0.0;
                }
                let takes_default = match node.missing {
                    Missing::Zero => v == 0.0,
                    Missing::NaN => v.is_nan(),
                    Missing::None => false,
                };
                if takes_default {
                    at = if node.default_left {
                        node.left
                    } else {
                        node.right
                    };
                    continue;
                }
            }
            at = if v <= node.threshold {
                node.left
            } else {
                node.right
            };
        }
        self.leaves[(!at) as usize]
    }
}

impl Forest {
    /// Parses LightGBM's model text; `Err` says why this model needs LightGBM's own path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut header: Vec<(&str, &str)> = Vec::new();
        let mut blocks: Vec<Vec<(&str, &str)>> = Vec::new();
        let mut in_tree = false;
        for line in text.lines() {
            if line.starts_with("end of trees") {
                break;
            }
            if line.starts_with("Tree=") {
                blocks.push(Vec::new());
                in_tree = true;
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                match blocks.last_mut() {
                    Some(block) if in_tree => block.push((k, v)),
                    _ => header.push((k, v)),
                }
            }
        }
        let get = |key: &str| header.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        if get("num_class").is_some_and(|v| v.trim() != "1") {
            return Err("several classes".into());
        }
        if header.iter().any(|(k, _)| *k == "average_output")
            || text.lines().any(|l| l == "average_output")
        {
            return Err("averaged (random forest) output".into());
        }
        let features = get("max_feature_idx")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or("no max_feature_idx")?
            + 1;
        let objective = get("objective").unwrap_or("");
        let output = match objective.split_whitespace().next() {
            Some("binary") => {
                let sigmoid = objective
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix("sigmoid:"))
                    .map_or(Ok(1.0), |s| {
                        s.parse::<f64>().map_err(|_| "bad sigmoid".to_owned())
                    })?;
                Output::Sigmoid(sigmoid)
            }
            Some("lambdarank") | Some("rank_xendcg") | Some("regression") => Output::Raw,
            other => return Err(format!("objective {other:?}")),
        };
        let trees = blocks
            .iter()
            .map(|b| Tree::parse(b))
            .collect::<Result<Vec<_>, _>>()?;
        if trees
            .iter()
            .flat_map(|t| &t.nodes)
            .any(|n| n.feature as usize >= features)
        {
            return Err("a split on a feature past max_feature_idx".into());
        }
        let zero_missing = trees
            .iter()
            .flat_map(|t| &t.nodes)
            .any(|n| n.missing == Missing::Zero);
        let shapes: Vec<TreeShape<'_>> = trees
            .iter()
            .map(|t| TreeShape {
                thresholds: t
                    .nodes
                    .iter()
                    .map(|n| f32_at_or_below(n.threshold))
                    .collect(),
                features: t.nodes.iter().map(|n| n.feature).collect(),
                left: t.nodes.iter().map(|n| n.left).collect(),
                right: t.nodes.iter().map(|n| n.right).collect(),
                leaves: &t.leaves,
            })
            .collect();
        let quick = QuickScorer::new(features, &shapes);
        Ok(Self {
            trees,
            features,
            output,
            zero_missing,
            quick,
        })
    }

    pub fn num_features(&self) -> usize {
        self.features
    }

    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The same forest scored by walking its trees (what models with trees over 64 leaves
    /// use), to check one path against the other.
    #[cfg(test)]
    pub(crate) fn walking(&self) -> Self {
        Self {
            quick: None,
            ..self.clone()
        }
    }

    /// Whether a row can take the branch-free path: LightGBM's special cases (NaN, values
    /// within 1e-35 of zero, zeros where a split treats zero as missing) go the exact
    /// node-by-node way instead.
    fn plain(&self, row: &[f32]) -> bool {
        row.iter().all(|&v| {
            let tiny = v.abs() <= ZERO_THRESHOLD as f32 || f64::from(v).abs() <= ZERO_THRESHOLD;
            !v.is_nan() && (!tiny || (v == 0.0 && !self.zero_missing))
        })
    }

    /// Scores row-major `rows` (a multiple of [`Forest::num_features`] values) as LightGBM's
    /// `predict` does: probabilities for binary models, raw scores otherwise.
    pub fn predict(&self, rows: &[f32]) -> Vec<f64> {
        let n = self.features;
        let all: Vec<&[f32]> = rows.chunks_exact(n).collect();
        let (plain, special): (Vec<usize>, Vec<usize>) =
            (0..all.len()).partition(|&r| self.plain(all[r]));
        let mut sums = vec![0f64; all.len()];
        match &self.quick {
            Some(quick) => {
                let mut scratch = Scratch::default();
                let mut block: Vec<&[f32]> = Vec::with_capacity(LANES);
                let mut block_sums = [0f64; LANES];
                for chunk in plain.chunks(LANES) {
                    block.clear();
                    block.extend(chunk.iter().map(|&r| all[r]));
                    let block_sums = &mut block_sums[..chunk.len()];
                    quick.score(&block, block_sums, &mut scratch);
                    for (&r, &sum) in chunk.iter().zip(block_sums.iter()) {
                        sums[r] = sum;
                    }
                }
            }
            None => self.walk(&all, &plain, &mut sums),
        }
        for tree in &self.trees {
            for &r in &special {
                sums[r] += tree.leaf(all[r]);
            }
        }
        if let Output::Sigmoid(s) = self.output {
            for v in &mut sums {
                *v = 1.0 / (1.0 + (-s * *v).exp());
            }
        }
        sums
    }

    /// Sums the `plain` rows' leaves by walking each tree, `BLOCK` rows in step.
    fn walk(&self, all: &[&[f32]], plain: &[usize], sums: &mut [f64]) {
        let mut block_rows: [&[f32]; BLOCK] = [all.first().copied().unwrap_or(&[]); BLOCK];
        let mut leaves = [0f64; BLOCK];
        // Tree by tree, so each row's sum adds the trees in LightGBM's order.
        for tree in &self.trees {
            for chunk in plain.chunks(BLOCK) {
                for (slot, &r) in block_rows.iter_mut().zip(chunk) {
                    *slot = all[r];
                }
                // Unused slots repeat the first row; their leaves are ignored.
                for slot in block_rows.iter_mut().skip(chunk.len()) {
                    *slot = all[chunk[0]];
                }
                tree.leaves_of_block(&block_rows, chunk.len(), &mut leaves);
                for (&r, &leaf) in chunk.iter().zip(&leaves) {
                    sums[r] += leaf;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two trees over two features. Tree 0 splits x0 at 0.5 (NaN missing type, default
    /// left); tree 1 splits x1 at 2 (zero missing type, default right), then x0 at −1.
    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n\
max_feature_idx=1\nobjective=binary sigmoid:1\nfeature_names=x0 x1\n\n\
Tree=0\nnum_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=0.5\ndecision_type=10\n\
left_child=-1\nright_child=-2\nleaf_value=-1 1\nis_linear=0\nshrinkage=1\n\n\n\
Tree=1\nnum_leaves=3\nnum_cat=0\nsplit_feature=1 0\nthreshold=2 -1\ndecision_type=4 0\n\
left_child=1 -1\nright_child=-3 -2\nleaf_value=0.25 0.5 0.75\nis_linear=0\nshrinkage=1\n\n\n\
end of trees\n";

    fn raw(forest: &Forest, row: [f32; 2]) -> f64 {
        let p = forest.predict(&row)[0];
        // Undo the sigmoid to read the summed leaves.
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn missing_values_and_thresholds_follow_lightgbm_rules() {
        let f = Forest::parse(MODEL).unwrap();
        assert_eq!((f.num_trees(), f.num_features()), (2, 2));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // x0 = 0.5 goes left (<=); x1 = 3 goes right in tree 1.
        assert!(close(raw(&f, [0.5, 3.0]), -1.0 + 0.75));
        // NaN x0 with NaN missing type takes the default (left) in tree 0; in tree 1 the
        // x0 split has missing type None, so NaN reads as 0 (> −1: right).
        assert!(close(raw(&f, [f32::NAN, 1.0]), -1.0 + 0.5));
        // x1 = 0 with zero missing type takes the default (right) although 0 <= 2; so does a
        // value within 1e-35 of zero.
        assert!(close(raw(&f, [0.7, 0.0]), 1.0 + 0.75));
        assert!(close(raw(&f, [0.7, 1e-38]), 1.0 + 0.75));
        assert!(close(raw(&f, [0.7, 1.0]), 1.0 + 0.5));
        assert!(close(raw(&f, [-2.0, 1.0]), -1.0 + 0.25));
    }

    #[test]
    fn models_it_cannot_reproduce_are_refused_with_the_reason() {
        let categorical = MODEL.replacen("num_cat=0", "num_cat=1", 1);
        assert_eq!(
            Forest::parse(&categorical).unwrap_err(),
            "categorical splits"
        );
        let multiclass = MODEL.replace("num_class=1", "num_class=3");
        assert_eq!(Forest::parse(&multiclass).unwrap_err(), "several classes");
        let broken = MODEL.replace("left_child=1 -1", "left_child=7 -1");
        assert!(Forest::parse(&broken)
            .unwrap_err()
            .contains("outside its tree"));
        let short = MODEL.replace("threshold=2 -1", "threshold=2");
        assert!(Forest::parse(&short)
            .unwrap_err()
            .contains("every node field"));
    }
}
