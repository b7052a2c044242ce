//! One module per `recsys` subcommand: its flags (`Args`) and what it runs (`run`). `serve` and
//! `route` live with the server (`recsys_serving::{serve_command, route_command}`), which
//! `recsys-serve` runs too.

pub mod ab;
pub mod args;
pub mod bench_serve;
pub mod build_index;
pub mod demo;
pub mod drift;
pub mod export_movielens;
pub mod features;
pub mod generate;
pub mod materialize;
pub mod publish_items;
pub mod split;
pub mod train;
pub mod train_events;
pub mod validate;
