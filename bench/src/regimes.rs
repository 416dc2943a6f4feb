//! The synthetic regime suite as scenario files (`prescaler::backtest::synthetic`): each regime's
//! smooth original and its textured trace, and a scenario file with a row per regime at 5 and 15
//! minutes of start-up; and, for a replay of one, how it did after each change of regime.

use std::path::Path;

use prescaler::backtest::Outcome;
use prescaler::backtest::score;
use prescaler::backtest::synthetic::{self, REGIMES, Regime};
use prescaler::backtest::trace::Trace;
use prescaler::{Error, Result};

/// Writes the suite for `seed` into `dir`.
pub fn write(seed: u64, dir: &Path) -> Result<()> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |source| Error::Io {
            context: format!("writing {what}"),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut scenarios = String::from(
        "trace,capacity,min_replicas,max_replicas,startup_delay_min,metric_lag_min,eval_start\n",
    );
    for delay in [5, 15] {
        for regime in REGIMES {
            if delay == 5 {
                let (smooth, textured) = regime.samples(seed);
                let original = dir.join(format!("{}.csv", regime.name()));
                std::fs::write(&original, synthetic::csv(&smooth)).map_err(io(&original))?;
                let path = dir.join(format!("{}_textured_1m.csv", regime.name()));
                std::fs::write(&path, synthetic::csv(&textured)).map_err(io(&path))?;
            }
            scenarios.push_str(&format!(
                "{}_textured_1m.csv,{},1,1000,{delay},1,\n",
                regime.name(),
                synthetic::CAPACITY
            ));
        }
    }
    let path = dir.join("scenarios.csv");
    std::fs::write(&path, scenarios).map_err(io(&path))?;
    Ok(())
}

/// The regime a trace file of the suite holds, by its name.
pub fn regime_of(trace: &Path) -> Option<Regime> {
    let name = trace
        .file_name()?
        .to_str()?
        .strip_suffix("_textured_1m.csv")?;
    REGIMES.into_iter().find(|r| r.name() == name)
}

/// The violation % over the scored minutes from a day after each change of regime to the next
/// change (or the end), the worst of them; `None` without a change.
pub fn after_change(regime: Regime, trace: &Trace, outcome: &Outcome, delay: usize) -> Option<f64> {
    let changes = regime.changes();
    let run = outcome.runs.first()?;
    let ready = score::ready(&run.desired, delay);
    let index = |t: chrono::DateTime<chrono::Utc>| {
        usize::try_from((t - trace.start).num_minutes())
            .unwrap_or(0)
            .min(trace.minutes())
    };
    let mut worst: Option<f64> = None;
    for (n, &change) in changes.iter().enumerate() {
        let from = index(change + chrono::Duration::days(1));
        let to = changes.get(n + 1).map_or(trace.minutes(), |&c| index(c));
        if let Some(p) = score::short_percent(&outcome.scored, &ready, &outcome.needed, from..to) {
            worst = Some(worst.map_or(p, |w: f64| w.max(p)));
        }
    }
    worst
}
