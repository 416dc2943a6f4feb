//! Peak windows: a cron schedule in an IANA time zone opens a window of fixed elapsed duration
//! that holds a replica floor.
//!
//! Cron arithmetic, including daylight-saving transitions, is croner's (it follows the Open Cron
//! Pattern Specification and Vixie cron): a fixed-time schedule whose time is skipped by a
//! spring-forward runs right after the jump, and one whose time repeats at a fall-back runs once.
//! This module only adds the window semantics on top of the windows `api` parsed.

use chrono::{DateTime, Duration, Utc};

use crate::api::Window;

/// The floor a window asks for, and which window asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFloor {
    pub window: String,
    pub min_replicas: u32,
}

/// Whether the window is open at `at`: the latest opening at or before `at` is less than
/// `duration` ago. (The latest opening also closes last, so earlier ones need no look.)
pub fn is_open(window: &Window, at: DateTime<Utc>) -> bool {
    match window
        .cron
        .find_previous_occurrence(&at.with_timezone(&window.time_zone), true)
    {
        Ok(start) => start
            .with_timezone(&Utc)
            .checked_add_signed(window.duration)
            .is_some_and(|end| at < end),
        Err(_) => false,
    }
}

/// Whether the window is open at any instant of `[from, from + lead]`.
pub fn is_open_within(window: &Window, from: DateTime<Utc>, lead: Duration) -> bool {
    if is_open(window, from) {
        return true;
    }
    match window
        .cron
        .find_next_occurrence(&from.with_timezone(&window.time_zone), false)
    {
        Ok(next) => from
            .checked_add_signed(lead)
            .is_some_and(|end| next.with_timezone(&Utc) <= end),
        Err(_) => false,
    }
}

/// The highest floor among the windows that are open at some instant of `[now, now + lead]`:
/// replicas take the lead time to become ready, so a floor is asked for that long before it opens.
pub fn floor(windows: &[Window], now: DateTime<Utc>, lead: Duration) -> Option<ScheduledFloor> {
    windows
        .iter()
        .filter(|w| is_open_within(w, now, lead))
        .max_by_key(|w| w.min_replicas)
        .map(|w| ScheduledFloor {
            window: w.name.clone(),
            min_replicas: w.min_replicas,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PeakWindow;

    fn window(schedule: &str, duration: &str, tz: &str) -> Window {
        let mut spec = crate::api::PredictiveScalerSpec::new(1.0, 100);
        spec.peak_windows = vec![PeakWindow {
            name: "peak".into(),
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: tz.into(),
            min_replicas: 10,
        }];
        spec.validate().unwrap().peak_windows.remove(0)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekday_window_in_local_time() {
        let w = window("0 11 * * 1-5", "3h", "Europe/Berlin");
        // Monday 2026-01-12, CET = UTC+1: the window is 10:00Z..13:00Z.
        assert!(!is_open(&w, utc("2026-01-12T09:59:00Z")));
        assert!(is_open(&w, utc("2026-01-12T10:00:00Z")));
        assert!(is_open(&w, utc("2026-01-12T12:59:00Z")));
        assert!(!is_open(&w, utc("2026-01-12T13:00:00Z")));
        // Saturday: closed.
        assert!(!is_open(&w, utc("2026-01-17T10:30:00Z")));
        // In summer (CEST = UTC+2) the same local time is an hour earlier in UTC.
        assert!(!is_open(&w, utc("2026-07-13T08:59:00Z")));
        assert!(is_open(&w, utc("2026-07-13T09:00:00Z")));
        assert!(is_open(&w, utc("2026-07-13T11:59:00Z")));
        assert!(!is_open(&w, utc("2026-07-13T12:00:00Z")));
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
        assert!(!is_open(&w, utc("2026-03-29T00:59:00Z")));
        assert!(is_open(&w, utc("2026-03-29T01:00:00Z")));
        assert!(is_open(&w, utc("2026-03-29T01:59:00Z")));
        assert!(!is_open(&w, utc("2026-03-29T02:00:00Z")));
        // The next day it is back at 02:30 CEST = 00:30Z.
        assert!(is_open(&w, utc("2026-03-30T00:30:00Z")));
        assert!(!is_open(&w, utc("2026-03-30T00:29:00Z")));
    }

    #[test]
    fn window_spanning_the_fall_back_hour_lasts_its_elapsed_duration() {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:00-03:00 repeats.
        // A window opening at 01:30 local (23:30Z the day before, CEST) for 3 hours of elapsed time
        // closes at 02:30Z = 03:30 CET, not at 04:30 wall clock.
        let w = window("30 1 * * *", "3h", "Europe/Berlin");
        assert!(is_open(&w, utc("2026-10-24T23:30:00Z")));
        assert!(is_open(&w, utc("2026-10-25T01:30:00Z")));
        assert!(is_open(&w, utc("2026-10-25T02:29:00Z")));
        assert!(!is_open(&w, utc("2026-10-25T02:30:00Z")));
    }

    #[test]
    fn fall_back_window_at_a_repeated_time_opens_once() {
        // 02:30 local happens twice on 2026-10-25 in Berlin: 00:30Z (CEST) and 01:30Z (CET).
        let w = window("30 2 * * *", "30m", "Europe/Berlin");
        assert!(is_open(&w, utc("2026-10-25T00:30:00Z")));
        assert!(is_open(&w, utc("2026-10-25T00:59:00Z")));
        // The repeated 02:30 does not open it a second time.
        assert!(!is_open(&w, utc("2026-10-25T01:30:00Z")));
        assert!(!is_open(&w, utc("2026-10-25T01:45:00Z")));
    }
}
