//! The recsys serving side: data loading and validation, point-in-time features, the version
//! format's reader, the scoring steps training shares, and the gRPC/HTTP server. It links no
//! libtorch (the user tower runs in plain Rust), so `recsys-serve` carries none; training
//! (`recsys`) imports this crate, never the other way round.

pub mod artifacts;
pub mod data;
pub mod features;
pub mod front;
pub mod scoring;
pub mod serve_command;
pub mod serving;
