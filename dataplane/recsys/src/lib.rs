//! The recsys data plane's batch side: training and evaluation jobs (the pipeline, reports,
//! ab and drift commands) over `recsys-data` (events, features), `recsys-version` (the
//! version format) and `recsys-serving` (the scoring steps and the server it starts). Serving
//! never imports this crate.

pub mod demo;
pub mod live_version;
pub mod pipeline;
