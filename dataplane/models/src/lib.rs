//! The native half of the data plane that serving needs: the ANN index (FAISS), the ranker
//! (LightGBM, scored by its own QuickScorer-style forest), implicit MF, and the user tower in
//! plain Rust. libtorch is not linked here: training the two-tower model lives in
//! `recsys-two-tower`, so the server links no training-only library.

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
pub mod tower;
pub mod user_encoder;

pub use ann::{AnnIndex, IndexKind};
pub use error::ModelError;
pub use forest::Forest;
pub use lgbm_train::GroupedRows;
pub use mf::{ImplicitMf, MfParams};
pub use ranker::{Objective, Ranker, RankerParams};
pub use tower::{TowerInputs, TwoTowerConfig};
pub use user_encoder::UserEncoder;
