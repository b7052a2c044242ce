//! The declarative features end to end with a real Redis: `recsys features` writes the offline
//! store, `recsys materialize` copies it to Redis, and the serving path's rows (read from
//! Redis) equal the offline job's training rows bit for bit — no training/serving skew.

use crate::support::RedisServer;
use recsys::pipeline::validate;
use recsys_core::features::{Context, Entity, FeatureEngine, FeatureSpec};
use recsys_core::validation::{check_record, EventType, ValidationConfig};
use recsys_data::events_io;
use recsys_data::features::offline_store::{latest_partition, PartitionTables};
use recsys_data::features::online_store::OnlineStore;
use recsys_data::synthetic::{generate, GeneratorConfig};
use std::path::Path;
use std::process::Command;

const START: i64 = 1_790_000_000 - 1_790_000_000 % 86_400;
const DAY: i64 = 86_400;

fn recsys(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the recsys binary runs")
}

/// (user, item, type, timestamp, device, country, placement) of every clean event.
type Logged = (
    String,
    String,
    EventType,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn logged_events(path: &Path) -> Vec<Logged> {
    let config = ValidationConfig::new(START + 60 * DAY);
    let mut out = Vec::new();
    events_io::for_each_row(path, |_, row| {
        let e = check_record(&row.unwrap(), &config).unwrap();
        let own = |s: Option<&str>| s.map(str::to_owned);
        out.push((
            e.user_id.to_owned(),
            e.item_id.to_owned(),
            e.event_type,
            e.timestamp,
            own(e.device),
            own(e.country),
            own(e.placement),
        ));
        Ok(())
    })
    .unwrap();
    out
}

fn ctx(e: &Logged) -> Context<'_> {
    Context {
        timestamp: e.3,
        device: e.4.as_deref(),
        country: e.5.as_deref(),
        placement: e.6.as_deref(),
    }
}

#[test]
fn serving_rows_from_redis_equal_offline_training_rows_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("events.csv");
    let config = GeneratorConfig {
        days: 21,
        ..GeneratorConfig::new(80_000, START)
    };
    generate(&raw, &config).unwrap();
    let validated = dir.path().join("validated");
    validate::run(&raw, &validated, &ValidationConfig::new(START + 21 * DAY)).unwrap();
    let clean = validated.join(validate::CLEAN_FILE);

    // Features as of the end of day 13; the events of day 14 are the requests.
    let as_of_day = START / DAY + 13;
    let date = chrono::DateTime::from_timestamp(as_of_day * DAY, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let store = dir.path().join("store");
    let out = recsys(&[
        "features",
        "--input",
        clean.to_str().unwrap(),
        "--as-of",
        &date,
        "--store",
        store.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let redis = RedisServer::start();
    let out = recsys(&[
        "materialize",
        "--store",
        store.to_str().unwrap(),
        "--redis-url",
        &redis.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let spec = FeatureSpec::default_spec();
    let partition = latest_partition(&store).unwrap();
    let offline = PartitionTables::load(&partition, &spec).unwrap();
    assert_eq!(offline.manifest.as_of, (as_of_day + 1) * DAY);
    assert!(offline.users.len() > 100 && offline.items.len() > 1000);

    let events = logged_events(&clean);
    let next_day: Vec<&Logged> = events
        .iter()
        .filter(|e| e.3.div_euclid(DAY) == as_of_day + 1)
        .take(400)
        .collect();
    assert_eq!(next_day.len(), 400);

    // Point-in-time: the partition a day-14 request joins saw nothing at or after its start.
    assert!(next_day.iter().all(|e| e.3 >= offline.manifest.as_of));

    let mut online = OnlineStore::connect(&redis.url(), &spec).unwrap();
    let width = spec.vector_names().len();
    let mut known = 0;
    for e in &next_day {
        // A request scores the logged item with two other candidates, one unknown.
        let items = [e.1.as_str(), "i0", "no-such-item"];
        let served = online.candidate_rows(&spec, &e.0, &items, &ctx(e)).unwrap();
        let mut trained = Vec::new();
        for item in items {
            offline.row(&e.0, item, &ctx(e), &mut trained);
        }
        assert_eq!(served.len(), 3 * width);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&served), bits(&trained), "user {} item {}", e.0, e.1);
        known += usize::from(online.read(Entity::User, &[&e.0]).unwrap()[0].is_some());
    }
    assert!(
        known > 300,
        "most of day 14's users were active before: {known}"
    );

    // An unknown user gets the definition's defaults on both paths.
    let c = ctx(next_day[0]);
    let served = online
        .candidate_rows(&spec, "nobody", &["no-such-item"], &c)
        .unwrap();
    let mut trained = Vec::new();
    offline.row("nobody", "no-such-item", &c, &mut trained);
    assert_eq!(served, trained);
    assert_eq!(served[0], spec.user.features[0].default);

    // The stored values are what the engine computes from the events in any order, with the
    // events after the as-of time mixed in (they must change nothing).
    let config = ValidationConfig::new(START + 60 * DAY);
    let mut rows: Vec<_> = Vec::new();
    events_io::for_each_row(&clean, |_, row| {
        rows.push(row.unwrap().to_owned_record());
        Ok(())
    })
    .unwrap();
    rows.reverse();
    let mut engine = FeatureEngine::new(&spec, offline.manifest.as_of);
    for r in &rows {
        engine.observe(&check_record(&r.view(), &config).unwrap());
    }
    let (users, items) = engine.finish();
    for table in [&users, &items] {
        let stored = if table.entity == Entity::User {
            &offline.users
        } else {
            &offline.items
        };
        let index = stored.index();
        assert_eq!(table.len(), stored.len());
        for (i, key) in table.keys.iter().enumerate() {
            assert_eq!(table.row(i), stored.row(index[key.as_str()]), "{key}");
        }
    }
    let u = users.index()[next_day[0].0.as_str()];
    assert_eq!(
        online.read_sequence(&next_day[0].0).unwrap().as_ref(),
        Some(&users.sequences[u])
    );
    assert!(users.sequences.iter().all(|s| s.len() <= 50));

    // Keys expire with the definition's TTL.
    let ttl: i64 = redis::cmd("TTL")
        .arg(online.key(Entity::User, &next_day[0].0))
        .query(
            &mut redis::Client::open(redis.url())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    assert!(
        ttl > 0 && ttl <= spec.user.ttl_hours as i64 * 3600,
        "ttl {ttl}"
    );

    // Redis gone: the serving reader says so precisely (serving falls back to defaults).
    drop(redis);
    let err = format!(
        "{:#}",
        online
            .candidate_rows(&spec, &next_day[0].0, &["i0"], &c)
            .unwrap_err()
    );
    assert!(err.contains("reading features from Redis"), "{err}");
    let out = recsys(&[
        "materialize",
        "--store",
        store.to_str().unwrap(),
        "--redis-url",
        "redis://127.0.0.1:1/",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach Redis at redis://127.0.0.1:1/"),
        "{stderr}"
    );
}

#[test]
fn features_computed_during_validation_equal_the_separate_job() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("events.csv");
    let config = GeneratorConfig {
        days: 10,
        bots: 1,
        ..GeneratorConfig::new(40_000, START)
    };
    generate(&raw, &config).unwrap();
    let date = chrono::DateTime::from_timestamp(START + 6 * DAY, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let (validated, fused, separate) = (
        dir.path().join("validated"),
        dir.path().join("fused"),
        dir.path().join("separate"),
    );
    let now = (START + 10 * DAY).to_string();
    let out = recsys(&[
        "validate",
        "--input",
        raw.to_str().unwrap(),
        "--out-dir",
        validated.to_str().unwrap(),
        "--now",
        &now,
        "--features-as-of",
        &date,
        "--feature-store",
        fused.to_str().unwrap(),
    ]);
    // The bot pushes quality below the alert level (exit 3); the outputs are still written.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = validated.join(validate::CLEAN_FILE);
    let out = recsys(&[
        "features",
        "--input",
        clean.to_str().unwrap(),
        "--as-of",
        &date,
        "--store",
        separate.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let spec = FeatureSpec::default_spec();
    let a = PartitionTables::load(&latest_partition(&fused).unwrap(), &spec).unwrap();
    let b = PartitionTables::load(&latest_partition(&separate).unwrap(), &spec).unwrap();
    assert_eq!(a.users, b.users);
    assert_eq!(a.items, b.items);
    assert_eq!(a.manifest.events_used, b.manifest.events_used);
    assert!(
        a.manifest.rows_rejected > 0,
        "quarantined rows are counted, not fed"
    );
    assert!(a.users.len() > 100);
}

/// The ranker's training rows take their declared values from the model's snapshot; the
/// offline store takes them from `recsys features`. On MovieLens (events, profiles and
/// metadata through the adapter's files) the two are equal bit for bit for every user and item.
#[test]
fn a_versions_training_features_equal_the_offline_jobs() {
    use recsys::pipeline::feature_job;
    use recsys_data::features::FeatureSnapshot;
    use recsys_data::{entity_files, locate, movielens};

    let data = movielens::load(&locate::find_movielens(None).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (events, users, items) = (
        dir.path().join("events.csv"),
        dir.path().join("users.csv"),
        dir.path().join("items.csv"),
    );
    movielens::write_events(&data, &events).unwrap();
    entity_files::write_csv(data.profiles.as_ref().unwrap(), "user_id", &users).unwrap();
    entity_files::write_csv(data.metadata.as_ref().unwrap(), "item_id", &items).unwrap();

    let date = chrono::NaiveDate::from_ymd_opt(1998, 3, 1).unwrap();
    let store = dir.path().join("store");
    let out = recsys(&[
        "features",
        "--input",
        events.to_str().unwrap(),
        "--as-of",
        "1998-03-01",
        "--store",
        store.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--items",
        items.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = FeatureSpec::default_spec();
    let offline = PartitionTables::load(&latest_partition(&store).unwrap(), &spec).unwrap();

    let snapshot =
        FeatureSnapshot::compute(&data, &data.interactions, feature_job::as_of_for(date));
    let declared = &snapshot.declared;
    assert_eq!(declared.as_of, offline.manifest.as_of);
    let user_index = offline.users.index();
    for (u, profile) in data.users.iter().enumerate() {
        let row = offline.users.row(user_index[profile.external_id.as_str()]);
        assert_eq!(
            declared.user(u as u32).unwrap(),
            row,
            "user {}",
            profile.external_id
        );
    }
    let item_index = offline.items.index();
    for (i, meta) in data.items.iter().enumerate() {
        let row = offline.items.row(item_index[meta.external_id.as_str()]);
        assert_eq!(
            declared.item(i as u32).unwrap(),
            row,
            "item {}",
            meta.external_id
        );
    }
    // The profile and metadata columns are really there: ages, genders and years vary.
    let names = spec.user_names();
    let age = names.iter().position(|n| n == "user_age").unwrap();
    let female = names.iter().position(|n| n == "user_gender=F").unwrap();
    let ages: std::collections::BTreeSet<u32> = (0..offline.users.len())
        .map(|r| offline.users.row(r)[age] as u32)
        .collect();
    assert!(ages.len() > 30 && !ages.contains(&0), "{ages:?}");
    let women = (0..offline.users.len())
        .filter(|&r| offline.users.row(r)[female] == 1.0)
        .count();
    assert!(women > 200 && women < 400, "{women} women of 943");
    let year = spec
        .item_names()
        .iter()
        .position(|n| n == "item_year")
        .unwrap();
    let years = (0..offline.items.len())
        .filter(|&r| offline.items.row(r)[year] >= 1990.0)
        .count();
    assert!(years > 1000, "{years} items from the 1990s");
}
