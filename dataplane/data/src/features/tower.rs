//! Inputs of the two towers, derived from a [`FeatureSnapshot`].

use super::snapshot::FeatureSnapshot;
use recsys_models::TowerInputs;

use super::profile::{age_bucket, AGE_BUCKETS};

const REGIONS: usize = 10;

pub fn user_feature_dim(s: &FeatureSnapshot) -> usize {
    1 + (AGE_BUCKETS.len() + 1) + 2 + s.occupations.len() + REGIONS + 2 + s.genres.len()
}

pub fn item_feature_dim(s: &FeatureSnapshot) -> usize {
    s.genres.len() + 2 + 4
}

/// One user's tower id (0 when the user has no history before the cut-off) and features.
pub fn user_row(s: &FeatureSnapshot, user: u32, features: &mut Vec<f32>) -> i64 {
    let u = &s.users[user as usize];
    features.push(u.age / 100.0);
    one_hot(features, age_bucket(u.age), AGE_BUCKETS.len() + 1);
    features.push(f32::from(u8::from(u.gender.as_deref() == Some("F"))));
    features.push(f32::from(u8::from(u.gender.as_deref() == Some("M"))));
    one_hot(features, u.occupation, s.occupations.len());
    one_hot(features, u.region, REGIONS);
    features.push((1.0 + u.history_len as f32).ln() / 5.0);
    features.push(u.mean_rating / 5.0);
    features.extend_from_slice(&u.genre_affinity);
    if u.history_len > 0 {
        i64::from(user) + 1
    } else {
        0
    }
}

/// One item's tower id (0 when it has no interactions before the cut-off) and features.
pub fn item_row(s: &FeatureSnapshot, item: u32, features: &mut Vec<f32>) -> i64 {
    let it = &s.items[item as usize];
    let start = features.len();
    features.resize(start + s.genres.len(), 0.0);
    for &g in &it.genres {
        features[start + g] = 1.0;
    }
    let known_year = it.year > 0.0;
    features.push(if known_year {
        (it.year - 1900.0) / 100.0
    } else {
        0.0
    });
    features.push(f32::from(u8::from(known_year)));
    features.push((1.0 + it.count_all as f32).ln() / 8.0);
    features.push((1.0 + it.count_7d as f32).ln() / 5.0);
    features.push((1.0 + it.count_30d as f32).ln() / 6.0);
    features.push(it.mean_rating / 5.0);
    if it.count_all > 0 {
        i64::from(item) + 1
    } else {
        0
    }
}

pub fn all_users(s: &FeatureSnapshot) -> TowerInputs {
    let mut inputs = TowerInputs {
        feature_dim: user_feature_dim(s),
        ..Default::default()
    };
    for u in 0..s.users.len() as u32 {
        let id = user_row(s, u, &mut inputs.features);
        inputs.ids.push(id);
    }
    inputs
}

pub fn all_items(s: &FeatureSnapshot) -> TowerInputs {
    let mut inputs = TowerInputs {
        feature_dim: item_feature_dim(s),
        ..Default::default()
    };
    for i in 0..s.items.len() as u32 {
        let id = item_row(s, i, &mut inputs.features);
        inputs.ids.push(id);
    }
    inputs
}

fn one_hot(out: &mut Vec<f32>, index: Option<usize>, width: usize) {
    let start = out.len();
    out.resize(start + width, 0.0);
    if let Some(i) = index.filter(|&i| i < width) {
        out[start + i] = 1.0;
    }
}
