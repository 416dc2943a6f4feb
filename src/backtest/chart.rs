//! An SVG chart of a backtest: the replicas the demand needs, prescaler's forecast, and the
//! replicas prescaler and the HPA asked for and had ready, over a chosen span.

use std::path::Path;

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::{Outcome, ready};
use crate::trace::Trace;
use crate::{Error, Result};

/// A named, coloured line of (time, replicas) points.
type Line = (String, RGBColor, Vec<(DateTime<Utc>, f64)>);

/// At most this many points per line: one per bucket, the bucket's maximum, so peaks stay visible.
const MAX_POINTS: usize = 2000;

pub fn write_svg(
    path: &Path,
    trace: &Trace,
    outcome: &Outcome,
    capacity: f64,
    delay: usize,
    from: usize,
    to: usize,
) -> Result<()> {
    let to = to.min(trace.minutes());
    let from = from.min(to.saturating_sub(1));
    let err = |e: String| Error::Io {
        context: format!("writing chart {}", path.display()),
        source: std::io::Error::other(e),
    };
    let bucket = (to - from).div_ceil(MAX_POINTS).max(1);
    let series = |values: &dyn Fn(usize) -> f64| -> Vec<(DateTime<Utc>, f64)> {
        (from..to)
            .step_by(bucket)
            .map(|t| {
                let v = (t..(t + bucket).min(to))
                    .map(values)
                    .filter(|v| v.is_finite())
                    .fold(f64::NAN, f64::max);
                (trace.time(t), v)
            })
            .collect()
    };
    let demand = series(&|t| trace.demand[t] / capacity);
    let by_name = |name: &str| outcome.runs.iter().find(|r| r.name == name);
    let mut lines: Vec<Line> = vec![(
        "load / targetPerReplica".into(),
        RGBColor(150, 150, 150),
        demand,
    )];
    if let Some(run) = by_name("prescaler") {
        if let Some(f) = &run.forecast {
            lines.push((
                "forecast with margin / targetPerReplica".into(),
                RGBColor(255, 160, 0),
                series(&|t| f[t] / capacity),
            ));
        }
        let r = ready(&run.desired, delay);
        lines.push((
            "prescaler desired".into(),
            RGBColor(30, 100, 220),
            series(&|t| run.desired[t] as f64),
        ));
        lines.push((
            "prescaler ready".into(),
            RGBColor(0, 170, 80),
            series(&|t| r[t] as f64),
        ));
    }
    if let Some(run) = by_name("hpa80") {
        let r = ready(&run.desired, delay);
        lines.push((
            "hpa80 ready".into(),
            RGBColor(220, 40, 40),
            series(&|t| r[t] as f64),
        ));
    }
    let y_max = lines
        .iter()
        .flat_map(|(_, _, s)| s.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("prescaler backtest: replicas over time", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(trace.time(from)..trace.time(to - 1), 0.0..y_max)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .y_desc("replicas")
        .x_labels(10)
        .x_label_formatter(&|t| t.format("%m-%d %H:%M").to_string())
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (name, color, points) in lines {
        let style = color.stroke_width(if name.contains("ready") { 2 } else { 1 });
        chart
            .draw_series(LineSeries::new(
                points.into_iter().filter(|p| p.1.is_finite()),
                style,
            ))
            .map_err(|e| err(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
