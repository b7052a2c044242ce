//! Profile segments: which group a user falls in by one profile column (gender, age band,
//! occupation, region). Training chooses on validation whether users without history get a
//! per-segment popularity list; serving looks up the same segment with the same function.

use super::snapshot::FeatureSnapshot;
use serde::{Deserialize, Serialize};

/// Lower edges of the age bands after the first (under 18), as the towers use them.
pub const AGE_BUCKETS: [f32; 6] = [18.0, 25.0, 35.0, 45.0, 50.0, 56.0];

/// The age band of an age in years; None when the age is unknown (0 or below).
pub fn age_bucket(age: f32) -> Option<usize> {
    (age > 0.0).then(|| AGE_BUCKETS.iter().filter(|&&b| age >= b).count())
}

/// A profile column that splits users into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKey {
    Gender,
    AgeBand,
    Occupation,
    Region,
}

impl ProfileKey {
    pub const ALL: [Self; 4] = [Self::Gender, Self::AgeBand, Self::Occupation, Self::Region];

    /// The user's segment under this key, or None when the profile lacks the column (such a
    /// user gets the unsegmented list). `user` must be inside the snapshot.
    pub fn segment(self, snapshot: &FeatureSnapshot, user: u32) -> Option<String> {
        let u = snapshot.users.get(user as usize)?;
        match self {
            Self::Gender => u.gender.clone().filter(|g| !g.is_empty()),
            Self::AgeBand => age_bucket(u.age).map(|b| match b {
                0 => format!("<{}", AGE_BUCKETS[0]),
                b => format!(">={}", AGE_BUCKETS[b - 1]),
            }),
            Self::Occupation => u
                .occupation
                .and_then(|o| snapshot.occupations.get(o).cloned()),
            Self::Region => u.region.map(|r| r.to_string()),
        }
    }
}

impl std::fmt::Display for ProfileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gender => "gender",
            Self::AgeBand => "age band",
            Self::Occupation => "occupation",
            Self::Region => "region",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::UserFeatures;

    #[test]
    fn segments_come_from_the_profile_and_are_absent_without_it() {
        let snapshot = FeatureSnapshot {
            occupations: vec!["artist".into(), "writer".into()],
            users: vec![
                UserFeatures {
                    age: 30.0,
                    gender: Some("F".into()),
                    occupation: Some(1),
                    region: Some(9),
                    ..Default::default()
                },
                UserFeatures {
                    age: 12.0,
                    ..Default::default()
                },
                UserFeatures::default(),
            ],
            ..Default::default()
        };
        let all = |u| ProfileKey::ALL.map(|k| k.segment(&snapshot, u));
        assert_eq!(
            all(0),
            [
                Some("F".into()),
                Some(">=25".into()),
                Some("writer".into()),
                Some("9".into())
            ]
        );
        assert_eq!(all(1), [None, Some("<18".into()), None, None]);
        assert_eq!(all(2), [None, None, None, None]);
        assert_eq!(all(3), [None, None, None, None], "outside the snapshot");
        assert_eq!(age_bucket(56.0), Some(6));
        assert_eq!(age_bucket(0.0), None);
    }
}
