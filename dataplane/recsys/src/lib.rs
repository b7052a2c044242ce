//! The recsys data plane: data loading, point-in-time features, training and evaluation jobs,
//! versioned artifacts and the gRPC serving path.

pub mod artifacts;
pub mod data;
pub mod features;
pub mod pipeline;
pub mod serving;
