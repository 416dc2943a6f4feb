//! **report**: status (written only when it changed), conditions, Events (at most one per
//! condition news in ten minutes) and metrics.

use std::time::Instant;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use crate::Result;
use crate::adapters::kubernetes::{self, FloorObject, call};
use crate::api::{PlanStatus, PredictiveScaler, PredictiveScalerStatus};
use crate::operator::conditions::{self, Finding};
use crate::operator::event_filter::EventKey;
use crate::planning::plan::Decision;

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

/// Writes the status when it changed (server-side apply: fields this reconcile did not set are
/// removed), and an Event for every condition whose status or reason changed.
#[tracing::instrument(skip_all)]
pub(super) async fn write_status(
    ps: &PredictiveScaler,
    ctx: &Context,
    decided: Option<Decided<'_>>,
    mut findings: Vec<Finding>,
    now: DateTime<Utc>,
) -> Result<()> {
    // One writer: a replica that may no longer lead writes nothing, not even status.
    if !ctx.may_write() {
        return Ok(());
    }
    // A message may carry what another system said (Prometheus' error text, megabytes of it from
    // a hostile or broken one): a condition holds at most what the API server takes.
    for f in &mut findings {
        truncate(&mut f.message, MAX_CONDITION_MESSAGE);
    }
    let (status, changed) = new_status(ps, decided.as_ref(), &findings, now);
    if ps.status.as_ref() != Some(&status) {
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
        ctx.metrics.status_written();
    }
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
        if f.is_warning() || recovered || f.type_ == conditions::SCALING_LIMITED && f.status {
            let key = EventKey {
                scaler: ps.uid().unwrap_or_default(),
                condition: f.type_.to_string(),
                status: f.status,
                reason: f.reason.clone(),
            };
            let news = locked(&ctx.told).admit(key, Instant::now());
            if !news {
                // Told within the last ten minutes: the condition says it; the Event would not.
                continue;
            }
            let kind = if f.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish(
                ctx,
                ps,
                kind,
                &f.reason,
                format!("{}: {}", f.type_, f.message),
            )
            .await;
        }
    }
    Ok(())
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
    if !ctx.may_write() {
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
