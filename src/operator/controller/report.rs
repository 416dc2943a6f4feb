//! **report**: status (written when what an SRE acts on changed, its figures at most every
//! `Settings::status_refresh`), conditions, Events (at most one per
//! condition news in ten minutes) and metrics.

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use crate::Result;
use crate::adapters::kubernetes::{self, FloorObject, call};
use crate::api::{PlanStatus, PredictiveScaler, PredictiveScalerStatus, SavingsStatus};
use crate::operator::conditions::{self, Finding};
use crate::operator::event_filter::EventKey;
use crate::planning::plan::Decision;
use crate::planning::several::MetricFigures;

use super::context::Context;
use super::locked;

/// The field manager of prescaler's status writes (server-side apply).
pub(super) const FIELD_MANAGER: &str = "prescaler";

/// A decision to publish, with the workload's replica count and when it was scaled.
pub(super) struct Decided<'a> {
    pub(super) decision: &'a Decision,
    pub(super) current: u32,
    pub(super) scaled_at: Option<DateTime<Utc>>,
    /// `status.leadTime`, with `leadTime: Auto`.
    pub(super) lead_time: Option<crate::api::LeadTimeStatus>,
    /// The plan in brief (`status.plan`).
    pub(super) plan: Option<&'a PlanStatus>,
    /// Against the HPA on the same live metric (`status.savings`); `None` until a minute has
    /// been counted.
    pub(super) savings: Option<&'a SavingsStatus>,
    /// With several metrics, what each proposed (`status.metrics`); empty with one.
    pub(super) metrics: &'a [MetricFigures],
}

/// The status this reconcile found: the decision's figures (or none, when it decided nothing)
/// and the conditions.
pub(super) fn new_status(
    ps: &PredictiveScaler,
    decided: Option<&Decided<'_>>,
    findings: &[Finding],
    now: DateTime<Utc>,
) -> (PredictiveScalerStatus, Vec<Finding>) {
    let previous = ps.status.clone().unwrap_or_default();
    let time = Time(k8s_openapi::jiff::Timestamp::from_second(now.timestamp()).unwrap_or_default());
    let (conditions, changed) = conditions::merge(
        &previous.conditions,
        findings,
        ps.metadata.generation,
        &time,
    );
    let mut status = PredictiveScalerStatus {
        observed_generation: ps.metadata.generation,
        conditions,
        last_scale_time: previous.last_scale_time.clone(),
        ..Default::default()
    };
    if let Some(d) = decided {
        conditions::record_decision(&mut status, d.decision, d.current);
        status.lead_time = d.lead_time.clone();
        if let Some(t) = d.scaled_at {
            status.last_scale_time = Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        status.plan = d.plan.cloned();
        status.savings = d.savings.cloned();
        status.metrics = conditions::metric_statuses(d.metrics);
    } else {
        // No decision this time (refused, paused, an error): the days counted so far stay, as
        // the last scale time does; they come back into the account when it runs again.
        status.savings = previous.savings.clone();
    }
    (status, changed)
}

/// The longest condition message the API server takes (`metav1.Condition`'s maxLength).
const MAX_CONDITION_MESSAGE: usize = 32 * 1024;

/// The longest Event note `events.k8s.io/v1` takes (1 KiB); a longer one is refused whole.
const MAX_EVENT_NOTE: usize = 1024;

/// Cuts `text` to at most `max` bytes, on a character boundary, ending in `…` when cut.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ellipsis);
}

/// What an SRE acts on in a status: the generation seen, the replica counts asked for and in
/// force, the schedule, the lead time in use, the last scale, each condition's status and
/// reason, and the plan's next peak and highest step. Everything else is a figure (the forecast
/// load and its replicas, the calibration, the plan's other steps, condition messages) that
/// moves with the minute's load. So are the decision's `reason` and, with several metrics, its
/// `decidingMetric` while the count stands: with a count unchanged they only say which term
/// (and metric) the count now rests on, and the reason turned over between
/// `Forecast` and `Stabilized` every few minutes as the forecast dipped under the count and back
/// (a quarter of the scalers a minute in the operator benchmark, none of them scaled). They are
/// written with the count that they explain, and a reason that matters without a new count is a
/// condition too (`Hold`: `MetricsAvailable=False`).
struct Material<'a> {
    generation: Option<i64>,
    replicas: [Option<i32>; 4],
    schedule: Option<&'a str>,
    lead_time: Option<i64>,
    last_scale_time: Option<&'a str>,
    conditions: Vec<(&'a str, &'a str, &'a str)>,
    plan_held: Option<bool>,
    next_peak: Option<(&'a str, i32)>,
    plan_max: Option<i32>,
}

impl Material<'_> {
    /// The first part that differs from `other`, named as `prescaler_status_writes_total`'s
    /// `cause` label names it.
    fn first_difference(&self, other: &Self) -> Option<&'static str> {
        [
            ("generation", self.generation != other.generation),
            ("replicas", self.replicas != other.replicas),
            ("schedule", self.schedule != other.schedule),
            ("lead_time", self.lead_time != other.lead_time),
            ("last_scale", self.last_scale_time != other.last_scale_time),
            ("conditions", self.conditions != other.conditions),
            (
                "plan",
                (self.plan_held, self.next_peak, self.plan_max)
                    != (other.plan_held, other.next_peak, other.plan_max),
            ),
        ]
        .into_iter()
        .find_map(|(part, differs)| differs.then_some(part))
    }
}

fn material(s: &PredictiveScalerStatus) -> Material<'_> {
    Material {
        generation: s.observed_generation,
        replicas: [
            s.current_replicas,
            s.desired_replicas,
            s.scheduled_min_replicas,
            s.scheduled_max_replicas,
        ],
        schedule: s.schedule.as_deref(),
        lead_time: s.lead_time.as_ref().map(|l| l.seconds),
        last_scale_time: s.last_scale_time.as_deref(),
        conditions: s
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect(),
        plan_held: s.plan.as_ref().map(|p| p.held),
        next_peak: s
            .plan
            .as_ref()
            .and_then(|p| p.next_peak.as_ref())
            .map(|n| (n.at.as_str(), n.replicas)),
        plan_max: s
            .plan
            .as_ref()
            .and_then(|p| p.max.as_ref())
            .map(|m| m.replicas),
    }
}

/// `status` without what moves with every minute counted against the HPA: its days and the
/// end of its span, which ride along with writes made for other reasons (a restart loses at
/// most the minutes since the last write). Its summary, rounded, is a figure like any other.
fn quiet(status: &PredictiveScalerStatus) -> std::borrow::Cow<'_, PredictiveScalerStatus> {
    match &status.savings {
        None => std::borrow::Cow::Borrowed(status),
        Some(savings) => {
            let mut quiet = status.clone();
            quiet.savings = Some(SavingsStatus {
                days: Vec::new(),
                through: String::new(),
                ..savings.clone()
            });
            std::borrow::Cow::Owned(quiet)
        }
    }
}

/// Whether a status that differs from the one last seen is written now, and why (the `cause`
/// label of `prescaler_status_writes_total`): at once when what an SRE acts on changed
/// (`material`, named by the part that changed) or nothing was written yet by this process
/// (`first`), otherwise (figures only) once `refresh` has passed since this process last wrote
/// it (`refresh`). With a thousand scalers a status that moved with every minute's load was a
/// write a minute each; the API server, and every watcher of PredictiveScalers, paid for figures
/// nobody acts on within minutes.
pub(super) fn status_write_due(
    seen: Option<&PredictiveScalerStatus>,
    new: &PredictiveScalerStatus,
    last_written: Option<Instant>,
    refresh: StdDuration,
    now: Instant,
) -> Option<&'static str> {
    let Some(seen) = seen else {
        return Some("first");
    };
    if quiet(seen) == quiet(new) {
        return None;
    }
    if let Some(part) = material(seen).first_difference(&material(new)) {
        return Some(part);
    }
    match last_written {
        None => Some("first"),
        Some(at) if now.saturating_duration_since(at) >= refresh => Some("refresh"),
        Some(_) => None,
    }
}

/// `Settings::status_refresh` for one scaler: up to a tenth more, by its uid, so that scalers
/// that started together do not refresh together.
fn refresh_for(uid: &str, refresh: StdDuration) -> StdDuration {
    let spread = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    refresh + refresh.mul_f64(f64::from(spread) / 10_000.0)
}

/// Writes the status when it changed (server-side apply: fields this reconcile did not set are
/// removed) and `status_write_due` says so, and an Event for every condition whose status or
/// reason changed.
#[tracing::instrument(skip_all)]
pub(super) async fn write_status(
    ps: &PredictiveScaler,
    ctx: &Context,
    decided: Option<Decided<'_>>,
    mut findings: Vec<Finding>,
    now: DateTime<Utc>,
) -> Result<()> {
    // One writer: a replica that may no longer lead writes nothing, not even status.
    if !ctx.may_write(ps) {
        return Ok(());
    }
    // A message may carry what another system said (Prometheus' error text, megabytes of it from
    // a hostile or broken one): a condition holds at most what the API server takes.
    for f in &mut findings {
        truncate(&mut f.message, MAX_CONDITION_MESSAGE);
    }
    let (status, changed) = new_status(ps, decided.as_ref(), &findings, now);
    let uid = ps.uid().unwrap_or_default();
    let last_written = locked(&ctx.status_written).get(&uid).copied();
    let refresh = refresh_for(&uid, ctx.settings.status_refresh);
    let due = status_write_due(
        ps.status.as_ref(),
        &status,
        last_written,
        refresh,
        Instant::now(),
    );
    if let Some(cause) = due {
        patch_status(ps, ctx, &status, cause).await?;
        locked(&ctx.status_written).insert(uid, Instant::now());
    }
    tell_news(ps, ctx, changed).await;
    Ok(())
}

/// The status written by server-side apply, as prescaler's field manager.
async fn patch_status(
    ps: &PredictiveScaler,
    ctx: &Context,
    status: &PredictiveScalerStatus,
    cause: &'static str,
) -> Result<()> {
    let api: Api<PredictiveScaler> =
        Api::namespaced(ctx.client.clone(), &ps.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "prescaler.dev/v1alpha1",
        "kind": "PredictiveScaler",
        "status": status,
    });
    call(
        "writing status",
        api.patch_status(
            &ps.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        ),
    )
    .await?;
    ctx.metrics.status_written(cause);
    Ok(())
}

/// An Event for each condition in `changed` that is news: a problem, a recovery from one, or a
/// limit reached; at most one per condition, status and reason in ten minutes (`event_filter`).
async fn tell_news(ps: &PredictiveScaler, ctx: &Context, changed: Vec<Finding>) {
    let previous = ps
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    for f in changed {
        // A first healthy condition is not news; a problem, or a recovery from one, is.
        let recovered = previous
            .iter()
            .any(|c| c.type_ == f.type_ && conditions::is_problem(&c.type_, c.status == "True"));
        if !(f.is_warning() || recovered || f.type_ == conditions::SCALING_LIMITED && f.status) {
            continue;
        }
        let key = EventKey {
            scaler: ps.uid().unwrap_or_default(),
            condition: f.type_.to_string(),
            status: f.status,
            reason: f.reason.clone(),
        };
        if !locked(&ctx.told).admit(key, Instant::now()) {
            // Told within the last ten minutes: the condition says it; the Event would not.
            continue;
        }
        let kind = if f.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let note = format!("{}: {}", f.type_, f.message);
        publish(ctx, ps, kind, &f.reason, note).await;
    }
}

pub(super) async fn publish(
    ctx: &Context,
    ps: &PredictiveScaler,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_about(ctx, ps, type_, reason, note, None).await;
}

/// An Event about a floor, naming the HPA or ScaledObject that carries it as its `related`
/// object: the Event's identity (kube-runtime's recorder folds Events of one object, reason and
/// related object into a series, keeping the first note) then tells two holders apart.
pub(super) async fn publish_floor(
    ctx: &Context,
    ps: &PredictiveScaler,
    reason: &str,
    holder: &FloorObject,
    note: String,
) {
    let related = holder.object_ref(&ps.namespace().unwrap_or_default());
    publish_about(ctx, ps, EventType::Normal, reason, note, Some(related)).await;
}

pub(super) async fn publish_about(
    ctx: &Context,
    ps: &PredictiveScaler,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<k8s_openapi::api::core::v1::ObjectReference>,
) {
    // An Event is a write too: a replica past its renew deadline records nothing.
    if !ctx.may_write(ps) {
        return;
    }
    let mut note = note;
    truncate(&mut note, MAX_EVENT_NOTE);
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: related,
    };
    let sent = tokio::time::timeout(
        kubernetes::API_TIMEOUT,
        ctx.recorder.publish(&event, &ps.object_ref(&())),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        // An Event is information, not state: failing to record one must not stop scaling.
        warn!(reason, "could not record an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_alone_are_written_once_a_refresh_and_what_an_sre_acts_on_at_once() {
        use crate::api::{CalibrationStatus, PlannedReplicas};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let refresh = StdDuration::from_secs(300);
        let t0 = Instant::now();
        let seen = PredictiveScalerStatus {
            observed_generation: Some(1),
            current_replicas: Some(10),
            desired_replicas: Some(10),
            forecast_load: Some(512.0),
            reason: Some("Forecast".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Scaling".into(),
                message: "prescaler scales Deployment web".into(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: Some(1),
            }],
            plan: Some(PlanStatus {
                next_peak: Some(PlannedReplicas {
                    at: "2026-12-07T09:00:00Z".into(),
                    replicas: 20,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let due = |new: &PredictiveScalerStatus, last: Option<Instant>, at: u64| {
            status_write_due(
                Some(&seen),
                new,
                last,
                refresh,
                t0 + StdDuration::from_secs(at),
            )
        };
        let written = Some(t0);
        assert_eq!(due(&seen, written, 0), None, "the same status");
        assert_eq!(
            due(&seen, None, 1000),
            None,
            "the same status, even long after"
        );
        // Figures: the forecast load, the calibration, a message, the plan's other steps.
        let mut figures = seen.clone();
        figures.forecast_load = Some(515.0);
        figures.forecast_replicas = Some(11);
        figures.calibration = Some(CalibrationStatus::default());
        figures.conditions[0].message = "another message".into();
        figures.plan.as_mut().unwrap().computed_at = "2026-12-07T08:15:00Z".into();
        // The term the same count rests on (the forecast dipped under it: held by the window).
        figures.reason = Some("Stabilized".into());
        assert_eq!(
            due(&figures, written, 60),
            None,
            "figures within the refresh"
        );
        assert_eq!(due(&figures, written, 299), None);
        assert_eq!(
            due(&figures, written, 300),
            Some("refresh"),
            "figures once the refresh has passed"
        );
        assert_eq!(
            due(&figures, None, 0),
            Some("first"),
            "nothing written by this process yet"
        );
        // What an SRE acts on: written at once.
        // What an SRE acts on: written at once, the write counted by the part that changed.
        type Change = fn(&mut PredictiveScalerStatus);
        let acted_on: [(&str, Change); 6] = [
            ("replicas", |s| s.desired_replicas = Some(12)),
            ("replicas", |s| s.current_replicas = Some(12)),
            ("conditions", |s| s.conditions[0].status = "False".into()),
            ("conditions", |s| {
                s.conditions[0].reason = "TargetNotFound".into()
            }),
            ("plan", |s| {
                s.plan
                    .as_mut()
                    .unwrap()
                    .next_peak
                    .as_mut()
                    .unwrap()
                    .replicas = 25
            }),
            ("generation", |s| s.observed_generation = Some(2)),
        ];
        for (cause, change) in acted_on {
            let mut new = figures.clone();
            change(&mut new);
            assert_eq!(due(&new, written, 1), Some(cause));
        }
        // With no status seen, it is written.
        assert_eq!(
            status_write_due(None, &seen, written, refresh, t0),
            Some("first")
        );
    }

    #[test]
    fn minutes_counted_against_the_hpa_ride_along_and_only_their_rounded_summary_is_a_figure() {
        use crate::api::{SavingsDay, SavingsStatus};
        let refresh = StdDuration::from_secs(300);
        let t0 = Instant::now();
        let day = |minutes| SavingsDay {
            date: "2026-12-07".into(),
            minutes,
            replica_minutes: 2 * minutes,
            ..Default::default()
        };
        let seen = PredictiveScalerStatus {
            desired_replicas: Some(2),
            savings: Some(SavingsStatus {
                summary: "2h: prescaler asked for 4 replica-hours".into(),
                through: "2026-12-07T02:00:00Z".into(),
                days: vec![day(120)],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut counted = seen.clone();
        let savings = counted.savings.as_mut().unwrap();
        savings.through = "2026-12-07T02:07:00Z".into();
        savings.days = vec![day(127)];
        assert_eq!(
            status_write_due(Some(&seen), &counted, Some(t0), refresh, t0 + refresh * 10),
            None,
            "minutes counted alone are not written, however long"
        );
        counted.savings.as_mut().unwrap().summary =
            "2h: prescaler asked for 4.2 replica-hours".into();
        assert_eq!(
            status_write_due(Some(&seen), &counted, Some(t0), refresh, t0 + refresh / 2),
            None
        );
        assert_eq!(
            status_write_due(Some(&seen), &counted, Some(t0), refresh, t0 + refresh),
            Some("refresh"),
            "a new summary is a figure: written once the refresh has passed"
        );
    }

    #[test]
    fn the_refresh_is_spread_by_uid_within_a_tenth() {
        let refresh = StdDuration::from_secs(300);
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|i| refresh_for(&format!("uid-{i}"), refresh))
            .inspect(|r| assert!(*r >= refresh && *r <= refresh.mul_f64(1.1), "{r:?}"))
            .collect();
        assert!(spread.len() > 25, "{spread:?}");
        assert_eq!(refresh_for("x", StdDuration::ZERO), StdDuration::ZERO);
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_within_the_limit() {
        let mut short = "fine".to_string();
        truncate(&mut short, MAX_EVENT_NOTE);
        assert_eq!(short, "fine");
        for len in [1023, 1024, 1025, 3 * 1024 * 1024] {
            let mut text = "é".repeat(len);
            truncate(&mut text, MAX_EVENT_NOTE);
            assert!(text.len() <= MAX_EVENT_NOTE, "{len}: {}", text.len());
            if len * 2 > MAX_EVENT_NOTE {
                assert!(text.ends_with('…') && text.len() >= MAX_EVENT_NOTE - 4);
            }
        }
    }
}
