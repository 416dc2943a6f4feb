//! The calendar (`spec.calendar`) parsed: dated exclusions and events as UTC intervals, and the
//! window arithmetic both they and the peak windows need.
//!
//! Local times follow the same rule as the peak windows' cron schedules (croner's, after Vixie
//! cron): a local time the clock skips at a spring-forward means the first instant after the
//! jump, one it repeats at a fall-back means the first of the two. A date alone is the local day
//! from midnight to midnight, 23 or 25 hours long on a DST change.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use super::bounds::{Limits, invalid, parse_bounds_or_zero, parse_time_zone};
use super::window::Window;
use super::{CalendarEvent, CalendarSpec, Exclusion};
use crate::Error;

/// A named interval `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dated {
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Dated {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether the interval meets `[from, to]`.
    pub fn meets(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        self.start <= to && from < self.end
    }
}

/// A dated event, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub when: Dated,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    pub load_multiplier: Option<f64>,
    /// `minReplicas: 0`: during the event the workload may be scaled to zero.
    pub scale_to_zero: bool,
    /// Where it comes from when not from `spec.calendar.events` (an `.ics` in a ConfigMap, see
    /// `ics`): named so in errors.
    pub origin: Option<String>,
}

/// `spec.calendar`, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calendar {
    /// Sorted by start.
    pub exclusions: Vec<Dated>,
    /// In the order they are written (errors name them by index).
    pub events: Vec<Event>,
}

impl Calendar {
    /// The exclusion that holds `t`, if one does.
    pub fn exclusion_at(&self, t: DateTime<Utc>) -> Option<&Dated> {
        self.exclusions.iter().find(|x| x.contains(t))
    }

    /// The intervals the seasonal history leaves out: every exclusion and every event, merged
    /// and sorted. (An event's load is not the routine's either.)
    pub fn unusual(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut all: Vec<_> = self
            .exclusions
            .iter()
            .chain(self.events.iter().map(|e| &e.when))
            .map(|d| (d.start, d.end))
            .collect();
        all.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(all.len());
        for (s, e) in all {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// What the forecasts depend on: the left-out intervals and the multipliers.
    pub fn forecast_key(&self) -> Vec<(i64, i64, u64)> {
        let mut key: Vec<_> = self
            .unusual()
            .into_iter()
            .map(|(s, e)| (s.timestamp(), e.timestamp(), 0))
            .collect();
        key.extend(self.events.iter().filter_map(|e| {
            e.load_multiplier.map(|m| {
                (
                    e.when.start.timestamp(),
                    e.when.end.timestamp(),
                    m.to_bits(),
                )
            })
        }));
        key
    }
}

impl Calendar {
    /// This calendar with the exclusions and events an `.ics` adds (`ics::expand`).
    pub fn with(&self, extra: &crate::ics::IcsEntries) -> Calendar {
        let mut merged = self.clone();
        merged.exclusions.extend(extra.exclusions.iter().cloned());
        merged.exclusions.sort_by_key(|x| x.start);
        merged.events.extend(extra.events.iter().cloned());
        merged
    }
}

/// An instant written as RFC 3339, a local date-time in `tz`, or a date (its local midnight, or
/// with `date_means_end` the next midnight: the end of that day).
fn parse_instant(
    field: &str,
    text: &str,
    tz: Tz,
    date_means_end: bool,
) -> Result<DateTime<Utc>, Error> {
    let bad = |why: &str| {
        invalid(
            field,
            format!(
                "{text:?} {why}: write RFC 3339 (2026-11-27T08:00:00Z, …-05:00), a local time \
                 (2026-11-27T08:00) or a date (2026-11-27)"
            ),
        )
    };
    if text.len() > Limits::MAX_DATE_LENGTH {
        return Err(bad("is too long"));
    }
    let instant = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else if let Some(local) = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    {
        resolve_local(tz, local).ok_or_else(|| bad("cannot be placed in the time zone"))?
    } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if date_means_end {
            date.succ_opt().ok_or_else(|| bad("is out of range"))?
        } else {
            date
        };
        resolve_local(
            tz,
            day.and_hms_opt(0, 0, 0)
                .ok_or_else(|| bad("is out of range"))?,
        )
        .ok_or_else(|| bad("cannot be placed in the time zone"))?
    } else {
        return Err(bad("is not a date or time"));
    };
    if !(Limits::MIN_YEAR..=Limits::MAX_YEAR).contains(&instant.year()) {
        return Err(bad(&format!(
            "is outside the years {}–{}",
            Limits::MIN_YEAR,
            Limits::MAX_YEAR
        )));
    }
    Ok(instant)
}

/// A local time in `tz`: the first of two at a fall-back; at a spring-forward, the first
/// instant after the jump (the first local minute that exists, within the few hours any zone's
/// jump lasts).
pub(crate) fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // The jump is at a whole minute in every zone: count from the minute, not its seconds.
        LocalResult::None => (1..=240).find_map(|m| {
            let later = local
                .with_second(0)?
                .checked_add_signed(Duration::minutes(m))?;
            tz.from_local_datetime(&later)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// The end of an interval, and its bounds: after the start, at most `MAX_DATED_SPAN` later.
fn check_span(field: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
    if end <= start {
        return Err(invalid(field, "must be after the start"));
    }
    if end - start > Limits::MAX_DATED_SPAN {
        return Err(invalid(
            field,
            format!(
                "is more than {} days after the start",
                Limits::MAX_DATED_SPAN.num_days()
            ),
        ));
    }
    Ok(())
}

fn parse_exclusion(field: &str, x: &Exclusion, default_tz: Tz) -> Result<Dated, Error> {
    let sub = |name: &str| format!("{field}.{name}");
    let tz = match &x.time_zone {
        Some(name) => parse_time_zone(&sub("timeZone"), name)?,
        None => default_tz,
    };
    let (start, end) = match (&x.date, &x.start, &x.end) {
        (Some(date), None, None) => {
            if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
                return Err(invalid(
                    sub("date"),
                    format!("{date:?} is not a date (YYYY-MM-DD)"),
                ));
            }
            (
                parse_instant(&sub("date"), date, tz, false)?,
                parse_instant(&sub("date"), date, tz, true)?,
            )
        }
        (None, Some(start), Some(end)) => (
            parse_instant(&sub("start"), start, tz, false)?,
            parse_instant(&sub("end"), end, tz, true)?,
        ),
        _ => {
            return Err(invalid(
                sub("date"),
                "an exclusion needs either date, or start and end",
            ));
        }
    };
    check_span(&sub("end"), start, end)?;
    Ok(Dated {
        name: x.name.clone(),
        start,
        end,
    })
}

fn parse_event(field: &str, e: &CalendarEvent, default_tz: Tz) -> Result<Event, Error> {
    let sub = |name: &str| format!("{field}.{name}");
    let tz = match &e.time_zone {
        Some(name) => parse_time_zone(&sub("timeZone"), name)?,
        None => default_tz,
    };
    let start = parse_instant(&sub("start"), &e.start, tz, false)?;
    let end = match (&e.end, &e.duration) {
        (Some(end), None) => parse_instant(&sub("end"), end, tz, true)?,
        (None, Some(d)) => {
            let d = d.parse(&sub("duration"), Limits::MIN_WINDOW, Limits::MAX_DATED_SPAN)?;
            start
                .checked_add_signed(d)
                .ok_or_else(|| invalid(sub("duration"), "is out of range"))?
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                sub("end"),
                "an event needs end or duration, not both",
            ));
        }
        (None, None) => {
            return Err(invalid(sub("end"), "an event needs end or duration"));
        }
    };
    check_span(&sub("end"), start, end)?;
    let (min_replicas, max_replicas, scale_to_zero) =
        parse_bounds_or_zero(field, e.min_replicas, e.max_replicas)?;
    let load_multiplier = match e.load_multiplier {
        Some(m) if !(m.is_finite() && (0.05..=100.0).contains(&m)) => {
            return Err(invalid(
                sub("loadMultiplier"),
                format!("must be between 0.05 and 100, is {m}"),
            ));
        }
        m => m,
    };
    if min_replicas.is_none()
        && max_replicas.is_none()
        && load_multiplier.is_none()
        && !scale_to_zero
    {
        return Err(invalid(
            sub("minReplicas"),
            "an event needs minReplicas, maxReplicas or loadMultiplier",
        ));
    }
    Ok(Event {
        when: Dated {
            name: e.name.clone(),
            start,
            end,
        },
        min_replicas,
        max_replicas,
        load_multiplier,
        scale_to_zero,
        origin: None,
    })
}

/// Parses `spec.calendar`; errors name the field.
pub(super) fn parse(spec: &CalendarSpec) -> Result<Calendar, Error> {
    let tz = parse_time_zone("spec.calendar.timeZone", &spec.time_zone)?;
    if spec.exclusions.len() > Limits::MAX_EXCLUSIONS {
        return Err(invalid(
            "spec.calendar.exclusions",
            format!("at most {} exclusions", Limits::MAX_EXCLUSIONS),
        ));
    }
    if spec.events.len() > Limits::MAX_EVENTS {
        return Err(invalid(
            "spec.calendar.events",
            format!("at most {} events", Limits::MAX_EVENTS),
        ));
    }
    let mut exclusions = spec
        .exclusions
        .iter()
        .enumerate()
        .map(|(i, x)| parse_exclusion(&format!("spec.calendar.exclusions[{i}]"), x, tz))
        .collect::<Result<Vec<_>, _>>()?;
    let events = spec
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| parse_event(&format!("spec.calendar.events[{i}]"), e, tz))
        .collect::<Result<Vec<_>, _>>()?;
    exclusions.sort_by_key(|x| x.start);
    if spec.config_map_refs.len() > Limits::MAX_CONFIG_MAP_CALENDARS {
        return Err(invalid(
            "spec.calendar.configMapRefs",
            format!(
                "at most {} ConfigMap calendars",
                Limits::MAX_CONFIG_MAP_CALENDARS
            ),
        ));
    }
    for (i, r) in spec.config_map_refs.iter().enumerate() {
        crate::ics::check_ref(&format!("spec.calendar.configMapRefs[{i}]"), r)?;
    }
    Ok(Calendar { exclusions, events })
}

/// A floor or a ceiling, and where it is written.
struct Bound<'a> {
    field: String,
    name: &'a str,
    min: Option<u32>,
    max: Option<u32>,
    /// When it is in force: `[start, end)` intervals sorted by start (a recurring window's
    /// openings in the year checked; a dated entry's one interval).
    intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The recurring window it was made from, if it was.
    window: Option<&'a Window>,
}

/// How many openings of one recurring window are checked. A window opening at most daily shows
/// every opening of the year checked; one opening every few minutes repeats its pattern within
/// days, so its first openings show its overlaps.
const OPENINGS_CHECKED: usize = 400;

/// The schedule searches (croner's, `Window::searches`) one spec's contradiction check may
/// make: tens of milliseconds at most (a search costs 1–60 µs, the most for a schedule that comes
/// once in years). A spec whose check needs more is refused with a message naming this budget,
/// rather than checked in part. (The check runs once per spec generation.)
pub const CHECK_SEARCHES: u64 = 20_000;

/// `[start, end)`.
type Interval = (DateTime<Utc>, DateTime<Utc>);

/// What the contradiction check has spent of `CHECK_SEARCHES`.
struct Budget<'a> {
    windows: &'a [Window],
    before: u64,
}

impl<'a> Budget<'a> {
    fn new(windows: &'a [Window]) -> Self {
        Self {
            windows,
            before: windows.iter().map(Window::searches).sum(),
        }
    }

    fn check(&self) -> Result<(), Error> {
        let spent = self.windows.iter().map(Window::searches).sum::<u64>() - self.before;
        if spent > CHECK_SEARCHES {
            return Err(invalid(
                "spec.peakWindows",
                format!(
                    "checking whether a floor is in force while a lower ceiling is (peak windows \
                     and calendar events) takes more than {CHECK_SEARCHES} schedule searches, \
                     the budget of one spec: use fewer windows with both floors and ceilings, or \
                     windows that open less often"
                ),
            ));
        }
        Ok(())
    }
}

/// A recurring window's openings in 2024, a leap year (so 29 February is among the dates), at
/// most `OPENINGS_CHECKED` of them.
fn openings(w: &Window, budget: &Budget<'_>) -> Result<Vec<Interval>, Error> {
    let (Some(from), Some(until)) = (
        Utc.with_ymd_and_hms(2023, 12, 31, 0, 0, 0).single(),
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single(),
    ) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut at = from;
    while out.len() < OPENINGS_CHECKED {
        budget.check()?;
        match w.opening_after(at) {
            Some(opening) if opening < until => {
                out.push((opening, opening + w.duration));
                at = opening;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// The first instant two sorted interval lists share, if any (a merge sweep: an interval that
/// ends before the other list's current one starts meets nothing later in it).
fn first_overlap(
    a: &[(DateTime<Utc>, DateTime<Utc>)],
    b: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Option<DateTime<Utc>> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].1 <= b[j].0 {
            i += 1;
        } else if b[j].1 <= a[i].0 {
            j += 1;
        } else {
            return Some(a[i].0.max(b[j].0));
        }
    }
    None
}

/// Refuses a floor that would be in force while a lower ceiling is: which should win is the
/// SRE's to say, not prescaler's to guess. Dated entries are checked exactly against each other;
/// a recurring window through its openings in 2024 (every weekday and day-of-month combination a
/// cron pattern names recurs within a year), at most `OPENINGS_CHECKED` of them, so that the
/// check stays cheap for any spec: it runs at every reconcile.
pub(super) fn check_contradictions(windows: &[Window], calendar: &Calendar) -> Result<(), Error> {
    // Nothing can contradict without a floor above some ceiling.
    if !a_floor_exceeds_a_ceiling(windows, calendar) {
        return Ok(());
    }
    let budget = Budget::new(windows);
    let bounds = bounds_in_force(windows, calendar, &budget)?;
    for (fi, floor) in bounds.iter().enumerate() {
        for (ci, ceiling) in bounds.iter().enumerate() {
            let (Some(lo), Some(hi)) = (floor.min, ceiling.max) else {
                continue;
            };
            if fi == ci || lo <= hi {
                continue;
            }
            if let Some(at) = overlap(floor, ceiling, calendar, &budget)? {
                return Err(contradiction(floor, ceiling, lo, hi, at));
            }
        }
    }
    Ok(())
}

/// Whether the highest floor any window or event sets is above the lowest ceiling any sets: if
/// not, no pair can contradict, and no schedule need be searched.
fn a_floor_exceeds_a_ceiling(windows: &[Window], calendar: &Calendar) -> bool {
    let (lowest_ceiling, highest_floor) = (
        windows
            .iter()
            .filter_map(|w| w.max_replicas)
            .chain(calendar.events.iter().filter_map(|e| e.max_replicas))
            .min(),
        windows
            .iter()
            .filter_map(|w| w.min_replicas)
            .chain(calendar.events.iter().filter_map(|e| e.min_replicas))
            .max(),
    );
    matches!((highest_floor, lowest_ceiling), (Some(f), Some(c)) if f > c)
}

/// Every floor and ceiling with when it is in force: the recurring windows that set one, through
/// their openings (searched within `budget`), then the calendar's events.
fn bounds_in_force<'a>(
    windows: &'a [Window],
    calendar: &'a Calendar,
    budget: &Budget<'_>,
) -> Result<Vec<Bound<'a>>, Error> {
    let involved = |min: Option<u32>, max: Option<u32>| min.is_some() || max.is_some();
    let mut bounds: Vec<Bound<'_>> = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        if involved(w.min_replicas, w.max_replicas) {
            bounds.push(Bound {
                field: format!("spec.peakWindows[{i}]"),
                name: &w.name,
                min: w.min_replicas,
                max: w.max_replicas,
                intervals: openings(w, budget)?,
                window: Some(w),
            });
        }
    }
    for (i, e) in calendar.events.iter().enumerate() {
        bounds.push(Bound {
            field: e
                .origin
                .clone()
                .unwrap_or_else(|| format!("spec.calendar.events[{i}]")),
            name: &e.when.name,
            min: e.min_replicas,
            max: e.max_replicas,
            intervals: vec![(e.when.start, e.when.end)],
            window: None,
        });
    }
    Ok(bounds)
}

/// An instant at which `floor` and `ceiling` are both in force, if there is one: through a
/// recurring window's own arithmetic where the listed openings would not show it, through the
/// listed intervals otherwise.
fn overlap(
    floor: &Bound<'_>,
    ceiling: &Bound<'_>,
    calendar: &Calendar,
    budget: &Budget<'_>,
) -> Result<Option<DateTime<Utc>>, Error> {
    // A dated entry against a recurring window: the window's own arithmetic over the
    // entry's span, exact in any year.
    // Exclusions switch a window's floor off, never a ceiling.
    Ok(match (floor.window, ceiling.window) {
        (Some(w), None) => overlap_in(w, &ceiling.intervals, Some(calendar), budget)?,
        (None, Some(w)) => overlap_in(w, &floor.intervals, None, budget)?,
        // A window opening more often than `OPENINGS_CHECKED` times a year against a
        // sparser one: the frequent one's arithmetic over each of the other's openings.
        (Some(f), Some(_)) if floor.intervals.len() >= OPENINGS_CHECKED => {
            overlap_in(f, &ceiling.intervals, Some(calendar), budget)?
        }
        (Some(_), Some(c)) if ceiling.intervals.len() >= OPENINGS_CHECKED => {
            overlap_in(c, &floor.intervals, None, budget)?
        }
        _ => first_overlap(&floor.intervals, &ceiling.intervals),
    })
}

/// The first instant of `intervals` at which `w` is open (`dated_overlap`), if any.
fn overlap_in(
    w: &Window,
    intervals: &[Interval],
    calendar: Option<&Calendar>,
    budget: &Budget<'_>,
) -> Result<Option<DateTime<Utc>>, Error> {
    // The pairs' window arithmetic, beyond the openings listed above, counts against the same
    // budget: a spec crafted with many frequent windows must stay cheap.
    intervals.iter().try_fold(None, |found, &i| match found {
        Some(at) => Ok(Some(at)),
        None => dated_overlap(w, i, calendar, budget),
    })
}

/// The error naming the floor, the ceiling it contradicts and an instant at which both are in
/// force, so that the SRE can see which to move.
fn contradiction(
    floor: &Bound<'_>,
    ceiling: &Bound<'_>,
    lo: u32,
    hi: u32,
    at: DateTime<Utc>,
) -> Error {
    invalid(
        format!("{}.minReplicas", floor.field),
        format!(
            "{} ({lo}) is in force while {} ({}) caps replicas at {hi}, e.g. at {}: \
             lower the floor, raise the ceiling, or move one of them",
            floor.name,
            ceiling.name,
            ceiling.field,
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    )
}

/// An instant of `[start, end)` at which `w` is open, if there is one; with `calendar`, through
/// an opening outside its exclusions (a floor's window is off in them). At most
/// `OPENINGS_CHECKED` openings are looked at.
fn dated_overlap(
    w: &Window,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    calendar: Option<&Calendar>,
    budget: &Budget<'_>,
) -> Result<Option<DateTime<Utc>>, Error> {
    budget.check()?;
    let excluded = |t: DateTime<Utc>| calendar.is_some_and(|c| c.exclusion_at(t).is_some());
    let first = if w.is_open(start) {
        w.opening_before(start)
    } else {
        w.opening_after(start)
    };
    let Some(mut opening) = first else {
        return Ok(None);
    };
    for _ in 0..OPENINGS_CHECKED {
        if opening >= end {
            return Ok(None);
        }
        if !excluded(opening) {
            return Ok(Some(opening.max(start)));
        }
        budget.check()?;
        let Some(next) = w.opening_after(opening) else {
            return Ok(None);
        };
        opening = next;
    }
    Ok(None)
}
