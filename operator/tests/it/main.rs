//! Every integration test of this package in one binary (one link), a module per behaviour.

mod support;

mod builders;
mod controllers;
mod crd_drift;
mod examples;
mod experiments;
mod leader;
mod retrain;
