//! Batch stages: train retrieval and ranking on a time split, evaluate them on the full catalog,
//! and the end-to-end demo that strings everything together.

pub mod ab;
pub mod cold_start;
pub mod compare;
pub mod demo;
pub mod drift;
pub mod evaluate;
pub mod events_model;
pub mod feature_job;
pub mod html_report;
pub mod index_build;
pub mod labels;
pub mod live_compare;
pub mod mf_baseline;
pub mod ranking;
pub mod report;
pub mod retrieval;
pub mod train;
pub mod tuning;
pub mod validate;
