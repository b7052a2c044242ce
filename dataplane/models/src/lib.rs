//! The native half of the data plane: everything that links FAISS, libtorch or LightGBM lives
//! here and nowhere else, so the operator and the pure domain crate stay small.

pub mod ann;
pub mod error;
pub mod faiss_file;
pub mod forest;
mod lgbm_average;
mod lgbm_text;
pub mod lgbm_train;
pub mod mf;
mod quickscorer;
pub mod ranker;
pub mod two_tower;
pub mod user_encoder;

pub use ann::{AnnIndex, IndexKind};
pub use error::ModelError;
pub use forest::Forest;
pub use lgbm_train::GroupedRows;
pub use mf::{ImplicitMf, MfParams};
pub use ranker::{Objective, Ranker, RankerParams};
pub use two_tower::{TowerInputs, TrainReport, TwoTower, TwoTowerConfig};
pub use user_encoder::UserEncoder;

/// Limits libtorch's intra-op threads; call once at start-up. Pods get few cores, and
/// oversubscribing them costs more than it gains.
pub fn set_torch_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}
