//! Sticky traffic assignment shared by the operator (which writes the routing table) and the
//! router (which reads it): `bucket = hash(salt, user_id) mod 10000`, and every arm owns a
//! contiguous range of buckets in proportion to its weight. A user keeps their bucket for as
//! long as the salt stays, so they see one arm for the life of an experiment.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const BUCKETS: u32 = 10_000;

/// One arm: where its traffic goes and which buckets `[start, end)` it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arm {
    /// `stable`, `canary`, `control`, `treatment`…: bounded, used as a metric label.
    pub name: String,
    /// The arm's serving endpoint, e.g. `http://movies-stable:50051`.
    pub endpoint: String,
    /// The model version it serves, for logs and responses.
    #[serde(default)]
    pub model_version: String,
    pub bucket_start: u32,
    pub bucket_end: u32,
}

/// The routing table, as the operator writes it into a ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingTable {
    pub salt: String,
    pub arms: Vec<Arm>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RoutingError {
    #[error("weights add up to {0}, not 100")]
    WeightsNot100(u32),
    #[error("no arms")]
    NoArms,
    #[error("arm buckets must tile 0..{BUCKETS} in order; {0}")]
    Gap(String),
}

/// An arm to be laid out: name, endpoint, model version and weight in percent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedArm {
    pub name: String,
    pub endpoint: String,
    pub model_version: String,
    pub weight: u32,
}

impl RoutingTable {
    /// Lays arms out in order over the buckets; weights are percentages adding up to 100.
    /// Arms with weight 0 are kept (with an empty range) so their metrics stay visible.
    pub fn from_weights(salt: &str, arms: &[WeightedArm]) -> Result<Self, RoutingError> {
        if arms.is_empty() {
            return Err(RoutingError::NoArms);
        }
        let total: u32 = arms.iter().map(|a| a.weight).sum();
        if total != 100 {
            return Err(RoutingError::WeightsNot100(total));
        }
        let mut start = 0;
        let arms = arms
            .iter()
            .map(|a| {
                let end = start + a.weight * (BUCKETS / 100);
                let arm = Arm {
                    name: a.name.clone(),
                    endpoint: a.endpoint.clone(),
                    model_version: a.model_version.clone(),
                    bucket_start: start,
                    bucket_end: end,
                };
                start = end;
                arm
            })
            .collect();
        Ok(Self {
            salt: salt.to_owned(),
            arms,
        })
    }

    /// Checks that the arms tile every bucket exactly once, in order.
    pub fn validate(&self) -> Result<(), RoutingError> {
        if self.arms.is_empty() {
            return Err(RoutingError::NoArms);
        }
        let mut expected = 0;
        for arm in &self.arms {
            if arm.bucket_start != expected || arm.bucket_end < arm.bucket_start {
                return Err(RoutingError::Gap(format!(
                    "arm {} covers {}..{}, expected to start at {expected}",
                    arm.name, arm.bucket_start, arm.bucket_end
                )));
            }
            expected = arm.bucket_end;
        }
        if expected != BUCKETS {
            return Err(RoutingError::Gap(format!(
                "the last arm ends at {expected}"
            )));
        }
        Ok(())
    }

    /// The arm that serves `user_id`.
    pub fn assign(&self, user_id: &str) -> &Arm {
        let b = bucket(&self.salt, user_id);
        self.arms
            .iter()
            .find(|a| (a.bucket_start..a.bucket_end).contains(&b))
            .unwrap_or_else(|| self.arms.last().expect("validated tables have arms"))
    }
}

/// The user's bucket in `0..BUCKETS`: FNV-1a (64 bit) over `salt`, a separator and the id,
/// then a final avalanche so nearby ids spread evenly. Stable across processes, platforms and
/// releases — it must never change while an experiment runs.
pub fn bucket(salt: &str, user_id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in salt.bytes().chain([0xff]).chain(user_id.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h % u64::from(BUCKETS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms(weights: &[u32]) -> Vec<WeightedArm> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| WeightedArm {
                name: format!("arm{i}"),
                endpoint: format!("http://arm{i}:50051"),
                model_version: format!("v{i}"),
                weight: w,
            })
            .collect()
    }

    #[test]
    fn weights_become_contiguous_bucket_ranges() {
        let t = RoutingTable::from_weights("s", &arms(&[90, 10])).unwrap();
        assert_eq!((t.arms[0].bucket_start, t.arms[0].bucket_end), (0, 9000));
        assert_eq!(
            (t.arms[1].bucket_start, t.arms[1].bucket_end),
            (9000, 10_000)
        );
        t.validate().unwrap();
        assert_eq!(
            RoutingTable::from_weights("s", &arms(&[90, 20])),
            Err(RoutingError::WeightsNot100(110))
        );
    }

    #[test]
    fn assignment_is_sticky_and_splits_by_weight() {
        let t = RoutingTable::from_weights("exp-1", &arms(&[80, 20])).unwrap();
        let n = 20_000;
        let canary = (0..n)
            .filter(|u| t.assign(&format!("user-{u}")).name == "arm1")
            .count();
        // Binomial(20000, 0.2): sd ≈ 57, so ±300 is over five sigma.
        assert!((canary as i64 - 4000).abs() < 300, "{canary}");
        for u in 0..100 {
            let id = format!("user-{u}");
            assert_eq!(t.assign(&id), t.assign(&id));
        }
    }

    #[test]
    fn the_salt_reshuffles_users() {
        let moved = (0..1000)
            .filter(|u| bucket("a", &u.to_string()) != bucket("b", &u.to_string()))
            .count();
        assert!(moved > 990, "{moved}");
        // Pinned values: changing the hash would silently move users between arms.
        assert_eq!(bucket("", ""), bucket("", ""));
        assert_eq!(bucket("exp", "42"), 2_964);
    }

    #[test]
    fn tables_with_gaps_are_invalid() {
        let mut t = RoutingTable::from_weights("s", &arms(&[50, 50])).unwrap();
        t.arms[1].bucket_start = 5001;
        assert!(matches!(t.validate(), Err(RoutingError::Gap(_))));
    }
}
