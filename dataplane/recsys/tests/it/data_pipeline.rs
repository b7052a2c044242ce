//! Validation on generated data with planted defects, and on MovieLens 100K: every defect is
//! quarantined with its reason, counts reconcile exactly, and PSI behaves.

use recsys::pipeline::{drift, validate};
use recsys_core::validation::{check_record, Reason, ValidationConfig};
use recsys_data::synthetic::{generate, GeneratorConfig, BOT_EVENTS_PER_DAY};
use recsys_data::{events_io, locate, movielens};
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

/// Writes `rows` (text cells by column name) as a Parquet file of text columns.
fn write_text_parquet(path: &std::path::Path, rows: &[Vec<Option<String>>]) {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use std::sync::Arc;
    let columns: Vec<(&str, ArrayRef)> = events_io::COLUMNS
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let cells = rows.iter().map(|r| r[c].as_deref());
            (*name, Arc::new(StringArray::from_iter(cells)) as ArrayRef)
        })
        .collect();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_events_validate_exactly_like_the_same_rows_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("events.csv");
    let config = GeneratorConfig {
        bad_fraction: 0.02,
        ..GeneratorConfig::new(30_000, START)
    };
    generate(&csv_path, &config).unwrap();
    // The same rows as Parquet; rows of the wrong width cannot exist in Parquet, so they are
    // left out of both inputs.
    let mut rows = Vec::new();
    let clean_csv = dir.path().join("readable.csv");
    let mut writer = csv::Writer::from_path(&clean_csv).unwrap();
    writer.write_record(events_io::COLUMNS).unwrap();
    events_io::for_each_row(&csv_path, |_, row| {
        if let Ok(r) = row {
            let r = r.to_owned_record();
            let cells = vec![
                r.user_id,
                r.item_id,
                r.event_type,
                r.timestamp,
                r.value,
                r.session,
                r.device,
                r.country,
                r.placement,
            ];
            writer
                .write_record(cells.iter().map(|c| c.as_deref().unwrap_or("")))
                .unwrap();
            rows.push(cells);
        }
        Ok(())
    })
    .unwrap();
    writer.flush().unwrap();
    let parquet_path = dir.path().join("events.parquet");
    write_text_parquet(&parquet_path, &rows);

    let now = START + i64::from(config.days) * 86_400;
    let from_csv = validate::run(
        &clean_csv,
        &dir.path().join("a"),
        &ValidationConfig::new(now),
    )
    .unwrap();
    let from_parquet = validate::run(
        &parquet_path,
        &dir.path().join("b"),
        &ValidationConfig::new(now),
    )
    .unwrap();
    assert_eq!(from_parquet.tally.rows_in, rows.len() as u64);
    assert!(
        from_parquet.tally.quarantined > 100,
        "{:?}",
        from_parquet.tally
    );
    // An empty CSV cell reads as a missing value, like a Parquet null.
    assert_eq!(from_csv.tally.by_reason, from_parquet.tally.by_reason);
    assert_eq!(
        std::fs::read(dir.path().join("a").join(validate::CLEAN_FILE)).unwrap(),
        std::fs::read(dir.path().join("b").join(validate::CLEAN_FILE)).unwrap()
    );
}

#[test]
fn typed_parquet_columns_are_read_as_the_schema_means_them() {
    use arrow_array::types::Int32Type;
    use arrow_array::{
        ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, RecordBatch,
        StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, columns: Vec<(&str, ArrayRef)>| {
        let path = dir.path().join(name);
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    };
    let t0 = START * 1000 + 1500;
    let path = write(
        "typed.parquet",
        vec![
            (
                "user_id",
                Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef,
            ),
            ("item_id", Arc::new(StringArray::from(vec!["a", "b"]))),
            (
                "event_type",
                Arc::new(DictionaryArray::<Int32Type>::from_iter(["rating", "view"])),
            ),
            (
                "timestamp",
                Arc::new(TimestampMillisecondArray::from(vec![t0, t0 + 1000])),
            ),
            ("value", Arc::new(Float64Array::from(vec![Some(4.5), None]))),
        ],
    );
    let config = ValidationConfig::new(START + 86_400);
    let mut seen = Vec::new();
    events_io::for_each_row(&path, |_, row| {
        let e = check_record(&row.unwrap(), &config).unwrap();
        seen.push((
            e.user_id.to_owned(),
            e.event_type.as_str(),
            e.timestamp,
            e.value,
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            ("7".to_owned(), "rating", START + 1, Some(4.5)),
            ("8".to_owned(), "view", START + 2, None)
        ]
    );

    let bad = write(
        "bad.parquet",
        vec![
            (
                "user_id",
                Arc::new(BooleanArray::from(vec![true])) as ArrayRef,
            ),
            ("item_id", Arc::new(StringArray::from(vec!["a"]))),
            ("event_type", Arc::new(StringArray::from(vec!["view"]))),
            ("timestamp", Arc::new(Int64Array::from(vec![START]))),
        ],
    );
    let err = events_io::for_each_row(&bad, |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `user_id` has type Boolean"), "{err}");
    let missing = write(
        "missing.parquet",
        vec![(
            "user_id",
            Arc::new(StringArray::from(vec!["u"])) as ArrayRef,
        )],
    );
    let err = events_io::for_each_row(&missing, |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `item_id` column"), "{err}");
}
