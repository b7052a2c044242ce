//! The recsys data plane: data loading, point-in-time features, training and evaluation jobs,
//! versioned artifacts and the gRPC serving path.

pub mod artifacts;
pub mod data;
pub mod demo;
pub mod features;
pub mod live_version;
pub mod pipeline;
pub mod scoring;
pub mod serving;
