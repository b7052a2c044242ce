//! The evaluation report as one self-contained HTML page: metric table, plots (inline SVG
//! drawn with plotters), ranker search, feature importance and the verdict against the
//! previous version.

use super::chart_axis;
use super::cold_track_plot::{self, TestPoint};
use super::cold_track_record::TrackRecord;
use super::compare::Verdict;
use super::evaluate::MetricRow;
use super::tuning::Tuning;
use plotters::prelude::*;
use std::fmt::Write;

/// Everything the page shows.
pub struct ReportInput<'a> {
    pub title: &'a str,
    pub rows: &'a [MetricRow],
    /// Recall@K for K = 1..=len, per system.
    pub recall_curves: &'a [(String, Vec<f64>)],
    /// Ranker scores and labels of every (test user, candidate) pair.
    pub ranker_scores: &'a [f32],
    pub ranker_labels: &'a [bool],
    /// Whether the ranker's scores are probabilities (binary objective).
    pub probabilities: bool,
    pub importance: &'a [(String, f64)],
    pub tuning: &'a Tuning,
    pub verdict: &'a Verdict,
    /// The cold list's track record over earlier windows, with the test window's cold users.
    pub cold_track: &'a TrackRecord,
    pub cold_test: Option<TestPoint>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type PlotResult = Result<String, Box<dyn std::error::Error>>;

fn recall_curve_svg(curves: &[(String, Vec<f64>)]) -> PlotResult {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let max_k = curves.iter().map(|c| c.1.len()).max().unwrap_or(1).max(2);
        let y = chart_axis::from_zero(curves.iter().flat_map(|c| c.1.iter().copied()), 0.05, 1.05);
        let mut chart = ChartBuilder::on(&root)
            .caption("Recall@K, all evaluated users", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1f64..max_k as f64, y)?;
        chart
            .configure_mesh()
            .x_desc("K")
            .y_desc("Recall@K")
            .draw()?;
        for (i, (name, curve)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    curve.iter().enumerate().map(|(k, &r)| ((k + 1) as f64, r)),
                    color.stroke_width(2),
                ))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Reliability diagram: mean predicted probability against the observed positive rate in ten
/// equal-count bins.
fn calibration_svg(scores: &[f32], labels: &[bool]) -> PlotResult {
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .copied()
        .zip(labels.iter().copied())
        .filter(|p| p.0.is_finite())
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bins = 10.min(pairs.len().max(1));
    let points: Vec<(f64, f64)> = pairs
        .chunks(pairs.len().div_ceil(bins).max(1))
        .map(|chunk| {
            let n = chunk.len() as f64;
            let predicted = chunk.iter().map(|p| f64::from(p.0)).sum::<f64>() / n;
            let observed = chunk.iter().filter(|p| p.1).count() as f64 / n;
            (predicted, observed)
        })
        .collect();
    let top = chart_axis::from_zero(points.iter().map(|p| p.0.max(p.1)), 0.01, 1.1).end;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (480, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Ranker calibration (10 equal-count bins)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..top, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("mean predicted probability")
            .y_desc("observed relevance rate")
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (top, top)], BLACK.mix(0.4)))?;
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            PALETTE[0].stroke_width(2),
        ))?;
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 4, PALETTE[0].filled())),
        )?;
        root.present()?;
    }
    Ok(svg)
}

/// Score densities of relevant and non-relevant candidates, 40 bins each.
fn histogram_svg(scores: &[f32], labels: &[bool]) -> PlotResult {
    const BINS: usize = 40;
    let pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(labels)
        .filter(|(s, _)| s.is_finite())
        .map(|(&s, &l)| (f64::from(s), l))
        .collect();
    let x = chart_axis::covering(pairs.iter().map(|p| p.0));
    let width = (x.end - x.start) / BINS as f64;
    let density = |want: bool| -> Vec<f64> {
        let mut counts = vec![0f64; BINS];
        let mut n = 0f64;
        for &(s, l) in &pairs {
            if l == want {
                let b = (((s - x.start) / width) as usize).min(BINS - 1);
                counts[b] += 1.0;
                n += 1.0;
            }
        }
        counts.iter().map(|c| c / n.max(1.0)).collect()
    };
    let series = [
        ("relevant", density(true)),
        ("not relevant", density(false)),
    ];
    let y = chart_axis::from_zero(series.iter().flat_map(|s| s.1.iter().copied()), 0.01, 1.1);
    let caption = if pairs.is_empty() {
        "Ranker score distribution (no scores to show)"
    } else {
        "Ranker score distribution"
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x.clone(), y)?;
        chart
            .configure_mesh()
            .x_desc("score")
            .y_desc("share of candidates")
            .draw()?;
        for (i, (name, values)) in series.iter().enumerate() {
            let color = PALETTE[i * 3];
            chart
                .draw_series(values.iter().enumerate().map(|(b, &v)| {
                    let x0 = x.start + b as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, v)], color.mix(0.45).filled())
                }))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// NDCG@10 with its 95 % interval per system (all users), plus the previous version.
fn comparison_svg(rows: &[MetricRow], verdict: &Verdict) -> PlotResult {
    let mut bars: Vec<(String, f64, f64, f64)> = rows
        .iter()
        .filter(|r| r.subset == "all")
        .map(|r| {
            (
                r.system.clone(),
                r.ndcg_at_10.mean,
                r.ndcg_at_10.low,
                r.ndcg_at_10.high,
            )
        })
        .collect();
    if let (Some(version), Some(ndcg)) = (&verdict.previous_version, verdict.previous_ndcg_at_10) {
        bars.push((format!("previous ({version})"), ndcg, ndcg, ndcg));
    }
    let x = chart_axis::from_zero(bars.iter().map(|b| b.3), 0.01, 1.15);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 80 + 44 * bars.len() as u32))
            .into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("NDCG@10 with 95% bootstrap interval", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(200)
            // A segmented 0..n axis has n + 1 segments; the last bar's index is n − 1.
            .build_cartesian_2d(x, (0..bars.len().saturating_sub(1)).into_segmented())?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("NDCG@10")
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let color = PALETTE[i % PALETTE.len()];
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (b.1, SegmentValue::Exact(i + 1)),
                ],
                color.mix(0.7).filled(),
            )
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            PathElement::new(
                vec![
                    (b.2, SegmentValue::CenterOf(i)),
                    (b.3, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            )
        }))?;
        root.present()?;
    }
    Ok(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn metrics_table(rows: &[MetricRow]) -> String {
    let mut out = String::from(
        "<table><tr><th>system</th><th>users</th><th>n</th><th>Recall@10</th>\
         <th>Recall@50 [95% CI]</th><th>Recall@100</th><th>NDCG@10 [95% CI]</th>\
         <th>MAP@10</th><th>HitRate@10</th><th>Coverage@10</th><th>Novelty@10</th></tr>",
    );
    for r in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4} [{:.3}, {:.3}]</td>\
             <td>{:.4}</td><td>{:.4} [{:.3}, {:.3}]</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{:.4}</td><td>{:.2}</td></tr>",
            escape(&r.system),
            r.subset,
            r.users,
            r.recall_at_10,
            r.recall_at_50.mean,
            r.recall_at_50.low,
            r.recall_at_50.high,
            r.recall_at_100,
            r.ndcg_at_10.mean,
            r.ndcg_at_10.low,
            r.ndcg_at_10.high,
            r.map_at_10,
            r.hit_rate_at_10,
            r.coverage_at_10,
            r.novelty_at_10
        );
    }
    out.push_str("</table>");
    out
}

/// Which configurations the published ranker averages, and the sizes tried.
fn averaged_line(tuning: &Tuning) -> String {
    let tried: Vec<String> = tuning
        .ensemble
        .tried
        .iter()
        .map(|(size, ndcg)| format!("{size}: {ndcg:.4}"))
        .collect();
    format!(
        "The published ranker averages the {} configuration(s) marked below (served lists of \
         the judged users, by how many of the best were averaged: {}).",
        tuning.averaged.len(),
        if tried.is_empty() {
            "–".into()
        } else {
            tried.join(", ")
        }
    )
}

fn tuning_table(tuning: &Tuning) -> String {
    let mut trials: Vec<_> = tuning.trials.iter().enumerate().collect();
    trials.sort_by(|a, b| b.1.score().total_cmp(&a.1.score()));
    let mut out = String::from(
        "<table><tr><th>objective</th><th>learning rate</th><th>leaves</th>\
         <th>min data in leaf</th><th>feature fraction</th><th>λ₂</th><th>seed</th>\
         <th>fold NDCG@10</th><th>mean</th><th>served, judged users</th><th>trees</th>\
         <th>averaged</th></tr>",
    );
    for (index, t) in trials {
        let averaged = tuning.ensemble.members.contains(&index);
        let p = &t.params;
        let folds: Vec<String> = t.fold_ndcg.iter().map(|v| format!("{v:.4}")).collect();
        let trees: Vec<String> = t.fold_trees.iter().map(usize::to_string).collect();
        let _ = write!(
            out,
            "<tr><td>{:?}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td>\
             <td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.objective,
            p.learning_rate,
            p.num_leaves,
            p.min_data_in_leaf,
            p.feature_fraction,
            p.lambda_l2,
            match t.reseeded_from {
                Some(_) => format!("{} (winner reseeded)", p.seed),
                None => p.seed.to_string(),
            },
            folds.join(", "),
            t.mean_ndcg,
            t.served_ndcg.map_or("–".into(), |v| format!("{v:.4}")),
            trees.join(", "),
            if averaged { "✓" } else { "" }
        );
    }
    out.push_str("</table>");
    out
}

fn importance_table(importance: &[(String, f64)]) -> String {
    let total: f64 = importance.iter().map(|i| i.1).sum::<f64>().max(1e-12);
    let mut out = String::from("<table><tr><th>feature</th><th>gain</th><th>share</th></tr>");
    for (name, gain) in importance {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{gain:.1}</td><td>{:.1}%</td></tr>",
            escape(name),
            100.0 * gain / total
        );
    }
    out.push_str("</table>");
    out
}

/// Renders the page.
pub fn render(input: &ReportInput<'_>) -> Result<String, Box<dyn std::error::Error>> {
    let verdict = input.verdict;
    let verdict_line = match (&verdict.previous_version, verdict.difference) {
        (Some(version), Some(d)) => format!(
            "<b>{}</b>: NDCG@10 difference against {} on {} common users {:+.4} [{:+.4}, {:+.4}] \
             (paired bootstrap 95% interval).",
            verdict.decision,
            escape(version),
            verdict.common_users,
            d.mean,
            d.low,
            d.high
        ),
        _ => format!("<b>{}</b>.", verdict.decision),
    };
    let calibration = if input.probabilities {
        calibration_svg(input.ranker_scores, input.ranker_labels)?
    } else {
        "<p>The chosen ranker is lambdarank: its scores are not probabilities, so there is no \
         calibration plot.</p>"
            .to_owned()
    };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;\
         padding:3px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .plots{{display:flex;flex-wrap:wrap;gap:12px}}</style></head><body>\
         <h1>{title}</h1><h2>Verdict</h2><p>{verdict_line}</p>\
         <h2>Full-catalog metrics (seen items excluded)</h2>{table}\
         <div class=\"plots\">{recall}{comparison}</div>\
         <h2>Ranker</h2><div class=\"plots\">{histogram}{calibration}</div>\
         <h3>Hyper-parameter search ({trials} configurations and {copies} reseeded copies of the winner × {folds} time folds)</h3>\
         <p>The candidates left in retrieval order score NDCG@10 {retrieval:.4} on the same \
         folds; the chosen configuration {best:.4}. As served, after the business rules, on the \
         {judged} users with a relevant candidate: retrieval order {served_retrieval:.4}, the \
         published ranker {served_ranker:.4}. {averaged}</p>{tuning}\
         <h3>Feature importance (gain)</h3>{importance}{cold}</body></html>",
        title = escape(input.title),
        table = metrics_table(input.rows),
        recall = recall_curve_svg(input.recall_curves)?,
        comparison = comparison_svg(input.rows, verdict)?,
        histogram = histogram_svg(input.ranker_scores, input.ranker_labels)?,
        trials = input.tuning.sampled(),
        copies = input.tuning.reseeded(),
        folds = input.tuning.folds,
        retrieval = input.tuning.retrieval_order_ndcg,
        best = input.tuning.best_ndcg(),
        judged = input.tuning.judged.groups,
        served_retrieval = input.tuning.judged.served_retrieval_order_ndcg,
        served_ranker = input.tuning.judged.served_ranker_ndcg,
        averaged = averaged_line(input.tuning),
        tuning = tuning_table(input.tuning),
        importance = importance_table(input.importance),
        cold = cold_track_plot::section(input.cold_track, input.cold_test)?,
    );
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_core::bootstrap::Interval;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `draw` on its own thread and fails if it has not returned within `limit`: a chart
    /// whose axis never ends would otherwise hang the suite (as it hung a training run).
    fn returns(what: String, draw: impl FnOnce() -> PlotResult + Send + 'static) -> String {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(draw().map_err(|e| e.to_string()));
        });
        match finished.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(svg)) => svg,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Err(_) => panic!("{what}: still drawing after 10 s (an axis that never ends)"),
        }
    }

    fn shapes() -> Vec<(&'static str, Vec<f32>)> {
        vec![
            ("empty", vec![]),
            ("one score", vec![0.3]),
            ("constant 0", vec![0.0; 50]),
            ("constant 40", vec![40.0; 50]),
            ("constant -1e6", vec![-1e6; 50]),
            ("all NaN", vec![f32::NAN; 10]),
            ("infinities", vec![f32::INFINITY, f32::NEG_INFINITY, 1.0]),
            ("NaN among scores", vec![0.1, f32::NAN, 0.9, 0.5]),
            ("huge range", vec![-f32::MAX, f32::MAX]),
        ]
    }

    #[test]
    fn score_charts_draw_every_degenerate_series() {
        for (name, scores) in shapes() {
            let labels: Vec<bool> = (0..scores.len()).map(|i| i % 3 == 0).collect();
            let (s, l) = (scores.clone(), labels.clone());
            let svg = returns(format!("histogram of {name}"), move || {
                histogram_svg(&s, &l)
            });
            assert!(svg.contains("<svg"), "{name}");
            if scores.iter().all(|s| !s.is_finite()) {
                assert!(svg.contains("no scores to show"), "{name}: labelled empty");
            }
            returns(format!("calibration of {name}"), move || {
                calibration_svg(&scores, &labels)
            });
        }
    }

    #[test]
    fn metric_charts_draw_nan_infinite_and_empty_values() {
        for (name, values) in [
            ("no curve points", vec![]),
            ("NaN recall", vec![f64::NAN; 5]),
            ("infinite recall", vec![0.1, f64::INFINITY]),
            ("zero recall", vec![0.0; 5]),
        ] {
            let curves = vec![("two-tower".to_owned(), values.clone())];
            returns(format!("recall curve, {name}"), move || {
                recall_curve_svg(&curves)
            });
        }
        for v in [f64::NAN, f64::INFINITY, 0.0] {
            let interval = Interval {
                mean: v,
                low: v,
                high: v,
            };
            let rows = vec![MetricRow {
                system: "two-tower+ranker".into(),
                subset: "all".into(),
                users: 0,
                recall_at_10: v,
                recall_at_50: interval,
                recall_at_100: v,
                ndcg_at_10: interval,
                map_at_10: v,
                hit_rate_at_10: v,
                coverage_at_10: v,
                novelty_at_10: v,
            }];
            let verdict = Verdict {
                previous_version: Some("v0".into()),
                previous_ndcg_at_10: Some(v),
                common_users: 0,
                difference: None,
                decision: super::super::compare::Decision::NoSignificantDifference,
            };
            returns(format!("comparison of {v}"), move || {
                comparison_svg(&rows, &verdict)
            });
        }
    }
}
