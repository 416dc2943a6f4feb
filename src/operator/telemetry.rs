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

use super::leader::Leadership;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The operator's metrics, all prefixed `prescaler_`.
pub struct Metrics {
    pub registry: Registry,
    pub load: Family<ScalerLabels, FloatGauge>,
    pub forecast_load: Family<ScalerLabels, FloatGauge>,
    pub forecast_replicas: Family<ScalerLabels, Gauge>,
    pub reactive_replicas: Family<ScalerLabels, Gauge>,
    pub desired_replicas: Family<ScalerLabels, Gauge>,
    pub current_replicas: Family<ScalerLabels, Gauge>,
    pub forecast_error_percent: Family<ScalerLabels, FloatGauge>,
    pub planned_replicas: Family<PlanLabels, Gauge>,
    /// Reconcile time per PredictiveScaler: `rate()` of it is the share of a core each one
    /// costs, which finds the one tenant whose spec is expensive.
    pub scaler_reconcile_seconds: Family<ScalerLabels, Counter<f64, AtomicU64>>,
    pub reconcile_duration: Histogram,
    /// How long reconciles waited for their slot in the fair queue (`fair_queue`).
    pub reconcile_wait: Histogram,
    /// Reconciles waiting for a slot now.
    pub reconciles_waiting: Gauge,
    pub decision_duration: Histogram,
    pub plan_duration: Histogram,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub query_duration: Histogram,
    pub query_errors: Counter,
    pub queries: Counter,
    pub status_writes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("prescaler");
        let m = Self {
            registry: Registry::default(),
            load: Family::default(),
            forecast_load: Family::default(),
            forecast_replicas: Family::default(),
            reactive_replicas: Family::default(),
            desired_replicas: Family::default(),
            current_replicas: Family::default(),
            forecast_error_percent: Family::default(),
            planned_replicas: Family::default(),
            scaler_reconcile_seconds: Family::default(),
            reconcile_duration: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            reconcile_wait: Histogram::new([0.001, 0.01, 0.1, 1.0, 5.0, 30.0, 120.0]),
            reconciles_waiting: Gauge::default(),
            decision_duration: Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            plan_duration: Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            reconcile_errors: Family::default(),
            query_duration: Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            query_errors: Counter::default(),
            queries: Counter::default(),
            status_writes: Counter::default(),
        };
        registry.register(
            "load",
            "The live load, in the metric's unit",
            m.load.clone(),
        );
        registry.register(
            "forecast_load",
            "The forecast peak load for the lead-time window, without margin",
            m.forecast_load.clone(),
        );
        registry.register(
            "forecast_replicas",
            "Replicas the forecast needs within the lead time, margin included",
            m.forecast_replicas.clone(),
        );
        registry.register(
            "reactive_replicas",
            "Replicas the live load needs",
            m.reactive_replicas.clone(),
        );
        registry.register(
            "desired_replicas",
            "Replicas prescaler asks for",
            m.desired_replicas.clone(),
        );
        registry.register(
            "current_replicas",
            "Replicas the target has",
            m.current_replicas.clone(),
        );
        registry.register(
            "forecast_error_percent",
            "Mean absolute percentage error of the forecast over the last day",
            m.forecast_error_percent.clone(),
        );
        registry.register(
            "planned_replicas",
            "Replicas prescaler expects to ask for at a horizon ahead (15m, 1h, 3h, 6h, 24h): its plan",
            m.planned_replicas.clone(),
        );
        registry.register(
            "scaler_reconcile_seconds",
            "Time spent reconciling each PredictiveScaler (rate() is its share of a core)",
            m.scaler_reconcile_seconds.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time of one reconcile, Prometheus and Kubernetes calls included (its wait for a slot not)",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_wait_seconds",
            "Time a reconcile waited for its slot (--concurrency, shared fairly among namespaces)",
            m.reconcile_wait.clone(),
        );
        registry.register(
            "reconciles_waiting",
            "Reconciles waiting for a slot now",
            m.reconciles_waiting.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time of the decision alone (forecast, floors, behaviour)",
            m.decision_duration.clone(),
        );
        registry.register(
            "plan_duration_seconds",
            "Time of one plan (the decisions of the next 24 hours, made every 15 minutes)",
            m.plan_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by kind of failure",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "prometheus_query_duration_seconds",
            "Time of the history refresh of one PredictiveScaler",
            m.query_duration.clone(),
        );
        registry.register(
            "prometheus_query_errors",
            "History refreshes that failed",
            m.query_errors.clone(),
        );
        registry.register(
            "prometheus_queries",
            "Range queries sent to Prometheus",
            m.queries.clone(),
        );
        registry.register(
            "status_writes",
            "PredictiveScaler status writes (only changes are written)",
            m.status_writes.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Forgets a PredictiveScaler that was deleted.
    pub fn remove(&self, labels: &ScalerLabels) {
        self.load.remove(labels);
        self.forecast_load.remove(labels);
        self.forecast_replicas.remove(labels);
        self.reactive_replicas.remove(labels);
        self.desired_replicas.remove(labels);
        self.current_replicas.remove(labels);
        self.forecast_error_percent.remove(labels);
        self.scaler_reconcile_seconds.remove(labels);
        for (horizon, _) in crate::planning::outlook::HORIZONS {
            self.planned_replicas
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
        lease: Option<&Leadership>,
        idle: bool,
    ) -> Option<String> {
        if !self.leading.load(Ordering::Relaxed) {
            return None;
        }
        let now = unix_now();
        if let Some(lease) = lease {
            let age = lease.renewed_at().map(|t| t.elapsed());
            if age.is_none_or(|a| a > lease.settings().lease_duration) {
                return Some(match age {
                    Some(a) => format!("the Lease was last renewed {} s ago", a.as_secs()),
                    None => "leading without a renewed Lease".into(),
                });
            }
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
    /// The Lease, whose renewals `/healthz` watches; `None` without election.
    pub lease: Option<Arc<Leadership>>,
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
    match s
        .health
        .problem(p.stall_after, p.lease.as_deref(), (p.idle)())
    {
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
