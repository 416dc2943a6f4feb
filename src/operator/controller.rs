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
//! The per-scaler memory kept here (history cache, planner) is rebuilt from Prometheus after a
//! restart; nothing that matters lives only in this process. A reconcile can fail, but not take
//! the process down: a panic is caught and reported on its object, and every other scaler keeps
//! its schedule.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tracing::{info, warn};

use super::backoff::{Failure, FailureKind, ReadBackoff, read_key};
use super::event_filter::{EventFilter, EventKey};
use super::leader::Leadership;
use super::telemetry::{ErrorLabels, Health, Metrics, PlanLabels, ScalerLabels};
use crate::adapters::confine::confine_to_namespace;
use crate::adapters::history::{HistoryCache, Refresh};
use crate::adapters::kubernetes::{self, FloorObject, Owners, TargetProblem, Workload, call};
use crate::adapters::prometheus::Prometheus;
use crate::api::{Mode, PlanStatus, PredictiveScaler, PredictiveScalerStatus, ValidatedSpec};
use crate::planning::conditions::{self, Finding, READY};
use crate::planning::forecast::ModelConfig;
use crate::planning::outlook;
use crate::planning::plan::Decision;
use crate::planning::planner::Planner;
use crate::planning::startup;
use crate::{Error, Result};

/// Kept on a PredictiveScaler while it holds an HPA's (or a ScaledObject's) floor, so that the floor is given back
/// before the object goes. Only then: a scaler that writes `/scale` directly has nothing to give
/// back and carries no finalizer, so uninstalling the operator never leaves objects stuck.
pub const FINALIZER: &str = "prescaler.dev/hpa-floor";
/// The field manager of prescaler's status writes (server-side apply).
const FIELD_MANAGER: &str = "prescaler";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every PredictiveScaler is reconciled, changed or not.
    pub sync_period: StdDuration,
    /// Reconciles running at once (and so Prometheus queries in flight).
    pub concurrency: u16,
    pub model: ModelConfig,
    /// The name Events are reported under, usually the pod's.
    pub instance: String,
    /// When set, every scaler's query is confined to its own namespace by this label (see
    /// `prometheus::confine_to_namespace`): tenants cannot read each other's series through
    /// the operator's credentials.
    pub namespace_label: Option<String>,
    /// KEDA support: the floor of a target whose HPA a KEDA ScaledObject manages goes to the
    /// ScaledObject's `minReplicaCount` (needs `patch` on `scaledobjects.keda.sh`). Off, such a
    /// target is refused.
    pub keda: bool,
    /// With `leadTime: Auto`: how long a new learned lead time must persist before it is used
    /// (each change restarts the calibration, so it changes rarely).
    pub lead_time_settle: StdDuration,
    /// With `leadTime: Auto`: the target's pods are listed at most this often per scaler.
    pub pod_survey_interval: StdDuration,
    /// How long after a start-up sweep for orphaned floors that could not give back every one
    /// (an object the API server refused, a list it did not answer) the sweep runs again.
    pub orphan_sweep_retry: StdDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sync_period: StdDuration::from_secs(30),
            concurrency: 8,
            model: ModelConfig::default(),
            instance: "prescaler".into(),
            namespace_label: None,
            keda: false,
            lead_time_settle: StdDuration::from_secs(600),
            pod_survey_interval: StdDuration::from_secs(60),
            orphan_sweep_retry: StdDuration::from_secs(300),
        }
    }
}

/// What one PredictiveScaler's reconciles share.
struct ScalerState {
    planner: Planner,
    cache: HistoryCache,
    /// When the history is read again after a failed read.
    reads: ReadBackoff,
    /// `leadTime: Auto`: the pods' start-ups seen, and the lead time in use.
    startup: startup::Tracker,
    /// The last survey of the pods and when it was made.
    survey: Option<(Instant, startup::Survey)>,
    /// The last plan (`status.plan`), the quarter hour and the spec generation it was made for.
    plan: Option<PlanMemo>,
}

/// A plan, kept until the next quarter hour or a spec change: 96 decisions ahead are cheap, but
/// not cheap enough to make for a thousand scalers at every sync.
struct PlanMemo {
    /// The quarter hour, the spec generation and the lead time in use (a learned one changes
    /// without a new generation).
    made_for: (DateTime<Utc>, Option<i64>, i64),
    status: PlanStatus,
}

/// A spec generation and what its validation said.
type Validated = (Option<i64>, std::result::Result<ValidatedSpec, String>);

/// Shared by all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub prometheus: Prometheus,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub settings: Settings,
    recorder: Recorder,
    /// Every HPA in the cluster, kept by a watch the operator runs.
    hpas: Store<HorizontalPodAutoscaler>,
    /// Every PredictiveScaler, kept by the controller's own watch (to find two on one target).
    scalers: Store<PredictiveScaler>,
    /// `None` without leader election (a single replica).
    leadership: Option<Arc<Leadership>>,
    /// Per PredictiveScaler uid.
    states: Mutex<HashMap<String, Arc<Mutex<ScalerState>>>>,
    /// Consecutive failed reconciles per uid, for the retry backoff.
    failures: std::sync::Mutex<HashMap<String, u32>>,
    /// Per uid, the generation and the floor's holder for which the scaler's other floors were
    /// last given back (`release_other_floors`).
    floor_sweeps: std::sync::Mutex<HashMap<String, (Option<i64>, FloorObject)>>,
    /// Per uid, the spec generation last validated and what validation said.
    validated: std::sync::Mutex<HashMap<String, Validated>>,
    /// Condition Events told in the last ten minutes (see `event_filter`).
    told: std::sync::Mutex<EventFilter>,
    /// Prometheus reads in flight, all namespaces together.
    queries: Semaphore,
    /// Per namespace, its share of `queries` (see `namespace_share`).
    namespace_reads: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        prometheus: Prometheus,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        settings: Settings,
        hpas: Store<HorizontalPodAutoscaler>,
        scalers: Store<PredictiveScaler>,
        leadership: Option<Arc<Leadership>>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "prescaler".into(),
                instance: Some(settings.instance.clone()),
            },
        );
        let queries = Semaphore::new(settings.concurrency.max(1) as usize);
        Self {
            client,
            prometheus,
            metrics,
            health,
            settings,
            recorder,
            hpas,
            scalers,
            leadership,
            states: Mutex::default(),
            failures: Default::default(),
            floor_sweeps: Default::default(),
            validated: Default::default(),
            told: Default::default(),
            queries,
            namespace_reads: Default::default(),
        }
    }

    /// The scaler's spec validated, once per generation: validation parses cron schedules and
    /// checks windows against each other, work that one tenant's spec could make cost every
    /// sync; the spec cannot change without a new generation.
    fn validated(&self, ps: &PredictiveScaler) -> std::result::Result<ValidatedSpec, String> {
        let uid = ps.uid().unwrap_or_default();
        let generation = ps.metadata.generation;
        let mut all = locked(&self.validated);
        match all.get(&uid) {
            Some((g, result)) if *g == generation && generation.is_some() => result.clone(),
            _ => {
                let result = ps.spec.validate().map_err(|e| e.to_string());
                all.insert(uid, (generation, result.clone()));
                result
            }
        }
    }

    /// A slot for one Prometheus read of a scaler in `namespace`, or `None` when the namespace
    /// already has its share in flight.
    ///
    /// Reads and reconciles share `concurrency` slots across the cluster. Without a share per
    /// namespace, one tenant whose queries hang until the timeout, and who edits its scalers so
    /// that each new spec is read at once (the backoff starts again with a new query), held every
    /// slot and stopped every other tenant's scaling. A namespace may have a quarter of the slots
    /// in reads (at least one). A reconcile that finds them busy does not wait: it does nothing
    /// and frees its reconcile slot at once, to come back soon — a reconcile that
    /// waited would keep the slot, and the controller's queue serves newly triggered objects
    /// first, so the busy tenant's edits would again crowd everyone else out.
    fn namespace_share(&self, namespace: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let share = {
            let mut all = locked(&self.namespace_reads);
            let per_namespace = (usize::from(self.settings.concurrency) / 4).max(1);
            all.entry(namespace.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(per_namespace)))
                .clone()
        };
        share.try_acquire_owned().ok()
    }

    /// Whether this replica may write to workloads and HPAs now.
    fn may_write(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.may_write())
    }

    async fn state_for(
        &self,
        uid: &str,
        ps: &PredictiveScaler,
        spec: &ValidatedSpec,
    ) -> Arc<Mutex<ScalerState>> {
        let mut states = self.states.lock().await;
        let entry = states.entry(uid.to_string()).or_insert_with(|| {
            let planner = Planner::new(spec.clone(), self.settings.model.clone());
            let cache = HistoryCache::new(ps.spec.metric.query.clone(), planner.history_needs());
            let settle = chrono::Duration::from_std(self.settings.lead_time_settle)
                .unwrap_or(startup::DEFAULT_SETTLE);
            Arc::new(Mutex::new(ScalerState {
                planner,
                cache,
                reads: ReadBackoff::new(self.settings.sync_period),
                startup: startup::Tracker::new(settle),
                survey: None,
                plan: None,
            }))
        });
        entry.clone()
    }

    async fn forget(&self, ps: &PredictiveScaler) {
        if let Some(uid) = ps.uid() {
            self.states.lock().await.remove(&uid);
            locked(&self.floor_sweeps).remove(&uid);
            locked(&self.validated).remove(&uid);
            locked(&self.told).forget(&uid);
        }
        self.metrics.remove(&labels(ps));
    }
}

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
    let concurrency = ctx.settings.concurrency;
    Controller::for_stream(changes, ctx.scalers.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
    orphans.abort();
}

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
async fn release_orphaned_floors(ctx: Arc<Context>) {
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
        if ctx.may_write() && sweep_orphaned_floors(&ctx).await {
            return;
        }
        tokio::time::sleep(ctx.settings.orphan_sweep_retry).await;
    }
}

/// One sweep for orphaned floors; whether it gave back every one it found.
async fn sweep_orphaned_floors(ctx: &Context) -> bool {
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

/// A std mutex's guard, poisoned or not: a reconcile that panicked while holding one (the
/// panic is caught, see `catch_panic`) leaves maps that are still right to read and write.
fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reconciles one PredictiveScaler. A panic anywhere below is caught here: it becomes an error
/// condition on this object and a retry with backoff, and the process carries on.
pub async fn reconcile(ps: Arc<PredictiveScaler>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = catch_panic(reconcile_inner(&ps, &ctx)).await;
    if let Err(Error::Panicked(message)) = &result {
        // Whatever the planner held may be inconsistent: start it afresh.
        ctx.forget(&ps).await;
        let finding = Finding::new(
            READY,
            false,
            "InternalError",
            format!(
                "prescaler failed on this object ({message}); retrying with backoff, nothing is scaled meanwhile"
            ),
        );
        let _ = write_status(&ps, &ctx, None, vec![finding], Utc::now()).await;
    }
    let took = started.elapsed().as_secs_f64();
    ctx.metrics.reconcile_duration.observe(took);
    if ps.meta().deletion_timestamp.is_none() {
        ctx.metrics
            .scaler_reconcile_seconds
            .get_or_create(&labels(&ps))
            .inc_by(took);
    }
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
    match apply(ps, ctx).await? {
        Applied::Done => Ok(Action::requeue(ctx.settings.sync_period)),
        // Soon, not at once: a quarter of a sync (at least a second), so that a busy share is
        // not polled in a hot loop.
        Applied::Deferred => Ok(Action::requeue(
            (ctx.settings.sync_period / 4).max(StdDuration::from_secs(1)),
        )),
    }
}

/// Retries after a failure, sooner at first and later while it keeps failing (up to 5 minutes),
/// so that a missing permission or an overloaded API server does not make a hot loop.
pub fn error_policy(ps: Arc<PredictiveScaler>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = match error {
        Error::Kube(_) | Error::Timeout { .. } => "kubernetes",
        Error::Prometheus { .. } => "prometheus",
        Error::Panicked(_) => "panic",
        _ => "other",
    };
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels { kind: kind.into() })
        .inc();
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

/// What the reconcile found out about the target, when it can act on it.
struct Target {
    spec: ValidatedSpec,
    /// The query sent to Prometheus: the spec's, confined to the namespace when so configured.
    query: String,
    workload: Workload,
    hpa: Option<Arc<HorizontalPodAutoscaler>>,
    /// The KEDA ScaledObject that manages `hpa` (with KEDA support on): the floor goes there.
    scaled_object: Option<String>,
}

/// What the history refresh found.
struct LoadRead {
    /// Why there is no history this time: the read failed, or waits after failures.
    failure: Option<Failure>,
    refresh: Refresh,
}

impl LoadRead {
    /// Whether this read says nothing new to publish: it is the first failure, of a kind that
    /// passes (Prometheus unreachable or slow once), of a scaler whose metrics were available
    /// until now.
    fn tells_nothing_new(&self, ps: &PredictiveScaler) -> bool {
        let available_until_now = ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::METRICS_AVAILABLE && c.status == "True")
        });
        self.failure.as_ref().is_some_and(|f| {
            f.in_a_row == 1 && matches!(f.kind, FailureKind::Unreachable | FailureKind::TimedOut)
        }) && available_until_now
    }

    /// `MetricsAvailable`.
    fn finding(&self, decision: &Decision) -> Finding {
        match &self.failure {
            Some(f) => Finding::new(
                conditions::METRICS_AVAILABLE,
                false,
                f.reason(),
                f.message(),
            ),
            None => conditions::metrics_finding(decision, None, self.refresh.rejected),
        }
    }
}

/// What a reconcile of a live scaler came to.
enum Applied {
    Done,
    /// Nothing read, decided or written: the namespace's share of Prometheus reads was busy.
    Deferred,
}

async fn apply(ps: &PredictiveScaler, ctx: &Context) -> Result<Applied> {
    let now = Utc::now();
    match observe_decide_act(ps, ctx, now).await {
        // RBAC lacks a permission: say so on the object; the error policy backs off.
        Err(e) if e.is_forbidden() => {
            let finding = Finding::new(
                READY,
                false,
                "Forbidden",
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

async fn observe_decide_act(
    ps: &PredictiveScaler,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Applied> {
    let mut target = match observe(ps, ctx).await? {
        Ok(target) => target,
        Err(refusal) => {
            // A refused scaler plans nothing: its planned replicas must not linger in metrics.
            publish_plan_metrics(ctx, ps, None);
            give_back_floor(ps, ctx).await?;
            write_status(ps, ctx, None, vec![refusal], now).await?;
            return Ok(Applied::Done);
        }
    };
    let lead = match target.spec.lead_time_auto {
        true => Some(learn_lead_time(ps, ctx, &mut target, now).await),
        false => None,
    };
    let Some((decision, load, plan)) = decide(ps, ctx, &target, now).await else {
        // The namespace's share of reads is busy: this reconcile did not happen, and the
        // next comes sooner than a sync (see `Context::namespace_share`).
        return Ok(Applied::Deferred);
    };
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
        publish_metrics(ctx, ps, &decision, ready.current);
        return Ok(Applied::Done);
    }
    let mut findings = vec![
        ready.finding,
        load.finding(&decision),
        conditions::forecast_finding(&decision),
        conditions::limit_finding(&decision, &target.spec),
    ];
    findings.extend(conditions::objective_finding(&decision, &target.spec));
    findings.extend(conditions::capacity_finding(&decision, &target.spec));
    let target_name = format!(
        "{} {}",
        ps.spec.scale_target_ref.kind, ps.spec.scale_target_ref.name
    );
    match &lead {
        Some((_, survey)) => findings.push(conditions::pods_pending_finding(
            survey.as_ref().map_err(String::as_str),
            &target_name,
        )),
        // Back to a fixed lead time: a PodsPending from the Auto days must not linger.
        None if ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::PODS_PENDING && c.status == "True")
        }) =>
        {
            findings.push(Finding::new(
                conditions::PODS_PENDING,
                false,
                "FixedLeadTime",
                "spec.forecast.leadTime is fixed: the pods' start-up is not watched",
            ))
        }
        None => {}
    }
    publish_metrics(ctx, ps, &decision, ready.current);
    publish_plan_metrics(ctx, ps, plan.as_ref());
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
        }),
        findings,
        now,
    )
    .await?;
    Ok(Applied::Done)
}

/// Refuses with a `Ready=False` finding what must not be acted on, else returns the target.
async fn observe(ps: &PredictiveScaler, ctx: &Context) -> Result<Result<Target, Finding>> {
    let refuse =
        |reason: &str, message: String| Ok(Err(Finding::new(READY, false, reason, message)));
    let namespace = ps.namespace().unwrap_or_default();
    let spec = match ctx.validated(ps) {
        Ok(spec) => spec,
        Err(e) => {
            return refuse(
                "InvalidSpec",
                format!("{e}; nothing is scaled until it is fixed"),
            );
        }
    };
    if ps.spec.mode == Mode::Off {
        return Ok(Err(Finding::new(
            READY,
            true,
            "Off",
            "mode is Off: prescaler computes nothing and changes nothing",
        )));
    }
    let target_ref = &ps.spec.scale_target_ref;
    if let Some(elsewhere) = target_ref.namespace.as_deref().filter(|n| *n != namespace) {
        return refuse(
            "CrossNamespaceTarget",
            format!(
                "spec.scaleTargetRef.namespace is {elsewhere:?}: a PredictiveScaler may scale only targets in its own namespace ({namespace:?}); nothing is scaled"
            ),
        );
    }
    // Two PredictiveScalers on one target would fight; the oldest keeps it, as the HPA
    // controller refuses ambiguous selectors rather than guess.
    let key = |p: &PredictiveScaler| (p.creation_timestamp().map(|t| t.0), p.name_any());
    if let Some(first) = ctx
        .scalers
        .state()
        .iter()
        .filter(|other| {
            other.namespace().as_deref() == Some(namespace.as_str())
                && other.uid() != ps.uid()
                && other.meta().deletion_timestamp.is_none()
                && other.spec.scale_target_ref.kind == target_ref.kind
                && other.spec.scale_target_ref.name == target_ref.name
                && other.spec.mode != Mode::Off
        })
        .min_by_key(|other| key(other))
        && key(first) < key(ps)
    {
        return refuse(
            "AmbiguousTarget",
            format!(
                "PredictiveScaler {} already scales {} {}; this one does nothing while both exist",
                first.name_any(),
                target_ref.kind,
                target_ref.name
            ),
        );
    }
    let workload = match kubernetes::resolve(&ctx.client, &namespace, target_ref).await? {
        Ok(w) => w,
        Err(problem) => {
            let message = match &problem {
                TargetProblem::NotFound(m) => format!("{m}; nothing is scaled until it exists"),
                TargetProblem::NoScaleSubresource(m) => m.clone(),
            };
            return refuse(problem.reason(), message);
        }
    };
    let hpa = kubernetes::hpa_for(&ctx.hpas.state(), &namespace, target_ref);
    let scaled_object = hpa.as_deref().and_then(kubernetes::keda_owner);
    if let Some(name) = scaled_object.as_deref()
        && !ctx.settings.keda
    {
        return refuse(
            "KedaManagedTarget",
            format!(
                "HorizontalPodAutoscaler {} is managed by KEDA ScaledObject {name}, which would undo any floor prescaler sets on it; enable KEDA support (the chart's keda.enabled, or `prescaler run --keda`) to have prescaler hold the ScaledObject's minReplicaCount, or scale with prescaler alone",
                hpa.as_ref().map(|h| h.name_any()).unwrap_or_default()
            ),
        );
    }
    // KEDA deletes its HPA while a ScaledObject is paused: a target a ScaledObject scales is
    // never scaled through `/scale` beside it, HPA or not. (One list of the namespace's
    // ScaledObjects per reconcile, with KEDA support on.)
    if ctx.settings.keda
        && scaled_object.is_none()
        && let Some(so) = kubernetes::scaled_object_for(&ctx.client, &namespace, target_ref).await?
    {
        let name = so.name_any();
        return match kubernetes::keda_paused(&so) {
            Some(why) => refuse(
                "ScalingDisabled",
                format!(
                    "{why}: KEDA's scaling of the target is paused, so is prescaler's; nothing is written"
                ),
            ),
            None => refuse(
                "WaitingForKedaHpa",
                format!(
                    "KEDA ScaledObject {name} scales this target but its HorizontalPodAutoscaler does not exist yet; prescaler waits for it rather than scale the target beside KEDA"
                ),
            ),
        };
    }
    let query = match &ctx.settings.namespace_label {
        Some(label) => match confine_to_namespace(&ps.spec.metric.query, label, &namespace) {
            Ok(q) => q,
            Err(e) => {
                return refuse(
                    "InvalidSpec",
                    format!("spec.metric.query {e}; nothing is scaled until it is fixed"),
                );
            }
        },
        None => ps.spec.metric.query.clone(),
    };
    Ok(Ok(Target {
        spec,
        query,
        workload,
        hpa,
        scaled_object,
    }))
}

/// `leadTime: Auto`: surveys the target's pods (at most every `pod_survey_interval`) and sets
/// the spec's lead time to the one the tracker says to use. When the pods cannot be read the
/// lead time in use stays (the last survey's, else the default), and the error is returned for
/// the `PodsPending` condition. With it, the survey to show in status (this one, else the last).
async fn learn_lead_time(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &mut Target,
    now: DateTime<Utc>,
) -> (
    Option<startup::Survey>,
    std::result::Result<startup::Survey, String>,
) {
    let state = ctx
        .state_for(&ps.uid().unwrap_or_default(), ps, &target.spec)
        .await;
    let mut state = state.lock().await;
    let fresh = state
        .survey
        .as_ref()
        .filter(|(at, _)| at.elapsed() < ctx.settings.pod_survey_interval)
        .map(|(_, s)| s.clone());
    let survey = match fresh {
        Some(s) => Ok(s),
        None => {
            let namespace = ps.namespace().unwrap_or_default();
            match target.workload.selector() {
                None => Err(format!(
                    "{} reports no pod selector on its /scale (status.selector)",
                    target.workload.name
                )),
                Some(selector) => kubernetes::pod_starts(&ctx.client, &namespace, selector)
                    .await
                    .map(|pods| state.startup.survey(&pods, now))
                    .map_err(|e| e.to_string()),
            }
        }
    };
    match &survey {
        Ok(s) => {
            target.spec.lead_time = s.lead_time;
            state.survey = Some((Instant::now(), s.clone()));
        }
        Err(_) => {
            if let Some((_, last)) = &state.survey {
                target.spec.lead_time = last.lead_time;
            }
        }
    }
    let shown = state.survey.as_ref().map(|(_, s)| s.clone());
    (shown, survey)
}

/// Brings the scaler's history up to date and asks its planner; and its plan, when the last one
/// is older than its quarter hour or was made for another spec. `None` when the namespace's
/// share of reads is busy: nothing is read or decided then.
async fn decide(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &Target,
    now: DateTime<Utc>,
) -> Option<(Decision, LoadRead, Option<PlanStatus>)> {
    let state = ctx
        .state_for(&ps.uid().unwrap_or_default(), ps, &target.spec)
        .await;
    let mut state = state.lock_owned().await;
    state.planner.update_spec(target.spec.clone());
    let needs = state.planner.history_needs();
    if state.cache.query() != target.query || state.cache.needs() != needs {
        state.cache = HistoryCache::new(target.query.clone(), needs);
    }
    // After failed reads, nothing is sent until the backoff says so (see `backoff`): a query
    // Prometheus cannot answer in time is not sent again at every sync.
    let key = read_key(ps.metadata.generation, &target.query);
    let load = match state.reads.gate(key, Instant::now()).cloned() {
        Some(waiting) => LoadRead {
            failure: Some(waiting),
            refresh: Refresh::default(),
        },
        None => {
            let _share = ctx.namespace_share(&ps.namespace().unwrap_or_default())?;
            read_load(ps, ctx, &mut state, now).await
        }
    };
    let made_for = (
        now.duration_trunc(outlook::STEP).unwrap_or(now),
        ps.metadata.generation,
        target.spec.lead_time.num_seconds(),
    );
    let read = load.failure.is_none();
    let replicas = target.workload.replicas();
    let metrics = ctx.metrics.clone();
    // The planner's work (the history's series, the decision, a plan of 96 decisions ahead) is
    // CPU only: it runs on the blocking pool, so that one scaler's expensive spec cannot hold up
    // the runtime's workers, which renew the Lease and read the watches.
    let planned = tokio::task::spawn_blocking(move || {
        let history = read.then(|| state.cache.history()).flatten();
        let decided_at = Instant::now();
        let decision = state.planner.decide(history.as_ref(), replicas, now);
        metrics
            .decision_duration
            .observe(decided_at.elapsed().as_secs_f64());
        // Without the history (Prometheus failed this time) the last plan stands until a
        // reconcile that reads it: a plan of held steps would say nothing for a quarter hour.
        if history.is_some() && state.plan.as_ref().is_none_or(|p| p.made_for != made_for) {
            let planned_at = Instant::now();
            let plan = outlook::outlook(
                &state.planner,
                history.as_ref(),
                now,
                outlook::STEP,
                outlook::HORIZON,
            );
            metrics
                .plan_duration
                .observe(planned_at.elapsed().as_secs_f64());
            state.plan = plan.map(|o| PlanMemo {
                made_for,
                status: o.summary(),
            });
        }
        let plan = state.plan.as_ref().map(|p| p.status.clone());
        (decision, plan)
    })
    .await;
    match planned {
        Ok((decision, plan)) => Some((decision, load, plan)),
        // A panic in the planner is this reconcile's, caught and reported by `catch_panic`.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the planner's task did not finish: {e}"),
    }
}

/// Reads the load history up to `now` into the scaler's cache, within the global limit of
/// reads in flight, and records the outcome in its backoff.
async fn read_load(
    ps: &PredictiveScaler,
    ctx: &Context,
    state: &mut ScalerState,
    now: DateTime<Utc>,
) -> LoadRead {
    let refreshed = {
        let _slot = ctx.queries.acquire().await;
        let started = Instant::now();
        let r = state.cache.refresh(&ctx.prometheus, now).await;
        ctx.metrics
            .query_duration
            .observe(started.elapsed().as_secs_f64());
        r
    };
    match refreshed {
        Ok(refresh) => {
            ctx.metrics.queries.inc_by(refresh.queries as u64);
            state.reads.succeeded();
            LoadRead {
                failure: None,
                refresh,
            }
        }
        Err(e) => {
            ctx.metrics.query_errors.inc();
            let failure = state
                .reads
                .failed(FailureKind::of(&e), e.to_string(), Instant::now());
            warn!(
                namespace = ps.namespace(),
                name = ps.name_any(),
                error = %e,
                retry_in = ?failure.retry_in,
                "reading the load failed"
            );
            LoadRead {
                failure: Some(failure.clone()),
                refresh: Refresh::default(),
            }
        }
    }
}

/// What actuation did.
struct Actuated {
    finding: Finding,
    /// The replicas the workload has after it.
    current: u32,
    /// Whether prescaler changed the workload's replicas or an HPA's floor.
    scaled: bool,
}

async fn actuate(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &mut Target,
    decision: &Decision,
) -> Result<Actuated> {
    let current = target.workload.replicas();
    let target_name = format!(
        "{} {}",
        ps.spec.scale_target_ref.kind, ps.spec.scale_target_ref.name
    );
    let desired = decision.desired_replicas;
    let done = |finding: Finding, current: u32, scaled: bool| {
        Ok(Actuated {
            finding,
            current,
            scaled,
        })
    };
    if ps.spec.mode == Mode::ForecastOnly {
        give_back_floor(ps, ctx).await?;
        return done(
            Finding::new(
                READY,
                true,
                "ForecastOnly",
                format!(
                    "mode is ForecastOnly: {target_name} would be set to {desired} replicas; nothing is written"
                ),
            ),
            current,
            false,
        );
    }
    if let Some(why) = &target.workload.paused {
        give_back_floor(ps, ctx).await?;
        return done(
            Finding::new(
                READY,
                false,
                "ScalingDisabled",
                format!("{why}: prescaler does not scale it"),
            ),
            current,
            false,
        );
    }
    if current == 0 && target.hpa.is_none() {
        // The HPA's convention: a workload scaled to zero has scaling disabled.
        return done(
            Finding::new(
                READY,
                false,
                "ScalingDisabled",
                format!(
                    "{target_name} has 0 replicas: scaling is disabled until someone scales it up"
                ),
            ),
            current,
            false,
        );
    }
    if !ctx.may_write() {
        return done(
            Finding::new(
                READY,
                false,
                "NotLeader",
                "this replica lost the Lease; the new leader acts",
            ),
            current,
            false,
        );
    }
    if let Some(name) = target.scaled_object.clone() {
        return actuate_keda(ps, ctx, &name, &target_name, decision, current).await;
    }
    match target.hpa.clone() {
        Some(hpa) => {
            let uid = ps.uid().unwrap_or_default();
            add_finalizer(ps, ctx).await?;
            release_other_floors(ps, ctx, &FloorObject::Hpa(hpa.name_any())).await?;
            let set =
                kubernetes::set_hpa_floor(&ctx.client, &hpa, &uid, decision.floor_replicas).await?;
            if let Some(floor) = set {
                let holder = FloorObject::Hpa(hpa.name_any());
                let note = format!(
                    "set {holder}'s minReplicas to {floor} ({})",
                    decision.explain()
                );
                publish_floor(ctx, ps, "FloorSet", &holder, note).await;
            }
            done(
                Finding::new(
                    READY,
                    true,
                    "FloorOnHPA",
                    format!(
                        "HorizontalPodAutoscaler {} scales {target_name}; prescaler holds its minReplicas at the forecast floor",
                        hpa.name_any()
                    ),
                ),
                current,
                set.is_some(),
            )
        }
        None => {
            give_back_floor(ps, ctx).await?;
            let mut scaled = false;
            if desired != current {
                target.workload.set_replicas(desired).await?;
                scaled = true;
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
                publish(
                    ctx,
                    ps,
                    EventType::Normal,
                    verb,
                    format!(
                        "{target_name} from {current} to {desired} replicas ({})",
                        decision.explain()
                    ),
                )
                .await;
            }
            done(
                Finding::new(
                    READY,
                    true,
                    "Scaling",
                    format!("prescaler scales {target_name}"),
                ),
                target.workload.replicas(),
                scaled,
            )
        }
    }
}

/// Holds the floor on the KEDA ScaledObject `name` that manages the target's HPA: KEDA copies
/// `minReplicaCount` into its HPA on every sync, where a floor written on the HPA itself would be
/// undone. Read from the API server each time (only such targets pay for it).
async fn actuate_keda(
    ps: &PredictiveScaler,
    ctx: &Context,
    name: &str,
    target_name: &str,
    decision: &Decision,
    current: u32,
) -> Result<Actuated> {
    let namespace = ps.namespace().unwrap_or_default();
    let finding = |status: bool, reason: &str, message: String| Actuated {
        finding: Finding::new(READY, status, reason, message),
        current,
        scaled: false,
    };
    let Some(so) = kubernetes::get_scaled_object(&ctx.client, &namespace, name).await? else {
        give_back_floor(ps, ctx).await?;
        return Ok(finding(
            false,
            "ScaledObjectNotFound",
            format!(
                "the HorizontalPodAutoscaler of {target_name} names KEDA ScaledObject {name} as its owner, which does not exist; nothing is scaled"
            ),
        ));
    };
    if let Some(why) = kubernetes::keda_paused(&so) {
        give_back_floor(ps, ctx).await?;
        return Ok(finding(
            false,
            "ScalingDisabled",
            format!("{why}: prescaler does not scale it"),
        ));
    }
    add_finalizer(ps, ctx).await?;
    release_other_floors(ps, ctx, &FloorObject::ScaledObject(name.to_string())).await?;
    let uid = ps.uid().unwrap_or_default();
    let set = kubernetes::set_scaled_object_floor(&ctx.client, &so, &uid, decision.floor_replicas)
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
            true,
            "FloorOnScaledObject",
            format!(
                "KEDA ScaledObject {name} scales {target_name}; prescaler holds its minReplicaCount at the forecast floor"
            ),
        )
    })
}

/// Adds the finalizer before an HPA floor is set, guarded by the resourceVersion read.
async fn add_finalizer(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    if ps.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    // No floor may be set without the finalizer that guards it.
    if !ctx.may_write() {
        return Err(Error::NotLeader);
    }
    let mut all = ps.finalizers().to_vec();
    all.push(FINALIZER.into());
    set_finalizers(ps, ctx, all).await
}

/// Gives back every floor this scaler holds, then drops the finalizer that guarded them.
async fn give_back_floor(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    if !ps.finalizers().iter().any(|f| f == FINALIZER) || !ctx.may_write() {
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
async fn release_floors_but(
    ps: &PredictiveScaler,
    ctx: &Context,
    keep: Option<&FloorObject>,
) -> Result<()> {
    if !ctx.may_write() {
        return Ok(());
    }
    let namespace = ps.namespace().unwrap_or_default();
    let uid = ps.uid().unwrap_or_default();
    let mut sweep = kubernetes::release_floors(
        &ctx.client,
        Some(&namespace),
        Owners::One { uid: &uid, keep },
        ctx.settings.keda,
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
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Before holding the floor on `holder`: gives back any other floor this scaler holds, when it
/// may hold one elsewhere — the first time this process sees the scaler (an operator may have
/// stopped between a target change and its sweep) and after every spec change (a new
/// `scaleTargetRef`). The sweep lists the namespace's HPAs and ScaledObjects, so it is not done
/// at every sync.
async fn release_other_floors(
    ps: &PredictiveScaler,
    ctx: &Context,
    holder: &FloorObject,
) -> Result<()> {
    let uid = ps.uid().unwrap_or_default();
    let generation = ps.metadata.generation;
    let swept = locked(&ctx.floor_sweeps)
        .get(&uid)
        .is_some_and(|(g, h)| *g == generation && h == holder);
    if swept || !ps.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    release_floors_but(ps, ctx, Some(holder)).await?;
    locked(&ctx.floor_sweeps).insert(uid, (generation, holder.clone()));
    Ok(())
}

/// Writes the finalizer list, guarded by the resourceVersion read: a concurrent change to the
/// list is a 409 and a retry, never a lost finalizer.
async fn set_finalizers(
    ps: &PredictiveScaler,
    ctx: &Context,
    finalizers: Vec<String>,
) -> Result<()> {
    if !ctx.may_write() {
        return Ok(());
    }
    kubernetes::write_finalizers(&ctx.client, ps, finalizers).await
}

/// A decision to publish, with the workload's replica count and when it was scaled.
struct Decided<'a> {
    decision: &'a Decision,
    current: u32,
    scaled_at: Option<DateTime<Utc>>,
    /// `status.leadTime`, with `leadTime: Auto`.
    lead_time: Option<crate::api::LeadTimeStatus>,
    /// The plan in brief (`status.plan`).
    plan: Option<&'a PlanStatus>,
}

/// The status this reconcile found: the decision's figures (or none, when it decided nothing)
/// and the conditions.
fn new_status(
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

/// Writes the status when it changed (server-side apply: fields this reconcile did not set are
/// removed), and an Event for every condition whose status or reason changed.
async fn write_status(
    ps: &PredictiveScaler,
    ctx: &Context,
    decided: Option<Decided<'_>>,
    findings: Vec<Finding>,
    now: DateTime<Utc>,
) -> Result<()> {
    // One writer: a replica that may no longer lead writes nothing, not even status.
    if !ctx.may_write() {
        return Ok(());
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
        ctx.metrics.status_writes.inc();
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

fn publish_metrics(ctx: &Context, ps: &PredictiveScaler, d: &Decision, current: u32) {
    let labels = labels(ps);
    let m = &ctx.metrics;
    m.current_replicas
        .get_or_create(&labels)
        .set(current as i64);
    m.desired_replicas
        .get_or_create(&labels)
        .set(d.desired_replicas as i64);
    if let Some(load) = d.load {
        m.load.get_or_create(&labels).set(load);
    }
    if let Some(r) = d.reactive_replicas {
        m.reactive_replicas.get_or_create(&labels).set(r as i64);
    }
    match (d.forecast_load, d.forecast_replicas) {
        (Some(load), Some(r)) => {
            m.forecast_load.get_or_create(&labels).set(load);
            m.forecast_replicas.get_or_create(&labels).set(r as i64);
        }
        _ => {
            m.forecast_load.remove(&labels);
            m.forecast_replicas.remove(&labels);
        }
    }
    match d.calibration.and_then(|c| c.error_percent) {
        Some(e) => {
            m.forecast_error_percent.get_or_create(&labels).set(e);
        }
        None => {
            m.forecast_error_percent.remove(&labels);
        }
    }
}

/// `prescaler_planned_replicas` at the plan's fixed horizons (a bounded set of label values).
fn publish_plan_metrics(ctx: &Context, ps: &PredictiveScaler, plan: Option<&PlanStatus>) {
    let labels = labels(ps);
    for (horizon, _) in outlook::HORIZONS {
        let key = PlanLabels::new(&labels, horizon);
        match plan.and_then(|p| p.ahead.iter().find(|a| a.r#in.as_deref() == Some(horizon))) {
            Some(a) => {
                ctx.metrics
                    .planned_replicas
                    .get_or_create(&key)
                    .set(a.replicas.into());
            }
            None => {
                ctx.metrics.planned_replicas.remove(&key);
            }
        }
    }
}

async fn publish(
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
async fn publish_floor(
    ctx: &Context,
    ps: &PredictiveScaler,
    reason: &str,
    holder: &FloorObject,
    note: String,
) {
    let related = holder.object_ref(&ps.namespace().unwrap_or_default());
    publish_about(ctx, ps, EventType::Normal, reason, note, Some(related)).await;
}

async fn publish_about(
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
