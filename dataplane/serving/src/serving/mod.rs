//! The online path: a loaded model version answering requests, its gRPC and HTTP fronts,
//! metrics, feedback and hot reload.

pub mod attributes;
pub mod auth;
pub mod cache;
pub mod drift_monitor;
pub mod engine;
pub mod errors;
pub mod experiment_stats;
pub mod feedback;
pub mod feedback_sink;
pub mod feedback_wal;
pub mod grpc;
pub mod http;
pub mod item_display;
pub mod item_table;
pub mod limits;
pub mod listener;
pub mod load;
pub mod metrics;
pub mod online_features;
pub mod prediction_cache;
pub mod recent;
pub mod recommend;
pub mod router;
pub mod state;
pub mod tls;
pub mod trending;

pub use engine::{Engine, EngineError, EngineOptions, Query, Recommendation};
pub use state::ServingState;
