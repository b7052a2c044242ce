//! Feedback: validate the events clients report, count them per experiment and arm, remember
//! what users saw (so it is not shown again), and persist them — in the pipeline's event
//! schema, each with a new unique `event_id` — to the durable buffer that feeds the training
//! data (and, for local runs, an event log). The loop closes here.

use super::feedback_wal::{FeedbackRecord, Wal};
use super::limits;
use super::metrics::ServingMetrics;
use super::recent::RecentItems;
use recsys_api::v1::{FeedbackEvent, FeedbackRejection};
use recsys_data::events_io::COLUMNS;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::Path;
use std::sync::Mutex;

pub const EVENT_TYPES: [&str; 4] = ["impression", "click", "add_to_cart", "purchase"];

/// The pipeline's event type for a feedback type: an impression is a `view` of the item.
fn pipeline_type(feedback_type: &str) -> &str {
    match feedback_type {
        "impression" => "view",
        other => other,
    }
}

/// Appends events as CSV; flushed after every batch so a crash loses at most one batch.
pub struct EventLog {
    out: Mutex<csv::Writer<BufWriter<File>>>,
}

impl EventLog {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let fresh = !path.exists() || std::fs::metadata(path)?.len() == 0;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut out = csv::Writer::from_writer(BufWriter::new(file));
        if fresh {
            out.write_record(COLUMNS)?;
            out.flush()?;
        }
        Ok(Self {
            out: Mutex::new(out),
        })
    }

    fn append(&self, events: &[(&FeedbackEvent, i64)]) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        for (e, ts) in events {
            let value = if e.value > 0.0 {
                e.value.to_string()
            } else {
                String::new()
            };
            out.write_record([
                e.user_id.as_str(),
                &e.item_id,
                pipeline_type(&e.event_type),
                &ts.to_string(),
                &value,
                &e.request_id,
                "",
                "",
                &e.placement,
            ])?;
        }
        // csv's flush also flushes the BufWriter underneath.
        out.flush()
    }
}

fn check(e: &FeedbackEvent) -> Result<(), String> {
    if e.user_id.trim().is_empty() {
        return Err("user_id is required".into());
    }
    if e.item_id.trim().is_empty() {
        return Err("item_id is required".into());
    }
    limits::check_id("user_id", &e.user_id)?;
    limits::check_id("item_id", &e.item_id)?;
    limits::check_id("request_id", &e.request_id)?;
    limits::check_id("placement", &e.placement)?;
    if !EVENT_TYPES.contains(&e.event_type.as_str()) {
        return Err(format!(
            "unknown event_type {:?}; known: {EVENT_TYPES:?}",
            e.event_type
        ));
    }
    if !e.value.is_finite() || e.value < 0.0 {
        return Err("value must be a non-negative number".into());
    }
    Ok(())
}

/// The durable form of an accepted event.
fn record(e: &FeedbackEvent, ts: i64) -> FeedbackRecord {
    FeedbackRecord {
        event_id: uuid::Uuid::new_v4().to_string(),
        user_id: e.user_id.clone(),
        item_id: e.item_id.clone(),
        event_type: pipeline_type(&e.event_type).to_owned(),
        timestamp: ts,
        value: (e.value > 0.0).then_some(e.value),
        session: e.request_id.clone(),
        device: String::new(),
        country: String::new(),
        placement: e.placement.clone(),
    }
}

/// Whether [`accept`] takes the event.
pub fn is_valid(e: &FeedbackEvent) -> bool {
    check(e).is_ok()
}

/// Accepts the valid events of a batch; returns how many and the rejections. Every valid
/// event is kept for training (new items included); only items the live version knows
/// (`known`) enter the in-process recently-seen lists, so made-up ids cannot grow them.
pub fn accept(
    events: &[FeedbackEvent],
    now: i64,
    metrics: &ServingMetrics,
    recent: &RecentItems,
    log: Option<&EventLog>,
    wal: Option<&Wal>,
    known: impl Fn(&str) -> bool,
) -> std::io::Result<(u32, Vec<FeedbackRejection>)> {
    let mut ok = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match check(e) {
            Ok(()) => ok.push((
                e,
                if e.timestamp_unix > 0 {
                    e.timestamp_unix
                } else {
                    now
                },
            )),
            Err(reason) => rejected.push(FeedbackRejection {
                index: i as u32,
                reason,
            }),
        }
    }
    // Persist first: an event counted but not logged would be lost to training.
    if let Some(wal) = wal {
        let records: Vec<FeedbackRecord> = ok.iter().map(|(e, ts)| record(e, *ts)).collect();
        wal.append(&records)?;
    }
    if let Some(log) = log {
        log.append(&ok)?;
    }
    for (e, ts) in &ok {
        // Labelled by the validated event type only: what a client says its experiment or
        // variant was is neither trusted nor a label (the router counts arms from its table).
        metrics
            .feedback
            .with_label_values(&[e.event_type.as_str()])
            .inc();
        if known(&e.item_id) {
            recent.record(&e.user_id, &e.item_id, *ts);
        }
    }
    Ok((ok.len() as u32, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, item: &str) -> FeedbackEvent {
        FeedbackEvent {
            user_id: user.into(),
            item_id: item.into(),
            event_type: "impression".into(),
            ..Default::default()
        }
    }

    #[test]
    fn long_ids_are_rejected_and_unknown_items_are_kept_but_not_remembered() {
        let metrics = ServingMetrics::default();
        let recent = RecentItems::default();
        let events = vec![
            event("u1", "known"),
            event("u1", &"x".repeat(2048)),
            event("u2", "new-item"),
        ];
        let (accepted, rejected) = accept(&events, 1_000, &metrics, &recent, None, None, |id| {
            id == "known"
        })
        .unwrap();
        assert_eq!(accepted, 2);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].index, 1);
        assert!(rejected[0].reason.contains("item_id is 2048 bytes"));
        assert_eq!(recent.users(), 1, "only the known item was remembered");
    }
}
