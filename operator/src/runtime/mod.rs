//! Process plumbing of the operator binary: metrics, the probe/metrics HTTP endpoint and
//! leader election.

pub mod http;
pub mod leader;
pub mod metrics;
