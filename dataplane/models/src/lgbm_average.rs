//! The average of several LightGBM models as one model text. A boosted model's raw score is the
//! sum of its trees' leaf values, so the mean of `k` models is every tree of every model with
//! its leaf (and internal) values divided by `k`. Serving then loads and scores one ordinary
//! model; nothing on the request path knows it was an average.

/// Lines that must agree between members: the same objective over the same columns.
const SHARED_HEADER: [&str; 6] = [
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "objective",
    "feature_names",
];
/// Per-tree lines whose values are summed into the score (or into its SHAP decomposition).
const SCALED: [&str; 2] = ["leaf_value", "internal_value"];

/// One model text cut into its header (before the first tree) and its tree blocks.
struct Parts<'a> {
    header: &'a str,
    trees: Vec<&'a str>,
}

fn parts(text: &str) -> Result<Parts<'_>, String> {
    let start = if text.starts_with("Tree=") {
        0
    } else {
        text.find("\nTree=").ok_or("no tree in the model text")? + 1
    };
    let end = text[start..]
        .find("\nend of trees")
        .map(|at| start + at + 1)
        .ok_or("no `end of trees` line")?;
    let trees = text[start..end]
        .split("Tree=")
        .skip(1)
        .map(|block| block.split_once('\n').map_or("", |(_, rest)| rest))
        .collect();
    Ok(Parts {
        header: &text[..start],
        trees,
    })
}

fn header_field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

/// `values` (space-separated numbers) each divided by `k`.
fn scaled(values: &str, k: f64) -> Result<String, String> {
    values
        .split(' ')
        .map(|v| {
            v.parse::<f64>()
                .map(|x| format!("{}", x / k))
                .map_err(|_| format!("`{v}` is not a number"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.join(" "))
}

/// The model whose score is the mean of `texts`' raw scores. The members must share their
/// objective and columns; the header (minus `tree_sizes`, which no longer applies) is the
/// first member's.
pub fn average(texts: &[&str]) -> Result<String, String> {
    let members = texts
        .iter()
        .map(|t| parts(t))
        .collect::<Result<Vec<_>, _>>()?;
    let first = members.first().ok_or("no model to average")?;
    for (index, member) in members.iter().enumerate().skip(1) {
        for name in SHARED_HEADER {
            if header_field(member.header, name) != header_field(first.header, name) {
                return Err(format!("member {index}'s `{name}` differs from member 0's"));
            }
        }
    }
    let k = members.len() as f64;
    let mut out: String = first
        .header
        .lines()
        .filter(|l| !l.starts_with("tree_sizes="))
        .map(|l| format!("{l}\n"))
        .collect();
    for (index, tree) in members.iter().flat_map(|m| &m.trees).enumerate() {
        out.push_str(&format!("Tree={index}\n"));
        for line in tree.lines() {
            match line.split_once('=') {
                Some((name, values)) if SCALED.contains(&name) => {
                    out.push_str(&format!("{name}={}\n", scaled(values, k)?));
                }
                _ => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out.push_str("end of trees\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
        max_feature_idx=1\nobjective=lambdarank\nfeature_names=a b\ntree_sizes=10\n\n\
        Tree=0\nnum_leaves=2\nleaf_value=1 -3\ninternal_value=0.5\nshrinkage=1\n\n\n\
        end of trees\n\nfeature_importances:\na=1\n";

    #[test]
    fn every_members_tree_is_kept_with_its_values_divided_by_the_member_count() {
        let merged = average(&[MODEL, MODEL]).unwrap();
        assert!(!merged.contains("tree_sizes"), "{merged}");
        assert_eq!(
            merged.matches("leaf_value=0.5 -1.5\n").count(),
            2,
            "{merged}"
        );
        assert_eq!(merged.matches("internal_value=0.25\n").count(), 2);
        assert!(merged.contains("Tree=0\n") && merged.contains("Tree=1\n"));
        assert!(merged.ends_with("end of trees\n"));
    }

    #[test]
    fn members_over_other_columns_or_objectives_are_refused() {
        let other = MODEL.replace("feature_names=a b", "feature_names=a c");
        assert!(average(&[MODEL, &other])
            .unwrap_err()
            .contains("feature_names"));
        let binary = MODEL.replace("objective=lambdarank", "objective=binary sigmoid:1");
        assert!(average(&[MODEL, &binary])
            .unwrap_err()
            .contains("objective"));
        assert!(average(&[]).is_err());
    }
}
