//! An iCalendar (`.ics`, RFC 5545) text from a ConfigMap (`spec.calendar.configMapRefs[]`)
//! turned into the calendar's exclusions or events, within a bounded span.
//!
//! `icalendar`'s parser reads the text (line folding, components, properties, parameters);
//! `rrule` expands each VEVENT's RRULE, RDATE and EXDATE. What is read here:
//! - `DTSTART` and `DTEND` or `DURATION`: in UTC (`…Z`), with a `TZID` naming an IANA zone, as a
//!   floating local time, or as a DATE (an all-day event: its local days, 23 or 25 hours on a DST
//!   change). Floating times and dates are in the reference's `timeZone`, else the calendar's.
//!   Local times the clock skips or repeats follow the calendar's rule (`calendar`). A DATE with
//!   no end is one day; a time with no end is refused (an instant cannot be left out or
//!   prepared for).
//! - `RRULE` (several are a union), `RDATE`, `EXDATE`; a VEVENT with a `RECURRENCE-ID` replaces
//!   that occurrence of its series (same `UID`), and with `STATUS:CANCELLED` removes it; a
//!   cancelled series is left out whole.
//! - `SUMMARY` names each occurrence (in status, `excluded (christmas)`), else the `UID`.
//!
//! Everything else (alarms, attendees, VTODO, VJOURNAL, VTIMEZONE definitions) is ignored: a
//! `TZID` must be an IANA name (`Europe/Berlin`, as Google Calendar and most exports write it);
//! a Windows zone name (`W. Europe Standard Time`) is refused, naming it.
//!
//! Bounded, because a tenant writes the text: `Limits::MAX_ICS_BYTES` of text, components nested
//! at most `MAX_NESTING` deep (the parser recurses), `Limits::MAX_ICS_OCCURRENCES` occurrences in
//! the span expanded, each at most `Limits::MAX_DATED_SPAN` long; and rrule's own limit of
//! iterations per series.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::parser::{Component, Property, read_calendar, unfold};

use crate::bounds::{Limits, invalid, parse_bounds, parse_time_zone};
use crate::calendar::{Dated, Event, resolve_local};
use crate::{CalendarSpec, ConfigMapCalendar, Error, IcsAs, names};

/// Components (VCALENDAR, VEVENT, VALARM, …) nest at most this deep: the parser recurses, and a
/// text of nested `BEGIN:`s would otherwise overflow the operator's stack.
pub const MAX_NESTING: usize = 8;

/// The exclusions and events the `.ics` files add to a calendar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IcsEntries {
    pub exclusions: Vec<Dated>,
    pub events: Vec<Event>,
}

impl IcsEntries {
    /// `2 exclusions and 1 event`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        format!(
            "{} and {}",
            plural(self.exclusions.len(), "exclusion"),
            plural(self.events.len(), "event")
        )
    }
}

/// The static checks of one reference (what needs no ConfigMap): its names, time zone and
/// bounds, and that an exclusion sets no replicas while an event sets some.
pub(crate) fn check_ref(field: &str, r: &ConfigMapCalendar) -> Result<(), Error> {
    let sub = |name: &str| format!("{field}.{name}");
    if !names::is_dns_subdomain(&r.name) {
        return Err(invalid(
            sub("name"),
            format!("{:?} is not a ConfigMap name", shown(&r.name)),
        ));
    }
    if !names::is_config_map_key(&r.key) {
        return Err(invalid(
            sub("key"),
            format!(
                "{:?} is not a ConfigMap key (letters, digits, '-', '_' and '.')",
                shown(&r.key)
            ),
        ));
    }
    if let Some(tz) = &r.time_zone {
        parse_time_zone(&sub("timeZone"), tz)?;
    }
    parse_bounds(field, r.min_replicas, r.max_replicas)?;
    if let Some(m) = r.load_multiplier
        && !(m.is_finite() && (0.05..=100.0).contains(&m))
    {
        return Err(invalid(
            sub("loadMultiplier"),
            format!("must be between 0.05 and 100, is {m}"),
        ));
    }
    let sets_any =
        r.min_replicas.is_some() || r.max_replicas.is_some() || r.load_multiplier.is_some();
    match r.as_ {
        IcsAs::Exclusion if sets_any => Err(invalid(
            sub("minReplicas"),
            "minReplicas, maxReplicas and loadMultiplier are an event's: an exclusion has none",
        )),
        IcsAs::Event if !sets_any => Err(invalid(
            sub("minReplicas"),
            "as: Event needs minReplicas, maxReplicas or loadMultiplier",
        )),
        _ => Ok(()),
    }
}

fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The span the operator (and `kubectl prescaler plan`) expands, around the start of the
/// current UTC day: back far enough for every history the planner reads (`forecast.history` up
/// to 35 days, plus the calibration's replay), ahead for the plan's 24 hours and the longest
/// lead time, with room. Whole days, so that the expanded calendar (and what the planner's
/// record depends on) changes once a day, not at every sync.
pub const SPAN_BEFORE: Duration = Duration::weeks(8);
pub const SPAN_AFTER: Duration = Duration::days(8);

/// The entries of every reference of `calendar`, `texts[i]` being the text of
/// `calendar.configMapRefs[i]`, expanded over `[from, to)`: the occurrences that meet it.
pub fn expand(
    calendar: &CalendarSpec,
    texts: &[&str],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<IcsEntries, Error> {
    let calendar_tz = parse_time_zone("spec.calendar.timeZone", &calendar.time_zone)?;
    let mut entries = IcsEntries::default();
    for (i, (r, text)) in calendar.config_map_refs.iter().zip(texts).enumerate() {
        let field = format!("spec.calendar.configMapRefs[{i}]");
        check_ref(&field, r)?;
        let tz = match &r.time_zone {
            Some(name) => parse_time_zone(&format!("{field}.timeZone"), name)?,
            None => calendar_tz,
        };
        let what = format!("{field} (ConfigMap {}, key {})", r.name, r.key);
        let occurrences = expand_text(&what, text, tz, from, to)?;
        match r.as_ {
            IcsAs::Exclusion => entries.exclusions.extend(occurrences),
            IcsAs::Event => {
                let (min_replicas, max_replicas) =
                    parse_bounds(&field, r.min_replicas, r.max_replicas)?;
                entries
                    .events
                    .extend(occurrences.into_iter().map(|when| Event {
                        origin: Some(format!(
                            "{what}, {:?} at {}",
                            when.name,
                            when.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        )),
                        when,
                        min_replicas,
                        max_replicas,
                        load_multiplier: r.load_multiplier,
                        // An `.ics` reference's minReplicas is at least 1 (its schema): its
                        // occurrences set floors, never a zero.
                        scale_to_zero: false,
                    }));
            }
        }
    }
    entries.exclusions.sort_by_key(|x| x.start);
    Ok(entries)
}

/// The occurrences of one `.ics` text that meet `[from, to)`, sorted by start; errors name
/// `what` (the reference and its ConfigMap).
pub fn expand_text(
    what: &str,
    text: &str,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Dated>, Error> {
    let bad = |message: String| invalid(what, message);
    if text.len() > Limits::MAX_ICS_BYTES {
        return Err(bad(format!(
            "the .ics is {} bytes; at most {} ({} KiB) are read: split it, or drop past years",
            text.len(),
            Limits::MAX_ICS_BYTES,
            Limits::MAX_ICS_BYTES / 1024
        )));
    }
    let unfolded = unfold(text);
    check_nesting(&unfolded).map_err(bad)?;
    let parsed = read_calendar(&unfolded).map_err(|e| {
        bad(format!(
            "is not an iCalendar text: {}",
            e.lines()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(300)
                .collect::<String>()
        ))
    })?;
    let vevents: Vec<&Component<'_>> = parsed
        .components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"))
        .collect();
    let parsed_events = vevents
        .iter()
        .enumerate()
        .map(|(i, c)| read_vevent(i, c, tz).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    // A VEVENT with a RECURRENCE-ID replaces (or, cancelled, removes) one occurrence of the
    // series with its UID: that occurrence is taken out of the series.
    let overridden: Vec<(String, DateTime<Utc>)> = parsed_events
        .iter()
        .filter_map(|e| Some((e.uid.clone()?, e.recurrence_id?)))
        .collect();
    // The series are expanded from before `from` by the longest an occurrence may last, so
    // that one under way at `from` is found.
    let after = from - Limits::MAX_DATED_SPAN;
    let mut out = Vec::new();
    for e in &parsed_events {
        if e.cancelled {
            continue;
        }
        let removed: Vec<DateTime<Utc>> = if e.recurrence_id.is_none() {
            overridden
                .iter()
                .filter(|(uid, _)| Some(uid) == e.uid.as_ref())
                .map(|(_, at)| *at)
                .collect()
        } else {
            Vec::new()
        };
        for start in e.starts(after, to, &removed).map_err(bad)? {
            let end = e.end_for(start);
            if end <= start {
                return Err(bad(format!("VEVENT {:?} ends before it starts", e.name)));
            }
            if end - start > Limits::MAX_DATED_SPAN {
                return Err(bad(format!(
                    "VEVENT {:?} lasts more than {} days",
                    e.name,
                    Limits::MAX_DATED_SPAN.num_days()
                )));
            }
            if end > from && start < to {
                out.push(Dated {
                    name: e.name.clone(),
                    start,
                    end,
                });
            }
            if out.len() > Limits::MAX_ICS_OCCURRENCES {
                return Err(bad(format!(
                    "has more than {} occurrences between {} and {}: use fewer or rarer events",
                    Limits::MAX_ICS_OCCURRENCES,
                    from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
        }
    }
    out.sort_by_key(|d| d.start);
    Ok(out)
}

/// Refuses components nested deeper than `MAX_NESTING`, before the parser recurses into them.
fn check_nesting(unfolded: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for line in unfolded.lines() {
        let upper = line.trim_start().get(..6).map(str::to_ascii_uppercase);
        match upper.as_deref() {
            Some("BEGIN:") => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(format!(
                        "components are nested more than {MAX_NESTING} deep"
                    ));
                }
            }
            Some(s) if s.starts_with("END:") => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// An instant as an `.ics` writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IcsTime {
    /// `VALUE=DATE`: a local day in the reference's zone.
    Date(NaiveDate),
    /// A local time in a zone: a `TZID`'s, or the reference's for a floating time.
    Local(NaiveDateTime, Tz),
    Utc(DateTime<Utc>),
}

impl IcsTime {
    fn instant(self, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            IcsTime::Date(d) => resolve_local(tz, d.and_hms_opt(0, 0, 0)?),
            IcsTime::Local(t, zone) => resolve_local(zone, t),
            IcsTime::Utc(t) => Some(t),
        }
    }
}

/// One VEVENT, read.
struct VEvent {
    name: String,
    uid: Option<String>,
    start: IcsTime,
    /// The start as an instant (a date: its local midnight in the reference's zone).
    start_at: DateTime<Utc>,
    length: Length,
    rrules: Vec<String>,
    rdates: Vec<DateTime<Utc>>,
    exdates: Vec<DateTime<Utc>>,
    recurrence_id: Option<DateTime<Utc>>,
    cancelled: bool,
    /// The reference's zone: an all-day event's days and floating times are in it.
    tz: Tz,
}

/// How long each occurrence lasts.
#[derive(Clone, Copy, Debug)]
enum Length {
    /// Whole local days (an all-day event): 23 or 25 hours across a DST change.
    Days(i64),
    /// Elapsed time.
    Exact(Duration),
}

fn property<'a>(c: &'a Component<'a>, name: &str) -> Option<&'a Property<'a>> {
    c.properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn properties<'a>(c: &'a Component<'a>, name: &'a str) -> impl Iterator<Item = &'a Property<'a>> {
    c.properties
        .iter()
        .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(p: &'a Property<'a>, key: &str) -> Option<&'a str> {
    p.params
        .iter()
        .find(|x| x.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|x| x.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

/// A VEVENT's name: its SUMMARY (unescaped, at most 63 characters, as a spec entry's name),
/// else its UID, else its place in the file.
fn name_of(i: usize, c: &Component<'_>) -> String {
    let summary = property(c, "SUMMARY").map(|p| {
        p.val
            .as_str()
            .replace("\\,", ",")
            .replace("\\;", ";")
            .replace("\\n", " ")
            .replace("\\N", " ")
            .replace("\\\\", "\\")
    });
    let uid = property(c, "UID").map(|p| p.val.as_str().to_string());
    let name = summary
        .filter(|s| !s.trim().is_empty())
        .or(uid)
        .unwrap_or_else(|| format!("vevent-{}", i + 1));
    name.trim().chars().take(63).collect()
}

/// One value of a DTSTART, DTEND, RDATE, EXDATE or RECURRENCE-ID.
fn parse_time(text: &str, prop: &Property<'_>, tz: Tz) -> Result<IcsTime, String> {
    let text = text.trim();
    let is_date = param(prop, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
        || (text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit()));
    if is_date {
        return NaiveDate::parse_from_str(text, "%Y%m%d")
            .map(IcsTime::Date)
            .map_err(|_| format!("{text:?} is not a date (YYYYMMDD)"));
    }
    if let Some(utc) = text.strip_suffix(['Z', 'z']) {
        return NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S")
            .map(|t| IcsTime::Utc(Utc.from_utc_datetime(&t)))
            .map_err(|_| format!("{text:?} is not a time (YYYYMMDDTHHMMSSZ)"));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S")
        .map_err(|_| format!("{text:?} is not a time (YYYYMMDDTHHMMSS)"))?;
    let zone = match param(prop, "TZID") {
        // Some producers write a leading slash (a "globally unique" TZID).
        Some(name) => parse_time_zone("TZID", name.trim_start_matches('/')).map_err(|_| {
            format!(
                "TZID {:?} is not an IANA time zone name (like Europe/Berlin): prescaler reads no VTIMEZONE definitions",
                shown(name)
            )
        })?,
        None => tz,
    };
    Ok(IcsTime::Local(local, zone))
}

/// A property's comma-separated instants (RDATE, EXDATE).
fn parse_times(prop: &Property<'_>, tz: Tz) -> Result<Vec<DateTime<Utc>>, String> {
    prop.val
        .as_str()
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            parse_time(v, prop, tz)?
                .instant(tz)
                .ok_or_else(|| format!("{v:?} cannot be placed in the time zone"))
        })
        .collect()
}

/// An RFC 5545 DURATION (`P1D`, `PT2H30M`, `P1W`): whole days apart (local days for an
/// all-day event), and the rest in elapsed time.
fn parse_duration(text: &str) -> Result<(i64, Duration), String> {
    let bad = || {
        format!(
            "DURATION {:?} is not an iCalendar duration (P1D, PT2H30M, P1W)",
            shown(text)
        )
    };
    let body = text.trim().strip_prefix('+').unwrap_or(text.trim());
    let body = body.strip_prefix('P').ok_or_else(bad)?;
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut days = 0i64;
    let mut rest = Duration::zero();
    let mut take = |part: &str, units: &[(char, i64)], days_part: bool| -> Result<(), String> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let n: i64 = number.parse().map_err(|_| bad())?;
            // Bounded before multiplying: at most the longest an occurrence may last.
            if n > 100_000 {
                return Err(bad());
            }
            number.clear();
            let (_, seconds) = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
            if days_part {
                days += n * seconds;
            } else {
                rest += Duration::seconds(n * seconds);
            }
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    take(date_part, &[('W', 7), ('D', 1)], true)?;
    if let Some(t) = time_part {
        take(t, &[('H', 3600), ('M', 60), ('S', 1)], false)?;
    }
    Ok((days, rest))
}

fn read_vevent(i: usize, c: &Component<'_>, tz: Tz) -> Result<VEvent, String> {
    let name = name_of(i, c);
    let at = |m: String| format!("VEVENT {name:?}: {m}");
    let dtstart = property(c, "DTSTART").ok_or_else(|| at("has no DTSTART".into()))?;
    let start = parse_time(dtstart.val.as_str(), dtstart, tz).map_err(at)?;
    let start_at = start
        .instant(tz)
        .ok_or_else(|| at("its DTSTART cannot be placed in the time zone".into()))?;
    let length = match (property(c, "DTEND"), property(c, "DURATION")) {
        (Some(end), _) => {
            let end = parse_time(end.val.as_str(), end, tz).map_err(at)?;
            match (start, end) {
                (IcsTime::Date(s), IcsTime::Date(e)) => Length::Days((e - s).num_days()),
                _ => Length::Exact(
                    end.instant(tz)
                        .ok_or_else(|| at("its DTEND cannot be placed in the time zone".into()))?
                        - start_at,
                ),
            }
        }
        (None, Some(d)) => {
            let (days, rest) = parse_duration(d.val.as_str()).map_err(at)?;
            match start {
                IcsTime::Date(_) if rest.is_zero() => Length::Days(days),
                _ => Length::Exact(Duration::days(days) + rest),
            }
        }
        (None, None) => match start {
            // RFC 5545: an all-day VEVENT without an end lasts its day.
            IcsTime::Date(_) => Length::Days(1),
            _ => {
                return Err(at(
                    "has a DTSTART time but no DTEND or DURATION: an instant cannot be left out or prepared for"
                        .into(),
                ));
            }
        },
    };
    let times = |key: &'static str| -> Result<Vec<DateTime<Utc>>, String> {
        let mut all = Vec::new();
        for p in properties(c, key) {
            all.extend(parse_times(p, tz).map_err(at)?);
        }
        Ok(all)
    };
    let recurrence_id = match property(c, "RECURRENCE-ID") {
        Some(p) => Some(
            parse_time(p.val.as_str(), p, tz)
                .map_err(at)?
                .instant(tz)
                .ok_or_else(|| at("its RECURRENCE-ID cannot be placed in the time zone".into()))?,
        ),
        None => None,
    };
    Ok(VEvent {
        uid: property(c, "UID").map(|p| p.val.as_str().to_string()),
        cancelled: property(c, "STATUS")
            .is_some_and(|p| p.val.as_str().trim().eq_ignore_ascii_case("CANCELLED")),
        rrules: properties(c, "RRULE")
            .map(|p| p.val.as_str().to_string())
            .collect(),
        rdates: times("RDATE")?,
        exdates: times("EXDATE")?,
        recurrence_id,
        tz,
        name,
        start,
        start_at,
        length,
    })
}

impl VEvent {
    /// The starts of the occurrences in `[after, before)`, less `removed`.
    fn starts(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        removed: &[DateTime<Utc>],
    ) -> Result<Vec<DateTime<Utc>>, String> {
        let at = |m: String| format!("VEVENT {:?}: {m}", self.name);
        let kept = |t: &DateTime<Utc>| !removed.contains(t) && !self.exdates.contains(t);
        if self.rrules.is_empty() {
            let mut all: Vec<_> = std::iter::once(self.start_at)
                .chain(self.rdates.iter().copied())
                .filter(|t| kept(t) && *t >= after && *t < before)
                .collect();
            all.sort();
            all.dedup();
            return Ok(all);
        }
        // rrule works in the zone of DTSTART: local times then recur at the same wall-clock
        // time across DST changes, as RFC 5545 asks.
        let zone = match self.start {
            IcsTime::Utc(_) => rrule::Tz::UTC,
            IcsTime::Local(_, zone) => rrule::Tz::Tz(zone),
            IcsTime::Date(_) => rrule::Tz::Tz(self.zone_of_date()),
        };
        let dt_start = self.start_at.with_timezone(&zone);
        let mut set = rrule::RRuleSet::new(dt_start);
        for text in &self.rrules {
            let text = utc_until(text, self.start, self.zone_of_date()).map_err(at)?;
            let rule: rrule::RRule<rrule::Unvalidated> = text
                .parse()
                .map_err(|e: rrule::RRuleError| at(format!("RRULE {:?}: {e}", shown(&text))))?;
            let rule = rule
                .validate(dt_start)
                .map_err(|e| at(format!("RRULE {:?}: {e}", shown(&text))))?;
            set = set.rrule(rule);
        }
        for t in &self.rdates {
            set = set.rdate(t.with_timezone(&zone));
        }
        let result = set
            .after(after.with_timezone(&zone))
            .before(before.with_timezone(&zone))
            .all(u16::try_from(Limits::MAX_ICS_OCCURRENCES + 1).unwrap_or(u16::MAX));
        if result.limited {
            return Err(at(format!(
                "recurs more than {} times between {} and {}, or too often to expand: use fewer or rarer occurrences",
                Limits::MAX_ICS_OCCURRENCES,
                after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        Ok(result
            .dates
            .into_iter()
            .map(|t| t.with_timezone(&Utc))
            // `before` is inclusive in rrule; the span is not.
            .filter(|t| kept(t) && *t < before)
            .collect())
    }

    /// The zone an all-day event's days are in: the one its start was placed in.
    fn zone_of_date(&self) -> Tz {
        match self.start {
            IcsTime::Local(_, zone) => zone,
            _ => self.tz,
        }
    }

    /// The end of the occurrence starting at `start`.
    fn end_for(&self, start: DateTime<Utc>) -> DateTime<Utc> {
        let tz = self.tz;
        match self.length {
            Length::Exact(d) => start + d,
            Length::Days(days) => {
                let local = start.with_timezone(&tz).date_naive() + Duration::days(days);
                local
                    .and_hms_opt(0, 0, 0)
                    .and_then(|t| resolve_local(tz, t))
                    .unwrap_or(start + Duration::days(days))
            }
        }
    }
}

/// An RRULE with its UNTIL in UTC, as rrule requires beside a zoned DTSTART (RFC 5545 asks the
/// same, but all-day calendars commonly write `UNTIL=20261231`): a date means the end of that
/// local day (every occurrence starting on it is kept), a floating time a local one.
fn utc_until(rule: &str, start: IcsTime, tz: Tz) -> Result<String, String> {
    let parts: Vec<String> = rule
        .split(';')
        .map(|part| {
            let Some((key, value)) = part.split_once('=') else {
                return Ok(part.to_string());
            };
            if !key.trim().eq_ignore_ascii_case("UNTIL") || value.ends_with(['Z', 'z']) {
                return Ok(part.to_string());
            }
            let zone = match start {
                IcsTime::Local(_, zone) => zone,
                _ => tz,
            };
            let until = if value.len() == 8 {
                NaiveDate::parse_from_str(value, "%Y%m%d")
                    .ok()
                    .and_then(|d| d.succ_opt()?.and_hms_opt(0, 0, 0))
                    .and_then(|t| resolve_local(zone, t))
                    .map(|t| t - Duration::seconds(1))
            } else {
                NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S")
                    .ok()
                    .and_then(|t| resolve_local(zone, t))
            };
            let until =
                until.ok_or_else(|| format!("UNTIL {:?} is not a date or time", shown(value)))?;
            Ok(format!("UNTIL={}", until.format("%Y%m%dT%H%M%SZ")))
        })
        .collect::<Result<_, String>>()?;
    Ok(parts.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    /// `(name, start, end)` in RFC 3339 UTC, as the assertions read.
    fn spans(all: &[Dated]) -> Vec<(String, String, String)> {
        let f = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        all.iter()
            .map(|d| (d.name.clone(), f(d.start), f(d.end)))
            .collect()
    }

    fn owned(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    const HOLIDAYS: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//test//EN\r\n\
BEGIN:VEVENT\r\n\
UID:xmas@example\r\n\
SUMMARY:Christmas\\, first day\r\n\
DTSTART;VALUE=DATE:20241225\r\n\
DTEND;VALUE=DATE:20241226\r\n\
RRULE:FREQ=YEARLY;UNTIL=20271225\r\n\
EXDATE;VALUE=DATE:20261225\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:summer@example\r\n\
SUMMARY:Summer shutdown\r\n\
DTSTART;VALUE=DATE:20260727\r\n\
DURATION:P2D\r\n\
BEGIN:VALARM\r\n\
ACTION:DISPLAY\r\n\
TRIGGER:-PT15M\r\n\
END:VALARM\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    /// All-day events are their local days (23 or 25 hours across DST, here none), a yearly
    /// RRULE with a DATE UNTIL recurs through that date, an EXDATE removes its year, a
    /// DURATION in days counts local days, and only what meets the span is kept.
    #[test]
    fn all_day_events_recur_yearly_less_their_exdates() {
        let got = expand_text(
            "x",
            HOLIDAYS,
            berlin(),
            utc("2025-06-01T00:00:00Z"),
            utc("2028-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            spans(&got),
            owned(&[
                (
                    "Christmas, first day",
                    "2025-12-24T23:00:00Z",
                    "2025-12-25T23:00:00Z"
                ),
                (
                    "Summer shutdown",
                    "2026-07-26T22:00:00Z",
                    "2026-07-28T22:00:00Z"
                ),
                (
                    "Christmas, first day",
                    "2027-12-24T23:00:00Z",
                    "2027-12-25T23:00:00Z"
                ),
            ])
        );
    }

    /// A weekly event with a TZID keeps its wall-clock time across the spring-forward (08:00Z
    /// in winter, 07:00Z in summer), its EXDATE (written in UTC) removes one, a RECURRENCE-ID
    /// moves one and a cancelled RECURRENCE-ID removes another.
    #[test]
    fn a_zoned_weekly_series_keeps_its_local_time_and_its_exceptions() {
        let text = "BEGIN:VCALENDAR\n\
BEGIN:VEVENT\n\
UID:standup\n\
SUMMARY:Release\n\
DTSTART;TZID=Europe/Berlin:20260305T090000\n\
DTEND;TZID=Europe/Berlin:20260305T110000\n\
RRULE:FREQ=WEEKLY;COUNT=6\n\
EXDATE:20260312T080000Z\n\
END:VEVENT\n\
BEGIN:VEVENT\n\
UID:standup\n\
SUMMARY:Release (moved)\n\
RECURRENCE-ID;TZID=Europe/Berlin:20260319T090000\n\
DTSTART;TZID=Europe/Berlin:20260320T140000\n\
DTEND;TZID=Europe/Berlin:20260320T150000\n\
END:VEVENT\n\
BEGIN:VEVENT\n\
UID:standup\n\
RECURRENCE-ID;TZID=Europe/Berlin:20260402T090000\n\
DTSTART;TZID=Europe/Berlin:20260402T090000\n\
DTEND;TZID=Europe/Berlin:20260402T110000\n\
STATUS:CANCELLED\n\
END:VEVENT\n\
END:VCALENDAR\n";
        let got = expand_text(
            "x",
            text,
            "UTC".parse().unwrap(),
            utc("2026-03-01T00:00:00Z"),
            utc("2026-05-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            spans(&got),
            owned(&[
                ("Release", "2026-03-05T08:00:00Z", "2026-03-05T10:00:00Z"),
                (
                    "Release (moved)",
                    "2026-03-20T13:00:00Z",
                    "2026-03-20T14:00:00Z"
                ),
                ("Release", "2026-03-26T08:00:00Z", "2026-03-26T10:00:00Z"),
                ("Release", "2026-04-09T07:00:00Z", "2026-04-09T09:00:00Z"),
            ])
        );
    }

    /// An occurrence under way at the span's start is kept; floating times are in the
    /// reference's zone.
    #[test]
    fn an_occurrence_under_way_at_the_start_is_kept() {
        let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:migration\n\
DTSTART:20260301T220000\nDTEND:20260303T060000\nEND:VEVENT\nEND:VCALENDAR\n";
        let got = expand_text(
            "x",
            text,
            berlin(),
            utc("2026-03-02T00:00:00Z"),
            utc("2026-03-10T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            spans(&got),
            owned(&[("migration", "2026-03-01T21:00:00Z", "2026-03-03T05:00:00Z")])
        );
    }

    fn error(text: &str) -> String {
        expand_text(
            "spec.calendar.configMapRefs[0] (ConfigMap h, key h.ics)",
            text,
            berlin(),
            utc("2026-01-01T00:00:00Z"),
            utc("2027-01-01T00:00:00Z"),
        )
        .unwrap_err()
        .to_string()
    }

    /// Each bound is refused with a message that names it and the reference.
    #[test]
    fn what_is_too_large_nested_or_frequent_is_refused_naming_the_bound() {
        let big = format!(
            "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
            "X-FILLER:0123456789abcdef0123456789abcdef0123456789abcdef\n".repeat(5000)
        );
        let e = error(&big);
        assert!(
            e.contains("configMapRefs[0]") && e.contains("256 KiB"),
            "{e}"
        );

        let deep = format!("{}{}", "BEGIN:X\n".repeat(5000), "END:X\n".repeat(5000));
        let e = error(&deep);
        assert!(e.contains("nested more than 8"), "{e}");

        let hourly = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:tick\nDTSTART:20260101T000000Z\n\
DTEND:20260101T001000Z\nRRULE:FREQ=HOURLY\nEND:VEVENT\nEND:VCALENDAR\n";
        let e = error(hourly);
        assert!(e.contains("more than 256"), "{e}");

        let windows = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\n\
DTSTART;TZID=W. Europe Standard Time:20260101T090000\nDTEND:20260101T100000Z\n\
END:VEVENT\nEND:VCALENDAR\n";
        let e = error(windows);
        assert!(
            e.contains("W. Europe Standard Time") && e.contains("IANA"),
            "{e}"
        );

        let instant = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nDTSTART:20260101T090000Z\n\
END:VEVENT\nEND:VCALENDAR\n";
        assert!(error(instant).contains("no DTEND or DURATION"));

        assert!(
            error("hello").contains("not an iCalendar text"),
            "{}",
            error("hello")
        );
    }

    fn reference(as_: IcsAs, min: Option<i32>) -> ConfigMapCalendar {
        ConfigMapCalendar {
            name: "campaigns".into(),
            key: "sale.ics".into(),
            as_,
            time_zone: None,
            min_replicas: min,
            max_replicas: None,
            load_multiplier: None,
        }
    }

    /// An Event reference's occurrences carry its replicas; the spec with them is checked
    /// against the peak windows like its own events, the error naming the ConfigMap.
    #[test]
    fn event_occurrences_carry_the_reference_bounds_and_are_checked_against_ceilings() {
        let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Flash sale\n\
DTSTART:20260310T010000Z\nDURATION:PT3H\nEND:VEVENT\nEND:VCALENDAR\n";
        let mut spec = crate::PredictiveScalerSpec::new(10.0, 50);
        spec.calendar
            .config_map_refs
            .push(reference(IcsAs::Event, Some(30)));
        let entries = expand(
            &spec.calendar,
            &[text],
            utc("2026-03-01T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(entries.events.len(), 1);
        assert_eq!(entries.events[0].min_replicas, Some(30));
        assert_eq!(entries.summary(), "0 exclusions and 1 event");
        let validated = spec.validate().unwrap();
        let merged = validated.with_ics(&entries).unwrap();
        assert_eq!(merged.calendar.events.len(), 1);

        // A nightly ceiling of 10 from 00:00 to 04:00 meets the sale's floor of 30.
        spec.peak_windows
            .push(serde_json_like_window("night", "0 0 * * *", "4h", 10));
        let validated = spec.validate().unwrap();
        let e = validated.with_ics(&entries).unwrap_err().to_string();
        assert!(
            e.contains("ConfigMap campaigns, key sale.ics") && e.contains("night"),
            "{e}"
        );
    }

    fn serde_json_like_window(
        name: &str,
        schedule: &str,
        duration: &str,
        max: i32,
    ) -> crate::PeakWindow {
        crate::PeakWindow {
            name: name.into(),
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: "UTC".into(),
            min_replicas: None,
            max_replicas: Some(max),
        }
    }

    /// The static checks: an exclusion sets no replicas, an event sets some.
    #[test]
    fn a_reference_says_replicas_only_for_events() {
        let mut spec = crate::PredictiveScalerSpec::new(10.0, 50);
        spec.calendar
            .config_map_refs
            .push(reference(IcsAs::Exclusion, Some(3)));
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("configMapRefs[0].minReplicas"), "{e}");
        spec.calendar.config_map_refs[0] = reference(IcsAs::Event, None);
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("as: Event needs"), "{e}");
        spec.calendar.config_map_refs[0] = reference(IcsAs::Exclusion, None);
        spec.calendar.config_map_refs[0].name = "../other".into();
        assert!(spec.validate().is_err());
    }
}
