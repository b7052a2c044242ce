//! The manifest of an ItemIndex build: checksums of the index files and the model version
//! whose item vectors they hold, named by that version's manifest digest (a name alone could
//! be reused by another training run). Serving refuses an index whose digest is not the one of
//! the version it loads, so a canary can never search the stable version's vectors.

use super::{checksums, sha256_file, verify_checksums, ArtifactError, MANIFEST};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const INDEX_MANIFEST: &str = "index-manifest.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexManifest {
    pub format_version: u32,
    /// `model_version` of the version whose item vectors were indexed.
    pub model_version: String,
    /// SHA-256 of that version's `manifest.json`.
    pub model_manifest_sha256: String,
    /// The index kind and parameters, as built (probe count after tuning).
    pub kind: String,
    pub items: usize,
    /// Recall@k against exact search measured by the build.
    pub recall: f64,
    pub created_at: String,
    /// File name → lowercase hex SHA-256.
    pub files: BTreeMap<String, String>,
}

/// The digest that names a model version: SHA-256 of its manifest file.
pub fn model_digest(model_dir: &Path) -> Result<String, ArtifactError> {
    sha256_file(&model_dir.join(MANIFEST)).map_err(|source| ArtifactError::Io {
        dir: model_dir.to_path_buf(),
        source,
    })
}

/// Checksums the index files in `dir` and writes the manifest last.
pub fn seal(dir: &Path, mut manifest: IndexManifest) -> Result<IndexManifest, ArtifactError> {
    manifest.format_version = FORMAT_VERSION;
    manifest.files = checksums(dir, INDEX_MANIFEST)?;
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| ArtifactError::BadManifest {
        dir: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(dir.join(INDEX_MANIFEST), json).map_err(|source| ArtifactError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(manifest)
}

/// Reads and checks an index manifest; without `for_model` only the files are checked.
pub fn read(dir: &Path) -> Result<IndexManifest, ArtifactError> {
    let bad = |message: String| ArtifactError::BadManifest {
        dir: dir.to_path_buf(),
        message,
    };
    let text = std::fs::read(dir.join(INDEX_MANIFEST)).map_err(|source| ArtifactError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    let manifest: IndexManifest =
        serde_json::from_slice(&text).map_err(|e| bad(format!("{INDEX_MANIFEST}: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "index format version {} (this build reads {FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    if manifest.files.is_empty() {
        return Err(bad(format!("{INDEX_MANIFEST} lists no files")));
    }
    Ok(manifest)
}

/// Verifies an index directory's files and that it was built from the version in
/// `model_dir`.
pub fn verify_for(
    dir: &Path,
    model_dir: &Path,
    model_version: &str,
) -> Result<IndexManifest, ArtifactError> {
    let manifest = read(dir)?;
    verify_checksums(dir, &manifest.files)?;
    let digest = model_digest(model_dir)?;
    if manifest.model_manifest_sha256 != digest {
        return Err(ArtifactError::WrongModel {
            dir: dir.to_path_buf(),
            index_model: manifest.model_version.clone(),
            index_digest: manifest.model_manifest_sha256.clone(),
            model: model_version.to_owned(),
            model_digest: digest,
        });
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(digest: &str) -> IndexManifest {
        IndexManifest {
            format_version: 0,
            model_version: "v1".into(),
            model_manifest_sha256: digest.into(),
            kind: "Flat".into(),
            items: 3,
            recall: 1.0,
            created_at: "now".into(),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn an_index_verifies_only_with_the_version_it_was_built_from() {
        let v1 = tempfile::tempdir().unwrap();
        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v1.path().join(MANIFEST), b"{\"v\":1}").unwrap();
        std::fs::write(v2.path().join(MANIFEST), b"{\"v\":2}").unwrap();
        let index = tempfile::tempdir().unwrap();
        std::fs::write(index.path().join("ann.faiss"), b"vectors").unwrap();
        let digest = model_digest(v1.path()).unwrap();
        seal(index.path(), manifest(&digest)).unwrap();

        assert!(verify_for(index.path(), v1.path(), "v1").is_ok());
        let err = verify_for(index.path(), v2.path(), "v2").unwrap_err();
        assert!(matches!(err, ArtifactError::WrongModel { .. }), "{err}");
        assert!(
            err.to_string().contains("built from model version v1"),
            "{err}"
        );

        std::fs::write(index.path().join("ann.faiss"), b"vectorz").unwrap();
        let err = verify_for(index.path(), v1.path(), "v1").unwrap_err();
        assert!(matches!(err, ArtifactError::Checksum { .. }), "{err}");

        std::fs::remove_file(index.path().join(INDEX_MANIFEST)).unwrap();
        assert!(matches!(
            verify_for(index.path(), v1.path(), "v1"),
            Err(ArtifactError::Io { .. })
        ));
    }
}
