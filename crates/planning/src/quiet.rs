//! Quiet windows: a peak window or an event with `minReplicas: 0` lets the decision go to zero
//! replicas while there is no load, and wakes the workload when load appears or is foreseen, or
//! a lead time before the window closes.
//!
//! The rules follow KEDA's `minReplicaCount: 0` with an `activationThreshold`
//! (kedacore/keda, `pkg/scaling/executor/scale_scaledobjects.go`, `RequestScale` and
//! `scaleToZeroOrIdle`; `pkg/scalers/prometheus_scaler.go`), adapted to a planner that sees ahead:
//! - **active** is a load *above* the threshold, as KEDA's `val > activationThreshold`: the live
//!   load (the newest sample, and the sustained load), and here also the forecast of the peak
//!   load within the lead time, so that a workload is woken a lead time before a ramp it can
//!   see coming, not when the ramp's first requests find no pod;
//! - **to zero** only after a cooldown: KEDA waits `cooldownPeriod` (300 s by default) after the
//!   last activity. Here the decision asks for zero from the first quiet minute (so that the
//!   scale-down stabilization window, which keeps the highest ask of its span as the HPA's
//!   does, sees zeros from then on), but the lower bound stays at `minReplicas` until the load
//!   has been quiet for `COOLDOWN`: zero comes after the longer of the two, and the scale-down
//!   rate limits apply to the last steps as to any other. The cooldown is counted here, not
//!   only by the stabilization window, whose memory is empty after a restart (one quiet sample
//!   would then be enough); one quiet sample never is;
//! - **from zero** at once: as KEDA's `scaleFromZeroOrIdle`, the wake is not held back by
//!   stabilization or the scale-up rate limits; the decision's lower bound is back at
//!   `minReplicas` (at least 1), which `behavior::shape` reaches in one step;
//! - **unknown load is not zero load**: KEDA does not scale on a trigger error without a
//!   `fallback`. prescaler never goes to zero without a fresh sample (a hold keeps what runs),
//!   and a workload at zero whose metric is lost is woken to `minReplicas`: what would have woken
//!   it can no longer be seen, so `minReplicas` is its fallback (`plan::hold`).
//!
//! Only where prescaler writes `/scale`: an HPA cannot run at zero (it reads 0 replicas as
//! scaling disabled), so the operator decides for a target an HPA scales with a spec whose
//! windows allow no zero (`ValidatedSpec::without_zero`) and says why.

use chrono::{DateTime, Duration, Utc};

use super::schedule::{ScheduledFloor, Source, ZeroWindow};
use prescaler_api::ValidatedSpec;

/// The least time a load must have been quiet before the workload is at zero: KEDA's default
/// `cooldownPeriod` (`defaultCooldownPeriod`, 300 s, `pkg/scaling/executor/scale_executor.go`).
/// A scale-down stabilization window longer than this delays zero as long as it is.
pub const COOLDOWN: Duration = Duration::minutes(5);

/// What the quiet term remembers between decisions: since when the load has been quiet.
/// Lost on a restart: the cooldown then starts afresh, never shorter.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    quiet_since: Option<DateTime<Utc>>,
    /// The cooldown, when not `COOLDOWN` (`ModelConfig::zero_cooldown`).
    cooldown: Option<Duration>,
}

impl Memory {
    /// A memory whose cooldown is `cooldown` (at least zero).
    pub fn with_cooldown(cooldown: Duration) -> Self {
        Self {
            quiet_since: None,
            cooldown: Some(cooldown.max(Duration::zero())),
        }
    }
}

/// Why a workload in a quiet window is not (or no longer) at zero.
#[derive(Clone, Debug, PartialEq)]
pub enum Awake {
    /// The live load (the newest sample, or the sustained load) is above the threshold.
    Load(f64),
    /// The forecast of the peak load within the lead time is above the threshold.
    Forecast(f64),
    /// A window's or an event's floor is in force within the lead time.
    Floor(Source),
    /// The quiet window closes within the lead time: the workload is woken to be ready then.
    Closing,
    /// No fresh sample: unknown load is not zero load.
    MetricsUnavailable,
}

/// The quiet window in force at a decision, and what it does.
#[derive(Clone, Debug, PartialEq)]
pub struct QuietHours {
    /// The peak window or event with `minReplicas: 0`.
    pub source: Source,
    /// When it closes.
    pub until: DateTime<Utc>,
    /// When the workload is woken at the latest: `until` less the lead time.
    pub wake_at: DateTime<Utc>,
    /// `spec.metric.activationThreshold`.
    pub threshold: f64,
    /// Since when the load has been at or below the threshold; `None` while it is not.
    pub quiet_since: Option<DateTime<Utc>>,
    /// Why the workload is kept awake; `None` while it is quiet (zero is asked for).
    pub awake: Option<Awake>,
    /// Quiet for `COOLDOWN`: the lower bound is zero.
    pub cooled: bool,
}

/// What the decision read of the load, for the quiet term.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub load: f64,
    pub sustained: Option<f64>,
    /// The newest sample is a zero held at a passing level: not a zero to believe yet.
    pub held_zero: bool,
    /// The highest forecast of the peak load within the lead time (the daily, the weekly, a
    /// declared event's), where there is one.
    pub forecast: Option<f64>,
}

/// The quiet term at `now`: `None` outside quiet windows (and the memory forgets). `reading` is
/// `None` when the metrics are unavailable.
pub fn assess(
    spec: &ValidatedSpec,
    zero: Option<&ZeroWindow>,
    floor: Option<&ScheduledFloor>,
    reading: Option<Reading>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Option<QuietHours> {
    let Some(zero) = zero else {
        memory.quiet_since = None;
        return None;
    };
    let threshold = spec.activation_threshold;
    let wake_at = zero
        .until
        .checked_sub_signed(spec.lead_time)
        .unwrap_or(zero.until);
    // Above the threshold is active, at it is not (KEDA's `val > activationThreshold`): with the
    // default threshold 0, any load wakes.
    let above = |v: f64| v.is_nan() || v > threshold; // NaN is no quiet
    let awake = match reading {
        None => Some(Awake::MetricsUnavailable),
        Some(r) if above(r.load) || r.held_zero => Some(Awake::Load(r.load)),
        Some(Reading {
            sustained: Some(s), ..
        }) if above(s) => Some(Awake::Load(s)),
        Some(Reading {
            forecast: Some(f), ..
        }) if above(f) => Some(Awake::Forecast(f)),
        _ => match floor {
            Some(f) => Some(Awake::Floor(f.source.clone())),
            None if now >= wake_at => Some(Awake::Closing),
            None => None,
        },
    };
    memory.quiet_since = match awake {
        Some(_) => None,
        None => Some(memory.quiet_since.unwrap_or(now)),
    };
    let cooled = memory
        .quiet_since
        .is_some_and(|since| now - since >= memory.cooldown.unwrap_or(COOLDOWN));
    Some(QuietHours {
        source: zero.source.clone(),
        until: zero.until,
        wake_at,
        threshold,
        quiet_since: memory.quiet_since,
        awake,
        cooled,
    })
}

impl QuietHours {
    /// Whether the decision asks for zero: the load is quiet.
    pub fn asks_zero(&self) -> bool {
        self.awake.is_none()
    }

    /// In words, for the decision's explanation: "peak window "night" allows 0 replicas while
    /// …: quiet since 2026-03-02 01:05 UTC; woken by 2026-03-02 05:54 UTC, or at once …".
    pub fn explain(&self) -> String {
        let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
        let head = format!(
            "{} allows 0 replicas while the load and its forecast within the lead time are at most the activation threshold {}",
            self.source, self.threshold
        );
        match &self.awake {
            None => format!(
                "{head}: quiet since {}{}; woken by {} (a lead time before it closes), or at once when the load goes above it",
                self.quiet_since.map_or_else(String::new, at),
                match self.cooled {
                    true => "",
                    false =>
                        ", to zero after the cooldown (5 minutes of quiet) and the scale-down stabilization window",
                },
                at(self.wake_at)
            ),
            Some(why) => format!("{head}: kept awake, {}", why.explain(self.threshold)),
        }
    }
}

impl Awake {
    fn explain(&self, threshold: f64) -> String {
        match self {
            Awake::Load(l) => format!("the live load {l:.3} is above {threshold}"),
            Awake::Forecast(f) => {
                format!("the forecast expects {f:.3} within the lead time, above {threshold}")
            }
            Awake::Floor(s) => format!("{s}'s floor is in force within the lead time"),
            Awake::Closing => "it closes within the lead time".into(),
            Awake::MetricsUnavailable => {
                "the metrics are unavailable (unknown load is not zero load)".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::Awake;
    use crate::forecast::{History, ModelConfig};
    use crate::plan::{self, Decision, Inputs, Memory, Reason};
    use crate::planner::Planner;
    use crate::schedule;
    use prescaler_api::{PeakWindow, PredictiveScalerSpec, ValidatedSpec};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// 10 a replica, `min` to 20, a quiet window from 01:00 to 06:00 UTC, a 6-minute lead time.
    fn spec(min: i32, threshold: f64) -> ValidatedSpec {
        let mut s = PredictiveScalerSpec::new(10.0, 20);
        s.min_replicas = min;
        s.metric.activation_threshold = threshold;
        s.peak_windows = vec![PeakWindow {
            name: "night".into(),
            schedule: "0 1 * * *".into(),
            duration: "5h".into(),
            time_zone: "UTC".into(),
            min_replicas: Some(0),
            max_replicas: None,
        }];
        s.validate().unwrap()
    }

    /// `plan::decide` minute by minute, the workload where each decision leaves it.
    struct Run {
        spec: ValidatedSpec,
        memory: Memory,
        current: u32,
    }

    impl Run {
        fn new(spec: ValidatedSpec, current: u32) -> Self {
            Self {
                spec,
                memory: Memory::default(),
                current,
            }
        }

        /// A decision at `t` on the live load `load` (`None`: no fresh sample) and a daily
        /// forecast `forecast` of the peak within the lead time.
        fn at(&mut self, t: DateTime<Utc>, load: Option<f64>, forecast: f64) -> Decision {
            let s = &self.spec;
            let scheduled = schedule::scheduled(&s.peak_windows, &s.calendar, t, s.lead_time);
            let d = plan::decide(
                s,
                Inputs {
                    load,
                    sustained: load,
                    daily: forecast,
                    weekly: f64::NAN,
                    calibration: None,
                    scheduled: &scheduled,
                    event: None,
                    current_replicas: self.current,
                    held_zero: false,
                },
                &mut self.memory,
                t,
            );
            self.current = d.desired_replicas;
            d
        }

        /// Decisions every minute of `[from, to)` on `load`, with no forecast: their counts.
        fn minutes(&mut self, from: &str, to: &str, load: Option<f64>) -> Vec<u32> {
            let (mut t, end) = (utc(from), utc(to));
            let mut counts = Vec::new();
            while t < end {
                counts.push(self.at(t, load, f64::NAN).desired_replicas);
                t += Duration::minutes(1);
            }
            counts
        }
    }

    /// The first index of `counts` at zero.
    fn first_zero(counts: &[u32]) -> Option<usize> {
        counts.iter().position(|c| *c == 0)
    }

    #[test]
    fn zero_only_inside_the_window_and_after_the_cooldown() {
        let mut run = Run::new(spec(1, 0.0), 1);
        // No load before the window: minReplicas holds.
        let before = run.minutes("2026-03-02T00:30:00Z", "2026-03-02T01:00:00Z", Some(0.0));
        assert!(before.iter().all(|c| *c == 1), "{before:?}");
        // From 01:00 quiet: zero once the scale-down stabilization window (300 s, the
        // default) has seen nothing but zero asks, five minutes in — not at the first quiet
        // sample.
        let night = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:20:00Z", Some(0.0));
        assert_eq!(first_zero(&night), Some(5), "{night:?}");
        assert!(night[5..].iter().all(|c| *c == 0), "{night:?}");
        let d = run.at(utc("2026-03-02T01:20:00Z"), Some(0.0), f64::NAN);
        assert_eq!(d.reason, Reason::PeakWindow("night".into()));
        let q = d.quiet.clone().unwrap();
        assert_eq!(q.quiet_since, Some(utc("2026-03-02T01:00:00Z")));
        assert_eq!(q.wake_at, utc("2026-03-02T05:54:00Z"));
        assert!(d.explain().contains("quiet since"), "{}", d.explain());
    }

    #[test]
    fn a_short_stabilization_window_still_waits_the_cooldown_and_rate_limits_hold() {
        // No scale-down stabilization at all: the cooldown (KEDA's 300 s) still holds zero
        // back for five minutes of quiet.
        let mut s = spec(1, 0.0);
        s.behavior.scale_down.stabilization_window = Duration::zero();
        let mut run = Run::new(s, 1);
        let night = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:20:00Z", Some(0.0));
        assert_eq!(first_zero(&night), Some(5), "{night:?}");
        // From minReplicas 3 the default 20 %-a-minute limit walks down: 3, 2, 1, 0.
        let mut run = Run::new(spec(3, 0.0), 3);
        let night = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:20:00Z", Some(0.0));
        assert_eq!(&night[4..9], &[3, 2, 1, 0, 0], "{night:?}");
    }

    #[test]
    fn unknown_load_never_goes_to_zero_and_wakes_a_workload_at_zero() {
        let mut run = Run::new(spec(2, 0.0), 2);
        // Quiet for four minutes, then no sample for twenty: never zero, and the cooldown
        // starts again after.
        let quiet = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:04:00Z", Some(0.0));
        let dark = run.minutes("2026-03-02T01:04:00Z", "2026-03-02T01:24:00Z", None);
        assert!(
            quiet.iter().chain(&dark).all(|c| *c >= 2),
            "{quiet:?} {dark:?}"
        );
        let back = run.minutes("2026-03-02T01:24:00Z", "2026-03-02T01:40:00Z", Some(0.0));
        assert!(first_zero(&back) >= Some(5), "{back:?}");
        // At zero, the metric lost: back at minReplicas at once.
        assert_eq!(run.current, 0);
        let d = run.at(utc("2026-03-02T01:40:00Z"), None, f64::NAN);
        assert_eq!((d.desired_replicas, d.reason), (2, Reason::Hold));
        assert_eq!(d.quiet.unwrap().awake, Some(Awake::MetricsUnavailable));
    }

    #[test]
    fn a_workload_at_zero_wakes_a_lead_time_before_the_window_closes() {
        let mut run = Run::new(spec(2, 0.0), 2);
        let night = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T05:54:00Z", Some(0.0));
        assert_eq!(night.last(), Some(&0));
        // 05:54 is the window's end (06:00) less the lead time (6 minutes).
        let d = run.at(utc("2026-03-02T05:54:00Z"), Some(0.0), f64::NAN);
        assert_eq!(d.desired_replicas, 2);
        assert_eq!(d.quiet.unwrap().awake, Some(Awake::Closing));
        let after = run.minutes("2026-03-02T05:55:00Z", "2026-03-02T07:00:00Z", Some(0.0));
        assert!(after.iter().all(|c| *c == 2), "{after:?}");
    }

    #[test]
    fn load_above_the_activation_threshold_wakes_at_once_and_load_at_it_does_not() {
        // Threshold 3 (in the query's unit): 3 is quiet, 3.5 is active.
        let mut run = Run::new(spec(1, 3.0), 1);
        let night = run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:30:00Z", Some(3.0));
        assert_eq!(first_zero(&night), Some(5), "{night:?}");
        let d = run.at(utc("2026-03-02T01:30:00Z"), Some(3.5), f64::NAN);
        assert!(d.desired_replicas >= 1, "{d:?}");
        assert_eq!(d.quiet.unwrap().awake, Some(Awake::Load(3.5)));
        // A load that needs 8 replicas, seen at zero: at least minReplicas at once, and what
        // the load needs as soon as a second sample confirms it.
        let mut run = Run::new(spec(1, 0.0), 1);
        run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:30:00Z", Some(0.0));
        assert_eq!(run.current, 0);
        let d = run.at(utc("2026-03-02T01:30:00Z"), Some(75.0), f64::NAN);
        assert!(d.desired_replicas >= 8, "{d:?}");
        // The default threshold, 0: any load wakes.
        let mut run = Run::new(spec(1, 0.0), 1);
        run.minutes("2026-03-02T01:00:00Z", "2026-03-02T01:30:00Z", Some(0.0));
        let d = run.at(utc("2026-03-02T01:30:00Z"), Some(0.2), f64::NAN);
        assert_eq!(d.desired_replicas, 1, "{d:?}");
    }

    #[test]
    fn a_forecast_above_the_threshold_within_the_lead_time_wakes_ahead_of_the_load() {
        let mut run = Run::new(spec(2, 0.0), 2);
        run.minutes("2026-03-02T01:00:00Z", "2026-03-02T02:00:00Z", Some(0.0));
        assert_eq!(run.current, 0);
        // The live load is still 0; the forecast sees 40 within the lead time.
        let d = run.at(utc("2026-03-02T02:00:00Z"), Some(0.0), 40.0);
        assert!(d.desired_replicas >= 2, "{d:?}");
        assert_eq!(d.quiet.unwrap().awake, Some(Awake::Forecast(40.0)));
        // And while it sees load ahead, the cooldown does not start.
        for m in 1..10 {
            let t = utc("2026-03-02T02:00:00Z") + Duration::minutes(m);
            assert!(run.at(t, Some(0.0), 40.0).desired_replicas >= 2);
        }
    }

    /// The planner as the operator and the backtest drive it, on a history: load all day, none
    /// from 01:30. The drop to zero is first held as a blip (`forecast::zero_blips`) at the
    /// level before it, so the workload reaches zero only once the zeros are believed (a
    /// quarter hour) and the cooldown has passed; it is back a lead time before 06:00.
    #[test]
    fn the_planner_takes_a_quiet_night_to_zero_and_back() {
        let spec = spec(2, 0.0);
        let start = utc("2026-03-01T12:00:00Z");
        let drop = utc("2026-03-02T01:30:00Z");
        let back = utc("2026-03-02T07:00:00Z");
        let minutes = 24 * 60;
        let samples = (0..minutes)
            .map(|m| start + Duration::minutes(m))
            .map(|t| if drop <= t && t < back { 0.0 } else { 60.0 })
            .collect();
        let history = History::new(start, Duration::minutes(1), samples);
        let mut planner = Planner::new(spec, ModelConfig::default());
        let mut current = 8;
        let mut counts = Vec::new();
        for m in 600..minutes {
            let t = start + Duration::minutes(m);
            let d = planner.decide(Some(&history), current, t);
            current = d.desired_replicas;
            counts.push((t, current));
        }
        let at = |s: &str| counts.iter().find(|(t, _)| *t == utc(s)).unwrap().1;
        let zero_from = counts.iter().find(|(_, c)| *c == 0).map(|(t, _)| *t);
        let zero_from = zero_from.expect("never at zero");
        // Quiet from the first believed zero; zero after the cooldown, then the walk down from
        // 8 at the default 20 % a minute (6, 4, 3, 2, 1, 0).
        let believed = drop + ModelConfig::default().zero_persistence;
        assert!(zero_from >= believed + super::COOLDOWN, "{zero_from}");
        assert!(
            zero_from <= believed + super::COOLDOWN + Duration::minutes(8),
            "{zero_from}"
        );
        assert_eq!(at("2026-03-02T03:00:00Z"), 0);
        assert_eq!(at("2026-03-02T05:53:00Z"), 0);
        assert!(at("2026-03-02T05:54:00Z") >= 2);
        // Never at zero outside the window's quiet part.
        assert!(
            counts
                .iter()
                .all(|(t, c)| *c > 0 || (zero_from <= *t && *t < utc("2026-03-02T05:54:00Z")))
        );
    }
}
