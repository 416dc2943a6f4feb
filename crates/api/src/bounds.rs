//! The bounds of every spec value (`Limits`), and the checks against them that the spec's parts
//! share: the top-level fields and the behavior (`validate`), the calendar's dates and events
//! (`calendar`). Neither of those imports the other for them.

use std::str::FromStr;

use chrono::Duration;
use chrono_tz::Tz;

use crate::Error;

/// The bounds of every spec value; the CRD schema carries the same numbers.
pub struct Limits;

impl Limits {
    /// A Deployment's replicas are an int32; no workload needs more than this.
    pub const MAX_REPLICAS: i32 = 100_000;
    /// A PromQL query longer than this is a mistake or an attack, not a load metric.
    pub const MAX_QUERY_LENGTH: usize = 2_048;
    /// Brackets nested deeper than this are refused before parsing: the parser recurses.
    pub const MAX_QUERY_NESTING: usize = 32;
    /// The forecast reads four weekly periods; more history is never used.
    pub const MIN_HISTORY: Duration = Duration::hours(1);
    pub const MAX_HISTORY: Duration = Duration::days(35);
    /// Provisioning for load more than six hours away is not forecasting, it is guessing.
    pub const MIN_LEAD_TIME: Duration = Duration::minutes(1);
    pub const MAX_LEAD_TIME: Duration = Duration::hours(6);
    /// The default lead time (`6m`), and `leadTime: Auto`'s until enough pods have been seen.
    pub const DEFAULT_LEAD_TIME: Duration = Duration::minutes(6);
    /// `spec.metrics`: each is read, forecast and calibrated on its own at every decision.
    pub const MAX_METRICS: usize = 5;
    pub const MAX_PEAK_WINDOWS: usize = 32;
    pub const MIN_WINDOW: Duration = Duration::minutes(1);
    pub const MAX_WINDOW: Duration = Duration::days(7);
    pub const MAX_SCHEDULE_LENGTH: usize = 128;
    pub const MAX_TIME_ZONE_LENGTH: usize = 64;
    pub const MAX_POLICIES: usize = 8;
    /// A Pods policy adding more than this per period is no limit at all.
    pub const MAX_POLICY_PODS: i32 = 100_000;
    pub const MAX_POLICY_PERCENT: i32 = 1_000;
    pub const MAX_EXCLUSIONS: usize = 128;
    pub const MAX_EVENTS: usize = 64;
    /// `2026-11-27T08:00:00.000000000+05:45` is 35 characters.
    pub const MAX_DATE_LENGTH: usize = 40;
    /// The longest exclusion or event: a holiday season, a month-long campaign (31 local days,
    /// plus the hour a DST change adds, with room).
    pub const MAX_DATED_SPAN: Duration = Duration::days(32);
    /// Dated entries are refused outside these years: a typo (`20266-…`, `1026-…`) must not
    /// become an interval no date computation can handle.
    pub const MIN_YEAR: i32 = 2000;
    pub const MAX_YEAR: i32 = 2200;
    /// `.ics` files a calendar may read from ConfigMaps.
    pub const MAX_CONFIG_MAP_CALENDARS: usize = 4;
    /// The most of one `.ics` that is read: a year of a team's holidays and campaigns is a few
    /// KiB; a ConfigMap may hold up to 1 MiB, which would be parsed at every change.
    pub const MAX_ICS_BYTES: usize = 256 * 1024;
    /// The most occurrences one `.ics` may have within the span expanded (see `ics`): the
    /// planner looks at every event at each decision.
    pub const MAX_ICS_OCCURRENCES: usize = 256;
    /// The largest `metric.activationThreshold`: the largest load a sample may carry
    /// (`planning::forecast::MAX_LOAD`); a threshold above it would never be crossed.
    pub const MAX_ACTIVATION_THRESHOLD: f64 = 1e15;
}

pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

pub(crate) fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, Error> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("must be between {min} and {max}, is {value}"),
        ));
    }
    Ok(value)
}

/// An IANA time zone by name; the error names `field`.
pub(crate) fn parse_time_zone(field: &str, name: &str) -> Result<Tz, Error> {
    if name.len() > Limits::MAX_TIME_ZONE_LENGTH {
        return Err(invalid(field, "is too long"));
    }
    Tz::from_str(name).map_err(|_| {
        invalid(
            field,
            format!("{name:?} is not an IANA time zone name (like Europe/Berlin or UTC)"),
        )
    })
}

/// An optional replica bound of a window or an event.
pub(crate) fn parse_bound(field: &str, value: Option<i32>) -> Result<Option<u32>, Error> {
    value
        .map(|v| check_range(field, v, 1, Limits::MAX_REPLICAS).map(|v| v as u32))
        .transpose()
}

/// A floor and a ceiling of a peak window or a dated event, where `minReplicas: 0` allows the
/// workload to be scaled to zero while the entry is in force (quiet hours) instead of setting a
/// floor: `(floor, ceiling, allows zero)`. The floor is `None` when it is 0: a floor of 0 asks
/// for nothing, and the planner reads the zero from the flag alone.
pub(crate) fn parse_bounds_or_zero(
    field: &str,
    min: Option<i32>,
    max: Option<i32>,
) -> Result<(Option<u32>, Option<u32>, bool), Error> {
    let zero = min == Some(0);
    let min = min.filter(|m| *m != 0);
    let (floor, ceiling) = parse_bounds(field, min, max)?;
    Ok((floor, ceiling, zero))
}

/// A floor and a ceiling of one window or event: at least one, and the floor not above the
/// ceiling.
pub(crate) fn parse_bounds(
    field: &str,
    min: Option<i32>,
    max: Option<i32>,
) -> Result<(Option<u32>, Option<u32>), Error> {
    let min_replicas = parse_bound(&format!("{field}.minReplicas"), min)?;
    let max_replicas = parse_bound(&format!("{field}.maxReplicas"), max)?;
    if let (Some(lo), Some(hi)) = (min_replicas, max_replicas)
        && lo > hi
    {
        return Err(invalid(
            format!("{field}.minReplicas"),
            format!("{lo} exceeds the same entry's maxReplicas {hi}"),
        ));
    }
    Ok((min_replicas, max_replicas))
}
