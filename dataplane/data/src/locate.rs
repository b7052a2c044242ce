//! Where the MovieLens 100K files live: an explicit directory, `RECSYS_DATA_DIR`, the shared
//! checkout beside the repository, or `data/ml-100k` fetched by `scripts/fetch-data.sh`.

use super::DataError;
use std::path::{Path, PathBuf};

const REQUIRED: [&str; 3] = ["ml-100k.inter", "ml-100k.item", "ml-100k.user"];

/// The first candidate directory that holds all three atomic files.
pub fn find_movielens(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = explicit {
        candidates.push(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("RECSYS_DATA_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for base in [PathBuf::from("."), workspace] {
        candidates.push(base.join("../shared/data/ml-100k"));
        candidates.push(base.join("data/ml-100k"));
    }
    candidates
        .iter()
        .find(|dir| REQUIRED.iter().all(|f| dir.join(f).is_file()))
        .cloned()
        .ok_or_else(|| {
            DataError::NotFound(
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
}
