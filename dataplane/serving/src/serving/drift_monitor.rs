//! PSI of what this server is asked about against what the version was trained on: each
//! request adds its user's declared values to per-bin counters (the version's own bins, from
//! `drift_reference.json`); every slot the counters move into a ring of slots, and the PSI of
//! each feature over the ring is what `/metrics` exports. Counting is a few relaxed atomic
//! adds per request; nothing is computed on the request path.

use recsys_version::bundle::DriftReference;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Requests in the window below which no PSI is reported (it would be noise).
pub const MIN_REQUESTS: u64 = 200;

pub struct DriftMonitor {
    reference: DriftReference,
    /// The open slot: one counter per bin per feature.
    open: Vec<Vec<AtomicU64>>,
    /// Closed slots, newest last, at most `slots`.
    ring: Mutex<VecDeque<Vec<Vec<u64>>>>,
    slots: usize,
}

/// One feature's PSI over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturePsi {
    pub feature: String,
    pub psi: f64,
    pub requests: u64,
}

impl DriftMonitor {
    /// A window of `slots` closed slots (PSI covers `slots × slot length`).
    pub fn new(reference: DriftReference, slots: usize) -> Self {
        let open = reference
            .features
            .iter()
            .map(|f| {
                (0..f.bins.shares.len())
                    .map(|_| AtomicU64::new(0))
                    .collect()
            })
            .collect();
        Self {
            reference,
            open,
            ring: Mutex::new(VecDeque::new()),
            slots: slots.max(1),
        }
    }

    /// Counts one request whose user row is `row` (the declared values in the spec's order).
    pub fn observe(&self, row: &[f32]) {
        for (f, counters) in self.reference.features.iter().zip(&self.open) {
            if let Some(v) = row.get(f.column).map(|v| f64::from(*v)) {
                if v.is_finite() {
                    counters[f.bins.bin_of(v)].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Closes the open slot and returns each feature's PSI over the window, or nothing while
    /// the window holds fewer than [`MIN_REQUESTS`] requests.
    pub fn rotate(&self) -> Vec<FeaturePsi> {
        let closed: Vec<Vec<u64>> = self
            .open
            .iter()
            .map(|c| c.iter().map(|n| n.swap(0, Ordering::Relaxed)).collect())
            .collect();
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.push_back(closed);
        while ring.len() > self.slots {
            ring.pop_front();
        }
        let mut out = Vec::new();
        for (k, f) in self.reference.features.iter().enumerate() {
            let mut counts = vec![0u64; f.bins.shares.len()];
            for slot in ring.iter() {
                for (total, n) in counts.iter_mut().zip(&slot[k]) {
                    *total += n;
                }
            }
            let requests: u64 = counts.iter().sum();
            if requests >= MIN_REQUESTS {
                out.push(FeaturePsi {
                    feature: f.name.clone(),
                    psi: f.bins.psi(&counts),
                    requests,
                });
            }
        }
        out
    }

    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.reference.features.iter().map(|f| f.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> DriftReference {
        // Two features; the training requests spread evenly over 0..1 and 0..10.
        let rows: Vec<Vec<f32>> = (0..1000)
            .map(|i| vec![(i % 100) as f32 / 100.0, (i % 10) as f32])
            .collect();
        DriftReference::from_rows(
            &["activity".to_owned(), "age".to_owned()],
            rows.iter().map(Vec::as_slice),
        )
        .unwrap()
    }

    #[test]
    fn the_same_traffic_has_no_drift_and_a_shift_crosses_the_threshold() {
        let monitor = DriftMonitor::new(reference(), 3);
        for i in 0..600 {
            monitor.observe(&[(i % 100) as f32 / 100.0, (i % 10) as f32]);
        }
        let psi = monitor.rotate();
        assert_eq!(psi.len(), 2);
        assert!(psi.iter().all(|p| p.psi < 0.05), "{psi:?}");
        // Everyone asking is now old: `age` drifts, `activity` does not.
        for i in 0..600 {
            monitor.observe(&[(i % 100) as f32 / 100.0, 9.0]);
        }
        let psi = monitor.rotate();
        let age = psi.iter().find(|p| p.feature == "age").unwrap();
        let activity = psi.iter().find(|p| p.feature == "activity").unwrap();
        assert!(age.psi > 0.2, "{psi:?}");
        assert!(activity.psi < 0.05, "{psi:?}");
        assert_eq!(age.requests, 1200);
        // The window slides: after three quiet slots the old traffic is gone.
        for _ in 0..3 {
            monitor.rotate();
        }
        assert!(monitor.rotate().is_empty(), "no PSI without requests");
    }

    #[test]
    fn too_few_requests_report_nothing_and_bad_values_are_ignored() {
        let monitor = DriftMonitor::new(reference(), 2);
        for _ in 0..(MIN_REQUESTS - 1) {
            monitor.observe(&[0.5, 5.0]);
        }
        monitor.observe(&[f32::NAN]);
        assert!(monitor.rotate().is_empty());
        assert_eq!(
            monitor.feature_names().collect::<Vec<_>>(),
            ["activity", "age"]
        );
    }
}
