//! The one-line result a training run leaves for whoever started it (the RetrainSchedule
//! controller reads it from the Job's termination message): the gate numbers of the version's
//! `evaluation.json`, so the controller judges exactly what was written with the version.

use super::compare::EVALUATION_FILE;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::Path;

/// Builds the result line from a version directory's evaluation file.
pub fn from_evaluation(version_dir: &Path, model_uri: &str, rows: usize) -> anyhow::Result<Value> {
    let path = version_dir.join(EVALUATION_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let e: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let gates = &e["gates"];
    let verdict = &e["verdict"];
    Ok(json!({
        "version": e["record"]["model_version"],
        "modelUri": model_uri,
        "ndcgAt10": gates["ndcg_at_10"],
        "rankerAuc": gates["ranker_auc"],
        "liveVersion": gates["live_version"],
        "liveNdcgAt10": verdict["previous_ndcg_at_10"],
        "versusLive": gates["versus_live"],
        "commonUsers": verdict["common_users"],
        "liveSawTestWindow": gates["live_saw_test_window"],
        "rows": rows,
    }))
}

/// Writes `line` (one JSON object) to `file`; a termination message holds at most 4 KiB.
pub fn write(file: &Path, line: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string(line)?;
    anyhow::ensure!(
        text.len() < 4096,
        "the result line is {} bytes, more than a termination message holds",
        text.len()
    );
    std::fs::write(file, format!("{text}\n"))
        .with_context(|| format!("writing the result to {}", file.display()))
}
