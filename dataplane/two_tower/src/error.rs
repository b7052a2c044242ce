use recsys_models::ModelError;
use std::path::Path;
use thiserror::Error;

/// Errors from training or loading the two-tower model: libtorch's own, or those the shared
/// model code names (shapes, files, the configuration).
#[derive(Debug, Error)]
pub enum TowerError {
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl TowerError {
    pub fn invalid(message: String) -> Self {
        Self::Model(ModelError::Invalid(message))
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Model(ModelError::io(path, source))
    }
}
