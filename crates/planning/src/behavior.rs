//! `spec.behavior`: stabilization windows and rate limits, with the HorizontalPodAutoscaler's own
//! algorithm (`stabilizeRecommendationWithBehaviors` and `convertDesiredReplicasWithBehaviorRate`
//! in kubernetes/pkg/controller/podautoscaler/horizontal.go), so that SREs' intuitions carry over.
//! The backtest's HPA baseline runs through this same code.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use prescaler_api::{Policy, PolicyType, Rules, SelectPolicy, ValidBehavior};

/// What the rules remember between decisions: recent recommendations (for stabilization, with
/// the count each was made at, for `passing_rise`) and recent changes of the replica count (for
/// rate limits). Lost on a restart without harm: stabilization then starts afresh, as it does
/// for the HPA.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    recommendations: VecDeque<(DateTime<Utc>, (u32, u32))>,
    changes: VecDeque<(DateTime<Utc>, i64)>,
}

/// Why the shaped count differs from the recommendation, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    Stabilized,
    RateLimited,
}

/// Pushes `(at, value)`, replacing an entry for the same instant: a second decision at the same
/// instant (the operator may reconcile twice within a planning minute) revises, not repeats.
fn record<T>(list: &mut VecDeque<(DateTime<Utc>, T)>, at: DateTime<Utc>, value: T) {
    if list.back().is_some_and(|(t, _)| *t == at) {
        list.pop_back();
    }
    list.push_back((at, value));
}

/// Applies `behavior` to `recommendation` for a workload at `current` replicas, and records both.
/// `foresight` is the part of the recommendation known ahead (a peak window's floor, a seasonal
/// forecast): the *default* scale-up limit, which guards against bogus live samples, does not hold
/// it back; policies the spec sets do. The result is always within `bounds`: unlike the HPA,
/// which walks a count outside its bounds back at the rate its policies allow, prescaler's
/// `minReplicas` and `maxReplicas` hold at once (a lowered `maxReplicas` means what it says).
pub fn shape(
    behavior: &ValidBehavior,
    bounds: (u32, u32),
    current: u32,
    recommendation: u32,
    foresight: u32,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> (u32, Option<Limited>) {
    let (stabilized, passing) = stabilize(
        behavior,
        current,
        recommendation,
        &mut memory.recommendations,
        now,
    );
    let mut limited = (stabilized != recommendation).then_some(Limited::Stabilized);
    forget_changes(behavior, &mut memory.changes, now);
    let mut desired = stabilized;
    let limit = rate_limit(
        behavior,
        current,
        stabilized,
        foresight,
        passing,
        &memory.changes,
        now,
    );
    if let Some(limit) = limit {
        desired = limit;
        limited = Some(Limited::RateLimited);
    }
    let desired = desired.clamp(bounds.0, bounds.1.max(bounds.0));
    if desired != current {
        record(&mut memory.changes, now, desired as i64 - current as i64);
    }
    (desired, limited)
}

/// Stabilization: up to the lowest recommendation of the up window, down to the highest of the
/// down window; records `recommendation` (made at `current`). Also the count before a passing
/// rise (`passing_rise`), looked for when the default scale-down rules lower the count.
fn stabilize(
    behavior: &ValidBehavior,
    current: u32,
    recommendation: u32,
    recommendations: &mut VecDeque<(DateTime<Utc>, (u32, u32))>,
    now: DateTime<Utc>,
) -> (u32, Option<u32>) {
    let (up, down) = (&behavior.scale_up, &behavior.scale_down);
    // Two scale-down windows: one to stabilize, one before it to see where a rise began.
    let keep = up.stabilization_window.max(down.stabilization_window * 2);
    while recommendations
        .front()
        .is_some_and(|(t, _)| now - *t > keep)
    {
        recommendations.pop_front();
    }
    let (mut up_rec, mut down_rec) = (recommendation, recommendation);
    for &(t, (r, _)) in recommendations.iter() {
        if t == now {
            continue; // being revised
        }
        if now - t <= up.stabilization_window {
            up_rec = up_rec.min(r);
        }
        if now - t <= down.stabilization_window {
            down_rec = down_rec.max(r);
        }
    }
    let passing = (down.default_policies && current > recommendation)
        .then(|| passing_rise(recommendations, now, down.stabilization_window, down_rec))
        .flatten();
    record(recommendations, now, (recommendation, current));
    (current.max(up_rec).min(down_rec), passing)
}

/// Drops the changes older than the longest policy period, and one made at `now` (being
/// revised).
fn forget_changes(
    behavior: &ValidBehavior,
    changes: &mut VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) {
    let (up, down) = (&behavior.scale_up, &behavior.scale_down);
    let longest = up
        .policies
        .iter()
        .chain(&down.policies)
        .map(|p| p.period)
        .max()
        .unwrap_or(Duration::zero());
    while changes.front().is_some_and(|(t, _)| now - *t > longest) {
        changes.pop_front();
    }
    if changes.back().is_some_and(|(t, _)| *t == now) {
        changes.pop_back(); // being revised
    }
}

/// Rate limits, relative to the replicas at the start of each policy's period: the count the
/// rules hold `stabilized` to, when they hold it back. The default scale-up limit lets
/// `foresight` through; a `passing` rise's count bounds the default scale-down limit.
fn rate_limit(
    behavior: &ValidBehavior,
    current: u32,
    stabilized: u32,
    foresight: u32,
    passing: Option<u32>,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) -> Option<u32> {
    let (up, down) = (&behavior.scale_up, &behavior.scale_down);
    if stabilized > current {
        let mut limit = policy_limit(up, current, changes, now, Direction::Up).max(current);
        if up.default_policies {
            limit = limit.max(foresight.min(stabilized));
        }
        (stabilized > limit).then_some(limit)
    } else if stabilized < current {
        let mut limit = policy_limit(down, current, changes, now, Direction::Down).min(current);
        if let Some(before) = passing {
            limit = limit.min(before.max(stabilized));
        }
        (stabilized < limit).then_some(limit)
    } else {
        None
    }
}

/// A rise that did not last the scale-down stabilization window is not a level the default
/// scale-down limit paces a descent from: when every remembered recommendation above `target`
/// (the stabilized one, lower than the count) falls within less than `window`, after one at or
/// below it, the count the first of them was made at is returned — the count may go back to it
/// (or to `target`, if higher) at once, and the limit paces any descent from there.
///
/// The default limit (20 % a minute) paces a descent from a load the workload carried, so that a
/// level that fades is not dropped at once. Two samples of a counter reset (1e6 where the load is
/// 100) are a level to the live floor, which follows them past the default scale-up limit as the
/// HPA's four syncs a minute would; the stabilization window then keeps the count for its five
/// minutes, as the HPA's does. But the HPA, whose default scale-down is 100 % per 15 s, is back
/// at the load's need when its window ends, where the 20 % limit walked down from `maxReplicas`
/// for a quarter of an hour more: replicas no load ever needed for longer than two minutes.
/// A rise the window outlasted is, like a drop to zero shorter than a level window
/// (`forecast::zero_blips`), one that did not persist; a policy the spec writes is applied as
/// written.
fn passing_rise(
    recommendations: &VecDeque<(DateTime<Utc>, (u32, u32))>,
    now: DateTime<Utc>,
    window: Duration,
    target: u32,
) -> Option<u32> {
    let mut above = recommendations
        .iter()
        .enumerate()
        .filter(|(_, (t, (r, _)))| *t != now && *r > target);
    let (first, &(began, (_, before))) = above.next()?;
    let ended = above.next_back().map_or(began, |(_, (t, _))| *t);
    (first > 0 && ended - began < window).then_some(before)
}

/// How many one-minute decisions the scale-up rules take to bring `from` replicas to `to`, with
/// no recent scale-up counting against them: how much earlier than its lead time a known floor
/// must be asked for to be ready on time.
pub fn minutes_to_reach(rules: &Rules, from: u32, to: u32) -> u32 {
    if rules.default_policies {
        return 0; // the default limit does not hold a known floor back (see `shape`)
    }
    let mut current = from.max(1);
    let mut minutes = 0;
    while current < to && minutes < 60 {
        let next = policy_limit(
            rules,
            current,
            &VecDeque::new(),
            DateTime::<Utc>::UNIX_EPOCH,
            Direction::Up,
        );
        if next <= current {
            return 60; // scaling up is disabled: no lead is enough
        }
        current = next;
        minutes += 1;
    }
    minutes
}

/// The replicas added (`up`) or removed within `period` before `now`.
fn changes_in_period(
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
    period: Duration,
    up: bool,
) -> i64 {
    changes
        .iter()
        .filter(|(t, _)| now - *t < period)
        .map(|(_, d)| *d)
        .filter(|d| if up { *d > 0 } else { *d < 0 })
        .sum()
}

/// Which way a limit applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The furthest the rules let the count go from `current` in `direction` now, as the HPA's
/// `calculateScaleUpLimitWithScalingRules` and `calculateScaleDownLimitWithBehaviors` compute it:
/// each policy starts from the count before the changes within its period, and `selectPolicy: Max`
/// picks the policy that allows the largest change.
fn policy_limit(
    rules: &Rules,
    current: u32,
    changes: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
    direction: Direction,
) -> u32 {
    if rules.select_policy == SelectPolicy::Disabled {
        return current;
    }
    let up = direction == Direction::Up;
    let proposals = rules.policies.iter().map(|p: &Policy| {
        let start = current as i64 - changes_in_period(changes, now, p.period, up);
        let step = if up { 1.0 } else { -1.0 } * p.value as f64;
        match p.type_ {
            PolicyType::Pods => start + step as i64,
            PolicyType::Percent if up => (start as f64 * (1.0 + step / 100.0)).ceil() as i64,
            PolicyType::Percent => (start as f64 * (1.0 + step / 100.0)) as i64,
        }
    });
    // Up, `Max` is the highest proposal; down, the lowest; `Min` the other way round.
    let take_highest = (rules.select_policy == SelectPolicy::Min) != up;
    let limit = if take_highest {
        proposals.max()
    } else {
        proposals.min()
    };
    let no_policy = if up { i64::MAX } else { 0 };
    limit.unwrap_or(no_policy).clamp(0, u32::MAX as i64) as u32
}
