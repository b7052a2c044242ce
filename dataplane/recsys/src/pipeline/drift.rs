//! `recsys drift`: PSI per feature between a reference and a current event window (both event
//! files in the documented schema, typically validated output), with the seed's thresholds;
//! and the reference distribution a version carries for serving's own PSI.

use recsys_core::drift::{psi_categorical, psi_numeric, DriftLevel};
use recsys_core::validation::{check_record, Reason, ValidationConfig};
use recsys_core::Interaction;
use recsys_data::events_io;
use recsys_data::features::FeatureSnapshot;
use recsys_version::bundle::DriftReference;
use serde::Serialize;
use std::path::Path;

/// Rows read per window at most (evenly from the start): PSI needs distributions, not every
/// row.
const MAX_ROWS: usize = 2_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    pub level: DriftLevel,
}

#[derive(Default)]
struct Window {
    value: Vec<f64>,
    hour: Vec<f64>,
    event_type: Vec<String>,
    device: Vec<String>,
    country: Vec<String>,
    placement: Vec<String>,
}

fn read(path: &Path) -> anyhow::Result<Window> {
    // Drift looks at what passed validation; timestamps are not judged here.
    let config = ValidationConfig {
        max_age_days: i64::MAX / 86_400 / 2,
        future_skew_secs: i64::MAX / 4,
        ..ValidationConfig::new(0)
    };
    let mut w = Window::default();
    events_io::for_each_row(path, |line, row| {
        if line as usize > MAX_ROWS {
            return Ok(());
        }
        let Ok(event) = row
            .map_err(|_| Reason::Malformed)
            .and_then(|r| check_record(&r, &config))
        else {
            return Ok(());
        };
        if let Some(v) = event.value {
            w.value.push(v);
        }
        w.hour
            .push(event.timestamp.rem_euclid(86_400) as f64 / 3600.0);
        w.event_type.push(event.event_type.as_str().to_owned());
        w.device.push(event.device.unwrap_or_default().to_owned());
        w.country.push(event.country.unwrap_or_default().to_owned());
        w.placement
            .push(event.placement.unwrap_or_default().to_owned());
        Ok(())
    })?;
    Ok(w)
}

/// PSI of every feature, largest first.
pub fn compare(reference: &Path, current: &Path) -> anyhow::Result<Vec<FeatureDrift>> {
    let (r, c) = (read(reference)?, read(current)?);
    let mut out = vec![
        ("value", psi_numeric(&r.value, &c.value, 10)),
        ("hour_of_day", psi_numeric(&r.hour, &c.hour, 24)),
        ("event_type", psi_categorical(&r.event_type, &c.event_type)),
        ("device", psi_categorical(&r.device, &c.device)),
        ("country", psi_categorical(&r.country, &c.country)),
        ("placement", psi_categorical(&r.placement, &c.placement)),
    ]
    .into_iter()
    .map(|(feature, psi)| FeatureDrift {
        feature: feature.into(),
        psi,
        level: DriftLevel::of(psi),
    })
    .collect::<Vec<_>>();
    out.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    Ok(out)
}

/// A version's request distribution for serving's PSI: each event of the last
/// [`DriftReference::DAYS`] before `cutoff`, with its user's declared row as the version
/// holds it (what serving reads for that user).
pub fn reference_for(
    snapshot: &FeatureSnapshot,
    events: &[Interaction],
    cutoff: i64,
) -> Option<DriftReference> {
    let from = cutoff - DriftReference::DAYS * 86_400;
    let declared = &snapshot.declared;
    let rows = events
        .iter()
        .filter(|r| r.timestamp >= from && r.timestamp < cutoff)
        .filter_map(|r| declared.user(r.user));
    DriftReference::from_rows(&declared.spec.user_names(), rows)
}
