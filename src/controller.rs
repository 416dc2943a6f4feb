//! The operator: a kube-runtime `Controller` that reconciles every PredictiveScaler on change and
//! every sync period.
//!
//! A reconcile reads the target's `/scale`, brings the cached history of the metric up to date
//! from Prometheus, calls `plan::decide` (the same function the backtest replays), writes the
//! decision to the target (or to the floor of the HPA that already scales it), and publishes
//! status, conditions, Events and metrics. The per-scaler memory kept here (history cache,
//! forecast error record, behaviour records) is rebuilt from Prometheus after a restart; nothing
//! that matters lives only in this process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};
use tracing::{info, warn};

use crate::api::{Mode, PredictiveScaler, PredictiveScalerStatus, ValidatedSpec};
use crate::conditions::{self, Finding, READY, SCALING_LIMITED};
use crate::forecast::{self, ErrorTracker, ModelConfig};
use crate::plan::{self, Decision, Memory, Observations};
use crate::source::{HistoryCache, Prometheus};
use crate::target::{self, TargetProblem};
use crate::telemetry::{ErrorLabels, Metrics, ScalerLabels};
use crate::{Error, Result};

/// Removed only after the HPA floor this PredictiveScaler may hold has been given back.
pub const FINALIZER: &str = "prescaler.dev/hpa-floor";

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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sync_period: StdDuration::from_secs(30),
            concurrency: 8,
            model: ModelConfig::default(),
            instance: "prescaler".into(),
        }
    }
}

/// What one PredictiveScaler's reconciles share.
struct ScalerState {
    /// The spec generation the state was built for; any spec change starts afresh.
    generation: Option<i64>,
    cache: HistoryCache,
    memory: Memory,
    /// When the forecast was last calibrated from history.
    calibrated_at: Option<DateTime<Utc>>,
}

/// A PredictiveScaler's namespace and name.
type ScalerKey = (String, String);

/// Shared by all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub prometheus: Prometheus,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    recorder: Recorder,
    /// Every HPA in the cluster, kept by a watch (see `run`).
    hpas: reflector::Store<HorizontalPodAutoscaler>,
    hpa_writer: std::sync::Mutex<Option<reflector::store::Writer<HorizontalPodAutoscaler>>>,
    states: Mutex<HashMap<ScalerKey, Arc<Mutex<ScalerState>>>>,
    queries: Semaphore,
}

impl Context {
    pub fn new(
        client: kube::Client,
        prometheus: Prometheus,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "prescaler".into(),
                instance: Some(settings.instance.clone()),
            },
        );
        let queries = Semaphore::new(settings.concurrency.max(1) as usize);
        let (hpas, hpa_writer) = reflector::store();
        Self {
            hpas,
            hpa_writer: std::sync::Mutex::new(Some(hpa_writer)),
            client,
            prometheus,
            metrics,
            settings,
            recorder,
            states: Mutex::default(),
            queries,
        }
    }

    async fn state_for(
        &self,
        ps: &PredictiveScaler,
        spec: &ValidatedSpec,
    ) -> Arc<Mutex<ScalerState>> {
        let key = (ps.namespace().unwrap_or_default(), ps.name_any());
        let mut states = self.states.lock().await;
        let fresh = || {
            Arc::new(Mutex::new(ScalerState {
                generation: ps.metadata.generation,
                cache: HistoryCache::new(
                    ps.spec.metric.query.clone(),
                    Duration::from_std(spec.history).unwrap_or(Duration::days(28)),
                ),
                memory: Memory::default(),
                calibrated_at: None,
            }))
        };
        let entry = states.entry(key).or_insert_with(fresh);
        if entry.lock().await.generation != ps.metadata.generation {
            *entry = fresh();
        }
        entry.clone()
    }
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<PredictiveScaler> = Api::all(ctx.client.clone());
    let concurrency = ctx.settings.concurrency;
    // Reconcile on spec changes (and the deletion mark, which bumps the generation) — not on
    // the controller's own status writes, which would double every sync. The sync period's
    // requeue brings everything else.
    let (reader, writer) = reflector::store();
    let changes = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    // HPAs are read from a watched cache, not listed on every reconcile.
    let writer = ctx.hpa_writer.lock().expect("not poisoned").take();
    if let Some(writer) = writer {
        let hpas = watcher(
            Api::<HorizontalPodAutoscaler>::all(ctx.client.clone()),
            watcher::Config::default().any_semantic(),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
        tokio::spawn(hpas);
        if tokio::time::timeout(StdDuration::from_secs(30), ctx.hpas.wait_until_ready())
            .await
            .is_err()
        {
            warn!(
                "HorizontalPodAutoscalers could not be listed in 30 s; HPA floor mode waits for them"
            );
        }
    }
    Controller::for_stream(changes, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

/// Reconciles one PredictiveScaler.
pub async fn reconcile(ps: Arc<PredictiveScaler>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let namespace = ps.namespace().unwrap_or_default();
    let api: Api<PredictiveScaler> = Api::namespaced(ctx.client.clone(), &namespace);
    let has_finalizer = ps.finalizers().iter().any(|f| f == FINALIZER);
    let action = if ps.meta().deletion_timestamp.is_some() {
        if has_finalizer {
            cleanup(&ps, &ctx).await?;
            let rest = ps.finalizers().iter().filter(|f| *f != FINALIZER).cloned();
            set_finalizers(&api, &ps, rest.collect()).await?;
        }
        Action::await_change()
    } else {
        if !has_finalizer {
            let mut all = ps.finalizers().to_vec();
            all.push(FINALIZER.into());
            set_finalizers(&api, &ps, all).await?;
        }
        apply(&ps, &ctx, &api).await?
    };
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(action)
}

/// Writes the finalizer list, guarded by the resourceVersion read: a concurrent change to the
/// list is a 409 and a retry, never a lost finalizer.
async fn set_finalizers(
    api: &Api<PredictiveScaler>,
    ps: &PredictiveScaler,
    finalizers: Vec<String>,
) -> Result<()> {
    let patch = json!({ "metadata": {
        "resourceVersion": ps.resource_version(), "finalizers": finalizers } });
    api.patch(
        &ps.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(target::kube_error)
}

/// Retries soon after a failure; the failure is counted and logged.
pub fn error_policy(ps: Arc<PredictiveScaler>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = match error {
        Error::Kube(_) => "kubernetes",
        Error::Source { .. } => "prometheus",
        _ => "other",
    };
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels { kind: kind.into() })
        .inc();
    warn!(namespace = ps.namespace(), name = ps.name_any(), error = %error, "reconcile failed; retrying");
    Action::requeue(StdDuration::from_secs(5))
}

/// Gives back the HPA floor and forgets the scaler.
async fn cleanup(ps: &PredictiveScaler, ctx: &Context) -> Result<()> {
    let namespace = ps.namespace().unwrap_or_default();
    release_hpa_floor(ps, ctx, &namespace).await?;
    ctx.states
        .lock()
        .await
        .remove(&(namespace.clone(), ps.name_any()));
    ctx.metrics.remove(&ScalerLabels {
        namespace,
        name: ps.name_any(),
    });
    Ok(())
}

/// Restores the minReplicas of an HPA whose floor this PredictiveScaler holds.
async fn release_hpa_floor(ps: &PredictiveScaler, ctx: &Context, namespace: &str) -> Result<bool> {
    let Some(hpa) = target::hpa_for(&ctx.hpas.state(), namespace, &ps.spec.scale_target_ref) else {
        return Ok(false);
    };
    let owned = hpa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(target::OWNER_ANNOTATION))
        .is_some_and(|o| *o == ps.name_any());
    if !owned {
        return Ok(false);
    }
    let restored = target::restore_hpa(&ctx.client, &hpa).await?;
    if restored {
        publish(
            ctx,
            ps,
            EventType::Normal,
            "FloorReleased",
            format!(
                "restored HorizontalPodAutoscaler {}'s minReplicas to {}",
                hpa.name_any(),
                target::hpa_original_min(&hpa)
            ),
        )
        .await;
    }
    Ok(restored)
}

/// What a reconcile of a live (not deleted) PredictiveScaler found and did.
struct Outcome {
    findings: Vec<Finding>,
    status: PredictiveScalerStatus,
}

async fn apply(
    ps: &PredictiveScaler,
    ctx: &Context,
    api: &Api<PredictiveScaler>,
) -> Result<Action> {
    let now = Utc::now();
    let namespace = ps.namespace().unwrap_or_default();
    let mut outcome = Outcome {
        findings: Vec::new(),
        status: PredictiveScalerStatus {
            // Keep the last decision's figures and scale time unless this one replaces them.
            observed_generation: ps.metadata.generation,
            ..ps.status.clone().unwrap_or_default()
        },
    };
    let requeue = Action::requeue(ctx.settings.sync_period);

    // Invalid specs: say which field, and touch nothing.
    let spec = match ps.spec.validate() {
        Ok(spec) => spec,
        Err(e) => {
            outcome.findings.push(Finding::new(
                READY,
                false,
                "InvalidSpec",
                format!("{e}; nothing is scaled until it is fixed"),
            ));
            finish(ps, ctx, api, outcome, now).await?;
            return Ok(requeue);
        }
    };
    if ps.spec.mode == Mode::Off {
        release_hpa_floor(ps, ctx, &namespace).await?;
        outcome.findings.push(Finding::new(
            READY,
            true,
            "Off",
            "mode is Off: prescaler computes nothing and changes nothing",
        ));
        finish(ps, ctx, api, outcome, now).await?;
        return Ok(requeue);
    }

    if let Some(elsewhere) = ps
        .spec
        .scale_target_ref
        .namespace
        .as_deref()
        .filter(|n| *n != namespace)
    {
        outcome.findings.push(Finding::new(
            READY,
            false,
            "CrossNamespaceTarget",
            format!(
                "spec.scaleTargetRef.namespace is {elsewhere:?}: a PredictiveScaler may scale only targets in its own namespace ({namespace:?}); nothing is scaled"
            ),
        ));
        finish(ps, ctx, api, outcome, now).await?;
        return Ok(requeue);
    }
    let mut workload =
        match target::resolve(&ctx.client, &namespace, &ps.spec.scale_target_ref).await? {
            Ok(w) => w,
            Err(problem) => {
                let message = match &problem {
                    TargetProblem::NotFound(m) => format!("{m}; nothing is scaled until it exists"),
                    TargetProblem::NoScaleSubresource(m) => m.clone(),
                };
                outcome
                    .findings
                    .push(Finding::new(READY, false, problem.reason(), message));
                finish(ps, ctx, api, outcome, now).await?;
                return Ok(requeue);
            }
        };
    let current = workload.replicas();

    // The load: bring the cached history up to date; a failure means holding, not scaling down.
    let state = ctx.state_for(ps, &spec).await;
    let mut state = state.lock().await;
    let refresh = {
        let _slot = ctx.queries.acquire().await.expect("never closed");
        let started = Instant::now();
        let r = state.cache.refresh(&ctx.prometheus, now).await;
        ctx.metrics
            .query_duration
            .observe(started.elapsed().as_secs_f64());
        r
    };
    let metrics_problem = match refresh {
        Ok(r) => {
            ctx.metrics.queries.inc_by(r.queries as u64);
            None
        }
        Err(e) => {
            ctx.metrics.query_errors.inc();
            Some(e.to_string())
        }
    };
    let history = state.cache.history();
    let lead = Duration::from_std(spec.lead_time).unwrap_or(Duration::minutes(6));
    let calibration_due = state
        .calibrated_at
        .is_none_or(|t| now - t >= ctx.settings.model.recalibrate_interval);
    if let Some(h) = history
        .as_ref()
        .filter(|_| calibration_due && metrics_problem.is_none())
    {
        // Calibrate the forecast by replaying the last day's forecasts from history: after a
        // start or a spec change, then every recalibration interval. A restarted operator so
        // decides as the one before it did, and no day of scores is kept in memory.
        let target = forecast::Target {
            lead,
            quantile: spec.target_quantile,
            unit: spec.target_per_replica,
        };
        let predictors = forecast::predictors_for(&spec.seasonality);
        let mut tracker = ErrorTracker::warm_up(
            &ctx.settings.model,
            h,
            now,
            Duration::zero(),
            target,
            &predictors,
        );
        tracker.freeze();
        state.memory.forecast = tracker;
        state.calibrated_at = Some(now);
    }
    let view = history
        .as_ref()
        .filter(|_| metrics_problem.is_none())
        .and_then(|h| h.view_at(now));
    let decided_at = Instant::now();
    let decision = plan::decide(
        &spec,
        &ctx.settings.model,
        Observations {
            load: view,
            current_replicas: current,
        },
        &mut state.memory,
        now,
    );
    ctx.metrics
        .decision_duration
        .observe(decided_at.elapsed().as_secs_f64());
    let observed_span = history.as_ref().map_or(Duration::zero(), |h| {
        h.values()
            .iter()
            .position(|v| v.is_finite())
            .map_or(Duration::zero(), |first| {
                h.step() * (h.len() - first) as i32
            })
    });
    drop(state);

    outcome.findings.push(conditions::metrics_finding(
        &decision,
        metrics_problem.as_deref(),
        &ps.spec.metric.query,
    ));
    outcome.findings.push(conditions::forecast_finding(
        &decision,
        &spec,
        observed_span,
    ));
    outcome
        .findings
        .push(conditions::limit_finding(&decision, &spec));
    record_decision(&mut outcome.status, &decision, current);
    publish_metrics(ctx, ps, &decision, current);

    // Act.
    let target_name = format!(
        "{} {}",
        ps.spec.scale_target_ref.kind, ps.spec.scale_target_ref.name
    );
    let desired = decision.desired_replicas;
    let ready = match ps.spec.mode {
        Mode::ForecastOnly => {
            release_hpa_floor(ps, ctx, &namespace).await?;
            Finding::new(
                READY,
                true,
                "ForecastOnly",
                format!(
                    "mode is ForecastOnly: {target_name} would be set to {desired} replicas; nothing is written"
                ),
            )
        }
        _ => match target::hpa_for(&ctx.hpas.state(), &namespace, &ps.spec.scale_target_ref) {
            Some(hpa) => {
                let raised =
                    target::raise_hpa_floor(&ctx.client, &hpa, &ps.name_any(), desired).await?;
                if let Some(floor) = raised {
                    outcome.status.last_scale_time = Some(now.to_rfc3339());
                    publish(
                        ctx,
                        ps,
                        EventType::Normal,
                        "FloorRaised",
                        format!(
                            "set HorizontalPodAutoscaler {}'s minReplicas to {floor} ({})",
                            hpa.name_any(),
                            decision.explain()
                        ),
                    )
                    .await;
                }
                Finding::new(
                    READY,
                    true,
                    "FloorOnHPA",
                    format!(
                        "HorizontalPodAutoscaler {} scales {target_name}; prescaler holds its minReplicas at the forecast floor",
                        hpa.name_any()
                    ),
                )
            }
            None => {
                if desired != current {
                    workload.set_replicas(desired).await?;
                    outcome.status.last_scale_time = Some(now.to_rfc3339());
                    let verb = if desired > current {
                        "ScaledUp"
                    } else {
                        "ScaledDown"
                    };
                    info!(
                        namespace,
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
                Finding::new(
                    READY,
                    true,
                    "Scaling",
                    format!("prescaler scales {target_name}"),
                )
            }
        },
    };
    outcome.findings.insert(0, ready);
    finish(ps, ctx, api, outcome, now).await?;
    Ok(requeue)
}

fn record_decision(status: &mut PredictiveScalerStatus, d: &Decision, current: u32) {
    let as_i32 = |v: u32| v.min(i32::MAX as u32) as i32;
    status.current_replicas = Some(as_i32(current));
    status.desired_replicas = Some(as_i32(d.desired_replicas));
    status.reactive_replicas = d.reactive_replicas.map(as_i32);
    status.forecast_replicas = d.forecast_replicas.map(as_i32);
    status.scheduled_min_replicas = d.scheduled.as_ref().map(|s| as_i32(s.min_replicas));
    status.reason = Some(d.reason.as_str().into());
    status.forecast_load = d.forecast_load.map(round2);
    status.forecast_error_percent = d.calibration.or(d.demoted).map(|c| round2(c.error_percent));
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn publish_metrics(ctx: &Context, ps: &PredictiveScaler, d: &Decision, current: u32) {
    let labels = ScalerLabels {
        namespace: ps.namespace().unwrap_or_default(),
        name: ps.name_any(),
    };
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
    if let Some(c) = d.calibration.or(d.demoted) {
        m.forecast_error_percent
            .get_or_create(&labels)
            .set(c.error_percent);
    }
}

/// Writes the status, and an Event for every condition whose status or reason changed.
async fn finish(
    ps: &PredictiveScaler,
    ctx: &Context,
    api: &Api<PredictiveScaler>,
    mut outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<()> {
    let previous = ps
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let time = Time(
        k8s_openapi::jiff::Timestamp::from_millisecond(now.timestamp_millis()).expect("in range"),
    );
    let (conditions, changed) =
        conditions::merge(&previous, &outcome.findings, ps.metadata.generation, &time);
    outcome.status.conditions = conditions;
    let patch = json!({ "status": outcome.status });
    api.patch_status(
        &ps.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(target::kube_error)?;
    for f in changed {
        // A first healthy condition is not news; a problem, or a recovery from one, is.
        let recovered = previous
            .iter()
            .any(|c| c.type_ == f.type_ && c.status == "False");
        if f.is_warning() || recovered || f.type_ == SCALING_LIMITED && f.status {
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

async fn publish(
    ctx: &Context,
    ps: &PredictiveScaler,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &ps.object_ref(&())).await {
        // An Event is information, not state: failing to record one must not stop scaling.
        warn!(error = %e, reason, "could not record an Event");
    }
}
