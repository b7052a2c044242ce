//! The ranker's feature vector for one (user, candidate) pair: its own columns
//! ([`RANKER_FEATURES`]) followed by the declared features of `core/features.yaml` (user,
//! item, context). Training, offline evaluation and the serving path all call [`ranker_row`] or
//! [`ranker_row_with`], so the columns can never drift apart.

use super::snapshot::FeatureSnapshot;
use recsys_core::features::{assemble, Context, FeatureSpec};

/// The ranker's own columns, in order.
pub const RANKER_FEATURES: [&str; 15] = [
    "retrieval_score",
    "retrieval_rank",
    "item_log_count_all",
    "item_log_count_7d",
    "item_log_count_30d",
    "item_mean_rating",
    "item_year",
    "item_days_since_first",
    "user_log_history",
    "user_mean_rating",
    "user_genre_affinity",
    "user_age",
    "user_is_female",
    "user_days_since_last",
    "user_item_year_gap",
];

/// Where a row's declared user and item values come from: the snapshot's own (training,
/// evaluation, serving without an online store) or values read from the online store.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    pub user: Option<&'a [f32]>,
    pub item: Option<&'a [f32]>,
}

/// Appends the features of (`user`, `item`) in `ctx` to `out`, with the snapshot's declared
/// values.
pub fn ranker_row(
    s: &FeatureSnapshot,
    user: u32,
    item: u32,
    retrieval: (f32, usize),
    ctx: &Context,
    out: &mut Vec<f32>,
) {
    let declared = Declared {
        user: s.declared.user(user),
        item: s.declared.item(item),
    };
    ranker_row_with(s, user, item, retrieval, declared, ctx, out);
}

/// [`ranker_row`] with the declared values given (missing ones take the spec's defaults).
pub fn ranker_row_with(
    s: &FeatureSnapshot,
    user: u32,
    item: u32,
    (retrieval_score, retrieval_rank): (f32, usize),
    declared: Declared<'_>,
    ctx: &Context,
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
    out.extend_from_slice(&[
        retrieval_score,
        retrieval_rank as f32,
        (1.0 + it.count_all as f32).ln(),
        (1.0 + it.count_7d as f32).ln(),
        (1.0 + it.count_30d as f32).ln(),
        it.mean_rating,
        it.year,
        it.days_since_first,
        (1.0 + u.history_len as f32).ln(),
        u.mean_rating,
        affinity,
        u.age,
        f32::from(u8::from(u.gender.as_deref() == Some("F"))),
        u.days_since_last,
        year_gap,
    ]);
    assemble(&s.declared.spec, declared.user, declared.item, ctx, out);
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
