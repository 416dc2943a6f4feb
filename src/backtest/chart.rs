//! An SVG chart of a backtest over a chosen span: the replicas the load needs, prescaler's
//! forecast, and the replicas prescaler and the HPA at 80 % asked for (dashed) and had ready
//! (solid). Peak windows and gaps of the trace are shaded; times are in the peak windows' time
//! zone (else UTC), named on the axis; the legend sits beside the plot, not on it.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::Outcome;
use super::score::ready;
use super::trace::Trace;
use crate::api::ValidatedSpec;
use crate::planning::schedule;
use crate::{Error, Result};

/// At most this many points per line: one per bucket, the bucket's maximum, so peaks stay visible.
const MAX_POINTS: usize = 2000;

/// The legend's first entry (its centre line, in pixels from the top) and the step to the next.
const LEGEND_TOP: i32 = 60;
const LEGEND_STEP: i32 = 26;

struct Line {
    name: &'static str,
    color: RGBColor,
    dashed: bool,
    points: Vec<(DateTime<Utc>, f64)>,
}

/// What to draw: minutes `[from, to)` of the trace.
pub struct Span {
    pub from: usize,
    pub to: usize,
}

/// The minutes drawn, and how many of them one point stands for.
struct Window<'a> {
    trace: &'a Trace,
    from: usize,
    to: usize,
    bucket: usize,
}

/// What the plotting library failed with, as text (the caller names the file).
type Drawn = std::result::Result<(), String>;

/// A part of the SVG: the plot, or the legend beside it.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws minutes `span` of `outcome`'s replay of `trace` as an SVG at `path`; `delay` is the
/// minutes from asking for a replica to its being ready.
pub fn write_svg(
    path: &Path,
    trace: &Trace,
    outcome: &Outcome,
    spec: &ValidatedSpec,
    delay: usize,
    span: Span,
) -> Result<()> {
    let err = |e: String| Error::Chart {
        path: path.display().to_string(),
        message: e,
    };
    let window = Window::within(trace, span)
        .ok_or_else(|| err("the span holds no minutes of the trace".into()))?;
    let time_zone: Tz = spec.peak_windows.first().map_or(Tz::UTC, |w| w.time_zone);
    let lines = lines(&window, outcome, spec, delay);
    // Shaded: what the schedule holds (peak windows with a floor, events with one).
    let peaks = window.runs_where(&|t| {
        schedule::scheduled(
            &spec.peak_windows,
            &spec.calendar,
            trace.time(t),
            chrono::Duration::zero(),
        )
        .floor
        .is_some()
    });
    let gaps = window.runs_where(&|t| !trace.observed[t]);

    let root = SVGBackend::new(path, (1500, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (plot, legend) = root.split_horizontally(1170);
    draw_plot(&plot, &window, &lines, time_zone, &peaks, &gaps).map_err(err)?;
    draw_legend(&legend, &lines).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

impl<'a> Window<'a> {
    /// `span` cut to the trace; `None` when that leaves fewer than two minutes to draw.
    fn within(trace: &'a Trace, span: Span) -> Option<Self> {
        let to = span.to.min(trace.minutes());
        let from = span.from.min(to.saturating_sub(1));
        if to <= from + 1 {
            return None;
        }
        let bucket = (to - from).div_ceil(MAX_POINTS).max(1);
        Some(Self {
            trace,
            from,
            to,
            bucket,
        })
    }

    /// One point per bucket: the largest finite value in it (NaN when it has none).
    fn series(&self, values: &dyn Fn(usize) -> f64) -> Vec<(DateTime<Utc>, f64)> {
        (self.from..self.to)
            .step_by(self.bucket)
            .map(|t| {
                let v = (t..(t + self.bucket).min(self.to))
                    .map(values)
                    .filter(|v| v.is_finite())
                    .fold(f64::NAN, f64::max);
                (self.trace.time(t), v)
            })
            .collect()
    }

    /// The runs of minutes (`[start, end)`, by bucket) where `pred` holds at a bucket's first
    /// minute: what gets shaded.
    fn runs_where(&self, pred: &dyn Fn(usize) -> bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for t in (self.from..self.to).step_by(self.bucket) {
            match (pred(t), start) {
                (true, None) => start = Some(t),
                (false, Some(s)) => {
                    out.push((s, t));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, self.to - 1));
        }
        out
    }
}

/// The lines drawn, in the legend's order: the load, then prescaler's forecast and replicas,
/// then the HPA's at 80 %.
fn lines(window: &Window, outcome: &Outcome, spec: &ValidatedSpec, delay: usize) -> Vec<Line> {
    let trace = window.trace;
    let c = spec.target_per_replica;
    let mut lines = vec![Line {
        name: "load / targetPerReplica",
        color: RGBColor(150, 150, 150),
        dashed: false,
        points: window.series(&|t| trace.demand[t] / c),
    }];
    let by_name = |name: &str| outcome.runs.iter().find(|r| r.name == name);
    if let Some(run) = by_name("prescaler") {
        if let Some(f) = &run.forecast {
            lines.push(Line {
                name: "forecast with margin / targetPerReplica",
                color: RGBColor(255, 160, 0),
                dashed: false,
                points: window.series(&|t| f[t] / c),
            });
        }
        let names = ["prescaler ready", "prescaler desired"];
        lines.extend(replica_lines(
            window,
            run,
            delay,
            names,
            RGBColor(30, 100, 220),
        ));
    }
    if let Some(run) = by_name("hpa80") {
        let names = ["HPA at 80 % ready", "HPA at 80 % desired"];
        lines.extend(replica_lines(
            window,
            run,
            delay,
            names,
            RGBColor(220, 40, 40),
        ));
    }
    lines
}

/// A strategy's ready replicas (solid) and what it asked for (dashed), in one colour.
fn replica_lines(
    window: &Window,
    run: &super::Run,
    delay: usize,
    names: [&'static str; 2],
    color: RGBColor,
) -> [Line; 2] {
    let r = ready(&run.desired, delay);
    [
        Line {
            name: names[0],
            color,
            dashed: false,
            points: window.series(&|t| r[t] as f64),
        },
        Line {
            name: names[1],
            color,
            dashed: true,
            points: window.series(&|t| run.desired[t] as f64),
        },
    ]
}

/// The top of the replica axis: a tenth above the highest point (at least 1.1).
fn y_max(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.1
}

/// The plot: axes with times in `time_zone`, the shaded peak windows and gaps, then the lines.
fn draw_plot(
    plot: &Area,
    window: &Window,
    lines: &[Line],
    time_zone: Tz,
    peaks: &[(usize, usize)],
    gaps: &[(usize, usize)],
) -> Drawn {
    let trace = window.trace;
    let y_max = y_max(lines);
    let mut chart = ChartBuilder::on(plot)
        .caption("prescaler backtest: replicas over time", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(
            trace.time(window.from)..trace.time(window.to - 1),
            0.0..y_max,
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .y_desc("replicas")
        .x_desc(format!("time ({time_zone})"))
        .x_labels(10)
        .x_label_formatter(&|t| {
            t.with_timezone(&time_zone)
                .format("%a %m-%d %H:%M")
                .to_string()
        })
        .draw()
        .map_err(|e| e.to_string())?;
    let shade = |runs: &[(usize, usize)], color: RGBAColor| {
        runs.iter()
            .map(|&(a, b)| {
                Rectangle::new(
                    [(trace.time(a), 0.0), (trace.time(b), y_max)],
                    color.filled(),
                )
            })
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(shade(peaks, RGBColor(120, 200, 120).mix(0.18)))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(shade(gaps, RGBColor(120, 120, 120).mix(0.25)))
        .map_err(|e| e.to_string())?;
    for line in lines {
        let points = line.points.iter().copied().filter(|p| p.1.is_finite());
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(
                points,
                6,
                4,
                line.color.stroke_width(1),
            ))
        } else {
            chart.draw_series(LineSeries::new(points, line.color.stroke_width(2)))
        };
        drawn.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The legend, beside the plot: one entry per line, then the two kinds of shading.
fn draw_legend(legend: &Area, lines: &[Line]) -> Drawn {
    let mut y = LEGEND_TOP;
    for line in lines {
        legend_line(legend, y, line.color, line.dashed)?;
        legend_label(legend, y, line.name)?;
        y += LEGEND_STEP;
    }
    for (label, color) in [
        ("peak window open", RGBColor(120, 200, 120).mix(0.35)),
        (
            "gap in the trace (not scored)",
            RGBColor(120, 120, 120).mix(0.4),
        ),
    ] {
        legend
            .draw(&Rectangle::new([(10, y - 6), (40, y + 6)], color.filled()))
            .map_err(|e| e.to_string())?;
        legend_label(legend, y, label)?;
        y += LEGEND_STEP;
    }
    Ok(())
}

/// A legend entry's sample of a line: solid, or three dashes.
fn legend_line(legend: &Area, y: i32, color: RGBColor, dashed: bool) -> Drawn {
    let style = color.stroke_width(if dashed { 1 } else { 3 });
    let segments: Vec<(i32, i32)> = if dashed {
        vec![(10, 16), (22, 28), (34, 40)]
    } else {
        vec![(10, 40)]
    };
    for (a, b) in segments {
        legend
            .draw(&PathElement::new(vec![(a, y), (b, y)], style))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A legend entry's label, right of its sample.
fn legend_label(legend: &Area, y: i32, label: &str) -> Drawn {
    legend
        .draw(&Text::new(
            label.to_string(),
            (50, y - 7),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(|e| e.to_string())
}

/// The first minute of a `span`-minute window centred on the steepest 10-minute rise of `demand`
/// from minute `from` on (the first such rise when several are as steep), within the trace.
pub fn around_steepest_rise(demand: &[f64], from: usize, span: usize) -> usize {
    const RISE: usize = 10;
    if demand.len() <= RISE {
        return 0;
    }
    let last = demand.len() - RISE - 1;
    let start = from.min(last);
    let (steepest, _) = (start..=last).fold((start, f64::NEG_INFINITY), |best, m| {
        let rise = demand[m + RISE] - demand[m];
        if rise > best.1 { (m, rise) } else { best }
    });
    (steepest + RISE)
        .saturating_sub(span / 2)
        .min(demand.len().saturating_sub(span))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chart_is_centred_on_the_steepest_rise_after_the_first_scored_minute() {
        let mut demand = vec![10.0; 1000];
        for (m, d) in demand.iter_mut().enumerate().skip(600) {
            *d = 10.0 + (m.min(610) - 600) as f64 * 10.0; // +100 from 600 to 610
        }
        demand[100] = 500.0; // a steeper one, before the scored range
        assert_eq!(super::around_steepest_rise(&demand, 300, 120), 610 - 60);
        // Near the end, the window stays within the trace.
        assert_eq!(super::around_steepest_rise(&demand, 300, 900), 100);
        assert_eq!(super::around_steepest_rise(&demand[..5], 0, 120), 0);
    }
}
