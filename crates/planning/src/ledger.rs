//! The proof on live traffic: what prescaler's decisions cost, and how often they left the
//! workload short, against what an HPA on the same metric would have done — run by the operator
//! minute by minute on the live metric, with the backtest's own model (`docs/simulation.md`):
//! the same simulated pods (`pods`), the same HPA (`hpa`), the same scoring. It is a model
//! estimate, not a measurement of the pods that ran: prescaler's figures are the replicas it
//! asked for, the HPA's the replicas its algorithm would have asked for.
//!
//! Time runs as in a backtest of the metric: the load of minute `t` is the metric's sample of
//! `t + METRIC_LAG` (the metric shows load a minute late), and both strategies decide on the
//! metric as it came (prescaler's decision in minute `t` saw the samples up to `t`; the HPA at
//! `t` sees the sample of `t`). So minute `t` is counted once the sample of `t + METRIC_LAG` is
//! settled (`SETTLE` more minutes: the history cache reads its newest minutes again).
//!
//! The state is small and bounded: the HPA's (a few hundred bytes), two simulated fleets (one
//! entry per minute of start-up at most), the last few decisions, and one bucket per UTC day for
//! 7 days. The buckets go to the status (`SavingsStatus`) and come back from it after a restart
//! or a failover (`restore`); the HPA's state is rebuilt from the metric's history (an hour of
//! it is replayed before the first minute counted).
//!
//! With several metrics (`spec.metrics`, `account_metrics`) the account runs on their need in
//! replicas, as the backtest scores them (`Trace::in_replicas`): each minute
//! `max(load / targetPerReplica)` over the metrics, missing where any metric is, with a load per
//! replica of 1. The HPA on that series is the HPA on the metrics (`computeReplicasForMetrics`:
//! each metric's proposal from its own load and target, the highest kept), because a proposal
//! rises with its metric's load in replicas and the tolerance compares that same ratio with
//! the current count (`hpa`'s test `on_several_metrics_…` checks it); and a minute needs the
//! highest count any metric needs.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, SecondsFormat, Utc};
use prescaler_api::{SavingsDay, SavingsStatus};

use super::forecast::History;
use super::hpa::{Hpa, HpaConfig};
use super::needed_replicas;
use super::pods::Pods;

/// How late the metric shows the load: the backtest's default `--metric-lag`.
pub const METRIC_LAG: Duration = Duration::minutes(1);
/// A sample is used once it is this old: the history cache reads its newest two minutes again
/// at each refresh (a scrape may land after an evaluation), and a figure counted on a value that
/// then changed would not match a backtest of the same minutes read later.
pub const SETTLE: Duration = Duration::minutes(2);
/// The simulated pods' start-up when none was learned: the backtest's default
/// `--startup-delay`.
pub const DEFAULT_STARTUP: Duration = Duration::minutes(5);
/// The longest simulated start-up (the longest learned lead time).
pub const MAX_STARTUP: Duration = Duration::minutes(30);
/// How much of the metric the HPA is replayed on before the first minute counted, so that it
/// starts where it would stand (its memory is 5 minutes of recommendations and a few syncs of
/// scale-up).
pub const WARM_UP: Duration = Duration::minutes(60);
/// How many UTC days are kept: today so far and the 6 before.
pub const DAYS: usize = 7;
/// Decisions kept while their minutes wait to be counted (a minute's last decision each): a
/// history that does not come for longer leaves the minutes between to the decision before.
const DECISIONS_KEPT: usize = 16;

const MINUTE: Duration = Duration::minutes(1);

/// What the model needs of the spec, now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    pub target_per_replica: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The simulated pods' start-up (`DEFAULT_STARTUP`, or what `leadTime: Auto` learned).
    pub startup: Duration,
}

impl Model {
    fn delay_minutes(&self) -> usize {
        self.startup
            .clamp(Duration::zero(), MAX_STARTUP)
            .num_minutes() as usize
    }

    /// What the load of a minute needs, in a quiet window (`minReplicas: 0`) or not
    /// (`needed_replicas`, as the backtest scores it).
    fn needed_in(&self, load: f64, quiet: bool) -> u32 {
        let (min, max) = (self.min_replicas, self.max_replicas);
        needed_replicas(load, self.target_per_replica, min, max, quiet)
    }

    fn hpa(&self, utilization: f64) -> HpaConfig {
        HpaConfig {
            target_per_replica: self.target_per_replica,
            utilization,
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
        }
    }
}

/// One strategy's figures over some minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Replicas asked for, summed over the minutes.
    pub replica_minutes: u64,
    /// Minutes with fewer ready replicas than the load needed.
    pub short_minutes: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.replica_minutes = self.replica_minutes.saturating_add(other.replica_minutes);
        self.short_minutes = self.short_minutes.saturating_add(other.short_minutes);
    }
}

/// What some minutes added: the operator adds it to its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Minutes counted (those with a load sample).
    pub minutes: u64,
    pub prescaler: Cost,
    pub hpa: Cost,
}

impl Tally {
    /// Adds `other`'s minutes and both strategies' figures (saturating, as the counters do).
    pub fn add(&mut self, other: Tally) {
        self.minutes = self.minutes.saturating_add(other.minutes);
        self.prescaler.add(other.prescaler);
        self.hpa.add(other.hpa);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Day {
    date: NaiveDate,
    tally: Tally,
}

/// The running account of one scaler.
#[derive(Clone, Debug)]
pub struct Ledger {
    /// The HPA's target utilization, a fraction.
    utilization: f64,
    /// The next minute to count; `None` before the first decision.
    next: Option<DateTime<Utc>>,
    /// The last decision of each recent minute, oldest first, and whether a quiet window was
    /// in force then.
    decisions: VecDeque<(DateTime<Utc>, u32, bool)>,
    /// The decision before those kept.
    earlier: Option<(u32, bool)>,
    /// The HPA, once warmed up.
    hpa: Option<Hpa>,
    prescaler_pods: Pods,
    hpa_pods: Pods,
    /// The first minute counted and the end of the last one, over the days kept.
    from: Option<DateTime<Utc>>,
    through: Option<DateTime<Utc>>,
    /// Oldest first, at most `DAYS`.
    days: VecDeque<Day>,
    /// How many metrics the last minutes were counted on (the summary's words).
    metrics: usize,
}

fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(MINUTE).unwrap_or(t)
}

/// The metric's sample at minute `t`, `NaN` where the history has none.
fn sample(history: &History, t: DateTime<Utc>) -> f64 {
    match history.index_at_or_before(t) {
        Some(i) if i < history.len() && history.time(i) == t => history.values()[i],
        _ => f64::NAN,
    }
}

/// What the account replays: a sample a minute, in the unit of `Model::target_per_replica`.
trait Load {
    /// Where its samples may start.
    fn start(&self) -> DateTime<Utc>;
    /// The sample of minute `t`, `NaN` where there is none.
    fn at(&self, t: DateTime<Utc>) -> f64;
}

impl Load for History {
    fn start(&self) -> DateTime<Utc> {
        History::start(self)
    }

    fn at(&self, t: DateTime<Utc>) -> f64 {
        sample(self, t)
    }
}

/// Several metrics' histories as their need in replicas: each minute the highest
/// `load / targetPerReplica`, missing where any metric's sample is (the backtest's
/// `Trace::in_replicas`, computed the same way so that the figures agree to the bit).
struct InReplicas<'a>(&'a [(&'a History, f64)]);

impl Load for InReplicas<'_> {
    fn start(&self) -> DateTime<Utc> {
        let starts = self.0.iter().map(|(h, _)| h.start());
        starts.max().unwrap_or(DateTime::UNIX_EPOCH)
    }

    fn at(&self, t: DateTime<Utc>) -> f64 {
        let mut need = 0.0;
        for (history, per_replica) in self.0 {
            let v = sample(history, t);
            if !v.is_finite() {
                return f64::NAN;
            }
            need = f64::max(need, v / per_replica);
        }
        need
    }
}

fn day_start(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0)
        .map_or(DateTime::UNIX_EPOCH, |t| t.and_utc())
}

impl Ledger {
    /// A ledger against an HPA at `utilization_percent` % of `targetPerReplica`.
    pub fn new(utilization_percent: u8) -> Self {
        Self {
            utilization: f64::from(utilization_percent.max(1)) / 100.0,
            next: None,
            decisions: VecDeque::new(),
            earlier: None,
            hpa: None,
            prescaler_pods: Pods::default(),
            hpa_pods: Pods::default(),
            from: None,
            through: None,
            days: VecDeque::new(),
            metrics: 1,
        }
    }

    fn utilization_percent(&self) -> i32 {
        (self.utilization * 100.0).round() as i32
    }

    /// Takes back the days a status kept (after a restart, or on the replica that took over),
    /// when they were counted against the same HPA target. Minutes after its `through` and
    /// before this ledger's first decision are not counted: a gap, as a backtest leaves a gap.
    /// What cannot be read (an edited status) is left out.
    pub fn restore(&mut self, saved: &SavingsStatus) {
        if saved.hpa_target_utilization != self.utilization_percent() || self.through.is_some() {
            return;
        }
        let time = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc());
        let (Some(from), Some(through)) = (time(&saved.from), time(&saved.through)) else {
            return;
        };
        let mut days: Vec<Day> = saved
            .days
            .iter()
            .filter_map(|d| {
                Some(Day {
                    date: NaiveDate::parse_from_str(&d.date, "%Y-%m-%d").ok()?,
                    tally: tally_of(d),
                })
            })
            .collect();
        days.sort_by_key(|d| d.date);
        days.dedup_by_key(|d| d.date);
        let skip = days.len().saturating_sub(DAYS);
        self.days = days.into_iter().skip(skip).collect();
        self.from = Some(from);
        self.through = Some(minute_of(through));
    }

    /// prescaler asked for `desired` replicas at `now`; the minute's last decision counts.
    pub fn decided(&mut self, now: DateTime<Utc>, desired: u32) {
        self.decided_in(now, desired, false);
    }

    /// `decided`, saying whether a quiet window (`minReplicas: 0`) was in force: its minutes'
    /// load is not raised to `minReplicas` to count them (`Model::needed_in`).
    pub fn decided_in(&mut self, now: DateTime<Utc>, desired: u32, quiet: bool) {
        let minute = minute_of(now);
        if self.next.is_none() {
            // The first minute counted: not one a restored status counted already.
            self.next = Some(self.through.map_or(minute, |t| t.max(minute)));
        }
        match self.decisions.back_mut() {
            Some((m, d, q)) if *m == minute => (*d, *q) = (desired, quiet),
            Some((m, _, _)) if *m > minute => {}
            _ => self.decisions.push_back((minute, desired, quiet)),
        }
        while self.decisions.len() > DECISIONS_KEPT {
            self.earlier = self.decisions.pop_front().map(|(_, d, q)| (d, q));
        }
    }

    /// The decision in force in minute `t` (the last one made in it or before), and whether a
    /// quiet window was in force then.
    fn decision_at(&self, t: DateTime<Utc>) -> Option<(u32, bool)> {
        self.decisions
            .iter()
            .rev()
            .find(|(m, _, _)| *m <= t)
            .map(|&(_, d, q)| (d, q))
            .or(self.earlier)
    }

    /// Counts every minute whose load sample in `history` has settled by `now`; returns what
    /// they added.
    pub fn account(&mut self, history: &History, model: &Model, now: DateTime<Utc>) -> Tally {
        self.metrics = 1;
        self.account_on(history, model, now)
    }

    /// `account` for a scaler of several metrics: `metrics[i]` is `spec.metrics[i]`'s history
    /// and its `targetPerReplica` (`model.target_per_replica` is not read). The HPA and the
    /// minutes' need follow the highest need in replicas over the metrics (the module's note);
    /// a minute without every metric's sample is not counted, and the HPA sees nothing in it,
    /// as in a backtest of the metrics' CSV. With one metric, `account` on it.
    pub fn account_metrics(
        &mut self,
        metrics: &[(&History, f64)],
        model: &Model,
        now: DateTime<Utc>,
    ) -> Tally {
        if let [(history, per_replica)] = metrics {
            let one = Model {
                target_per_replica: *per_replica,
                ..*model
            };
            return self.account(history, &one, now);
        }
        self.metrics = metrics.len();
        let in_replicas = Model {
            target_per_replica: 1.0,
            ..*model
        };
        self.account_on(&InReplicas(metrics), &in_replicas, now)
    }

    fn account_on(&mut self, history: &impl Load, model: &Model, now: DateTime<Utc>) -> Tally {
        let mut added = Tally::default();
        let Some(mut t) = self.next else {
            self.drop_old_days(now);
            return added;
        };
        let last = minute_of(now) - SETTLE - METRIC_LAG;
        // After a long gap (no history for days) only the days kept are worth counting.
        let oldest = last - Duration::days(DAYS as i64);
        if t < oldest {
            t = oldest;
            self.hpa = None;
        }
        let hpa = model.hpa(self.utilization);
        let delay = model.delay_minutes();
        while t <= last {
            let Some((own, quiet)) = self.decision_at(t) else {
                t += MINUTE;
                continue;
            };
            let seen = history.at(t);
            if self.hpa.is_none() {
                let warmed = self.warmed_up(history, model, &hpa, t);
                self.hpa = Some(warmed);
            }
            let theirs = self.hpa.as_mut().map_or(0, |h| h.minute(&hpa, seen));
            let own_ready = self.prescaler_pods.minute(own, delay);
            let their_ready = self.hpa_pods.minute(theirs, delay);
            let load = history.at(t + METRIC_LAG);
            if load.is_finite() {
                let needed = model.needed_in(load, quiet);
                let minute = Tally {
                    minutes: 1,
                    prescaler: Cost {
                        replica_minutes: own.into(),
                        short_minutes: (own_ready < needed).into(),
                    },
                    hpa: Cost {
                        replica_minutes: theirs.into(),
                        short_minutes: (their_ready < needed).into(),
                    },
                };
                added.add(minute);
                self.count(t, minute);
            }
            t += MINUTE;
        }
        self.next = Some(t);
        // The decisions of counted minutes are no longer needed, but the one in force.
        while self.decisions.len() > 1 && self.decisions.get(1).is_some_and(|(m, _, _)| *m <= t) {
            self.earlier = self.decisions.pop_front().map(|(_, d, q)| (d, q));
        }
        self.drop_old_days(now);
        added
    }

    /// The HPA as it would stand at minute `first`: replayed on the `WARM_UP` of the metric
    /// before it, from the replicas the first sample needs, as the backtest starts it on the
    /// first minute of its trace. Its fleet is fed the same minutes.
    fn warmed_up(
        &mut self,
        history: &impl Load,
        model: &Model,
        config: &HpaConfig,
        first: DateTime<Utc>,
    ) -> Hpa {
        let start = (first - WARM_UP).max(minute_of(history.start()));
        let samples = || {
            std::iter::successors(Some(start), |t| Some(*t + MINUTE))
                .take_while(|t| *t < first)
                .map(|t| history.at(t))
        };
        let initial = samples()
            .chain(std::iter::once(history.at(first)))
            .find(|v| v.is_finite())
            .map_or(model.min_replicas, |v| model.needed_in(v, false));
        let mut hpa = Hpa::new(initial);
        let delay = model.delay_minutes();
        // The backtest's HPA holds its first count for the metric lag (it sees nothing yet).
        for _ in 0..METRIC_LAG.num_minutes() {
            self.hpa_pods.minute(initial, delay);
        }
        for seen in samples() {
            let asked = hpa.minute(config, seen);
            self.hpa_pods.minute(asked, delay);
        }
        hpa
    }

    fn count(&mut self, t: DateTime<Utc>, minute: Tally) {
        let date = t.date_naive();
        match self.days.back_mut() {
            Some(day) if day.date == date => day.tally.add(minute),
            _ => self.days.push_back(Day {
                date,
                tally: minute,
            }),
        }
        self.from.get_or_insert(t);
        self.through = Some(t + MINUTE);
    }

    /// Keeps today and the 6 days before.
    fn drop_old_days(&mut self, now: DateTime<Utc>) {
        let oldest = now.date_naive() - chrono::Days::new(DAYS as u64 - 1);
        while self.days.front().is_some_and(|d| d.date < oldest) {
            self.days.pop_front();
        }
        match self.days.front() {
            Some(first) => {
                let start = day_start(first.date);
                self.from = Some(self.from.map_or(start, |f| f.max(start)));
            }
            None => {
                self.from = None;
                self.through = None;
            }
        }
    }

    /// The totals over the days kept.
    pub fn total(&self) -> Tally {
        let mut total = Tally::default();
        for d in &self.days {
            total.add(d.tally);
        }
        total
    }

    /// `status.savings`: `None` until a minute has been counted.
    pub fn status(&self, model: &Model) -> Option<SavingsStatus> {
        let (from, through) = (self.from?, self.through?);
        let total = self.total();
        if total.minutes == 0 {
            return None;
        }
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let startup = model.startup.clamp(Duration::zero(), MAX_STARTUP);
        Some(SavingsStatus {
            summary: summary_on(
                &total,
                through - from,
                self.utilization_percent(),
                startup,
                self.metrics,
            ),
            hpa_target_utilization: self.utilization_percent(),
            startup_seconds: startup.num_seconds(),
            from: from.to_rfc3339_opts(SecondsFormat::Secs, true),
            through: through.to_rfc3339_opts(SecondsFormat::Secs, true),
            days: self
                .days
                .iter()
                .map(|d| SavingsDay {
                    date: d.date.format("%Y-%m-%d").to_string(),
                    minutes: clamp(d.tally.minutes),
                    replica_minutes: clamp(d.tally.prescaler.replica_minutes),
                    short_minutes: clamp(d.tally.prescaler.short_minutes),
                    hpa_replica_minutes: clamp(d.tally.hpa.replica_minutes),
                    hpa_short_minutes: clamp(d.tally.hpa.short_minutes),
                })
                .collect(),
        })
    }
}

/// One day of a status, as counts (a negative figure, which only an edited status holds, as 0).
fn tally_of(d: &SavingsDay) -> Tally {
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    Tally {
        minutes: count(d.minutes),
        prescaler: Cost {
            replica_minutes: count(d.replica_minutes),
            short_minutes: count(d.short_minutes),
        },
        hpa: Cost {
            replica_minutes: count(d.hpa_replica_minutes),
            short_minutes: count(d.hpa_short_minutes),
        },
    }
}

/// The totals of a status's days (for `kubectl prescaler savings`).
pub fn totals(saved: &SavingsStatus) -> Tally {
    let mut total = Tally::default();
    for d in &saved.days {
        total.add(tally_of(d));
    }
    total
}

/// The share (%) of `total`'s minutes that `cost` was short, rounded as the summary rounds it.
pub fn short_percent(total: &Tally, cost: &Cost) -> String {
    match total.minutes {
        0 => "0".to_string(),
        n => significant(100.0 * cost.short_minutes as f64 / n as f64, 2),
    }
}

/// Replica-hours, rounded as the summary rounds them.
pub fn replica_hours(cost: &Cost) -> String {
    significant(cost.replica_minutes as f64 / 60.0, 3)
}

/// `status.savings.summary`: rounded (replica-hours to 3 significant digits, shares to 2, the
/// span to whole hours), so that it changes a few times an hour, not every minute.
pub fn summary(
    total: &Tally,
    span: Duration,
    utilization_percent: i32,
    startup: Duration,
) -> String {
    summary_on(total, span, utilization_percent, startup, 1)
}

/// `summary` of an account on `metrics` metrics (several: `Ledger::account_metrics`).
pub fn summary_on(
    total: &Tally,
    span: Duration,
    utilization_percent: i32,
    startup: Duration,
    metrics: usize,
) -> String {
    let hours = replica_hours;
    let short = |c: &Cost| format!("{} %", short_percent(total, c));
    let (on, needs) = match metrics {
        0 | 1 => (
            "metric",
            "the load needs ceil(load / targetPerReplica) replicas",
        ),
        _ => (
            "metrics",
            "a minute needs the highest ceil(load / targetPerReplica) over the metrics",
        ),
    };
    format!(
        "{}: prescaler asked for {} replica-hours, {} of minutes short; an HPA at {} % on the same \
         {on}: {} replica-hours, {} short. A model estimate, as `prescaler backtest` scores: the \
         live {on} replayed through simulated pods that start in {}, prescaler's decisions \
         against the HPA's algorithm ({needs}; short: fewer ready than that)",
        span_words(span),
        hours(&total.prescaler),
        short(&total.prescaler),
        utilization_percent,
        hours(&total.hpa),
        short(&total.hpa),
        prescaler_api::format_duration(startup),
    )
}

/// `7d`, `2d 5h`, `5h`, `under 1h`.
pub fn span_words(span: Duration) -> String {
    let (days, hours) = (span.num_days(), span.num_hours() % 24);
    match (days, hours) {
        (0, 0) => "under 1h".into(),
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

/// `x` to `digits` significant digits, without trailing zeros: 312, 45.6, 0.04.
pub fn significant(x: f64, digits: i32) -> String {
    if !x.is_finite() || x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0);
    let scale = 10f64.powi(digits - 1 - magnitude);
    let rounded = (x * scale).round() / scale;
    let text = format!("{rounded:.*}", decimals as usize);
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: Model = Model {
        target_per_replica: 10.0,
        min_replicas: 1,
        max_replicas: 100,
        startup: Duration::minutes(5),
    };

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-02-16T09:00:00Z")
            .unwrap()
            .to_utc()
            + Duration::minutes(minute)
    }

    /// `load(m)` as the metric's sample of minute `m`, from minute -120.
    fn history(minutes: i64, load: impl Fn(i64) -> f64) -> History {
        History::new(at(-120), MINUTE, (-120..minutes).map(load).collect())
    }

    /// In a quiet window (`minReplicas: 0`) a minute without load needs no replica, so a
    /// workload at zero is not short for it; a minute with load and no ready replica is.
    #[test]
    fn at_zero_in_a_quiet_window_only_minutes_with_load_are_short() {
        // No load until minute 40, then 5 (one replica); prescaler at zero until it sees the
        // load at minute 41 (the sample of minute 40 is the load of 39), then at 1.
        let load = |m: i64| if m < 40 { 0.0 } else { 5.0 };
        let h = history(120, load);
        let mut ledger = Ledger::new(80);
        for m in 0..=100 {
            let desired = if m >= 41 { 1 } else { 0 };
            ledger.decided_in(at(m), desired, true);
            ledger.account(&h, &MODEL, at(m) + Duration::seconds(30));
        }
        let total = ledger.total();
        assert_eq!(total.minutes, 98);
        // Load from minute 39 (the sample of 40); the replica asked at 41 is ready at 46:
        // minutes 39..=45 are short, the quiet ones before are not.
        assert_eq!(total.prescaler.short_minutes, 7, "{total:?}");
        assert_eq!(total.prescaler.replica_minutes, 98 - 41);
    }

    #[test]
    fn a_step_the_hpa_meets_late_costs_it_short_minutes_that_prescaler_ahead_of_it_has_not() {
        // 50 until minute 30, then 400 (40 replicas at 100 %, the HPA at 80 % asks for 50).
        let load = |m: i64| if m < 30 { 50.0 } else { 400.0 };
        let h = history(120, load);
        let mut ledger = Ledger::new(80);
        let mut added = Tally::default();
        for m in 0..=100 {
            // prescaler knew: 40 replicas from minute 20 (its lead time), 5 before.
            ledger.decided(at(m) + Duration::seconds(20), if m >= 20 { 40 } else { 5 });
            added.add(ledger.account(&h, &MODEL, at(m) + Duration::seconds(30)));
        }
        let total = ledger.total();
        assert_eq!(total, added, "the counters get what the days hold");
        // Minutes 0..=97 are counted at minute 100 (the sample of t + 1 settled 2 minutes).
        assert_eq!(total.minutes, 98);
        assert_eq!(total.prescaler.short_minutes, 0, "{total:?}");
        // The load of minute 29 is the sample of 30: needed 40 from minute 29; the HPA sees
        // 400 at minute 30 and has its pods 5 minutes later, at 35: short 29..=34.
        assert_eq!(total.hpa.short_minutes, 6, "{total:?}");
        assert_eq!(total.prescaler.replica_minutes, 20 * 5 + 78 * 40);
        // The HPA at 80 % of 10 a replica asks 7 for 50 (warmed up on it), then 50.
        assert_eq!(total.hpa.replica_minutes, 30 * 7 + 68 * 50);
        let status = ledger.status(&MODEL).unwrap();
        assert_eq!(status.from, "2026-02-16T09:00:00Z");
        assert_eq!(status.through, "2026-02-16T10:38:00Z");
        assert!(
            status.summary.starts_with(
                "1h: prescaler asked for 53.7 replica-hours, 0 % of minutes short; an HPA at 80 % \
                 on the same metric: 60.2 replica-hours, 6.1 % short. A model estimate"
            ),
            "{}",
            status.summary
        );
    }

    /// Two metrics: requests steady at 100 (50 a replica: 2), a queue at 10 (10 a replica: 1)
    /// that steps to 60 (6) at minute 30. The HPA follows the queue once it needs the most.
    #[test]
    fn on_several_metrics_the_hpa_and_the_need_follow_the_metric_that_needs_most() {
        let requests = history(120, |_| 100.0);
        let queue = history(120, |m| if m < 30 { 10.0 } else { 60.0 });
        let metrics = [(&requests, 50.0), (&queue, 10.0)];
        let mut ledger = Ledger::new(80);
        for m in 0..=100 {
            ledger.decided(at(m), 20);
            ledger.account_metrics(&metrics, &MODEL, at(m) + Duration::seconds(30));
        }
        let total = ledger.total();
        assert_eq!(total.minutes, 98);
        // Before the step the requests need 2 and the HPA at 80 % asks 3 for them; from the
        // queue's sample at 30 it asks 7 (8 for 6 / 0.8, limited to 3 + 4 in a sync, and then
        // within its tolerance), its pods ready 5 minutes later: the minutes 29..=34 need 6
        // and have 3.
        assert_eq!(total.hpa.replica_minutes, 30 * 3 + 68 * 7, "{total:?}");
        assert_eq!(total.hpa.short_minutes, 6, "{total:?}");
        assert_eq!(total.prescaler.short_minutes, 0, "{total:?}");
        let summary = ledger.status(&MODEL).unwrap().summary;
        assert!(
            summary.contains("an HPA at 80 % on the same metrics: ")
                && summary.contains("the highest ceil(load / targetPerReplica) over the metrics"),
            "{summary}"
        );
    }

    /// A minute without every metric's sample is not counted (a backtest does not score it),
    /// and with one metric the account is `account` on it.
    #[test]
    fn on_several_metrics_a_minute_without_every_sample_is_not_counted() {
        let requests = history(30, |m| {
            if (10..15).contains(&m) {
                f64::NAN
            } else {
                100.0
            }
        });
        let queue = history(30, |m| if m == 20 { f64::NAN } else { 10.0 });
        let mut several = Ledger::new(80);
        let mut one = Ledger::new(80);
        let mut alone = Ledger::new(80);
        for m in 0..30 {
            several.decided(at(m), 5);
            several.account_metrics(&[(&requests, 50.0), (&queue, 10.0)], &MODEL, at(m));
            one.decided(at(m), 5);
            one.account_metrics(&[(&requests, 50.0)], &MODEL, at(m));
            alone.decided(at(m), 5);
            let model = Model {
                target_per_replica: 50.0,
                ..MODEL
            };
            alone.account(&requests, &model, at(m));
        }
        // Minutes 0..=26 are due; the loads of 9..=13 and of 19 miss a sample.
        assert_eq!(several.total().minutes, 27 - 5 - 1);
        assert_eq!(one.total(), alone.total());
        assert_eq!(one.total().minutes, 27 - 5);
        let summary = one.status(&MODEL).unwrap().summary;
        assert!(summary.contains("on the same metric: "), "{summary}");
    }

    #[test]
    fn minutes_without_a_load_sample_are_not_counted() {
        let h = history(30, |m| {
            if (10..15).contains(&m) {
                f64::NAN
            } else {
                50.0
            }
        });
        let mut ledger = Ledger::new(80);
        for m in 0..30 {
            ledger.decided(at(m), 5);
            ledger.account(&h, &MODEL, at(m));
        }
        // Minutes 0..=26 are due; the load of 9..=13 is the missing sample of 10..=14.
        assert_eq!(ledger.total().minutes, 27 - 5);
    }

    #[test]
    fn a_restored_status_goes_on_where_it_stopped_and_a_day_ages_out() {
        let h = history(60, |_| 50.0);
        let mut first = Ledger::new(80);
        for m in 0..40 {
            first.decided(at(m), 5);
            first.account(&h, &MODEL, at(m));
        }
        let saved = first.status(&MODEL).unwrap();
        // Another replica takes over at minute 45 with the status as written.
        let mut second = Ledger::new(80);
        second.restore(&saved);
        assert_eq!(second.total(), first.total());
        for m in 45..60 {
            second.decided(at(m), 5);
            second.account(&h, &MODEL, at(m));
        }
        // Minutes 0..=36 by the first, 45..=56 by the second: 40..=44 were nobody's.
        assert_eq!(second.total().minutes, 37 + 12);
        assert_eq!(second.status(&MODEL).unwrap().from, saved.from);
        // Against another HPA target the old days are not mixed in.
        let mut other = Ledger::new(70);
        other.restore(&saved);
        assert_eq!(other.total(), Tally::default());
        // A week later the day is gone.
        let mut later = Ledger::new(80);
        later.restore(&saved);
        later.account(&h, &MODEL, at(0) + Duration::days(7));
        assert_eq!(later.total(), Tally::default());
        assert!(later.status(&MODEL).is_none());
    }

    #[test]
    fn the_state_stays_small_while_no_history_comes() {
        let mut ledger = Ledger::new(80);
        for m in 0..10_000 {
            ledger.decided(at(m), (m % 7) as u32 + 1);
        }
        assert!(ledger.decisions.len() <= DECISIONS_KEPT);
        assert_eq!(ledger.decision_at(at(0)), ledger.earlier);
    }

    #[test]
    fn figures_are_rounded_to_significant_digits() {
        assert_eq!(significant(312.4, 3), "312");
        assert_eq!(significant(45.66, 3), "45.7");
        assert_eq!(significant(0.0396, 2), "0.04");
        assert_eq!(significant(12.34, 2), "12");
        assert_eq!(significant(1234.0, 3), "1230");
        assert_eq!(span_words(Duration::minutes(59)), "under 1h");
        assert_eq!(
            span_words(Duration::minutes(6 * 1440 + 14 * 60 + 59)),
            "6d 14h"
        );
        assert_eq!(span_words(Duration::days(7)), "7d");
    }
}
