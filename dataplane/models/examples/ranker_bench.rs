//! Ranker batch-scoring benchmark: time to score one request's 500 candidates, one thread.
//!
//! `cargo run --release -p recsys-models --example ranker_bench` trains the reference model
//! of DESIGN.md §8 (200 trees × 31 leaves over 100 features, on 50,000 generated rows) and
//! times it; `-- path/to/ranker.txt` times a trained model file instead (its own features).

use recsys_models::{GroupedRows, Ranker, RankerParams};
use std::time::Instant;

const CANDIDATES: usize = 500;
const REPEATS: usize = 2000;

type Scorer = fn(&Ranker, &[f32]) -> Result<Vec<f64>, recsys_models::ModelError>;

/// A deterministic pseudo-random value in [0, 1) for (row, column).
fn value(row: usize, col: usize) -> f32 {
    let x = (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (col as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    let x = (x ^ (x >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((x >> 40) as f32) / (1u64 << 24) as f32
}

fn rows(n: usize, features: usize, offset: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|r| (0..features).map(move |c| value(r + offset, c)))
        .collect()
}

fn reference_model() -> Result<Ranker, Box<dyn std::error::Error>> {
    const FEATURES: usize = 100;
    let n = 50_000;
    let x = rows(n, FEATURES, 0);
    let labels: Vec<f32> = x
        .chunks(FEATURES)
        .map(|r| f32::from(u8::from(r[0] + r[1] * r[2] + 0.3 * r[3] > 1.0)))
        .collect();
    let params = RankerParams {
        num_iterations: 200,
        num_leaves: 31,
        min_data_in_leaf: 20,
        early_stopping_rounds: 0,
        ..Default::default()
    };
    let names = (0..FEATURES).map(|i| format!("f{i}")).collect();
    Ok(Ranker::train(
        GroupedRows {
            features: &x,
            labels: &labels,
            groups: None,
        },
        None,
        names,
        &params,
    )?)
}

fn model_file(path: &str) -> Result<Ranker, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let names: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("feature_names="))
        .ok_or("no feature_names line in the model file")?
        .split(' ')
        .map(str::to_owned)
        .collect();
    Ok(Ranker::load(std::path::Path::new(path), &names)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ranker = match std::env::args().nth(1) {
        Some(path) => model_file(&path)?,
        None => reference_model()?,
    };
    let features = ranker.feature_names().len();
    let batch = rows(CANDIDATES, features, 1_000_000);
    // The two paths must agree exactly before either is timed.
    let fast = ranker.predict(&batch)?;
    let reference = ranker.predict_with_lightgbm(&batch)?;
    assert!(
        fast.iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "the forest and LightGBM disagree"
    );
    let paths: [(&str, Scorer); 2] = [
        ("LightGBM C API", Ranker::predict_with_lightgbm),
        (
            if ranker.uses_forest() {
                "recsys forest"
            } else {
                "recsys forest (refused: LightGBM)"
            },
            Ranker::predict,
        ),
    ];
    for (name, score) in paths {
        for _ in 0..50 {
            score(&ranker, &batch)?;
        }
        let mut micros = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            let start = Instant::now();
            let scores = score(&ranker, &batch)?;
            micros.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(scores.len(), CANDIDATES);
        }
        micros.sort_by(f64::total_cmp);
        let pct = |q: f64| micros[((q * micros.len() as f64) as usize).min(micros.len() - 1)];
        println!(
            "{name:<16} {} trees, {features} features: {CANDIDATES} candidates per call, one thread, {REPEATS} calls: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs",
            ranker.num_trees(),
            micros.iter().sum::<f64>() / micros.len() as f64,
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}
