//! What the controller's end-to-end tests share: objects to put in the fake API, an operator
//! running against it, and ways to look at what it did.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use prescaler::adapters::history::LoadSource;
use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
use prescaler::operator::controller::Settings;
use prescaler::operator::telemetry::{Health, Metrics};
use prescaler::operator::{self, Caches};
use serde_json::{Value, json};

use super::fake_api::FakeApi;
use super::prometheus::METRIC;

pub const NS: &str = "shop";
pub const PER_REPLICA: f64 = 50.0;
/// The request timeout of the operator's Prometheus client in these tests, and of the scripted
/// sources that stand for it (`ScriptedSource::with_timeout`).
pub const PROMETHEUS_TIMEOUT: StdDuration = StdDuration::from_secs(2);

pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "replicas": replicas, "selector": { "matchLabels": { "app": name } } },
        "status": { "replicas": replicas },
    })
}

/// An HPA named `name` on Deployment `name`, `minReplicas: min` to 30, with `extra` merged in.
pub fn hpa(name: &str, min: i64, extra: Value) -> Value {
    let mut h = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                  "minReplicas": min, "maxReplicas": 30 },
    });
    merge(&mut h, &extra);
    h
}

/// A ConfigMap of `namespace` holding `text` under `key` (a calendar's `.ics`).
pub fn config_map(namespace: &str, name: &str, key: &str, text: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace },
        "data": { key: text },
    })
}

pub fn scaler(name: &str, service: &str, extra: Value) -> Value {
    let mut spec = json!({
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
        "minReplicas": 2, "maxReplicas": 40,
        "metric": { "query": format!("sum({METRIC}{{service=\"{service}\"}})"), "targetPerReplica": PER_REPLICA },
        "forecast": { "history": "8d", "seasonality": ["daily"], "leadTime": "6m" },
    });
    merge(&mut spec, &extra);
    json!({
        "apiVersion": "prescaler.dev/v1alpha1", "kind": "PredictiveScaler",
        "metadata": { "name": name, "namespace": NS },
        "spec": spec,
    })
}

pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Starts the operator's controller against the fake API; stops when the handle is dropped.
pub struct Operator {
    pub task: tokio::task::JoinHandle<()>,
    pub metrics: Arc<Metrics>,
}

impl Operator {
    /// Reconciles finished so far, from the operator's own metrics.
    pub fn reconciles(&self) -> u64 {
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("prescaler_reconcile_duration_seconds_count "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn start_operator(api: &FakeApi, prometheus_url: &str) -> Operator {
    start_operator_with(api, prometheus_url, |_| {})
}

/// Starts the operator with its settings edited (a 1-second sync period by default).
pub fn start_operator_with(
    api: &FakeApi,
    prometheus_url: &str,
    edit: impl FnOnce(&mut Settings),
) -> Operator {
    let mut cfg = PrometheusConfig::new(prometheus_url);
    cfg.timeout = PROMETHEUS_TIMEOUT;
    start_operator_on(api, Arc::new(Prometheus::new(&cfg).unwrap()), edit)
}

/// Starts the operator reading its load from `source` (Prometheus, or a `ScriptedSource`),
/// with its settings edited (a 1-second sync period by default).
pub fn start_operator_on(
    api: &FakeApi,
    source: Arc<dyn LoadSource>,
    edit: impl FnOnce(&mut Settings),
) -> Operator {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let metrics = Arc::new(Metrics::default());
    let mut settings = Settings {
        sync_period: StdDuration::from_secs(1),
        // Tests look for figures in the status within seconds; the refresh has its own test.
        status_refresh: StdDuration::ZERO,
        ..Settings::default()
    };
    edit(&mut settings);
    Operator {
        task: tokio::spawn(operator::run_controller(
            api.client(),
            source,
            metrics.clone(),
            Arc::new(Health::default()),
            settings,
            None,
            Caches::new(),
        )),
        metrics,
    }
}

/// Polls until `check` passes or `secs` pass; then fails with what the last look showed.
pub async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(secs);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(StdDuration::from_millis(200)).await,
        }
    }
}

pub fn get(api: &FakeApi, api_version: &str, kind: &str, name: &str) -> Value {
    api.get(api_version, kind, NS, name)
        .unwrap_or_else(|| panic!("{kind} {name} is gone"))
}

pub fn replicas(api: &FakeApi, name: &str) -> i64 {
    get(api, "apps/v1", "Deployment", name)["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

pub fn status(api: &FakeApi, name: &str) -> Value {
    get(api, "prescaler.dev/v1alpha1", "PredictiveScaler", name)["status"].clone()
}

pub fn condition(api: &FakeApi, name: &str, type_: &str) -> Option<(String, String, String)> {
    status(api, name)["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Events about one PredictiveScaler, as (type, reason, note).
pub fn events(api: &FakeApi, name: &str) -> Vec<(String, String, String)> {
    api.list("events.k8s.io/v1", "Event")
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

pub fn expect_condition(
    api: &FakeApi,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<(), String> {
    match condition(api, name, type_) {
        Some((s, r, _)) if s == status && r == reason => Ok(()),
        other => Err(format!("{type_} is {other:?}, want {status}/{reason}")),
    }
}
