//! Helpers shared by the operator test binaries; each uses only some of them.
#![allow(dead_code)]

pub mod fake_api;
pub mod prometheus;
pub mod world;
