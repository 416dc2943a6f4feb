//! The load history of one PredictiveScaler, kept between syncs: read once, then only the newest
//! minutes each sync, in the shape the planner reads (`forecast::History` at one-minute steps).
//!
//! Four weeks at one minute would be 160 KB per scaler even as `f32`. The cache keeps at
//! one-minute steps only the recent part the planner reads minute by minute (`HistoryNeeds::fine`:
//! the calibration's week and the forecasts it replays), and everything older as the mean and
//! sample count of each 5-minute block — all the forecast reads of it (`forecast::COARSE_AFTER`),
//! so the operator and the backtest forecast alike. Samples that are negative or not a number are
//! kept as missing and counted: they are not load.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::Result;
use prescaler_planning::forecast::{COARSE_BLOCK, History};
use prescaler_planning::planner::{self, HistoryNeeds, Planner};

/// Where the samples come from: Prometheus, or (in tests) a recorded trace.
pub trait RangeSource {
    /// How long one read may take: the operator counts a read past half of it as slow (its
    /// namespace is then suspect, see `operator::fair_queue`). A recorded trace has no limit.
    fn timeout(&self) -> StdDuration {
        StdDuration::MAX
    }

    /// Samples of `query` on the grid `start, start + step, …, ≤ end`; missing steps absent.
    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<(DateTime<Utc>, f64)>>> + Send;

    /// A cheap read of `query` at `at` before any range read, refusing what no range read should
    /// ask for (Prometheus: a query of several series, from one instant read). A recorded trace
    /// has nothing to refuse.
    fn probe(&self, _query: &str, _at: DateTime<Utc>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Why the last long read of `query` came from Prometheus alone though a long-term store is
    /// set: the store's error (`long_term::Tiered`, which reads on without it). `None` for a
    /// single source, or when the store answered.
    fn fallback(&self, _query: &str) -> Option<String> {
        None
    }

    /// Whether a long-term store is read beside Prometheus: a short history is then the
    /// store's to explain.
    fn has_long_term(&self) -> bool {
        false
    }
}

/// A future a `LoadSource` returns: boxed, so that the trait can be held as `dyn LoadSource`.
pub type BoxedRead<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A `RangeSource` the operator can hold behind a pointer (`Arc<dyn LoadSource>`): Prometheus
/// in production, a scripted source in the controller's tests, without making every function of
/// the controller generic over its source (and compiled again for each). Every `RangeSource`
/// that can be shared between threads is one.
pub trait LoadSource: Send + Sync {
    fn range_boxed<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxedRead<'a, Vec<(DateTime<Utc>, f64)>>;

    fn probe_boxed<'a>(&'a self, query: &'a str, at: DateTime<Utc>) -> BoxedRead<'a, ()>;

    fn read_timeout(&self) -> StdDuration;

    fn fallback_of(&self, query: &str) -> Option<String>;

    fn reads_long_term(&self) -> bool;
}

impl<S: RangeSource + Send + Sync> LoadSource for S {
    fn range_boxed<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> BoxedRead<'a, Vec<(DateTime<Utc>, f64)>> {
        Box::pin(self.range(query, start, end, step))
    }

    fn probe_boxed<'a>(&'a self, query: &'a str, at: DateTime<Utc>) -> BoxedRead<'a, ()> {
        Box::pin(self.probe(query, at))
    }

    fn read_timeout(&self) -> StdDuration {
        self.timeout()
    }

    fn fallback_of(&self, query: &str) -> Option<String> {
        self.fallback(query)
    }

    fn reads_long_term(&self) -> bool {
        self.has_long_term()
    }
}

impl RangeSource for dyn LoadSource + '_ {
    fn timeout(&self) -> StdDuration {
        self.read_timeout()
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        self.range_boxed(query, start, end, step).await
    }

    async fn probe(&self, query: &str, at: DateTime<Utc>) -> Result<()> {
        self.probe_boxed(query, at).await
    }

    fn fallback(&self, query: &str) -> Option<String> {
        self.fallback_of(query)
    }

    fn has_long_term(&self) -> bool {
        self.reads_long_term()
    }
}

/// The history's resolution: the planner's minute.
const STEP: Duration = Duration::minutes(1);
/// How many fine steps make one coarse block.
const COARSEN: usize = (COARSE_BLOCK.num_seconds() / STEP.num_seconds()) as usize;
/// How many of the newest cached minutes each refresh reads again: the last evaluation may have
/// run before the last scrape.
const REREAD_STEPS: usize = 2;
/// Room for the values a tier gains between two folds (which drop as many as they add), so that
/// steady growth never doubles a vector's capacity.
const COARSE_SLACK: usize = 16;
const FINE_SLACK: usize = 90;

/// What one refresh did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Requests sent (a range query per chunk).
    pub queries: usize,
    /// Samples received.
    pub samples: usize,
    /// Samples that were negative or not a number, kept as missing.
    pub rejected: usize,
}

/// The one-minute tier: `values[i]` belongs to `start + i * STEP`; NaN where there was nothing.
/// `f32` halves the memory; a load has no need for more digits.
#[derive(Clone, Debug, Default)]
struct Fine {
    start: Option<DateTime<Utc>>,
    values: Vec<f32>,
}

/// The block tier: `means[i]` is the mean of the block starting at `start + i * COARSE_BLOCK`,
/// NaN where nothing was observed in it. How many minutes it holds (`count`) is kept only for
/// the few blocks that are neither whole nor empty (at the edges of a gap), in `partial`: a
/// count for every block was a byte a block, an eighth of a scaler's history, nearly always
/// `COARSEN`.
#[derive(Clone, Debug, Default)]
struct Coarse {
    start: Option<DateTime<Utc>>,
    means: Vec<f32>,
    /// `(block number since the epoch, count)` of the partial blocks, in order.
    partial: Vec<(i64, u8)>,
}

impl Coarse {
    fn with_blocks(start: DateTime<Utc>, blocks: usize) -> Self {
        Self {
            start: Some(start),
            means: with_slack(blocks, COARSE_SLACK),
            partial: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.means.len()
    }

    /// The block number since the epoch of `means[i]`.
    fn number(&self, i: usize) -> i64 {
        let start = self.start.map_or(0, |s| s.timestamp());
        start.div_euclid(COARSE_BLOCK.num_seconds()) + i as i64
    }

    /// Sets block `i` (within `len`) to a mean of `count` minutes; the blocks are set in order.
    fn set(&mut self, i: usize, (mean, count): (f32, u8)) {
        self.means[i] = mean;
        self.note_partial(i, count);
    }

    /// Appends a block of `count` minutes.
    fn push(&mut self, (mean, count): (f32, u8)) {
        self.means.push(mean);
        self.note_partial(self.means.len() - 1, count);
    }

    fn note_partial(&mut self, i: usize, count: u8) {
        if count > 0 && usize::from(count) < COARSEN {
            self.partial.push((self.number(i), count));
        }
    }

    /// How many minutes block `i` holds: none where its mean is NaN (`block_of`).
    fn count(&self, i: usize) -> u8 {
        if self.means[i].is_nan() {
            return 0;
        }
        let number = self.number(i);
        match self.partial.binary_search_by_key(&number, |&(n, _)| n) {
            Ok(p) => self.partial[p].1,
            Err(_) => COARSEN as u8,
        }
    }

    fn drain_front(&mut self, n: usize) {
        self.means.drain(..n);
        let first = self.number(n);
        self.partial.retain(|&(number, _)| number >= first);
    }
}

/// Gives back the room of `v` beyond `slack` more values, in a vector of its own. Shrunk in
/// place (`shrink_to`), what a scaler keeps would stay at the head of the span a cold read took
/// and split it: the rest, freed, is too small for the next scaler's read and gets filled with
/// small long-lived allocations, so each cold start took new memory (glibc's arenas do not move
/// a chunk).
fn compact<T: Copy>(v: &mut Vec<T>, slack: usize) {
    if v.capacity() > v.len() + slack {
        let mut kept = Vec::with_capacity(v.len() + slack);
        kept.extend_from_slice(v);
        *v = kept;
    }
}

/// `len` NaNs in a vector with room for `slack` more.
fn with_slack(len: usize, slack: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len + slack);
    v.resize(len, f32::NAN);
    v
}

fn align(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
    t.duration_trunc(step).unwrap_or(t)
}

/// The time of `history`'s first sample.
fn first_sample(history: &History) -> Option<DateTime<Utc>> {
    let i = history.values().iter().position(|v| v.is_finite())?;
    Some(history.time(i))
}

/// A usable load sample, or the count of a rejected one.
fn accept(v: f64, rejected: &mut usize) -> f32 {
    if prescaler_planning::forecast::is_load(v) {
        v as f32
    } else {
        *rejected += 1;
        f32::NAN
    }
}

/// The mean and count of the usable values of one block.
fn block_of(values: &[f32]) -> (f32, u8) {
    let (sum, n) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f64, 0u8), |(s, n), &v| (s + f64::from(v), n + 1));
    if n == 0 {
        (f32::NAN, 0)
    } else {
        ((sum / f64::from(n)) as f32, n)
    }
}

/// What a calibration reads beyond a cache (`HistoryCache::read`): the planner's
/// `history_needs`, and from where the spec's `forecast.history` begins, to say how much of it
/// the source holds.
#[derive(Clone, Copy, Debug)]
pub struct Deeper {
    pub needs: HistoryNeeds,
    pub coverage_from: DateTime<Utc>,
}

impl Deeper {
    /// What `planner`'s decision at `now` reads beyond its resting cache: `None` unless it
    /// calibrates (`Planner::calibrates_at`).
    pub fn for_decision(planner: &Planner, now: DateTime<Utc>) -> Option<Self> {
        planner.calibrates_at(now).then(|| Self {
            needs: planner.history_needs(),
            coverage_from: planner::history_start(now, planner.spec().history),
        })
    }
}

/// The history a calibration reads, made for it and not kept.
#[derive(Clone, Debug)]
pub struct Deep {
    /// Over `Deeper::needs`, known to have had samples before it from `samples_since`.
    pub history: History,
    /// The first sample the source holds since `Deeper::coverage_from`: a scaler keeps it for
    /// the histories between calibrations (`History::with_samples_before`).
    pub samples_since: Option<DateTime<Utc>>,
}

/// The history of one query over `needs.span` up to now.
#[derive(Clone, Debug)]
pub struct HistoryCache {
    query: String,
    needs: HistoryNeeds,
    fine: Fine,
    coarse: Coarse,
}

fn index(t: DateTime<Utc>, start: DateTime<Utc>, step: Duration) -> Option<usize> {
    let d = (t - start).num_seconds();
    (d >= 0).then(|| (d / step.num_seconds()) as usize)
}

/// How many range queries a read of `[from, to]` every `step` takes: the Prometheus source
/// splits a read into queries of at most 10 000 points (`prometheus::POINTS_PER_QUERY`).
fn chunks(from: DateTime<Utc>, to: DateTime<Utc>, step: Duration) -> usize {
    let points = (to - from).num_seconds() / step.num_seconds() + 1;
    (points.max(0) as u64).div_ceil(10_000) as usize
}

impl HistoryCache {
    pub fn new(query: impl Into<String>, needs: HistoryNeeds) -> Self {
        Self {
            query: query.into(),
            needs,
            fine: Fine::default(),
            coarse: Coarse::default(),
        }
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn needs(&self) -> HistoryNeeds {
        self.needs
    }

    /// Where the one-minute tier starts for a cache brought up to `now`.
    fn fine_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let oldest = align(now - self.needs.span, COARSE_BLOCK);
        align(now - self.needs.fine, COARSE_BLOCK).max(oldest)
    }

    /// Whether nothing has been read yet.
    pub fn is_cold(&self) -> bool {
        self.fine.values.is_empty()
    }

    /// Brings the cache up to `now` (the newest minutes, unless `newest` is false: another
    /// scaler's read of the same cache a moment ago stands), and, for a calibration, also reads
    /// what it needs beyond the cache (`deeper`, see `deepen`). A cold cache that calibrates
    /// reads the calibration's whole span once and keeps its own part of it.
    pub async fn read(
        &mut self,
        source: &(impl RangeSource + ?Sized),
        now: DateTime<Utc>,
        newest: bool,
        deeper: Option<&Deeper>,
    ) -> Result<(Refresh, Option<Deep>)> {
        let mut done = Refresh::default();
        let Some(deeper) = deeper else {
            if newest || self.is_cold() {
                done = self.refresh(source, now).await?;
            }
            return Ok((done, None));
        };
        let deep = if self.is_cold() {
            let mut whole = HistoryCache::new(self.query.clone(), deeper.needs);
            done = whole.refresh(source, now).await?;
            let history = whole.history();
            // Its own part: the rest folds into blocks or leaves the span, and the room goes.
            self.fine = whole.fine;
            self.coarse = whole.coarse;
            self.fold(now);
            compact(&mut self.fine.values, FINE_SLACK);
            compact(&mut self.coarse.means, COARSE_SLACK);
            compact(&mut self.coarse.partial, 0);
            history
        } else {
            if newest {
                done = self.refresh(source, now).await?;
            }
            self.deepen(source, now, deeper.needs, &mut done).await?
        };
        let first = deep.as_ref().and_then(first_sample);
        let samples_since = self
            .first_before(source, now, deeper, first, &mut done)
            .await?
            .or(first);
        Ok((
            done,
            deep.map(|history| Deep {
                history: history.with_samples_before(samples_since),
                samples_since,
            }),
        ))
    }

    /// The history over `needs` (more than the cache holds): the minutes before the cache's
    /// fine tier read again from `source` at one minute, the cache's own after them, folded as
    /// a cache over `needs` would hold them — the same history a cold read over `needs` gives.
    /// The operator holds for each scaler only what its decisions between two calibrations read,
    /// and reads the calibration's week again at each boundary: a few tens of thousands of
    /// samples a scaler every `recalibrate_interval`, against four times the memory.
    async fn deepen(
        &self,
        source: &(impl RangeSource + ?Sized),
        now: DateTime<Utc>,
        needs: HistoryNeeds,
        done: &mut Refresh,
    ) -> Result<Option<History>> {
        let Some(fine_start) = self.fine.start else {
            return Ok(None);
        };
        let oldest = align(now - needs.span, COARSE_BLOCK);
        if oldest >= fine_start {
            return Ok(self.history());
        }
        let older = self
            .read_fine(source, oldest, fine_start - STEP, done)
            .await?;
        let mut values = older.values;
        values.extend_from_slice(&self.fine.values);
        let mut deep = HistoryCache::new(self.query.clone(), needs);
        deep.fine = Fine {
            start: Some(oldest),
            values,
        };
        deep.fold(now);
        Ok(deep.history())
    }

    /// The first sample `source` holds from `deeper.coverage_from` to before `first` (the
    /// first the calibration's history holds), when the spec's history begins before that
    /// history does: read every half of `coverage::slack` (half an hour for four weeks), which
    /// is how precisely `HistoryAvailable` counts, so a few hundred samples.
    async fn first_before(
        &self,
        source: &(impl RangeSource + ?Sized),
        now: DateTime<Utc>,
        deeper: &Deeper,
        first: Option<DateTime<Utc>>,
        done: &mut Refresh,
    ) -> Result<Option<DateTime<Utc>>> {
        let before = align(now - deeper.needs.span, COARSE_BLOCK);
        let from = align(deeper.coverage_from, STEP);
        if from >= before {
            return Ok(None);
        }
        let slack = prescaler_planning::coverage::slack(now - from);
        let step = Duration::minutes((slack.num_minutes() / 2).max(1));
        let end = before - STEP;
        let samples = source.range(&self.query, from, end, step).await?;
        done.queries += chunks(from, end, step);
        done.samples += samples.len();
        let found = samples
            .iter()
            .find(|(_, v)| prescaler_planning::forecast::is_load(*v))
            .map(|(t, _)| *t);
        Ok(found.filter(|t| first.is_none_or(|f| *t < f)))
    }

    /// Brings the cache up to `now`: the whole span the first time (the old part as block
    /// means), then the newest minutes.
    pub async fn refresh(
        &mut self,
        source: &(impl RangeSource + ?Sized),
        now: DateTime<Utc>,
    ) -> Result<Refresh> {
        let mut done = Refresh::default();
        if self.fine.values.is_empty() {
            self.read_cold(source, now, &mut done).await?;
        } else {
            self.read_newest(source, align(now, STEP), &mut done)
                .await?;
        }
        self.fold(now);
        Ok(done)
    }

    /// Cold: a probe first (the weeks of history are the big read), then the whole span at
    /// one-minute steps, its part older than the fine tier folded into block means here, as the
    /// minutes of a warm cache are (`fold`); kept only if every read succeeds. The probe reads at
    /// `now`, the freshest view: a gap at the last whole minute must not let it pass.
    ///
    /// One plain range read, not the block means computed by the source: Prometheus evaluates a
    /// block mean as a subquery (`avg_over_time((q)[5m:1m])`, and `count_over_time` beside it),
    /// each of its minutes once per function, so the old weeks cost it about four times what the
    /// same minutes cost as a range, and the means then differed from the ones a warm cache folds
    /// (samples that are not load were counted in them).
    async fn read_cold(
        &mut self,
        source: &(impl RangeSource + ?Sized),
        now: DateTime<Utc>,
        done: &mut Refresh,
    ) -> Result<()> {
        source.probe(&self.query, now).await?;
        done.queries += 1;
        let oldest = align(now - self.needs.span, COARSE_BLOCK);
        let fine_start = self.fine_from(now);
        let whole = self
            .read_fine(source, oldest, align(now, STEP), done)
            .await?;
        let old_minutes = index(fine_start, oldest, STEP)
            .unwrap_or(0)
            .min(whole.values.len());
        let blocks = old_minutes / COARSEN;
        let mut coarse = Coarse::with_blocks(oldest, blocks);
        for (i, block) in whole.values[..blocks * COARSEN]
            .chunks_exact(COARSEN)
            .enumerate()
        {
            coarse.set(i, block_of(block));
        }
        let recent = &whole.values[blocks * COARSEN..];
        let mut values = with_slack(recent.len(), FINE_SLACK);
        values.copy_from_slice(recent);
        self.coarse = if blocks > 0 {
            coarse
        } else {
            Coarse::default()
        };
        self.fine = Fine {
            start: Some(oldest + COARSE_BLOCK * blocks as i32),
            values,
        };
        Ok(())
    }

    /// The minutes `[fine_start, end]`, as a new fine tier.
    async fn read_fine(
        &self,
        source: &(impl RangeSource + ?Sized),
        fine_start: DateTime<Utc>,
        end: DateTime<Utc>,
        done: &mut Refresh,
    ) -> Result<Fine> {
        let samples = source.range(&self.query, fine_start, end, STEP).await?;
        let len = ((end - fine_start).num_seconds() / STEP.num_seconds()) as usize + 1;
        let mut fine = Fine {
            start: Some(fine_start),
            values: with_slack(len, FINE_SLACK),
        };
        for (t, v) in &samples {
            if let Some(i) = index(*t, fine_start, STEP)
                && i < len
            {
                fine.values[i] = accept(*v, &mut done.rejected);
            }
        }
        done.queries += chunks(fine_start, end, STEP);
        done.samples += samples.len();
        Ok(fine)
    }

    /// Warm: the minutes after the cached ones up to `end`, and the last `REREAD_STEPS` cached
    /// ones again.
    async fn read_newest(
        &mut self,
        source: &(impl RangeSource + ?Sized),
        end: DateTime<Utc>,
        done: &mut Refresh,
    ) -> Result<()> {
        let start = self.fine.start.expect("set with values");
        let cached = self.fine.values.len().saturating_sub(REREAD_STEPS);
        let from = start + STEP * cached as i32;
        if from > end {
            return Ok(());
        }
        let samples = source.range(&self.query, from, end, STEP).await?;
        let len = ((end - start).num_seconds() / STEP.num_seconds()) as usize + 1;
        if len > self.fine.values.len() {
            self.fine.values.resize(len, f32::NAN);
        }
        for (t, v) in &samples {
            if let Some(i) = index(*t, start, STEP)
                && i < self.fine.values.len()
            {
                self.fine.values[i] = accept(*v, &mut done.rejected);
            }
        }
        done.queries += chunks(from, end, STEP);
        done.samples += samples.len();
        Ok(())
    }

    /// Moves fine values older than the fine span into block means, and drops what has left
    /// the span.
    fn fold(&mut self, now: DateTime<Utc>) {
        let oldest = align(now - self.needs.span, COARSE_BLOCK);
        let keep_from = self.fine_from(now);
        let Some(mut fine_start) = self.fine.start else {
            return;
        };
        let mut folded = 0;
        while fine_start < keep_from && self.fine.values.len() - folded > COARSEN {
            let (mean, count) = block_of(&self.fine.values[folded..folded + COARSEN]);
            if self.coarse.len() == 0 {
                self.coarse.start = Some(fine_start);
            }
            self.coarse.push((mean, count));
            folded += COARSEN;
            fine_start += COARSE_BLOCK;
        }
        if folded > 0 {
            self.fine.values.drain(..folded);
            self.fine.start = Some(fine_start);
        }
        if let Some(start) = self.coarse.start {
            let drop = index(oldest, start, COARSE_BLOCK)
                .unwrap_or(0)
                .min(self.coarse.len());
            self.coarse.drain_front(drop);
            self.coarse.start = Some(start + COARSE_BLOCK * drop as i32);
        }
        // A span shorter than the fine tier: drop fine values that left it.
        if let Some(start) = self.fine.start
            && start < oldest
        {
            let drop = index(oldest, start, STEP)
                .unwrap_or(0)
                .min(self.fine.values.len());
            self.fine.values.drain(..drop);
            self.fine.start = Some(start + STEP * drop as i32);
        }
    }

    /// The cached history on the one-minute grid, for the planner. A block stands for its
    /// minutes as its mean on as many of them as had a sample, and gaps on the rest: the mean of
    /// any whole blocks, which is what the forecast reads of old history, is then exactly the
    /// mean of the samples they held.
    pub fn history(&self) -> Option<History> {
        let fine_start = self.fine.start?;
        if self.fine.values.is_empty() {
            return None;
        }
        let start = match self.coarse.start {
            Some(s) if self.coarse.len() > 0 => s,
            _ => fine_start,
        };
        let mut values = Vec::with_capacity(self.coarse.len() * COARSEN + self.fine.values.len());
        if start < fine_start {
            for (i, &mean) in self.coarse.means.iter().enumerate() {
                let count = usize::from(self.coarse.count(i));
                values.extend(std::iter::repeat_n(f64::from(mean), count));
                values.extend(std::iter::repeat_n(f64::NAN, COARSEN - count));
            }
        }
        values.extend(self.fine.values.iter().map(|&v| f64::from(v)));
        Some(History::new(start, STEP, values))
    }

    /// Bytes of samples held: what a thousand scalers multiply.
    pub fn held_bytes(&self) -> usize {
        self.fine.values.capacity() * std::mem::size_of::<f32>()
            + self.coarse.means.capacity() * std::mem::size_of::<f32>()
            + self.coarse.partial.capacity() * std::mem::size_of::<(i64, u8)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn aged_minutes_fold_into_block_means_and_the_grid_stays_whole() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let needs = HistoryNeeds {
            span: Duration::days(7),
            fine: Duration::hours(56),
        };
        let mut cache = HistoryCache::new("q", needs);
        let minutes = 60 * 60;
        let mut values: Vec<f32> = (0..minutes).map(|m| (m % 7) as f32).collect();
        values[7] = f32::NAN; // a gap in the second block
        cache.fine = Fine {
            start: Some(t0),
            values,
        };
        let now = t0 + Duration::hours(60);
        cache.fold(now);
        // Everything older than the fine span (56 h) before `now`, in whole 5-minute blocks.
        let folded = cache.coarse.len() * 5;
        assert_eq!(folded, 4 * 60, "the first 4 hours are coarse");
        assert_eq!(cache.fine.start, Some(t0 + Duration::hours(4)));
        assert_eq!(cache.coarse.means[0], 2.0, "the mean of 0,1,2,3,4");
        assert_eq!(cache.coarse.count(0), 5);
        assert_eq!(cache.coarse.means[1], 3.5, "the mean of 5,6,1,2 (a gap)");
        assert_eq!(cache.coarse.count(1), 4);
        let h = cache.history().unwrap();
        assert_eq!(h.start(), t0);
        assert_eq!(h.len(), minutes, "coarse and fine meet without a gap");
        assert_eq!(
            &h.values()[5..9],
            &[3.5; 4],
            "the mean on as many minutes as had a sample"
        );
        assert!(h.values()[9].is_nan(), "and a gap for the missing one");
        assert_eq!(
            h.values()[4 * 60 + 3],
            ((4 * 60 + 3) % 7) as f64,
            "fine values as they were"
        );

        // A week later the coarse blocks have left the 7-day span.
        cache.fold(now + Duration::days(7));
        assert!(cache.coarse.len() == 0 || cache.coarse.start.unwrap() >= now);
    }

    /// A load on the minute grid from a function of the minute's index since `t0` (`None`:
    /// no sample), read as Prometheus would: every step of a range.
    struct Minutes<F>(DateTime<Utc>, F);

    impl<F: Fn(i64) -> Option<f64> + Send + Sync> RangeSource for Minutes<F> {
        async fn range(
            &self,
            _query: &str,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            step: Duration,
        ) -> Result<Vec<(DateTime<Utc>, f64)>> {
            let mut out = Vec::new();
            let mut t = start;
            while t <= end {
                if let Some(v) = (self.1)((t - self.0).num_minutes()) {
                    out.push((t, v));
                }
                t += step;
            }
            Ok(out)
        }
    }

    #[tokio::test]
    async fn a_cold_read_holds_what_a_cache_kept_warm_would() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        // Loads with digits an `f32` rounds, a gap, and a negative sample (not load) in blocks
        // that are old by the end.
        let load = |m: i64| match m {
            ..0 | 400..=404 => None,
            503 => Some(-5.0),
            m => Some(100.1 + (m * 7919 % 97) as f64 / 7.0),
        };
        let source = Minutes(t0, load);
        let needs = HistoryNeeds {
            span: Duration::days(5),
            fine: Duration::days(2),
        };
        let end = t0 + Duration::days(5) + Duration::minutes(17);

        let mut cold = HistoryCache::new("q", needs);
        let done = cold.refresh(&source, end).await.unwrap();
        assert_eq!(done.rejected, 1, "the negative sample");
        assert_eq!(
            done.queries, 2,
            "a probe and one range read of 7 218 minutes"
        );

        // Read cold early, then kept up an hour at a time: its old blocks were folded here.
        let mut warm = HistoryCache::new("q", needs);
        let mut t = t0 + Duration::hours(3);
        while t < end {
            warm.refresh(&source, t).await.unwrap();
            t += Duration::hours(1);
        }
        warm.refresh(&source, end).await.unwrap();

        let (cold_h, warm_h) = (cold.history().unwrap(), warm.history().unwrap());
        assert_eq!(
            cold_h.start(),
            t0 + Duration::minutes(15),
            "the span, in whole blocks"
        );
        assert_eq!(cold_h.start(), warm_h.start());
        let bits = |h: &History| h.values().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&cold_h), bits(&warm_h), "the same history, to the bit");
        // The block with the negative sample: the mean of its four loads, on four minutes.
        assert!(
            cold_h.values()[400 - 15..405 - 15]
                .iter()
                .all(|v| v.is_nan())
        );
        let block = &cold_h.values()[500 - 15..505 - 15];
        let mean = ((500..=502)
            .chain([504])
            .map(|m| f64::from(load(m).unwrap() as f32))
            .sum::<f64>()
            / 4.0) as f32;
        assert_eq!(block.iter().filter(|v| v.is_nan()).count(), 1);
        assert!(
            block[..4].iter().all(|&v| v == f64::from(mean)),
            "{block:?}"
        );
        assert_eq!(
            cold.fine.start,
            Some(end - Duration::days(2) - Duration::minutes(2))
        );
    }

    #[tokio::test]
    async fn a_calibration_reads_the_history_a_cold_read_of_its_span_holds() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        // The series begins at minute 3 500 (within what the calibration reads, not the cache),
        // with a gap and a sample that is not load.
        let load = |m: i64| match m {
            ..3500 | 4000..=4010 => None,
            5003 => Some(f64::NAN),
            m => Some(100.1 + (m * 7919 % 97) as f64 / 7.0),
        };
        let source = Minutes(t0, load);
        let resting = HistoryNeeds {
            span: Duration::days(3),
            fine: Duration::days(1),
        };
        let deep = HistoryNeeds {
            span: Duration::days(6),
            fine: Duration::days(4),
        };
        let end = t0 + Duration::days(8) + Duration::minutes(17);
        let deeper = Deeper {
            needs: deep,
            coverage_from: end - Duration::days(9),
        };
        let bits = |h: &History| h.values().iter().map(|v| v.to_bits()).collect::<Vec<_>>();

        // What a cache over the calibration's needs would hold.
        let mut whole = HistoryCache::new("q", deep);
        whole.refresh(&source, end).await.unwrap();
        let expected = whole.history().unwrap();

        // A cold cache that calibrates: one read of the whole span, its own part kept.
        let mut cold = HistoryCache::new("q", resting);
        let (done, read) = cold.read(&source, end, true, Some(&deeper)).await.unwrap();
        let read = read.unwrap();
        assert_eq!(read.history.start(), expected.start());
        assert_eq!(bits(&read.history), bits(&expected));
        let mut only_resting = HistoryCache::new("q", resting);
        only_resting.refresh(&source, end).await.unwrap();
        let (kept, alone) = (cold.history().unwrap(), only_resting.history().unwrap());
        assert_eq!(kept.start(), alone.start());
        assert_eq!(
            bits(&kept),
            bits(&alone),
            "and keeps what a resting read holds"
        );
        assert_eq!(
            cold.held_bytes(),
            only_resting.held_bytes(),
            "and no more room"
        );
        // A probe, the span, the probe of the spec's history before it.
        assert_eq!(done.queries, 3);

        // A warm cache kept up an hour at a time, then calibrating: the same history again.
        let mut warm = HistoryCache::new("q", resting);
        let mut t = t0 + Duration::days(2);
        while t < end {
            warm.read(&source, t, true, None).await.unwrap();
            t += Duration::hours(1);
        }
        let held = warm.held_bytes();
        let (_, read) = warm.read(&source, end, true, Some(&deeper)).await.unwrap();
        let read = read.unwrap();
        assert_eq!(read.history.start(), expected.start());
        assert_eq!(bits(&read.history), bits(&expected));
        assert!(
            warm.held_bytes() <= held + 64,
            "the calibration's week is not kept"
        );
        // The series began after the spec's history did: its first sample, to the minute.
        assert_eq!(read.samples_since, Some(t0 + Duration::minutes(3500)));
        assert_eq!(read.history.samples_before(), None, "within what was read");
    }

    #[tokio::test]
    async fn how_far_back_the_source_holds_is_read_to_half_the_slack() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let end = t0 + Duration::days(30);
        let deep = HistoryNeeds {
            span: Duration::days(20),
            fine: Duration::days(8),
        };
        let deeper = Deeper {
            needs: deep,
            coverage_from: end - Duration::days(28),
        };
        // From 25 days and 10 minutes before the end: before what the calibration reads.
        let began = end - Duration::days(25) - Duration::minutes(10);
        let source = Minutes(t0, |m: i64| {
            (t0 + Duration::minutes(m) >= began).then_some(50.0)
        });
        let mut cache = HistoryCache::new(
            "q",
            HistoryNeeds {
                span: Duration::days(15),
                fine: Duration::days(2),
            },
        );
        let (_, read) = cache.read(&source, end, true, Some(&deeper)).await.unwrap();
        let read = read.unwrap();
        let since = read.samples_since.unwrap();
        // Read every half hour (half the slack of an hour for four weeks): the first step at or
        // after the first sample.
        assert!(
            since >= began && since - began < Duration::minutes(30),
            "{since}"
        );
        assert_eq!(read.history.samples_before(), Some(since));
        let view = read
            .history
            .view_at(end)
            .unwrap()
            .since(end - Duration::days(28));
        assert_eq!(view.observed_span(), end - since);
    }

    #[test]
    fn negative_and_non_finite_samples_are_missing_and_counted() {
        let mut rejected = 0;
        assert_eq!(accept(3.0, &mut rejected), 3.0);
        assert!(accept(-1.0, &mut rejected).is_nan());
        assert!(accept(f64::INFINITY, &mut rejected).is_nan());
        assert!(accept(f64::NAN, &mut rejected).is_nan());
        assert_eq!(rejected, 3);
    }
}
