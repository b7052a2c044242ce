//! ANN benchmark on generated embeddings: build time, recall@k against exact search and
//! one-query-at-a-time latency percentiles. Run with `OMP_NUM_THREADS=1` for single-thread
//! query latency:
//!
//! `OMP_NUM_THREADS=1 cargo run --release -p recsys-models --example ann_bench -- 1000000 ivf:4096:64 ivfpq:4096:128:32 hnsw:32:512`
//!
//! `noise:X` sets the per-dimension spread around cluster centres (default 0.08); larger values
//! blur the clusters and make the search harder (0.5 is close to uniformly random directions,
//! the worst case for any ANN index). `latent:R` instead draws every vector from an R-dim
//! linear subspace (plus a little noise), the low intrinsic dimension of learned embeddings.

use rand::{rngs::StdRng, Rng, SeedableRng};
use recsys_models::{AnnIndex, IndexKind};
use std::time::Instant;

const DIM: usize = 128;
const CLUSTERS: usize = 2000;
const QUERIES: usize = 200;
const K: usize = 500;

/// Unit vectors scattered around random cluster centres, like item embeddings of taste groups.
fn clustered(n: usize, rng: &mut StdRng, centres: &[f32], spread: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let c = rng.random_range(0..CLUSTERS);
        let start = out.len();
        for d in 0..DIM {
            let noise: f32 = rng.random_range(-1.0..1.0);
            out.push(centres[c * DIM + d] + spread * noise);
        }
        normalise(&mut out[start..]);
    }
    out
}

/// Unit vectors `normalise(W·z + ε)` with z uniform in [-1, 1]^R and a fixed random W.
fn latent(n: usize, rng: &mut StdRng, basis: &[f32], rank: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * DIM);
    let mut z = vec![0f32; rank];
    for _ in 0..n {
        z.iter_mut().for_each(|x| *x = rng.random_range(-1.0..1.0));
        let start = out.len();
        for d in 0..DIM {
            let row = &basis[d * rank..(d + 1) * rank];
            let v: f32 = row.iter().zip(&z).map(|(w, x)| w * x).sum();
            out.push(v + 0.01 * rng.random_range(-1.0..1.0f32));
        }
        normalise(&mut out[start..]);
    }
    out
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

fn parse(spec: &str) -> IndexKind {
    let parts: Vec<u32> = spec
        .split(':')
        .skip(1)
        .map(|p| p.parse().expect("numeric parameter"))
        .collect();
    match spec.split(':').next() {
        Some("flat") => IndexKind::Flat,
        Some("ivf") => IndexKind::Ivf {
            nlist: parts[0],
            nprobe: parts[1],
        },
        Some("hnsw") => IndexKind::Hnsw {
            m: parts[0],
            ef_search: parts[1],
        },
        Some("ivfpq") => IndexKind::IvfPq {
            nlist: parts[0],
            nprobe: parts[1],
            m: parts[2],
            nbits: 8,
        },
        Some("ivfsq8") => IndexKind::IvfSq8 {
            nlist: parts[0],
            nprobe: parts[1],
        },
        _ => panic!(
            "index spec must be flat, ivf:NLIST:NPROBE, ivfsq8:NLIST:NPROBE, ivfpq:NLIST:NPROBE:M or hnsw:M:EF"
        ),
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64) as usize).min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let spread: f32 = args
        .iter()
        .find_map(|a| a.strip_prefix("noise:"))
        .map_or(Ok(0.08), str::parse)?;
    let kinds: Vec<IndexKind> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("noise:") && !a.starts_with("latent:"))
        .map(|s| parse(s))
        .collect();
    let mut rng = StdRng::seed_from_u64(42);
    let mut centres: Vec<f32> = (0..CLUSTERS * DIM)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    centres.chunks_mut(DIM).for_each(normalise);
    let rank: Option<usize> = args
        .iter()
        .find_map(|a| a.strip_prefix("latent:"))
        .map(str::parse)
        .transpose()?;
    let t = Instant::now();
    let (items, queries, what) = match rank {
        Some(r) => {
            let basis: Vec<f32> = (0..DIM * r).map(|_| rng.random_range(-1.0..1.0)).collect();
            (
                latent(n, &mut rng, &basis, r),
                latent(QUERIES, &mut rng, &basis, r),
                format!("rank-{r} latent"),
            )
        }
        None => (
            clustered(n, &mut rng, &centres, spread),
            clustered(QUERIES, &mut rng, &centres, spread),
            format!("clustered, noise {spread}"),
        ),
    };
    println!(
        "generated {n} × {DIM} item vectors ({what}) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let ids: Vec<u32> = (0..n as u32).collect();
    let t = Instant::now();
    let exact = AnnIndex::build(IndexKind::Flat, DIM, &items, ids.clone())?;
    println!("flat: built in {:.1} s", t.elapsed().as_secs_f64());

    println!("| index | build s | recall@{K} | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for kind in std::iter::once(IndexKind::Flat).chain(kinds) {
        let t = Instant::now();
        let index = if kind == IndexKind::Flat {
            None
        } else {
            Some(AnnIndex::build(kind, DIM, &items, ids.clone())?)
        };
        let build = t.elapsed().as_secs_f64();
        let index = index.as_ref().unwrap_or(&exact);
        let recall = index.recall_against(&exact, &queries, K)?;
        let mut latencies: Vec<f64> = queries
            .chunks(DIM)
            .map(|q| {
                let t = Instant::now();
                let hits = index.search(q, K).map(|h| h.len());
                let ms = t.elapsed().as_secs_f64() * 1e3;
                assert_eq!(hits.ok(), Some(K));
                ms
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {kind:?} | {build:.1} | {recall:.4} | {:.3} | {:.3} | {:.3} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
    Ok(())
}
