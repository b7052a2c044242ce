//! The writer of the version format ([`crate::bundle`] holds the files and the types serving
//! reads them into): training's models, index, ranker and tables, sealed with a manifest.

use crate::bundle::{
    Catalog, ColdStart, DriftReference, CATALOG_FILE, COLD_START_FILE, DRIFT_REFERENCE_FILE,
    RANKER_FILE, SNAPSHOT_FILE,
};
use crate::{DataWindow, Manifest};
use recsys_data::features::FeatureSnapshot;
use recsys_models::{AnnIndex, Ranker};
use std::path::Path;

/// Everything needed to write one version directory.
pub struct BundleParts<'a> {
    pub version: &'a str,
    /// Writes the two towers' files into the directory it is given (`two_tower.json` and
    /// `two_tower.safetensors`, read back by `recsys_models::tower`): the trainer's own save,
    /// so this crate links no libtorch.
    pub save_towers: &'a dyn Fn(&Path) -> anyhow::Result<()>,
    /// The ANN index over the version's item vectors.
    pub ann: &'a AnnIndex,
    pub ranker: &'a Ranker,
    pub snapshot: &'a FeatureSnapshot,
    pub catalog: &'a Catalog,
    pub data_window: DataWindow,
    pub hyper_parameters: serde_json::Value,
    pub metrics: serde_json::Value,
    pub cold_start: Option<&'a ColdStart>,
    pub drift_reference: Option<&'a DriftReference>,
}

/// Writes the version into `dir` (created) and seals it.
pub fn write(dir: &Path, parts: BundleParts<'_>) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    (parts.save_towers)(dir)?;
    parts.ann.save(dir)?;
    parts.ranker.save(&dir.join(RANKER_FILE))?;
    std::fs::write(dir.join(SNAPSHOT_FILE), serde_json::to_vec(parts.snapshot)?)?;
    std::fs::write(dir.join(CATALOG_FILE), serde_json::to_vec(parts.catalog)?)?;
    if let Some(cold) = parts.cold_start {
        std::fs::write(dir.join(COLD_START_FILE), serde_json::to_vec(cold)?)?;
    }
    if let Some(reference) = parts.drift_reference {
        std::fs::write(
            dir.join(DRIFT_REFERENCE_FILE),
            serde_json::to_vec(reference)?,
        )?;
    }
    let manifest = Manifest {
        format_version: 0,
        model_version: parts.version.to_owned(),
        created_at: chrono::Utc::now().to_rfc3339(),
        data_window: parts.data_window,
        feature_schema_hash: crate::feature_schema_hash(parts.snapshot),
        feature_spec_hash: parts.snapshot.declared.spec.schema_hash(),
        hyper_parameters: parts.hyper_parameters,
        metrics: parts.metrics,
        files: Default::default(),
    };
    Ok(crate::seal(dir, manifest)?)
}
