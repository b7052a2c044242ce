//! The recsys operator: custom resource types (group `recsys.dev`) and, in later modules, the
//! controllers that reconcile them. This crate links no native ML library.

pub mod builders;
pub mod controllers;
pub mod crd;
pub mod runtime;
pub mod schedule;
