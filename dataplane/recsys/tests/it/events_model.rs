//! `recsys train-events` (the unevaluated fast path) end to end at small scale: generated events → validation → a
//! servable version whose recommendations follow the users' generated taste clusters.

use recsys::pipeline::events_model::{self, EventsModelOptions};
use recsys::pipeline::feature_job::EntityFiles;
use recsys::pipeline::validate;
use recsys_core::validation::ValidationConfig;
use recsys_data::features::FeatureSnapshot;
use recsys_data::synthetic::{generate, write_catalog, GeneratorConfig};
use recsys_serving::serving::{Engine, Query};
use std::collections::HashSet;

const START: i64 = 1_790_000_000 - 1_790_000_000 % 86_400;

#[test]
fn a_model_trained_from_events_serves_each_user_their_taste_cluster() {
    let _turn = crate::support::training_turn_blocking();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("events.csv");
    let config = GeneratorConfig {
        bots: 0,
        bad_fraction: 0.0,
        ..GeneratorConfig::new(150_000, START)
    };
    generate(&raw, &config).unwrap();
    let (users, items) = (dir.path().join("users.csv"), dir.path().join("items.csv"));
    write_catalog(&config, &users, &items).unwrap();
    let validated = dir.path().join("validated");
    validate::run(
        &raw,
        &validated,
        &ValidationConfig::new(START + 31 * 86_400),
    )
    .unwrap();
    let options = EventsModelOptions {
        holdout_days: 7,
        epochs: 2,
        ranker_users: 300,
        ranker_trees: 50,
        version: "v1".into(),
        files: EntityFiles::load(Some(&users), Some(&items)).unwrap(),
        columns: Default::default(),
        labels: "click,add_to_cart,purchase".parse().unwrap(),
    };
    let version =
        events_model::train(&validated.join(validate::CLEAN_FILE), dir.path(), &options).unwrap();
    let engine = Engine::load(&version).unwrap();
    // Every catalog item is servable, with or without events; titles and categories come
    // from the metadata file.
    assert_eq!(engine.items().len(), config.items as usize);
    let i7 = engine.item_by_external_id("i7").unwrap();
    assert_eq!(engine.items().get(i7).title, "Item 7");
    assert_eq!(engine.items().get(i7).category, "cluster-7");
    // The profile and metadata columns reached the ranker's features: prices and ages vary.
    let snapshot: FeatureSnapshot =
        serde_json::from_slice(&std::fs::read(version.join("snapshot.json")).unwrap()).unwrap();
    let d = &snapshot.declared;
    let column = |names: Vec<String>, name: &str| names.iter().position(|n| n == name).unwrap();
    let (price, iw) = (
        column(d.spec.item_names(), "item_price"),
        d.spec.item.width(),
    );
    let prices: HashSet<u32> = d
        .items
        .chunks(iw)
        .map(|r| (r[price] * 100.0) as u32)
        .collect();
    assert!(prices.len() > 100, "{} distinct prices", prices.len());
    let (age, uw) = (column(d.spec.user_names(), "user_age"), d.spec.user.width());
    assert!(d.users.chunks(uw).all(|r| (16.0..75.0).contains(&r[age])));

    let exclude = HashSet::new();
    let mut on_taste = 0;
    let mut total = 0;
    for user in (0..config.users).step_by(config.users as usize / 40) {
        let id = format!("u{user}");
        let rec = engine.recommend(&Query::new(&id, 10, &exclude)).unwrap();
        if rec.fallback {
            continue;
        }
        let cluster = format!("cluster-{}", user % config.clusters);
        for (item, _) in &rec.items {
            total += 1;
            on_taste += usize::from(engine.items().get(*item).category == cluster);
        }
    }
    assert!(total >= 300, "{total} recommendations");
    // The generator gives each user one taste cluster; the diversity rule allows at most 3
    // per category in the top 10, so ~30 % on-taste is the ceiling a perfect model reaches,
    // 5 % what chance gives.
    let share = on_taste as f64 / total as f64;
    eprintln!("on-taste share {share:.3} of {total}");
    assert!(
        share > 0.15,
        "{share:.3} of recommendations in the user's cluster"
    );
}
