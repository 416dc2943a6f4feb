//! The floors prescaler holds on HPAs and ScaledObjects, and the finalizer that guards them:
//! set before a floor, given back (with the finalizer) on a target change, `Off`, a refusal or
//! delete, and, at start-up, the floors of scalers that are gone.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use kube::ResourceExt;
use tracing::{info, warn};

use crate::Result;
use crate::adapters::kubernetes::{self, FloorObject, Owners};
use crate::api::PredictiveScaler;

use super::context::Context;
use super::locked;
use super::report::publish_floor;

/// Kept on a PredictiveScaler while it holds an HPA's (or a ScaledObject's) floor (defined with
/// the Kubernetes adapter, which keeps it when it slims a scaler).
pub use crate::adapters::kubernetes::FINALIZER;
/// Gives back, when the controller starts, the floors whose PredictiveScaler is gone (it was
/// deleted while no operator ran, or its finalizer was removed by hand): a floor with no owner
/// would stay raised for good. Whether an owner lives is read from the scalers' store after the
/// floors were listed, so a scaler created meanwhile is seen.
///
/// A sweep that could not give back every such floor (each failure is logged, naming the object,
/// and the sweep goes on past it) runs again every `orphan_sweep_retry` until one completes: a
/// periodic retry, the simplest that does not wait for the next restart. Only the floors still
/// orphaned are written again; a floor given back stays so. A replica that may not write skips
/// a round (when it loses the Lease the controller, and this task with it, stops).
pub(super) async fn release_orphaned_floors(ctx: Arc<Context>) {
    // kube-runtime's `Store::wait_until_ready` wakes only one of several waiters (its
    // `DelayedInit` keeps a single waker, and the controller waits on this store too): ask again
    // every second.
    loop {
        match tokio::time::timeout(StdDuration::from_secs(1), ctx.scalers.wait_until_ready()).await
        {
            Ok(Ok(())) => break,
            Ok(Err(_)) => return,
            Err(_) => {}
        }
    }
    loop {
        if ctx.may_sweep() && sweep_orphaned_floors(&ctx, &|| ctx.may_sweep()).await {
            return;
        }
        tokio::time::sleep(ctx.settings.orphan_sweep_retry).await;
    }
}

/// One sweep for orphaned floors, each write gated by `may_write`; whether it gave back every
/// one it found.
pub(super) async fn sweep_orphaned_floors(
    ctx: &Context,
    may_write: &(dyn Fn() -> bool + Sync),
) -> bool {
    let live_uids = || -> std::collections::HashSet<String> {
        ctx.scalers.state().iter().filter_map(|s| s.uid()).collect()
    };
    let known = std::sync::OnceLock::new();
    let is_live =
        |uid: &str| known.get_or_init(live_uids).contains(uid) || live_uids().contains(uid);
    let sweep = kubernetes::release_floors(
        &ctx.client,
        None,
        Owners::NotLive(&is_live),
        ctx.settings.keda,
        // Checked before each write: a long sweep outlasts a lost Lease.
        may_write,
    )
    .await;
    for r in &sweep.released {
        info!(namespace = r.namespace, object = %r.object, restored = r.restored, "gave back a floor whose PredictiveScaler is gone");
    }
    // Each failure was logged by the sweep, naming its object.
    let complete = sweep.is_complete();
    if !complete {
        warn!(
            not_given_back = sweep.failed.len(),
            lists_not_read = sweep.unlisted.len(),
            retry_in = ?ctx.settings.orphan_sweep_retry,
            "could not give back every floor whose PredictiveScaler is gone; trying again later"
        );
    }
    complete
}

/// Adds the finalizer before an HPA floor is set, guarded by the resourceVersion read.
pub(super) async fn add_finalizer(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    if ps.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    // No floor may be set without the finalizer that guards it.
    if !ctx.may_write(ps) {
        return Err(crate::adapters::Error::NotLeader.into());
    }
    let mut all = ps.finalizers().to_vec();
    all.push(FINALIZER.into());
    set_finalizers(ps, ctx, all).await
}

/// Gives back every floor this scaler holds, then drops the finalizer that guarded them.
#[tracing::instrument(skip_all)]
pub(super) async fn give_back_floor(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    if !ps.finalizers().iter().any(|f| f == FINALIZER) || !ctx.may_write(ps) {
        return Ok(());
    }
    release_floors_but(ps, ctx, None).await?;
    let rest = ps
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ps, ctx, rest).await
}

/// Gives back the floors this scaler holds anywhere in its namespace but on `keep` (found by
/// their annotations, not by the target named now), each with an Event. Only a leader writes.
pub(super) async fn release_floors_but(
    ps: &PredictiveScaler,
    ctx: &Context,
    keep: Option<&FloorObject>,
) -> Result<()> {
    if !ctx.may_write(ps) {
        return Ok(());
    }
    let namespace = ps.namespace().unwrap_or_default();
    let uid = ps.uid().unwrap_or_default();
    let mut sweep = kubernetes::release_floors(
        &ctx.client,
        Some(&namespace),
        Owners::One { uid: &uid, keep },
        ctx.settings.keda,
        &|| ctx.may_write(ps),
    )
    .await;
    for r in &sweep.released {
        let mut note = format!(
            "restored {}'s {} to {}",
            r.object,
            r.object.field(),
            r.restored
        );
        if let Some(kept) = &r.refused {
            note += &format!(
                " (its current value: the kept {} {kept:?} is no value it may hold)",
                kubernetes::ORIGINAL_MIN_ANNOTATION
            );
        }
        publish_floor(ctx, ps, "FloorReleased", &r.object, note).await;
    }
    // Every other floor was given back; one not given back fails the reconcile (retried with
    // backoff, the finalizer kept), with its error; the sweep logged each.
    match sweep.take_error() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Before holding the floor on `holder`: gives back any other floor this scaler holds, when it
/// may hold one elsewhere — the first time this process sees the scaler (an operator may have
/// stopped between a target change and its sweep) and after every spec change (a new
/// `scaleTargetRef`). The sweep lists the namespace's HPAs and ScaledObjects, so it is not done
/// at every sync.
pub(super) async fn release_other_floors(
    ps: &PredictiveScaler,
    ctx: &Context,
    holder: &FloorObject,
) -> Result<()> {
    let uid = ps.uid().unwrap_or_default();
    let generation = ps.metadata.generation;
    let swept = locked(&ctx.floor_sweeps)
        .get(&uid)
        .is_some_and(|(g, h)| *g == generation && h == holder);
    if swept {
        return Ok(());
    }
    // Without the finalizer (this reconcile has just added it) the scaler held no floor before:
    // nothing to sweep. Noted all the same: the entry is also how `forget_gone` knows that a
    // scaler deleted without its last reconcile may have left this floor raised.
    if ps.finalizers().iter().any(|f| f == FINALIZER) {
        release_floors_but(ps, ctx, Some(holder)).await?;
    }
    locked(&ctx.floor_sweeps).insert(uid, (generation, holder.clone()));
    Ok(())
}

/// Writes the finalizer list, guarded by the resourceVersion read: a concurrent change to the
/// list is a 409 and a retry, never a lost finalizer.
pub(super) async fn set_finalizers(
    ps: &PredictiveScaler,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<()> {
    if !ctx.may_write(ps) {
        return Ok(());
    }
    Ok(kubernetes::write_finalizers(&ctx.client, ps, finalizers).await?)
}
