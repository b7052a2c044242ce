//! An adversarial load test on loopback, bounded in count and time: while a well-behaved
//! client asks for recommendations at a steady rate, attackers flood Feedback (without a
//! token, and with a leaked one: new user ids, unknown items), send Recommends with the
//! largest exclusion list allowed (and one past it), hold slow HTTP connections that never
//! finish their headers, and open thousands of gRPC connections that never speak — while
//! fresh well-behaved clients keep connecting.
//!
//! Asserted: the well-behaved clients see no error at all; every hostile request gets the
//! answer its bound promises (UNAUTHENTICATED, INVALID_ARGUMENT, a closed connection); the
//! server's resident memory stays under `RSS_BOUND`. Latency is measured and printed (the
//! quiet and attacked p50/p99 of the same client), never asserted: the figures go into
//! docs/benchmarks.md.
//!
//! `cargo test --release -p recsys --test it adversarial_load:: -- --nocapture`

use crate::support::serve::{rss_bytes, serve, trained_demo};
use rand::{Rng, SeedableRng};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::{FeedbackEvent, FeedbackRequest, RecommendRequest};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

/// How long each phase (quiet, attacked) lasts, and the well-behaved client's rate.
const PHASE: Duration = Duration::from_secs(10);
const GOOD_PER_SEC: u64 = 40;
/// Attack sizes: fixed, so every run does the same work.
const FEEDBACK_CALLS_PER_SEC: u64 = 20;
const EXCLUSION_CALLS_PER_SEC: u64 = 20;
const SLOW_HTTP_CLIENTS: usize = 300;
const SILENT_GRPC_CONNECTIONS: usize = 3000;
const MAX_PENDING: usize = 512;
/// The server's resident memory may not pass this (it starts near 150 MiB with this version).
const RSS_BOUND: u64 = 512 << 20;
const TOKEN: &str = "load-test-writer";
/// MovieLens 100K's catalog: items `1..=1682`, users `1..=943`.
const ITEMS: u32 = 1682;
const USERS: u32 = 943;

async fn channel(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn recommend(user: u32) -> RecommendRequest {
    RecommendRequest {
        user_id: user.to_string(),
        num_items: 10,
        ..Default::default()
    }
}

/// What the well-behaved client saw: latencies of answers, and every error.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl Seen {
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1]
    }
}

/// `GOOD_PER_SEC` Recommends for distinct known users, one at a time, for `PHASE`.
async fn well_behaved(port: u16, first_user: u32) -> Seen {
    let mut client = RecommenderClient::new(channel(port).await);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / GOOD_PER_SEC));
    let mut seen = Seen::default();
    let end = Instant::now() + PHASE;
    let mut user = first_user;
    while Instant::now() < end {
        tick.tick().await;
        user = user % USERS + 1;
        let started = Instant::now();
        match client.recommend(recommend(user)).await {
            Ok(r) if r.get_ref().items.len() == 10 => seen.latencies.push(started.elapsed()),
            Ok(r) => seen
                .errors
                .push(format!("{} items for user {user}", r.get_ref().items.len())),
            Err(s) => seen.errors.push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    seen
}

/// New clients connecting during the attack: each connects, asks once, and goes.
async fn fresh_clients(port: u16, n: usize) -> Seen {
    let mut seen = Seen::default();
    for i in 0..n {
        tokio::time::sleep(PHASE / n as u32).await;
        let started = Instant::now();
        let answer = async {
            let ch = Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect_timeout(Duration::from_secs(5))
                .connect()
                .await
                .map_err(|e| format!("connect: {e}"))?;
            RecommenderClient::new(ch)
                .recommend(recommend(1 + i as u32))
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        };
        match answer.await {
            Ok(_) => seen.latencies.push(started.elapsed()),
            Err(e) => seen.errors.push(e),
        }
    }
    seen
}

/// Counts of gRPC codes a hostile loop got.
#[derive(Default, Debug)]
struct Codes(std::collections::BTreeMap<String, u64>);

impl Codes {
    fn add(&mut self, code: tonic::Code) {
        *self.0.entry(format!("{code:?}")).or_default() += 1;
    }
    fn only(&self, code: tonic::Code) -> bool {
        self.0.keys().all(|k| *k == format!("{code:?}")) && !self.0.is_empty()
    }
}

/// Feedback batches of the largest allowed size, every user id new (the longest allowed),
/// half the items outside the catalog, every event naming a new experiment and variant (to
/// squat the metric labels); with `token`, or with none.
async fn feedback_flood(port: u16, token: Option<&str>, accepted: Arc<AtomicU64>) -> Codes {
    let mut client = RecommenderClient::new(channel(port).await);
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(token.is_some()));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FEEDBACK_CALLS_PER_SEC));
    let mut codes = Codes::default();
    let end = Instant::now() + PHASE;
    let mut n = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let events = (0..recsys_serving::serving::limits::MAX_FEEDBACK_EVENTS)
            .map(|i| {
                n += 1;
                let item = if i % 2 == 0 {
                    rng.random_range(1..=ITEMS).to_string()
                } else {
                    format!("not-an-item-{n}")
                };
                FeedbackEvent {
                    user_id: format!(
                        "{n:0>width$}",
                        width = recsys_serving::serving::limits::MAX_ID_BYTES
                    ),
                    item_id: item,
                    event_type: if i % 3 == 0 { "purchase" } else { "impression" }.into(),
                    experiment: format!("squat-{n}"),
                    variant: format!("squat-{n}"),
                    ..Default::default()
                }
            })
            .collect();
        let mut request = tonic::Request::new(FeedbackRequest { events });
        if let Some(t) = token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        match client.feedback(request).await {
            Ok(r) => {
                codes.add(tonic::Code::Ok);
                accepted.fetch_add(u64::from(r.get_ref().accepted), Ordering::Relaxed);
            }
            Err(s) => codes.add(s.code()),
        }
    }
    codes
}

/// Recommends excluding the largest allowed list of catalog items (most of this catalog),
/// and one past the bound each second.
async fn exclusion_flood(port: u16) -> (Codes, Codes) {
    let max = recsys_serving::serving::limits::MAX_EXCLUDED_ITEMS;
    let mut client = RecommenderClient::new(channel(port).await);
    let mut tick =
        tokio::time::interval(Duration::from_micros(1_000_000 / EXCLUSION_CALLS_PER_SEC));
    let (mut at_bound, mut past_bound) = (Codes::default(), Codes::default());
    let end = Instant::now() + PHASE;
    let mut i = 0u32;
    while Instant::now() < end {
        tick.tick().await;
        i += 1;
        let over = i.is_multiple_of(EXCLUSION_CALLS_PER_SEC as u32);
        let mut r = recommend(1 + i % USERS);
        r.exclude_item_ids = (1..=(max + usize::from(over)) as u32)
            .map(|k| ((k + i) % ITEMS + 1).to_string())
            .collect();
        let code = match client.recommend(r).await {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        if over {
            past_bound.add(code)
        } else {
            at_bound.add(code)
        }
    }
    (at_bound, past_bound)
}

/// Slow HTTP clients: each starts a request and sends one header byte a second, never
/// finishing. Returns how many the server closed before the phase ended.
async fn slow_http(port: u16) -> usize {
    let clients = (0..SLOW_HTTP_CLIENTS).map(|_| async move {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .is_err()
        {
            return true;
        }
        let end = Instant::now() + PHASE;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if s.write_all(b"a").await.is_err() {
                return true;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(10), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // The server may answer 408 before closing.
                Ok(Ok(_)) => return true,
                Err(_) => {}
            }
        }
        false
    });
    futures_util::future::join_all(clients)
        .await
        .into_iter()
        .filter(|&closed| closed)
        .count()
}

/// gRPC connections that never send a byte. Returns how many the server closed.
async fn silent_flood(port: u16) -> usize {
    let end = Instant::now() + PHASE;
    let mut held = Vec::new();
    for _ in 0..SILENT_GRPC_CONNECTIONS {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("the attacker could not connect: {e}"),
        }
        if held.len() % 100 == 0 {
            tokio::time::sleep(PHASE / (SILENT_GRPC_CONNECTIONS as u32 / 50)).await;
        }
    }
    // The server catches up with its backlog once the flood is over.
    tokio::time::sleep_until((end + Duration::from_secs(1)).into()).await;
    let mut closed = 0;
    for mut s in held {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    closed
}

/// Lets this process hold the attackers' sockets (the soft limit is often 1024).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn own_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_client_is_served_through_floods_and_memory_stays_bounded() {
    raise_fd_limit();
    let work = tempfile::tempdir().unwrap();
    let version = trained_demo().await;
    let tokens = work.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let args: Vec<String> = [
        "--auth-tokens-file",
        tokens.to_str().unwrap(),
        // Every answer computed: no cache hides the cost of the attack.
        "--prediction-ttl-secs",
        "0",
        "--max-pending-connections",
        &MAX_PENDING.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let log = work.path().join("serve.log");
    let (server, grpc, http) = serve(version, &args, &log);
    let pid = server.pid();

    // Resident memory, sampled through both phases.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Warm up: first requests load lazily what they need.
    let warm = well_behaved_n(grpc, 20).await;
    assert!(warm.errors.is_empty(), "{:?}", warm.errors);
    let rss_start = rss_bytes(pid).unwrap();

    let quiet = std::thread::spawn(move || own_runtime().block_on(well_behaved(grpc, 0)))
        .join()
        .unwrap();
    let rss_quiet = peak.load(Ordering::Relaxed);

    let leaked_accepted = Arc::new(AtomicU64::new(0));
    let anonymous_accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // The well-behaved clients run on a thread of their own, so what they measure is the
    // server, not this process's attackers queueing ahead of them.
    let well_behaved_clients = std::thread::spawn(move || {
        own_runtime()
            .block_on(async { tokio::join!(well_behaved(grpc, 300), fresh_clients(grpc, 20)) })
    });
    let (anonymous, leaked, exclusions, slow_closed, silent_closed) = tokio::join!(
        feedback_flood(grpc, None, Arc::clone(&anonymous_accepted)),
        feedback_flood(grpc, Some(TOKEN), Arc::clone(&leaked_accepted)),
        exclusion_flood(grpc),
        slow_http(http),
        silent_flood(grpc),
    );
    let (attacked, fresh) = well_behaved_clients.join().unwrap();
    let attack_secs = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let rss_peak = peak.load(Ordering::Relaxed);
    let (at_bound, past_bound) = exclusions;

    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!("adversarial load, {attack_secs:.1} s attacked:");
    println!(
        "  well-behaved, quiet:    {} answers, p50 {:.2} ms, p99 {:.2} ms, errors {}",
        quiet.latencies.len(),
        ms(quiet.percentile(0.5)),
        ms(quiet.percentile(0.99)),
        quiet.errors.len()
    );
    println!(
        "  well-behaved, attacked: {} answers, p50 {:.2} ms, p99 {:.2} ms, errors {} (p99 ratio {:.2})",
        attacked.latencies.len(),
        ms(attacked.percentile(0.5)),
        ms(attacked.percentile(0.99)),
        attacked.errors.len(),
        ms(attacked.percentile(0.99)) / ms(quiet.percentile(0.99))
    );
    println!(
        "  fresh clients during the flood: {} answered, slowest {:.1} ms, errors {}",
        fresh.latencies.len(),
        fresh.latencies.iter().max().map_or(0.0, |d| ms(*d)),
        fresh.errors.len()
    );
    println!("  feedback without a token: {:?}", anonymous.0);
    println!(
        "  feedback with a leaked token: {:?}, {} events accepted",
        leaked.0,
        leaked_accepted.load(Ordering::Relaxed)
    );
    println!(
        "  recommends excluding {} items: {:?}; one past the bound: {:?}",
        recsys_serving::serving::limits::MAX_EXCLUDED_ITEMS,
        at_bound.0,
        past_bound.0
    );
    println!("  slow HTTP clients closed by the server: {slow_closed} of {SLOW_HTTP_CLIENTS}");
    println!(
        "  silent gRPC connections closed by the server: {silent_closed} of {SILENT_GRPC_CONNECTIONS} (at most {MAX_PENDING} kept pending)"
    );
    println!(
        "  server RSS: {:.0} MiB after warm-up, {:.0} MiB peak quiet, {:.0} MiB peak attacked (bound {:.0} MiB)",
        mib(rss_start),
        mib(rss_quiet),
        mib(rss_peak),
        mib(RSS_BOUND)
    );

    assert!(quiet.errors.is_empty(), "quiet: {:?}", quiet.errors);
    assert!(
        attacked.errors.is_empty(),
        "attacked: {:?}",
        attacked.errors
    );
    assert!(fresh.errors.is_empty(), "fresh clients: {:?}", fresh.errors);
    assert_eq!(fresh.latencies.len(), 20);
    assert!(
        anonymous.only(tonic::Code::Unauthenticated),
        "{anonymous:?}"
    );
    assert_eq!(anonymous_accepted.load(Ordering::Relaxed), 0);
    assert!(leaked.only(tonic::Code::Ok), "{leaked:?}");
    // Every valid event is kept for training (unknown items too; they only stay out of the
    // in-process lists), and nothing was lost.
    let calls = leaked.0.values().sum::<u64>();
    assert_eq!(
        leaked_accepted.load(Ordering::Relaxed),
        calls * recsys_serving::serving::limits::MAX_FEEDBACK_EVENTS as u64
    );
    assert!(at_bound.only(tonic::Code::Ok), "{at_bound:?}");
    assert!(
        past_bound.only(tonic::Code::InvalidArgument),
        "{past_bound:?}"
    );
    assert_eq!(
        slow_closed, SLOW_HTTP_CLIENTS,
        "slow clients outlived the header timeout"
    );
    assert!(
        silent_closed >= SILENT_GRPC_CONNECTIONS - MAX_PENDING,
        "{silent_closed} silent connections closed"
    );
    assert!(
        rss_peak < RSS_BOUND,
        "RSS peaked at {:.0} MiB",
        mib(rss_peak)
    );
    // Still serving, and still counting real experiments by name.
    let after = well_behaved_n(grpc, 5).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    drop(server);
}

/// `n` Recommends in a row (warm-up and the last check).
async fn well_behaved_n(port: u16, n: u32) -> Seen {
    let mut client = RecommenderClient::new(channel(port).await);
    let mut seen = Seen::default();
    for user in 1..=n {
        let started = Instant::now();
        match client.recommend(recommend(user)).await {
            Ok(_) => seen.latencies.push(started.elapsed()),
            Err(s) => seen.errors.push(format!("{:?}: {}", s.code(), s.message())),
        }
    }
    seen
}
