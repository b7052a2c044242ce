//! Batch stages: train retrieval and ranking on a time split, evaluate them on the full catalog,
//! and the end-to-end demo that strings everything together.

pub mod demo;
pub mod evaluate;
pub mod labels;
pub mod ranking;
pub mod report;
pub mod retrieval;
