//! Features of the request itself (time of day, weekday, device, placement). Offline rows take
//! them from the logged event; serving takes them from the request: the same function either
//! way.

use super::spec::{ContextFeature, ContextField, FeatureSpec};
use std::f64::consts::TAU;

/// What a request (or a logged event) says about its context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context<'a> {
    /// Unix seconds, UTC.
    pub timestamp: i64,
    pub device: Option<&'a str>,
    pub country: Option<&'a str>,
    pub placement: Option<&'a str>,
}

/// Appends the context columns of `spec` for `ctx` to `out`.
pub fn context_row(spec: &FeatureSpec, ctx: &Context, out: &mut Vec<f32>) {
    let seconds_of_day = ctx.timestamp.rem_euclid(86_400) as f64;
    // 1970-01-01 was a Thursday: shift so Monday = 0.
    let weekday = (ctx.timestamp.div_euclid(86_400) + 3).rem_euclid(7);
    for feature in &spec.context {
        match feature {
            ContextFeature::HourOfDay { .. } => {
                let angle = TAU * seconds_of_day / 86_400.0;
                out.extend([angle.sin() as f32, angle.cos() as f32]);
            }
            ContextFeature::DayOfWeek { .. } => {
                let angle = TAU * weekday as f64 / 7.0;
                out.extend([angle.sin() as f32, angle.cos() as f32]);
            }
            ContextFeature::Weekend { .. } => out.push(f32::from(u8::from(weekday >= 5))),
            ContextFeature::OneHot { field, values, .. } => {
                let actual = match field {
                    ContextField::Device => ctx.device,
                    ContextField::Country => ctx.country,
                    ContextField::Placement => ctx.placement,
                };
                out.extend(
                    values
                        .iter()
                        .map(|v| f32::from(u8::from(actual == Some(v.as_str())))),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_time_weekend_and_one_hot_columns() {
        let spec = FeatureSpec::default_spec();
        // 2026-11-28 is a Saturday; 06:00 UTC is a quarter of the day.
        let ts = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_opt(6, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        let ctx = Context {
            timestamp: ts,
            device: Some("ios"),
            country: None,
            placement: Some("nowhere"),
        };
        let mut row = Vec::new();
        context_row(&spec, &ctx, &mut row);
        let names = spec.context_names();
        assert_eq!(row.len(), names.len());
        let at = |n: &str| row[names.iter().position(|x| x == n).unwrap()];
        assert!((at("hour_sin") - 1.0).abs() < 1e-6 && at("hour_cos").abs() < 1e-6);
        assert_eq!(at("is_weekend"), 1.0);
        // Saturday is day 5 of a Monday-first week.
        assert!((at("dow_sin") - (TAU * 5.0 / 7.0).sin() as f32).abs() < 1e-6);
        assert_eq!(
            (at("device=web"), at("device=ios"), at("device=android")),
            (0.0, 1.0, 0.0)
        );
        // An unknown placement is all zeros, not an error.
        assert_eq!(
            at("placement=home") + at("placement=detail") + at("placement=search"),
            0.0
        );
    }
}
