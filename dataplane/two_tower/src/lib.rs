//! Training the two-tower retrieval model with libtorch (tch). Only training links this crate:
//! serving reads the user tower from the saved files in plain Rust
//! ([`recsys_models::UserEncoder::load`]), so the server process carries no libtorch.

pub mod error;
pub mod two_tower;

pub use error::TowerError;
pub use two_tower::{TrainReport, TwoTower, Validator};

/// The widest CPU kernels libtorch and MKL may pick at run time, as environment variables they
/// read once, on first use. Their AVX-512 kernels add in another order than the AVX2 ones, so
/// the same seed trained a different two-tower on an AVX-512 machine than on an AVX2 one
/// (session 23: its seed-split NDCG@10 for seed 7 was 0.2398 against 0.2376), and a fresh
/// machine's numbers did not match the ones recorded. Pinned to AVX2, which every x86-64
/// machine this project runs on has, one seed gives one version on both.
pub const PINNED_CPU_KERNELS: [(&str, &str); 2] = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
];

/// Sets [`PINNED_CPU_KERNELS`] where the environment does not already choose (an operator may
/// still set either, and that wins). Call before any thread starts and before libtorch runs.
pub fn pin_cpu_kernels() {
    for (name, value) in PINNED_CPU_KERNELS {
        if std::env::var_os(name).is_none() {
            std::env::set_var(name, value);
        }
    }
}

/// Limits libtorch's intra-op threads; call once at start-up. Pods get few cores, and
/// oversubscribing them costs more than it gains.
pub fn set_torch_threads(threads: i32) {
    tch::set_num_threads(threads.max(1));
}
