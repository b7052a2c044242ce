//! The whole path on real MovieLens 100K with the real native libraries: train, evaluate,
//! publish, verify, serve over gRPC, refuse a corrupted version.

use recsys::demo;
use recsys::pipeline::index_build::{self, IndexBuildOptions};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use recsys_data::features::profile::ProfileKey;
use recsys_data::features::FeatureSnapshot;
use recsys_models::IndexKind;
use recsys_serving::serving::{grpc, Engine, EngineError, EngineOptions, ServingState};
use recsys_version::{self, bundle};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_trains_publishes_and_serves_a_real_recommendation() {
    // The demo's own run, shared with the serving tests (trained once per test process).
    let summary = crate::support::serve::trained_demo_summary().await;
    // This test tampers with its version at the end: a copy, not the shared one.
    let out = tempfile::tempdir().unwrap();
    let version = crate::support::copy_dir(&summary.artifact_dir, out.path(), "version");

    // Six systems × {all, warm, cold}; every metric is a proportion.
    assert_eq!(summary.rows.len(), 18);
    assert!(summary.rows.iter().any(|r| r.system == "MF (ALS)"));
    assert!(summary.rows.iter().any(|r| r.system == "two-tower+rules"));
    for row in &summary.rows {
        for v in [
            row.recall_at_10,
            row.recall_at_50.mean,
            row.recall_at_100,
            row.ndcg_at_10.mean,
            row.map_at_10,
        ] {
            assert!(
                (0.0..=1.0).contains(&v),
                "{} {} = {v}",
                row.system,
                row.subset
            );
        }
    }
    assert_eq!(
        summary.rows[0].users, 153,
        "the 80/10/10 split has 153 evaluated users"
    );
    // Far above chance: a random list of 100 of ~1,600 unseen items recalls about 6 %.
    let two_stage = summary
        .rows
        .iter()
        .find(|r| r.system == "two-tower+ranker" && r.subset == "all")
        .unwrap();
    assert!(
        two_stage.recall_at_100 > 0.2,
        "recall@100 {}",
        two_stage.recall_at_100
    );
    assert!(summary.ranker_auc.unwrap() > 0.6);
    assert_eq!(summary.recommended_titles.len(), 10);

    // The report: plots inline, the verdict stated, and both files sealed in the manifest.
    let page = std::fs::read_to_string(version.join(demo::REPORT_FILE)).unwrap();
    assert!(
        page.matches("<svg").count() >= 3,
        "recall, comparison and score plots"
    );
    assert!(page.contains("no comparable previous version"));
    assert_eq!(
        summary.verdict.decision,
        recsys::pipeline::compare::Decision::NoPreviousVersion
    );
    let manifest = recsys_version::verify(&version, None).unwrap();
    for file in [demo::REPORT_FILE, "evaluation.json"] {
        assert!(manifest.files.contains_key(file), "{file} is sealed");
    }
    assert!(summary.recommended_titles.iter().all(|t| !t.is_empty()));

    // The published version verifies, serves, and rejects bad requests precisely.
    recsys_version::verify(&version, None).expect("manifest checksums hold");
    let state = Arc::new(ServingState::new(Engine::load(&version).unwrap(), None));
    let (addr, server) = grpc::bind(
        state,
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let server = tokio::spawn(server);
    let mut client = RecommenderClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let ok = client
        .recommend(RecommendRequest {
            user_id: "416".into(),
            num_items: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.items.len(), 20);
    assert!(!ok.fallback);
    assert_eq!(
        ok.items.iter().map(|i| i.rank).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    // Business rules: the diversified top 10 is in score order, and so is the rest (an item
    // held back from the top 10 by the per-category cap may outscore the 10th).
    assert!(ok.items[..10].windows(2).all(|w| w[0].score >= w[1].score));
    assert!(ok.items[10..].windows(2).all(|w| w[0].score >= w[1].score));
    let unknown = client
        .recommend(RecommendRequest {
            user_id: "no-such-user".into(),
            num_items: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unknown.fallback);
    assert_eq!(unknown.items.len(), 5);
    let bad = client
        .recommend(RecommendRequest {
            user_id: String::new(),
            num_items: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    server.abort();

    // The ItemIndex Job: an exact index is published and served beside the model; a poor
    // IVF setting misses its target and is not published.
    let built = index_build::run(&IndexBuildOptions {
        model_dir: version.display().to_string(),
        output: out.path().join("index-flat").display().to_string(),
        kind: IndexKind::Flat,
        tune_probes: false,
        recall_k: 100,
        recall_target: 0.95,
        sample_queries: 200,
        result_file: Some(out.path().join("result.json")),
    })
    .unwrap();
    assert_eq!(
        (built.items, built.recall, built.published),
        (1682, 1.0, true)
    );
    let line = std::fs::read_to_string(out.path().join("result.json")).unwrap();
    assert!(line.contains("\"artifactUri\""), "{line}");
    let engine = Engine::load_with(
        &version,
        EngineOptions {
            index_dir: Some(out.path().join("index-flat")),
            candidates: 100,
            variant: "canary".into(),
            ..EngineOptions::default()
        },
    )
    .unwrap();
    assert_eq!(engine.variant(), "canary");
    let poor = index_build::run(&IndexBuildOptions {
        model_dir: version.display().to_string(),
        output: out.path().join("index-poor").display().to_string(),
        kind: IndexKind::Ivf {
            nlist: 64,
            nprobe: 1,
        },
        tune_probes: false,
        recall_k: 100,
        recall_target: 0.99,
        sample_queries: 200,
        result_file: None,
    })
    .unwrap();
    assert!(!poor.published && poor.recall < 0.99, "{poor:?}");
    assert!(!out.path().join("index-poor").exists());
    // The same lists with the probe count left open: the fewest reaching the target are kept.
    let tuned = index_build::run(&IndexBuildOptions {
        model_dir: version.display().to_string(),
        output: out.path().join("index-tuned").display().to_string(),
        kind: IndexKind::Ivf {
            nlist: 64,
            nprobe: 1,
        },
        tune_probes: true,
        recall_k: 100,
        recall_target: 0.99,
        sample_queries: 200,
        result_file: None,
    })
    .unwrap();
    assert!(tuned.published && tuned.recall >= 0.99, "{tuned:?}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("index-tuned/ann.json")).unwrap())
            .unwrap();
    let nprobe = saved["kind"]["nprobe"].as_u64().unwrap();
    assert!((2..=64).contains(&nprobe), "{saved}");

    profile_segments_reach_known_users_without_history(&version, out.path());

    // A tampered file refuses the whole version.
    let ranker = version.join("ranker.txt");
    let mut text = std::fs::read_to_string(&ranker).unwrap();
    text.push_str("\n# tampered\n");
    std::fs::write(&ranker, text).unwrap();
    match Engine::load(&version) {
        Err(EngineError::Artifact(e)) => assert!(
            e.to_string().contains("ranker.txt checksum mismatch"),
            "{e}"
        ),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a tampered version must be refused"),
    }
}

/// A copy of the version whose users "1" (M) and "2" (F) have no history yet and whose cold
/// lists are split by gender: each gets their segment's list, an unknown user the one list.
fn profile_segments_reach_known_users_without_history(version: &Path, scratch: &Path) {
    let dir = crate::support::copy_dir(version, scratch, "segmented");
    let catalog: bundle::Catalog =
        serde_json::from_slice(&std::fs::read(dir.join(bundle::CATALOG_FILE)).unwrap()).unwrap();
    let dense = |id: &str| catalog.user_ids.iter().position(|u| u == id).unwrap();
    let mut snapshot: FeatureSnapshot =
        serde_json::from_slice(&std::fs::read(dir.join(bundle::SNAPSHOT_FILE)).unwrap()).unwrap();
    for (id, gender) in [("1", "M"), ("2", "F")] {
        let u = &mut snapshot.users[dense(id)];
        assert_eq!(
            u.gender.as_deref(),
            Some(gender),
            "MovieLens's profile of user {id}"
        );
        u.history_len = 0;
        u.seen.clear();
    }
    std::fs::write(
        dir.join(bundle::SNAPSHOT_FILE),
        serde_json::to_vec(&snapshot).unwrap(),
    )
    .unwrap();
    let list = |first: u32| {
        (first..first + 3)
            .map(|i| (i, 3.0 - (i - first) as f32))
            .collect()
    };
    let cold = bundle::ColdStart {
        policy: "test".into(),
        as_of: snapshot.cutoff,
        items: list(30),
        model_for_known_cold_users: false,
        by_profile: Some(bundle::SegmentLists {
            key: ProfileKey::Gender,
            lists: BTreeMap::from([("F".into(), list(10)), ("M".into(), list(20))]),
        }),
    };
    // The cold lists written and the copy resealed, so only the loader can object.
    let write_cold = |cold: &bundle::ColdStart| {
        std::fs::write(
            dir.join(bundle::COLD_START_FILE),
            serde_json::to_vec(cold).unwrap(),
        )
        .unwrap();
        recsys_version::seal(&dir, recsys_version::verify(version, None).unwrap()).unwrap();
    };
    write_cold(&cold);

    let engine = Engine::load(&dir).unwrap();
    let exclude = HashSet::new();
    let served = |user: &str| {
        let rec = engine
            .recommend(&recsys_serving::serving::Query::new(user, 3, &exclude))
            .unwrap();
        assert!(rec.fallback, "{user} is served a list, not the model");
        let mut items: Vec<u32> = rec.items.iter().map(|x| x.0).collect();
        items.sort_unstable();
        items
    };
    assert_eq!(served("2"), [10, 11, 12], "F's list");
    assert_eq!(served("1"), [20, 21, 22], "M's list");
    assert_eq!(served("no-such-user"), [30, 31, 32], "the one list");

    // A segment list naming an item outside the catalog refuses the version.
    let mut bad = cold;
    bad.by_profile
        .as_mut()
        .unwrap()
        .lists
        .insert("F".into(), vec![(1_000_000, 1.0)]);
    write_cold(&bad);
    let err = Engine::load(&dir).err().expect("refused").to_string();
    assert!(err.contains("outside the catalog"), "{err}");
}
