//! Every integration test of this package in one binary (one link), a module per behaviour.

mod sequential_simulation;
mod stats_reference;
