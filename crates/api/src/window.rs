//! A peak window parsed: a cron schedule of openings in a time zone, each open for a duration,
//! and the arithmetic on it that the schedule, the calendar's checks and the plan need.
//!
//! Every question about a window comes down to two of croner's searches: the latest opening at
//! or before an instant, and the first after it. One search costs little for a frequent schedule
//! but can scan years for a sparse one (`0 0 * 2 1#5`, the fifth Monday of February, comes every
//! few years), and the planner asks at every minute, the plan at every quarter hour ahead, for
//! every window. So each window keeps the two openings around the last instant it was asked
//! about (`Bracket`): every instant between them has the same answers, and consecutive questions
//! mostly fall there. What a window answers is a function of the instant alone, however it was
//! reached, so the memory changes no decision (`tests/properties.rs` compares it with croner).
//!
//! Every search is counted (`searches`), so that a spec's cost can be bounded and reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A parsed peak window.
#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    pub cron: Cron,
    pub time_zone: Tz,
    pub duration: Duration,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    /// `minReplicas: 0`: while open, the workload may be scaled to zero (quiet hours).
    pub scale_to_zero: bool,
    /// Shared by the clones of one parsed spec: the planner's, the plan's and the controller's
    /// copies all profit from one search.
    memory: Arc<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    bracket: Mutex<Option<Bracket>>,
    searches: AtomicU64,
}

/// The openings around an instant: `before` is the latest at or before it (`None`: there is
/// none), `after` the first after it (`None`: there is none). The same two answer every instant
/// of `[before, after)` — or, without an opening before, of `(-inf, after)` up to the instant
/// that was asked (croner searches back only so far, so nothing earlier is promised).
#[derive(Clone, Copy, Debug)]
struct Bracket {
    asked: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
}

impl Bracket {
    fn holds(&self, at: DateTime<Utc>) -> bool {
        let from_ok = match self.before {
            Some(b) => b <= at,
            None => at <= self.asked,
        };
        from_ok && self.after.is_none_or(|a| at < a)
    }
}

impl Window {
    pub fn new(
        name: String,
        cron: Cron,
        time_zone: Tz,
        duration: Duration,
        min_replicas: Option<u32>,
        max_replicas: Option<u32>,
    ) -> Self {
        Self {
            name,
            cron,
            time_zone,
            duration,
            min_replicas,
            max_replicas,
            scale_to_zero: false,
            memory: Arc::default(),
        }
    }

    /// This window as a quiet one (`minReplicas: 0`), or not.
    pub fn scaling_to_zero(mut self, zero: bool) -> Self {
        self.scale_to_zero = zero;
        self
    }

    /// The end of the opening `at` lies in, if the window is open at `at`.
    pub fn open_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.opening_before(at)
            .and_then(|start| start.checked_add_signed(self.duration))
            .filter(|end| at < *end)
    }

    /// How many of croner's searches this window (and its clones) has made.
    pub fn searches(&self) -> u64 {
        self.memory.searches.load(Ordering::Relaxed)
    }

    /// The openings around `at`, from memory when `at` lies between the remembered ones.
    fn bracket(&self, at: DateTime<Utc>) -> Bracket {
        let mut remembered = self
            .memory
            .bracket
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(b) = remembered.filter(|b| b.holds(at)) {
            return b;
        }
        let local = at.with_timezone(&self.time_zone);
        // Walking from opening to opening (`opening_after` of the last one), the instant asked
        // about is the remembered next opening, and so the latest at or before it: one search.
        let walked = remembered.is_some_and(|b| b.after == Some(at));
        let before = if walked {
            Some(at)
        } else {
            self.memory.searches.fetch_add(1, Ordering::Relaxed);
            self.cron
                .find_previous_occurrence(&local, true)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                // Croner answers in local time: an answer after the instant asked about (a local
                // time repeated at a fall-back) is no opening before it.
                .filter(|t| *t <= at)
        };
        let after = self
            .cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > at);
        self.memory.searches.fetch_add(1, Ordering::Relaxed);
        let b = Bracket {
            asked: at,
            before,
            after,
        };
        *remembered = Some(b);
        b
    }

    /// Whether the window is open at `at`: the latest opening at or before `at` is less than
    /// `duration` ago. (The latest opening also closes last, so earlier ones need no look.)
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.opening_before(at)
            .and_then(|start| start.checked_add_signed(self.duration))
            .is_some_and(|end| at < end)
    }

    /// The latest opening at or before `at`.
    pub fn opening_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.bracket(at).before
    }

    /// The first opening after `at`.
    pub fn opening_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.bracket(at).after
    }

    /// Whether the window is open at any instant of `[from, from + span]`.
    pub fn is_open_within(&self, from: DateTime<Utc>, span: Duration) -> bool {
        self.is_open(from)
            || self
                .opening_after(from)
                .zip(from.checked_add_signed(span))
                .is_some_and(|(next, end)| next <= end)
    }
}
