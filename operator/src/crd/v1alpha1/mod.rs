//! `recsys.dev/v1alpha1`.

// kube's `printcolumn(..)` repeats `type_ = ..` per column, which clippy misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

mod common;
mod experiment;
mod item_index;
mod rec_model;
mod retrain_schedule;

pub use common::*;
pub use experiment::*;
pub use item_index::*;
pub use rec_model::*;
pub use retrain_schedule::*;
