//! Pure domain logic shared by the operator and the data plane.
//!
//! Nothing here performs I/O or links native code: the event schema, the global-timeline
//! split, popularity baselines and the offline metrics of `shared/EVALUATION.md`.

pub mod baseline;
pub mod bootstrap;
pub mod drift;
pub mod event;
pub mod features;
pub mod labels;
pub mod metrics;
pub mod ranking;
pub mod redact;
pub mod routing;
pub mod rules;
pub mod split;
pub mod stats;
pub mod validation;

pub use event::{Interaction, ItemId, UserId};
pub use split::{SplitWindows, TimeSplit};
