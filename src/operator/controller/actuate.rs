//! **actuate**: write the workload's `/scale`, or the floor of the HPA that scales it (of the
//! KEDA ScaledObject that manages that HPA, with KEDA support on) — only while this replica
//! leads, never a paused workload.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::info;

use crate::Result;
use crate::adapters::kubernetes::{self, FloorObject};
use crate::api::{Mode, PredictiveScaler};
use crate::operator::conditions::{Finding, ReadyReason};
use crate::planning::plan::Decision;

use super::context::Context;
use super::floors::{add_finalizer, give_back_floor, release_other_floors};
use super::observe::Target;
use super::report::{publish, publish_floor};

/// What actuation did.
pub(super) struct Actuated {
    pub(super) finding: Finding,
    /// The replicas the workload has after it.
    pub(super) current: u32,
    /// Whether prescaler changed the workload's replicas or an HPA's floor.
    pub(super) scaled: bool,
}

#[tracing::instrument(skip_all)]
pub(super) async fn actuate(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &mut Target,
    decision: &Decision,
) -> Result<Actuated> {
    let current = target.workload.replicas();
    let target_name = ps.spec.scale_target_ref.to_string();
    if let Some(finding) = held_back(ps, ctx, decision, &target_name).await? {
        return Ok(Actuated {
            finding,
            current,
            scaled: false,
        });
    }
    if let Some(name) = target.scaled_object.clone() {
        return actuate_keda(ps, ctx, target, &name, &target_name, decision, current).await;
    }
    match target.hpa.clone() {
        Some(hpa) => floor_on_hpa(ps, ctx, &hpa, decision, &target_name, current).await,
        None => scale(ps, ctx, target, decision, &target_name).await,
    }
}

/// Why nothing is written this time, if nothing is: ForecastOnly mode (a floor held before is
/// given back), or a replica that no longer leads. (A target whose scaling is disabled does
/// not get this far: see `Target::scaling_disabled`.)
async fn held_back(
    ps: &PredictiveScaler,
    ctx: &Context,
    decision: &Decision,
    target_name: &str,
) -> Result<Option<Finding>> {
    let desired = decision.desired_replicas;
    if ps.spec.mode == Mode::ForecastOnly {
        give_back_floor(ps, ctx).await?;
        return Ok(Some(Finding::ready(
            ReadyReason::ForecastOnly,
            format!(
                "mode is ForecastOnly: {target_name} would be set to {desired} replicas; nothing is written"
            ),
        )));
    }
    if !ctx.may_write(ps) {
        return Ok(Some(Finding::ready(
            ReadyReason::NotLeader,
            "this replica lost the Lease; the new leader acts",
        )));
    }
    Ok(None)
}

/// An HPA scales the target: prescaler holds its `minReplicas` at the decision's floor.
async fn floor_on_hpa(
    ps: &PredictiveScaler,
    ctx: &Context,
    hpa: &HorizontalPodAutoscaler,
    decision: &Decision,
    target_name: &str,
    current: u32,
) -> Result<Actuated> {
    let holder = FloorObject::Hpa(hpa.name_any());
    add_finalizer(ps, ctx).await?;
    release_other_floors(ps, ctx, &holder).await?;
    let uid = ps.uid().unwrap_or_default();
    let set = kubernetes::set_hpa_floor(&ctx.client, hpa, &uid, decision.floor_replicas, &|| {
        ctx.may_write(ps)
    })
    .await?;
    if let Some(floor) = set {
        let note = format!(
            "set {holder}'s minReplicas to {floor} ({})",
            decision.explain()
        );
        publish_floor(ctx, ps, "FloorSet", &holder, note).await;
    }
    Ok(Actuated {
        finding: Finding::ready(
            ReadyReason::FloorOnHpa,
            format!(
                "HorizontalPodAutoscaler {} scales {target_name}; prescaler holds its minReplicas at the forecast floor",
                hpa.name_any()
            ),
        ),
        current,
        scaled: set.is_some(),
    })
}

/// prescaler owns the target's `/scale`: it writes the decision there.
async fn scale(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &mut Target,
    decision: &Decision,
    target_name: &str,
) -> Result<Actuated> {
    give_back_floor(ps, ctx).await?;
    let current = target.workload.replicas();
    let desired = decision.desired_replicas;
    let scaled = desired != current;
    if scaled {
        target.workload.set_replicas(desired).await?;
        let verb = if desired > current {
            "ScaledUp"
        } else {
            "ScaledDown"
        };
        info!(
            namespace = ps.namespace(),
            name = ps.name_any(),
            current,
            desired,
            reason = decision.reason.as_str(),
            "scaling"
        );
        // A wake from a quiet window's zero says what woke it.
        let why = match &decision.quiet {
            Some(q) if current == 0 => format!("woken from zero: {}", q.explain()),
            _ => decision.explain(),
        };
        let note = format!("{target_name} from {current} to {desired} replicas ({why})");
        publish(ctx, ps, EventType::Normal, verb, note).await;
    }
    let at_zero = match &decision.quiet {
        Some(q) if desired == 0 => format!(
            "; at zero in {}'s quiet hours, woken when the load or its forecast goes above {}, or by {}",
            q.source,
            q.threshold,
            q.wake_at.format("%Y-%m-%d %H:%M UTC")
        ),
        _ => String::new(),
    };
    Ok(Actuated {
        finding: Finding::ready(
            ReadyReason::Scaling,
            format!("prescaler scales {target_name}{at_zero}"),
        ),
        current: target.workload.replicas(),
        scaled,
    })
}

/// Holds the floor on the KEDA ScaledObject `name` that manages the target's HPA: KEDA copies
/// `minReplicaCount` into its HPA on every sync, where a floor written on the HPA itself would be
/// undone. Read from the API server each time (only such targets pay for it).
pub(super) async fn actuate_keda(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &Target,
    name: &str,
    target_name: &str,
    decision: &Decision,
    current: u32,
) -> Result<Actuated> {
    let namespace = ps.namespace().unwrap_or_default();
    let finding = |reason: ReadyReason, message: String| Actuated {
        finding: Finding::ready(reason, message),
        current,
        scaled: false,
    };
    let Some(so) = kubernetes::get_scaled_object(&ctx.client, &namespace, name).await? else {
        give_back_floor(ps, ctx).await?;
        return Ok(finding(
            ReadyReason::ScaledObjectNotFound,
            format!(
                "the HorizontalPodAutoscaler of {target_name} names KEDA ScaledObject {name} as its owner, which does not exist; nothing is scaled"
            ),
        ));
    };
    let hpa = target.hpa.as_deref();
    if !hpa.is_some_and(|h| kubernetes::keda_manages(&so, h, &ps.spec.scale_target_ref)) {
        give_back_floor(ps, ctx).await?;
        return Ok(finding(
            ReadyReason::ScaledObjectMismatch,
            format!(
                "the HorizontalPodAutoscaler of {target_name} names KEDA ScaledObject {name} as its controller, but {name} is not that object or does not scale {target_name}; nothing is written"
            ),
        ));
    }
    if let Some(why) = kubernetes::keda_paused(&so) {
        give_back_floor(ps, ctx).await?;
        return Ok(finding(
            ReadyReason::ScalingDisabled,
            format!("{why}: prescaler does not scale it"),
        ));
    }
    add_finalizer(ps, ctx).await?;
    release_other_floors(ps, ctx, &FloorObject::ScaledObject(name.to_string())).await?;
    let uid = ps.uid().unwrap_or_default();
    let set = kubernetes::set_scaled_object_floor(
        &ctx.client,
        &so,
        &uid,
        decision.floor_replicas,
        &|| ctx.may_write(ps),
    )
    .await?;
    if let Some(floor) = set {
        let holder = FloorObject::ScaledObject(name.to_string());
        let note = format!(
            "set {holder}'s minReplicaCount to {floor} ({})",
            decision.explain()
        );
        publish_floor(ctx, ps, "FloorSet", &holder, note).await;
    }
    Ok(Actuated {
        scaled: set.is_some(),
        ..finding(
            ReadyReason::FloorOnScaledObject,
            format!(
                "KEDA ScaledObject {name} scales {target_name}; prescaler holds its minReplicaCount at the forecast floor"
            ),
        )
    })
}
