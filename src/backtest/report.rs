//! The backtest's outputs: a table for people, JSON for machines, a per-minute CSV.

use std::fmt::Write as _;
use std::io::Write;

use super::{Outcome, Score};
use crate::trace::Trace;

/// One aligned table row per strategy.
pub fn table(scores: &[Score]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>11} {:>10} {:>12} {:>12} {:>11} {:>8}",
        "strategy", "violation%", "viol.min", "shortfall", "cost(r·h)", "cost/oracle", "changes"
    );
    for s in scores {
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
    out
}

/// One row a minute: timestamp, demand, needed, then `desired` and `ready` for each strategy
/// (prescaler's unprefixed, the others prefixed with their name), and prescaler's forecast.
pub fn write_csv(
    mut w: impl Write,
    trace: &Trace,
    delay: usize,
    outcome: &Outcome,
) -> std::io::Result<()> {
    let readies: Vec<Vec<u32>> = outcome
        .runs
        .iter()
        .map(|r| super::ready(&r.desired, delay))
        .collect();
    let mut header = String::from("timestamp,demand,needed");
    for r in &outcome.runs {
        let prefix = if r.name == "prescaler" {
            String::new()
        } else {
            format!("{}_", r.name)
        };
        let _ = write!(header, ",{prefix}desired,{prefix}ready");
    }
    header.push_str(",forecast,scored");
    writeln!(w, "{header}")?;
    let forecast = outcome.runs.iter().find_map(|r| r.forecast.as_ref());
    for t in 0..trace.minutes() {
        let mut line = format!(
            "{},{:.3},{}",
            trace.time(t).format("%Y-%m-%dT%H:%M:%SZ"),
            trace.demand[t],
            outcome.needed[t]
        );
        for (r, ready) in outcome.runs.iter().zip(&readies) {
            let _ = write!(line, ",{},{}", r.desired[t], ready[t]);
        }
        match forecast.map(|f| f[t]).filter(|v| v.is_finite()) {
            Some(f) => {
                let _ = write!(line, ",{f:.3}");
            }
            None => line.push(','),
        }
        let _ = write!(line, ",{}", u8::from(trace.observed[t]));
        writeln!(w, "{line}")?;
    }
    Ok(())
}
