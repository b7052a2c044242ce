//! The online path: the engine that answers Recommend (retrieval and ranking through
//! `recsys-scoring`, then business rules), the gRPC and HTTP server around it (`serve`) and
//! the experiment router (`route`). It links no libtorch (the user tower runs in plain Rust),
//! so `recsys-serve` carries none, and no training code. Data and features live in
//! `recsys-data`, the version format in `recsys-version`.

pub mod front;
pub mod route_command;
pub mod serve_command;
pub mod serving;
