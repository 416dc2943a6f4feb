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
    pub reconcile_duration: Histogram,
    pub decision_duration: Histogram,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub query_duration: Histogram,
    pub query_errors: Counter,
    pub queries: Counter,
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
            reconcile_duration: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            decision_duration: Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05]),
            reconcile_errors: Family::default(),
            query_duration: Histogram::new([0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            query_errors: Counter::default(),
            queries: Counter::default(),
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
            "reconcile_duration_seconds",
            "Time of one reconcile, Prometheus and Kubernetes calls included",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "decision_duration_seconds",
            "Time of the decision alone (forecast, floors, behaviour)",
            m.decision_duration.clone(),
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
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

/// What `/healthz` and `/readyz` report.
#[derive(Default)]
pub struct Health {
    /// Set once the Kubernetes client works and the operator takes part in leader election.
    pub ready: AtomicBool,
    /// Unix seconds of the last heartbeat of the main loop; `/healthz` fails when it stalls.
    pub heartbeat: AtomicU64,
}

impl Health {
    pub fn beat(&self) {
        self.heartbeat.store(unix_now(), Ordering::Relaxed);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stall_after: Duration,
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stall_after: Duration,
) -> std::io::Result<()> {
    let state = ServerState {
        metrics,
        health,
        stall_after,
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
    let last = s.health.heartbeat.load(Ordering::Relaxed);
    if unix_now().saturating_sub(last) <= s.stall_after.as_secs() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the main loop has stalled")
    }
}

async fn readyz(State(s): State<ServerState>) -> impl IntoResponse {
    if s.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
