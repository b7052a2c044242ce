//! The report's picture of the cold track record: each earlier window's newcomers under the
//! chosen list and under most-popular, with the test window's cold users beside them, so a
//! test window of a handful of cold users is seen against the weeks before it.

use super::chart_axis;
use super::cold_track_record::{TrackRecord, WindowRecord};
use plotters::prelude::*;

/// The test window's cold users: how many, and their NDCG@10 under what they were served and
/// under most-popular.
#[derive(Debug, Clone, Copy)]
pub struct TestPoint {
    pub users: usize,
    pub served: f64,
    pub most_popular: f64,
}

/// Which of a window's two scores a line draws.
type ScoreOf = fn(&WindowRecord) -> f64;

const CHOSEN: RGBColor = RGBColor(31, 119, 180);
const POPULAR: RGBColor = RGBColor(255, 127, 14);

/// An SVG line chart (x: days from the test start to each window's start), or `None` when
/// there is no earlier window to draw.
pub fn svg(
    record: &TrackRecord,
    test: Option<TestPoint>,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    if record.windows.is_empty() {
        return Ok(None);
    }
    let day = 86_400.0;
    let x_of = |start: i64| (start - record.test_start) as f64 / day;
    let oldest =
        chart_axis::finite(record.windows.iter().map(|w| x_of(w.start))).fold(0.0, f64::min);
    let y = chart_axis::from_zero(
        record
            .windows
            .iter()
            .flat_map(|w| [w.chosen, w.most_popular])
            .chain(test.iter().flat_map(|t| [t.served, t.most_popular])),
        0.05,
        1.1,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Cold users: newcomers of each earlier window",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(
                chart_axis::covering([oldest - record.window_days, record.window_days * 1.5]),
                y.clone(),
            )?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("window start, days from the test start")
            .y_desc("NDCG@10")
            .draw()?;
        // Shade the windows the choice was judged on (the newest ones).
        let shaded_from = record
            .windows
            .iter()
            .find(|w| !w.used_for_choice)
            .map_or(oldest, |w| x_of(w.start) + record.window_days);
        chart.draw_series([Rectangle::new(
            [(shaded_from, 0.0), (0.0, y.end)],
            BLACK.mix(0.06).filled(),
        )])?;
        let lines: [(&str, RGBColor, ScoreOf); 2] = [
            ("chosen list", CHOSEN, |w| w.chosen),
            ("most-popular", POPULAR, |w| w.most_popular),
        ];
        for (name, color, value) in lines {
            let points: Vec<(f64, f64)> = record
                .windows
                .iter()
                .map(|w| (x_of(w.start), value(w)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        if let Some(t) = test {
            chart
                .draw_series([
                    TriangleMarker::new((0.0, t.served), 7, CHOSEN.filled()),
                    TriangleMarker::new((0.0, t.most_popular), 7, POPULAR.filled()),
                ])?
                .label(format!("test window ({} cold users)", t.users))
                .legend(|(x, y)| TriangleMarker::new((x + 9, y), 5, BLACK.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(Some(svg))
}

/// The report's section: the chart and the pooled comparison, or a line saying why there is
/// none.
pub fn section(
    record: &TrackRecord,
    test: Option<TestPoint>,
) -> Result<String, Box<dyn std::error::Error>> {
    let Some(chart) = svg(record, test)? else {
        return Ok(
            "<h2>Cold users over time</h2><p>No earlier window of the validation window's \
             length holds a newcomer with a relevant item.</p>"
                .to_owned(),
        );
    };
    Ok(format!(
        "<h2>Cold users over time</h2><p>What the chosen cold list (blue) and most-popular \
         (orange) would have served the newcomers of each earlier {days:.0}-day window, each list \
         as of the window's start. The shaded windows are the ones the choice was judged on; the \
         triangles are the test window's cold users. {summary}.</p>{chart}",
        days = record.window_days,
        summary = record.summary(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::cold_track_record::Pooled;

    fn record(windows: usize) -> TrackRecord {
        TrackRecord {
            test_start: 1_000_000_000,
            window_days: 7.0,
            windows: (0..windows)
                .map(|k| WindowRecord {
                    start: 1_000_000_000 - (k as i64 + 1) * 7 * 86_400,
                    users: 10,
                    chosen: 0.3,
                    most_popular: 0.25,
                    used_for_choice: k < 2,
                })
                .collect(),
            all: Pooled::default(),
            out_of_sample: Pooled::default(),
        }
    }

    #[test]
    fn draws_both_lines_and_the_test_window() {
        let test = TestPoint {
            users: 11,
            served: 0.33,
            most_popular: 0.36,
        };
        let svg = svg(&record(5), Some(test)).unwrap().unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["chosen list", "most-popular", "test window (11 cold users)"] {
            assert!(svg.contains(label), "{label}");
        }
    }

    #[test]
    fn without_earlier_windows_the_section_says_so() {
        assert!(svg(&record(0), None).unwrap().is_none());
        assert!(section(&record(0), None)
            .unwrap()
            .contains("No earlier window"));
        assert!(section(&record(1), None).unwrap().contains("<svg"));
    }
}
