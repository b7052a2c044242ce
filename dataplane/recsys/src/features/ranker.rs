//! The ranker's feature vector for one (user, candidate) pair. Training, offline evaluation and
//! the serving path all call [`ranker_row`], so the columns can never drift apart.

use super::snapshot::FeatureSnapshot;

/// Column names, in order; stored in the LightGBM model and checked when it is loaded.
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

/// Appends the features of (`user`, `item`) to `out`.
pub fn ranker_row(
    s: &FeatureSnapshot,
    user: u32,
    item: u32,
    retrieval_score: f32,
    retrieval_rank: usize,
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
}

pub fn feature_names() -> Vec<String> {
    RANKER_FEATURES.iter().map(|s| (*s).to_owned()).collect()
}
