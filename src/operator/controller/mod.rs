//! The reconcile of one PredictiveScaler, in four steps:
//! - **observe**: validate the spec, find the target and the HPA that may scale it, refuse what
//!   must not be acted on (a target in another namespace, one another PredictiveScaler already
//!   scales, a KEDA-owned HPA unless KEDA support is on), and bring the load history up to date;
//! - **decide**: the scaler's `Planner`, the same one the backtest replays;
//! - **actuate**: write the workload's `/scale`, or the floor of the HPA that scales it (of the
//!   KEDA ScaledObject that manages that HPA, with KEDA support on) — only
//!   while this replica leads, never a paused workload, never on a failure's account;
//! - **report**: status (written only when it changed), conditions, Events and metrics.
//!
//! Each step is a tracing span (`#[instrument]`) inside the reconcile's, which carries the
//! scaler's namespace and name, as kube-rs' controller-rs does.
//!
//! The per-scaler memory kept here (history cache, planner) is rebuilt from Prometheus after a
//! restart; nothing that matters lives only in this process. A reconcile can fail, but not take
//! the process down: a panic is caught and reported on its object, and every other scaler keeps
//! its schedule.

mod actuate;
mod calendar_files;
mod context;
mod decide;
mod floors;
mod observe;
mod report;
mod shared_history;

use actuate::actuate;
pub use context::{
    Context, DEFAULT_MAX_SCALERS_PER_NAMESPACE, DEFAULT_SAVINGS_HPA_TARGET_UTILIZATION, Settings,
};
use decide::decide;
pub use floors::FINALIZER;
use floors::{give_back_floor, release_orphaned_floors, sweep_orphaned_floors};
use observe::{learn_lead_time, observe};
use report::{Decided, write_status};

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use futures::{FutureExt, Stream, StreamExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::telemetry::ScalerLabels;
use crate::api::{Mode, PredictiveScaler};
use crate::operator::conditions::{self, Finding, ReadyReason};
use crate::{Error, Result, adapters};

fn labels(ps: &PredictiveScaler) -> ScalerLabels {
    ScalerLabels {
        namespace: ps.namespace().unwrap_or_default(),
        name: ps.name_any(),
    }
}

/// Runs the controller over `changes` (the PredictiveScalers' watch, reflected into the
/// context's store) until the process is asked to stop. Nothing is reconciled before the HPA
/// store has synced: a `/scale` write for a workload whose HPA is not yet known would fight it.
pub async fn run(
    ctx: Arc<Context>,
    changes: impl Stream<Item = Result<PredictiveScaler, kube::runtime::watcher::Error>>
    + Send
    + 'static,
) {
    info!("waiting for the HorizontalPodAutoscaler watch to sync");
    if ctx.hpas.wait_until_ready().await.is_err() {
        warn!("the HorizontalPodAutoscaler watch stopped before it synced; not reconciling");
        return;
    }
    ctx.health.set_hpas_synced();
    let orphans = tokio::spawn(release_orphaned_floors(ctx.clone()));
    let forgetting = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            let mut every = tokio::time::interval(ctx.settings.sync_period);
            // A scaler that set a floor and went without its last reconcile (its finalizer
            // removed by hand while the operator ran) left the floor raised: the start-up sweep
            // for orphaned floors runs again, at most once every `orphan_sweep_retry`, as the
            // start-up sweep does, whatever owes it: each lists every HPA and ScaledObject of
            // the cluster, and a tenant deleting scalers by hand in a loop made one per sync.
            let mut sweep_owed = false;
            let mut not_before = tokio::time::Instant::now();
            loop {
                every.tick().await;
                sweep_owed |= ctx.forget_gone().await;
                if sweep_owed && ctx.may_sweep_owed() && tokio::time::Instant::now() >= not_before {
                    sweep_owed = !sweep_orphaned_floors(&ctx, &|| ctx.may_sweep_owed()).await;
                    not_before = tokio::time::Instant::now() + ctx.settings.orphan_sweep_retry;
                }
            }
        }
    });
    // Every reconcile starts at once and waits for its slot in the fair queue: the controller's
    // own limit would start the next object in its pending set's hash order (see `fair_queue`).
    let admission = ctx.admission.clone();
    Controller::for_stream(changes, ctx.scalers.clone())
        // With shards, every scaler is looked at again when the shards held change: those of a
        // shard taken are reconciled at once, those of a shard lost forgotten.
        .reconcile_all_on(shard_changes(&ctx))
        .with_config(kube::runtime::controller::Config::default().concurrency(0))
        // One trigger, not kube-runtime's `shutdown_on_signal` beside it: both race in one
        // `select_all`, and when its trigger won, this one was dropped before it closed the
        // queue (1,000 waiting reconciles then ran for 119 s after SIGTERM).
        .graceful_shutdown_on(async move {
            stop_signal().await;
            // The waiting reconciles end at once rather than work through the queue.
            admission.close();
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
    orphans.abort();
    forgetting.abort();
}

/// A unit each time the shards this replica holds change; without shards, nothing, ever.
fn shard_changes(ctx: &Context) -> impl Stream<Item = ()> + Send + 'static {
    let changes = ctx.shards.as_ref().map(|s| s.changes());
    futures::stream::unfold(changes, |changes| async move {
        let mut changes = changes?;
        changes.changed().await.ok()?;
        Some(((), Some(changes)))
    })
}

/// SIGTERM or Ctrl+C, as kube-runtime's `shutdown_on_signal` listens for them (both listen:
/// a signal reaches every listener).
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// A std mutex's guard, poisoned or not: a reconcile that panicked while holding one (the
/// panic is caught, see `catch_panic`) leaves maps that are still right to read and write.
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reconciles one PredictiveScaler. A panic anywhere below is caught here: it becomes an error
/// condition on this object and a retry with backoff, and the process carries on. Everything
/// logged below carries the scaler's namespace and name (the span, as controller-rs does).
#[tracing::instrument(skip_all, fields(namespace = ps.namespace(), name = ps.name_any()))]
pub async fn reconcile(ps: Arc<PredictiveScaler>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.owns(&ps) {
        // Another replica's shard, or one this replica lost: nothing is read or written, and
        // what this process kept of the scaler (its history, its metrics) goes — the holder
        // publishes them now. Looked at again each sync, and at once when the shards held change.
        if ctx.keeps(&ps) {
            ctx.forget(&ps).await;
        }
        // Progress all the same: a replica that holds no shard (more replicas than shards) is
        // healthy, not stalled (`/healthz`).
        ctx.health.progress();
        return Ok(Action::requeue(ctx.settings.sync_period));
    }
    // Every reconcile waits for its slot here, before it reads anything (see `fair_queue`).
    let queued = Instant::now();
    let namespace = ps.namespace().unwrap_or_default();
    let Some(_slot) = ctx.admission.acquire(&namespace).await else {
        // The process is stopping: nothing is read or written.
        return Ok(Action::await_change());
    };
    // As each reconcile is admitted: its wait, and the queue behind it.
    ctx.metrics
        .reconcile_admitted(queued.elapsed(), ctx.admission.waiting());
    // The object as it is now, not as it was when the reconcile was queued: a spec edited while
    // it waited (maxReplicas lowered, mode Off) must not be acted on in its old form. Gone from
    // the watch: nothing to do (what is kept of it is forgotten at the next sync).
    let Some(ps) = ctx.scalers.get(&ObjectRef::from_obj(&*ps)) else {
        return Ok(Action::await_change());
    };
    // Boxed: a waiting reconcile's future holds only what it needs to wait (the whole
    // reconcile's state machine was 26 KiB, held by every scaler's waiting reconcile at start).
    admitted(ps, ctx).boxed().await
}

/// The reconcile once it holds its slot.
async fn admitted(ps: Arc<PredictiveScaler>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let work = catch_panic(reconcile_inner(&ps, &ctx));
    tokio::pin!(work);
    // A reconcile that holds its slot for half a request's timeout (the shorter of Prometheus'
    // and the API server's) marks its namespace suspect at that moment, whatever it waits on (a
    // target read or a pod list that hangs, not only a Prometheus read): the namespace's next
    // reconciles then hold fewer slots (`fair_queue`). Marked only for slow Prometheus reads
    // once they ended, sixteen hanging target reads took every slot for their timeout.
    let slow = ctx
        .source
        .read_timeout()
        .min(adapters::kubernetes::API_TIMEOUT)
        / 2;
    let result = tokio::select! {
        result = &mut work => result,
        () = tokio::time::sleep(slow) => {
            ctx.admission.suspect(&ps.namespace().unwrap_or_default());
            work.await
        }
    };
    if let Err(Error::Panicked(message)) = &result {
        // Whatever the planner held may be inconsistent: start it afresh.
        ctx.forget(&ps).await;
        let finding = Finding::ready(
            ReadyReason::InternalError,
            format!(
                "prescaler failed on this object ({message}); retrying with backoff, nothing is scaled meanwhile"
            ),
        );
        let _ = write_status(&ps, &ctx, None, vec![finding], Utc::now()).await;
    }
    ctx.metrics.reconcile_finished(
        &labels(&ps),
        started.elapsed(),
        ps.meta().deletion_timestamp.is_some(),
    );
    // After the reconcile, whose metrics it records: a deletion seen while it ran is then still
    // forgotten at the next round (`Context::forget_gone`).
    ctx.note(&ps);
    ctx.health.progress();
    if result.is_ok()
        && let Some(uid) = ps.uid()
    {
        locked(&ctx.failures).remove(&uid);
    }
    result
}

/// Runs `work`, turning a panic inside it into `Error::Panicked`. kube-runtime's controller
/// would re-raise it and end the process, stopping every other scaler with it.
async fn catch_panic<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Error::Panicked(message))
        })
}

async fn reconcile_inner(ps: &PredictiveScaler, ctx: &Context) -> Result<Action> {
    if ps.meta().deletion_timestamp.is_some() {
        give_back_floor(ps, ctx).await?;
        ctx.forget(ps).await;
        return Ok(Action::await_change());
    }
    apply(ps, ctx).await?;
    Ok(Action::requeue(ctx.settings.sync_period))
}

/// Retries after a failure, sooner at first and later while it keeps failing (up to 5 minutes),
/// so that a missing permission or an overloaded API server does not make a hot loop.
pub fn error_policy(ps: Arc<PredictiveScaler>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = match error {
        Error::Adapters(adapters::Error::Kube(_) | adapters::Error::Timeout { .. }) => "kubernetes",
        Error::Adapters(adapters::Error::Prometheus { .. }) => "prometheus",
        Error::Panicked(_) => "panic",
        _ => "other",
    };
    ctx.metrics.reconcile_failure(kind);
    let failures = {
        let mut all = locked(&ctx.failures);
        let n = all.entry(ps.uid().unwrap_or_default()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    // A conflict is another writer's fresh change: decide again from it at once.
    let delay = if error.is_conflict() && failures <= 3 {
        StdDuration::from_secs(1)
    } else {
        StdDuration::from_secs(5 * 2u64.pow(failures.min(6) - 1)).min(StdDuration::from_secs(300))
    };
    warn!(namespace = ps.namespace(), name = ps.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    let now = Utc::now();
    match observe_decide_act(ps, ctx, now).await {
        // RBAC lacks a permission: say so on the object; the error policy backs off.
        Err(e) if e.is_forbidden() => {
            let finding = Finding::ready(
                ReadyReason::Forbidden,
                format!(
                    "{e}: prescaler's service account lacks this permission (see the chart's rbac.scaleTargets); retrying with backoff"
                ),
            );
            write_status(ps, ctx, None, vec![finding], now).await?;
            Err(e)
        }
        other => other,
    }
}

/// A scaler that will not act (refused, or its workload not to be scaled): its state and
/// planned-replica metrics dropped, its floor given back, and `why` in its status.
async fn stand_down(
    ps: &PredictiveScaler,
    ctx: &Context,
    why: Finding,
    now: DateTime<Utc>,
) -> Result<()> {
    ctx.drop_state(ps).await;
    ctx.metrics.observe_plan(&labels(ps), None);
    give_back_floor(ps, ctx).await?;
    write_status(ps, ctx, None, vec![why], now).await
}

async fn observe_decide_act(
    ps: &PredictiveScaler,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut target = match observe(ps, ctx).await? {
        Ok(target) => target,
        // A refused scaler plans nothing and keeps nothing: its planned replicas must not
        // linger in metrics, nor its history in memory (it is read again once admitted).
        Err(refusal) => return stand_down(ps, ctx, refusal, now).await,
    };
    if ps.spec.mode != Mode::ForecastOnly
        && let Some(disabled) =
            target.scaling_disabled(ps, &ps.spec.scale_target_ref.to_string(), now)
    {
        // Nothing will be written, so nothing is read or kept for it: a thousand scalers over
        // workloads scaled to zero (no pods, no quota) held 337 KiB of history each, enough
        // for one tenant to run the operator out of memory.
        return stand_down(ps, ctx, disabled, now).await;
    }
    let lead = match target.spec.lead_time_auto {
        true => Some(learn_lead_time(ps, ctx, &mut target, now).await),
        false => None,
    };
    let decide::Outcome {
        decision,
        figures,
        load,
        plan,
        savings,
    } = decide(ps, ctx, &target, now).await;
    ctx.metrics.observe_savings(&labels(ps), &savings.added);
    let ready = actuate(ps, ctx, &mut target, &decision).await?;
    if load.tells_nothing_new(ps) {
        // One failed read after a success is held (as any failure is) but not published: a
        // Prometheus that answers again at the next try would otherwise cost a status write and
        // two Events per scaler for a blip. A second failure in a row, a sync later, is told.
        info!(
            namespace = ps.namespace(),
            name = ps.name_any(),
            "a first failed read: status stays as the last read left it"
        );
        ctx.metrics
            .observe_decision(&labels(ps), &decision, ready.current);
        return Ok(());
    }
    let mut findings = vec![
        ready.finding,
        load.finding(&decision, &figures, !ps.spec.metrics.is_empty()),
        conditions::forecast_finding_of_metrics(&decision, &figures),
        // Under an HPA a quiet window's zero is refused, and that is the limit to tell: the
        // desired count's own limits are the HPA's to meet there.
        target
            .zero_refused
            .clone()
            .unwrap_or_else(|| conditions::limit_finding(&decision, &target.spec)),
    ];
    findings.extend(conditions::objective_finding_of_metrics(
        &decision,
        &figures,
        &target.spec,
    ));
    findings.extend(conditions::capacity_finding(&decision, &target.spec));
    if load.all_read() {
        // Each metric's own: a long-term store may fail one query's read and answer another's.
        let fallbacks: Vec<Option<String>> = target
            .queries
            .iter()
            .map(|q| ctx.source.fallback_of(q))
            .collect();
        findings.push(conditions::history_finding_of_metrics(
            &decision,
            &figures,
            &target.spec,
            &ctx.settings.model,
            ctx.settings.long_term_history,
            &fallbacks,
        ));
    }
    findings.extend(target.calendar.clone());
    findings.extend(pods_pending(
        ps,
        lead.as_ref()
            .map(|(_, survey)| survey.as_ref().map_err(String::as_str)),
    ));
    ctx.metrics
        .observe_decision(&labels(ps), &decision, ready.current);
    ctx.metrics.observe_plan(&labels(ps), plan.as_ref());
    write_status(
        ps,
        ctx,
        Some(Decided {
            decision: &decision,
            current: ready.current,
            scaled_at: ready.scaled.then_some(now),
            lead_time: lead
                .as_ref()
                .and_then(|(shown, _)| shown.as_ref())
                .map(conditions::lead_time_status),
            plan: plan.as_ref(),
            savings: savings.status.as_ref(),
            metrics: &figures,
        }),
        findings,
        now,
    )
    .await?;
    Ok(())
}

/// `PodsPending`, from the pods' survey with `leadTime: Auto` (`None`: a fixed lead time).
fn pods_pending(
    ps: &PredictiveScaler,
    survey: Option<std::result::Result<&crate::planning::startup::Survey, &str>>,
) -> Option<Finding> {
    match survey {
        Some(survey) => Some(conditions::pods_pending_finding(
            survey,
            &ps.spec.scale_target_ref.to_string(),
        )),
        // Back to a fixed lead time: a PodsPending from the Auto days must not linger.
        None if ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::PODS_PENDING && c.status == "True")
        }) =>
        {
            Some(Finding::new(
                conditions::PODS_PENDING,
                false,
                "FixedLeadTime",
                "spec.forecast.leadTime is fixed: the pods' start-up is not watched",
            ))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_becomes_an_error() {
        let fine = catch_panic(async { Ok::<_, Error>(7) }).await;
        assert_eq!(fine.unwrap(), 7);
        let broken = catch_panic(async {
            let empty: Vec<u32> = Vec::new();
            Ok::<_, Error>(empty[3])
        })
        .await;
        match broken {
            Err(Error::Panicked(message)) => {
                assert!(message.contains("index out of bounds"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
