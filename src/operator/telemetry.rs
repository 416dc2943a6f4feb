//! The operator's own telemetry: structured logs (`tracing`), its Prometheus metrics
//! (`prometheus-client`), and the HTTP endpoints `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::shards::Election;
use crate::api::PlanStatus;
use crate::planning::outlook::HORIZONS;
use crate::planning::plan::Decision;

/// Log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Sets up `tracing`; the level comes from `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Identifies one PredictiveScaler in the metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScalerLabels {
    pub namespace: String,
    pub name: String,
}

/// One PredictiveScaler's plan at one horizon (`15m`, `1h`, `3h`, `6h`, `24h`: five values, so
/// the series stay bounded at five per scaler).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub namespace: String,
    pub name: String,
    pub horizon: String,
}

impl PlanLabels {
    pub fn new(scaler: &ScalerLabels, horizon: &str) -> Self {
        Self {
            namespace: scaler.namespace.clone(),
            name: scaler.name.clone(),
            horizon: horizon.to_string(),
        }
    }
}

/// One PredictiveScaler's figures against the HPA on the same metric: `strategy` is
/// `prescaler` or `hpa` (two values, so two series per scaler and family).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StrategyLabels {
    pub namespace: String,
    pub name: String,
    pub strategy: String,
}

impl StrategyLabels {
    pub fn new(scaler: &ScalerLabels, strategy: &str) -> Self {
        Self {
            namespace: scaler.namespace.clone(),
            name: scaler.name.clone(),
            strategy: strategy.to_string(),
        }
    }
}

/// The strategies of `StrategyLabels`.
const STRATEGIES: [&str; 2] = ["prescaler", "hpa"];

/// Why a status was written (`controller::report::status_write_due`): `first`, `refresh`, or
/// the part of what an SRE acts on that changed (`replicas`, `reason`, `conditions`, `plan`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteCauseLabels {
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The operator's metrics, all prefixed `prescaler_`. The controller records through the
/// methods below (as kube-rs' controller-rs does), each named for what happened; the families
/// and their names stay here.
pub struct Metrics {
    registry: Registry,
    /// Series of one PredictiveScaler each, removed when it is deleted.
    scaler: PerScaler,
    /// The operator's work, all scalers together.
    work: Work,
}

/// The per-scaler series.
struct PerScaler {
    load: Family<ScalerLabels, FloatGauge>,
    forecast_load: Family<ScalerLabels, FloatGauge>,
    forecast_replicas: Family<ScalerLabels, Gauge>,
    reactive_replicas: Family<ScalerLabels, Gauge>,
    desired_replicas: Family<ScalerLabels, Gauge>,
    current_replicas: Family<ScalerLabels, Gauge>,
    forecast_error_percent: Family<ScalerLabels, FloatGauge>,
    planned_replicas: Family<PlanLabels, Gauge>,
    /// Replicas asked for, in replica-seconds, by prescaler and by the model HPA
    /// (`planning::ledger`), over the minutes that had a load sample.
    replica_seconds: Family<StrategyLabels, Counter<f64, AtomicU64>>,
    /// Minutes short of ready replicas, by strategy, in the same model.
    underprovisioned_minutes: Family<StrategyLabels, Counter>,
    /// The minutes counted: the denominator of the share short.
    savings_minutes: Family<ScalerLabels, Counter>,
    /// Reconcile time per PredictiveScaler: `rate()` of it is the share of a core each one
    /// costs, which finds the one tenant whose spec is expensive.
    scaler_reconcile_seconds: Family<ScalerLabels, Counter<f64, AtomicU64>>,
}

/// How often `Metrics::history_held` logs the count.
const HELD_LOGGED_EVERY: i64 = 100;

/// One scaler counted in `prescaler_histories_held` while this lives.
#[derive(Debug)]
pub struct HeldHistory(Gauge);

impl Drop for HeldHistory {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The operator-wide series.
struct Work {
    reconcile_duration: Histogram,
    /// How long reconciles waited for their slot in the fair queue (`fair_queue`).
    reconcile_wait: Histogram,
    /// Reconciles waiting for a slot now.
    reconciles_waiting: Gauge,
    decision_duration: Histogram,
    plan_duration: Histogram,
    reconcile_errors: Family<ErrorLabels, Counter>,
    query_duration: Histogram,
    query_errors: Counter,
    queries: Counter,
    status_writes: Family<WriteCauseLabels, Counter>,
    /// Scalers whose load history this process holds (see `HeldHistory`).
    histories_held: Gauge,
    /// With `--shards`: the shards this replica holds.
    shards_held: Gauge,
}

/// `metric`, registered in `registry` under `name` with `help`.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("prescaler");
        let scaler = PerScaler::registered(&mut registry);
        let work = Work::registered(&mut registry);
        Self {
            registry,
            scaler,
            work,
        }
    }
}

impl PerScaler {
    fn registered(r: &mut Registry) -> Self {
        Self {
            load: registered(
                r,
                "load",
                "The live load, in the metric's unit",
                Family::default(),
            ),
            forecast_load: registered(
                r,
                "forecast_load",
                "The forecast peak load for the lead-time window, without margin",
                Family::default(),
            ),
            forecast_replicas: registered(
                r,
                "forecast_replicas",
                "Replicas the forecast needs within the lead time, margin included",
                Family::default(),
            ),
            reactive_replicas: registered(
                r,
                "reactive_replicas",
                "Replicas the live load needs",
                Family::default(),
            ),
            desired_replicas: registered(
                r,
                "desired_replicas",
                "Replicas prescaler asks for",
                Family::default(),
            ),
            current_replicas: registered(
                r,
                "current_replicas",
                "Replicas the target has",
                Family::default(),
            ),
            forecast_error_percent: registered(
                r,
                "forecast_error_percent",
                "Mean absolute percentage error of the forecast over the last day",
                Family::default(),
            ),
            planned_replicas: registered(
                r,
                "planned_replicas",
                "Replicas prescaler expects to ask for at a horizon ahead (15m, 1h, 3h, 6h, 24h): its plan",
                Family::default(),
            ),
            replica_seconds: registered(
                r,
                "replica_seconds",
                "Replicas asked for, in replica-seconds, by prescaler and by an HPA on the same metric (strategy=\"hpa\", at --savings-hpa-target-utilization): a model estimate, the backtest's simulated pods and HPA run on the live metric",
                Family::default(),
            ),
            underprovisioned_minutes: registered(
                r,
                "underprovisioned_minutes",
                "Minutes with fewer ready replicas than the load needed, for prescaler and for an HPA on the same metric, in the backtest's model of simulated pods (a model estimate)",
                Family::default(),
            ),
            savings_minutes: registered(
                r,
                "savings_minutes",
                "Minutes counted in prescaler_replica_seconds_total and prescaler_underprovisioned_minutes_total (those with a load sample)",
                Family::default(),
            ),
            scaler_reconcile_seconds: registered(
                r,
                "scaler_reconcile_seconds",
                "Time spent reconciling each PredictiveScaler (rate() is its share of a core)",
                Family::default(),
            ),
        }
    }
}

impl Work {
    fn registered(r: &mut Registry) -> Self {
        Self {
            reconcile_duration: registered(
                r,
                "reconcile_duration_seconds",
                "Time of one reconcile, Prometheus and Kubernetes calls included (its wait for a slot not)",
                Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            ),
            reconcile_wait: registered(
                r,
                "reconcile_wait_seconds",
                "Time a reconcile waited for its slot (--concurrency, shared fairly among namespaces)",
                Histogram::new([0.001, 0.01, 0.1, 1.0, 5.0, 30.0, 120.0]),
            ),
            reconciles_waiting: registered(
                r,
                "reconciles_waiting",
                "Reconciles waiting for a slot now",
                Gauge::default(),
            ),
            decision_duration: registered(
                r,
                "decision_duration_seconds",
                "Time of the decision alone (forecast, floors, behaviour)",
                Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            ),
            plan_duration: registered(
                r,
                "plan_duration_seconds",
                "Time of one plan (the decisions of the next 24 hours, made every 15 minutes)",
                Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            ),
            reconcile_errors: registered(
                r,
                "reconcile_errors",
                "Reconciles that failed, by kind of failure",
                Family::default(),
            ),
            query_duration: registered(
                r,
                "prometheus_query_duration_seconds",
                "Time of the history refresh of one PredictiveScaler",
                Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            ),
            query_errors: registered(
                r,
                "prometheus_query_errors",
                "History refreshes that failed",
                Counter::default(),
            ),
            queries: registered(
                r,
                "prometheus_queries",
                "Range queries sent to Prometheus",
                Counter::default(),
            ),
            status_writes: registered(
                r,
                "status_writes",
                "PredictiveScaler status writes (only changes are written), by cause: first, refresh (figures only, once a --status-refresh), or the part an SRE acts on that changed",
                Family::default(),
            ),
            histories_held: registered(
                r,
                "histories_held",
                "PredictiveScalers whose load history this process has read and holds: after a start, how many are warm",
                Gauge::default(),
            ),
            shards_held: registered(
                r,
                "shards_held",
                "With --shards: the shards whose Lease this replica holds (and whose scalers it reconciles)",
                Gauge::default(),
            ),
        }
    }
}

impl Metrics {
    /// This replica holds `held` shards now.
    pub fn shards_held(&self, held: usize) {
        self.work.shards_held.set(held as i64);
    }

    /// A reconcile got its slot after `waited`, with `waiting` others still queued.
    pub fn reconcile_admitted(&self, waited: Duration, waiting: usize) {
        self.work.reconcile_wait.observe(waited.as_secs_f64());
        self.work.reconciles_waiting.set(waiting as i64);
    }

    /// A reconcile of `scaler` took `took` (its wait not included); a scaler being deleted
    /// gets no per-scaler series back.
    pub fn reconcile_finished(&self, scaler: &ScalerLabels, took: Duration, deleting: bool) {
        self.work.reconcile_duration.observe(took.as_secs_f64());
        if !deleting {
            self.scaler
                .scaler_reconcile_seconds
                .get_or_create(scaler)
                .inc_by(took.as_secs_f64());
        }
    }

    /// A reconcile failed; `kind` is `kubernetes`, `prometheus`, `panic` or `other`.
    pub fn reconcile_failure(&self, kind: &str) {
        self.work
            .reconcile_errors
            .get_or_create(&ErrorLabels { kind: kind.into() })
            .inc();
    }

    /// A history refresh that took `took` and sent `queries` range queries, or failed.
    pub fn history_refreshed(&self, took: Duration, queries: Option<usize>) {
        self.work.query_duration.observe(took.as_secs_f64());
        match queries {
            Some(n) => self.work.queries.inc_by(n as u64),
            None => self.work.query_errors.inc(),
        };
    }

    /// The planner's decision took `took`.
    pub fn decision_timed(&self, took: Duration) {
        self.work.decision_duration.observe(took.as_secs_f64());
    }

    /// A plan of the next 24 hours took `took`.
    pub fn plan_timed(&self, took: Duration) {
        self.work.plan_duration.observe(took.as_secs_f64());
    }

    /// A PredictiveScaler's status was written, for `cause` (`WriteCauseLabels`).
    pub fn status_written(&self, cause: &'static str) {
        self.work
            .status_writes
            .get_or_create(&WriteCauseLabels { cause })
            .inc();
    }

    /// A scaler's history was read whole: counted in `histories_held` until the returned
    /// guard is dropped (with the scaler's state, or when its query changes and the history is
    /// read anew). Every hundredth is logged, so that a cold start of thousands shows progress.
    pub fn history_held(&self) -> HeldHistory {
        let held = self.work.histories_held.inc() + 1;
        if held % HELD_LOGGED_EVERY == 0 {
            tracing::info!(scalers = held, "load history held for {held} scalers");
        }
        HeldHistory(self.work.histories_held.clone())
    }

    /// `scaler`'s decision and the replicas its target has: the figures behind it, those the
    /// decision did not use removed rather than left stale.
    pub fn observe_decision(&self, scaler: &ScalerLabels, d: &Decision, current: u32) {
        self.scaler
            .current_replicas
            .get_or_create(scaler)
            .set(current as i64);
        self.scaler
            .desired_replicas
            .get_or_create(scaler)
            .set(d.desired_replicas as i64);
        if let Some(load) = d.load {
            self.scaler.load.get_or_create(scaler).set(load);
        }
        if let Some(r) = d.reactive_replicas {
            self.scaler
                .reactive_replicas
                .get_or_create(scaler)
                .set(r as i64);
        }
        match (d.forecast_load, d.forecast_replicas) {
            (Some(load), Some(r)) => {
                self.scaler.forecast_load.get_or_create(scaler).set(load);
                self.scaler
                    .forecast_replicas
                    .get_or_create(scaler)
                    .set(r as i64);
            }
            _ => {
                self.scaler.forecast_load.remove(scaler);
                self.scaler.forecast_replicas.remove(scaler);
            }
        }
        match d.calibration.and_then(|c| c.error_percent) {
            Some(e) => {
                self.scaler
                    .forecast_error_percent
                    .get_or_create(scaler)
                    .set(e);
            }
            None => {
                self.scaler.forecast_error_percent.remove(scaler);
            }
        }
    }

    /// The minutes `added` counted against the HPA (`planning::ledger`).
    pub fn observe_savings(&self, scaler: &ScalerLabels, added: &crate::planning::ledger::Tally) {
        for (strategy, cost) in STRATEGIES.into_iter().zip([added.prescaler, added.hpa]) {
            let key = StrategyLabels::new(scaler, strategy);
            self.scaler
                .replica_seconds
                .get_or_create(&key)
                .inc_by(cost.replica_minutes as f64 * 60.0);
            self.scaler
                .underprovisioned_minutes
                .get_or_create(&key)
                .inc_by(cost.short_minutes);
        }
        self.scaler
            .savings_minutes
            .get_or_create(scaler)
            .inc_by(added.minutes);
    }

    /// `prescaler_planned_replicas` at the plan's fixed horizons (a bounded set of label
    /// values); no plan removes them.
    pub fn observe_plan(&self, scaler: &ScalerLabels, plan: Option<&PlanStatus>) {
        for (horizon, _) in HORIZONS {
            let key = PlanLabels::new(scaler, horizon);
            match plan.and_then(|p| p.ahead.iter().find(|a| a.r#in.as_deref() == Some(horizon))) {
                Some(a) => {
                    self.scaler
                        .planned_replicas
                        .get_or_create(&key)
                        .set(a.replicas.into());
                }
                None => {
                    self.scaler.planned_replicas.remove(&key);
                }
            }
        }
    }

    /// Forgets a PredictiveScaler that was deleted.
    pub fn remove(&self, labels: &ScalerLabels) {
        self.scaler.load.remove(labels);
        self.scaler.forecast_load.remove(labels);
        self.scaler.forecast_replicas.remove(labels);
        self.scaler.reactive_replicas.remove(labels);
        self.scaler.desired_replicas.remove(labels);
        self.scaler.current_replicas.remove(labels);
        self.scaler.forecast_error_percent.remove(labels);
        self.scaler.scaler_reconcile_seconds.remove(labels);
        self.scaler.savings_minutes.remove(labels);
        for strategy in STRATEGIES {
            let key = StrategyLabels::new(labels, strategy);
            self.scaler.replica_seconds.remove(&key);
            self.scaler.underprovisioned_minutes.remove(&key);
        }
        for (horizon, _) in HORIZONS {
            self.scaler
                .planned_replicas
                .remove(&PlanLabels::new(labels, horizon));
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

/// What `/healthz` and `/readyz` report: whether the controller makes progress and the Lease is
/// renewed, not merely whether a timer ticks.
#[derive(Default)]
pub struct Health {
    /// The Kubernetes client works and the operator takes part in leader election.
    started: AtomicBool,
    /// This replica leads (or runs without election).
    leading: AtomicBool,
    /// The HPA watch has synced: the controller reconciles.
    hpas_synced: AtomicBool,
    /// Unix seconds when a reconcile last finished.
    last_progress: AtomicU64,
}

impl Health {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }
    pub fn set_leading(&self) {
        self.last_progress.store(unix_now(), Ordering::Relaxed);
        self.leading.store(true, Ordering::Relaxed);
    }
    pub fn set_hpas_synced(&self) {
        self.last_progress.store(unix_now(), Ordering::Relaxed);
        self.hpas_synced.store(true, Ordering::Relaxed);
    }
    /// A reconcile finished.
    pub fn progress(&self) {
        self.last_progress.store(unix_now(), Ordering::Relaxed);
    }

    /// Why this replica is unhealthy, if it is: a leader whose Lease renewals stopped, or whose
    /// reconciles stopped finishing (the sync period requeues every scaler, so reconciles finish
    /// at least that often while there are scalers; `idle` says there are none).
    pub fn problem(
        &self,
        stall_after: Duration,
        election: &Election,
        idle: bool,
    ) -> Option<String> {
        if !self.leading.load(Ordering::Relaxed) {
            return None;
        }
        let now = unix_now();
        match election {
            Election::Leader(lease) => {
                let age = lease.renewed_at().map(|t| t.elapsed());
                if age.is_none_or(|a| a > lease.settings().lease_duration) {
                    return Some(match age {
                        Some(a) => format!("the Lease was last renewed {} s ago", a.as_secs()),
                        None => "leading without a renewed Lease".into(),
                    });
                }
            }
            // A replica may hold no shard (more replicas than shards); one it holds must be
            // renewed, or the loop that renews them is stuck.
            Election::Shards(shards) => {
                let age = shards.oldest_renewal().map(|t| t.elapsed());
                if let Some(age) = age.filter(|a| *a > shards.settings().lease_duration) {
                    return Some(format!(
                        "a shard's Lease was last renewed {} s ago",
                        age.as_secs()
                    ));
                }
            }
            Election::Alone => {}
        }
        let progressed = self.last_progress.load(Ordering::Relaxed);
        if !idle
            && self.hpas_synced.load(Ordering::Relaxed)
            && now.saturating_sub(progressed) > stall_after.as_secs()
        {
            return Some(format!(
                "no reconcile has finished for {} s",
                now.saturating_sub(progressed)
            ));
        }
        None
    }

    /// `Ok(what)` when ready: a standby, or a leader whose watches have synced.
    pub fn readiness(&self) -> Result<&'static str, &'static str> {
        match (
            self.started.load(Ordering::Relaxed),
            self.leading.load(Ordering::Relaxed),
            self.hpas_synced.load(Ordering::Relaxed),
        ) {
            (false, _, _) => Err("starting"),
            (true, false, _) => Ok("standby"),
            (true, true, false) => {
                Err("leading; waiting for the HorizontalPodAutoscaler watch to sync")
            }
            (true, true, true) => Ok("leading"),
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the controller has nothing to reconcile (for `/healthz`).
pub type IdleCheck = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    probes: Arc<Probes>,
}

/// What the probes judge by.
pub struct Probes {
    /// How long without a finished reconcile means the controller is stuck.
    pub stall_after: Duration,
    /// The Lease (or the shards' Leases), whose renewals `/healthz` watches.
    pub lease: Election,
    pub idle: IdleCheck,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    probes: Probes,
) -> std::io::Result<()> {
    let state = ServerState {
        metrics,
        health,
        probes: Arc::new(probes),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app).await
}

async fn metrics_handler(State(s): State<ServerState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn healthz(State(s): State<ServerState>) -> impl IntoResponse {
    let p = &s.probes;
    match s.health.problem(p.stall_after, &p.lease, (p.idle)()) {
        None => (StatusCode::OK, "ok".to_string()),
        Some(problem) => (StatusCode::SERVICE_UNAVAILABLE, problem),
    }
}

async fn readyz(State(s): State<ServerState>) -> impl IntoResponse {
    match s.health.readiness() {
        Ok(what) => (StatusCode::OK, what),
        Err(what) => (StatusCode::SERVICE_UNAVAILABLE, what),
    }
}
