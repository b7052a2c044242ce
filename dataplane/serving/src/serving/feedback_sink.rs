//! Moves sealed feedback segments to the training-data location: Parquet in the pipeline's
//! event schema (plus `event_id`), partitioned `date=YYYY-MM-DD/hour=HH/` by event time, in a
//! local directory or object storage. A segment is deleted only after every partition file
//! it produced was written, so delivery is at-least-once: a crash between upload and delete
//! uploads the segment again (under the same object name, and with the same event ids, which
//! `recsys validate` deduplicates on).

use super::feedback_wal::{read_segment, FeedbackRecord, Wal};
use anyhow::Context;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use recsys_data::remote;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct FeedbackSink {
    /// A directory or an object-storage prefix (`s3://…`, `file://…`).
    pub location: String,
    /// Names this process's files apart from its replicas' (the pod name).
    pub instance: String,
}

/// What one flush moved.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Flushed {
    pub segments: usize,
    pub events: usize,
    /// Segments whose last frame was torn by a crash (its event was never acknowledged).
    pub torn: usize,
}

fn partition(ts: i64) -> String {
    let t = chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default();
    t.format("date=%Y-%m-%d/hour=%H").to_string()
}

fn schema() -> Arc<Schema> {
    let text = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        text("user_id"),
        text("item_id"),
        text("event_type"),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        text("session"),
        text("device"),
        text("country"),
        text("placement"),
        text("event_id"),
    ]))
}

/// One Parquet file of `records`.
pub fn parquet_bytes(records: &[&FeedbackRecord]) -> anyhow::Result<Vec<u8>> {
    let schema = schema();
    let text = |f: fn(&FeedbackRecord) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(records.iter().map(|r| f(r))))
    };
    let columns: Vec<ArrayRef> = vec![
        text(|r| &r.user_id),
        text(|r| &r.item_id),
        text(|r| &r.event_type),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.timestamp),
        )),
        Arc::new(Float64Array::from_iter(records.iter().map(|r| r.value))),
        text(|r| &r.session),
        text(|r| &r.device),
        text(|r| &r.country),
        text(|r| &r.placement),
        text(|r| &r.event_id),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(out)
}

impl FeedbackSink {
    /// Writes one file; locally through a temporary name, so a reader never sees half a file.
    fn write(&self, relative: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        if remote::is_remote(&self.location) {
            return remote::put_bytes(&remote::join(&self.location, relative), bytes);
        }
        let path = std::path::Path::new(&self.location).join(relative);
        let dir = path.parent().context("a partition directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Seals the active segment when it is at least `min_age` old, then moves every sealed
    /// segment; stops at the first failure (the rest wait for the next flush).
    pub fn flush(&self, wal: &Wal, min_age: std::time::Duration) -> anyhow::Result<Flushed> {
        wal.rotate(min_age)?;
        let mut done = Flushed::default();
        for (seq, path) in wal.sealed()? {
            let segment =
                read_segment(&path).with_context(|| format!("reading {}", path.display()))?;
            let mut by_hour: BTreeMap<String, Vec<&FeedbackRecord>> = BTreeMap::new();
            for r in &segment.records {
                by_hour.entry(partition(r.timestamp)).or_default().push(r);
            }
            for (hour, records) in &by_hour {
                let name = format!("{hour}/part-{}-{seq:016}.parquet", self.instance);
                self.write(&name, parquet_bytes(records)?)?;
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the flushed {}", path.display()))?;
            done.segments += 1;
            done.events += segment.records.len();
            done.torn += usize::from(segment.torn_tail);
        }
        Ok(done)
    }
}

/// Flushes every `period` (first at once: segments a crashed process left are moved before
/// new ones); a failed flush is logged and retried next period, the segments stay on disk.
pub async fn run(sink: Arc<FeedbackSink>, wal: Arc<Wal>, period: std::time::Duration) {
    loop {
        let (s, w) = (Arc::clone(&sink), Arc::clone(&wal));
        match tokio::task::spawn_blocking(move || s.flush(&w, period)).await {
            Ok(Ok(f)) if f.segments > 0 => tracing::info!(
                segments = f.segments,
                events = f.events,
                torn = f.torn,
                location = %sink.location,
                "feedback flushed"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "feedback flush failed; kept on disk for the next one")
            }
            Err(e) => tracing::error!(error = %e, "feedback flusher panicked"),
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_their_hours_partitions_and_the_segment_goes() {
        let wal_dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let wal = Wal::open(wal_dir.path(), 1 << 20).unwrap();
        let record = |id: &str, ts: i64| FeedbackRecord {
            event_id: id.into(),
            user_id: "u1".into(),
            item_id: "i1".into(),
            event_type: "purchase".into(),
            timestamp: ts,
            value: Some(9.5),
            session: "r1".into(),
            device: String::new(),
            country: String::new(),
            placement: "home".into(),
        };
        // 2026-12-01 10:59:59 and 11:00:00 UTC.
        wal.append(&[record("a", 1_796_122_799), record("b", 1_796_122_800)])
            .unwrap();
        let sink = FeedbackSink {
            location: out.path().display().to_string(),
            instance: "pod-0".into(),
        };
        let flushed = sink.flush(&wal, std::time::Duration::ZERO).unwrap();
        assert_eq!((flushed.segments, flushed.events), (1, 2));
        for hour in ["10", "11"] {
            let part = out.path().join(format!(
                "date=2026-12-01/hour={hour}/part-pod-0-0000000000000000.parquet"
            ));
            assert!(part.exists(), "{}", part.display());
        }
        assert!(wal.sealed().unwrap().is_empty());
        assert_eq!(
            sink.flush(&wal, std::time::Duration::ZERO).unwrap(),
            Flushed::default()
        );
    }
}
