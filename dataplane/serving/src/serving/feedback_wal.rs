//! The write-ahead buffer for accepted feedback. A Feedback call is answered only after its
//! events are in a local segment file and `fdatasync`ed, so an acknowledged event survives a
//! crash (SIGKILL, OOM kill, node reboot with a persistent volume). Each event is one frame:
//! length, CRC-32 of the payload, payload (JSON in the pipeline's event schema). A crash in the
//! middle of a write leaves at most one torn frame at the end of the newest segment; reading
//! stops there, so a torn write can never merge into the next event. The segment being written
//! rotates by size or age; sealed segments go to the training-data location
//! ([`super::feedback_sink`]) and are deleted only after their upload succeeded.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One accepted event, in the pipeline's event schema plus its unique id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub event_id: String,
    pub user_id: String,
    pub item_id: String,
    /// The pipeline's type (`view` for an impression).
    pub event_type: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub value: Option<f64>,
    pub session: String,
    pub device: String,
    pub country: String,
    pub placement: String,
}

/// A frame larger than this is corruption, not an event.
const MAX_FRAME: u32 = 1 << 20;
const SUFFIX: &str = ".wal";

fn segment_name(seq: u64) -> String {
    format!("seg-{seq:016}{SUFFIX}")
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("seg-")?
        .strip_suffix(SUFFIX)?
        .parse()
        .ok()
}

struct Active {
    file: File,
    seq: u64,
    bytes: u64,
    opened: std::time::Instant,
}

pub struct Wal {
    dir: PathBuf,
    active: Mutex<Active>,
    /// The active segment rotates once it holds this many bytes.
    max_segment_bytes: u64,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_segment(dir: &Path, seq: u64) -> std::io::Result<Active> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(dir.join(segment_name(seq)))?;
    // The new file's directory entry must survive a crash too.
    sync_dir(dir)?;
    Ok(Active {
        file,
        seq,
        bytes: 0,
        opened: std::time::Instant::now(),
    })
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| segment_seq(&p).map(|s| (s, p)))
        .collect();
    out.sort();
    Ok(out)
}

impl Wal {
    /// Opens (creating) the buffer in `dir`. Segments left by an earlier process are kept
    /// as sealed, to be flushed; new events go to a fresh segment after them.
    pub fn open(dir: &Path, max_segment_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(0, |(s, _)| s + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            active: Mutex::new(open_segment(dir, next)?),
            max_segment_bytes: max_segment_bytes.max(1),
        })
    }

    /// Appends the records and waits until they are on disk.
    pub fn append(&self, records: &[FeedbackRecord]) -> std::io::Result<()> {
        let mut frames = Vec::with_capacity(records.len() * 160);
        for r in records {
            let payload = serde_json::to_vec(r)?;
            frames.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frames.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            frames.extend_from_slice(&payload);
        }
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.file.write_all(&frames)?;
        active.file.sync_data()?;
        active.bytes += frames.len() as u64;
        if active.bytes >= self.max_segment_bytes {
            let next = active.seq + 1;
            *active = open_segment(&self.dir, next)?;
        }
        Ok(())
    }

    /// Seals the active segment if it holds anything and is at least `min_age` old.
    pub fn rotate(&self, min_age: std::time::Duration) -> std::io::Result<()> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.bytes > 0 && active.opened.elapsed() >= min_age {
            let next = active.seq + 1;
            *active = open_segment(&self.dir, next)?;
        }
        Ok(())
    }

    /// Sealed segments (every one before the active), oldest first.
    pub fn sealed(&self) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner()).seq;
        Ok(segments(&self.dir)?
            .into_iter()
            .filter(|(s, _)| *s < active)
            .collect())
    }

    /// Bytes in the segment being written (a gauge for operators).
    pub fn active_bytes(&self) -> u64 {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

/// What a segment holds: its complete frames, and whether it ended in a torn or corrupt frame
/// (the tail of a write that a crash interrupted; never acknowledged).
#[derive(Debug)]
pub struct Segment {
    pub records: Vec<FeedbackRecord>,
    pub torn_tail: bool,
}

pub fn read_segment(path: &Path) -> std::io::Result<Segment> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    let torn_tail = loop {
        if at == bytes.len() {
            break false;
        }
        let Some(header) = bytes.get(at..at + 8) else {
            break true;
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            break true;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            break true;
        };
        if crc32fast::hash(payload) != crc {
            break true;
        }
        match serde_json::from_slice(payload) {
            Ok(r) => records.push(r),
            Err(_) => break true,
        }
        at += 8 + len as usize;
    };
    Ok(Segment { records, torn_tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32) -> FeedbackRecord {
        FeedbackRecord {
            event_id: format!("e{i}"),
            user_id: format!("u{i}"),
            item_id: "i1".into(),
            event_type: "click".into(),
            timestamp: 1_800_000_000 + i64::from(i),
            value: None,
            session: String::new(),
            device: String::new(),
            country: String::new(),
            placement: "home".into(),
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_never_merges_into_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 1 << 20).unwrap();
        wal.append(&[record(1), record(2)]).unwrap();
        let path = dir.path().join(segment_name(0));
        // A crash halfway through the third write.
        let mut frame = Vec::new();
        let payload = serde_json::to_vec(&record(3)).unwrap();
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload[..payload.len() / 2]);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&frame)
            .unwrap();
        drop(wal);

        // The restarted process seals what it finds and writes to a new segment.
        let wal = Wal::open(dir.path(), 1 << 20).unwrap();
        wal.append(&[record(4)]).unwrap();
        let sealed = wal.sealed().unwrap();
        assert_eq!(sealed.len(), 1);
        let old = read_segment(&sealed[0].1).unwrap();
        assert!(old.torn_tail);
        assert_eq!(old.records, vec![record(1), record(2)]);
        wal.rotate(std::time::Duration::ZERO).unwrap();
        let sealed = wal.sealed().unwrap();
        let new = read_segment(&sealed[1].1).unwrap();
        assert!(!new.torn_tail);
        assert_eq!(new.records, vec![record(4)]);
    }

    #[test]
    fn a_flipped_byte_stops_reading_at_that_frame() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 1 << 20).unwrap();
        wal.append(&[record(1), record(2), record(3)]).unwrap();
        let path = dir.path().join(segment_name(0));
        let mut bytes = std::fs::read(&path).unwrap();
        let second = 8 + serde_json::to_vec(&record(1)).unwrap().len();
        bytes[second + 12] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let s = read_segment(&path).unwrap();
        assert!(s.torn_tail);
        assert_eq!(s.records, vec![record(1)]);
    }

    #[test]
    fn segments_rotate_by_size_and_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 300).unwrap();
        for i in 0..5 {
            wal.append(&[record(i)]).unwrap();
        }
        assert!(wal.sealed().unwrap().len() >= 2, "rotated by size");
        // A fresh segment, then one small record: only age (or a request) seals it.
        wal.rotate(std::time::Duration::ZERO).unwrap();
        let before = wal.sealed().unwrap().len();
        wal.append(&[record(9)]).unwrap();
        wal.rotate(std::time::Duration::from_secs(3600)).unwrap();
        assert_eq!(wal.sealed().unwrap().len(), before, "too young to rotate");
        wal.rotate(std::time::Duration::ZERO).unwrap();
        assert_eq!(wal.sealed().unwrap().len(), before + 1);
        let all: usize = wal
            .sealed()
            .unwrap()
            .iter()
            .map(|(_, p)| read_segment(p).unwrap().records.len())
            .sum();
        assert_eq!(all, 6);
    }
}
