//! Every integration test of this package in one binary (one link), a module per behaviour.

#[path = "../../../../operator/tests/it/support/mod.rs"]
mod operator_support;
mod support;

mod adversarial_load;
mod contract;
mod data_pipeline;
mod drift_export;
mod end_to_end;
mod events_model;
mod experiment_e2e;
mod experiment_stats;
mod feature_store;
mod fuzz_indexes;
mod fuzz_inputs;
mod hardening;
mod lean_server;
mod loop_e2e;
mod object_storage;
mod serving;
mod train_pipeline;
mod training_contract;
