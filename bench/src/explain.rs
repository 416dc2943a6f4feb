//! `scenarios --explain`: a scenario's replay day by day — violation minutes, cost against
//! perfect foresight, and what the calibration chose — to see where a trace's saving is won or
//! lost.

use std::collections::HashMap;

use prescaler::api::ValidatedSpec;
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{self, Outcome, Setup, score};
use prescaler::planning::forecast::ModelConfig;

/// Replays `trace` and prints one line per evaluated day.
pub fn print(
    trace: &Trace,
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
    outcome: &Outcome,
) {
    let mut chosen: Vec<Option<(String, f64, f64, f64)>> = vec![None; trace.minutes()];
    backtest::prescaler_with(trace, setup, spec, model, |t, d| {
        chosen[t] = d.calibration.map(|c| {
            (
                c.margins.basis.name().to_string(),
                c.margins.margin,
                c.margins.extra,
                c.unpreventable_percent,
            )
        });
    });
    let delay = setup.delay_minutes();
    let own = score::ready(&outcome.runs[0].desired, delay);
    let hpa80 = score::ready(&outcome.runs[2].desired, delay);
    println!(
        "  {:<10} {:>5} {:>6} {:>8} {:>7} {:>7} {:>5}  basis",
        "day", "viol", "hpa80", "/oracle", "margin", "unprev", "extra"
    );
    let first = setup.eval_index(trace);
    for day_start in (first..trace.minutes()).step_by(1440) {
        let end = (day_start + 1440).min(trace.minutes());
        let (mut viol, mut viol80, mut cost, mut oracle, mut n) = (0, 0, 0.0, 0.0, 0);
        let (mut margin, mut unprev, mut extra, mut m) = (0.0, 0.0, 0.0, 0);
        let mut bases: HashMap<String, usize> = HashMap::new();
        for t in day_start..end {
            if !outcome.scored[t] {
                continue;
            }
            n += 1;
            viol += usize::from(own[t] < outcome.needed[t]);
            viol80 += usize::from(hpa80[t] < outcome.needed[t]);
            cost += f64::from(outcome.runs[0].desired[t]);
            oracle += f64::from(outcome.runs[3].desired[t]);
            if let Some((b, mg, e, u)) = &chosen[t] {
                *bases.entry(b.clone()).or_default() += 1;
                margin += mg;
                extra += e;
                unprev += u;
                m += 1;
            }
        }
        if n == 0 {
            continue;
        }
        let m = m.max(1) as f64;
        let mut bases: Vec<_> = bases.into_iter().collect();
        bases.sort_by_key(|b| std::cmp::Reverse(b.1));
        let bases: Vec<String> = bases
            .iter()
            .map(|(b, c)| format!("{b} {:.0}%", 100.0 * *c as f64 / n as f64))
            .collect();
        println!(
            "  {:<10} {:>5} {:>6} {:>8.3} {:>6.1}% {:>6.2}% {:>5.1}  {}",
            trace.time(day_start).format("%Y-%m-%d"),
            viol,
            viol80,
            cost / oracle.max(1.0),
            100.0 * margin / m,
            unprev / m,
            extra / m,
            bases.join(", ")
        );
    }
}
