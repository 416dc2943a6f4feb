//! A benchmark that decides the forecast method by measurement: prescaler's predictors against
//! MSTL (multiple seasonal-trend decomposition by LOESS, from the `augurs` crates, with an AutoETS
//! trend) on the same traces, instants and horizon. Built only with `--features mstl`, as the
//! operator does not need `augurs`.
//!
//! Each trace is averaged into 10-minute steps (MSTL on one-minute steps with a weekly period of
//! 10,080 points is too slow to refit per decision). At up to `points` instants spread over the
//! evaluation window, every method sees the 14 days before the instant and forecasts the next
//! 10-minute mean. Reported: MAPE over the instants, and time per forecast.

use std::time::Instant;

use augurs::ets::{AutoETS, trend::AutoETSTrendModel};
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use chrono::Duration;

use prescaler::backtest::trace::Trace;
use prescaler::planning::forecast::{History, ModelConfig, Predictor, predict_peak};

const STEP_MINUTES: usize = 10;
const TRAIN_DAYS: usize = 14;

/// One method's result on one trace.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MethodScore {
    pub method: String,
    pub mape_percent: f64,
    pub millis_per_forecast: f64,
    pub forecasts: usize,
}

/// Scores every method on `trace`, from `eval_from` (minutes into the trace) on.
pub fn evaluate(trace: &Trace, eval_from: usize, points: usize) -> Vec<MethodScore> {
    let series: Vec<f64> = trace
        .demand
        .chunks(STEP_MINUTES)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let train = TRAIN_DAYS * 1440 / STEP_MINUTES;
    let first = (eval_from / STEP_MINUTES).max(train);
    if series.len() <= first + 1 {
        return vec![];
    }
    let stride = ((series.len() - 1 - first) / points.max(1)).max(1);
    let instants: Vec<usize> = (first..series.len() - 1).step_by(stride).collect();
    let history = History::new(
        trace.start,
        Duration::minutes(STEP_MINUTES as i64),
        series.clone(),
    );
    let model = ModelConfig::default();

    let mut out = Vec::new();
    // The naive forecast, the last value, is what a reactive autoscaler acts on.
    let started = Instant::now();
    let errors: Vec<f64> = instants
        .iter()
        .filter_map(|&i| ape(series[i], series[i + 1]))
        .collect();
    out.push(score("last value", &errors, started, instants.len()));
    for p in [Predictor::Daily, Predictor::Weekly] {
        let started = Instant::now();
        let errors: Vec<f64> = instants
            .iter()
            .filter_map(|&i| {
                let view = history.view(i);
                let next = history.time(i + 1);
                let f = predict_peak(&model, p, view, &Default::default(), next, next)?;
                ape(f, series[i + 1])
            })
            .collect();
        out.push(score(
            &format!("prescaler {}", p.name()),
            &errors,
            started,
            instants.len(),
        ));
    }

    let periods = vec![1440 / STEP_MINUTES, 7 * 1440 / STEP_MINUTES];
    let started = Instant::now();
    let errors: Vec<f64> = instants
        .iter()
        .filter_map(|&i| {
            let y = &series[i + 1 - train..=i];
            let mstl = MSTLModel::new(
                periods.clone(),
                AutoETSTrendModel::from(AutoETS::non_seasonal()),
            );
            let fit = mstl.fit(y).ok()?;
            let f = fit.predict(1, None).ok()?.point.first().copied()?;
            ape(f, series[i + 1])
        })
        .collect();
    out.push(score(
        "MSTL + AutoETS trend",
        &errors,
        started,
        instants.len(),
    ));
    out
}

fn ape(forecast: f64, actual: f64) -> Option<f64> {
    (actual > 0.0 && forecast.is_finite()).then(|| (forecast - actual).abs() / actual)
}

fn score(method: &str, errors: &[f64], started: Instant, attempts: usize) -> MethodScore {
    MethodScore {
        method: method.to_string(),
        mape_percent: 100.0 * errors.iter().sum::<f64>() / errors.len().max(1) as f64,
        millis_per_forecast: started.elapsed().as_secs_f64() * 1000.0 / attempts.max(1) as f64,
        forecasts: errors.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a clean daily + weekly pattern both kinds of method should be nearly exact; this guards
    /// the comparison against misusing either.
    #[test]
    fn both_methods_are_near_exact_on_a_clean_seasonal_series() {
        let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 1, 5, 0, 0, 0).unwrap();
        let samples: Vec<_> = (0..21 * 1440)
            .step_by(10)
            .map(|m: i64| {
                let day = (m as f64 / 1440.0) * std::f64::consts::TAU;
                let weekday = (m / 1440) % 7;
                let v = 1000.0 + 400.0 * day.sin() + if weekday >= 5 { -300.0 } else { 0.0 };
                (start + Duration::minutes(m), v)
            })
            .collect();
        let trace = Trace::from_samples("synthetic", &samples);
        let scores = evaluate(&trace, 15 * 1440, 50);
        let get = |name: &str| {
            scores
                .iter()
                .find(|s| s.method == name)
                .unwrap()
                .mape_percent
        };
        assert!(get("MSTL + AutoETS trend") < 2.0, "{scores:?}");
        assert!(get("prescaler weekly") < 2.0, "{scores:?}");
    }
}
