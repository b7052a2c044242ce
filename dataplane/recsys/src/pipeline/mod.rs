//! Batch stages: train retrieval and ranking on a time split, evaluate them on the full
//! catalog, write the version. Nothing here imports the serving path.

pub mod ab;
pub mod chart_axis;
pub mod cold_start;
pub mod cold_track_plot;
pub mod cold_track_record;
pub mod compare;
pub mod drift;
pub mod ensemble;
pub mod evaluate;
pub mod events_model;
pub mod feature_job;
pub mod fold_metrics;
pub mod html_report;
pub mod index_build;
pub mod labels;
pub mod live;
pub mod mf_baseline;
pub mod ranking;
pub mod recency;
pub mod report;
pub mod retrieval;
pub mod run_result;
pub mod train;
pub mod tuning;
pub mod validate;
