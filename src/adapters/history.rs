//! The load history of one PredictiveScaler, kept between syncs: read once, then only the newest
//! minutes each sync, in the shape the planner reads (`forecast::History` at one-minute steps).
//!
//! Four weeks at one minute would be 160 KB per scaler even as `f32`; the cache keeps the last
//! `FINE_SPAN` at one-minute steps and everything older as the peak of each 5-minute block — all
//! the forecast reads of it (`forecast::COARSE_AFTER`), so the operator and the backtest forecast
//! alike — in about 45 KB. Samples that are negative or not a number are kept as missing and
//! counted: they are not load.

use std::future::Future;

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::Result;
use crate::planning::forecast::{COARSE_AFTER, COARSE_BLOCK, History};

/// Where the samples come from: Prometheus, or (in tests) a recorded trace.
pub trait RangeSource {
    /// Samples of `query` on the grid `start, start + step, …, ≤ end`; missing steps absent.
    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<(DateTime<Utc>, f64)>>> + Send;

    /// The peak of `query` evaluated every `step` over each `block`, one sample per block, at the
    /// block's last step, on the grid `start, start + block, …, ≤ end`.
    fn block_peaks(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        block: Duration,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<(DateTime<Utc>, f64)>>> + Send;
}

/// The history's resolution: the planner's minute.
const STEP: Duration = Duration::minutes(1);
/// How many fine steps make one coarse block.
const COARSEN: usize = (COARSE_BLOCK.num_seconds() / STEP.num_seconds()) as usize;
/// How much recent history is kept at one-minute steps: what the forecast reads at full
/// resolution (`COARSE_AFTER`), for forecasts up to the longest lead time (6 h) before now, which
/// the calibration replays after a start.
const FINE_SPAN: Duration = Duration::hours(2 * 24 + 8);
const _: () = assert!(FINE_SPAN.num_hours() >= COARSE_AFTER.num_hours() + 7);
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

/// One resolution of the cache: `values[i]` belongs to `start + i * step` (for the coarse tier:
/// the peak of the block starting there); NaN where there was nothing. `f32` halves the memory;
/// a load has no need for more digits.
#[derive(Clone, Debug, Default)]
struct Tier {
    start: Option<DateTime<Utc>>,
    values: Vec<f32>,
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

/// A usable load sample, or the count of a rejected one.
fn accept(v: f64, rejected: &mut usize) -> f32 {
    if v.is_finite() && v >= 0.0 {
        v as f32
    } else {
        *rejected += 1;
        f32::NAN
    }
}

/// The history of one query over `span` up to now.
#[derive(Clone, Debug)]
pub struct HistoryCache {
    query: String,
    span: Duration,
    fine: Tier,
    coarse: Tier,
}

fn index(t: DateTime<Utc>, start: DateTime<Utc>, step: Duration) -> Option<usize> {
    let d = (t - start).num_seconds();
    (d >= 0).then(|| (d / step.num_seconds()) as usize)
}

impl HistoryCache {
    pub fn new(query: impl Into<String>, span: Duration) -> Self {
        Self {
            query: query.into(),
            span,
            fine: Tier::default(),
            coarse: Tier::default(),
        }
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    pub fn span(&self) -> Duration {
        self.span
    }

    /// Brings the cache up to `now`: the whole span the first time (the coarse part as block
    /// peaks), then the newest minutes.
    pub async fn refresh(
        &mut self,
        source: &impl RangeSource,
        now: DateTime<Utc>,
    ) -> Result<Refresh> {
        let end = align(now, STEP);
        let oldest = align(now - self.span, COARSE_BLOCK);
        let mut done = Refresh::default();
        let chunks = |from: DateTime<Utc>, to: DateTime<Utc>, step: Duration| {
            let points = (to - from).num_seconds() / step.num_seconds() + 1;
            (points.max(0) as u64).div_ceil(10_000) as usize
        };

        if self.fine.values.is_empty() {
            // Cold: the coarse part, then the fine part; kept only if both reads succeed.
            let fine_start = align(now - FINE_SPAN, COARSE_BLOCK).max(oldest);
            let mut coarse = Tier::default();
            if oldest < fine_start {
                let blocks =
                    ((fine_start - oldest).num_seconds() / COARSE_BLOCK.num_seconds()) as usize;
                coarse = Tier {
                    start: Some(oldest),
                    values: with_slack(blocks, COARSE_SLACK),
                };
                // A block's peak is evaluated at its last minute.
                let last_minute = STEP * (COARSEN as i32 - 1);
                let (from, to) = (oldest + last_minute, fine_start - STEP);
                let samples = source
                    .block_peaks(&self.query, from, to, COARSE_BLOCK, STEP)
                    .await?;
                for (t, v) in &samples {
                    if let Some(i) = index(*t - last_minute, oldest, COARSE_BLOCK)
                        && i < blocks
                    {
                        coarse.values[i] = accept(*v, &mut done.rejected);
                    }
                }
                done.queries += chunks(from, to, COARSE_BLOCK);
                done.samples += samples.len();
            }
            let samples = source.range(&self.query, fine_start, end, STEP).await?;
            let len = ((end - fine_start).num_seconds() / STEP.num_seconds()) as usize + 1;
            let mut fine = Tier {
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
            self.coarse = coarse;
            self.fine = fine;
        } else {
            let start = self.fine.start.expect("set with values");
            let cached = self.fine.values.len().saturating_sub(REREAD_STEPS);
            let from = start + STEP * cached as i32;
            if from <= end {
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
            }
        }
        self.fold(now);
        Ok(done)
    }

    /// Moves fine values older than `FINE_SPAN` into block peaks, and drops what has left the
    /// span.
    fn fold(&mut self, now: DateTime<Utc>) {
        let oldest = align(now - self.span, COARSE_BLOCK);
        let keep_from = align(now - FINE_SPAN, COARSE_BLOCK).max(oldest);
        let Some(mut fine_start) = self.fine.start else {
            return;
        };
        let mut folded = 0;
        while fine_start < keep_from && self.fine.values.len() - folded > COARSEN {
            let peak = self.fine.values[folded..folded + COARSEN]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .reduce(f32::max)
                .unwrap_or(f32::NAN);
            if self.coarse.values.is_empty() {
                self.coarse.start = Some(fine_start);
            }
            self.coarse.values.push(peak);
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
                .min(self.coarse.values.len());
            self.coarse.values.drain(..drop);
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

    /// The cached history on the one-minute grid, for the planner: each block peak stands for
    /// the minutes of its block.
    pub fn history(&self) -> Option<History> {
        let fine_start = self.fine.start?;
        if self.fine.values.is_empty() {
            return None;
        }
        let start = match self.coarse.start {
            Some(s) if !self.coarse.values.is_empty() => s,
            _ => fine_start,
        };
        let mut values =
            Vec::with_capacity(self.coarse.values.len() * COARSEN + self.fine.values.len());
        if start < fine_start {
            for &c in &self.coarse.values {
                values.extend(std::iter::repeat_n(c as f64, COARSEN));
            }
        }
        values.extend(self.fine.values.iter().map(|&v| v as f64));
        Some(History::new(start, STEP, values))
    }

    /// Bytes of samples held: what a thousand scalers multiply.
    pub fn held_bytes(&self) -> usize {
        (self.fine.values.capacity() + self.coarse.values.capacity()) * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn aged_minutes_fold_into_block_peaks_and_the_grid_stays_whole() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let mut cache = HistoryCache::new("q", Duration::days(7));
        let minutes = 60 * 60;
        cache.fine = Tier {
            start: Some(t0),
            values: (0..minutes).map(|m| (m % 7) as f32).collect(),
        };
        let now = t0 + Duration::hours(60);
        cache.fold(now);
        // Everything older than FINE_SPAN (56 h) before `now`, in whole 5-minute blocks.
        let folded = cache.coarse.values.len() * 5;
        assert_eq!(folded, 4 * 60, "the first 4 hours are coarse");
        assert_eq!(cache.fine.start, Some(t0 + Duration::hours(4)));
        assert_eq!(cache.coarse.values[0], 4.0, "the peak of 0,1,2,3,4");
        assert_eq!(cache.coarse.values[1], 6.0, "the peak of 5,6,0,1,2");
        let h = cache.history().unwrap();
        assert_eq!(h.start(), t0);
        assert_eq!(h.len(), minutes, "coarse and fine meet without a gap");
        assert_eq!(h.values()[7], 6.0);
        assert_eq!(
            h.values()[4 * 60 + 3],
            ((4 * 60 + 3) % 7) as f64,
            "fine values as they were"
        );

        // A week later the coarse blocks have left the 7-day span.
        cache.fold(now + Duration::days(7));
        assert!(cache.coarse.values.is_empty() || cache.coarse.start.unwrap() >= now);
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
