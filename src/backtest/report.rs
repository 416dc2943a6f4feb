//! The backtest's outputs: a table for people, JSON for machines, a per-minute CSV.

use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::frontier::{Comparison, Frontier};
use super::score::{Score, ready};
use super::trace::Trace;
use super::{Outcome, Setup};

/// The scores table, and a sentence comparing prescaler with the HPA frontier.
pub fn table(outcome: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>11} {:>10} {:>12} {:>12} {:>11} {:>8}",
        "strategy", "violation%", "viol.min", "shortfall", "cost(r·h)", "cost/oracle", "changes"
    );
    for s in &outcome.scores {
        let _ = writeln!(
            out,
            "{:<10} {:>10.3}% {:>10} {:>12.0} {:>12.1} {:>11.3} {:>8}",
            s.strategy,
            s.violation_percent,
            s.violation_minutes,
            s.shortfall,
            s.cost,
            s.cost_vs_oracle,
            s.changes
        );
    }
    if let Some(own) = outcome.score("prescaler") {
        let _ = writeln!(
            out,
            "\n{}",
            frontier_sentence(own, &outcome.frontier, &outcome.comparison)
        );
    }
    out
}

/// "At the availability you have now, this much cheaper than any HPA setting."
pub fn frontier_sentence(own: &Score, frontier: &Frontier, c: &Comparison) -> String {
    let verdict = if c.saving_at_equal_violations >= 0.0 {
        format!(
            "prescaler costs {:.1} % less",
            100.0 * c.saving_at_equal_violations
        )
    } else {
        format!(
            "prescaler costs {:.1} % more",
            -100.0 * c.saving_at_equal_violations
        )
    };
    let fewest = frontier
        .envelope
        .first()
        .map_or(0.0, |p| p.violation_percent);
    let comparison = if own.violation_percent < fewest {
        format!(
            "prescaler has fewer violation minutes ({:.3} %) than any HPA setting (the fewest, {:.3} %, cost {:.1} replica-hours), so {verdict} than that one",
            own.violation_percent, fewest, c.hpa_cost_at_equal_violations
        )
    } else {
        format!(
            "at prescaler's {:.3} % violation minutes the best HPA setting costs {:.1} replica-hours, so {verdict}",
            own.violation_percent, c.hpa_cost_at_equal_violations
        )
    };
    format!(
        "Against the HPA however it is tuned (targets 40–100 %): {comparison}; at prescaler's cost the best HPA setting has {:.3} % violation minutes.",
        c.hpa_violation_percent_at_equal_cost
    )
}

/// The backtest as JSON; keys in the Kubernetes style (camelCase).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonReport<'a> {
    pub trace: &'a str,
    pub eval_start: DateTime<Utc>,
    pub startup_delay_minutes: usize,
    pub metric_lag_minutes: usize,
    pub scores: &'a [Score],
    pub comparison: &'a Comparison,
    pub frontier: &'a Frontier,
    pub warnings: &'a [String],
}

impl<'a> JsonReport<'a> {
    pub fn new(
        trace: &'a Trace,
        setup: &Setup,
        outcome: &'a Outcome,
        warnings: &'a [String],
    ) -> Self {
        Self {
            trace: &trace.name,
            eval_start: setup.eval_start,
            startup_delay_minutes: setup.delay_minutes(),
            metric_lag_minutes: setup.lag_minutes(),
            scores: &outcome.scores,
            comparison: &outcome.comparison,
            frontier: &outcome.frontier,
            warnings,
        }
    }
}

/// One row a minute: timestamp, demand, needed, then `desired` and `ready` for each strategy
/// (prescaler's unprefixed, the others prefixed with their name), prescaler's forecast with its
/// margin, and whether the minute is scored.
pub fn write_csv(w: impl Write, trace: &Trace, delay: usize, outcome: &Outcome) -> csv::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    let readies: Vec<Vec<u32>> = outcome
        .runs
        .iter()
        .map(|r| ready(&r.desired, delay))
        .collect();
    let mut header = vec!["timestamp".to_string(), "demand".into(), "needed".into()];
    for r in &outcome.runs {
        let prefix = if r.name == "prescaler" {
            String::new()
        } else {
            format!("{}_", r.name)
        };
        header.push(format!("{prefix}desired"));
        header.push(format!("{prefix}ready"));
    }
    header.push("forecast".into());
    header.push("scored".into());
    out.write_record(&header)?;
    let forecast = outcome.runs.iter().find_map(|r| r.forecast.as_ref());
    let mut row = Vec::with_capacity(header.len());
    for t in 0..trace.minutes() {
        row.clear();
        row.push(trace.time(t).format("%Y-%m-%dT%H:%M:%SZ").to_string());
        row.push(format!("{:.3}", trace.demand[t]));
        row.push(outcome.needed[t].to_string());
        for (r, ready) in outcome.runs.iter().zip(&readies) {
            row.push(r.desired[t].to_string());
            row.push(ready[t].to_string());
        }
        row.push(
            forecast
                .map(|f| f[t])
                .filter(|v| v.is_finite())
                .map_or(String::new(), |f| format!("{f:.3}")),
        );
        row.push(u8::from(outcome.scored[t]).to_string());
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}
