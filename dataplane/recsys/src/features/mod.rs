//! Point-in-time features: everything is computed from interactions strictly before a cut-off,
//! and the same snapshot feeds training, offline evaluation and serving, so the three can never
//! disagree about what a feature means.

pub mod ranker;
pub mod snapshot;
pub mod tower;

pub use ranker::{ranker_row, RANKER_FEATURES};
pub use snapshot::{FeatureSnapshot, ItemFeatures, UserFeatures};
