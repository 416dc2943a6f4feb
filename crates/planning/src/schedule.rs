//! What the schedule asks for at an instant: the recurring peak windows and the calendar's
//! dated events give floors (asked for a lead time ahead, since replicas take that long to be
//! ready) and ceilings (in force while open); the calendar's exclusions switch peak windows off.
//!
//! Cron arithmetic, including daylight-saving transitions, is croner's (it follows the Open Cron
//! Pattern Specification and Vixie cron): a fixed-time schedule whose time is skipped by a
//! spring-forward runs right after the jump, and one whose time repeats at a fall-back runs once.
//! This module only adds the window semantics on top of what `api` parsed.

use chrono::{DateTime, Duration, Utc};

use prescaler_api::{Calendar, Window};

/// Who asks for a floor or a ceiling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    PeakWindow(String),
    Event(String),
}

impl Source {
    pub fn name(&self) -> &str {
        match self {
            Source::PeakWindow(n) | Source::Event(n) => n,
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::PeakWindow(n) => write!(f, "peak window {n:?}"),
            Source::Event(n) => write!(f, "event {n:?}"),
        }
    }
}

/// The floor the schedule asks for, and who asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFloor {
    pub source: Source,
    pub min_replicas: u32,
}

/// The ceiling the schedule sets, and who sets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledCap {
    pub source: Source,
    pub max_replicas: u32,
}

/// A quiet window (a peak window or an event with `minReplicas: 0`) in force: the workload may
/// be scaled to zero until `until`, less the lead time it takes to wake it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroWindow {
    pub source: Source,
    /// When it closes (the end of the window's opening, or of the event).
    pub until: DateTime<Utc>,
}

/// What the schedule asks for at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// The highest floor among the windows and events in force within the lead time.
    pub floor: Option<ScheduledFloor>,
    /// The lowest ceiling among the windows and events in force now.
    pub cap: Option<ScheduledCap>,
    /// The calendar exclusion in force now, which switches the peak windows off.
    pub excluded: Option<String>,
    /// The quiet window in force now that stays open longest, if any (`zero_window`).
    pub zero: Option<ZeroWindow>,
}

/// The quiet window (`minReplicas: 0`) open at `now` that closes last, if any: a peak window
/// open through an opening outside every exclusion, with `now` outside them too (as a floor, a
/// window's `minReplicas` does not apply on an excluded day: an odd day is no day to switch a
/// workload off on the routine's word), or an event under way. Of several, the one that closes
/// last: the workload may stay at zero while any allows it.
pub fn zero_window(
    windows: &[Window],
    calendar: &Calendar,
    now: DateTime<Utc>,
) -> Option<ZeroWindow> {
    let usual = |t: DateTime<Utc>| calendar.exclusion_at(t).is_none();
    windows
        .iter()
        .filter(|w| w.scale_to_zero && usual(now))
        .filter_map(|w| {
            let until = w.open_until(now)?;
            w.opening_before(now).filter(|t| usual(*t))?;
            Some(ZeroWindow {
                source: Source::PeakWindow(w.name.clone()),
                until,
            })
        })
        .chain(
            calendar
                .events
                .iter()
                .filter(|e| e.scale_to_zero && e.when.contains(now))
                .map(|e| ZeroWindow {
                    source: Source::Event(e.when.name.clone()),
                    until: e.when.end,
                }),
        )
        .fold(None, |best: Option<ZeroWindow>, z| match best {
            Some(b) if b.until >= z.until => Some(b),
            _ => Some(z),
        })
}

/// Whether a peak window's floor is asked for at `now`: the window is open now through an
/// opening outside every exclusion, with `now` itself outside them (peak windows' floors do not
/// apply during an exclusion), or it opens within `[now, now + lead]` outside every exclusion
/// (so a window opening right after an exclusion is prepared for during its last lead time).
fn window_floor_applies(
    w: &Window,
    calendar: &Calendar,
    now: DateTime<Utc>,
    lead: Duration,
) -> bool {
    let usual = |t: DateTime<Utc>| calendar.exclusion_at(t).is_none();
    let open_now = w.is_open(now) && usual(now) && w.opening_before(now).is_some_and(usual);
    open_now
        || w.opening_after(now)
            .filter(|t| now.checked_add_signed(lead).is_some_and(|end| *t <= end))
            .is_some_and(usual)
}

/// What the windows and the calendar ask for at `now`, floors looking `lead` ahead.
///
/// Exclusions switch peak windows' floors off, not ceilings: a cost cap or a freeze holds on a
/// holiday too. A ceiling about to end gives way to a higher floor asked for in its last lead
/// time, so that the floor is ready when it opens (validation refuses a floor and a lower
/// ceiling in force at the same instant, so this is the only way they meet).
pub fn scheduled(
    windows: &[Window],
    calendar: &Calendar,
    now: DateTime<Utc>,
    lead: Duration,
) -> Scheduled {
    let excluded = calendar.exclusion_at(now).map(|x| x.name.clone());
    let end = now.checked_add_signed(lead).unwrap_or(now);
    let floors = windows
        .iter()
        .filter_map(|w| Some((w.min_replicas?, w)))
        .filter(|(_, w)| window_floor_applies(w, calendar, now, lead))
        .map(|(min, w)| (min, Source::PeakWindow(w.name.clone())))
        .chain(calendar.events.iter().filter_map(|e| {
            (e.when.meets(now, end))
                .then_some((e.min_replicas?, Source::Event(e.when.name.clone())))
        }));
    // The first of equal floors: the order they are written in.
    let floor = floors
        .fold(None::<(u32, Source)>, |best, (m, s)| match best {
            Some((b, _)) if b >= m => best,
            _ => Some((m, s)),
        })
        .map(|(min_replicas, source)| ScheduledFloor {
            source,
            min_replicas,
        });
    // Each ceiling in force, and when it ends.
    let caps = windows
        .iter()
        .filter_map(|w| Some((w.max_replicas?, w)))
        .filter_map(|(max, w)| {
            let until = w
                .opening_before(now)?
                .checked_add_signed(w.duration)
                .filter(|until| now < *until)?;
            Some((max, until, Source::PeakWindow(w.name.clone())))
        })
        .chain(calendar.events.iter().filter_map(|e| {
            e.when.contains(now).then_some((
                e.max_replicas?,
                e.when.end,
                Source::Event(e.when.name.clone()),
            ))
        }))
        .filter(|(max, until, _)| {
            !floor
                .as_ref()
                .is_some_and(|f| f.min_replicas > *max && *until <= end)
        });
    let cap = caps
        .fold(None::<(u32, Source)>, |best, (m, _, s)| match best {
            Some((b, _)) if b <= m => best,
            _ => Some((m, s)),
        })
        .map(|(max_replicas, source)| ScheduledCap {
            source,
            max_replicas,
        });
    Scheduled {
        floor,
        cap,
        excluded,
        zero: zero_window(windows, calendar, now),
    }
}

/// The event with the largest `loadMultiplier` above 1 under way or starting within
/// `[now, now + lead]`, and that multiplier.
pub fn surge_within(
    calendar: &Calendar,
    now: DateTime<Utc>,
    lead: Duration,
) -> Option<(&str, f64)> {
    let end = now.checked_add_signed(lead).unwrap_or(now);
    calendar
        .events
        .iter()
        .filter(|e| e.when.meets(now, end))
        .filter_map(|e| {
            Some((
                e.when.name.as_str(),
                e.load_multiplier.filter(|m| *m > 1.0)?,
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The highest floor a window, or an event that meets `[now, now + horizon]`, can ask for: how
/// far ahead the scale-up rules must start to reach it. (A past or distant event's floor must
/// not make every window's floor be asked for early.)
pub fn highest_floor(
    windows: &[Window],
    calendar: &Calendar,
    now: DateTime<Utc>,
    horizon: Duration,
) -> u32 {
    let end = now.checked_add_signed(horizon).unwrap_or(now);
    windows
        .iter()
        .filter_map(|w| w.min_replicas)
        .chain(
            calendar
                .events
                .iter()
                .filter(|e| e.when.meets(now, end))
                .filter_map(|e| e.min_replicas),
        )
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prescaler_api::PeakWindow;

    fn window(schedule: &str, duration: &str, tz: &str) -> Window {
        let mut spec = prescaler_api::PredictiveScalerSpec::new(1.0, 100);
        spec.peak_windows = vec![PeakWindow {
            name: "peak".into(),
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: tz.into(),
            min_replicas: Some(10),
            max_replicas: None,
        }];
        spec.validate().unwrap().peak_windows.remove(0)
    }

    fn floor(w: &[Window], at: DateTime<Utc>, lead: Duration) -> Option<ScheduledFloor> {
        scheduled(w, &Calendar::default(), at, lead).floor
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekday_window_in_local_time() {
        let w = window("0 11 * * 1-5", "3h", "Europe/Berlin");
        // Monday 2026-01-12, CET = UTC+1: the window is 10:00Z..13:00Z.
        assert!(!w.is_open(utc("2026-01-12T09:59:00Z")));
        assert!(w.is_open(utc("2026-01-12T10:00:00Z")));
        assert!(w.is_open(utc("2026-01-12T12:59:00Z")));
        assert!(!w.is_open(utc("2026-01-12T13:00:00Z")));
        // Saturday: closed.
        assert!(!w.is_open(utc("2026-01-17T10:30:00Z")));
        // In summer (CEST = UTC+2) the same local time is an hour earlier in UTC.
        assert!(!w.is_open(utc("2026-07-13T08:59:00Z")));
        assert!(w.is_open(utc("2026-07-13T09:00:00Z")));
        assert!(w.is_open(utc("2026-07-13T11:59:00Z")));
        assert!(!w.is_open(utc("2026-07-13T12:00:00Z")));
    }

    #[test]
    fn floor_is_asked_for_lead_time_before_opening() {
        let w = vec![window("0 11 * * 1-5", "3h", "Europe/Berlin")];
        let lead = Duration::minutes(6);
        assert_eq!(floor(&w, utc("2026-01-12T09:53:00Z"), lead), None);
        assert_eq!(
            floor(&w, utc("2026-01-12T09:54:00Z"), lead).map(|f| f.min_replicas),
            Some(10)
        );
        assert_eq!(floor(&w, utc("2026-01-12T13:00:00Z"), lead), None);
    }

    #[test]
    fn spring_forward_window_at_a_skipped_time_opens_after_the_jump() {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:30 local does not exist.
        let w = window("30 2 * * *", "1h", "Europe/Berlin");
        // It opens at the first valid minute after the gap, 03:00 CEST = 01:00Z, and lasts one hour.
        assert!(!w.is_open(utc("2026-03-29T00:59:00Z")));
        assert!(w.is_open(utc("2026-03-29T01:00:00Z")));
        assert!(w.is_open(utc("2026-03-29T01:59:00Z")));
        assert!(!w.is_open(utc("2026-03-29T02:00:00Z")));
        // The next day it is back at 02:30 CEST = 00:30Z.
        assert!(w.is_open(utc("2026-03-30T00:30:00Z")));
        assert!(!w.is_open(utc("2026-03-30T00:29:00Z")));
    }

    #[test]
    fn window_spanning_the_fall_back_hour_lasts_its_elapsed_duration() {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:00-03:00 repeats.
        // A window opening at 01:30 local (23:30Z the day before, CEST) for 3 hours of elapsed time
        // closes at 02:30Z = 03:30 CET, not at 04:30 wall clock.
        let w = window("30 1 * * *", "3h", "Europe/Berlin");
        assert!(w.is_open(utc("2026-10-24T23:30:00Z")));
        assert!(w.is_open(utc("2026-10-25T01:30:00Z")));
        assert!(w.is_open(utc("2026-10-25T02:29:00Z")));
        assert!(!w.is_open(utc("2026-10-25T02:30:00Z")));
    }

    #[test]
    fn fall_back_window_at_a_repeated_time_opens_once() {
        // 02:30 local happens twice on 2026-10-25 in Berlin: 00:30Z (CEST) and 01:30Z (CET).
        let w = window("30 2 * * *", "30m", "Europe/Berlin");
        assert!(w.is_open(utc("2026-10-25T00:30:00Z")));
        assert!(w.is_open(utc("2026-10-25T00:59:00Z")));
        // The repeated 02:30 does not open it a second time.
        assert!(!w.is_open(utc("2026-10-25T01:30:00Z")));
        assert!(!w.is_open(utc("2026-10-25T01:45:00Z")));
    }

    fn calendar(yaml: &str) -> Calendar {
        let mut spec = prescaler_api::PredictiveScalerSpec::new(1.0, 100);
        spec.calendar = serde_yaml_ng::from_str(yaml).unwrap();
        spec.validate().unwrap().calendar
    }

    #[test]
    fn an_exclusion_on_a_spring_forward_day_switches_the_window_off_for_that_local_day() {
        // 2026-03-29 in Berlin is 23 hours long: 00:00 CET (23:00Z the day before) to 00:00
        // CEST (22:00Z).
        let cal = calendar(
            "{timeZone: Europe/Berlin, exclusions: [{name: easter-prep, date: '2026-03-29'}]}",
        );
        let x = &cal.exclusions[0];
        assert_eq!(x.start, utc("2026-03-28T23:00:00Z"));
        assert_eq!(x.end, utc("2026-03-29T22:00:00Z"));
        let w = vec![window("0 11 * * *", "3h", "Europe/Berlin")];
        let lead = Duration::minutes(6);
        // 11:00 CEST that day is 09:00Z: excluded, no floor.
        let s = scheduled(&w, &cal, utc("2026-03-29T09:30:00Z"), lead);
        assert_eq!(s.floor, None);
        assert_eq!(s.excluded.as_deref(), Some("easter-prep"));
        // The day before (CET) and the day after (CEST) the window holds.
        assert!(
            scheduled(&w, &cal, utc("2026-03-28T10:30:00Z"), lead)
                .floor
                .is_some()
        );
        assert!(
            scheduled(&w, &cal, utc("2026-03-30T09:30:00Z"), lead)
                .floor
                .is_some()
        );
        // Midnight local after the short day: the exclusion is over.
        assert_eq!(cal.exclusion_at(utc("2026-03-29T22:00:00Z")), None);
        assert!(cal.exclusion_at(utc("2026-03-29T21:59:00Z")).is_some());
    }

    #[test]
    fn an_event_spanning_the_fall_back_hour_lasts_its_elapsed_time_and_is_prepared_a_lead_ahead() {
        // 01:30 CEST (23:30Z) to 03:30 CET (02:30Z): three hours of elapsed time, one of them
        // the repeated 02:00–03:00.
        let cal = calendar(
            "{events: [{name: migration, start: '2026-10-25T01:30', end: '2026-10-25T03:30', \
              timeZone: Europe/Berlin, minReplicas: 12, maxReplicas: 20}]}",
        );
        let e = &cal.events[0].when;
        assert_eq!(
            (e.start, e.end),
            (utc("2026-10-24T23:30:00Z"), utc("2026-10-25T02:30:00Z"))
        );
        let lead = Duration::minutes(6);
        let at = |t: &str| scheduled(&[], &cal, utc(t), lead);
        assert_eq!(at("2026-10-24T23:23:00Z").floor, None);
        let early = at("2026-10-24T23:24:00Z");
        assert_eq!(early.floor.map(|f| f.min_replicas), Some(12));
        // The ceiling holds only while the event is under way, not a lead time ahead.
        assert_eq!(early.cap, None);
        let during = at("2026-10-25T02:29:00Z");
        assert_eq!(
            during.floor.map(|f| f.source),
            Some(Source::Event("migration".into()))
        );
        assert_eq!(during.cap.map(|c| c.max_replicas), Some(20));
        assert_eq!(at("2026-10-25T02:30:00Z"), Scheduled::default());
    }

    #[test]
    fn local_times_the_clock_skips_or_repeats_resolve_as_cron_does() {
        // Skipped (spring forward in Berlin, 02:00 → 03:00): the first instant after the jump.
        // Repeated (fall back, 02:30 happens twice): the first of the two.
        let cal = calendar(
            "{timeZone: Europe/Berlin, events: [\
               {name: skipped, start: '2026-03-29T02:30', duration: 1h, minReplicas: 2},\
               {name: repeated, start: '2026-10-25T02:30', duration: 1h, minReplicas: 2}]}",
        );
        assert_eq!(cal.events[0].when.start, utc("2026-03-29T01:00:00Z"));
        assert_eq!(cal.events[1].when.start, utc("2026-10-25T00:30:00Z"));
    }

    #[test]
    fn a_date_in_a_zone_ahead_of_utc_starts_the_day_before_in_utc() {
        // Auckland in December is UTC+13: its Christmas Day begins at 11:00Z on the 24th.
        let cal = calendar(
            "{timeZone: Pacific/Auckland, exclusions: [{name: christmas, date: '2026-12-25'}], \
              events: [{name: boxing-day-sale, start: '2026-12-26', end: '2026-12-26', \
                        loadMultiplier: 3}]}",
        );
        let x = &cal.exclusions[0];
        assert_eq!(
            (x.start, x.end),
            (utc("2026-12-24T11:00:00Z"), utc("2026-12-25T11:00:00Z"))
        );
        // A date alone as the end means the end of that day.
        let e = &cal.events[0].when;
        assert_eq!(
            (e.start, e.end),
            (utc("2026-12-25T11:00:00Z"), utc("2026-12-26T11:00:00Z"))
        );
        let adjust = crate::forecast::Adjustments::new(&cal);
        assert_eq!(adjust.multiplier_at(utc("2026-12-25T10:59:00Z")), 1.0);
        assert_eq!(adjust.multiplier_at(utc("2026-12-25T11:00:00Z")), 3.0);
    }

    #[test]
    fn a_ceiling_holds_while_its_window_is_open_and_the_lowest_wins() {
        let mut quiet = window("0 22 * * *", "8h", "UTC");
        quiet.name = "night".into();
        (quiet.min_replicas, quiet.max_replicas) = (None, Some(4));
        let mut freeze = window("0 23 * * *", "1h", "UTC");
        freeze.name = "freeze".into();
        (freeze.min_replicas, freeze.max_replicas) = (Some(3), Some(3));
        let w = vec![quiet, freeze];
        let lead = Duration::minutes(6);
        let none = Calendar::default();
        // Not a lead time ahead: a ceiling is no reason to scale down early.
        assert_eq!(
            scheduled(&w, &none, utc("2026-01-12T21:57:00Z"), lead).cap,
            None
        );
        let night = scheduled(&w, &none, utc("2026-01-12T22:30:00Z"), lead);
        assert_eq!(night.cap.map(|c| c.max_replicas), Some(4));
        let frozen = scheduled(&w, &none, utc("2026-01-12T23:30:00Z"), lead);
        assert_eq!(
            frozen.cap.map(|c| (c.max_replicas, c.source)),
            Some((3, Source::PeakWindow("freeze".into())))
        );
        assert_eq!(frozen.floor.map(|f| f.min_replicas), Some(3));
        assert_eq!(
            scheduled(&w, &none, utc("2026-01-13T06:00:00Z"), lead).cap,
            None
        );
    }

    #[test]
    fn a_ceiling_about_to_end_gives_way_to_the_floor_that_follows_it() {
        let mut night = window("0 1 * * *", "5h", "UTC");
        night.name = "night".into();
        (night.min_replicas, night.max_replicas) = (None, Some(4));
        let mut morning = window("0 6 * * *", "3h", "UTC");
        morning.name = "morning".into();
        morning.min_replicas = Some(30);
        let w = vec![night, morning];
        let (none, lead) = (Calendar::default(), Duration::minutes(6));
        let at = |t: &str| scheduled(&w, &none, utc(t), lead);
        let still_night = at("2026-01-12T05:53:00Z");
        assert_eq!(still_night.cap.map(|c| c.max_replicas), Some(4));
        assert_eq!(still_night.floor, None);
        // The morning's lead time: its floor, not the night's ceiling, which ends at 06:00.
        let lead_phase = at("2026-01-12T05:54:00Z");
        assert_eq!(lead_phase.floor.map(|f| f.min_replicas), Some(30));
        assert_eq!(lead_phase.cap, None);
    }

    #[test]
    fn a_window_opening_right_after_an_exclusion_is_prepared_for_during_it() {
        let cal = calendar(
            "{exclusions: [{name: maintenance, start: '2026-12-07T06:00:00Z', end: '2026-12-07T09:00:00Z'}]}",
        );
        let w = vec![window("0 9 * * 1-5", "3h", "UTC")];
        let s = scheduled(&w, &cal, utc("2026-12-07T08:54:00Z"), Duration::minutes(6));
        assert_eq!(s.excluded.as_deref(), Some("maintenance"));
        assert_eq!(s.floor.map(|f| f.min_replicas), Some(10));
    }

    #[test]
    fn exclusions_switch_floors_off_but_ceilings_hold() {
        let cal = calendar("{exclusions: [{name: holiday, date: '2026-12-25'}]}");
        let mut cap = window("0 0 * * *", "24h", "UTC");
        (cap.min_replicas, cap.max_replicas) = (None, Some(8));
        let s = scheduled(
            &[cap],
            &cal,
            utc("2026-12-25T12:00:00Z"),
            Duration::minutes(6),
        );
        assert_eq!(s.cap.map(|c| c.max_replicas), Some(8));
    }
}
