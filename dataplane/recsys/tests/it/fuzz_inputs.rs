//! Bounded fuzzing on stable Rust (proptest; cargo-fuzz needs nightly): every input a client
//! or a file can hand the data plane, generated or mutated, must get an answer or a precise
//! error — never a panic. Targets: Recommend validation, Feedback events, the `grpc-timeout`
//! header, the routing table file, the feedback WAL's segment reader, and the loader of every file a model version holds (each
//! mutated, resealed so the checksums pass, loaded, and asked for recommendations). Each runs
//! a fixed number of cases (`PROPTEST_CASES` overrides), so CI time stays bounded.
//!
//! Found by these and fixed, each with a regression test of its own: a `grpc-timeout` ending
//! in a multi-byte character panicked (`limits::grpc_timeout`); a snapshot whose indices point
//! outside it, an index naming items outside the catalog, and a prediction-cache entry with
//! an out-of-range item were not refused.

use crate::support::corrupt::{ask, loaded_files, mutate_json, mutated, version};
use proptest::collection::vec;
use proptest::prelude::*;
use recsys_api::v1::{FeedbackEvent, Filters, RecommendRequest};
use recsys_core::routing::{bucket, RoutingTable, WeightedArm, BUCKETS};
use recsys_serving::serving::engine::Engine;
use recsys_serving::serving::feedback_wal::{self, FeedbackRecord, Wal};
use recsys_serving::serving::limits::{self, MAX_CATEGORIES, MAX_EXCLUDED_ITEMS, MAX_ID_BYTES};
use recsys_serving::serving::{feedback, router, state};
use recsys_version::{self, Manifest, MANIFEST};
use serde_json::Value;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

/// `n` cases from this file's fixed seed.
fn cases(n: u32) -> ProptestConfig {
    crate::support::corrupt::cases(n, 0x5eed_f022)
}

/// Ids around the length bound, ASCII and not.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{0,12}",
        1 => Just(" ".to_owned()),
        1 => "\\PC{0,8}",
        1 => (MAX_ID_BYTES - 2..MAX_ID_BYTES + 3).prop_map(|n| "x".repeat(n)),
        1 => (MAX_ID_BYTES / 2 - 1..MAX_ID_BYTES / 2 + 2).prop_map(|n| "é".repeat(n)),
    ]
}

fn within(id: &str) -> bool {
    id.len() <= MAX_ID_BYTES
}

prop_compose! {
    fn request()(
        user_id in id(),
        num_items in prop_oneof![0u32..=101, any::<u32>()],
        placement in prop_oneof![Just(String::new()), Just("home".to_owned()), Just("search".to_owned()), "[a-z]{1,8}"],
        exclude_n in prop_oneof![0usize..5, MAX_EXCLUDED_ITEMS - 1..MAX_EXCLUDED_ITEMS + 2],
        exclude_odd in proptest::option::of(id()),
        categories in proptest::option::of(prop_oneof![vec(id(), 0..4), vec(Just("c".to_owned()), MAX_CATEGORIES..MAX_CATEGORIES + 2)]),
    ) -> RecommendRequest {
        let mut exclude_item_ids: Vec<String> = (0..exclude_n).map(|i| format!("i{i}")).collect();
        if let (Some(odd), Some(first)) = (exclude_odd, exclude_item_ids.first_mut()) {
            *first = odd;
        }
        RecommendRequest {
            user_id,
            num_items,
            placement,
            exclude_item_ids,
            filters: categories.map(|categories| Filters { categories, ..Default::default() }),
            ..Default::default()
        }
    }
}

prop_compose! {
    fn event()(
        user_id in id(),
        item_id in id(),
        event_type in prop_oneof![
            Just("impression".to_owned()), Just("click".to_owned()), Just("purchase".to_owned()),
            Just("view".to_owned()), "\\PC{0,10}"],
        request_id in id(),
        placement in id(),
        value in prop_oneof![Just(0.0f64), 0.0f64..1e6, Just(-1.0), Just(f64::NAN), Just(f64::INFINITY)],
        timestamp_unix in any::<i64>(),
    ) -> FeedbackEvent {
        FeedbackEvent { user_id, item_id, event_type, request_id, placement, value, timestamp_unix, ..Default::default() }
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn a_recommend_request_is_accepted_exactly_when_every_bound_holds(req in request()) {
        let expected = !req.user_id.trim().is_empty()
            && within(&req.user_id)
            && req.exclude_item_ids.len() <= MAX_EXCLUDED_ITEMS
            && req.exclude_item_ids.iter().all(|i| within(i))
            && req.filters.as_ref().is_none_or(|f| {
                f.categories.len() <= MAX_CATEGORIES && f.categories.iter().all(|c| within(c))
            })
            && (1..=state::MAX_ITEMS).contains(&req.num_items)
            && (req.placement.is_empty() || state::PLACEMENTS.contains(&req.placement.as_str()));
        match state::validate(&req) {
            Ok(()) => prop_assert!(expected, "accepted {req:?}"),
            Err(status) => {
                prop_assert!(!expected, "refused a valid request: {status}");
                prop_assert_eq!(status.code(), tonic::Code::InvalidArgument);
            }
        }
    }

    #[test]
    fn a_feedback_event_is_accepted_exactly_when_it_is_valid(e in event()) {
        let expected = !e.user_id.trim().is_empty()
            && !e.item_id.trim().is_empty()
            && [&e.user_id, &e.item_id, &e.request_id, &e.placement].iter().all(|s| within(s))
            && feedback::EVENT_TYPES.contains(&e.event_type.as_str())
            && e.value.is_finite()
            && e.value >= 0.0;
        prop_assert_eq!(feedback::is_valid(&e), expected, "{:?}", e);
    }

    #[test]
    fn any_grpc_timeout_header_parses_or_is_ignored(value in prop_oneof!["\\PC{0,10}", "[0-9]{1,9}[HMSmun]"]) {
        let parsed = limits::grpc_timeout(&value);
        let well_formed = (2..=9).contains(&value.len())
            && value.is_ascii()
            && value[..value.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && "HMSmun".contains(&value[value.len() - 1..]);
        prop_assert_eq!(parsed.is_some(), well_formed, "{:?}", value);
    }
}

/// A WAL segment of `n` events as the server writes it, then damaged: bits flipped,
/// truncated, or bytes spliced in at a random place.
fn damaged_segment(n: u32, seed: u64, how: u8) -> (Vec<FeedbackRecord>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), 1 << 30).unwrap();
    let records: Vec<FeedbackRecord> = (0..n)
        .map(|i| FeedbackRecord {
            event_id: format!("e{seed}-{i}"),
            user_id: format!("u{}", seed.wrapping_mul(u64::from(i) + 1) % 977),
            item_id: format!("i{i}"),
            event_type: ["view", "click", "purchase"][i as usize % 3].into(),
            timestamp: 1_800_000_000 + i64::from(i),
            value: (i % 3 == 2).then_some(9.5),
            session: String::new(),
            device: String::new(),
            country: "de".into(),
            placement: "home".into(),
        })
        .collect();
    wal.append(&records).unwrap();
    wal.rotate(std::time::Duration::ZERO).unwrap();
    let (_, path) = wal.sealed().unwrap().pop().expect("a sealed segment");
    let original = std::fs::read(&path).unwrap();
    let mut bytes = original.clone();
    let at = (seed as usize) % bytes.len().max(1);
    match how % 3 {
        0 => {
            for k in 0..=(seed % 4) as usize {
                let i = (at + k * 131) % bytes.len();
                bytes[i] ^= 1 << ((seed >> (k * 3)) % 8);
            }
        }
        1 => bytes.truncate(at),
        _ => {
            let junk: Vec<u8> = (0..(seed % 64) as u8)
                .map(|b| b.wrapping_mul(37) ^ how)
                .collect();
            bytes.splice(at..at, junk);
        }
    }
    (records, original, bytes)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_damaged_wal_segment_yields_a_prefix_of_what_was_written(n in 1u32..40, seed in any::<u64>(), how in any::<u8>()) {
        let (written, original, bytes) = damaged_segment(n, seed, how);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg-0000000000000001.wal");
        std::fs::write(&path, &bytes).unwrap();
        let read = feedback_wal::read_segment(&path).unwrap();
        // Every frame is length- and CRC-checked: what comes back is what was written, up to
        // the first damage, and the damage is reported (unless it fell on a frame boundary).
        prop_assert!(read.records.len() <= written.len());
        prop_assert_eq!(&read.records[..], &written[..read.records.len()]);
        if bytes == original {
            prop_assert!(!read.torn_tail);
            prop_assert_eq!(read.records.len(), written.len());
        } else if read.records.len() == written.len() {
            prop_assert!(read.torn_tail, "damage past the last frame went unreported");
        }
    }
}

/// A valid table from weights, then as its JSON with bytes flipped or a field replaced.
fn table_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(0u32..=100, 1..4),
        "[a-z0-9]{0,8}",
        any::<u64>(),
        0usize..4,
    )
        .prop_map(|(mut weights, salt, seed, how)| {
            let sum: u32 = weights.iter().sum();
            if sum != 100 && how != 3 {
                // Mostly valid weights, so mutations start from a table the router would load.
                let last = weights.len() - 1;
                weights[last] = 100u32.saturating_sub(sum - weights[last]);
            }
            let arms: Vec<WeightedArm> = weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| WeightedArm {
                    name: format!("arm{i}"),
                    endpoint: format!("http://arm{i}:50051"),
                    model_version: format!("v{i}"),
                    weight,
                })
                .collect();
            let text = match RoutingTable::from_weights(&salt, &arms) {
                Ok(t) => serde_json::to_string(&t).unwrap(),
                Err(_) => format!("{{\"salt\":\"{salt}\",\"arms\":[]}}"),
            };
            let mut bytes = text.into_bytes();
            match how {
                0 => {}
                1 => {
                    let at = (seed as usize) % bytes.len();
                    bytes[at] ^= 1 << (seed % 8);
                }
                2 => bytes.truncate((seed as usize) % bytes.len()),
                _ => {
                    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
                    mutate_json(&mut v, seed);
                    bytes = serde_json::to_vec(&v).unwrap();
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn a_routing_table_file_loads_only_when_it_tiles_the_buckets(bytes in table_bytes(), users in vec("[a-z0-9]{1,12}", 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routing.json");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(table) = router::read_table(&path) {
            // A loaded table sends every user to the arm whose range holds their bucket.
            let mut next = 0;
            for arm in &table.arms {
                prop_assert_eq!(arm.bucket_start, next);
                next = arm.bucket_end;
            }
            prop_assert_eq!(next, BUCKETS);
            for u in &users {
                let b = bucket(&table.salt, u);
                let arm = table.assign(u);
                prop_assert!(arm.bucket_start <= b && b < arm.bucket_end);
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_corrupt_version_file_is_refused_or_served_never_a_panic(file_pick in any::<usize>(), seed in any::<u64>(), how in any::<u8>()) {
        let files = loaded_files();
        let file = &files[file_pick % files.len()];
        let work = tempfile::tempdir().unwrap();
        let dir = mutated(file, seed, how, work.path());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if let Ok(engine) = Engine::load(&dir) {
                let exclude: HashSet<u32> = [0, 1, u32::MAX].into_iter().collect();
                for user in ["u1", "u7", "someone-new"] {
                    let _ = ask(&engine, user, &exclude);
                }
            }
        }));
        prop_assert!(outcome.is_ok(), "{file} mutated (seed {seed}, how {how}) panicked");
    }
}

#[test]
fn the_unmutated_fixture_loads_and_answers() {
    // The property above is only meaningful if the untouched version loads.
    let engine = Engine::load(version()).unwrap();
    let exclude = HashSet::new();
    let rec = ask(&engine, "u1", &exclude).unwrap();
    assert_eq!(rec.items.len(), 10);
    assert!(loaded_files().len() >= 6, "{:?}", loaded_files());
}

/// A copy of the version with one JSON file edited by `edit`, resealed.
fn edited(file: &str, into: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = mutated(file, 0, 2, into);
    // `how` 2 truncated nothing useful; start again from the original bytes.
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(version().join(file)).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(dir.join(file), serde_json::to_vec(&v).unwrap()).unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
    recsys_version::seal(&dir, manifest).unwrap();
    dir
}

fn refusal(dir: &Path) -> String {
    match Engine::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_index_naming_an_item_outside_the_catalog_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = edited("ann.json", work.path(), |v| {
        v["item_ids"][0] = serde_json::json!(4_000_000_000u32);
    });
    let e = refusal(&dir);
    assert!(e.contains("item id 4000000000 outside the model's"), "{e}");
}

#[test]
fn a_snapshot_pointing_outside_itself_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = edited("snapshot.json", work.path(), |v| {
        v["users"][1]["seen"] = serde_json::json!([7_000_000]);
    });
    let e = refusal(&dir);
    assert!(e.contains("seen item 7000000 outside"), "{e}");
}
