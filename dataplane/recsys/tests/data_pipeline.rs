//! Validation on generated data with planted defects, and on MovieLens 100K: every defect is
//! quarantined with its reason, counts reconcile exactly, and PSI behaves.

use recsys::data::synthetic::{generate, GeneratorConfig, BOT_EVENTS_PER_DAY};
use recsys::data::{locate, movielens};
use recsys::pipeline::{drift, validate};
use recsys_core::validation::{Reason, ValidationConfig};
use std::collections::{BTreeMap, HashMap};

const START: i64 = 1_790_000_000 - 1_790_000_000 % 86_400;

fn quarantine_reasons(dir: &std::path::Path) -> HashMap<u64, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(dir.join(validate::QUARANTINE_FILE))
        .unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_owned())
        })
        .collect()
}

#[test]
fn every_planted_defect_is_quarantined_with_its_reason_and_counts_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    let config = GeneratorConfig {
        bad_fraction: 0.02,
        bots: 2,
        ..GeneratorConfig::new(200_000, START)
    };
    let generated = generate(&input, &config).unwrap();
    let planted_kinds: BTreeMap<Reason, usize> =
        generated
            .planted
            .iter()
            .fold(BTreeMap::new(), |mut m, (_, r)| {
                *m.entry(*r).or_default() += 1;
                m
            });
    // Every defect class the generator knows was planted at least once.
    assert_eq!(planted_kinds.len(), 11, "{planted_kinds:?}");
    assert_eq!(
        planted_kinds[&Reason::BotUser] as u32 % BOT_EVENTS_PER_DAY,
        0,
        "bots write whole days"
    );

    let now = START + i64::from(config.days) * 86_400;
    let out = dir.path().join("validated");
    let report = validate::run(&input, &out, &ValidationConfig::new(now)).unwrap();
    assert_eq!(report.tally.rows_in, generated.rows);
    assert_eq!(
        report.tally.rows_in,
        report.tally.clean + report.tally.quarantined
    );
    let reasons = quarantine_reasons(&out);
    for (row, reason) in &generated.planted {
        assert_eq!(
            reasons.get(row).map(String::as_str),
            Some(reason.as_str()),
            "row {row}"
        );
    }
    assert_eq!(
        reasons.len(),
        generated.planted.len(),
        "nothing but the planted rows is quarantined"
    );
    let clean_rows = csv::Reader::from_path(out.join(validate::CLEAN_FILE))
        .unwrap()
        .records()
        .count() as u64;
    assert_eq!(clean_rows, report.tally.clean);
    assert_eq!(report.bot_users, 2);
    assert!(report.quality_rate > 0.9 && report.quality_rate < 1.0);
    assert!(out.join(validate::REPORT_FILE).exists());
    assert!(report.summary().contains("quarantined"));
}

#[test]
fn movielens_events_validate_clean_and_psi_behaves() {
    let data = movielens::load(&locate::find_movielens(None).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("ml100k.csv");
    movielens::write_events(&data, &events).unwrap();
    let last = data.last_timestamp().unwrap();
    let report = validate::run(
        &events,
        &dir.path().join("v"),
        &ValidationConfig::new(last + 86_400),
    )
    .unwrap();
    assert_eq!(report.tally.rows_in, 100_000);
    assert_eq!(report.tally.clean, 100_000, "{:?}", report.tally.by_reason);
    assert!(!report.alert);

    // PSI: a window against itself is 0 for every feature; against a shifted window (generated
    // data, a different mix and cycle) it is above the retrain threshold somewhere.
    let same = drift::compare(&events, &events).unwrap();
    assert!(same.iter().all(|f| f.psi.abs() < 1e-12), "{same:?}");
    let other = dir.path().join("gen.csv");
    generate(&other, &GeneratorConfig::new(20_000, START)).unwrap();
    let shifted = drift::compare(&events, &other).unwrap();
    assert!(shifted[0].psi > 0.2, "{shifted:?}");
}
