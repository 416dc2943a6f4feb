//! Peak windows: a cron schedule in an IANA time zone opens a window of fixed elapsed duration
//! that holds a replica floor.
//!
//! Cron arithmetic, including daylight-saving transitions, is croner's (it follows the Open Cron
//! Pattern Specification and Vixie cron): a fixed-time schedule whose time is skipped by a
//! spring-forward runs right after the jump, and one whose time repeats at a fall-back runs once.
//! This module only adds the window semantics on top.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds},
};

use crate::{Error, api::PeakWindow};

/// A parsed peak window.
#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    cron: Cron,
    time_zone: Tz,
    duration: chrono::Duration,
    pub min_replicas: u32,
}

/// The floor a window asks for, and which window asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledFloor {
    pub window: String,
    pub min_replicas: u32,
}

impl Window {
    /// Parses one `spec.peakWindows[i]` entry; `field` names it in errors.
    pub fn parse(field: &str, spec: &PeakWindow) -> Result<Self, Error> {
        let invalid = |sub: &str, message: String| Error::InvalidSpec {
            field: format!("{field}.{sub}"),
            message,
        };
        let time_zone = Tz::from_str(&spec.time_zone).map_err(|_| {
            invalid(
                "timeZone",
                format!(
                    "{:?} is not an IANA time zone name (like Europe/Berlin or UTC)",
                    spec.time_zone
                ),
            )
        })?;
        // Five fields, as in a Kubernetes CronJob: seconds would only invite confusion here.
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(&spec.schedule)
            .map_err(|e| {
                invalid(
                    "schedule",
                    format!(
                        "{:?} is not a cron expression (minute hour day-of-month month day-of-week): {e}",
                        spec.schedule
                    ),
                )
            })?;
        // A pattern like `0 0 30 2 *` parses but never fires; refuse it rather than wait forever.
        let reference = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        if cron
            .find_next_occurrence(&reference.with_timezone(&time_zone), true)
            .is_err()
        {
            return Err(invalid(
                "schedule",
                format!("{:?} never fires", spec.schedule),
            ));
        }
        let duration = crate::api::parse_duration(&format!("{field}.duration"), &spec.duration)?;
        if duration.is_zero() {
            return Err(invalid("duration", "must be longer than 0".into()));
        }
        if spec.min_replicas < 1 {
            return Err(invalid("minReplicas", "must be at least 1".into()));
        }
        Ok(Self {
            name: spec.name.clone(),
            cron,
            time_zone,
            duration: chrono::Duration::from_std(duration)
                .map_err(|_| invalid("duration", "is too long".into()))?,
            min_replicas: spec.min_replicas as u32,
        })
    }

    /// Whether the window is open at `at`: the latest opening at or before `at` is less than
    /// `duration` ago. (The latest opening also closes last, so earlier ones need no look.)
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        match self
            .cron
            .find_previous_occurrence(&at.with_timezone(&self.time_zone), true)
        {
            Ok(start) => at < start.with_timezone(&Utc) + self.duration,
            Err(_) => false,
        }
    }

    /// Whether the window is open at any instant of `[from, from + lead]`.
    pub fn is_open_within(&self, from: DateTime<Utc>, lead: chrono::Duration) -> bool {
        if self.is_open(from) {
            return true;
        }
        match self
            .cron
            .find_next_occurrence(&from.with_timezone(&self.time_zone), false)
        {
            Ok(next) => next.with_timezone(&Utc) <= from + lead,
            Err(_) => false,
        }
    }
}

/// The highest floor among the windows that are open at some instant of `[now, now + lead]`:
/// replicas take the lead time to become ready, so a floor is asked for that long before it opens.
pub fn floor(
    windows: &[Window],
    now: DateTime<Utc>,
    lead: chrono::Duration,
) -> Option<ScheduledFloor> {
    windows
        .iter()
        .filter(|w| w.is_open_within(now, lead))
        .max_by_key(|w| w.min_replicas)
        .map(|w| ScheduledFloor {
            window: w.name.clone(),
            min_replicas: w.min_replicas,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: &str, tz: &str) -> Window {
        Window::parse(
            "spec.peakWindows[0]",
            &PeakWindow {
                name: "peak".into(),
                schedule: schedule.into(),
                duration: duration.into(),
                time_zone: tz.into(),
                min_replicas: 10,
            },
        )
        .unwrap()
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
        let lead = chrono::Duration::minutes(6);
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

    #[test]
    fn invalid_windows_name_the_field() {
        let base = PeakWindow {
            name: "x".into(),
            schedule: "0 11 * * 1-5".into(),
            duration: "1h".into(),
            time_zone: "UTC".into(),
            min_replicas: 3,
        };
        let err = |w: PeakWindow| {
            Window::parse("spec.peakWindows[2]", &w)
                .unwrap_err()
                .to_string()
        };
        let e = err(PeakWindow {
            time_zone: "Mars/Olympus".into(),
            ..base.clone()
        });
        assert!(e.contains("spec.peakWindows[2].timeZone"), "{e}");
        let e = err(PeakWindow {
            schedule: "61 * * * *".into(),
            ..base.clone()
        });
        assert!(e.contains("spec.peakWindows[2].schedule"), "{e}");
        let e = err(PeakWindow {
            schedule: "0 0 30 2 *".into(),
            ..base.clone()
        });
        assert!(e.contains("never fires"), "{e}");
        let e = err(PeakWindow {
            duration: "soon".into(),
            ..base.clone()
        });
        assert!(e.contains("spec.peakWindows[2].duration"), "{e}");
    }
}
