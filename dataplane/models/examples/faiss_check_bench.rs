//! What the structural check of `ann.faiss` costs at load, next to FAISS's own read:
//!
//! `cargo run --release -p recsys-models --example faiss_check_bench -- <index dir> [runs]`
//!
//! Prints the file size, the check's and the whole load's (check + FAISS read + id map) best
//! time over the runs (page cache warm after the first).

use recsys_models::{faiss_file, AnnIndex};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn best(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: faiss_check_bench <index dir> [runs]"),
    );
    let runs: usize = args.next().map_or(3, |r| r.parse().expect("runs"));
    let file = dir.join("ann.faiss");
    let bytes = std::fs::metadata(&file).expect("ann.faiss").len();
    let header = faiss_file::check(&file).expect("the index passes");
    let check = best(runs, || {
        faiss_file::check(&file).unwrap();
    });
    let load = best(runs, || {
        AnnIndex::load(&dir).unwrap();
    });
    println!(
        "{}: {:.1} MB, {} vectors of dim {}; check {:.0} ms, whole load {:.0} ms (check {:.1} %)",
        file.display(),
        bytes as f64 / 1e6,
        header.ntotal,
        header.dim,
        check.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        100.0 * check.as_secs_f64() / load.as_secs_f64()
    );
}
