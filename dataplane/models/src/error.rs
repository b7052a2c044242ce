use thiserror::Error;

/// Errors from the native model libraries, each naming the artifact or step involved.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("faiss: {0}")]
    Faiss(#[from] faiss::error::Error),
    #[error("lightgbm: {0}")]
    LightGbm(#[from] lightgbm3::Error),
    #[error("i/o on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl ModelError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
