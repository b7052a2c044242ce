//! The online path: a loaded model version answering requests, and its gRPC front.

pub mod bundle;
pub mod engine;
pub mod grpc;

pub use engine::{Engine, EngineError, EngineOptions, Recommendation};
