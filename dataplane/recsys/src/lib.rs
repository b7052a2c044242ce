//! The recsys data plane's batch side: training and evaluation jobs and the version writer,
//! over the serving crate's data, features and version format (re-exported here, so one path
//! names each module). Serving never imports this crate.

pub use recsys_serving::{artifacts, data, features, scoring, serving};

pub mod demo;
pub mod live_version;
pub mod pipeline;
