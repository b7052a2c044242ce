//! The interaction event as every stage sees it after ingest.

use crate::validation::EventType;
use serde::{Deserialize, Serialize};

/// Dense user index (0-based, assigned at ingest).
pub type UserId = u32;
/// Dense item index (0-based, assigned at ingest).
pub type ItemId = u32;

/// One user-item interaction on the global timeline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub user: UserId,
    pub item: ItemId,
    /// Unix seconds, UTC.
    pub timestamp: i64,
    /// Explicit rating or event value; 1.0 for implicit events.
    pub value: f32,
    /// What the user did (MovieLens rows are all ratings).
    #[serde(default = "rating")]
    pub kind: EventType,
    /// Whether the declared label policy ([`crate::labels::LabelPolicy`]) counts it as
    /// relevant; set once at ingest.
    #[serde(default)]
    pub relevant: bool,
}

fn rating() -> EventType {
    EventType::Rating
}

impl Interaction {
    /// Relevance under the label policy applied at ingest.
    pub fn is_relevant(&self) -> bool {
        self.relevant
    }
}
