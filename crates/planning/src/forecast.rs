//! The load forecast: the predictors, and the history they read.
//!
//! For a decision at `now` what matters is the highest load in `[now, now + leadTime]`: replicas
//! asked for now must carry it. Two predictors estimate it from the history seen so far, `daily`
//! and `weekly`: the median over the last few days (weeks) of the load's mean around the same time
//! of day (of week), times the ratio of the last quarter hour's load to the same minutes of those
//! past periods — the profile brings the shape (a morning ramp, a daily campaign), the ratio brings
//! the level (growth, holidays, a quiet week). The live load itself is the third basis a decision
//! may stand on (see `calibration`).
//!
//! How much each is trusted, and with what margin, is `calibration`'s business. Everything here is
//! pure: the history is passed in, and a `View` shows only what was observed by some instant.

use std::borrow::Cow;

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::calibration::{BASES, Basis};
use prescaler_api::{Calendar, Seasonality};

/// A regularly sampled series: `values[i]` is the load at `start + i * step`; NaN marks a gap.
/// Prefix sums make the windowed means the predictors need O(1).
#[derive(Clone, Debug)]
pub struct History {
    start: DateTime<Utc>,
    step: Duration,
    values: Vec<f64>,
    /// `sums[i]` = sum of the non-NaN values before index i; `counts[i]` = how many there are.
    sums: Vec<f64>,
    counts: Vec<u32>,
    /// Where a series held from a later start than it has (the operator holds only what its
    /// forecasts read, `reach`) had its first sample: see `with_samples_before`.
    samples_before: Option<DateTime<Utc>>,
}

/// The largest sample that is load. Above it (a petabyte a second; an exporter's unsigned
/// counter that wrapped reads 1.8e19) a sample is a fault, and a gap: the history's means are
/// differences of running `f64` sums, and one sample of 1e19 left every later window of loads in
/// the thousands lost in rounding — the forecast was off, silently, for the history's span.
/// Below it, a window of ordinary loads beside such a sample keeps its precision.
pub const MAX_LOAD: f64 = 1e15;

/// Whether `v` is load: finite, not negative, at most `MAX_LOAD`.
pub fn is_load(v: f64) -> bool {
    v.is_finite() && (0.0..=MAX_LOAD).contains(&v)
}

impl History {
    /// A series from `values`; a value that is not load (`is_load`) becomes a gap.
    pub fn new(start: DateTime<Utc>, step: Duration, mut values: Vec<f64>) -> Self {
        assert!(step > Duration::zero(), "a series needs a positive step");
        for v in &mut values {
            if !is_load(*v) {
                *v = f64::NAN;
            }
        }
        let mut sums = Vec::with_capacity(values.len() + 1);
        let mut counts = Vec::with_capacity(values.len() + 1);
        let (mut s, mut c) = (0.0, 0u32);
        sums.push(s);
        counts.push(c);
        for &v in &values {
            if v.is_finite() {
                s += v;
                c += 1;
            }
            sums.push(s);
            counts.push(c);
        }
        Self {
            start,
            step,
            values,
            sums,
            counts,
            samples_before: None,
        }
    }

    /// The same series, known to have had samples before its start, the first at `first`
    /// (ignored unless before the start). A view that asks for history from before the start
    /// then counts as observed from `first` (or from where it asks, if later): for how much
    /// history is held (`View::observed_span`) and for how many whole past periods a forecast
    /// has (`whole_periods`), as through the whole series. The forecast reads nothing further
    /// back than `reach`, so the values before the start change nothing else.
    pub fn with_samples_before(mut self, first: Option<DateTime<Utc>>) -> Self {
        self.samples_before = first.filter(|f| *f < self.start);
        self
    }

    /// The first sample before the start, when the series is known to have had some.
    pub fn samples_before(&self) -> Option<DateTime<Utc>> {
        self.samples_before
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn step(&self) -> Duration {
        self.step
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The time of index `i`.
    pub fn time(&self, i: usize) -> DateTime<Utc> {
        self.start + self.step * i as i32
    }

    /// The index of the last sample at or before `t` (None before the start).
    pub fn index_at_or_before(&self, t: DateTime<Utc>) -> Option<usize> {
        let d = (t - self.start).num_seconds();
        if d < 0 {
            return None;
        }
        Some((d / self.step.num_seconds()) as usize)
    }

    /// A view of this history that ends at `end` (inclusive): what has been observed by then.
    pub fn view(&self, end: usize) -> View<'_> {
        View {
            history: self,
            lo: 0,
            end: end.min(self.values.len().saturating_sub(1)),
            from: None,
        }
    }

    /// The view ending at the last sample at or before `t`.
    pub fn view_at(&self, t: DateTime<Utc>) -> Option<View<'_>> {
        let i = self.index_at_or_before(t)?;
        if self.values.is_empty() {
            return None;
        }
        Some(self.view(i))
    }

    /// How many whole steps `d` spans (0 for a negative one).
    pub(crate) fn steps(&self, d: Duration) -> i64 {
        (d.num_seconds() / self.step.num_seconds()).max(0)
    }
}

/// The part of a history observed by some instant, and no older than the spec's
/// `forecast.history`: indices `lo..=end`. Predictors only read through it, which is what keeps
/// decisions causal, and what makes `forecast.history` mean the same in the operator (whose cache
/// holds that much, or `reach` of it and where it began: `History::with_samples_before`) and in
/// the backtest (whose trace holds more).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    history: &'a History,
    lo: usize,
    end: usize,
    /// Where the view asked to begin (`since`), which may be before the history's start.
    from: Option<DateTime<Utc>>,
}

impl<'a> View<'a> {
    pub fn history(&self) -> &'a History {
        self.history
    }
    pub fn end(&self) -> usize {
        self.end
    }
    pub fn end_time(&self) -> DateTime<Utc> {
        self.history.time(self.end)
    }

    /// The same view without the samples before `t`.
    pub fn since(self, t: DateTime<Utc>) -> Self {
        let lo = match self.history.index_at_or_before(t) {
            Some(i) if self.history.time(i) < t => i + 1,
            Some(i) => i,
            None => 0,
        };
        Self {
            lo: lo.max(self.lo).min(self.end),
            from: Some(self.from.map_or(t, |f| f.max(t))),
            ..self
        }
    }

    /// Mean of the observed values with index in `[lo, hi]`, clipped to what the view shows.
    fn mean(&self, lo: i64, hi: i64) -> Option<f64> {
        let hi = hi.min(self.end as i64);
        let lo = lo.max(self.lo as i64);
        if hi < lo {
            return None;
        }
        let (lo, hi) = (lo as usize, hi as usize + 1);
        let n = self.history.counts[hi] - self.history.counts[lo];
        (n > 0).then(|| (self.history.sums[hi] - self.history.sums[lo]) / n as f64)
    }

    /// The mean load over the last `window` (the live level), if anything was observed in it.
    pub fn recent_mean(&self, window: Duration) -> Option<f64> {
        let n = self.history.steps(window).max(1);
        self.mean(self.end as i64 - n + 1, self.end as i64)
    }

    /// The last observed value, skipping gaps of up to `max_age`.
    pub fn last_value(&self, max_age: Duration) -> Option<f64> {
        let n = self.history.steps(max_age) as usize;
        (self.end.saturating_sub(n).max(self.lo)..=self.end)
            .rev()
            .map(|i| self.history.values[i])
            .find(|v| v.is_finite())
    }

    /// The index of the first observed (finite) sample in the view: what the view really knows
    /// starts there, whatever gap precedes it (a cache that holds more span than data, a metric
    /// that began recently).
    fn first_observed(&self) -> Option<usize> {
        let counts = &self.history.counts;
        let before = counts[self.lo];
        if counts[self.end + 1] == before {
            return None;
        }
        // Nearly always the view's first sample is observed: answered without the search, which
        // each forecast and spread made again (four times a minute of a week's rebuild).
        if counts[self.lo + 1] != before {
            return Some(self.lo);
        }
        // `counts` never decreases: the first index whose count exceeds `before` is the sample.
        let offset = counts[self.lo + 1..=self.end + 1].partition_point(|&c| c == before);
        Some(self.lo + offset)
    }

    /// The index (negative before the history's start) of the first sample the view knows of:
    /// its first observed one, or, where the view asks for history from before the start of a
    /// series known to have had samples there (`History::with_samples_before`), the first of
    /// those it asks for.
    fn first_known(&self) -> Option<i64> {
        let h = self.history;
        if let (0, Some(before)) = (self.lo, h.samples_before) {
            let from = self.from.map_or(before, |f| f.max(before));
            if from < h.start {
                return Some(
                    (from - h.start)
                        .num_seconds()
                        .div_euclid(h.step.num_seconds()),
                );
            }
        }
        self.first_observed().map(|i| i as i64)
    }

    /// How long the view reaches back from its end to its first known sample (`first_known`).
    pub fn observed_span(&self) -> Duration {
        self.first_known().map_or(Duration::zero(), |i| {
            self.history.step * (self.end as i64 - i) as i32
        })
    }

    /// The samples of `[lo, end]` (clipped to the view) as a decision reads them: a sudden drop
    /// to zero is held like a missing sample until it persists (`zero_blips`, with `persist` in
    /// steps), its zeros read as the level before it (the lower median of the `level` samples
    /// before it, as read). Returns the first index, the values (NaN where nothing was
    /// observed), and where in them zeros are held at a level that did not last (`zero_blips`:
    /// not `lasting`), as inclusive ranges of positions in the values. Reads back `2·persist + level` further than `lo`, so that a run of zeros that
    /// began before `lo` is judged whole, with the level before it and how long that level
    /// lasted (up to `persist`) — and, when the series was
    /// absent before the zeros, further, as far as that many samples (within `HELD_REACH`): a
    /// series back from half an hour's gap as zeros is judged against the level it had, as
    /// after a gap of a minute. (It was judged against nothing, and believed: a busy workload
    /// whose metric came back as ten minutes of zeros was scaled from 40 to 4.)
    pub fn held_tail(
        &self,
        lo: i64,
        persist: i64,
        level: usize,
    ) -> (usize, Cow<'a, [f64]>, Vec<(usize, usize)>) {
        let lo = lo.clamp(self.lo as i64, self.end as i64) as usize;
        // The run, and before it as much of the level as holds it (`zero_blips`).
        let back = 2 * persist.max(0) + level as i64;
        let mut from = (lo as i64 - back).max(self.lo as i64) as usize;
        let all = &self.history.values;
        // Most of the time there is no zero to judge: the samples as they are.
        if !all[from..=self.end].contains(&0.0) {
            return (lo, Cow::Borrowed(&all[lo..=self.end]), Vec::new());
        }
        let reach = (lo as i64 - self.history.steps(HELD_REACH)).max(self.lo as i64) as usize;
        let wanted = back as usize;
        let mut samples = all[from..lo].iter().filter(|v| v.is_finite()).count();
        while samples < wanted && from > reach {
            from -= 1;
            samples += usize::from(all[from].is_finite());
        }
        let read = &all[from..=self.end];
        let mut values = read.to_vec();
        let apart = self.history.steps(MAX_LOAD_AGE).max(1) as usize;
        let mut passing = Vec::new();
        for (a, b, fill, lasting) in zero_blips(&values, persist.max(0) as usize, level, apart) {
            for v in &mut values[a..=b] {
                if *v == 0.0 {
                    *v = fill;
                }
            }
            let skip = lo - from;
            if !lasting && b >= skip {
                passing.push((a.saturating_sub(skip), b - skip));
            }
        }
        values.drain(..lo - from);
        (lo, Cow::Owned(values), passing)
    }

    /// The level over the last `w` steps, with sudden drops to zero held (`held_tail`): its
    /// mean as the routine would have had it (each minute of an event divided by the event's
    /// multiplier, so that an event's expected surge is not read as a new level and counted
    /// twice) and its plain mean — each with its `level − 1` highest samples counted at most
    /// `rise` times the `level`-th highest (`capped_mean`). A rise beyond `rise` moves the level
    /// once it has lasted as many samples as the sustained live load reads
    /// (`ModelConfig::sustained_samples`, three); one or two odd samples move it by at most
    /// `rise` times the level each, a sample's share of a quarter hour's mean. (The plain mean
    /// read one sample of 1e6, a counter reset seen by `rate`, as a level 66 times the load:
    /// the forecast, which the scale-up limit does not hold back, asked for `maxReplicas` for
    /// the whole level window.) Rises within `rise`, the noise and the ordinary steps of a
    /// load, are read at once as before. The live floor follows a larger step from its second
    /// sample; the forecast's level follows it from its third, as the plain mean did from then.
    fn held_level(
        &self,
        w: i64,
        persist: i64,
        level: usize,
        rise: f64,
        adjust: &Adjustments,
    ) -> Option<(f64, f64)> {
        let end = self.end as i64;
        let (first, values, _) = self.held_tail(end - w + 1, persist, level);
        let h = self.history;
        let multiplies = adjust.multiplies(h.time(first), h.time(self.end));
        // The window's samples (a quarter hour) on the stack: this runs once a minute of a
        // week's rebuild, and collecting them into a vector grown by doubling took three
        // allocations each time. The same samples in the same order either way.
        let mut stack = [0.0f64; 64];
        let mut heap = Vec::new();
        let plain = if values.len() <= stack.len() {
            let mut n = 0;
            for &v in values.iter().filter(|v| v.is_finite()) {
                stack[n] = v;
                n += 1;
            }
            &mut stack[..n]
        } else {
            heap.extend(values.iter().copied().filter(|v| v.is_finite()));
            &mut heap[..]
        };
        let trim = level.saturating_sub(1);
        if !multiplies {
            let mean = capped_mean(plain, trim, rise)?;
            return Some((mean, mean));
        }
        let mut routine: Vec<f64> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| v / adjust.multiplier_at(h.time(first + i)))
            .collect();
        Some((
            capped_mean(&mut routine, trim, rise)?,
            capped_mean(plain, trim, rise)?,
        ))
    }
}

/// How stale the newest sample may be before the load counts as unobserved: nothing is recorded
/// (and `plan` holds) without a recent sample. Samples further apart than this, with nothing
/// between, do not make a level together either (`zero_blips`).
pub const MAX_LOAD_AGE: Duration = Duration::minutes(5);

/// The sudden drops to zero in `values` (samples in order, NaN for a gap) that have not
/// persisted: each run of zeros (gaps within it included) that follows a non-zero level and
/// spans fewer than `persist` samples from its first zero to its last, as `(first, last, the
/// level before it, lasting)`. The level before a run is the lower median (`lower_median`) of the
/// newest `level` samples before it as they are read — earlier drops held, believed zeros as
/// zeros — so that one odd sample before a drop (a bogus spike, a lone sample after believed
/// zeros) is not what the drop is held at; a run whose level before is zero is no drop. A run
/// at the very start has nothing before it and is believed; a run at the end is judged by what
/// has been seen of it so far, so a drop that goes on is believed once it has lasted `persist`.
///
/// Nor is a drop held longer than the level it interrupts had lasted, from that level's first
/// sample after believed zeros (or the first read) to its last before the run: zeros are a
/// level once they have lasted as long as the load before them did. Two samples of a counter
/// reset (1e6 where the load was 0), then zeros, held one zero, not a quarter hour of them
/// read as 1e6 (the count kept at `maxReplicas` through them, then for the stabilization window).
/// A busy level lasted far longer than `persist`: its drops are held as before.
///
/// A level stands on at least `LEVEL_SAMPLES` samples at or above it (fewer when `level` is
/// smaller) that are no more than `apart` steps from each other: after a gap, one sample is all
/// that is read before a run, and a bogus one would otherwise be held over every zero that
/// follows and read as a sustained load; nor do two bogus samples half an hour apart, with
/// the series absent between them, confirm each other. The zeros are believed then, as the HPA
/// believes them. A level that stood before a gap still stands after it: the series' absence
/// says nothing of its load. A held run counts as its level for the runs after it, a level that
/// stood itself.
///
/// A level is `lasting` when it had lasted at least `persist` (as long as zeros must last to be
/// believed) and the run followed its newest sample within `apart` steps: a load the workload
/// carried up to the drop. The held zeros of a lasting level stand for it in every respect (a
/// decision's live floor reads them, and may raise the count to what they need); those of a
/// passing level (two samples of a counter reset, a level from before an absence of hours)
/// only keep a count from falling (`plan::decide`, `calibration::LiveReading::held_zero`).
pub fn zero_blips(
    values: &[f64],
    persist: usize,
    level: usize,
    apart: usize,
) -> Vec<(usize, usize, f64, bool)> {
    let mut blips = Vec::new();
    // The newest samples as read, oldest first.
    let mut before = Recent::new(level);
    // Where the level before a run began: its first sample after believed zeros (or the first).
    let mut since: Option<usize> = None;
    let mut run: Option<(usize, usize)> = None;
    let mut close =
        |run: &mut Option<(usize, usize)>, before: &mut Recent, since: &mut Option<usize>| {
            let Some((a, b)) = run.take() else {
                return;
            };
            // A drop is held no longer than the level it interrupts had lasted.
            let newest = before.newest_at();
            let lasted = match (*since, newest) {
                (Some(s), Some(e)) => e - s + 1,
                _ => 0,
            };
            let fill = before
                .standing_level(apart)
                .filter(|l| *l != 0.0 && b - a + 1 < persist.min(lasted));
            if let Some(fill) = fill {
                let lasting = lasted >= persist && newest.is_some_and(|e| a - e <= apart);
                blips.push((a, b, fill, lasting));
            } else {
                *since = None;
            }
            for (i, v) in values.iter().enumerate().take(b + 1).skip(a) {
                if v.is_finite() {
                    before.push(fill.unwrap_or(0.0), i);
                }
            }
        };
    for (i, &v) in values.iter().enumerate() {
        if v == 0.0 {
            run = Some(run.map_or((i, i), |(a, _)| (a, i)));
        } else if v.is_finite() {
            close(&mut run, &mut before, &mut since);
            since.get_or_insert(i);
            before.push(v, i);
        }
    }
    close(&mut run, &mut before, &mut since);
    blips
}

/// The fewest samples a level before a drop stands on (`zero_blips`): two, as the live floor's
/// sustained load (one sample alone is no sustained load).
const LEVEL_SAMPLES: usize = 2;

/// How far back a decision looks for the level a series had before it went absent
/// (`View::held_tail`): a day. Zeros after a longer absence are believed.
const HELD_REACH: Duration = Duration::days(1);

/// The newest few samples of a sequence and where they were, for `zero_blips`: a fixed window
/// without allocation.
struct Recent {
    values: [f64; 8],
    at: [usize; 8],
    len: usize,
    cap: usize,
}

impl Recent {
    fn new(cap: usize) -> Self {
        Self {
            values: [0.0; 8],
            at: [0; 8],
            len: 0,
            cap: cap.clamp(1, 8),
        }
    }

    fn push(&mut self, v: f64, at: usize) {
        if self.len == self.cap {
            self.values.copy_within(1..self.cap, 0);
            self.at.copy_within(1..self.cap, 0);
            self.values[self.cap - 1] = v;
            self.at[self.cap - 1] = at;
        } else {
            self.values[self.len] = v;
            self.at[self.len] = at;
            self.len += 1;
        }
    }

    /// Where the newest of them was.
    fn newest_at(&self) -> Option<usize> {
        self.len.checked_sub(1).map(|i| self.at[i])
    }

    /// Their lower median, if it stands: at least `LEVEL_SAMPLES` of them (fewer when the
    /// window is smaller) are at or above it, each within `apart` steps of the one before.
    fn standing_level(&self, apart: usize) -> Option<f64> {
        let mut xs = self.values;
        let level = lower_median(&mut xs[..self.len])?;
        let needed = LEVEL_SAMPLES.min(self.cap);
        let mut streak = 0;
        let mut last: Option<usize> = None;
        for (v, at) in self.values[..self.len].iter().zip(&self.at[..self.len]) {
            if *v < level {
                continue;
            }
            streak = match last {
                Some(j) if at - j <= apart => streak + 1,
                _ => 1,
            };
            last = Some(*at);
            if streak >= needed {
                return Some(level);
            }
        }
        None
    }
}

/// What the calendar changes in the forecasts: the intervals the seasonal history leaves out
/// (exclusions and events, widened to whole `COARSE_BLOCK`s so that the operator's coarse
/// history and the backtest's fine one leave out the same load), and the events' multipliers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Adjustments {
    /// Sorted, disjoint `[start, end)`.
    gaps: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// `[start, end)` and the multiplier, sorted by start.
    multipliers: Vec<(DateTime<Utc>, DateTime<Utc>, f64)>,
}

impl Adjustments {
    pub fn new(calendar: &Calendar) -> Self {
        let widen = |t: DateTime<Utc>, up: bool| {
            let down = t.duration_trunc(COARSE_BLOCK).unwrap_or(t);
            if up && down < t {
                down + COARSE_BLOCK
            } else {
                down
            }
        };
        let mut gaps: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (s, e) in calendar.unusual() {
            let (s, e) = (widen(s, false), widen(e, true));
            match gaps.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => gaps.push((s, e)),
            }
        }
        let mut multipliers: Vec<_> = calendar
            .events
            .iter()
            .filter_map(|e| Some((e.when.start, e.when.end, e.load_multiplier?)))
            .collect();
        multipliers.sort_by_key(|m| m.0);
        Self { gaps, multipliers }
    }

    /// Whether `self` and `other` change the forecasts alike within `[from, to)`: the same
    /// stretches left out of the seasonal history there, and the same multipliers.
    pub fn agree_within(&self, other: &Self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        let clip = |s: DateTime<Utc>, e: DateTime<Utc>| {
            (s < to && from < e).then(|| (s.max(from), e.min(to)))
        };
        let gaps =
            |a: &Self| -> Vec<_> { a.gaps.iter().filter_map(|&(s, e)| clip(s, e)).collect() };
        let multipliers = |a: &Self| -> Vec<_> {
            a.multipliers
                .iter()
                .filter_map(|&(s, e, m)| clip(s, e).map(|c| (c, m.to_bits())))
                .collect()
        };
        gaps(self) == gaps(other) && multipliers(self) == multipliers(other)
    }

    /// Whether `t` is in an interval the seasonal history leaves out.
    pub fn is_unusual(&self, t: DateTime<Utc>) -> bool {
        let i = self.gaps.partition_point(|(_, e)| *e <= t);
        self.gaps.get(i).is_some_and(|(s, _)| *s <= t)
    }

    /// The expected multiple of the usual load at `t` (the largest of the events under way, 1
    /// outside them).
    pub fn multiplier_at(&self, t: DateTime<Utc>) -> f64 {
        self.multipliers
            .iter()
            .take_while(|(s, _, _)| *s <= t)
            .filter(|(_, e, _)| t < *e)
            .map(|(_, _, m)| *m)
            .reduce(f64::max)
            .unwrap_or(1.0)
    }

    /// Whether an event with a multiplier meets `[from, to]`.
    fn multiplies(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.multipliers
            .iter()
            .any(|(s, e, _)| *s <= to && from < *e)
    }
}

impl View<'_> {
    /// The mean of the observed values in `[lo, hi]` outside the calendar's unusual intervals.
    fn usual_mean(&self, lo: i64, hi: i64, adjust: &Adjustments) -> Option<f64> {
        if adjust.gaps.is_empty() {
            return self.mean(lo, hi);
        }
        let hi = hi.min(self.end as i64);
        let lo = lo.max(self.lo as i64);
        if hi < lo {
            return None;
        }
        let h = self.history;
        let sum_count = |a: i64, b: i64| {
            let (a, b) = (a as usize, b as usize + 1);
            (h.sums[b] - h.sums[a], h.counts[b] - h.counts[a])
        };
        let (mut sum, mut count) = sum_count(lo, hi);
        let (t_lo, t_hi) = (h.time(lo as usize), h.time(hi as usize));
        let first = adjust.gaps.partition_point(|(_, e)| *e <= t_lo);
        for &(s, e) in adjust.gaps[first..].iter().take_while(|(s, _)| *s <= t_hi) {
            let a = index_ceil(h, s).max(lo);
            let b = (index_ceil(h, e) - 1).min(hi);
            if a <= b {
                let (gs, gc) = sum_count(a, b);
                sum -= gs;
                count -= gc;
            }
        }
        (count > 0).then(|| sum / count as f64)
    }
}

/// A way of predicting the load: a seasonal profile of the given period, scaled to the level of
/// the last minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Predictor {
    Daily,
    Weekly,
}

impl Predictor {
    pub fn name(self) -> &'static str {
        match self {
            Predictor::Daily => "daily",
            Predictor::Weekly => "weekly",
        }
    }

    pub fn season(self) -> Seasonality {
        match self {
            Predictor::Daily => Seasonality::Daily,
            Predictor::Weekly => Seasonality::Weekly,
        }
    }
}

/// Seasonal samples at least this far back are read through whole `COARSE_BLOCK`s: a window's
/// mean there is the mean of the blocks it touches. The operator keeps history older than this
/// (plus the longest lead time and a day for the calibration) only as block means, to hold weeks
/// of history for a thousand scalers in little memory; reading them the same way here makes the
/// backtest and the operator compute the same forecast from the same load.
pub const COARSE_AFTER: Duration = Duration::days(2);
/// See `COARSE_AFTER`.
pub const COARSE_BLOCK: Duration = Duration::minutes(5);

/// How far back from a view's end a forecast through it reads, for `cfg`: the most past
/// periods either profile takes the median of, and around the oldest, what `Past::reads_within`
/// allows for (the texture's hours, the smoothing, the blocks), with the level window beside.
/// History older than this changes no forecast, only how much history is said to be held
/// (`History::with_samples_before` keeps that): the operator holds no more
/// (`Planner::history_needs`), though `forecast.history` may ask for more.
pub fn reach(cfg: &ModelConfig) -> Duration {
    let periods =
        Duration::weeks(cfg.weekly_periods as i64).max(Duration::days(cfg.daily_periods as i64));
    periods
        + TEXTURE_SPAN
        + cfg.smoothing_half_width
        + cfg.level_window
        + COARSE_BLOCK * 3
        + Duration::minutes(1)
}

/// Tunables of the predictors and of the calibration. They are about the physics of load series
/// (noise, how fast a level moves) and about how much record a margin needs, not about any one
/// workload; they were chosen by measurement on the whole set of developer traces at once
/// (`docs/benchmarks.md`).
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The window whose mean is the current level, compared with the profile's over the same
    /// minutes of past periods.
    pub level_window: Duration,
    /// Half-width of the mean a past period's sample is smoothed over: wide enough to average
    /// out minute-level noise, narrow enough to keep a ramp's timing.
    pub smoothing_half_width: Duration,
    /// How many past days the daily profile takes the median of.
    pub daily_periods: usize,
    /// How many past weeks the weekly profile takes the median of.
    pub weekly_periods: usize,
    /// The step at which the profile is read inside the lead-time window.
    pub profile_step: Duration,
    /// How far back the calibration replays the record to set the margin.
    pub calibration_window: Duration,
    /// How much record the calibration needs before its margin is trusted.
    pub min_calibration: Duration,
    /// How often the calibration is recomputed (on the minute grid: at every multiple of it,
    /// moved by `recalibrate_offset`).
    pub recalibrate_interval: Duration,
    /// Where in the interval a scaler's boundaries fall (taken modulo the interval): 0 for a
    /// backtest; the operator spreads its scalers over the interval by a stable hash of their
    /// names, so that their recalibrations do not all fall on the same minute.
    pub recalibrate_offset: Duration,
    /// What the calibration keeps of its record between boundaries (no calibration depends on
    /// it: `calibration::Record`).
    pub record: super::calibration::Record,
    /// The largest relative margin: minutes only a larger one would have covered (an outage's
    /// end, a flash crowd) cannot be prevented by a margin worth paying for and do not set it.
    pub max_margin: f64,
    /// The absolute margins, in replicas, tried with each relative one: a fleet of a few pods
    /// needs a whole pod of margin more than a percentage.
    pub extra_replicas: &'static [f64],
    /// The whole replicas beside `max_margin` within which a minute's need still counts as
    /// preventable (`calibration::replay::unavoidable_minutes`): one, the granularity of a
    /// fleet (a load just above a pod's worth needs another pod whatever the percentage).
    /// A minute that needs more than twice its basis and another pod is a burst. Judged with
    /// the largest of `extra_replicas` (two) instead, a burst to four pods on a fleet of one
    /// counted against the objective, and the calibration held a second pod for the week
    /// after it: the whole week's cost doubled to cover minutes of one day that did not recur.
    pub burst_extra_replicas: f64,
    /// The calibration aims this many times below the objective: a margin fitted on the past week
    /// is optimistic about the next hours, most of all in the tail.
    pub objective_safety: f64,
    /// Whether a sharp rise that recurs at the same minute of most past periods is kept sharp
    /// in the profile (`Past::recurring_sharp`) rather than smoothed into a ramp: on by
    /// default; off only to measure what it does (`prescaler-bench --set recurring_steps=0`).
    pub recurring_steps: bool,
    /// How late the metric shows the load (a scrape and a rate window): the start-up time the
    /// calibration replays is the lead time less this.
    pub metric_delay: Duration,
    /// How long a sudden drop of the metric to zero is held like a missing sample before it is
    /// believed (`zero_blips`): a level window's worth. A whole level window of zeros is a
    /// level; anything shorter that follows real load is more likely a broken exporter, a
    /// counter reset or an empty scrape than a workload that stopped within a minute.
    pub zero_persistence: Duration,
    /// How many of the newest samples the sustained live load is the median of (see
    /// `calibration::LiveReading`): one odd sample neither raises nor lowers it, so the live
    /// floor does not pay for the minute-level texture.
    pub sustained_samples: usize,
    /// The bases the calibration may choose among (all five by default; fewer to force one, as
    /// the tests do).
    pub bases: &'static [Basis],
    /// How long the load must have been quiet in a quiet window before the workload may be at
    /// zero (`quiet::COOLDOWN`, KEDA's default `cooldownPeriod`; shorter only in tests that
    /// run on the wall clock).
    pub zero_cooldown: Duration,
    /// Whether a forecast basis may scale its relative margin, minute by minute, by how much
    /// the past periods its forecast reads disagree at the phase it forecasts
    /// (`period_spread`): a locally weighted conformal margin (Lei, G'Sell, Rinaldo, Tibshirani
    /// & Wasserman 2018; the normalized nonconformity of Papadopoulos et al.),
    /// `margin = q · (spread + β)`, `q` the quantile of the week's needs divided by the same
    /// scale, `β` the week's median spread. The scale is known ahead, not fitted on the
    /// calibration's errors; a minute's is the highest over the stabilization window before it,
    /// as the recommendation it sets is held that long. Each forecast basis keeps one margin
    /// for the week where that replays cheaper. On by default; off only to measure what it does
    /// (`prescaler-bench --set period_spread=0`).
    pub period_spread: bool,
    /// Whether a past period whose load around a phase is a burst no basis could have foreseen
    /// is left out of the median the profile and the level take there (`Past::burst`): of
    /// two periods, one more than `1 + max_margin` times the other, and times its own hours
    /// around (and, in a week, the same minutes a day later), where the other is not. A flash
    /// crowd a week ago then neither lowers the weekly level ratio nor raises the profile a
    /// week later, where the weekly median of two periods is their mean. On by default; off
    /// only to measure what it does (`prescaler-bench --set bursts_left_out=0`).
    pub bursts_left_out: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            level_window: Duration::minutes(15),
            smoothing_half_width: Duration::minutes(15),
            daily_periods: 4,
            weekly_periods: 2,
            profile_step: Duration::minutes(3),
            calibration_window: Duration::days(7),
            min_calibration: Duration::days(1),
            recalibrate_interval: Duration::minutes(180),
            recalibrate_offset: Duration::zero(),
            record: super::calibration::Record::Kept,
            max_margin: 1.0,
            extra_replicas: &[0.0, 0.5, 1.0, 2.0],
            burst_extra_replicas: 1.0,
            objective_safety: 1.5,
            recurring_steps: true,
            metric_delay: Duration::minutes(1),
            zero_persistence: Duration::minutes(15),
            sustained_samples: 3,
            bases: &BASES,
            zero_cooldown: crate::quiet::COOLDOWN,
            period_spread: true,
            bursts_left_out: true,
        }
    }
}

impl ModelConfig {
    fn periods(&self, predictor: Predictor) -> usize {
        match predictor {
            Predictor::Daily => self.daily_periods,
            Predictor::Weekly => self.weekly_periods,
        }
    }
}

/// Predicts the highest load in `[from, to]` with `predictor`, from what `view` has observed:
/// the profile (the median over past periods of the load's mean around the same phase), times
/// the ratio of the last minutes' load to the profile over the same minutes.
///
/// The calendar's unusual days are left out of the past periods, and its events' multipliers
/// scale the profile in their minutes (and are taken out of the current level).
pub fn predict_peak(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'_>,
    adjust: &Adjustments,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<f64> {
    predict_peak_reusing(
        cfg,
        predictor,
        view,
        adjust,
        from,
        to,
        &mut ProfileMemo::default(),
    )
}

/// `predict_peak`, reusing the profile's points that `memo` holds from forecasts of nearby
/// minutes read through views of the same history (the calibration's record, rebuilt a week
/// of minutes at a time, reads each point about `lead / profile_step` times).
pub fn predict_peak_reusing(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'_>,
    adjust: &Adjustments,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    memo: &mut ProfileMemo,
) -> Option<f64> {
    let level = level_now(cfg, view, adjust)?;
    predict_peak_at_level(cfg, predictor, view, adjust, from, to, level, memo)
}

/// `predict_peak_reusing` with the view's level (`level_now`) read already: it is the same for
/// every predictor of a view, and the held level was a fifth of a week's rebuild of forecasts
/// when each predictor read it again.
#[allow(clippy::too_many_arguments)]
pub fn predict_peak_at_level(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'_>,
    adjust: &Adjustments,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    level: f64,
    memo: &mut ProfileMemo,
) -> Option<f64> {
    let past = whole_periods(cfg, predictor, view, adjust)?;
    let ratio = level_ratio(cfg, &past, level)?;
    profile_peak(cfg, &past, from, to, memo).map(|p| p * ratio)
}

/// How much the past periods `predictor` reads disagree about the highest load in
/// `[from, to]`, relative to their level: each whole past period alone forecasts it as its own
/// ±`smoothing_half_width` mean at the profile's points, divided by its own mean over the level
/// window (the forecast's level ratio applies the same `now` to all of them); the result is the
/// median absolute deviation of these single-period forecasts over their median. `None` with
/// fewer than two periods, or none with a level.
pub fn period_spread(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'_>,
    adjust: &Adjustments,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<f64> {
    let past = whole_periods(cfg, predictor, view, adjust)?;
    let h = view.history();
    let w = h.steps(cfg.level_window).max(1);
    let half = h.steps(cfg.smoothing_half_width);
    let end = view.end() as i64;
    let mut alone = [0.0f64; 8];
    let mut n = 0;
    // The same points in every period: their indices found once (from times), not per period.
    let points = profile_indices(cfg, h, from, to);
    for k in 1..=past.periods.min(alone.len() as i64) {
        let c = end - k * past.period;
        let Some(level) = past.period_mean(k, c - w + 1, c).filter(|l| *l > 0.0) else {
            continue;
        };
        let peak = points
            .clone()
            .filter_map(|i| {
                let ci = i - k * past.period;
                (ci + half <= end)
                    .then(|| past.period_mean(k, ci - half, ci + half))
                    .flatten()
            })
            .reduce(f64::max);
        if let Some(p) = peak {
            alone[n] = p / level;
            n += 1;
        }
    }
    if n < 2 {
        return None;
    }
    let mid = median(&mut alone[..n]).filter(|m| *m > 0.0)?;
    let mut deviations = [0.0f64; 8];
    for (d, a) in deviations.iter_mut().zip(&alone[..n]) {
        *d = (a - mid).abs();
    }
    Some(median(&mut deviations[..n])? / mid)
}

/// The profile's points (`profile_point`) computed by recent forecasts, for one predictor over
/// one history and one set of adjustments: hold one per predictor, and a new one for another
/// history. A point depends on the view it is read through only where its reads reach past the
/// view's ends, or when the number of past periods differs; a point is kept and reused only
/// where neither is so (`Past::reads_within`), so reusing it changes nothing.
#[derive(Clone, Debug)]
pub struct ProfileMemo {
    periods: i64,
    /// `(index, point)` by `index mod MEMO_SLOTS`; an index of `i64::MIN` is empty.
    slots: [(i64, Option<f64>); MEMO_SLOTS],
    /// The texture (`Past::texture`) of the block the newest point read in each past period.
    textures: TextureMemo,
    /// Points computed since the memo was made (or its periods changed): past `TABLE_AFTER`
    /// the memo serves a rebuild, and keeps `table`.
    computed: usize,
    /// What the points read of each block of the history's grid (by `Past::grid_block`),
    /// once the memo serves a rebuild; empty before (a minute's forecasts read a few points,
    /// and would pay for the table without reading it again).
    table: Vec<BlockReads>,
}

/// What profile points read of one block of the history's grid that is the same for every
/// point that reads it, through any view that holds all of its reads (`Past::grid_texture`,
/// `Past::grid_sharp`): kept in `ProfileMemo::table` and read once a rebuild, not once a past
/// period. A day later the same block is the next daily period's (and every daily period from
/// the second on reads it through whole blocks), so a week's rebuild read each block's texture
/// and rise up to four times, and five times in a period read through whole blocks, where each
/// point of a block reads the same blocks.
#[derive(Clone, Copy, Debug, Default)]
struct BlockReads {
    /// `Past::texture` of the block, once read.
    texture: Option<Option<f64>>,
    /// `Past::sharp_rise` of the block in a period read through whole blocks, once read.
    sharp: Option<Option<(f64, f64)>>,
}

/// How many points a memo computes before it keeps a table of blocks (`ProfileMemo::table`):
/// more than a minute's forecasts read (a lead time over `profile_step`), far fewer than a
/// week's rebuild.
const TABLE_AFTER: usize = 64;

/// The texture of one block in each past period (`k - 1` indexes it), as `(the block's first
/// index, texture)`: a texture is read on the grid of blocks, so it is the same for every point
/// of a block wherever its reads fall within the view (`Past::reads_within`), and the five
/// points of a block, computed by five consecutive minutes' forecasts, read it once rather than
/// five times. It was two fifths of a first calibration's week of forecasts.
type TextureMemo = [(i64, Option<f64>); PERIODS_READ];

/// What a point computed through a memo may reuse: the textures of the blocks read last, and
/// the table of blocks once the memo keeps one (`ProfileMemo`).
struct Blocks<'m> {
    textures: &'m mut TextureMemo,
    table: &'m mut [BlockReads],
}

/// The most past periods a profile point reads (`Past::median_at`, `Past::recurring_sharp`).
const PERIODS_READ: usize = 8;

/// More than the points one forecast reads (a lead time over `profile_step`), so that those
/// of the minutes before are still there.
const MEMO_SLOTS: usize = 64;

impl Default for ProfileMemo {
    fn default() -> Self {
        Self {
            periods: 0,
            slots: [(i64::MIN, None); MEMO_SLOTS],
            textures: [(i64::MIN, None); PERIODS_READ],
            computed: 0,
            table: Vec::new(),
        }
    }
}

impl ProfileMemo {
    fn point(&mut self, cfg: &ModelConfig, past: &Past<'_>, i: i64, half: i64) -> Option<f64> {
        if !past.reads_within(i, half) {
            return profile_point(cfg, past, i, half, None);
        }
        if past.periods != self.periods {
            *self = Self {
                periods: past.periods,
                ..Self::default()
            };
        }
        let slot = &mut self.slots[i.rem_euclid(MEMO_SLOTS as i64) as usize];
        if slot.0 != i {
            let blocks = Blocks {
                textures: &mut self.textures,
                table: &mut self.table,
            };
            *slot = (i, profile_point(cfg, past, i, half, Some(blocks)));
            self.computed += 1;
            if self.computed == TABLE_AFTER {
                let h = past.view.history();
                let blocks = (h.len() as i64 + past.block_phase) / past.block + 1;
                self.table = vec![BlockReads::default(); blocks as usize];
            }
        }
        slot.1
    }
}

/// The past periods of `predictor`'s season the view has observed whole, at most as many as
/// `cfg` takes the median of; `None` before the first whole one.
fn whole_periods<'a>(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'a>,
    adjust: &'a Adjustments,
) -> Option<Past<'a>> {
    let h = view.history();
    let period = h.steps(predictor.season().period());
    if period == 0 {
        return None;
    }
    let block = h.steps(COARSE_BLOCK).max(1);
    let block_phase = (h.start().timestamp() / h.step().num_seconds().max(1)).rem_euclid(block);
    // Use only whole periods that have been observed, counted from the block of the first
    // sample: the operator's cache knows old history only as whole blocks.
    let first = view.first_known()?;
    let first_block = first - (first + block_phase).rem_euclid(block);
    let observed = view.end() as i64 - first_block;
    let periods = (observed / period).min(cfg.periods(predictor) as i64);
    if periods == 0 {
        return None;
    }
    Some(Past {
        view,
        adjust,
        period,
        periods,
        coarse_lag: h.steps(COARSE_AFTER),
        block,
        block_phase,
        burst_above: cfg.bursts_left_out.then_some(1.0 + cfg.max_margin),
    })
}

/// The current level a forecast scales the profile to: the live level over the level window
/// as `View::held_level` reads it (a sudden drop to zero that has not persisted is held like a
/// missing sample), with the calendar's event multipliers taken out. `None` without a sample in
/// the window. It depends on the view, not on the predictor.
pub fn level_now(cfg: &ModelConfig, view: View<'_>, adjust: &Adjustments) -> Option<f64> {
    let h = view.history();
    let (mut now, plain) = view.held_level(
        h.steps(cfg.level_window).max(1),
        h.steps(cfg.zero_persistence),
        cfg.sustained_samples,
        1.0 + cfg.max_margin,
        adjust,
    )?;
    // Once an event is over, a surge that did not come as declared must not read as a drop of
    // the level: the forecast never goes below what the load itself shows.
    if !adjust.multipliers.is_empty() && adjust.multiplier_at(view.end_time()) == 1.0 {
        now = now.max(plain);
    }
    Some(now)
}

/// The ratio of the current level (`level_now`) to the profile's over the same minutes of past
/// periods: what scales the profile to this period's load. `None` when the past periods show no
/// load there and the level does.
fn level_ratio(cfg: &ModelConfig, past: &Past<'_>, now: f64) -> Option<f64> {
    let w = past.view.history().steps(cfg.level_window).max(1);
    let then = past.median(|c| (c - w + 1, c))?;
    if then > 0.0 {
        Some(now / then)
    } else if now == 0.0 {
        Some(1.0)
    } else {
        None
    }
}

/// The profile's highest point in `[from, to]`, read every `profile_step` and at `to`: the
/// median over past periods around each instant, kept sharp where a rise recurs, scaled by the
/// calendar's multipliers. `None` where no past period covers the window.
fn profile_peak(
    cfg: &ModelConfig,
    past: &Past<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    memo: &mut ProfileMemo,
) -> Option<f64> {
    let h = past.view.history();
    let half = h.steps(cfg.smoothing_half_width);
    profile_indices(cfg, h, from, to)
        .filter_map(|i| memo.point(cfg, past, i, half))
        .reduce(f64::max)
}

/// The indices of `[from, to]` at which the profile is read: every `profile_step` from the
/// first, and the last (`to`) whatever the step, so that a peak at the horizon is not missed.
fn profile_indices(
    cfg: &ModelConfig,
    h: &History,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = i64> + Clone {
    let lo = index_ceil(h, from);
    let hi = index_floor(h, to).max(lo);
    let step = h.steps(cfg.profile_step).max(1);
    std::iter::successors(Some(lo), move |&i| (i < hi).then(|| (i + step).min(hi)))
}

/// The profile at index `i`: the median over past periods around it, kept sharp where a rise
/// recurs, scaled by the calendar's multiplier.
fn profile_point(
    cfg: &ModelConfig,
    past: &Past<'_>,
    i: i64,
    half: i64,
    blocks: Option<Blocks<'_>>,
) -> Option<f64> {
    let (h, adjust) = (past.view.history(), past.adjust);
    let p = past.median_at(i, |c| (c - half, c + half))?;
    let p = match cfg.recurring_steps {
        true => past
            .recurring_sharp(i, half, blocks)
            .map_or(p, |s| s.max(p)),
        false => p,
    };
    Some(if adjust.multipliers.is_empty() {
        p
    } else {
        p * adjust.multiplier_at(h.time(i.max(0) as usize))
    })
}

pub(crate) fn index_ceil(h: &History, t: DateTime<Utc>) -> i64 {
    let d = (t - h.start()).num_seconds();
    let s = h.step().num_seconds();
    d.div_euclid(s) + i64::from(d.rem_euclid(s) != 0)
}

pub(crate) fn index_floor(h: &History, t: DateTime<Utc>) -> i64 {
    (t - h.start())
        .num_seconds()
        .div_euclid(h.step().num_seconds())
}

/// Past periods of one seasonality, as seen by a view.
struct Past<'a> {
    view: View<'a>,
    adjust: &'a Adjustments,
    period: i64,
    periods: i64,
    /// Past periods at least this many steps back are read through whole blocks.
    coarse_lag: i64,
    /// Steps per `COARSE_BLOCK`.
    block: i64,
    /// Where index 0 falls in its block (blocks are aligned to the epoch).
    block_phase: i64,
    /// With `ModelConfig::bursts_left_out`, how many times every other period's load a burst
    /// stands (`Past::burst`).
    burst_above: Option<f64>,
}

impl Past<'_> {
    /// Whether every read of the profile's point at `i` (`profile_point`: the ±`half` means of
    /// the past periods, the blocks around them and their texture) falls within the view, so
    /// that the point is the same through any view with as many past periods that does too.
    fn reads_within(&self, i: i64, half: i64) -> bool {
        let texture = self.view.history().steps(TEXTURE_SPAN);
        // Whole blocks around each end, the block after the rise's, and one step to spare.
        let reach = texture + half + 3 * self.block + 1;
        i - self.periods * self.period - reach >= self.view.lo as i64
            && i - self.period + reach <= self.view.end as i64
    }

    /// The median over past periods of the mean over `window(c)`, where `c` is the index one
    /// period back, two periods back, …, relative to the view's end.
    fn median(&self, window: impl Fn(i64) -> (i64, i64)) -> Option<f64> {
        self.median_at(self.view.end() as i64, window)
    }

    /// The same, relative to index `i`. A past period counts only once its window has been
    /// observed: causality.
    fn median_at(&self, i: i64, window: impl Fn(i64) -> (i64, i64)) -> Option<f64> {
        let mut samples = [0.0f64; PERIODS_READ];
        let mut periods = [0i64; PERIODS_READ];
        let mut n = 0;
        for k in 1..=self.periods.min(samples.len() as i64) {
            let (lo, hi) = window(i - k * self.period);
            if hi > self.view.end() as i64 {
                continue;
            }
            if let Some(m) = self.period_mean(k, lo, hi) {
                samples[n] = m;
                periods[n] = k;
                n += 1;
            }
        }
        if let Some(b) = self.burst(i, &samples[..n], &periods[..n], &window) {
            samples.copy_within(b + 1..n, b);
            n -= 1;
        }
        median(&mut samples[..n])
    }

    /// Which of the periods' means `samples` (of periods `periods`, over `window` around index
    /// `i`), if any, is a burst no basis could have foreseen (`ModelConfig::bursts_left_out`):
    /// of two, the higher, where it stands more than `burst_above` times the other as it is,
    /// more than `burst_above` times its own surroundings (`Past::surroundings`: it rose and
    /// fell within hours), and that much more above them than the other period stands above
    /// its own; in a season longer than a day, also more than `burst_above` times the same
    /// window a day later in its own period. A forecast basis times `1 + max_margin` is the
    /// most the calibration provisions (`ModelConfig::max_margin`), so such a load is what a
    /// period like the other would have left unpreventable, and it says nothing about the phase
    /// in the next period: a flash crowd. Nothing is left out where one period's whole level is
    /// higher (a shift between them: its surroundings are higher too), where the other period
    /// is the unusual one (a snowstorm or a holiday: the ordinary one is not far above its own
    /// hours, and its morning peak is there the next day too), or where both show it (a
    /// recurring spike: neither is above the other). The median of three or more is not moved
    /// by one burst (its highest value is not read); of two it is their mean.
    fn burst(
        &self,
        i: i64,
        samples: &[f64],
        periods: &[i64],
        window: &impl Fn(i64) -> (i64, i64),
    ) -> Option<usize> {
        let above = self.burst_above?;
        let [a, b] = samples else {
            return None;
        };
        let (top, other) = if a > b { (0, 1) } else { (1, 0) };
        // Cheap first: as it is (most windows of most forecasts stop here).
        if samples[top] <= above * samples[other] {
            return None;
        }
        let relative = |j: usize| {
            let k = periods[j];
            self.surroundings(k, i - k * self.period)
                .filter(|r| *r > 0.0)
                .map(|r| samples[j] / r)
        };
        // Far above its own hours, and above them far more than the other period is.
        let high = relative(top).filter(|t| *t > above)?;
        if !relative(other).is_some_and(|r| high > above * r) {
            return None;
        }
        let day = self.view.history().steps(Duration::days(1));
        if self.period > day {
            let k = periods[top];
            let (lo, hi) = window(i - k * self.period);
            let next_day = (hi + day <= self.view.end() as i64)
                .then(|| self.period_mean(k, lo + day, hi + day))
                .flatten();
            if !next_day.is_some_and(|d| samples[top] > above * d) {
                return None;
            }
        }
        Some(top)
    }

    /// The load around `c`, `k` periods back, that a burst of a few blocks does not move: the
    /// median of the means of the half hours of `TEXTURE_SPAN` on each side (those observed).
    fn surroundings(&self, k: i64, c: i64) -> Option<f64> {
        let half_hour = self.view.history().steps(Duration::minutes(30)).max(1);
        let span = self.view.history().steps(TEXTURE_SPAN);
        let end = self.view.end() as i64;
        let mut means = [0.0f64; 16];
        let mut m = 0;
        let mut lo = c - span;
        while lo + half_hour <= c + span && m < means.len() {
            let hi = lo + half_hour - 1;
            if hi <= end
                && let Some(v) = self.period_mean(k, lo, hi)
            {
                means[m] = v;
                m += 1;
            }
            lo += half_hour;
        }
        median(&mut means[..m])
    }

    /// The mean over `[lo, hi]` in the past period `k` periods back.
    fn period_mean(&self, k: i64, lo: i64, hi: i64) -> Option<f64> {
        if k * self.period >= self.coarse_lag {
            // Whole blocks: from the start of lo's block to the end of hi's.
            let lo = lo - (lo + self.block_phase).rem_euclid(self.block);
            let hi = hi - (hi + self.block_phase).rem_euclid(self.block) + self.block - 1;
            self.view
                .usual_mean(lo, hi.min(self.view.end() as i64), self.adjust)
        } else {
            self.view.usual_mean(lo, hi, self.adjust)
        }
    }

    /// A rise sharper than the ±`half` smoothing that recurs at the same minute: where, in most
    /// of the past periods, the mean over the block that holds `i` (`COARSE_BLOCK`, the finest the
    /// older periods are kept at) stands above both the ±`half` mean and the lowest block of
    /// the `half` before it by more than `SHARP_TEXTURE` times that period's texture
    /// (`texture`), the median of the rise's heights. A step or spike at 09:00 every day is then
    /// forecast at its height, not as the ramp the smoothing makes of it; a burst on one day, or
    /// the texture, is not.
    ///
    /// A period's height is the higher of that block's mean and the next block's. The block
    /// that holds a step also holds minutes from before it, so its mean under-reads the step
    /// (the demo's newsletter on its first day: the block from 09:00 averages 462 requests/s,
    /// the load is 562 at 09:02 and the next block averages 517); the block after it holds only
    /// minutes after the step, the height the load reached. Where the rise is a spike shorter
    /// than a block, the next block is lower and the block's own mean stands, as before. The
    /// price is that the minutes of the step's block before the step are provisioned for it: a
    /// few minutes early, not short.
    ///
    /// A step in the last minutes of its block leaves that block's mean below the ±`half` mean
    /// (a spike from 100 to 1000 at minute 3 of a block: the block averages 460, the mean
    /// about 540), so the block alone is not a rise. It is counted as one where it has left the
    /// blocks before it and the next block is a rise: its rise is then the lesser of the two,
    /// judged against the texture as any other. Otherwise the step's first minutes are read at
    /// the smoothed mean by every decision that readies replicas for them, and the calibration
    /// buys them back with a margin on every minute of the day, the step's height included
    /// (that spike, at 50 per replica: a 72 % margin and 35 replicas for a spike that needs
    /// 20). A block that has not risen before a step (the step at its next block's start) is
    /// not counted: a step is provisioned at most its own block early, never a block more.
    ///
    /// `blocks`, where given, holds the textures of blocks read before (only where every read
    /// of the point falls within the view: `ProfileMemo`), and once the memo keeps a table,
    /// each block's texture and, in a period read through whole blocks, its sharp rise.
    fn recurring_sharp(&self, i: i64, half: i64, mut blocks: Option<Blocks<'_>>) -> Option<f64> {
        const MOST: usize = PERIODS_READ;
        let mut heights = [0.0f64; MOST];
        // Each period's rise relative to its smoothed mean, and where it was (`k`, `c`).
        let mut rises = [(0.0f64, 0i64, 0i64); MOST];
        let mut n = 0;
        for k in 1..=self.periods.min(MOST as i64) {
            let c = i - k * self.period;
            // The window and the block after c's (the height) must have been observed.
            if c + half + self.block > self.view.end() as i64 {
                continue;
            }
            let sharp = match blocks.as_mut() {
                Some(b) if !b.table.is_empty() => self.grid_sharp(k, c, half, b.table),
                _ => self.sharp_rise(k, c, half),
            };
            let Some((height, rise)) = sharp else {
                continue;
            };
            heights[n] = height;
            rises[n] = (rise, k, c);
            n += 1;
        }
        // The texture (hours of blocks) is read only where most periods rise at all, and only
        // until most are judged sharp: the result is the same, the forecast cheaper.
        if 2 * rises[..n].iter().filter(|r| r.0 > 0.0).count() <= n {
            return None;
        }
        let mut agree = 0;
        for &(rise, k, c) in &rises[..n] {
            if rise <= 0.0 {
                continue;
            }
            let texture = match blocks.as_mut() {
                Some(b) => {
                    let block = c - (c + self.block_phase).rem_euclid(self.block);
                    let slot = &mut b.textures[(k - 1) as usize];
                    if slot.0 != block {
                        let texture = self.grid_texture(k, c, b.table);
                        *slot = (block, texture.unwrap_or_else(|| self.texture(k, c)));
                    }
                    slot.1
                }
                None => self.texture(k, c),
            };
            if texture.is_some_and(|t| rise > SHARP_TEXTURE * t) {
                agree += 1;
                if 2 * agree > n {
                    return median(&mut heights[..n]);
                }
            }
        }
        None
    }

    /// The period `k` back's part in `recurring_sharp` around `c`: its height (the higher of
    /// the mean of `c`'s block and of the next) and its rise (`rise`, or where the block has
    /// left the blocks before it but stays below its ±`half` mean, the lesser of that and the
    /// next block's rise). `None` where the block or its ±`half` mean was not observed.
    fn sharp_rise(&self, k: i64, c: i64, half: i64) -> Option<(f64, f64)> {
        let (rise, from_below, here) = self.rise(k, c, half)?;
        let next = self.block_mean(k, c + self.block);
        let height = next.map_or(here, |next| next.max(here));
        // The step's own block, when the step falls late in it: its mean, mostly minutes
        // from before the step, stays below the ±half mean, but it has left the blocks
        // before it, and the next block (all after the step) is a rise. Its rise is the
        // lesser of the two; a flat block before a step (nothing risen yet) is not one.
        if rise <= 0.0
            && from_below > 0.0
            && let Some((next_rise, _, _)) = self.rise(k, c + self.block, half)
            && next_rise > 0.0
        {
            return Some((height, next_rise.min(from_below)));
        }
        Some((height, rise))
    }

    /// The index in a table of blocks (`ProfileMemo::table`) of the block that holds `c`, and
    /// that block's first index, where the table has it.
    fn grid_block(&self, c: i64, table: &[BlockReads]) -> Option<(usize, i64)> {
        let first = c - (c + self.block_phase).rem_euclid(self.block);
        let at = usize::try_from((first + self.block_phase) / self.block).ok()?;
        (at < table.len()).then_some((at, first))
    }

    /// `sharp_rise` read once a block, where that is what it is: in a period read through
    /// whole blocks (`period_mean`), with a smoothing of whole blocks, every read of it
    /// (the ±`half` means of `c`'s block and of the next, the blocks before each) covers the
    /// same whole blocks for every `c` of the block, whatever the period; and where all of
    /// them lie within the view, none is clipped, so it is the same through any view.
    /// Elsewhere read as it is.
    fn grid_sharp(
        &self,
        k: i64,
        c: i64,
        half: i64,
        table: &mut [BlockReads],
    ) -> Option<(f64, f64)> {
        let coarse = k * self.period >= self.coarse_lag && half % self.block == 0;
        let entry = self.grid_block(c, table).filter(|&(_, first)| {
            first - half >= self.view.lo as i64
                && first + half + 2 * self.block - 1 <= self.view.end() as i64
        });
        match entry {
            Some((at, _)) if coarse => *table[at]
                .sharp
                .get_or_insert_with(|| self.sharp_rise(k, c, half)),
            _ => self.sharp_rise(k, c, half),
        }
    }

    /// `texture` from the table of blocks, where every block it reads around `c`'s lies within
    /// the view: it reads whole blocks of the grid, the same whatever the period (a block is
    /// whole in a period read through whole blocks too), so it is then the same for any `c`
    /// of the block, any period and any such view. `None` (not read) elsewhere.
    fn grid_texture(&self, k: i64, c: i64, table: &mut [BlockReads]) -> Option<Option<f64>> {
        let span = (TEXTURE_SPAN.num_minutes() / COARSE_BLOCK.num_minutes()) * self.block;
        let (at, first) = self.grid_block(c, table)?;
        // `texture` reads the blocks of `c + j·block` for |j| ≤ its span, each where it ends
        // within the view (`c + j·block + block ≤ end`): all of them, for every `c` of the
        // block, when the last `c` of the block's does.
        let within = first - span >= self.view.lo as i64
            && first + self.block - 1 + span + self.block <= self.view.end() as i64;
        within.then(|| *table[at].texture.get_or_insert_with(|| self.texture(k, c)))
    }

    /// How far the block that holds `c`, `k` periods back, rises, relative to the ±`half`
    /// mean: the lesser of its height above that mean and above the lowest block of the `half`
    /// before it (a plateau or a smooth bump is above its mean too, but rose slowly); with the
    /// latter alone, and the block's mean.
    fn rise(&self, k: i64, c: i64, half: i64) -> Option<(f64, f64, f64)> {
        let smooth = self.period_mean(k, c - half, c + half)?;
        let here = self.block_mean(k, c)?;
        let least_before = (1..=half / self.block)
            .filter_map(|j| self.block_mean(k, c - j * self.block))
            .fold(here, f64::min);
        let scale = smooth.max(f64::MIN_POSITIVE);
        let from_below = (here - least_before) / scale;
        Some((((here - smooth) / scale).min(from_below), from_below, here))
    }

    /// The mean over the block (on the epoch's grid of `COARSE_BLOCK`s) that holds `c`, `k`
    /// periods back: the same block in recent and in older periods, and blocks a block apart
    /// that do not overlap, so that their differences are the texture's and no less.
    fn block_mean(&self, k: i64, c: i64) -> Option<f64> {
        let lo = c - (c + self.block_phase).rem_euclid(self.block);
        self.period_mean(k, lo, lo + self.block - 1)
    }

    /// The relative texture of the load around `c`, `k` periods back: the median, over the
    /// blocks of `TEXTURE_SPAN` on each side, of the absolute second difference of consecutive
    /// block means relative to the block's mean. Second differences ignore ramps, and a median
    /// over hours one step or spike does not move. The blocks are those of the grid around
    /// `c`'s block, so where all of them lie within the view, the texture depends on `c` only
    /// through its block (`TextureMemo`).
    fn texture(&self, k: i64, c: i64) -> Option<f64> {
        let blocks = TEXTURE_SPAN.num_minutes() / COARSE_BLOCK.num_minutes();
        let end = self.view.end() as i64;
        let at = |j: i64| {
            let mid = c + j * self.block;
            (mid + self.block <= end)
                .then(|| self.block_mean(k, mid))
                .flatten()
        };
        let mut changes = [0.0f64; 64];
        let mut m = 0;
        let (mut a, mut b) = (at(-blocks), at(1 - blocks));
        for j in (2 - blocks)..=blocks {
            let next = at(j);
            if let (Some(x), Some(y), Some(z)) = (a, b, next)
                && y > 0.0
                && m < changes.len()
            {
                changes[m] = (x - 2.0 * y + z).abs() / y;
                m += 1;
            }
            (a, b) = (b, next);
        }
        median(&mut changes[..m])
    }
}

/// How far above the smoothed mean, relative to it and in units of a period's texture
/// (`Past::texture`), a block must stand to count as a sharp rise. For Gaussian texture the
/// median absolute second difference of block means is about 1.65 standard deviations of one
/// block mean, so two of it is a rise of about 3.3: one the texture alone gives about once in
/// two thousand blocks, and in most periods at once practically never.
const SHARP_TEXTURE: f64 = 2.0;

/// How far on each side of a minute its texture is read (`Past::texture`): hours, so that one
/// step or spike is a few of the second differences the median is taken of.
const TEXTURE_SPAN: Duration = Duration::hours(2);

/// The median of `xs` (reordered in place), `None` when empty.
pub(crate) fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    // A selection, not a sort: the same order statistics (values equal under `total_cmp` are
    // the same bits), in linear time; the texture takes the median of dozens of blocks for
    // every instant a forecast reads, a week of forecasts at each start.
    let n = xs.len();
    let (below, &mut upper, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    Some(if n % 2 == 1 {
        upper
    } else {
        let lower = below
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        (lower + upper) / 2.0
    })
}

/// The mean of `xs` (sorted in place) with each of its `k` highest samples counted at most
/// `rise` times the `k + 1`-th highest (fewer than `k` of them when there are fewer than
/// `2k + 1` samples, so that the cap stands on the middle); `None` when empty. Samples within
/// `rise` of each other, whatever their noise, keep their plain mean.
pub(crate) fn capped_mean(xs: &mut [f64], k: usize, rise: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    let k = k.min((n - 1) / 2);
    let reference = xs[n - 1 - k];
    let cap = (reference * rise).max(reference);
    let sum: f64 = xs.iter().map(|v| v.min(cap)).sum();
    Some(sum / n as f64)
}

/// The lower median of `xs` (reordered in place): the middle one of an odd count, the lower of the
/// two middle ones of an even count; `None` when empty. Unlike the median it is always one of
/// the samples, and of two or more it is never above the second-highest: one sample alone,
/// however high, cannot raise it above every other.
pub(crate) fn lower_median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let (_, &mut lower, _) = xs.select_nth_unstable_by((xs.len() - 1) / 2, f64::total_cmp);
    Some(lower)
}

/// The predictors a spec's seasonalities ask for.
pub fn predictors_for(seasonality: &[Seasonality]) -> Vec<Predictor> {
    [Predictor::Daily, Predictor::Weekly]
        .into_iter()
        .filter(|p| seasonality.contains(&p.season()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() // a Monday
    }

    #[test]
    fn profile_points_reused_across_minutes_change_no_forecast() {
        // Fifteen days with a recurring 09:00 step, texture, gaps (the first six hours: past
        // periods are counted from the first sample, so the count grows at a minute when the
        // views reach back before it), and a calendar with
        // an exclusion and a multiplied event: every minute's forecast through views of the
        // history, reusing one memo per predictor from minute to minute, against each
        // forecast made alone. Views of 28 and 8 days read within their ends; views ten
        // minutes longer than whole periods clip their oldest period's window at their start,
        // differently at each minute, so that their points must not be reused.
        let minutes = 15 * 1440;
        let values: Vec<f64> = (0..minutes)
            .map(|m| {
                let day = m % 1440;
                let base = if (540..1020).contains(&day) {
                    900.0
                } else {
                    150.0
                };
                if m < 360 || (4 * 1440 + 300..5 * 1440).contains(&m) {
                    f64::NAN
                } else {
                    base + ((m * 7919) % 101) as f64
                }
            })
            .collect();
        let h = History::new(t0(), Duration::minutes(1), values);
        let at = |d: i64, hh: i64| t0() + Duration::days(d) + Duration::hours(hh);
        let adjustments = [
            Adjustments::default(),
            Adjustments {
                gaps: vec![(at(2, 8), at(2, 20))],
                multipliers: vec![(at(9, 10), at(9, 12), 2.5)],
            },
        ];
        let cfg = ModelConfig::default();
        let lead = Duration::minutes(7);
        let ten = Duration::minutes(10);
        let spans = [
            Duration::days(28),
            Duration::days(8),
            Duration::days(2) + ten,
            Duration::days(14) + ten,
        ];
        for span in spans {
            for adjust in &adjustments {
                for p in [Predictor::Daily, Predictor::Weekly] {
                    let mut memo = ProfileMemo::default();
                    let (mut reused, mut forecasts) = (0, 0);
                    for m in 2 * 1440..minutes {
                        let t = h.time(m);
                        let Some(view) = h.view_at(t).map(|v| v.since(t - span)) else {
                            continue;
                        };
                        let alone = predict_peak(&cfg, p, view, adjust, t, t + lead);
                        let before = memo.slots;
                        let with =
                            predict_peak_reusing(&cfg, p, view, adjust, t, t + lead, &mut memo);
                        assert_eq!(
                            alone.map(f64::to_bits),
                            with.map(f64::to_bits),
                            "{p:?} at minute {m}, span {span}"
                        );
                        forecasts += usize::from(alone.is_some());
                        // Four points a forecast (every 3 minutes of the 7, and the last):
                        // reused, only the newest is computed.
                        let computed = before
                            .iter()
                            .zip(&memo.slots)
                            .filter(|(a, b)| a != b)
                            .count();
                        reused += usize::from(computed == 1);
                    }
                    if span > p.season().period() {
                        assert!(forecasts > 1000, "{p:?}, {span}: {forecasts} forecasts");
                    }
                    if span == Duration::days(28) {
                        assert!(reused > 1000, "{p:?}: {reused} forecasts reused points");
                    }
                }
            }
        }
    }

    /// The texture read once a block (`TextureMemo`) changes no forecast either. The series'
    /// texture differs by the hour (calm nights, rough afternoons), with the same step of a
    /// quarter at 03:00 and at 15:00, so that the sharp reading's gate is open at some hours and
    /// shut at others, and a texture read for another block than the point's turns it (a memo
    /// that kept the first texture it read fails at minute 4 293).
    #[test]
    fn textures_read_once_a_block_change_no_forecast() {
        let minutes = 15 * 1440;
        let values: Vec<f64> = (0..minutes)
            .map(|m| {
                let day = m % 1440;
                let rough = if (720..1200).contains(&day) {
                    0.3
                } else {
                    0.01
                };
                let step = if (180..240).contains(&day) || (900..960).contains(&day) {
                    1.25
                } else {
                    1.0
                };
                let noise = ((m * 7919) % 101) as f64 / 50.0 - 1.0;
                500.0 * step * (1.0 + rough * noise)
            })
            .collect();
        let h = History::new(t0(), Duration::minutes(1), values);
        let cfg = ModelConfig::default();
        let smooth = ModelConfig {
            recurring_steps: false,
            ..ModelConfig::default()
        };
        let lead = Duration::minutes(7);
        let adjust = Adjustments::default();
        for p in [Predictor::Daily, Predictor::Weekly] {
            let mut memo = ProfileMemo::default();
            // Minutes of the day whose forecast the sharp reading raised: the night's step.
            let mut sharp_at = std::collections::BTreeSet::new();
            for m in 2 * 1440..minutes {
                let t = h.time(m);
                let view = h.view_at(t).unwrap();
                let alone = predict_peak(&cfg, p, view, &adjust, t, t + lead);
                let with = predict_peak_reusing(&cfg, p, view, &adjust, t, t + lead, &mut memo);
                assert_eq!(
                    alone.map(f64::to_bits),
                    with.map(f64::to_bits),
                    "{p:?} at minute {m}"
                );
                let plain = predict_peak(&smooth, p, view, &adjust, t, t + lead);
                if alone.zip(plain).is_some_and(|(a, b)| a > b * 1.01) {
                    sharp_at.insert(m % 1440 / 60);
                }
            }
            // The gate is open at some hours and shut at others: what a texture decides.
            assert!(
                sharp_at.contains(&2) && sharp_at.len() < 20,
                "{p:?}: sharp at {sharp_at:?}"
            );
        }
    }

    /// The table of blocks a memo keeps for a rebuild (`BlockReads`: a block's texture and,
    /// in a period read through whole blocks, its sharp rise, shared by every period and view
    /// that hold all of its reads) changes no forecast either: minute by minute through views
    /// of sixteen days, as a rebuild reads them, against each forecast alone. Also where a
    /// block is not read the same by every point of it (a smoothing of 13 minutes, not whole
    /// blocks) and where a block is one sample (hourly history: the texture reads a day of
    /// blocks around a point, further than the point's own reads).
    #[test]
    fn blocks_read_once_a_rebuild_change_no_forecast() {
        let load = |m: i64| {
            let day = m.rem_euclid(1440);
            let rough = if (720..1200).contains(&day) {
                0.3
            } else {
                0.02
            };
            let step = if (180..240).contains(&day) || (900..960).contains(&day) {
                1.3
            } else {
                1.0
            };
            let noise = ((m * 7919) % 101) as f64 / 50.0 - 1.0;
            500.0 * step * (1.0 + rough * noise)
        };
        let adjust = Adjustments::default();
        for (step, half) in [(1, 15), (1, 13), (60, 15)] {
            let days = 23;
            let values = (0..days * 1440 / step).map(|i| load(i * step)).collect();
            let h = History::new(t0(), Duration::minutes(step), values);
            let cfg = ModelConfig {
                smoothing_half_width: Duration::minutes(half),
                ..ModelConfig::default()
            };
            for p in [Predictor::Daily, Predictor::Weekly] {
                let mut memo = ProfileMemo::default();
                let mut sharp = 0;
                for m in (days - 7) * 1440..days * 1440 {
                    let t = t0() + Duration::minutes(m);
                    let view = h.view_at(t).unwrap().since(t - Duration::days(16));
                    let lead = Duration::minutes(7);
                    let alone = predict_peak(&cfg, p, view, &adjust, t, t + lead);
                    let with = predict_peak_reusing(&cfg, p, view, &adjust, t, t + lead, &mut memo);
                    assert_eq!(
                        alone.map(f64::to_bits),
                        with.map(f64::to_bits),
                        "{p:?} at minute {m}, step {step}, half {half}"
                    );
                    sharp += usize::from(memo.table.iter().any(|b| b.sharp.is_some()));
                }
                assert!(!memo.table.is_empty(), "{p:?}, step {step}: no table");
                if step == 1 && half == 15 {
                    assert!(sharp > 1000, "{p:?}: the table read no rise");
                }
            }
        }
    }

    /// A daily pattern: 100 at night, a ramp to 1000 at 09:00 that holds until 17:00.
    fn daily_load(t: DateTime<Utc>) -> f64 {
        let minute = (t - t0()).num_minutes().rem_euclid(1440);
        if (540..1020).contains(&minute) {
            1000.0
        } else {
            100.0
        }
    }

    /// One sample of 1.8e19 (an unsigned counter that wrapped) on the first day is a gap, not
    /// load: a window of ordinary loads nine days later has its mean to the unit. (Taken as
    /// load, it left the running sums so large that such a window's mean was lost in rounding,
    /// and the forecast was off for the history's span.)
    #[test]
    fn a_sample_no_load_reaches_is_a_gap_and_later_means_keep_their_precision() {
        let mut values: Vec<f64> = (0..10 * 1440)
            .map(|m| daily_load(t0() + Duration::minutes(m)))
            .collect();
        values[100] = u64::MAX as f64;
        let h = History::new(t0(), Duration::minutes(1), values);
        assert!(h.values()[100].is_nan());
        let at = t0() + Duration::days(9) + Duration::hours(10);
        let mean = h.view_at(at).unwrap().recent_mean(Duration::minutes(30));
        assert_eq!(mean, Some(1000.0));
        assert!(is_load(MAX_LOAD) && !is_load(MAX_LOAD * 1.01) && !is_load(-1.0));
    }

    fn history(days: i64, load: impl Fn(DateTime<Utc>) -> f64) -> History {
        let values = (0..days * 1440)
            .map(|m| load(t0() + Duration::minutes(m)))
            .collect();
        History::new(t0(), Duration::minutes(1), values)
    }

    fn peak(h: &History, p: Predictor, now: DateTime<Utc>, lead: i64) -> Option<f64> {
        let view = h.view_at(now - Duration::minutes(1))?;
        predict_peak(
            &ModelConfig::default(),
            p,
            view,
            &Adjustments::default(),
            now,
            now + Duration::minutes(lead),
        )
    }

    #[test]
    fn the_spread_of_past_periods_is_where_they_disagree() {
        // A daily step at 09:00; on two of the last four days a surge to 1.5 times the load
        // from 14:00 to 15:00. The daily forecast's past periods agree at 11:00 and disagree at
        // 14:00; the weekly one's (two weeks, one surge day between) agree at both.
        let h = history(15, |t| {
            let day = (t - t0()).num_days();
            let minute = (t - t0()).num_minutes().rem_euclid(1440);
            let surge = (day == 12 || day == 13) && (840..900).contains(&minute);
            daily_load(t) * if surge { 1.5 } else { 1.0 }
        });
        let spread = |p: Predictor, hour: i64| {
            let now = t0() + Duration::days(14) + Duration::hours(hour);
            let view = h.view_at(now - Duration::minutes(1)).unwrap();
            let cfg = ModelConfig::default();
            let lead = now + Duration::minutes(6);
            period_spread(&cfg, p, view, &Adjustments::default(), now, lead).unwrap()
        };
        assert!(
            spread(Predictor::Daily, 11) < 1e-9,
            "{}",
            spread(Predictor::Daily, 11)
        );
        assert!(
            spread(Predictor::Daily, 14) > 0.1,
            "{}",
            spread(Predictor::Daily, 14)
        );
        assert!(
            spread(Predictor::Weekly, 14) < 1e-9,
            "{}",
            spread(Predictor::Weekly, 14)
        );
        // Known ahead: nothing after the view's end is read.
        let view = h
            .view_at(t0() + Duration::days(14) - Duration::minutes(1))
            .unwrap();
        let far = t0() + Duration::days(14) + Duration::hours(14);
        let cfg = ModelConfig::default();
        let ahead = period_spread(
            &cfg,
            Predictor::Daily,
            view,
            &Adjustments::default(),
            far,
            far,
        );
        assert!(ahead.is_some_and(|s| s > 0.1), "{ahead:?}");
    }

    #[test]
    fn a_flash_crowd_a_week_ago_is_left_out_of_the_weekly_median() {
        // The daily load, and on day 7 a crowd of ten times it for twenty minutes from 15:00.
        // A week later at 15:18, the weekly forecast's two past weeks are the crowd's and an
        // ordinary one: their median (their mean) read the crowd in the level window (so the
        // ratio fell to about a fifth) and in the profile (which rose about three times), and
        // forecast the ordinary afternoon at about two thirds of its load. With the crowd left
        // out, the ordinary week forecasts it alone.
        let crowd = |t: DateTime<Utc>| {
            let m = (t - t0()).num_minutes();
            let at = 7 * 1440 + 15 * 60;
            daily_load(t)
                * if (at..at + 20).contains(&m) {
                    10.0
                } else {
                    1.0
                }
        };
        let weekly = |h: &History, left_out: bool| {
            let cfg = ModelConfig {
                bursts_left_out: left_out,
                ..ModelConfig::default()
            };
            let now = t0() + Duration::days(14) + Duration::minutes(15 * 60 + 18);
            let view = h.view_at(now - Duration::minutes(1)).unwrap();
            let to = now + Duration::minutes(6);
            predict_peak(
                &cfg,
                Predictor::Weekly,
                view,
                &Adjustments::default(),
                now,
                to,
            )
            .unwrap()
        };
        let h = history(15, crowd);
        let (plain, left_out) = (weekly(&h, false), weekly(&h, true));
        assert!(plain < 800.0, "{plain}");
        assert!((left_out - 1000.0).abs() < 1e-6, "{left_out}");
        // A week at three times the load is a shift, not a burst: it rose in its own hours
        // too, and the forecast is the same either way (the level ratio scales both weeks).
        let shifted = history(15, |t| {
            daily_load(t) * if (t - t0()).num_days() >= 7 { 3.0 } else { 1.0 }
        });
        let (plain, left_out) = (weekly(&shifted, false), weekly(&shifted, true));
        assert!((plain - 3000.0).abs() < 1e-6, "{plain}");
        assert_eq!(plain, left_out);
        // A spike every day recurs: nothing is left out, nor where the older week lacked it
        // (a holiday): the newer week's spike is there the day after it too.
        let every_day = |from_day: i64| {
            move |t: DateTime<Utc>| {
                let m = (t - t0()).num_minutes();
                let spike = m >= from_day * 1440 && (900..920).contains(&m.rem_euclid(1440));
                daily_load(t) * if spike { 10.0 } else { 1.0 }
            }
        };
        for from_day in [0, 1] {
            let h = history(15, every_day(from_day));
            assert_eq!(weekly(&h, false), weekly(&h, true), "from day {from_day}");
        }
        // Nor where the older week had an hour's dip to a fifth there (a storm): the newer
        // week is not far above its own hours.
        let dip = history(15, |t| {
            let m = (t - t0()).num_minutes();
            let storm = (14 * 60 + 50..15 * 60 + 50).contains(&m);
            daily_load(t) * if storm { 0.2 } else { 1.0 }
        });
        assert_eq!(weekly(&dip, false), weekly(&dip, true));
    }

    #[test]
    fn the_profile_foresees_a_recurring_step() {
        let h = history(15, daily_load);
        // At 08:56 on day 14, with data up to 08:55: the step to 1000 comes at 09:00.
        let now = t0() + Duration::days(14) + Duration::minutes(536);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let f = peak(&h, p, now, 6).unwrap();
            // The ±15-minute profile already rises ahead of 09:00: well above the live level
            // (100), though a smoothed profile under-reads a sharp step (the calibration's
            // margin covers the rest).
            assert!(f > 150.0, "{p:?}: {f}");
        }
        // At 03:00 nothing is coming: the night level.
        let night = t0() + Duration::days(14) + Duration::hours(3);
        let f = peak(&h, Predictor::Daily, night, 6).unwrap();
        assert!((f - 100.0).abs() < 1e-6, "{f}");
    }

    /// A daily series with a Gaussian texture of `sd` (relative), and the forecast of the peak
    /// over the 6 minutes from `now` with steps kept sharp or not.
    fn textured(sd: f64, load: impl Fn(DateTime<Utc>) -> f64) -> History {
        let mut rng = crate::rng::SplitMix64(18);
        let noise: Vec<f64> = (0..15 * 1440).map(|_| 1.0 + sd * rng.normal()).collect();
        history(15, |t| load(t) * noise[(t - t0()).num_minutes() as usize])
    }

    fn sharp_and_smooth(h: &History, p: Predictor, now: DateTime<Utc>) -> (f64, f64) {
        let view = h.view_at(now - Duration::minutes(1)).unwrap();
        let adjust = Adjustments::default();
        let to = now + Duration::minutes(6);
        let smooth = ModelConfig {
            recurring_steps: false,
            ..ModelConfig::default()
        };
        (
            predict_peak(&ModelConfig::default(), p, view, &adjust, now, to).unwrap(),
            predict_peak(&smooth, p, view, &adjust, now, to).unwrap(),
        )
    }

    #[test]
    fn a_step_that_recurs_at_the_same_minute_is_forecast_at_its_height() {
        // The daily step at 09:00 within one minute, with a Gaussian texture of 5 %, and on
        // day 13 a five-minute burst at 03:00 that is not repeated.
        let burst = t0() + Duration::days(13) + Duration::hours(3);
        let h = textured(0.05, |t| {
            let b = if (burst..burst + Duration::minutes(5)).contains(&t) {
                5.0
            } else {
                1.0
            };
            daily_load(t) * b
        });
        // At 08:56 on day 14 the step comes within the lead time: the smoothed profile reads a
        // ramp well below it, the step kept sharp reads its height.
        let now = t0() + Duration::days(14) + Duration::minutes(536);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let (kept, smooth) = sharp_and_smooth(&h, p, now);
            assert!(smooth < 700.0, "{p:?}: {smooth}");
            assert!(kept > 900.0, "{p:?}: {kept}");
        }
        // The burst of one day is not a recurring step, nor is the texture: at 03:00 and at
        // 12:00 the forecast is the smoothed one.
        for minute in [180, 720] {
            let at = t0() + Duration::days(14) + Duration::minutes(minute);
            let (kept, smooth) = sharp_and_smooth(&h, Predictor::Daily, at);
            assert_eq!(kept, smooth, "{minute}");
        }
    }

    #[test]
    fn a_recurring_step_is_read_at_its_peak_not_its_blocks_mean() {
        // The demo's newsletter: at 09:00 the load goes from 250 to 550 within two minutes and
        // decays over 40 minutes; 3 % texture. The block from 09:00 holds 09:00 itself and the
        // first minute of the ramp: its mean is about 450, the load 550 from 09:02.
        let spike = |t: DateTime<Utc>| {
            let since = (t - t0()).num_minutes().rem_euclid(1440) - 540;
            let campaign = if since < 0 {
                0.0
            } else {
                300.0 * (since as f64 / 2.0).min(1.0) * (-(since as f64) / 40.0).exp()
            };
            250.0 + campaign
        };
        let h = textured(0.03, spike);
        let now = t0() + Duration::days(14) + Duration::minutes(536);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let (kept, smooth) = sharp_and_smooth(&h, p, now);
            assert!(smooth < 450.0, "{p:?}: {smooth}");
            // The next block's height (about 500), not the step's block's mean (about 450).
            assert!(kept > 490.0, "{p:?}: {kept}");
        }
        // A step in the last minutes of a block (09:04) is still read at its height from the
        // decision whose lead time reaches it.
        let late = |t: DateTime<Utc>| spike(t - Duration::minutes(4));
        let h = textured(0.03, late);
        let now = t0() + Duration::days(14) + Duration::minutes(540);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let (kept, _) = sharp_and_smooth(&h, p, now);
            assert!(kept > 490.0, "{p:?}: {kept}");
        }
    }

    #[test]
    fn a_step_late_in_its_block_is_read_at_its_height_from_the_blocks_start() {
        // A daily half-hour spike from 100 to 1000 at 09:03, 3 % texture: the block from 09:00
        // holds three minutes before the spike and averages about 460, below the ±15-minute
        // mean (about 540). Unread there, the spike's first minutes are forecast at the ramp by
        // every decision that readies replicas for them (a decision at 08:58 readies them at
        // 09:03 and reads up to 09:04), and the calibration makes up for those minutes with a
        // margin on every minute of the day — the height included.
        let h = textured(0.03, |t| {
            let since = (t - t0()).num_minutes().rem_euclid(1440) - 543;
            if (0..30).contains(&since) {
                1000.0
            } else {
                100.0
            }
        });
        let minute = |m: i64| t0() + Duration::days(14) + Duration::minutes(m);
        let at = |cfg: &ModelConfig, m: i64| {
            let view = h.view_at(minute(m) - Duration::hours(1)).unwrap();
            let adjust = Adjustments::default();
            predict_peak(cfg, Predictor::Daily, view, &adjust, minute(m), minute(m)).unwrap()
        };
        let sharp = ModelConfig::default();
        let smooth = ModelConfig {
            recurring_steps: false,
            ..ModelConfig::default()
        };
        // 09:00 to 09:02, the step's block before the step: its height, as the block after.
        for m in [540, 541, 542] {
            assert!(at(&sharp, m) > 900.0, "{m}: {}", at(&sharp, m));
            assert!(at(&smooth, m) < 700.0, "{m}: {}", at(&smooth, m));
        }
        assert!(at(&sharp, 545) > 900.0, "{}", at(&sharp, 545));
        // The block before it, which has not risen, is the smoothed profile.
        assert_eq!(at(&sharp, 538), at(&smooth, 538));
    }

    #[test]
    fn a_textured_series_without_a_step_is_not_sharpened() {
        // The morning ramp and evening fall of a smooth day, with 5 % Gaussian texture and no
        // step: every forecast of day 14, every 7 minutes, is the smoothed one.
        let smooth_day = |t: DateTime<Utc>| {
            let minute = (t - t0()).num_minutes().rem_euclid(1440) as f64;
            300.0 - 200.0 * (minute / 1440.0 * std::f64::consts::TAU).cos()
        };
        let h = textured(0.05, smooth_day);
        for minute in (0..1440).step_by(7) {
            let at = t0() + Duration::days(14) + Duration::minutes(minute);
            for p in [Predictor::Daily, Predictor::Weekly] {
                let (kept, smooth) = sharp_and_smooth(&h, p, at);
                assert_eq!(kept, smooth, "{p:?} at {minute}");
            }
        }
    }

    #[test]
    fn the_level_follows_growth() {
        // The same shape, but this week the load is twice last week's.
        let h = history(15, |t| {
            daily_load(t)
                * if t >= t0() + Duration::days(14) {
                    2.0
                } else {
                    1.0
                }
        });
        let now = t0() + Duration::days(14) + Duration::minutes(700);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let f = peak(&h, p, now, 6).unwrap();
            assert!((f - 2000.0).abs() < 1.0, "{p:?}: {f}");
        }
    }

    #[test]
    fn old_periods_are_read_through_whole_blocks() {
        // What the operator's cache holds: minutes older than two days as their 5-minute blocks'
        // means. The forecast reads such periods through whole blocks, so both give the same.
        let wobble = |t: DateTime<Utc>| {
            let m = (t - t0()).num_minutes();
            daily_load(t) * (1.0 + 0.3 * ((m * 7919 % 13) as f64 / 12.0 - 0.5))
        };
        let full = history(15, wobble);
        let now = t0() + Duration::days(14) + Duration::minutes(530);
        let coarse_until = (now - COARSE_AFTER - Duration::hours(8) - t0()).num_minutes() as usize;
        let mut cached = full.values().to_vec();
        for block in cached[..coarse_until].chunks_mut(5) {
            let mean = block.iter().sum::<f64>() / block.len() as f64;
            block.iter_mut().for_each(|v| *v = mean);
        }
        let cached = History::new(t0(), Duration::minutes(1), cached);
        for p in [Predictor::Daily, Predictor::Weekly] {
            let (a, b) = (
                peak(&full, p, now, 6).unwrap(),
                peak(&cached, p, now, 6).unwrap(),
            );
            assert!((a - b).abs() < 1e-6, "{p:?}: {a} vs {b}");
        }
    }

    #[test]
    fn predictions_use_only_observed_data() {
        let h = history(10, daily_load);
        let truncated = History::new(
            t0(),
            Duration::minutes(1),
            h.values()[..9 * 1440 + 500].to_vec(),
        );
        let now = t0() + Duration::days(9) + Duration::minutes(500);
        for p in [Predictor::Daily, Predictor::Weekly] {
            assert_eq!(peak(&h, p, now, 30), peak(&truncated, p, now, 30), "{p:?}");
        }
    }

    #[test]
    fn a_sudden_drop_to_zero_is_held_until_it_persists() {
        let n = f64::NAN;
        // A blip of three zeros (a gap inside) after load: held, with the load before it.
        assert_eq!(
            zero_blips(&[5.0, 5.0, 5.0, 5.0, 0.0, n, 0.0, 7.0], 15, 3, 5),
            vec![(4, 6, 5.0, false)]
        );
        // … but no longer than the load before it had lasted: two samples (a counter reset
        // read by `rate` over two steps) hold one zero, not a quarter hour of them.
        assert_eq!(
            zero_blips(&[0.0, 1e6, 1e6, 0.0], 15, 3, 5),
            vec![(3, 3, 1e6, false)]
        );
        assert!(zero_blips(&[0.0, 1e6, 1e6, 0.0, 0.0], 15, 3, 5).is_empty());
        assert!(zero_blips(&[5.0, 5.0, 0.0, n, 0.0, 7.0], 15, 3, 5).is_empty());
        // Zeros from the start have nothing before them: believed.
        assert!(zero_blips(&[0.0, 0.0, 3.0], 15, 3, 5).is_empty());
        // A run as long as the persistence is believed; one step shorter is not.
        let long: Vec<f64> = [4.0; 20].into_iter().chain([0.0; 15]).collect();
        assert!(zero_blips(&long, 15, 3, 5).is_empty());
        assert_eq!(zero_blips(&long[..34], 15, 3, 5), vec![(20, 33, 4.0, true)]);
        // Held at the level before the drop (the lower median of the three samples before it,
        // as read), not at one odd sample just before it.
        assert_eq!(
            zero_blips(&[150.0, 150.0, 1e6, 0.0, 0.0], 15, 3, 5),
            vec![(3, 4, 150.0, false)]
        );
        assert_eq!(
            zero_blips(&[150.0, 1e6, 0.0], 15, 3, 5),
            vec![(2, 2, 150.0, false)]
        );
        // One sample after a gap is no level to hold a drop at (a bogus one would be read as a
        // sustained load over every zero): the zeros are believed. Two samples are a level.
        assert!(zero_blips(&[n, n, 1e6, 0.0, 0.0], 15, 3, 5).is_empty());
        assert_eq!(
            zero_blips(&[n, 5.0, 6.0, 5.0, 0.0, 0.0], 15, 3, 5),
            vec![(4, 5, 5.0, false)]
        );
        // Samples further apart than `apart` with nothing between do not confirm each other:
        // no level, and the zeros after the second are believed. A level that stood before a
        // gap still stands after it.
        let mut apart = vec![0.0; 3];
        apart.push(1e6);
        apart.extend([n; 30]);
        apart.extend([1e6, 0.0, 0.0]);
        assert!(zero_blips(&apart, 15, 3, 5).is_empty());
        assert_eq!(
            zero_blips(&[5.0, 5.0, n, n, n, 5.0, 0.0], 15, 3, 5),
            vec![(6, 6, 5.0, false)]
        );
        let mut after_gap = vec![4000.0; 20];
        after_gap.extend([n; 30]);
        after_gap.extend([0.0; 10]);
        assert_eq!(
            zero_blips(&after_gap, 15, 3, 5),
            vec![(50, 59, 4000.0, false)]
        );
        // The gap is no part of how long the level lasted: three samples hold two zeros.
        let mut short = vec![4000.0; 3];
        short.extend([n; 30]);
        short.extend([0.0; 10]);
        assert!(zero_blips(&short, 15, 3, 5).is_empty());
        // An earlier drop counts as held: two blips in a row are held at the same level.
        assert_eq!(
            zero_blips(
                &[150.0, 150.0, 150.0, 150.0, 0.0, 0.0, 0.0, 1e6, 0.0],
                15,
                3,
                5
            ),
            vec![(4, 6, 150.0, false), (8, 8, 150.0, false)]
        );
        // Zeros after one sample that follows believed zeros: the level before them is zero,
        // no drop to hold.
        let mut lone: Vec<f64> = vec![0.0; 20];
        lone.extend([1e6, 0.0, 0.0]);
        assert!(zero_blips(&lone, 15, 3, 5).is_empty());
    }

    #[test]
    fn the_level_and_the_live_load_hold_a_drop_to_zero_until_it_persists() {
        // The level and the live load read the held value, not the zeros.
        let mut values = vec![400.0; 3 * 1440];
        values[2 * 1440 + 100..2 * 1440 + 110].fill(0.0);
        let h = History::new(t0(), Duration::minutes(1), values);
        for end in [2 * 1440 + 105, 2 * 1440 + 112] {
            let (_, held, _) = h.view(end).held_tail(end as i64 - 14, 15, 3);
            assert!(held.iter().all(|v| *v == 400.0), "{end}: {held:?}");
            assert!(matches!(held, Cow::Owned(_)));
        }
        let now = t0() + Duration::days(2) + Duration::minutes(106);
        let f = peak(&h, Predictor::Daily, now, 6).unwrap();
        assert!((f - 400.0).abs() < 1e-9, "{f}");
        // Twenty minutes of zeros are a level: believed once they have lasted a quarter hour.
        let mut values = vec![400.0; 3 * 1440];
        values[2 * 1440 + 100..2 * 1440 + 120].fill(0.0);
        let h = History::new(t0(), Duration::minutes(1), values);
        let (_, held, _) = h.view(2 * 1440 + 116).held_tail(2 * 1440 + 116, 15, 3);
        assert_eq!(held[..], [0.0]);
    }

    #[test]
    fn the_level_caps_a_rise_that_has_not_lasted_three_samples() {
        // The two highest count at most twice the third: one or two odd samples move the mean
        // by a sample's share of twice the level at most, a third moves it.
        let mean = |xs: &[f64]| capped_mean(&mut xs.to_vec(), 2, 2.0).unwrap();
        let mut steady = vec![100.0; 15];
        assert_eq!(mean(&steady), 100.0);
        steady[14] = 1e6;
        assert!((mean(&steady) - 1600.0 / 15.0).abs() < 1e-9);
        steady[13] = 1e6;
        assert!((mean(&steady) - 1700.0 / 15.0).abs() < 1e-9);
        steady[12] = 1e6;
        assert!(mean(&steady) > 1e5);
        // Noise and steps within twice the level keep their plain mean, as does a ramp.
        assert_eq!(mean(&[90.0, 110.0, 100.0, 80.0, 190.0]), 114.0);
        let ramp: Vec<f64> = (1..=15).map(f64::from).collect();
        assert_eq!(mean(&ramp), 8.0);
        // Fewer than five samples: one capped of three or four, none of two.
        assert_eq!(mean(&[1.0, 2.0, 30.0]), 7.0 / 3.0);
        assert_eq!(mean(&[1.0, 30.0]), 15.5);
        assert_eq!(capped_mean(&mut [], 2, 2.0), None);
        // The forecast's level reads it: one sample of 1e6 where the load is 400.
        let mut values = vec![400.0; 3 * 1440];
        values[2 * 1440 + 100] = 1e6;
        let h = History::new(t0(), Duration::minutes(1), values);
        let now = t0() + Duration::days(2) + Duration::minutes(105);
        let f = peak(&h, Predictor::Daily, now, 6).unwrap();
        assert!((f - 400.0 * 16.0 / 15.0).abs() < 1e-9, "{f}");
    }

    #[test]
    fn gaps_are_skipped_not_read_as_zero() {
        let mut values: Vec<f64> = (0..3 * 1440).map(|_| 500.0).collect();
        for v in &mut values[1440 + 100..1440 + 400] {
            *v = f64::NAN;
        }
        let h = History::new(t0(), Duration::minutes(1), values);
        let now = t0() + Duration::days(2) + Duration::minutes(200);
        let f = peak(&h, Predictor::Daily, now, 6).unwrap();
        assert!((f - 500.0).abs() < 1e-9, "{f}");
    }

    #[test]
    fn a_forecast_reads_no_further_back_than_its_reach() {
        // Five weeks of a weekday/weekend shape with texture, a recurring 20-minute step and a
        // four-hour gap; a calendar with an exclusion and a multiplied event. The forecasts of a
        // series held only from `reach` before (on the block grid, as the operator's cache holds
        // it), known to have had samples before, equal those of the whole series (up to the
        // rounding of the running sums the means are differences of, which start elsewhere) —
        // also where the cut falls into the gap, so that the held part begins without a sample.
        let cfg = ModelConfig::default();
        let mut rng = crate::rng::SplitMix64(7);
        let at = |d: i64, h: i64| t0() + Duration::days(d) + Duration::hours(h);
        let gap = (at(20, 5), at(20, 9));
        let values: Vec<f64> = (0..35 * 1440)
            .map(|m| {
                let t = t0() + Duration::minutes(m);
                if gap.0 <= t && t < gap.1 {
                    return f64::NAN;
                }
                let phase = (m % 1440) as f64 / 1440.0;
                let weekend = if (m / 1440) % 7 >= 5 { 0.4 } else { 1.0 };
                let shape = 200.0 + 400.0 * weekend * (std::f64::consts::PI * phase).sin();
                let step = if (540..560).contains(&(m % 1440)) {
                    300.0
                } else {
                    0.0
                };
                (shape + step) * (1.0 + 0.05 * rng.normal())
            })
            .collect();
        let minute = Duration::minutes(1);
        let whole = History::new(t0(), minute, values.clone());
        let adjustments = [
            Adjustments::default(),
            Adjustments {
                gaps: vec![(at(27, 8), at(27, 20))],
                multipliers: vec![(at(33, 10), at(33, 12), 2.5)],
            },
        ];
        let reach = reach(&cfg);
        // Into the gap: held from an hour into it, its first sample three hours later.
        let into_gap = gap.0 + Duration::hours(1) + reach;
        // Every 7 minutes of the last day and a half (the 09:00 step among them), and the cut
        // into the gap.
        let nows: Vec<_> = (0..36 * 60 / 7)
            .map(|k| at(33, 9) - Duration::hours(12) + Duration::minutes(7 * k))
            .chain([into_gap])
            .collect();
        let (mut forecasts, mut cases) = (0, 0);
        for &now in &nows {
            let cut = (now - reach).duration_trunc(COARSE_BLOCK).unwrap();
            let skip = (cut - t0()).num_minutes() as usize;
            let held =
                History::new(cut, minute, values[skip..].to_vec()).with_samples_before(Some(t0()));
            fn view(h: &History, now: DateTime<Utc>) -> View<'_> {
                let minute = Duration::minutes(1);
                h.view_at(now - minute)
                    .unwrap()
                    .since(now - Duration::days(28))
            }
            assert_eq!(
                view(&whole, now).observed_span(),
                view(&held, now).observed_span()
            );
            for adjust in &adjustments {
                for p in [Predictor::Daily, Predictor::Weekly] {
                    for lead in [1, 6, 16, 45] {
                        let to = now + Duration::minutes(lead);
                        let f = |h: &History| predict_peak(&cfg, p, view(h, now), adjust, now, to);
                        let (a, b) = (f(&whole), f(&held));
                        let same = match (a, b) {
                            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs(),
                            (a, b) => a == b,
                        };
                        assert!(same, "{p:?} at {now}, lead {lead}: {a:?} whole, {b:?} held");
                        forecasts += usize::from(a.is_some());
                        cases += 1;
                    }
                }
            }
        }
        // Nearly all exist (not where the calendar's exclusion and the gap leave no past period).
        assert!(forecasts * 10 > cases * 9, "{forecasts} of {cases}");
    }
}
