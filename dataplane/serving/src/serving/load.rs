//! `recsys bench-serve`: a load generator for the gRPC API. Fixed concurrency (each worker
//! sends its next request when the last one returns) or a fixed total rate; user ids drawn
//! Zipf-like from a catalog's users, with a share of unknown users; prints throughput, latency
//! percentiles and errors.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recsys_api::v1::recommender_client::RecommenderClient;
use recsys_api::v1::RecommendRequest;
use std::time::{Duration, Instant};

pub struct LoadOptions {
    pub target: String,
    pub concurrency: usize,
    /// Total requests per second across workers; `None` = as fast as responses come back.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub users: Vec<String>,
    pub num_items: u32,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LoadReport {
    pub fn qps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests in {:.1} s: {:.0} req/s; latency p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors",
            self.requests, self.seconds, self.qps(), self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms, self.errors
        )
    }
}

/// Zipf-like choice among `n` users (rank r with weight 1/r), 5 % unknown users.
fn pick_user(rng: &mut StdRng, users: &[String], cumulative: &[f64]) -> String {
    if users.is_empty() || rng.random_bool(0.05) {
        return format!("unknown-{}", rng.random_range(0..1_000_000));
    }
    let x = rng.random_range(0.0..*cumulative.last().expect("non-empty"));
    users[cumulative.partition_point(|&c| c <= x).min(users.len() - 1)].clone()
}

pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    let client = RecommenderClient::connect(options.target.clone()).await?;
    let mut total = 0.0;
    let cumulative: std::sync::Arc<Vec<f64>> = std::sync::Arc::new(
        (1..=options.users.len())
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect(),
    );
    let users = std::sync::Arc::new(options.users);
    let started = Instant::now();
    let deadline = started + options.duration;
    let interval = options
        .rate
        .map(|r| Duration::from_secs_f64(options.concurrency as f64 / r.max(1e-3)));
    let mut tasks = Vec::new();
    let workers = options.concurrency;
    for w in 0..workers {
        let mut client = client.clone();
        let users = std::sync::Arc::clone(&users);
        let cumulative = std::sync::Arc::clone(&cumulative);
        let n = options.num_items;
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(w as u64 + 1);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            // Workers start staggered across one interval, so a fixed rate arrives evenly
            // rather than in bursts of `concurrency` requests at once.
            let mut next =
                started + interval.map_or(Duration::ZERO, |i| i.mul_f64(w as f64 / workers as f64));
            while Instant::now() < deadline {
                // At a fixed rate a request's latency counts from when it was due, not from
                // when a slow answer let it go: a stalled server must not hide its own queue.
                let due = match interval {
                    Some(i) => {
                        tokio::time::sleep_until(next.into()).await;
                        next += i;
                        next - i
                    }
                    None => Instant::now(),
                };
                let user = pick_user(&mut rng, &users, &cumulative);
                let t = due.min(Instant::now());
                let result = client
                    .recommend(RecommendRequest {
                        user_id: user,
                        num_items: n,
                        ..Default::default()
                    })
                    .await;
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                errors += usize::from(result.is_err());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies
            .get(((q * latencies.len() as f64) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(LoadReport {
        requests: latencies.len(),
        errors,
        seconds,
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}
