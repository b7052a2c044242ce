//! Versioned artifact directories: one directory per model version holding every file serving
//! needs and a manifest with the data window, the feature schema hash, hyper-parameters,
//! metrics and a SHA-256 per file. A directory that fails any check is refused whole. The
//! format's writer ([`writer`]), its reader and verifier (here and [`bundle`]), the fetcher
//! from object storage ([`fetch`]) and the index manifest ([`index_manifest`]) live together.

use recsys_data::features::ranker::feature_names_for;
use recsys_data::features::FeatureSnapshot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod bundle;
pub mod fetch;
pub mod index_manifest;
pub mod writer;

pub const MANIFEST: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;

/// The data a version was trained on, as unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataWindow {
    pub first_timestamp: i64,
    /// Training used rows strictly before this time.
    pub cutoff: i64,
    pub rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    pub model_version: String,
    pub created_at: String,
    pub data_window: DataWindow,
    pub feature_schema_hash: String,
    /// Schema hash of the declared feature definition the ranker reads (`core/features.yaml`):
    /// the online store keys this version looks up start with `recsys:features:<this>`.
    #[serde(default)]
    pub feature_spec_hash: String,
    pub hyper_parameters: serde_json::Value,
    pub metrics: serde_json::Value,
    /// File name → lowercase hex SHA-256.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact {dir}: manifest is not valid: {message}")]
    BadManifest { dir: PathBuf, message: String },
    #[error("artifact {dir}: {file} checksum mismatch (manifest {expected}, file {actual})")]
    Checksum {
        dir: PathBuf,
        file: String,
        expected: String,
        actual: String,
    },
    #[error("index {dir} was built from model version {index_model} (manifest {index_digest}), not from the version being served, {model} (manifest {model_digest}); build an index from this version's own item vectors")]
    WrongModel {
        dir: PathBuf,
        index_model: String,
        index_digest: String,
        model: String,
        model_digest: String,
    },
    #[error("artifact {dir}: feature schema {found} does not match this build's {expected}")]
    Schema {
        dir: PathBuf,
        found: String,
        expected: String,
    },
}

/// Hash of everything that defines the feature layout: ranker columns (the declared ones
/// included, by their definition's hash), tower vocabularies.
pub fn feature_schema_hash(snapshot: &FeatureSnapshot) -> String {
    let mut h = Sha256::new();
    h.update(snapshot.declared.spec.schema_hash().as_bytes());
    h.update([2]);
    for name in feature_names_for(&snapshot.declared.spec) {
        h.update(name.as_bytes());
        h.update([0]);
    }
    for g in snapshot.genres.iter().chain(&snapshot.occupations) {
        h.update(g.as_bytes());
        h.update([1]);
    }
    h.update((snapshot.users.len() as u64).to_le_bytes());
    h.update((snapshot.items.len() as u64).to_le_bytes());
    hex::encode(h.finalize())
}

pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Checksums every regular file in `dir` (except the manifest) and writes the manifest last,
/// so a directory with a manifest is a complete one.
pub fn seal(dir: &Path, mut manifest: Manifest) -> Result<Manifest, ArtifactError> {
    let io = |source| ArtifactError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    manifest.format_version = FORMAT_VERSION;
    manifest.files = checksums(dir, MANIFEST)?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ArtifactError::BadManifest {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(dir.join(MANIFEST), json).map_err(io)?;
    Ok(manifest)
}

/// Checks that every listed file exists in `dir` (and only there) with its checksum.
pub(crate) fn verify_checksums(
    dir: &Path,
    files: &BTreeMap<String, String>,
) -> Result<(), ArtifactError> {
    for (file, expected) in files {
        if !is_plain_name(file) {
            return Err(ArtifactError::BadManifest {
                dir: dir.to_path_buf(),
                message: format!("file name {file:?} leaves the directory"),
            });
        }
        let actual = sha256_file(&dir.join(file)).map_err(|source| ArtifactError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        if &actual != expected {
            return Err(ArtifactError::Checksum {
                dir: dir.to_path_buf(),
                file: file.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// A file name that stays inside its directory.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\\') && name != ".." && name != "."
}

/// Checksums of every regular file in `dir` except `skip`.
pub(crate) fn checksums(dir: &Path, skip: &str) -> Result<BTreeMap<String, String>, ArtifactError> {
    let io = |source| ArtifactError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != skip && entry.file_type().map_err(io)?.is_file() {
            files.insert(name, sha256_file(&entry.path()).map_err(io)?);
        }
    }
    Ok(files)
}

/// Reads the manifest and checks every listed file's checksum; `expected_schema` (when given)
/// must equal the manifest's feature schema hash.
pub fn verify(dir: &Path, expected_schema: Option<&str>) -> Result<Manifest, ArtifactError> {
    let bad = |message: String| ArtifactError::BadManifest {
        dir: dir.to_path_buf(),
        message,
    };
    let text = std::fs::read(dir.join(MANIFEST)).map_err(|source| ArtifactError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} (this build reads {FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    if manifest.files.is_empty() {
        return Err(bad("lists no files".into()));
    }
    verify_checksums(dir, &manifest.files)?;
    if let Some(expected) = expected_schema {
        if manifest.feature_schema_hash != expected {
            return Err(ArtifactError::Schema {
                dir: dir.to_path_buf(),
                found: manifest.feature_schema_hash.clone(),
                expected: expected.to_owned(),
            });
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format_version: 0,
            model_version: "v1".into(),
            created_at: "now".into(),
            data_window: DataWindow {
                first_timestamp: 0,
                cutoff: 10,
                rows: 3,
            },
            feature_schema_hash: "abc".into(),
            feature_spec_hash: "def".into(),
            hyper_parameters: serde_json::json!({}),
            metrics: serde_json::json!({}),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn sealed_directory_verifies_and_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.bin"), b"weights").unwrap();
        let sealed = seal(dir.path(), manifest()).unwrap();
        assert_eq!(sealed.files.len(), 1);
        assert!(verify(dir.path(), Some("abc")).is_ok());

        let err = verify(dir.path(), Some("xyz")).unwrap_err();
        assert!(matches!(err, ArtifactError::Schema { .. }), "{err}");

        std::fs::write(dir.path().join("model.bin"), b"weightz").unwrap();
        let err = verify(dir.path(), None).unwrap_err();
        assert!(
            err.to_string().contains("model.bin checksum mismatch"),
            "{err}"
        );

        std::fs::remove_file(dir.path().join("model.bin")).unwrap();
        assert!(matches!(
            verify(dir.path(), None),
            Err(ArtifactError::Io { .. })
        ));
    }

    #[test]
    fn garbage_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), b"{not json").unwrap();
        assert!(matches!(
            verify(dir.path(), None),
            Err(ArtifactError::BadManifest { .. })
        ));
    }
}
