//! The live version scored on the new version's test window: load it as serving does and ask
//! it, user by user, what it would have shown, so the two versions' per-user NDCG@10 pair up
//! on the same users and the same relevant items. Ids cross between the versions by their
//! external names (each version numbers users and items its own way). This joins training
//! and serving, so it lives above both.

use crate::pipeline::compare::EvaluationRecord;
use crate::pipeline::evaluate::LIST_LENGTH;
use crate::pipeline::live::{LiveScore, LiveScorer, Window};
use anyhow::Context;
use recsys_core::features::Context as RequestContext;
use recsys_core::{metrics, ItemId, UserId};
use recsys_serving::serving::{Engine, Query};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A version directory, scored by the engine that would serve it.
pub struct ServedVersion(pub PathBuf);

impl LiveScorer for ServedVersion {
    fn data_cutoff(&self) -> anyhow::Result<Option<i64>> {
        let manifest = recsys_version::verify(&self.0, None)
            .with_context(|| format!("reading the live version at {}", self.0.display()))?;
        Ok(Some(manifest.data_window.cutoff))
    }

    fn score(&self, window: &Window<'_>) -> anyhow::Result<LiveScore> {
        score(&self.0, window)
    }
}

fn score(dir: &Path, window: &Window<'_>) -> anyhow::Result<LiveScore> {
    let engine = Engine::load(dir)
        .with_context(|| format!("loading the live version at {}", dir.display()))?;
    let manifest = recsys_version::verify(dir, None)?;
    let data = window.data;
    let mut seen: HashMap<UserId, HashSet<u32>> = HashMap::new();
    for r in window.history {
        if let Some(live_item) =
            engine.item_by_external_id(&data.items[r.item as usize].external_id)
        {
            seen.entry(r.user).or_default().insert(live_item);
        }
    }
    let ours: HashMap<&str, ItemId> = data
        .items
        .iter()
        .enumerate()
        .map(|(i, m)| (m.external_id.as_str(), i as ItemId))
        .collect();
    let empty = HashSet::new();
    let mut per_user = BTreeMap::new();
    for (&user, relevant) in window.relevant {
        let external = &data.users[user as usize].external_id;
        let answer = engine.recommend(&Query {
            context: RequestContext {
                timestamp: window.request_times[&user],
                ..Default::default()
            },
            ..Query::new(external, LIST_LENGTH, seen.get(&user).unwrap_or(&empty))
        })?;
        let list: Vec<ItemId> = answer
            .items
            .iter()
            .filter_map(|(item, _)| {
                let name = &engine.items().get(*item).external_id;
                ours.get(name).copied()
            })
            .collect();
        per_user.insert(external.clone(), metrics::ndcg_at_k(&list, relevant, 10));
    }
    let ndcg_at_10 = per_user.values().sum::<f64>() / per_user.len().max(1) as f64;
    Ok(LiveScore {
        record: EvaluationRecord {
            model_version: engine.version().to_owned(),
            split: window.split.to_owned(),
            test_start: window.test_start,
            system: "live".into(),
            ndcg_at_10,
            per_user_ndcg: per_user,
        },
        saw_test_window: manifest.data_window.cutoff > window.test_start,
    })
}
