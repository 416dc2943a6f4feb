//! The calendar's `.ics` files (`spec.calendar.configMapRefs[]`): read from ConfigMaps of the
//! scaler's own namespace, expanded over a bounded span (`ics::expand`), merged into the
//! validated spec, and told in the `CalendarAvailable` condition.
//!
//! Light at 10,000 scalers: the ConfigMaps are read (one GET each, within the API timeout) when
//! the spec changes and otherwise at most every `Settings::calendar_reread` (5 minutes) per
//! scaler, never at every sync; and expanded again only when a ConfigMap's `resourceVersion`,
//! the spec or the day changed. A cluster-wide watch of ConfigMaps was rejected: it would hold
//! every ConfigMap of the cluster (certificates, dashboards, whole configuration files) in the
//! operator's memory to serve the few that are calendars.
//!
//! A ConfigMap that is missing, too large, unreadable or whose `.ics` is refused never scales
//! anything down: the calendar last read from it stays in force (in this process), else the
//! spec's own calendar is used alone; `CalendarAvailable=False` says which, with an Event.

use std::time::Instant;

use chrono::{DateTime, Duration, DurationRound, Utc};
use kube::ResourceExt;

use crate::adapters::kubernetes::{self, ConfigMapText};
use crate::api::ics::{self, IcsEntries, SPAN_AFTER, SPAN_BEFORE};
use crate::api::{Limits, PredictiveScaler, ValidatedSpec};
use crate::operator::conditions::{self, Finding};

use super::context::Context;
use super::locked;

/// What the last read of one scaler's ConfigMaps left.
pub(super) struct CalendarMemo {
    generation: Option<i64>,
    read_at: Instant,
    /// Each ConfigMap's `resourceVersion` and the day, as of the last expansion.
    made_from: Option<(Vec<Option<String>>, DateTime<Utc>)>,
    /// The last entries that expanded and merged: in force while a later read fails.
    good: Option<IcsEntries>,
    merged: ValidatedSpec,
    finding: Finding,
}

/// Why the ConfigMaps' calendar is not (or no longer) what they hold now.
struct Problem {
    reason: &'static str,
    message: String,
}

/// `spec` with the scaler's `.ics` files merged in, and the `CalendarAvailable` finding (none
/// when the spec names no ConfigMap and the status shows none).
pub(super) async fn with_calendar_files(
    ps: &PredictiveScaler,
    ctx: &Context,
    spec: ValidatedSpec,
    now: DateTime<Utc>,
) -> (ValidatedSpec, Option<Finding>) {
    let uid = ps.uid().unwrap_or_default();
    let refs = &ps.spec.calendar.config_map_refs;
    if refs.is_empty() {
        locked(&ctx.calendars).remove(&uid);
        // Its ConfigMaps dropped from the spec: a CalendarAvailable=False must not linger.
        let shown = ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::CALENDAR_AVAILABLE && c.status == "False")
        });
        return (
            spec,
            shown.then(|| {
                Finding::new(
                    conditions::CALENDAR_AVAILABLE,
                    true,
                    "NoConfigMaps",
                    "spec.calendar.configMapRefs names no ConfigMap",
                )
            }),
        );
    }
    let generation = ps.metadata.generation;
    let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    {
        let memos = locked(&ctx.calendars);
        if let Some(memo) = memos.get(&uid)
            && memo.generation == generation
            && memo.read_at.elapsed() < ctx.settings.calendar_reread
            && memo.made_from.as_ref().is_none_or(|(_, d)| *d == day)
        {
            return (memo.merged.clone(), Some(memo.finding.clone()));
        }
    }
    let previous = locked(&ctx.calendars).remove(&uid);
    let reread = ctx.settings.calendar_reread;
    let namespace = ps.namespace().unwrap_or_default();
    let read = read_all(ctx, &namespace, ps).await;
    let same_generation = previous.as_ref().filter(|m| m.generation == generation);
    let memo = match read {
        Ok((texts, versions)) => {
            let made_from = Some((versions, day));
            match same_generation.filter(|m| m.made_from == made_from) {
                // Nothing changed since the last expansion: no parse.
                Some(m) => CalendarMemo {
                    generation,
                    read_at: Instant::now(),
                    made_from,
                    good: m.good.clone(),
                    merged: m.merged.clone(),
                    finding: m.finding.clone(),
                },
                None => {
                    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let expanded = ics::expand(
                        &ps.spec.calendar,
                        &texts,
                        day - SPAN_BEFORE,
                        day + SPAN_AFTER,
                    )
                    .and_then(|entries| spec.with_ics(&entries).map(|m| (entries, m)));
                    match expanded {
                        Ok((entries, merged)) => CalendarMemo {
                            generation,
                            read_at: Instant::now(),
                            made_from,
                            finding: loaded(ps, &entries, day),
                            good: Some(entries),
                            merged,
                        },
                        Err(e) => failed(
                            &spec,
                            generation,
                            previous.as_ref(),
                            reread,
                            Problem {
                                reason: "InvalidCalendar",
                                message: e.to_string(),
                            },
                        ),
                    }
                }
            }
        }
        Err(problem) => failed(&spec, generation, previous.as_ref(), reread, problem),
    };
    let out = (memo.merged.clone(), Some(memo.finding.clone()));
    locked(&ctx.calendars).insert(uid, memo);
    out
}

/// `CalendarAvailable=True`: what was read, over which span.
fn loaded(ps: &PredictiveScaler, entries: &IcsEntries, day: DateTime<Utc>) -> Finding {
    let names: Vec<String> = ps
        .spec
        .calendar
        .config_map_refs
        .iter()
        .map(|r| format!("{}/{}", r.name, r.key))
        .collect();
    let date = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    Finding::new(
        conditions::CALENDAR_AVAILABLE,
        true,
        "Loaded",
        format!(
            "{} from ConfigMap {} between {} and {}",
            entries.summary(),
            names.join(", "),
            date(day - SPAN_BEFORE),
            date(day + SPAN_AFTER)
        ),
    )
}

/// After a failed read or expansion: the last good entries stay in force if they still merge
/// with this spec, else the spec's own calendar alone.
fn failed(
    spec: &ValidatedSpec,
    generation: Option<i64>,
    previous: Option<&CalendarMemo>,
    reread: std::time::Duration,
    problem: Problem,
) -> CalendarMemo {
    let kept = previous.and_then(|m| m.good.as_ref()).and_then(|good| {
        spec.with_ics(good)
            .ok()
            .map(|merged| (good.clone(), merged))
    });
    let (good, merged, then) = match kept {
        Some((good, merged)) => {
            let then = format!(
                "the calendar last read from it stays in force ({})",
                good.summary()
            );
            (Some(good), merged, then)
        }
        None => (
            None,
            spec.clone(),
            "the spec's own calendar is used without it".to_string(),
        ),
    };
    CalendarMemo {
        generation,
        read_at: Instant::now(),
        // The next successful read expands again.
        made_from: None,
        good,
        merged,
        finding: Finding::new(
            conditions::CALENDAR_AVAILABLE,
            false,
            problem.reason,
            format!(
                "{}; {then}; read again within {}",
                problem.message,
                crate::api::format_duration(Duration::from_std(reread).unwrap_or_default())
            ),
        ),
    }
}

/// Every reference's text and its ConfigMap's `resourceVersion`, or the first problem.
async fn read_all(
    ctx: &Context,
    namespace: &str,
    ps: &PredictiveScaler,
) -> Result<(Vec<String>, Vec<Option<String>>), Problem> {
    let mut texts = Vec::new();
    let mut versions = Vec::new();
    for (i, r) in ps.spec.calendar.config_map_refs.iter().enumerate() {
        let field = format!("spec.calendar.configMapRefs[{i}]");
        let which = format!("ConfigMap {} in namespace {namespace}", r.name);
        match kubernetes::config_map_text(&ctx.client, namespace, &r.name, &r.key).await {
            Ok(ConfigMapText::Found {
                text,
                resource_version,
            }) => {
                if text.len() > Limits::MAX_ICS_BYTES {
                    return Err(Problem {
                        reason: "ConfigMapTooLarge",
                        message: format!(
                            "{field}: key {} of {which} holds {} bytes; at most {} ({} KiB) are read",
                            r.key,
                            text.len(),
                            Limits::MAX_ICS_BYTES,
                            Limits::MAX_ICS_BYTES / 1024
                        ),
                    });
                }
                texts.push(text);
                versions.push(resource_version);
            }
            Ok(ConfigMapText::NotFound) => {
                return Err(Problem {
                    reason: "ConfigMapNotFound",
                    message: format!("{field}: {which} does not exist"),
                });
            }
            Ok(ConfigMapText::NoKey { in_binary }) => {
                return Err(Problem {
                    reason: "KeyNotFound",
                    message: format!(
                        "{field}: {which} has no key {} in data{}",
                        r.key,
                        if in_binary {
                            " (it is in binaryData: put the .ics text in data)"
                        } else {
                            ""
                        }
                    ),
                });
            }
            Err(e) if e.is_forbidden() => {
                return Err(Problem {
                    reason: "Forbidden",
                    message: format!(
                        "{field}: reading {which}: {e}: prescaler's service account needs get on configmaps (the chart grants it)"
                    ),
                });
            }
            Err(e) => {
                return Err(Problem {
                    reason: "ReadFailed",
                    message: format!("{field}: reading {which}: {e}"),
                });
            }
        }
    }
    Ok((texts, versions))
}
