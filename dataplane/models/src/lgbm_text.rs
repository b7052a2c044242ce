//! A LightGBM model text checked before LightGBM parses it. LightGBM's loader trusts the
//! text in ways a corrupt file turns into reads outside its buffers (SIGSEGVs found by
//! tests/it/fuzz_inputs.rs): it jumps to each tree by the byte sizes in `tree_sizes`, scans a
//! tree's lines for `=` without stopping at the end of the text, sizes arrays by `num_leaves`,
//! indexes a row by `split_feature`, follows child indices, reads category bitsets by
//! threshold and divides by `num_tree_per_iteration`. This check accepts exactly the shape
//! LightGBM writes for the rankers recsys trains: one output, numeric splits only.

/// Fields with one value per split (`num_leaves − 1`), and whether a tree must have them.
const PER_SPLIT: [(&str, bool); 9] = [
    ("split_feature", true),
    ("split_gain", false),
    ("threshold", true),
    ("decision_type", true),
    ("left_child", true),
    ("right_child", true),
    ("internal_value", false),
    ("internal_weight", false),
    ("internal_count", false),
];
/// Fields with one value per leaf.
const PER_LEAF: [(&str, bool); 3] = [
    ("leaf_value", true),
    ("leaf_weight", false),
    ("leaf_count", false),
];
/// LightGBM reads at most this many lines of one tree.
const MAX_TREE_LINES: usize = 22;
/// `decision_type`'s bit for a categorical split.
const CATEGORICAL: i64 = 1;

/// Why `text` is not a model of `features` numeric features that LightGBM can load safely.
pub fn check(text: &str, features: usize) -> Result<(), String> {
    if text.contains(['\r', '\0']) {
        return Err("carriage returns or NUL bytes in the model text".into());
    }
    let trees_start = line_starts(text)
        .find(|&at| text[at..].starts_with("Tree="))
        .unwrap_or(text.len());
    let header = &text[..trees_start];
    let field = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    };
    for (name, want) in [
        ("num_class", 1),
        ("num_tree_per_iteration", 1),
        ("max_feature_idx", features as i64 - 1),
    ] {
        let got = field(name).and_then(|v| v.trim().parse::<i64>().ok());
        if got != Some(want) {
            return Err(format!("{name} is {got:?}, expected {want}"));
        }
    }
    let trees_end = text
        .find("\nend of trees")
        .map(|at| at + 1)
        .ok_or("no `end of trees` line")?;
    if trees_end < trees_start {
        return Err("`end of trees` before the first tree".into());
    }
    if let Some(sizes) = field("tree_sizes") {
        check_tree_sizes(text, sizes, trees_start, trees_end)?;
    }
    let trees = &text[trees_start..trees_end];
    for (index, block) in trees.split("Tree=").skip(1).enumerate() {
        check_tree(block, features).map_err(|reason| format!("tree {index}: {reason}"))?;
    }
    Ok(())
}

/// Byte offsets of every line's start.
fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1))
}

/// The sizes LightGBM jumps by land on each `Tree=` line and end where the trees end.
fn check_tree_sizes(
    text: &str,
    sizes: &str,
    trees_start: usize,
    trees_end: usize,
) -> Result<(), String> {
    let mut at = trees_start;
    for size in sizes.split(' ') {
        let size: usize = size
            .parse()
            .map_err(|_| format!("tree size {size:?} is not a number"))?;
        if !text.get(at..).is_some_and(|rest| rest.starts_with("Tree=")) {
            return Err(format!("tree_sizes point at byte {at}, not at a tree"));
        }
        at = at
            .checked_add(size)
            .filter(|&end| end <= trees_end)
            .ok_or("tree_sizes run past the trees")?;
    }
    if at != trees_end {
        return Err(format!(
            "tree_sizes cover {} bytes of {}",
            at - trees_start,
            trees_end - trees_start
        ));
    }
    Ok(())
}

/// One tree's text after `Tree=`: its lines up to the blank one, every array of the length
/// `num_leaves` implies, numeric splits on known features, children inside the tree.
fn check_tree(block: &str, features: usize) -> Result<(), String> {
    let (_, body) = block.split_once('\n').ok_or("no line after `Tree=`")?;
    let (body, _) = body
        .split_once("\n\n")
        .ok_or("the tree does not end with a blank line")?;
    let lines: Vec<&str> = body.lines().collect();
    if lines.len() > MAX_TREE_LINES {
        return Err(format!(
            "{} lines, LightGBM reads {MAX_TREE_LINES}",
            lines.len()
        ));
    }
    let mut values = std::collections::HashMap::new();
    for line in &lines {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line:?} has no `=`"))?;
        values.insert(key, value);
    }
    let number = |name: &str| values.get(name).and_then(|v| v.trim().parse::<i64>().ok());
    let leaves = number("num_leaves")
        .filter(|&n| n >= 1)
        .ok_or("no valid num_leaves")?;
    if number("num_cat") != Some(0) {
        return Err("categorical splits (num_cat ≠ 0) are not recsys's".into());
    }
    if number("is_linear").is_some_and(|v| v != 0) {
        return Err("linear trees are not recsys's".into());
    }
    let splits = (leaves - 1) as usize;
    let fields = PER_SPLIT
        .iter()
        .map(|&(name, required)| (name, required && splits > 0, splits))
        .chain(
            PER_LEAF
                .iter()
                .map(|&(name, required)| (name, required, leaves as usize)),
        );
    for (name, required, want) in fields {
        let Some(text) = values.get(name) else {
            if required {
                return Err(format!("no {name}"));
            }
            continue;
        };
        let parsed: Vec<f64> = text
            .split(' ')
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<f64>().map_err(|_| format!("{name} value {v:?}")))
            .collect::<Result<_, _>>()?;
        if parsed.len() != want {
            return Err(format!(
                "{name} has {} values, {leaves} leaves need {want}",
                parsed.len()
            ));
        }
        let integral = |v: f64| v.fract() == 0.0;
        let bad = match name {
            "split_feature" => parsed
                .iter()
                .find(|&&v| !integral(v) || v < 0.0 || v >= features as f64),
            "decision_type" => parsed.iter().find(|&&v| {
                !integral(v) || !(0.0..128.0).contains(&v) || v as i64 & CATEGORICAL != 0
            }),
            "left_child" | "right_child" => parsed
                .iter()
                .find(|&&v| !integral(v) || v >= splits as f64 || v < -(leaves as f64)),
            _ => None,
        };
        if let Some(v) = bad {
            return Err(format!("{name} value {v} is outside what the tree allows"));
        }
    }
    Ok(())
}
