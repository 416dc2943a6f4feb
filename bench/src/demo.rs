//! A synthetic, seeded load trace for the demo: a web shop in Berlin. Nothing here is real data,
//! which is what lets it ship with the project under any licence.
//!
//! What it has, per minute, in requests per second:
//! - a daily cycle in local time (quiet nights, a morning ramp, a lunch bump, an evening plateau);
//! - weekends at 60 % of weekdays;
//! - a newsletter campaign every weekday at 09:00 local that doubles the load within two minutes
//!   and decays over 40 minutes — the ramp a reactive autoscaler always meets under-provisioned;
//! - slow growth (2 % a week) and Poisson-like noise.
//!
//! The noise comes from the project's own SplitMix64 (`backtest::synthetic::SplitMix64`, eight
//! lines) rather than the `rand` crate, so that the bundled file can never change with a
//! dependency's algorithm.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Europe::Berlin;
use prescaler::backtest::synthetic::SplitMix64;

/// The noiseless load at `t`, in requests per second.
pub fn expected_load(start: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    let local = t.with_timezone(&Berlin);
    let hour = local.hour() as f64 + local.minute() as f64 / 60.0;
    let bump = |centre: f64, width: f64| (-((hour - centre) / width).powi(2)).exp();
    // Nights at 40, a day plateau near 300 with a lunch bump and an evening shoulder.
    let daily = 40.0
        + 260.0 * smoothstep(6.0, 10.0, hour) * (1.0 - smoothstep(20.0, 23.5, hour))
        + 120.0 * bump(12.5, 1.0)
        + 60.0 * bump(19.0, 1.5);
    let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    let mut load = daily * if weekend { 0.6 } else { 1.0 };
    if !weekend {
        let since = hour - 9.0;
        if since >= 0.0 {
            // The campaign: up to +300 req/s within two minutes, then decaying over ~40 minutes.
            let minutes = since * 60.0;
            load += 300.0 * (minutes / 2.0).min(1.0) * (-minutes / 40.0).exp();
        }
    }
    let weeks = (t - start).num_minutes() as f64 / (7.0 * 1440.0);
    load * (1.0 + 0.02 * weeks)
}

fn smoothstep(a: f64, b: f64, x: f64) -> f64 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `days` of one-minute samples from a Monday 00:00 UTC, as `timestamp,value` CSV.
pub fn trace_csv(seed: u64, days: u32) -> String {
    let start = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
    let mut rng = SplitMix64(seed);
    let mut out = String::from("timestamp,value\n");
    for m in 0..days as i64 * 1440 {
        let t = start + Duration::minutes(m);
        let mean = expected_load(start, t);
        // Poisson-like noise on a per-second rate sampled over a minute, plus 3 % burstiness.
        let sd = (mean / 60.0).sqrt() + 0.03 * mean;
        let value = (mean + sd * rng.normal()).max(0.0);
        out.push_str(&format!(
            "{},{:.1}\n",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            value
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_campaign_doubles_weekday_load_at_nine_local() {
        let start = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
        // Monday 2026-02-02, 09:00 CET = 08:00Z.
        let before = expected_load(start, Utc.with_ymd_and_hms(2026, 2, 2, 7, 58, 0).unwrap());
        let during = expected_load(start, Utc.with_ymd_and_hms(2026, 2, 2, 8, 3, 0).unwrap());
        assert!(during > 1.8 * before, "{before} -> {during}");
        // Not on Saturday.
        let sat = expected_load(start, Utc.with_ymd_and_hms(2026, 2, 7, 8, 3, 0).unwrap());
        let sat_before = expected_load(start, Utc.with_ymd_and_hms(2026, 2, 7, 7, 58, 0).unwrap());
        assert!(sat < 1.1 * sat_before);
    }

    #[test]
    fn same_seed_same_trace() {
        assert_eq!(trace_csv(7, 1), trace_csv(7, 1));
        assert_ne!(trace_csv(7, 1), trace_csv(8, 1));
    }
}
