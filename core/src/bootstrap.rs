//! Percentile bootstrap over evaluated users, with a fixed seed so every report is reproducible.

use serde::Serialize;

/// A point estimate and its 95 % percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Resamples users with replacement `resamples` times and returns the 2.5th and 97.5th
/// percentiles of the mean. Pass per-user differences to get a paired interval.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Interval {
    let n = values.len();
    let mean = if n == 0 {
        0.0
    } else {
        values.iter().sum::<f64>() / n as f64
    };
    if n == 0 || resamples == 0 {
        return Interval {
            mean,
            low: mean,
            high: mean,
        };
    }
    let mut rng = SplitMix64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| means[((q * resamples as f64) as usize).min(resamples - 1)];
    Interval {
        mean,
        low: at(0.025),
        high: at(0.975),
    }
}

/// A tiny deterministic generator; statistical quality is ample for resampling indices.
/// A tiny deterministic generator (SplitMix64): reproducible resamples and samples without a
/// dependency.
#[derive(Debug, Clone, Default)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.next()
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_contains_the_mean_and_is_reproducible() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 7) / 7.0).collect();
        let a = bootstrap_mean(&values, 1000, 42);
        let b = bootstrap_mean(&values, 1000, 42);
        assert_eq!(a, b);
        assert!(a.low < a.mean && a.mean < a.high);
        assert!(a.high - a.low < 0.2);
    }

    #[test]
    fn constant_values_have_a_zero_width_interval() {
        let i = bootstrap_mean(&[0.5; 50], 100, 1);
        assert_eq!((i.low, i.high), (0.5, 0.5));
    }
}
