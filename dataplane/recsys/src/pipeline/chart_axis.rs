//! Axis bounds every chart can draw, whatever the data: plotters computes its tick marks by
//! stepping through the range, and an infinite, NaN or zero-width range never ends (an empty
//! score list gave `inf..-inf` and hung a training run in the report). Non-finite values are
//! left out, an empty range is widened around its value, and no data gives `0..1`.

use std::ops::Range;

/// The finite values among `values`.
pub fn finite(values: impl IntoIterator<Item = f64>) -> impl Iterator<Item = f64> {
    values.into_iter().filter(|v| v.is_finite())
}

/// Beyond this magnitude a value is drawn at the bound: the width of the range stays finite.
const LIMIT: f64 = 1e300;

/// A drawable range covering the finite `values` (up to ±1e300); `0..1` when there are none.
pub fn covering(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let bounded = finite(values).map(|v| v.clamp(-LIMIT, LIMIT));
    let (low, high) = bounded.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if low > high {
        return 0.0..1.0;
    }
    widened(low, high)
}

/// `0..top` for non-negative quantities (shares, rates, metrics): `top` is the largest finite
/// value, at least `floor`, times `headroom`.
pub fn from_zero(values: impl IntoIterator<Item = f64>, floor: f64, headroom: f64) -> Range<f64> {
    let top = finite(values).fold(floor, f64::max) * headroom;
    0.0..if top.is_finite() && top > 0.0 {
        top
    } else {
        1.0
    }
}

/// `low..high`, widened when it is empty (or too narrow for f64 to step through) by a margin
/// relative to its magnitude.
fn widened(low: f64, high: f64) -> Range<f64> {
    let magnitude = low.abs().max(high.abs()).max(1.0);
    let margin = magnitude * 1e-3;
    if high - low >= margin {
        low..high
    } else {
        let middle = low / 2.0 + high / 2.0;
        (middle - margin)..(middle + margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawable(r: &Range<f64>) -> bool {
        r.start.is_finite() && r.end.is_finite() && r.end > r.start
    }

    #[test]
    fn every_degenerate_series_gets_a_drawable_range() {
        let shapes: [&[f64]; 9] = [
            &[],
            &[0.0],
            &[17.25, 17.25, 17.25],
            &[-1e30],
            &[f64::NAN, f64::NAN],
            &[f64::INFINITY, f64::NEG_INFINITY],
            &[f64::NAN, 3.0, f64::INFINITY],
            &[f64::MAX, -f64::MAX],
            &[1e-300, 2e-300],
        ];
        for shape in shapes {
            let r = covering(shape.iter().copied());
            assert!(drawable(&r), "{shape:?} → {r:?}");
            for v in finite(shape.iter().copied()).filter(|v| v.abs() <= 1e300) {
                assert!(r.contains(&v) || v == r.end, "{v} outside {r:?}");
            }
            let z = from_zero(shape.iter().copied(), 0.01, 1.1);
            assert!(drawable(&z) && z.start == 0.0, "{shape:?} → {z:?}");
        }
    }

    #[test]
    fn an_ordinary_series_keeps_its_own_range() {
        assert_eq!(covering([0.5, -2.0, 3.0]), -2.0..3.0);
        assert_eq!(from_zero([0.2, 0.4], 0.01, 1.0), 0.0..0.4);
    }
}
