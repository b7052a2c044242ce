//! Point-in-time features. Two families:
//! - the demo ranker's MovieLens features (`snapshot`, `ranker`, `tower`): computed from
//!   interactions strictly before a cut-off, one snapshot feeding training, evaluation and
//!   serving;
//! - the declarative definition (`recsys_core::features`, `core/features.yaml`) with its
//!   offline store (Parquet per date) and online store (Redis), which serving reads through
//!   the same row assembly as the offline job.
//!
//! The ranker's row is both: its own columns, then the declared ones ([`declared`]).

pub mod declared;
pub mod offline_store;
pub mod online_store;
pub mod profile;
pub mod ranker;
pub mod snapshot;
pub mod tower;

pub use declared::DeclaredFeatures;
pub use ranker::{ranker_row, RANKER_FEATURES};
pub use snapshot::{FeatureSnapshot, ItemFeatures, UserFeatures};
