//! The serving process for real: `recsys serve` started as a child process on loopback,
//! exercised over gRPC and HTTP — ranking shape, business rules on every response, request
//! validation, feedback into the event log and the metrics, hot reload (a corrupt version is
//! refused while serving continues; a good one is swapped in under load without a failed
//! request) and a graceful drain on SIGTERM.

use crate::support::RedisServer;
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, Filters, RecommendRequest, RequestContext};
use recsys_core::features::{Entity, FeatureTable};
use recsys_data::features::online_store::OnlineStore;
use recsys_data::features::FeatureSnapshot;
use recsys_version::{self, Manifest};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A minimal HTTP/1.1 GET: status and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|b| b.1.to_owned())?;
    Some((status, body))
}

struct Server {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn start(root: &Path, log: &Path, extra: &[&str]) -> Server {
    let (grpc, http) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["serve", "--model-dir"])
        .arg(root)
        .args([
            "--addr",
            &grpc.to_string(),
            "--http-addr",
            &http.to_string(),
        ])
        .args(["--reload-secs", "1", "--event-log"])
        .arg(log)
        // This test is about ranking, feedback's effects and reloads; tokens and TLS are
        // tests/it/hardening.rs's.
        .args(["--feedback-auth", "open"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(http, "/readyz").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    Server { child, grpc, http }
}

/// A copy of `from` sealed as a new version named `name` (`tamper` corrupts it afterwards).
fn new_version(from: &Path, root: &Path, name: &str, tamper: bool) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let mut manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(recsys_version::MANIFEST)).unwrap())
            .unwrap();
    manifest.model_version = name.into();
    recsys_version::seal(&dir, manifest).unwrap();
    if tamper {
        let ranker = dir.join("ranker.txt");
        let mut text = std::fs::read_to_string(&ranker).unwrap();
        text.push_str("\n# tampered\n");
        std::fs::write(ranker, text).unwrap();
    }
}

fn metric(http: SocketAddr, line_start: &str) -> f64 {
    let (_, body) = http_get(http, "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Each user's top 10 (item, score) at a fixed request time and device, computed afresh
/// (explained requests never come from the prediction cache).
async fn scores(
    client: &mut RecommenderClient<tonic::transport::Channel>,
    users: &[String],
) -> Vec<Vec<(String, f32)>> {
    let mut out = Vec::new();
    for u in users {
        let r = client
            .recommend(RecommendRequest {
                user_id: u.clone(),
                num_items: 10,
                context: Some(RequestContext {
                    device: "ios".into(),
                    timestamp_unix: 893_000_000,
                    ..Default::default()
                }),
                explain: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.push(r.items.into_iter().map(|i| (i.item_id, i.score)).collect());
    }
    out
}

/// A version's own declared values as the feature tables `recsys materialize` writes.
fn declared_tables(
    snapshot: &FeatureSnapshot,
    catalog: &serde_json::Value,
) -> (FeatureTable, FeatureTable) {
    let ids = |list: &serde_json::Value, field: Option<&str>| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| field.map_or(v, |f| &v[f]).as_str().unwrap().to_owned())
            .collect()
    };
    let d = &snapshot.declared;
    let table = |entity, names, keys, values: &Vec<f32>| FeatureTable {
        entity,
        as_of: d.as_of,
        names,
        keys,
        values: values.clone(),
        sequences: Vec::new(),
    };
    (
        table(
            Entity::User,
            d.spec.user_names(),
            ids(&catalog["user_ids"], None),
            &d.users,
        ),
        table(
            Entity::Item,
            d.spec.item_names(),
            ids(&catalog["items"], Some("external_id")),
            &d.items,
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_process_ranks_validates_learns_from_feedback_and_reloads_safely() {
    let work = tempfile::tempdir().unwrap();
    let trained = crate::support::serve::trained_demo().await;
    let root = work.path().join("models");
    new_version(trained, &root, "v1", false);
    std::fs::write(root.join("CURRENT"), "v1\n").unwrap();
    let log = work.path().join("feedback.csv");
    // A real Redis on loopback for the user-embedding cache.
    let mut redis = RedisServer::start();
    let (redis_port, redis_url) = (redis.port, redis.url());
    // The catalog feed: every 5th item out of stock, every 7th (from 1) only in DE, every
    // 11th (from 2) rated 18, every 13th (from 3) not brand-safe.
    let attributes = work.path().join("item_attributes.csv");
    let mut feed = String::from("item_id,in_stock,regions,age_rating,brand_safe\n");
    for id in 1..=1682u32 {
        feed.push_str(&format!(
            "{id},{},{},{},{}\n",
            id % 5 != 0,
            if id % 7 == 1 { "DE" } else { "" },
            if id % 11 == 2 { 18 } else { 0 },
            id % 13 != 3
        ));
    }
    std::fs::write(&attributes, feed).unwrap();
    let mut server = start(
        &root,
        &log,
        &[
            "--redis-url",
            &redis_url,
            "--item-attributes",
            attributes.to_str().unwrap(),
            "--popular-refresh-secs",
            "1",
        ],
    );
    let id_of = |item: &str| item.parse::<u32>().unwrap();
    let mut client = RecommenderClient::connect(format!("http://{}", server.grpc))
        .await
        .unwrap();
    let catalog: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("v1/catalog.json")).unwrap()).unwrap();
    let category_of: HashMap<String, String> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["external_id"].as_str().unwrap().to_owned(),
                i["genres"][0].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let title_of: HashMap<String, String> = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["external_id"].as_str().unwrap().to_owned(),
                i["title"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();

    // The users the model answers: those with history before the version's cutoff (published
    // as of its test start, it has none for users who first came in the test window; they get
    // the cold list, as unknown ids do).
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("v1/snapshot.json")).unwrap()).unwrap();
    let with_history: HashSet<String> = catalog["user_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(snapshot["users"].as_array().unwrap())
        .filter(|(_, row)| row["history_len"].as_u64().unwrap() > 0)
        .map(|(id, _)| id.as_str().unwrap().to_owned())
        .collect();
    assert!(with_history.len() > 800, "{} users", with_history.len());

    // Shape and business rules on every response, for known and unknown users alike.
    for u in (1..=300)
        .step_by(3)
        .map(|u| u.to_string())
        .chain(["stranger".into()])
    {
        let r = client
            .recommend(RecommendRequest {
                user_id: u.clone(),
                num_items: 20,
                exclude_item_ids: vec!["50".into(), "100".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.items.len(), 20, "user {u}");
        assert_eq!(r.model_version, "v1");
        assert!(!r.request_id.is_empty());
        let ranks: Vec<u32> = r.items.iter().map(|i| i.rank).collect();
        assert_eq!(ranks, (1..=20).collect::<Vec<_>>());
        let mut per_category: HashMap<&str, usize> = HashMap::new();
        for item in &r.items[..10] {
            *per_category.entry(&category_of[&item.item_id]).or_default() += 1;
        }
        assert!(
            per_category.values().all(|&n| n <= 3),
            "user {u}: {per_category:?}"
        );
        assert!(r
            .items
            .iter()
            .all(|i| i.item_id != "50" && i.item_id != "100"));
        assert!(r.items[..10].windows(2).all(|w| w[0].score >= w[1].score));
        let mut ids: Vec<&str> = r.items.iter().map(|i| i.item_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 20, "no duplicates");
        assert_eq!(r.fallback, !with_history.contains(&u), "user {u}");
        // Never out of stock; without a country, never a region-restricted item.
        assert!(
            r.items.iter().all(|i| id_of(&i.item_id) % 5 != 0),
            "user {u}"
        );
        assert!(
            r.items.iter().all(|i| id_of(&i.item_id) % 7 != 1),
            "user {u}"
        );
    }

    // Region, age rating and brand safety from the request.
    let mut german_items = 0;
    for u in (1..=120)
        .step_by(4)
        .map(|u| u.to_string())
        .chain(["stranger".into()])
    {
        for country in ["DE", "US"] {
            let r = client
                .recommend(RecommendRequest {
                    user_id: u.clone(),
                    num_items: 20,
                    context: Some(RequestContext {
                        country: country.into(),
                        ..Default::default()
                    }),
                    filters: Some(Filters {
                        max_age_rating: 16,
                        brand_safe_only: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.items.len(), 20, "user {u} in {country}");
            for id in r.items.iter().map(|i| id_of(&i.item_id)) {
                assert!(
                    id % 5 != 0 && id % 11 != 2 && id % 13 != 3,
                    "user {u}: item {id}"
                );
                if id % 7 == 1 {
                    assert_eq!(
                        country, "DE",
                        "user {u}: DE-only item {id} shown in {country}"
                    );
                    german_items += 1;
                }
            }
        }
    }
    assert!(german_items > 0, "DE-only items reach German requests");

    // Filters: only the asked category.
    let drama = client
        .recommend(RecommendRequest {
            user_id: "416".into(),
            num_items: 5,
            filters: Some(Filters {
                categories: vec!["Drama".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(drama.items.len(), 5);
    for item in &drama.items {
        let genres = catalog["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["external_id"] == item.item_id.as_str())
            .unwrap()["genres"]
            .to_string();
        assert!(genres.contains("Drama"), "{genres}");
    }

    // Bad requests: INVALID_ARGUMENT with a message that says what is wrong.
    for (req, needle) in [
        (
            RecommendRequest {
                user_id: "".into(),
                num_items: 5,
                ..Default::default()
            },
            "user_id",
        ),
        (
            RecommendRequest {
                user_id: "1".into(),
                num_items: 0,
                ..Default::default()
            },
            "num_items",
        ),
        (
            RecommendRequest {
                user_id: "1".into(),
                num_items: 101,
                ..Default::default()
            },
            "num_items",
        ),
        (
            RecommendRequest {
                user_id: "1".into(),
                num_items: 5,
                placement: "moon".into(),
                ..Default::default()
            },
            "placement",
        ),
        (
            RecommendRequest {
                user_id: "1".into(),
                num_items: 5,
                filters: Some(Filters {
                    categories: vec!["Opera".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            "category",
        ),
    ] {
        let status = client.recommend(req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(needle), "{}", status.message());
    }

    // Feedback: logged in the pipeline schema, counted per arm, and seen items are not shown
    // again.
    let before = client
        .recommend(RecommendRequest {
            user_id: "7".into(),
            num_items: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown: Vec<String> = before.items.iter().map(|i| i.item_id.clone()).collect();
    let mut events: Vec<FeedbackEvent> = shown
        .iter()
        .map(|item| FeedbackEvent {
            user_id: "7".into(),
            item_id: item.clone(),
            event_type: "impression".into(),
            variant: "stable".into(),
            experiment: "exp-1".into(),
            request_id: before.request_id.clone(),
            ..Default::default()
        })
        .collect();
    events.push(FeedbackEvent {
        user_id: "7".into(),
        item_id: shown[0].clone(),
        event_type: "teleport".into(),
        ..Default::default()
    });
    let fb = client
        .feedback(FeedbackRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fb.accepted, 5);
    assert_eq!(fb.rejected.len(), 1);
    assert!(fb.rejected[0].reason.contains("event_type"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.starts_with("user_id,item_id,event_type,timestamp"));
    assert_eq!(
        logged
            .lines()
            .filter(|l| l.starts_with("7,") && l.contains(",view,"))
            .count(),
        5
    );
    let after = client
        .recommend(RecommendRequest {
            user_id: "7".into(),
            num_items: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.items.iter().all(|i| !shown.contains(&i.item_id)),
        "seen items are not repeated"
    );
    let impressions = metric(
        server.http,
        "recsys_feedback_events_total{event_type=\"impression\"}",
    );
    assert_eq!(impressions, 5.0);

    // The popular list follows feedback: an item strangers are not shown, bought and clicked
    // by three users, leads a stranger's list within a refresh; the hourly counts are in Redis.
    let stranger_items = |c: &mut RecommenderClient<tonic::transport::Channel>| {
        let mut c = c.clone();
        async move {
            c.recommend(RecommendRequest {
                user_id: "stranger-2".into(),
                num_items: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .items
            .into_iter()
            .map(|i| i.item_id)
            .collect::<Vec<String>>()
        }
    };
    let usual = stranger_items(&mut client).await;
    // In stock, sold everywhere, not age-rated (see the feed above), and not already shown.
    let rising = (1..=1682u32)
        .rev()
        .find(|id| id % 5 != 0 && id % 7 != 1 && id % 11 != 2 && !usual.contains(&id.to_string()))
        .unwrap()
        .to_string();
    let engaged: Vec<FeedbackEvent> = ["1", "2", "3"]
        .iter()
        .flat_map(|user| {
            ["click", "purchase"].map(|kind| FeedbackEvent {
                user_id: (*user).into(),
                item_id: rising.clone(),
                event_type: kind.into(),
                ..Default::default()
            })
        })
        .collect();
    let fb = client
        .feedback(FeedbackRequest { events: engaged })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fb.accepted, 6);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = stranger_items(&mut client).await;
        if now.first() == Some(&rising) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rising} never led the popular list: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut redis_conn = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let hours: Vec<String> = redis::cmd("KEYS")
        .arg("recsys:popular:h:*")
        .query(&mut redis_conn)
        .unwrap();
    assert_eq!(hours.len(), 1, "{hours:?}");
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&hours[0])
        .arg(&rising)
        .query(&mut redis_conn)
        .unwrap();
    assert_eq!(score, 3.0 * (1.0 + 4.0), "a click weighs 1, a purchase 4");

    // Display metadata from the catalog feed (`recsys publish-items`, one day in Redis): odd
    // items have a fresh title, image and price; even ones keep what the version knows.
    let feed_path = work.path().join("display.csv");
    let mut feed = String::from("item_id,title,image_url,price\n");
    for id in (1..=1682u32).filter(|id| id % 2 == 1) {
        feed.push_str(&format!(
            "{id},Fresh {id},https://img.example/{id}.jpg,{}.5\n",
            id % 50
        ));
    }
    std::fs::write(&feed_path, feed).unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["publish-items", "--items"])
        .arg(&feed_path)
        .args(["--redis-url", &redis_url])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg("recsys:item:1")
        .query(&mut redis_conn)
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    let shown = client
        .recommend(RecommendRequest {
            user_id: "416".into(),
            num_items: 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for item in &shown.items {
        let id = id_of(&item.item_id);
        if id % 2 == 1 {
            assert_eq!(item.title, format!("Fresh {id}"));
            assert_eq!(item.image_url, format!("https://img.example/{id}.jpg"));
            assert_eq!(item.price, f64::from(id % 50) + 0.5);
        } else {
            assert_eq!(item.title, title_of[&item.item_id], "the version's title");
            assert_eq!((item.image_url.as_str(), item.price), ("", 0.0));
        }
    }
    assert!(
        metric(
            server.http,
            "recsys_cache_requests_total{cache=\"item_metadata\",result=\"partial\"}"
        ) + metric(
            server.http,
            "recsys_cache_requests_total{cache=\"item_metadata\",result=\"hit\"}"
        ) >= 1.0
    );

    // HTTP surface.
    let (status, body) =
        http_get(server.http, "/recommend?user_id=416&num_items=3&explain=1").unwrap();
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 3);
    assert!(json["timings_ms"]["ranking"].as_f64().is_some(), "{json}");
    let explained = client
        .recommend(RecommendRequest {
            user_id: "416".into(),
            num_items: 3,
            explain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for item in &explained.items {
        assert_eq!(item.top_features.len(), 3, "{item:?}");
        assert!(item.top_features[0].value.abs() >= item.top_features[2].value.abs());
    }
    assert!(explained.timings.iter().any(|t| t.stage == "rules"));
    assert_eq!(
        http_get(server.http, "/recommend?num_items=3").unwrap().0,
        400
    );
    assert_eq!(http_get(server.http, "/healthz").unwrap().0, 200);
    assert!(
        metric(
            server.http,
            "recsys_requests_total{code=\"Ok\",method=\"Recommend\"}"
        ) > 100.0
    );
    assert!(
        metric(
            server.http,
            "recsys_requests_total{code=\"InvalidArgument\",method=\"Recommend\"}"
        ) >= 5.0
    );

    // Declared features from the online store. Nothing is materialized yet, so every read
    // misses and the version's own values are used; materializing exactly those values changes
    // no score (no skew between the two sources); materializing other values changes rankings,
    // so the request path really reads them.
    // Forty users the model answers (cold answers read no features).
    let online_users: Vec<String> = (700..)
        .map(|u: u32| u.to_string())
        .filter(|u| with_history.contains(u))
        .take(40)
        .collect();
    let before = scores(&mut client, &online_users).await;
    let online_metric = |result: &str| {
        metric(
            server.http,
            &format!(
                "recsys_cache_requests_total{{cache=\"online_features\",result=\"{result}\"}}"
            ),
        )
    };
    assert!(online_metric("miss") >= 40.0);
    let snapshot: FeatureSnapshot =
        serde_json::from_slice(&std::fs::read(root.join("v1/snapshot.json")).unwrap()).unwrap();
    let (user_table, item_table) = declared_tables(&snapshot, &catalog);
    let spec = &snapshot.declared.spec;
    let mut store = OnlineStore::connect(&redis_url, spec).unwrap();
    let ttl = Duration::from_secs(600);
    store.write(&user_table, ttl, &|_| {}).unwrap();
    store.write(&item_table, ttl, &|_| {}).unwrap();
    // The marker tells servers that keep item rows in process to drop them.
    store.write_marker(1, ttl).unwrap();
    let same = scores(&mut client, &online_users).await;
    assert_eq!(
        same, before,
        "the same values from Redis must score identically"
    );
    assert!(online_metric("hit") >= 40.0);
    // Every item takes another item's values.
    let mut shuffled = item_table.clone();
    let width = shuffled.width();
    let rows: Vec<&[f32]> = item_table.values.chunks(width).rev().collect();
    shuffled.values = rows.concat();
    store.write(&shuffled, ttl, &|_| {}).unwrap();
    store.write_marker(2, ttl).unwrap();
    let changed = scores(&mut client, &online_users).await;
    let moved = changed.iter().zip(&before).filter(|(a, b)| a != b).count();
    assert!(moved >= 20, "only {moved} of 40 rankings changed");

    // The prediction cache: the same request twice is answered the second time from the
    // cache, with the same items and scores; another hour is computed afresh.
    let ask = |hour: i64| RecommendRequest {
        user_id: "750".into(),
        num_items: 10,
        context: Some(RequestContext {
            timestamp_unix: 893_000_000 + hour * 3600,
            ..Default::default()
        }),
        ..Default::default()
    };
    let prediction_metric = |result: &str| {
        metric(
            server.http,
            &format!("recsys_cache_requests_total{{cache=\"predictions\",result=\"{result}\"}}"),
        )
    };
    let hits_before = prediction_metric("hit");
    let first = client.recommend(ask(0)).await.unwrap().into_inner();
    let again = client.recommend(ask(0)).await.unwrap().into_inner();
    assert_eq!(prediction_metric("hit"), hits_before + 1.0);
    let pairs = |r: &recsys_api::v1::RecommendResponse| -> Vec<(String, f32)> {
        r.items
            .iter()
            .map(|i| (i.item_id.clone(), i.score))
            .collect()
    };
    assert_eq!(pairs(&first), pairs(&again));
    client.recommend(ask(5)).await.unwrap();
    assert_eq!(prediction_metric("hit"), hits_before + 1.0);

    // The cache: repeated users hit it, the vectors are in Redis; then Redis dies mid-test and
    // not one request fails.
    assert!(
        metric(
            server.http,
            "recsys_cache_requests_total{cache=\"user_embedding\",result=\"hit\"}"
        ) >= 1.0
    );
    let keys = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "dbsize"])
        .output()
        .unwrap();
    let keys: u64 = String::from_utf8_lossy(&keys.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(keys >= 100, "{keys} embeddings in redis");
    redis.stop();
    for u in 500..560 {
        let r = client
            .recommend(RecommendRequest {
                user_id: u.to_string(),
                num_items: 5,
                ..Default::default()
            })
            .await
            .expect("redis down must not fail requests")
            .into_inner();
        assert_eq!(r.items.len(), 5);
        // Display metadata falls back to the version's.
        for item in &r.items {
            assert_eq!(item.title, title_of[&item.item_id]);
            assert!(item.image_url.is_empty());
        }
    }
    assert!(
        metric(
            server.http,
            "recsys_cache_requests_total{cache=\"user_embedding\",result=\"error\"}"
        ) >= 1.0
    );

    // A corrupt version is refused; v1 keeps serving.
    new_version(trained, &root, "v2-corrupt", true);
    std::fs::write(root.join("CURRENT"), "v2-corrupt\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        server.http,
        "recsys_model_reloads_total{result=\"refused\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the corrupt version was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let still = client
        .recommend(RecommendRequest {
            user_id: "416".into(),
            num_items: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.model_version, "v1");

    // A good version swaps in under load with no failed request.
    new_version(trained, &root, "v3", false);
    let load = {
        let addr = server.grpc;
        tokio::spawn(async move {
            let mut c = RecommenderClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            let (mut ok, mut versions) = (0, std::collections::BTreeSet::new());
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut u = 0;
            while Instant::now() < deadline {
                u = (u + 1) % 900 + 1;
                let r = c
                    .recommend(RecommendRequest {
                        user_id: u.to_string(),
                        num_items: 10,
                        ..Default::default()
                    })
                    .await
                    .expect("no request fails during a swap")
                    .into_inner();
                versions.insert(r.model_version);
                ok += 1;
            }
            (ok, versions)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(root.join("CURRENT"), "v3\n").unwrap();
    let (ok, versions) = load.await.unwrap();
    assert!(ok > 50, "{ok} requests");
    assert!(versions.contains("v3"), "{versions:?}");

    // The router: a sticky 80/20 split between this server and a canary process, then 50/50
    // from a rewritten table file, with users moving only from stable to canary.
    let canary = start(
        &root,
        &work.path().join("canary.csv"),
        &[
            "--variant",
            "canary",
            "--max-in-flight",
            "1",
            "--max-queue",
            "64",
        ],
    );
    // One request computed at a time: a burst within the queue's bound waits its turn and
    // every request is still answered (beyond the bound: tests/it/hardening.rs).
    let burst: Vec<_> = (0..24)
        .map(|u| {
            let addr = canary.grpc;
            tokio::spawn(async move {
                let mut c = RecommenderClient::connect(format!("http://{addr}"))
                    .await
                    .unwrap();
                c.recommend(RecommendRequest {
                    user_id: (u + 1).to_string(),
                    num_items: 10,
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().items.len())
            })
        })
        .collect();
    for answer in burst {
        assert_eq!(
            answer.await.unwrap().expect("a queued request is answered"),
            10
        );
    }
    assert!(
        metric(
            canary.http,
            "recsys_stage_duration_seconds_count{stage=\"queue\"}"
        ) >= 24.0
    );
    let table_path = work.path().join("routing.json");
    let write_table = |canary_weight: u32| {
        let arms = [
            ("stable", server.grpc, 100 - canary_weight),
            ("canary", canary.grpc, canary_weight),
        ]
        .map(|(name, addr, weight)| recsys_core::routing::WeightedArm {
            name: name.into(),
            endpoint: format!("http://{addr}"),
            model_version: "v3".into(),
            weight,
        });
        let table = recsys_core::routing::RoutingTable::from_weights("exp-salt", &arms).unwrap();
        std::fs::write(&table_path, serde_json::to_vec(&table).unwrap()).unwrap();
    };
    write_table(20);
    let router_addr = free_port();
    let mut router = Command::new(env!("CARGO_BIN_EXE_recsys"))
        .args(["route", "--table"])
        .arg(&table_path)
        .args(["--addr", &router_addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut routed = loop {
        match RecommenderClient::connect(format!("http://{router_addr}")).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut arm_of = HashMap::new();
    for u in 0..1000 {
        let r = routed
            .recommend(RecommendRequest {
                user_id: format!("user-{u}"),
                num_items: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        arm_of.insert(u, r.variant);
    }
    let on_canary = arm_of.values().filter(|v| *v == "canary").count();
    // Binomial(1000, 0.2): sd ≈ 12.6; ±60 is beyond four sigma.
    assert!(
        (on_canary as i64 - 200).abs() < 60,
        "{on_canary} of 1000 on the canary"
    );
    for u in 0..50 {
        let r = routed
            .recommend(RecommendRequest {
                user_id: format!("user-{u}"),
                num_items: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.variant, arm_of[&u], "user-{u} keeps their arm");
    }
    let bad = routed
        .recommend(RecommendRequest {
            user_id: "".into(),
            num_items: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    write_table(50);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut now_canary = 0;
    for u in 0..1000 {
        let r = routed
            .recommend(RecommendRequest {
                user_id: format!("user-{u}"),
                num_items: 3,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if arm_of[&u] == "canary" {
            assert_eq!(
                r.variant, "canary",
                "user-{u} stays on the canary as it grows"
            );
        }
        now_canary += usize::from(r.variant == "canary");
    }
    assert!(
        (now_canary as i64 - 500).abs() < 70,
        "{now_canary} of 1000 at 50 %"
    );
    let _ = router.kill();
    let _ = router.wait();
    drop(canary);

    // SIGTERM: not ready, drain, exit cleanly.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
