//! The ranker's feature vector for one (user, candidate) pair: its own columns
//! ([`RANKER_FEATURES`]) followed by the declared features of `core/features.yaml` (user,
//! item, context). Training, offline evaluation and the serving path all call [`ranker_row`] or
//! [`ranker_row_with`], so the columns can never drift apart.

use super::snapshot::FeatureSnapshot;
use recsys_core::features::{assemble_with_context, context_row, Context, FeatureSpec};

/// The ranker's own columns, in order: what the declared definition cannot express (the
/// retrieval stage's output and user × item crosses). Every per-user and per-item column
/// (behaviour, recency, profile, metadata) comes from the definition.
pub const RANKER_FEATURES: [&str; 4] = [
    "retrieval_score",
    "retrieval_rank",
    "user_genre_affinity",
    "user_item_year_gap",
];

/// Where a row's declared user and item values come from: the snapshot's own (training,
/// evaluation, serving without an online store) or values read from the online store.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    pub user: Option<&'a [f32]>,
    pub item: Option<&'a [f32]>,
}

/// The context columns of a request, laid out once for all of its candidates' rows.
pub fn context_columns(s: &FeatureSnapshot, ctx: &Context) -> Vec<f32> {
    let mut out = Vec::new();
    context_row(&s.declared.spec, ctx, &mut out);
    out
}

/// Appends the features of (`user`, `item`) to `out`, with the snapshot's declared values and
/// the request's [`context_columns`].
pub fn ranker_row(
    s: &FeatureSnapshot,
    user: u32,
    item: u32,
    retrieval: (f32, usize),
    context: &[f32],
    out: &mut Vec<f32>,
) {
    let declared = Declared {
        user: s.declared.user(user),
        item: s.declared.item(item),
    };
    ranker_row_with(s, user, item, retrieval, declared, context, out);
}

/// [`ranker_row`] with the declared values given (missing ones take the spec's defaults).
pub fn ranker_row_with(
    s: &FeatureSnapshot,
    user: u32,
    item: u32,
    (retrieval_score, retrieval_rank): (f32, usize),
    declared: Declared<'_>,
    context: &[f32],
    out: &mut Vec<f32>,
) {
    let u = &s.users[user as usize];
    let it = &s.items[item as usize];
    let affinity = if it.genres.is_empty() {
        0.0
    } else {
        it.genres.iter().map(|&g| u.genre_affinity[g]).sum::<f32>() / it.genres.len() as f32
    };
    // How old the user was when the item came out (a taste-for-era signal).
    let now_year = 1970.0 + s.cutoff as f32 / 31_557_600.0;
    let year_gap = if u.age > 0.0 && it.year > 0.0 {
        (u.age - (now_year - it.year)).clamp(-50.0, 100.0)
    } else {
        0.0
    };
    out.extend_from_slice(&[retrieval_score, retrieval_rank as f32, affinity, year_gap]);
    assemble_with_context(&s.declared.spec, declared.user, declared.item, context, out);
}

/// Every column of a ranker row under `spec`, in order; stored in the LightGBM model and
/// checked when it is loaded.
pub fn feature_names_for(spec: &FeatureSpec) -> Vec<String> {
    let mut names: Vec<String> = RANKER_FEATURES.iter().map(|s| (*s).to_owned()).collect();
    names.extend(spec.vector_names());
    names
}

/// [`feature_names_for`] the shipped definition (the one training uses).
pub fn feature_names() -> Vec<String> {
    feature_names_for(&FeatureSpec::default_spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ranker_column_is_named_once() {
        let names = feature_names();
        let unique: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(
            names.len(),
            RANKER_FEATURES.len() + FeatureSpec::default_spec().vector_names().len()
        );
    }
}
