//! Trust under faults, end to end: what a careless tenant, a person, another autoscaler, a lost
//! Lease or an unhealthy API server does, and that no workload is hurt by it. Each test is a row
//! of `docs/reliability.md`.
//!
//! The tests about Kubernetes and the decisions read their load from a scripted source
//! (`support/scripted.rs`): `steady_source`, or a script of their own. Those about reading
//! Prometheus (a query it refuses, timeouts and slow reads through a stand-in in front of it,
//! an outage, namespace confinement, the byte and series limits) and those that run the
//! `prescaler run` process read a real one.

use crate::support;

use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use http::Method;
use prescaler::adapters::kubernetes::POD_PAGE;
use prescaler::operator::leader::{Leadership, LeaseSettings};
use prescaler::operator::telemetry::{Health, Metrics};
use prescaler::operator::{self, Caches};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::*;
use support::process::operator_process;
use support::prometheus::{METRIC, TestPrometheus, samples};
use support::scripted::ScriptedSource;

/// A steady 100/s for two days, live too; and the same in two namespaces' own series. Read by
/// the tests about reading Prometheus and by the process tests; `steady_source` stands for it
/// in the others.
fn steady_prometheus() -> &'static TestPrometheus {
    static PROM: OnceLock<TestPrometheus> = OnceLock::new();
    PROM.get_or_init(|| {
        let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
        let (from, to) = (now - Duration::days(2), now - Duration::minutes(2));
        let series = [
            ("steady", 100.0),
            (r#"service="pay",namespace="payments""#, 900.0),
            (r#"service="pay",namespace="shop""#, 100.0),
        ];
        let history: Vec<(&str, _)> = series
            .iter()
            .map(|(name, v)| (*name, samples(from, to, Duration::minutes(1), |_| *v)))
            .collect();
        let prom = TestPrometheus::start(&history);
        for (name, v) in series {
            prom.set_live(name, Some(v));
        }
        prom.wait_for_live("steady", 100.0);
        prom
    })
}

/// When `steady_prometheus` would have started: the first time a test asks, to the minute.
fn steady_origin() -> DateTime<Utc> {
    static ORIGIN: OnceLock<DateTime<Utc>> = OnceLock::new();
    *ORIGIN.get_or_init(|| Utc::now().duration_trunc(Duration::minutes(1)).unwrap())
}

/// What `steady_prometheus` answers for `steady`, scripted: 100/s from two days before it
/// started up to now. Its other series (two namespaces' own) are for the tests of namespace
/// confinement, which read the real one; a query of any other service finds no series.
fn steady_load(query: &str, t: DateTime<Utc>) -> Option<f64> {
    let steady = query.contains(r#"service="steady""#);
    (steady && t >= steady_origin() - Duration::days(2)).then_some(100.0)
}

/// `steady_prometheus` as the operator's client sees it (its timeout too), scripted: for the
/// tests about Kubernetes and the decisions, not about reading Prometheus.
fn steady_source() -> Arc<ScriptedSource> {
    Arc::new(ScriptedSource::new(steady_load).with_timeout(PROMETHEUS_TIMEOUT))
}

/// A floor of `min` replicas from a peak window that is always open.
fn floor(min: i64) -> Value {
    json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": min }] })
}

fn scale_writes(api: &FakeApi, name: &str) -> usize {
    api.writes_to(&format!("/{name}/scale"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_or_scaled_to_zero_workload_is_never_written() {
    let api = FakeApi::new();
    let mut paused = deployment("paused", 3);
    paused["metadata"]["annotations"] = json!({ "prescaler.dev/paused": "true" });
    api.put(paused);
    api.put(deployment("zero", 0));
    api.put(scaler("paused", "steady", floor(6)));
    api.put(scaler("zero", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    for name in ["paused", "zero"] {
        eventually(20, "the reason is told", || {
            expect_condition(&api, name, "Ready", "False", "ScalingDisabled")
        })
        .await;
    }
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(scale_writes(&api, "paused") + scale_writes(&api, "zero"), 0);
    assert_eq!((replicas(&api, "paused"), replicas(&api, "zero")), (3, 0));
    // Unpaused, it is scaled again.
    api.put(deployment("paused", 3));
    eventually(20, "scaled once unpaused", || {
        match replicas(&api, "paused") {
            6 => Ok(()),
            r => Err(format!("{r} replicas")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_scaler_on_one_target_does_nothing() {
    let api = FakeApi::new();
    api.put(deployment("web", 2));
    api.put(scaler("web", "steady", floor(5)));
    let mut second = scaler("web", "steady", floor(9));
    second["metadata"]["name"] = json!("web-2");
    api.put(second);
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "the second is refused", || {
        expect_condition(&api, "web-2", "Ready", "False", "AmbiguousTarget")
    })
    .await;
    let (_, _, message) = condition(&api, "web-2", "Ready").unwrap();
    assert!(
        message.contains("PredictiveScaler web already scales"),
        "{message}"
    );
    eventually(20, "the first scales", || match replicas(&api, "web") {
        5 => Ok(()),
        r => Err(format!("{r} replicas")),
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(replicas(&api, "web"), 5, "no flapping between 5 and 9");
    assert_eq!(scale_writes(&api, "web"), 1);
}

/// A KEDA ScaledObject `name` scaling the Deployment `name`, with the HPA KEDA makes for it
/// (`keda-hpa-<name>`, owned by the ScaledObject), synced once as KEDA would.
fn keda_scaled(api: &FakeApi, name: &str, min: i64) {
    api.put(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": name, "namespace": NS },
        "spec": { "scaleTargetRef": { "name": name }, "minReplicaCount": min, "maxReplicaCount": 30,
                  "triggers": [{ "type": "prometheus", "metadata": { "threshold": "50" } }] },
    }));
    // KEDA makes the ScaledObject its HPA's controller, by uid.
    let uid = scaled_object(api, name)["metadata"]["uid"].clone();
    api.put(hpa(
        name,
        1,
        json!({ "metadata": { "name": format!("keda-hpa-{name}"), "ownerReferences": [{
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": name, "uid": uid, "controller": true }] } }),
    ));
    api.keda_sync(NS, name);
}

/// An HPA is the tenant's to write, a ScaledObject may be another team's: an HPA of the tenant's
/// own Deployment that names a ScaledObject of another workload as its controller (its name, or
/// also a made-up uid) must not make prescaler raise that ScaledObject's floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_that_names_another_workloads_scaled_object_raises_no_floor_there() {
    let api = FakeApi::new();
    api.put(deployment("platform-worker", 2));
    keda_scaled(&api, "platform-worker", 1);
    api.put(deployment("web", 2));
    let real_uid = scaled_object(&api, "platform-worker")["metadata"]["uid"].clone();
    // The forged HPA scales `web` and claims the platform's ScaledObject, with its real uid: the
    // ScaledObject does not scale `web`.
    api.put(hpa(
        "web",
        1,
        json!({ "metadata": { "name": "forged", "ownerReferences": [{
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "platform-worker",
            "uid": real_uid, "controller": true }] } }),
    ));
    api.put(scaler("web", "steady", floor(30)));
    let _op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(30, "refused", || {
        expect_condition(&api, "web", "Ready", "False", "ScaledObjectMismatch")
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(min_replica_count(&api, "platform-worker"), 1);
    let so = scaled_object(&api, "platform-worker");
    assert!(
        so["metadata"]["annotations"]
            .get("prescaler.dev/floor-owner")
            .is_none(),
        "no prescaler bookkeeping on another team's ScaledObject: {so}"
    );
}

fn scaled_object(api: &FakeApi, name: &str) -> Value {
    get(api, "keda.sh/v1alpha1", "ScaledObject", name)
}

fn min_replica_count(api: &FakeApi, name: &str) -> i64 {
    scaled_object(api, name)["spec"]["minReplicaCount"]
        .as_i64()
        .unwrap()
}

fn keda_hpa_min(api: &FakeApi, name: &str) -> i64 {
    get(
        api,
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &format!("keda-hpa-{name}"),
    )["spec"]["minReplicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_owned_by_keda_is_refused_without_keda_support() {
    let api = FakeApi::new();
    api.put(deployment("queue", 2));
    keda_scaled(&api, "queue", 2);
    api.put(scaler("queue", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "refused", || {
        expect_condition(&api, "queue", "Ready", "False", "KedaManagedTarget")
    })
    .await;
    let (_, _, message) = condition(&api, "queue", "Ready").unwrap();
    assert!(
        message.contains("ScaledObject queue")
            && message.contains("minReplicaCount")
            && message.contains("keda.enabled")
            && message.contains("--keda"),
        "says how to enable it: {message}"
    );
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(api.writes_to("/horizontalpodautoscalers/"), 0);
    assert_eq!(api.writes_to("/scaledobjects/"), 0);
    assert_eq!(scale_writes(&api, "queue"), 0);
    assert_eq!(min_replica_count(&api, "queue"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keda_support_the_floor_goes_to_the_scaled_object_and_survives_keda_syncs() {
    let api = FakeApi::new();
    api.put(deployment("queue", 2));
    // minReplicaCount 0 (KEDA's scale to zero): the HPA's minReplicas is 1.
    keda_scaled(&api, "queue", 0);
    assert_eq!(keda_hpa_min(&api, "queue"), 1);
    api.put(scaler("queue", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(
        20,
        "the floor reaches the ScaledObject",
        || match min_replica_count(&api, "queue") {
            6 => Ok(()),
            m => Err(format!("minReplicaCount {m}")),
        },
    )
    .await;
    let so = scaled_object(&api, "queue");
    assert_eq!(
        so["metadata"]["annotations"]["prescaler.dev/original-min-replicas"],
        "0"
    );
    expect_condition(&api, "queue", "Ready", "True", "FloorOnScaledObject").unwrap();
    assert!(
        events(&api, "queue")
            .iter()
            .any(|(_, r, n)| r == "FloorSet" && n.contains("ScaledObject queue"))
    );
    // KEDA syncs its HPA from the ScaledObject again and again: the floor holds each time, and
    // prescaler never writes the HPA (KEDA would undo it) nor the Deployment.
    for sync in 0..10 {
        api.keda_sync(NS, "queue");
        assert_eq!(keda_hpa_min(&api, "queue"), 6, "after KEDA sync {sync}");
        tokio::time::sleep(StdDuration::from_millis(300)).await;
    }
    assert_eq!(api.writes_to("/horizontalpodautoscalers/"), 0);
    assert_eq!(scale_writes(&api, "queue"), 0);
    // Off: the ScaledObject's own value comes back exactly (0, not KEDA's HPA 1).
    let mut off = scaler("queue", "steady", floor(6));
    off["spec"]["mode"] = json!("Off");
    api.put(off);
    eventually(20, "given back on Off", || {
        let so = scaled_object(&api, "queue");
        let clean = so["metadata"]["annotations"]
            .get("prescaler.dev/original-min-replicas")
            .is_none();
        match so["spec"]["minReplicaCount"].as_i64() {
            Some(0) if clean => Ok(()),
            _ => Err(so.to_string()),
        }
    })
    .await;
    api.keda_sync(NS, "queue");
    assert_eq!(keda_hpa_min(&api, "queue"), 1);
    // Auto again, then deleted: the floor comes back, then the original goes back.
    api.put(scaler("queue", "steady", floor(6)));
    eventually(20, "the floor again", || {
        match min_replica_count(&api, "queue") {
            6 => Ok(()),
            m => Err(format!("minReplicaCount {m}")),
        }
    })
    .await;
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "queue");
    eventually(20, "given back on delete", || {
        let so = scaled_object(&api, "queue");
        let clean = so["metadata"]["annotations"]
            .get("prescaler.dev/floor-owner")
            .is_none();
        let gone = api
            .get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "queue")
            .is_none();
        match so["spec"]["minReplicaCount"].as_i64() {
            Some(0) if clean && gone => Ok(()),
            _ => Err(so.to_string()),
        }
    })
    .await;
    assert!(
        events(&api, "queue")
            .iter()
            .any(|(_, r, n)| r == "FloorReleased" && n.contains("minReplicaCount to 0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_of_min_replica_count_is_adopted_and_given_back() {
    let api = FakeApi::new();
    api.put(deployment("jobs", 2));
    keda_scaled(&api, "jobs", 2);
    // KEDA writes the ScaledObject's status all along: prescaler's guarded writes conflict.
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                api.touch_status("keda.sh/v1alpha1", "ScaledObject", NS, "jobs");
                api.keda_sync(NS, "jobs");
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
        })
    };
    api.put(scaler("jobs", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(20, "the floor is set", || {
        match (min_replica_count(&api, "jobs"), keda_hpa_min(&api, "jobs")) {
            (6, 6) => Ok(()),
            m => Err(format!("minReplicaCount, HPA minReplicas: {m:?}")),
        }
    })
    .await;
    // A person raises minReplicaCount to 9: prescaler's floor (6) is lower, so 9 it is.
    let mut edited = scaled_object(&api, "jobs");
    edited["spec"]["minReplicaCount"] = json!(9);
    api.put(edited);
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let so = scaled_object(&api, "jobs");
    assert_eq!(
        so["spec"]["minReplicaCount"], 9,
        "the person's value stays: {so}"
    );
    assert_eq!(
        so["metadata"]["annotations"]["prescaler.dev/original-min-replicas"],
        "9"
    );
    assert_eq!(keda_hpa_min(&api, "jobs"), 9);
    // Deleted, the scaler gives back the ScaledObject's own value: the person's.
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "jobs");
    eventually(20, "given back", || {
        let so = scaled_object(&api, "jobs");
        let clean = so["metadata"]["annotations"]
            .get("prescaler.dev/original-min-replicas")
            .is_none();
        let gone = api
            .get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "jobs")
            .is_none();
        if so["spec"]["minReplicaCount"] == 9 && clean && gone {
            Ok(())
        } else {
            Err(so.to_string())
        }
    })
    .await;
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_scaled_object_gets_its_own_floor_back() {
    let api = FakeApi::new();
    api.put(deployment("batch", 2));
    keda_scaled(&api, "batch", 3);
    api.put(scaler("batch", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(20, "the floor is set", || {
        match min_replica_count(&api, "batch") {
            6 => Ok(()),
            m => Err(format!("minReplicaCount {m}")),
        }
    })
    .await;
    let mut paused = scaled_object(&api, "batch");
    paused["metadata"]["annotations"]["autoscaling.keda.sh/paused"] = json!("true");
    api.put(paused);
    eventually(20, "given back while paused", || {
        match (
            min_replica_count(&api, "batch"),
            expect_condition(&api, "batch", "Ready", "False", "ScalingDisabled"),
        ) {
            (3, Ok(())) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let writes = api.writes_to("/scaledobjects/");
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(
        api.writes_to("/scaledobjects/"),
        writes,
        "nothing written while paused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_edit_of_the_hpa_floor_is_adopted_and_given_back() {
    let api = FakeApi::new();
    api.put(deployment("api", 2));
    api.put(hpa("api", 2, json!({})));
    api.put(scaler("api", "steady", floor(6)));
    // The HPA controller writes the HPA's status all along: prescaler's guarded writes conflict.
    let writer = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                api.touch_status("autoscaling/v2", "HorizontalPodAutoscaler", NS, "api");
                tokio::time::sleep(StdDuration::from_millis(50)).await;
            }
        })
    };
    let _op = start_operator_on(&api, steady_source(), |_| {});
    let the_hpa = || get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "api");
    let min = |h: &Value| h["spec"]["minReplicas"].as_i64().unwrap();
    eventually(20, "the floor is set", || match min(&the_hpa()) {
        6 => Ok(()),
        m => Err(format!("minReplicas {m}")),
    })
    .await;
    assert!(
        get(&api, "prescaler.dev/v1alpha1", "PredictiveScaler", "api")["metadata"]["finalizers"]
            .to_string()
            .contains("prescaler.dev/hpa-floor")
    );
    // A person raises the HPA's minimum to 9: prescaler's floor (6) is lower, so 9 it is.
    let mut edited = the_hpa();
    edited["spec"]["minReplicas"] = json!(9);
    api.put(edited);
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let h = the_hpa();
    assert_eq!(min(&h), 9, "the person's value stays: {h}");
    assert_eq!(
        h["metadata"]["annotations"]["prescaler.dev/original-min-replicas"],
        "9"
    );
    // Deleted, the scaler gives back the HPA's own value: the person's, not the first one.
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "api");
    eventually(20, "given back", || {
        let h = the_hpa();
        let clean = h["metadata"]["annotations"]
            .get("prescaler.dev/original-min-replicas")
            .is_none();
        let gone = api
            .get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "api")
            .is_none();
        if min(&h) == 9 && clean && gone {
            Ok(())
        } else {
            Err(h.to_string())
        }
    })
    .await;
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_only_while_a_floor_is_held_and_nothing_is_left_stuck() {
    let api = FakeApi::new();
    api.put(deployment("direct", 2));
    api.put(deployment("floored", 2));
    api.put(hpa("floored", 2, json!({})));
    api.put(scaler("direct", "steady", floor(4)));
    api.put(scaler("floored", "steady", floor(4)));
    let op = start_operator_on(&api, steady_source(), |_| {});
    let finalizers = |name: &str| {
        get(&api, "prescaler.dev/v1alpha1", "PredictiveScaler", name)["metadata"]["finalizers"]
            .as_array()
            .map_or(0, |f| f.len())
    };
    eventually(20, "both reconciled", || {
        if replicas(&api, "direct") == 4 && finalizers("floored") == 1 {
            Ok(())
        } else {
            Err(format!(
                "direct {} / floored finalizers {}",
                replicas(&api, "direct"),
                finalizers("floored")
            ))
        }
    })
    .await;
    assert_eq!(
        finalizers("direct"),
        0,
        "nothing to give back, no finalizer"
    );
    // ForecastOnly: the floor is given back and the finalizer goes with it.
    let mut trial = scaler("floored", "steady", floor(4));
    trial["spec"]["mode"] = json!("ForecastOnly");
    api.put(trial);
    eventually(20, "floor given back", || {
        let min = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "floored")["spec"]["minReplicas"]
            .as_i64()
            .unwrap();
        if min == 2 && finalizers("floored") == 0 {
            Ok(())
        } else {
            Err(format!("minReplicas {min}, finalizers {}", finalizers("floored")))
        }
    })
    .await;
    // The operator uninstalled: deleting the scalers (or their namespace) leaves nothing stuck.
    drop(op);
    for name in ["direct", "floored"] {
        api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, name);
        assert!(
            api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, name)
                .is_none()
        );
    }
}

fn hpa_min(api: &FakeApi, name: &str) -> i64 {
    get(api, "autoscaling/v2", "HorizontalPodAutoscaler", name)["spec"]["minReplicas"]
        .as_i64()
        .unwrap()
}

/// Whether an object carries none of prescaler's floor annotations.
fn clean(object: &Value) -> bool {
    object["metadata"]["annotations"]
        .as_object()
        .is_none_or(|a| !a.keys().any(|k| k.starts_with("prescaler.dev/")))
}

fn finalizers(api: &FakeApi, name: &str) -> usize {
    get(api, "prescaler.dev/v1alpha1", "PredictiveScaler", name)["metadata"]["finalizers"]
        .as_array()
        .map_or(0, |f| f.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_target_gives_its_old_floor_back() {
    let api = FakeApi::new();
    for name in ["web", "api", "plain"] {
        api.put(deployment(name, 2));
    }
    api.put(hpa("web", 2, json!({})));
    api.put(hpa("api", 3, json!({})));
    let aimed_at = |target: &str| {
        let mut s = scaler("web", "steady", floor(6));
        s["spec"]["scaleTargetRef"]["name"] = json!(target);
        s
    };
    api.put(aimed_at("web"));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "web's HPA holds the floor", || {
        match hpa_min(&api, "web") {
            6 => Ok(()),
            m => Err(format!("minReplicas {m}")),
        }
    })
    .await;
    // Another HPA-scaled target: the old HPA gets its own value back, the new one the floor.
    api.put(aimed_at("api"));
    eventually(20, "web given back, api floored", || {
        let web = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "web");
        match (hpa_min(&api, "web"), clean(&web), hpa_min(&api, "api")) {
            (2, true, 6) => Ok(()),
            other => Err(format!("{other:?}: {web}")),
        }
    })
    .await;
    // A target without an HPA: prescaler scales it itself, and holds no floor anywhere.
    api.put(aimed_at("plain"));
    eventually(20, "api given back, plain scaled", || {
        let api_hpa = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "api");
        match (
            hpa_min(&api, "api"),
            clean(&api_hpa),
            replicas(&api, "plain"),
            finalizers(&api, "web"),
        ) {
            (3, true, 6, 0) => Ok(()),
            other => Err(format!("{other:?}: {api_hpa}")),
        }
    })
    .await;
    let released: Vec<String> = events(&api, "web")
        .into_iter()
        .filter(|(_, r, _)| r == "FloorReleased")
        .map(|(_, _, note)| note)
        .collect();
    assert!(
        released
            .iter()
            .any(|n| n.contains("HorizontalPodAutoscaler web's minReplicas to 2"))
            && released
                .iter()
                .any(|n| n.contains("HorizontalPodAutoscaler api's minReplicas to 3")),
        "{released:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_keda_support_off_gives_the_scaled_object_floor_back() {
    let api = FakeApi::new();
    api.put(deployment("queue", 2));
    keda_scaled(&api, "queue", 2);
    api.put(scaler("queue", "steady", floor(6)));
    let with_keda = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(
        20,
        "the floor on the ScaledObject",
        || match min_replica_count(&api, "queue") {
            6 => Ok(()),
            m => Err(format!("minReplicaCount {m}")),
        },
    )
    .await;
    // The operator restarts with KEDA support off: the target is refused, and the floor the
    // ScaledObject carries is given back before the finalizer goes.
    drop(with_keda);
    let _without = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "given back", || {
        let so = scaled_object(&api, "queue");
        let refused = expect_condition(&api, "queue", "Ready", "False", "KedaManagedTarget");
        match (
            so["spec"]["minReplicaCount"].as_i64(),
            clean(&so),
            finalizers(&api, "queue"),
        ) {
            (Some(2), true, 0) if refused.is_ok() => Ok(()),
            other => Err(format!("{other:?} {refused:?}: {so}")),
        }
    })
    .await;
    api.keda_sync(NS, "queue");
    assert_eq!(keda_hpa_min(&api, "queue"), 2);
    // Deleting it now leaves nothing stuck.
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "queue");
    eventually(20, "deleted", || {
        match api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "queue") {
            None => Ok(()),
            Some(ps) => Err(ps.to_string()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_whose_scaler_is_gone_is_given_back_when_the_operator_starts() {
    let api = FakeApi::new();
    api.put(deployment("left", 7));
    api.put(deployment("kept", 6));
    api.put(scaler("kept", "steady", floor(6)));
    let kept_uid =
        get(&api, "prescaler.dev/v1alpha1", "PredictiveScaler", "kept")["metadata"]["uid"].clone();
    let annotated = |own: i64, owner: Value, set: i64| {
        json!({ "metadata": { "annotations": {
            "prescaler.dev/original-min-replicas": own.to_string(),
            "prescaler.dev/floor-owner": owner,
            "prescaler.dev/floor-min-replicas": set.to_string() } },
            "spec": { "minReplicas": set } })
    };
    // A floor set by a scaler deleted while no operator ran (its finalizer removed by hand)...
    api.put(hpa(
        "left",
        7,
        annotated(2, json!("uid-of-a-deleted-scaler"), 7),
    ));
    // ... and one a live scaler holds.
    api.put(hpa("kept", 6, annotated(1, kept_uid, 6)));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "the orphan given back", || {
        let left = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "left");
        match (hpa_min(&api, "left"), clean(&left)) {
            (2, true) => Ok(()),
            other => Err(format!("{other:?}: {left}")),
        }
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let kept = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "kept");
    assert_eq!(
        hpa_min(&api, "kept"),
        6,
        "a live scaler's floor stays: {kept}"
    );
    assert!(!clean(&kept));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_gives_every_floor_back_and_leaves_nothing_stuck() {
    use prescaler::operator::give_back::{StopOperator, give_back_everything};
    let api = FakeApi::new();
    api.put(deployment("floored", 2));
    api.put(hpa("floored", 2, json!({})));
    api.put(scaler("floored", "steady", floor(6)));
    api.put(deployment("queue", 2));
    keda_scaled(&api, "queue", 0);
    api.put(scaler("queue", "steady", floor(6)));
    // The operator's own Deployment, in its namespace, and the operator leading through a Lease.
    api.put(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "prescaler", "namespace": "ops" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "prescaler" } } },
    }));
    let lease_settings = |identity: &str| {
        let mut s = LeaseSettings::new("prescaler".into(), "ops".into(), identity.into());
        s.lease_duration = StdDuration::from_millis(1500);
        s.renew_deadline = StdDuration::from_millis(1000);
        s.retry = StdDuration::from_millis(200);
        s
    };
    let lease = Arc::new(Leadership::new(
        api.client(),
        lease_settings("operator-pod"),
    ));
    lease.acquire().await;
    let operator_pod = tokio::spawn({
        let (lease, client) = (lease.clone(), api.client());
        async move {
            let controller = operator::run_controller(
                client,
                steady_source(),
                Arc::new(Metrics::default()),
                Arc::new(Health::default()),
                prescaler::operator::controller::Settings {
                    sync_period: StdDuration::from_secs(1),
                    keda: true,
                    ..Default::default()
                },
                Some(lease.clone()),
                Caches::new(),
            );
            tokio::select! { _ = controller => {}, _ = lease.hold() => {} }
        }
    });
    eventually(20, "both floors held", || {
        match (hpa_min(&api, "floored"), min_replica_count(&api, "queue")) {
            (6, 6) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // The hook while the operator still runs and renews: it waits for the Lease, gives up, and
    // gives nothing back beside a live operator.
    let early = give_back_everything(
        &api.client(),
        Some(StopOperator {
            deployment: None,
            lease: lease_settings("hook"),
            wait: StdDuration::from_secs(3),
        }),
    )
    .await;
    let message = early.expect_err("the operator still leads").to_string();
    assert!(message.contains("still renewed"), "{message}");
    assert_eq!(hpa_min(&api, "floored"), 6);
    // Stands for the Deployment controller and the kubelet: once the operator's Deployment is
    // scaled to 0 its pod stops, and a graceful shutdown releases the Lease.
    let kubelet = tokio::spawn({
        let (api, lease) = (api.clone(), lease.clone());
        async move {
            loop {
                let replicas = api
                    .get("apps/v1", "Deployment", "ops", "prescaler")
                    .unwrap()["spec"]["replicas"]
                    .as_i64();
                if replicas == Some(0) {
                    operator_pod.abort();
                    let _ = operator_pod.await;
                    lease.release().await;
                    return;
                }
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
        }
    });
    let summary = give_back_everything(
        &api.client(),
        Some(StopOperator {
            deployment: Some("prescaler".into()),
            lease: lease_settings("hook"),
            wait: StdDuration::from_secs(20),
        }),
    )
    .await
    .expect("given back once the operator stopped");
    kubelet.await.unwrap();
    assert_eq!(summary.sweep.released.len(), 2, "{summary:?}");
    assert_eq!(summary.finalizers.len(), 2, "{summary:?}");
    let floored = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "floored");
    assert_eq!(hpa_min(&api, "floored"), 2);
    assert!(clean(&floored), "{floored}");
    let so = scaled_object(&api, "queue");
    assert_eq!(
        so["spec"]["minReplicaCount"], 0,
        "KEDA's scale to zero back"
    );
    assert!(clean(&so), "{so}");
    // Nothing left stuck: with the operator gone, deleting the scalers deletes them.
    for name in ["floored", "queue"] {
        assert_eq!(finalizers(&api, name), 0);
        api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, name);
        assert!(
            api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, name)
                .is_none()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_reported_and_retried_with_backoff() {
    let api = FakeApi::new();
    api.put(deployment("locked", 2));
    api.put(scaler("locked", "steady", floor(4)));
    api.fail_next(Method::PATCH, "/deployments/locked/scale", 403, 1000);
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "reported", || {
        expect_condition(&api, "locked", "Ready", "False", "Forbidden")
    })
    .await;
    let before = scale_writes(&api, "locked");
    tokio::time::sleep(StdDuration::from_secs(10)).await;
    let attempts = scale_writes(&api, "locked") - before;
    // A 1-second sync would try 10 times; the backoff (5 s, 10 s, …) tries at most twice.
    assert!(attempts <= 2, "{attempts} attempts in 10 s");
    assert_eq!(replicas(&api, "locked"), 2);
    assert!(
        events(&api, "locked")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "Forbidden")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_scaler_among_a_hundred_stops_none_of_the_others() {
    let prom = steady_prometheus();
    let api = FakeApi::new();
    for i in 0..100 {
        let name = format!("app-{i:02}");
        api.put(deployment(&name, 2));
        let mut s = scaler(&name, "steady", floor(3));
        if i == 37 {
            // Bad PromQL that the schema cannot see.
            s["spec"]["metric"]["query"] = json!("sum(rate(http_requests_total[2m])");
        }
        if i == 64 {
            // A query Prometheus refuses at run time: more than one series.
            s["spec"]["metric"]["query"] = json!(METRIC);
        }
        api.put(s);
    }
    let started = tokio::time::Instant::now();
    let _op = start_operator(&api, &prom.url());
    eventually(60, "the 98 good ones scaled", || {
        let done = (0..100)
            .filter(|i| ![37, 64].contains(i))
            .filter(|i| replicas(&api, &format!("app-{i:02}")) == 3)
            .count();
        if done == 98 {
            Ok(())
        } else {
            Err(format!("{done} of 98"))
        }
    })
    .await;
    eprintln!("98 scalers reconciled in {:?}", started.elapsed());
    expect_condition(&api, "app-37", "Ready", "False", "InvalidSpec").unwrap();
    eventually(20, "the refused query is told", || {
        expect_condition(&api, "app-64", "MetricsAvailable", "False", "SeveralSeries")
    })
    .await;
    let (_, _, message) = condition(&api, "app-64", "MetricsAvailable").unwrap();
    assert!(message.contains("series"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_written_only_when_it_changes_and_stale_fields_go() {
    let api = FakeApi::new();
    api.put(deployment("calm", 2));
    api.put(scaler("calm", "steady", floor(3)));
    let op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "settled", || match replicas(&api, "calm") {
        3 => Ok(()),
        r => Err(format!("{r}")),
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let (writes, reconciles) = (
        api.writes_to("/predictivescalers/calm/status"),
        op.reconciles(),
    );
    tokio::time::sleep(StdDuration::from_secs(10)).await;
    let (writes, reconciles) = (
        api.writes_to("/predictivescalers/calm/status") - writes,
        op.reconciles() - reconciles,
    );
    assert!(reconciles >= 8, "{reconciles} reconciles");
    // A minute boundary may bring a new figure; nothing else does.
    assert!(
        writes <= 2,
        "{writes} status writes in {reconciles} reconciles"
    );
    assert!(status(&api, "calm")["desiredReplicas"].is_number());
    // Off: the decision's figures go from the status, they do not linger.
    let mut off = scaler("calm", "steady", floor(3));
    off["spec"]["mode"] = json!("Off");
    api.put(off);
    eventually(20, "figures cleared", || {
        let s = status(&api, "calm");
        if s.get("desiredReplicas").is_none() && s.get("forecastLoad").is_none() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_lists_again_and_replication_controllers_scale() {
    let api = FakeApi::new();
    api.put(deployment("first", 2));
    api.put(scaler("first", "steady", floor(3)));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(20, "first", || match replicas(&api, "first") {
        3 => Ok(()),
        r => Err(format!("{r}")),
    })
    .await;
    // etcd compacts: open watches end, and resuming from their resourceVersion is 410 Gone.
    api.compact();
    api.put(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": { "name": "legacy", "namespace": NS },
        "spec": { "replicas": 1 },
    }));
    let mut s = scaler("legacy", "steady", floor(4));
    s["spec"]["scaleTargetRef"] =
        json!({ "apiVersion": "v1", "kind": "ReplicationController", "name": "legacy" });
    api.put(s);
    eventually(
        30,
        "a scaler created after the compaction is reconciled",
        || match get(&api, "v1", "ReplicationController", "legacy")["spec"]["replicas"].as_i64() {
            Some(4) => Ok(()),
            r => Err(format!("{r:?}")),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_returns_holds_up_only_its_own_scaler() {
    let api = FakeApi::new();
    api.put(deployment("stuck", 2));
    api.put(deployment("free", 2));
    api.hang_next(Method::GET, "/deployments/stuck/scale", 1);
    api.put(scaler("stuck", "steady", floor(3)));
    api.put(scaler("free", "steady", floor(3)));
    let started = tokio::time::Instant::now();
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(8, "the other scaler goes on", || {
        match replicas(&api, "free") {
            3 => Ok(()),
            r => Err(format!("{r}")),
        }
    })
    .await;
    assert_eq!(replicas(&api, "stuck"), 2, "still waiting for its answer");
    // The request times out (10 s) and the reconcile is retried.
    eventually(30, "the stuck one recovers", || {
        match replicas(&api, "stuck") {
            3 => Ok(()),
            r => Err(format!("{r}")),
        }
    })
    .await;
    assert!(started.elapsed() >= StdDuration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_renew_deadline_a_leader_writes_nothing() {
    let api = FakeApi::new();
    api.put(deployment("led", 2));
    api.put(scaler("led", "steady", floor(3)));
    api.put(deployment("floored", 2));
    api.put(hpa("floored", 2, json!({})));
    api.put(scaler("floored", "steady", floor(5)));
    let mut settings = LeaseSettings::new("prescaler".into(), "ops".into(), "a".into());
    settings.lease_duration = StdDuration::from_millis(1500);
    settings.renew_deadline = StdDuration::from_millis(1000);
    settings.retry = StdDuration::from_millis(200);
    let lease = Arc::new(Leadership::new(api.client(), settings));
    lease.acquire().await;
    let holding = tokio::spawn({
        let lease = lease.clone();
        async move { lease.hold().await }
    });
    let controller = tokio::spawn(operator::run_controller(
        api.client(),
        steady_source(),
        Arc::new(Metrics::default()),
        Arc::new(Health::default()),
        prescaler::operator::controller::Settings {
            sync_period: StdDuration::from_secs(1),
            ..Default::default()
        },
        Some(lease.clone()),
        Caches::new(),
    ));
    eventually(20, "scaled while leading", || {
        match (replicas(&api, "led"), hpa_min(&api, "floored")) {
            (3, 5) => Ok(()),
            r => Err(format!("{r:?}")),
        }
    })
    .await;
    // The Lease renewals hang; a new floor arrives after the renew deadline.
    api.hang_next(Method::PUT, "/leases/prescaler", 1000);
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert!(!lease.may_write());
    let status_writes = api.writes_to("/predictivescalers/led/status");
    let (hpa_writes, finalizer_writes) = (
        api.writes_to("/horizontalpodautoscalers/"),
        api.writes_to("/predictivescalers/floored"),
    );
    let events_before = api.writes_to("/events");
    api.put(scaler("led", "steady", floor(8)));
    // Off would give the HPA's floor back and drop the finalizer: writes too.
    let mut off = scaler("floored", "steady", floor(5));
    off["spec"]["mode"] = json!("Off");
    api.put(off);
    tokio::time::sleep(StdDuration::from_secs(4)).await;
    assert_eq!(
        hpa_min(&api, "floored"),
        5,
        "no floor given back without the Lease"
    );
    assert_eq!(api.writes_to("/horizontalpodautoscalers/"), hpa_writes);
    assert_eq!(
        api.writes_to("/predictivescalers/floored"),
        finalizer_writes,
        "no finalizer or status write"
    );
    assert_eq!(api.writes_to("/events"), events_before, "no Event either");
    assert_eq!(replicas(&api, "led"), 3, "nothing scaled without the Lease");
    assert_eq!(
        api.writes_to("/deployments/led/scale"),
        1,
        "the one write made while leading"
    );
    assert_eq!(
        api.writes_to("/predictivescalers/led/status"),
        status_writes,
        "no status either"
    );
    controller.abort();
    holding.abort();
}

/// A tenant in `shop` asks for the payments team's series, plainly and through the escapes an
/// attacker's review found (with promql-parser 0.6's printer): a value in single quotes or
/// backticks holding `"}` closed the selector, and the rest read every namespace (900/s). Each
/// query ends in `or sum(M{service="pay"})`, so that confined it reads shop's own 100/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reads_only_its_own_namespace() {
    let prom = steady_prometheus();
    let api = FakeApi::new();
    let own = format!(r#"sum({METRIC}{{service="pay"}})"#);
    let tenants = [
        ("plain", format!(r#"sum({METRIC}{{namespace="payments"}})"#)),
        (
            "single-quotes",
            format!(r#"sum({METRIC}{{a='", service="pay"}} unless {METRIC}{{z="'}}) or {own}"#),
        ),
        (
            "backticks",
            format!(r#"sum({METRIC}{{a=`", service="pay"}} unless {METRIC}{{z="`}}) or {own}"#),
        ),
        (
            "metric-name",
            format!(r#"sum({{__name__='{METRIC}", service="pay"}} unless {{z="'}}) or {own}"#),
        ),
        (
            "or",
            format!(r#"sum({METRIC}{{a='", service="pay"}} or {METRIC}{{z="'}}) or {own}"#),
        ),
    ];
    for (name, query) in &tenants {
        api.put(deployment(name, 2));
        let mut s = scaler(name, "steady", json!({}));
        s["spec"]["metric"]["query"] = json!(query);
        api.put(s);
    }
    let op = start_operator_with(&api, &prom.url(), |s| {
        s.namespace_label = Some("namespace".into())
    });
    for (name, _) in &tenants {
        eventually(30, "decided", || {
            let s = status(&api, name);
            match s["reactiveReplicas"].as_i64() {
                Some(_) => Ok(()),
                None => Err(format!("{name}: {s}")),
            }
        })
        .await;
    }
    // shop's own 100/s (2 replicas), not payments' 900/s (18) or both (20): the live load and
    // the history are one query, confined once.
    let metrics = op.metrics.encode();
    for (name, query) in &tenants {
        let s = status(&api, name);
        assert_eq!(s["reactiveReplicas"], 2, "{name} ({query}): {s}");
        assert!(
            s["forecastLoad"].as_f64().is_none_or(|l| l < 200.0),
            "{name}: {s}"
        );
        let load = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    r#"prescaler_load{{namespace="shop",name="{name}"}}"#
                ))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        assert_eq!(load, Some(100.0), "{name} ({query})");
    }
}

/// A Ready pod of `app`, created `10 + i` minutes ago and Ready three minutes later, carrying
/// `pad` as an annotation (a template's annotations are copied into every pod).
fn padded_pod(name: &str, app: &str, i: i64, pad: &str) -> Value {
    let mut p = pod(
        name,
        app,
        Duration::minutes(10 + i),
        Some(Duration::minutes(3)),
        false,
    );
    p["metadata"]["annotations"] = json!({ "pad": pad });
    p
}

/// A pod of Deployment `app` created `created_ago` before now, Ready `ready_after` after its
/// creation (not Ready without one), and unschedulable when asked: what the scheduler and the
/// kubelet would have written.
fn pod(
    name: &str,
    app: &str,
    created_ago: Duration,
    ready_after: Option<Duration>,
    unschedulable: bool,
) -> Value {
    let created = Utc::now() - created_ago;
    let at = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut conditions = vec![if unschedulable {
        json!({ "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastTransitionTime": at(created) })
    } else {
        json!({ "type": "PodScheduled", "status": "True", "lastTransitionTime": at(created) })
    }];
    conditions.push(match ready_after {
        Some(d) => {
            json!({ "type": "Ready", "status": "True", "lastTransitionTime": at(created + d) })
        }
        None => json!({ "type": "Ready", "status": "False", "reason": "ContainersNotReady",
                        "lastTransitionTime": at(created) }),
    });
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": NS, "labels": { "app": app },
                      "creationTimestamp": at(created) },
        "spec": { "containers": [{ "name": "app", "image": "app" }] },
        "status": { "conditions": conditions },
    })
}

fn auto_lead_time() -> Value {
    let mut extra = floor(3);
    extra["forecast"] = json!({ "leadTime": "Auto" });
    extra
}

/// The operator with `leadTime: Auto` surveys at every sync and takes a new figure on the second
/// consecutive survey that shows it (the default waits 10 minutes).
fn start_learning(api: &FakeApi) -> Operator {
    start_operator_on(api, steady_source(), |s| {
        s.pod_survey_interval = StdDuration::ZERO;
        s.lead_time_settle = StdDuration::ZERO;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_time_auto_learns_the_pods_start_up() {
    let api = FakeApi::new();
    // Pods that took 2m50s to 3m (fast) and 7m50s to 8m (slow) from creation to Ready, created
    // over the last hours; and a pod of another app that must not count.
    for (app, minutes) in [("fast", 3), ("slow", 8)] {
        api.put(deployment(app, 3));
        for i in 0..6 {
            let startup = Duration::minutes(minutes) - Duration::seconds(2 * i);
            api.put(pod(
                &format!("{app}-{i}"),
                app,
                Duration::hours(i + 1),
                Some(startup),
                false,
            ));
        }
        api.put(scaler(app, "steady", auto_lead_time()));
    }
    api.put(pod(
        "other-0",
        "other",
        Duration::hours(1),
        Some(Duration::minutes(25)),
        false,
    ));
    let _op = start_learning(&api);
    let metric_delay = 60;
    for (app, startup) in [("fast", 180), ("slow", 480)] {
        eventually(20, "learned", || {
            let lead = &status(&api, app)["leadTime"];
            match (lead["source"].as_str(), lead["seconds"].as_i64()) {
                (Some("Learned"), Some(_)) => Ok(()),
                _ => Err(lead.to_string()),
            }
        })
        .await;
        let lead = status(&api, app)["leadTime"].clone();
        let seconds = lead["seconds"].as_i64().unwrap();
        assert!(
            (seconds - (startup + metric_delay)).abs() <= 30,
            "{app}: lead time {seconds} s, want {} ± 30: {lead}",
            startup + metric_delay
        );
        let measured = lead["startupSeconds"].as_i64().unwrap();
        assert!(
            (measured - startup).abs() <= 30,
            "{app}: start-up {measured} s: {lead}"
        );
        assert_eq!(
            lead["observations"], 6,
            "each pod once, only its own: {lead}"
        );
        expect_condition(&api, app, "PodsPending", "False", "PodsReadyInTime").unwrap();
    }
    // The pods can no longer be listed (RBAC taken away): the lead time in use stays, shown,
    // and the condition says why.
    api.fail_next(Method::GET, "/namespaces/shop/pods", 403, 100_000);
    eventually(20, "unreadable pods told", || {
        expect_condition(&api, "fast", "PodsPending", "False", "PodsUnreadable")
    })
    .await;
    let lead = status(&api, "fast")["leadTime"].clone();
    assert_eq!(lead["seconds"], 240, "{lead}");
    assert_eq!(replicas(&api, "fast"), 3, "still scaled, on the floor");
}

/// A workload of 1,200 pods is surveyed in pages of 25 (`limit` and `continue`), as
/// client-go's pager reads a large list: the operator never holds more than a page of pods, and
/// every page is read (the newest 1,000 start-ups are kept, more than one page holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_workloads_pods_are_listed_in_pages() {
    let api = FakeApi::new();
    api.put(deployment("big", 3));
    for i in 0..1_200 {
        api.put(pod(
            &format!("big-{i:04}"),
            "big",
            Duration::minutes(10 + i),
            Some(Duration::minutes(3)),
            false,
        ));
    }
    api.put(scaler("big", "steady", auto_lead_time()));
    let _op = start_learning(&api);
    eventually(30, "learned from every page", || {
        let lead = &status(&api, "big")["leadTime"];
        match lead["observations"].as_i64() {
            Some(1_000) => Ok(()),
            _ => Err(lead.to_string()),
        }
    })
    .await;
    let pod_lists: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::GET && r.path.ends_with("/namespaces/shop/pods"))
        .collect();
    assert!(
        pod_lists
            .iter()
            .all(|r| r.query.get("limit") == Some(&POD_PAGE.to_string())),
        "every pod list is paged: {:?}",
        pod_lists.iter().map(|r| &r.query).collect::<Vec<_>>()
    );
    let continued = pod_lists
        .iter()
        .filter(|r| r.query.contains_key("continue"))
        .count();
    assert!(
        continued >= 2,
        "a survey of 1,200 pods reads several pages: {continued} continued lists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_pending_past_the_lead_time_is_reported_until_it_is_ready() {
    let api = FakeApi::new();
    api.put(deployment("tight", 3));
    for i in 0..5 {
        api.put(pod(
            &format!("tight-{i}"),
            "tight",
            Duration::hours(i + 1),
            Some(Duration::minutes(2)),
            false,
        ));
    }
    // No node takes this one: pending for 20 minutes.
    api.put(pod("tight-new", "tight", Duration::minutes(20), None, true));
    api.put(scaler("tight", "steady", auto_lead_time()));
    let _op = start_learning(&api);
    eventually(20, "pending pods reported", || {
        expect_condition(&api, "tight", "PodsPending", "True", "Unschedulable")
    })
    .await;
    let (_, _, message) = condition(&api, "tight", "PodsPending").unwrap();
    assert!(
        message.contains("1 pod(s) of Deployment tight")
            && message.contains("for over 10 min")
            && message.contains("PodScheduled=False"),
        "{message}"
    );
    // It counts at its age so far: the learned start-up is at least 20 minutes.
    let lead = status(&api, "tight")["leadTime"].clone();
    assert!(
        lead["startupSeconds"].as_i64().unwrap() >= 20 * 60,
        "{lead}"
    );
    assert!(
        events(&api, "tight")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "Unschedulable")
    );
    // Scheduled at last, and Ready now: the condition clears.
    let mut ready = pod(
        "tight-new",
        "tight",
        Duration::minutes(21),
        Some(Duration::minutes(21)),
        false,
    );
    ready["metadata"]["creationTimestamp"] =
        get(&api, "v1", "Pod", "tight-new")["metadata"]["creationTimestamp"].clone();
    api.put(ready);
    eventually(20, "cleared", || {
        expect_condition(&api, "tight", "PodsPending", "False", "PodsReadyInTime")
    })
    .await;
    // Another one stuck, then the spec goes back to a fixed lead time: the condition does not
    // linger, and status.leadTime goes.
    api.put(pod(
        "tight-later",
        "tight",
        Duration::minutes(40),
        None,
        true,
    ));
    eventually(20, "pending again", || {
        expect_condition(&api, "tight", "PodsPending", "True", "Unschedulable")
    })
    .await;
    api.put(scaler("tight", "steady", floor(3)));
    eventually(20, "fixed lead time", || {
        expect_condition(&api, "tight", "PodsPending", "False", "FixedLeadTime")?;
        match status(&api, "tight").get("leadTime") {
            None => Ok(()),
            Some(l) => Err(format!("leadTime still shown: {l}")),
        }
    })
    .await;
}

/// KEDA deletes its HPA while a ScaledObject is paused: prescaler must not take the target
/// over through `/scale` then. (The fake's `keda_sync` keeps the HPA; this test deletes it, as
/// KEDA's operator does on a pause.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_scaled_object_without_its_hpa_is_never_scaled_around() {
    let api = FakeApi::new();
    api.put(deployment("jobs", 2));
    keda_scaled(&api, "jobs", 0);
    let mut so = scaled_object(&api, "jobs");
    so["metadata"]["annotations"] = json!({ "autoscaling.keda.sh/paused": "1" });
    api.put(so);
    api.delete(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        NS,
        "keda-hpa-jobs",
    );
    api.put(scaler("jobs", "steady", floor(6)));
    let _op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(20, "the pause is reported", || {
        expect_condition(&api, "jobs", "Ready", "False", "ScalingDisabled")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(scale_writes(&api, "jobs"), 0, "nothing scaled around KEDA");
    assert_eq!(replicas(&api, "jobs"), 2);
    assert_eq!(min_replica_count(&api, "jobs"), 0);
}

/// A stand-in for Prometheus in front of a real one: while `hang` is set it accepts each
/// connection and never answers (as a Prometheus busy with a query too expensive for it);
/// otherwise it passes connections through. It records when each connection came.
struct Flaky {
    port: u16,
    hang: Arc<std::sync::atomic::AtomicBool>,
    arrivals: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Flaky {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let arrivals: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>> = Arc::default();
        let (h, a) = (hang.clone(), arrivals.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                if h.load(std::sync::atomic::Ordering::SeqCst) {
                    a.lock().unwrap().push(tokio::time::Instant::now());
                    held.push(socket); // read nothing, answer nothing
                } else {
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut socket, &mut up).await;
                        }
                    });
                }
            }
        });
        Self {
            port,
            hang,
            arrivals,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn arrivals(&self) -> Vec<tokio::time::Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A query Prometheus cannot answer in time (`sum(max_over_time({__name__=~".+"}[1d:1s]))` took
/// 11 s of its CPU until the timeout) is not sent again at every sync: the reads back off
/// (1 s, 2 s, 4 s, … with a 1 s sync), the planner holds meanwhile, the third timeout in a row
/// names the query, a new spec is read at once, and the scaler recovers when Prometheus answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_keeps_timing_out_is_retried_with_backoff() {
    let prom = steady_prometheus();
    let flaky = Flaky::start(&prom.url()).await;
    let api = FakeApi::new();
    api.put(deployment("slow", 5));
    api.put(scaler("slow", "steady", json!({})));
    // A 1-second sync; each read times out after 2 s (the harness' client timeout).
    let _op = start_operator(&api, &flaky.url());
    eventually(10, "the first read", || match flaky.arrivals().len() {
        0 => Err("none".into()),
        _ => Ok(()),
    })
    .await;
    let t0 = flaky.arrivals()[0];
    tokio::time::sleep_until(t0 + StdDuration::from_secs(20)).await;
    let reads = flaky
        .arrivals()
        .iter()
        .filter(|t| **t < t0 + StdDuration::from_secs(20))
        .count();
    // Without the backoff a read every 3 s (2 s of timeout and a 1 s sync): 7 in 20 s.
    assert!(reads <= 4, "{reads} reads in 20 s");
    let (status_, reason, message) = condition(&api, "slow", "MetricsAvailable").unwrap();
    assert_eq!(
        (status_.as_str(), reason.as_str()),
        ("False", "QueryTimeout"),
        "{message}"
    );
    assert!(
        message.contains("spec.metric.query timed out") && message.contains("next try in"),
        "{message}"
    );
    assert_eq!(replicas(&api, "slow"), 5, "held while the load is unknown");
    assert!(
        events(&api, "slow")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "QueryTimeout")
    );

    // A new spec is read at once, however long the backoff.
    eventually(10, "the fifth read", || match flaky.arrivals().len() {
        n if n >= 5 => Ok(()),
        n => Err(format!("{n} reads")),
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(2500)).await; // its timeout
    let before = flaky.arrivals().len();
    let mut fixed = scaler("slow", "steady", json!({}));
    fixed["spec"]["metric"]["query"] = json!(format!("sum({METRIC}{{service=\"steady\"}}) * 1"));
    api.put(fixed);
    let asked = tokio::time::Instant::now();
    eventually(3, "the new query is read at once", || {
        match flaky.arrivals().len() > before {
            true => Ok(()),
            false => Err(format!("no read {:?} after the change", asked.elapsed())),
        }
    })
    .await;

    // Prometheus answers again: the scaler recovers by itself.
    flaky.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually(30, "recovered", || {
        expect_condition(&api, "slow", "MetricsAvailable", "True", "QuerySucceeded")
    })
    .await;
    assert_eq!(status(&api, "slow")["reactiveReplicas"], 2);
}

/// Runs `prescaler run` (the release binary, its own process) against `api` served over HTTP and
/// `prometheus`, until `done` holds and three syncs more; returns its peak RSS (VmHWM) in KiB.
async fn peak_rss_of_the_operator(
    api: &FakeApi,
    prometheus: &str,
    args: &[&str],
    done: impl FnMut() -> Result<(), String>,
) -> u64 {
    let child = operator_process(
        api,
        prometheus,
        &[
            &["--sync-period", "2s"],
            // What is measured is the byte limit, not Prometheus' speed: on a loaded machine the
            // 1,000-series range read took over the default 10 s (QueryTimeout instead of
            // ResponseTooLarge).
            &["--prometheus-timeout", "60s"],
            // A tenant's many objects are what some of these measure: a hundred `Off` scalers
            // beside the ordinary ones in one namespace, all of them read by the watch.
            &["--max-scalers-per-namespace", "0"],
            args,
        ]
        .concat(),
    )
    .await;
    eventually(60, "the operator got there", done).await;
    tokio::time::sleep(StdDuration::from_secs(6)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// One tenant's query of 1,000 series with two days of history (95 MB of JSON for the range
/// read; 1.9 GB of peak RSS with 28 days, an OOM kill in a pod) costs the operator next to
/// nothing: refused from one instant read (`SeveralSeries`); a query that returns one series
/// now but 1,000 over its history is cut off at the byte limit (`ResponseTooLarge`). Measured
/// on the real `prescaler run` process against the same one serving one scaler of one series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_of_a_thousand_series_does_not_cost_the_operator_its_memory() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    // Every 5 minutes for two days (a sample is seen for 5 minutes: a value at every minute
    // step), distinct values so that the JSON is as long as a real load's.
    let services: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    let history: Vec<(&str, support::prometheus::Series)> = services
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let load = move |t: chrono::DateTime<Utc>| {
                100.0 + (t.timestamp() % 86_400) as f64 / 7.0 + i as f64
            };
            (
                s.as_str(),
                samples(
                    now - Duration::days(2),
                    now - Duration::minutes(2),
                    Duration::minutes(5),
                    load,
                ),
            )
        })
        .collect();
    let prom = TestPrometheus::start(&history);
    for s in &services {
        prom.set_live(s, Some(100.0));
    }
    prom.wait_for_live("s999", 100.0);
    let until = (Utc::now() - Duration::minutes(1)).timestamp();
    let query = |name: &str, query: String| {
        let mut s = scaler(name, "s0", json!({ "forecast": { "history": "3d" } }));
        s["spec"]["metric"]["query"] = json!(query);
        s
    };

    // The same process with one scaler of one series.
    let api = FakeApi::new();
    api.put(deployment("one", 2));
    api.put(query("one", format!(r#"sum({METRIC}{{service="s0"}})"#)));
    let one = || match status(&api, "one")["desiredReplicas"].as_i64() {
        Some(_) => Ok(()),
        None => Err(status(&api, "one").to_string()),
    };
    let baseline = peak_rss_of_the_operator(&api, &prom.url(), &[], one).await;

    // And with the two hostile ones beside it.
    let api = FakeApi::new();
    for name in ["one", "several", "churn"] {
        api.put(deployment(name, 2));
    }
    api.put(query("one", format!(r#"sum({METRIC}{{service="s0"}})"#)));
    api.put(query("several", METRIC.to_string()));
    // No series now (so the instant read passes), 1,000 until a minute ago.
    api.put(query(
        "churn",
        format!("{METRIC} and on() (vector(time()) < {until})"),
    ));
    let refused = || {
        one()?;
        expect_condition(
            &api,
            "several",
            "MetricsAvailable",
            "False",
            "SeveralSeries",
        )?;
        expect_condition(
            &api,
            "churn",
            "MetricsAvailable",
            "False",
            "ResponseTooLarge",
        )
    };
    let hostile = peak_rss_of_the_operator(&api, &prom.url(), &[], refused).await;
    let (_, _, several) = condition(&api, "several", "MetricsAvailable").unwrap();
    assert!(several.contains("returned 1000 series"), "{several}");
    let (_, _, churn) = condition(&api, "churn", "MetricsAvailable").unwrap();
    assert!(churn.contains("--prometheus-max-response-bytes"), "{churn}");
    eprintln!(
        "peak RSS: {:.1} MiB with one scaler, {:.1} MiB with the 1,000-series ones beside it",
        baseline as f64 / 1024.0,
        hostile as f64 / 1024.0
    );
    assert!(
        hostile < baseline + 8 * 1024,
        "peak RSS {hostile} KiB against {baseline} KiB with one scaler"
    );
}

/// A Prometheus that goes away and comes back three times: the first outage and the first
/// recovery are each told by one Event; the flaps after them, within the same ten minutes, change
/// the condition but write no Event (client-go's EventCorrelator aggregates the same way), so a
/// flapping Prometheus is not a write storm on the API server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_prometheus_is_told_once_not_at_every_flap() {
    let mut prom = TestPrometheus::steady("flappy", 400.0, Duration::hours(6));
    let api = FakeApi::new();
    api.put(deployment("flappy", 8));
    api.put(scaler("flappy", "flappy", json!({})));
    let _op = start_operator(&api, &prom.url());
    let metrics_available = |status: &'static str| {
        let api = api.clone();
        move || {
            let (s, _, _) = condition(&api, "flappy", "MetricsAvailable")
                .ok_or_else(|| "no MetricsAvailable yet".to_string())?;
            if s == status {
                Ok(())
            } else {
                Err(format!("MetricsAvailable={s}"))
            }
        }
    };
    eventually(30, "metrics available", metrics_available("True")).await;
    let event_writes = || api.writes_to("/events");
    let before = event_writes();
    let mut after_the_first = 0;
    for flap in 0..3 {
        prom.kill();
        eventually(30, "the outage is seen", metrics_available("False")).await;
        prom.restart();
        eventually(60, "the recovery is seen", metrics_available("True")).await;
        if flap == 0 {
            after_the_first = event_writes();
            assert!(
                after_the_first - before >= 2,
                "the first outage and its recovery are told"
            );
        }
    }
    assert_eq!(
        event_writes(),
        after_the_first,
        "the second and third flaps, within ten minutes of the first, write no Event"
    );
    let told: Vec<_> = events(&api, "flappy")
        .into_iter()
        .map(|(_, reason, _)| reason)
        .collect();
    assert!(
        told.iter().any(|r| r == "PrometheusUnavailable")
            && told.iter().any(|r| r == "QuerySucceeded"),
        "{told:?}"
    );
}

/// A stand-in for Prometheus in front of a real one that never answers a query naming `evil`
/// (as a Prometheus busy with a query too expensive for it) and passes every other request
/// through, one request per upstream connection so that no hostile query rides a pooled one.
async fn selective_hang(
    upstream: &str,
    passed: Arc<std::sync::atomic::AtomicUsize>,
) -> (String, tokio::task::JoinHandle<()>) {
    let stats = Arc::new(ProxyStats {
        passed,
        ..ProxyStats::default()
    });
    stand_in(upstream, stats, |line| {
        if line.contains("evil") {
            Pass::Hang
        } else {
            Pass::After(StdDuration::ZERO)
        }
    })
    .await
}

/// A tenant editing its `count` scalers twice a second, `spec(i, version)` each, version 1, 2, …
/// (a new generation is reconciled at once, whatever the backoff), until the task is aborted.
fn edit_twice_a_second(
    api: &FakeApi,
    count: usize,
    spec: impl Fn(usize, usize) -> Value + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    tokio::spawn(async move {
        for version in 1.. {
            for i in 0..count {
                api.put(spec(i, version));
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
    })
}

/// What the stand-in (`stand_in`) does with a request.
enum Pass {
    /// Held open, never answered, until the client gives up.
    Hang,
    /// Passed through after this long.
    After(StdDuration),
}

/// What the stand-in (`stand_in`) saw: requests passed, and reads in flight (now and at most).
#[derive(Default)]
struct ProxyStats {
    passed: Arc<std::sync::atomic::AtomicUsize>,
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// A stand-in for Prometheus in front of a real one, which does with each request what `rule`
/// says of its request line, one request per upstream connection so that no request rides a
/// pooled one.
async fn stand_in(
    upstream: &str,
    stats: Arc<ProxyStats>,
    rule: fn(&str) -> Pass,
) -> (String, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let stats = stats.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                loop {
                    // A GET: the head is the whole request.
                    let mut buf = [0u8; 8192];
                    let end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head: Vec<u8> = pending.drain(..end).collect();
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let line = text.lines().next().unwrap_or_default();
                    let delay = match rule(line) {
                        Pass::Hang => {
                            let _ = client.read(&mut buf).await;
                            return;
                        }
                        Pass::After(delay) => delay,
                    };
                    stats.passed.fetch_add(1, SeqCst);
                    let now = stats.in_flight.fetch_add(1, SeqCst) + 1;
                    stats.peak.fetch_max(now, SeqCst);
                    tokio::time::sleep(delay).await;
                    let answered = async {
                        let mut up = tokio::net::TcpStream::connect(&upstream).await.ok()?;
                        let head = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
                        up.write_all(head.as_bytes()).await.ok()?;
                        let mut answer = Vec::new();
                        up.read_to_end(&mut answer).await.ok()?;
                        client.write_all(&answer).await.ok()
                    }
                    .await;
                    stats.in_flight.fetch_sub(1, SeqCst);
                    if answered.is_none() {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

/// One tenant whose queries hang until the timeout, and who edits its sixteen scalers, spread
/// over four namespaces, twice a second with a new query each time (a new query is read at once,
/// whatever the backoff), cannot hold every Prometheus slot: once its reads are slow its
/// namespaces are suspect, each may have a quarter of the slots and all of them together half,
/// so another tenant's load is still read at every sync and its surge followed. (Before any
/// share, one such namespace stopped the other tenant's reads and its workload stayed at 2 for
/// a minute; with a share per namespace alone, four namespaces took every slot: no read in
/// 20 s, still at 2 after 120 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_hanging_queries_do_not_stop_another_tenants_scaling() {
    let prom = TestPrometheus::steady("victim", 50.0, Duration::hours(6));
    let passed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (url, proxy) = selective_hang(&prom.url(), passed.clone()).await;
    let api = FakeApi::new();
    api.put(deployment("victim", 2));
    api.put(scaler("victim", "victim", json!({})));
    const HOSTILE: usize = 16;
    fn namespace(i: usize) -> String {
        format!("evil-{}", i % 4)
    }
    let hostile = |i: usize, version: usize| {
        let mut s = scaler(&format!("h{i}"), "x", json!({}));
        s["metadata"]["namespace"] = json!(namespace(i));
        s["spec"]["metric"]["query"] = json!(format!("sum(evil_{version})"));
        s
    };
    for i in 0..HOSTILE {
        let mut d = deployment(&format!("h{i}"), 2);
        d["metadata"]["namespace"] = json!(namespace(i));
        api.put(d);
        api.put(hostile(i, 0));
    }
    let _op = start_operator(&api, &url);
    eventually(30, "the victim read", || {
        expect_condition(&api, "victim", "MetricsAvailable", "True", "QuerySucceeded")
    })
    .await;
    let churn = edit_twice_a_second(&api, HOSTILE, hostile);
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    // Only the victim's reads pass the stand-in: with a 1 s sync, about one a second.
    let read_before = passed.load(std::sync::atomic::Ordering::SeqCst);
    let window = std::time::Instant::now();
    tokio::time::sleep(StdDuration::from_secs(10)).await;
    let reads = passed.load(std::sync::atomic::Ordering::SeqCst) - read_before;
    assert!(
        reads >= 5,
        "the other tenant read {reads} times in 10 s of the hostile tenant's churn"
    );
    // A reconcile deferred for its share reads nothing of the API either: of the ~320 the
    // churn brings in 10 s, only those that read Prometheus (four slots, 2 s a timeout) read
    // their workload. (Before: every deferred reconcile read its workload's /scale first.)
    let workload_reads = api
        .requests()
        .iter()
        .filter(|r| r.at >= window && r.method == Method::GET && r.path.contains("/evil-"))
        .filter(|r| r.path.contains("/deployments/"))
        .count();
    assert!(
        workload_reads <= 80,
        "{workload_reads} reads of the hostile tenant's workloads in 10 s"
    );
    // 5 000/s needs 100 replicas: it is scaled up as soon as a minute's sample shows it.
    prom.set_live("victim", Some(5_000.0));
    eventually(90, "the victim follows its surge", || {
        let r = replicas(&api, "victim");
        if r > 2 {
            Ok(())
        } else {
            Err(format!("{r} replicas: {}", status(&api, "victim")))
        }
    })
    .await;
    churn.abort();
    proxy.abort();
}

/// A Prometheus slow for everyone (every read 1.2 s, past half the 2 s timeout) makes every
/// namespace suspect. The suspects' caps protect the namespaces whose reads answer; when there
/// are none to protect they must not throttle the only tenant there is. Before: a cluster whose
/// scalers all live in one namespace was read two at a time (a quarter of the eight slots),
/// each scaler a sync in four. Now a suspect namespace's own share binds only while the pool is
/// busy; the suspects together still hold at most half of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_slow_for_everyone_is_read_with_half_the_slots_not_a_quarter() {
    use std::sync::atomic::Ordering::SeqCst;
    let prom = steady_prometheus();
    let stats = Arc::new(ProxyStats::default());
    let (url, proxy) = stand_in(&prom.url(), stats.clone(), |_| {
        Pass::After(StdDuration::from_millis(1200))
    })
    .await;
    let api = FakeApi::new();
    for i in 0..24 {
        api.put(deployment(&format!("w{i}"), 2));
        // A query of its own for each: scalers of one query share its reads (`shared_history`),
        // and this is about slots for many reads.
        let query = format!(
            "sum({METRIC}{{service=\"steady\"}}) * {}",
            1.0 + f64::from(i) / 100_000.0
        );
        api.put(scaler(
            &format!("w{i}"),
            "steady",
            json!({ "metric": { "query": query } }),
        ));
    }
    let _op = start_operator(&api, &url);
    // The first reads of each scaler (a probe and the history) make the namespace suspect.
    tokio::time::sleep(StdDuration::from_secs(8)).await;
    stats.peak.store(stats.in_flight.load(SeqCst), SeqCst);
    tokio::time::sleep(StdDuration::from_secs(12)).await;
    let peak = stats.peak.load(SeqCst);
    proxy.abort();
    assert!(
        (3..=5).contains(&peak),
        "{peak} reads in flight at most, with every namespace suspect (8 slots)"
    );
}

/// What the stand-in holds a hostile tenant's reads for, in milliseconds (0 at first).
static HOSTILE_DELAY_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A tenant whose reads take just under half the timeout (0.9 s of 2 s) is never suspect: its
/// 96 scalers keep the read slots busy. Review 4: in one namespace, they held every slot, and
/// another tenant read nothing in 20 s and was still at 2 replicas 120 s into its surge. Review
/// 5, against a share per namespace: spread over four namespaces, and each spec edited every
/// half second, the tenant held every slot again — the shares summed to all of them, and the
/// controller started the next object in its pending set's hash order, kept full by the edits.
/// Now every reconcile waits in the fair queue (`fair_queue`), where slots go to the namespace
/// that has used the least slot time: the other tenant is reconciled at about every sync and
/// follows its surge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_reads_stay_just_under_the_slow_mark_does_not_stop_another() {
    use std::sync::atomic::Ordering::SeqCst;
    let prom = TestPrometheus::steady("victim", 50.0, Duration::hours(6));
    let stats = Arc::new(ProxyStats::default());
    let (url, proxy) = stand_in(&prom.url(), stats.clone(), |line| {
        let delay = if line.contains("evil") {
            HOSTILE_DELAY_MS.load(SeqCst)
        } else {
            0
        };
        Pass::After(StdDuration::from_millis(delay))
    })
    .await;
    let api = FakeApi::new();
    api.put(deployment("victim", 2));
    api.put(scaler("victim", "victim", json!({})));
    const HOSTILE: usize = 96;
    const NAMESPACES: usize = 4;
    // `evil=""` matches the victim's series (it has no such label): real data, and a request
    // the stand-in can tell apart. `version` is the edit: a new generation, reconciled at once.
    let hostile = |i: usize, version: usize| {
        let mut s = scaler(
            &format!("h{i}"),
            "x",
            json!({ "maxReplicas": 40 + version % 2 }),
        );
        s["metadata"]["namespace"] = json!(format!("evil-{}", i % NAMESPACES));
        s["spec"]["metric"]["query"] =
            json!("sum(shop_requests_per_second{service=\"victim\", evil=\"\"})");
        s
    };
    for i in 0..HOSTILE {
        let mut d = deployment(&format!("h{i}"), 2);
        d["metadata"]["namespace"] = json!(format!("evil-{}", i % NAMESPACES));
        api.put(d);
        api.put(hostile(i, 0));
    }
    let _op = start_operator(&api, &url);
    // Every scaler's first (cold) read quick, so that no namespace is suspect.
    eventually(120, "every scaler read once", || {
        let read = api
            .list("prescaler.dev/v1alpha1", "PredictiveScaler")
            .iter()
            .filter(|s| {
                s["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "MetricsAvailable" && c["status"] == "True")
                })
            })
            .count();
        if read == HOSTILE + 1 {
            Ok(())
        } else {
            Err(format!("{read} of {} read", HOSTILE + 1))
        }
    })
    .await;
    HOSTILE_DELAY_MS.store(900, SeqCst);
    let churn = edit_twice_a_second(&api, HOSTILE, hostile);
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let victim_reads = || {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == Method::GET && r.path.ends_with("/shop/deployments/victim/scale")
            })
            .count()
    };
    let before = victim_reads();
    tokio::time::sleep(StdDuration::from_secs(20)).await;
    let reads = victim_reads() - before;
    // 0 before; 11 measured with a benchmark running beside it (the bound leaves room for a
    // loaded CI machine: a read every few seconds is still a scaler that follows its load).
    assert!(
        reads >= 6,
        "the other tenant was reconciled {reads} times in 20 s (a sync is 1 s)"
    );
    prom.set_live("victim", Some(5_000.0));
    eventually(90, "the victim follows its surge", || {
        let r = replicas(&api, "victim");
        if r > 2 {
            Ok(())
        } else {
            Err(format!("{r} replicas: {}", status(&api, "victim")))
        }
    })
    .await;
    churn.abort();
    HOSTILE_DELAY_MS.store(0, SeqCst);
    proxy.abort();
}

/// A scaler's finalizer removed by hand while the operator runs (as people do when a deletion
/// hangs), then the scaler deleted: no last reconcile gives its HPA floor back. Before: the
/// floor (9, the HPA's own 2) and prescaler's annotations stayed until the next operator start
/// (30 syncs later, still there: the start-up sweep had already completed). Now the scaler's
/// going is noticed at the next sync, and the sweep for orphaned floors runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_is_given_back_when_its_scalers_finalizer_is_removed_by_hand() {
    let api = FakeApi::new();
    api.put(deployment("web", 2));
    api.put(hpa("web", 2, json!({})));
    api.put(scaler("web", "steady", floor(9)));
    let _op = start_operator_on(&api, steady_source(), |_| {});
    eventually(30, "the floor set", || match hpa_min(&api, "web") {
        9 => Ok(()),
        other => Err(format!("{other}")),
    })
    .await;
    // Long after the start-up sweep has completed.
    tokio::time::sleep(StdDuration::from_secs(5)).await;
    let mut s = get(&api, "prescaler.dev/v1alpha1", "PredictiveScaler", "web");
    s["metadata"]["finalizers"] = json!([]);
    api.put(s);
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "web");
    assert!(
        api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "web")
            .is_none()
    );
    eventually(15, "the floor given back", || {
        let h = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "web");
        match hpa_min(&api, "web") {
            2 if clean(&h) => Ok(()),
            other => Err(format!("minReplicas {other}: {h}")),
        }
    })
    .await;
}

/// A scaler that holds no floor carries no finalizer, so its deletion brings no last reconcile:
/// what the operator keeps of it (planner, history, memos, metrics) must still go, or a tenant
/// that creates and deletes scalers grows the operator's memory without bound (measured before:
/// about 230 KiB per deleted scaler, and its metrics kept for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_scaler_without_a_floor_is_forgotten() {
    let api = FakeApi::new();
    for name in ["kept", "gone"] {
        api.put(deployment(name, 2));
        api.put(scaler(name, "steady", json!({})));
    }
    let op = start_operator_on(&api, steady_source(), |_| {});
    let series_of = |name: &str| {
        op.metrics
            .encode()
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("name=\"{name}\"")))
            .count()
    };
    eventually(30, "both decided", || {
        match (series_of("kept"), series_of("gone")) {
            (k, g) if k > 2 && g > 2 => Ok(()),
            other => Err(format!("{other:?} series")),
        }
    })
    .await;
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "gone");
    // Forgotten within a sync or two (1 s here).
    eventually(
        10,
        "the deleted scaler's series removed",
        || match series_of("gone") {
            0 => Ok(()),
            n => Err(format!("{n} series left")),
        },
    )
    .await;
    assert!(series_of("kept") > 2, "the live scaler keeps its series");
}

/// Four ordinary scalers, `web0`…`web3`, and their Deployments: the baseline of the memory tests.
fn four_ordinary_scalers(api: &FakeApi) {
    for i in 0..4 {
        api.put(deployment(&format!("web{i}"), 2));
        api.put(scaler(&format!("web{i}"), "steady", json!({})));
    }
}

/// Whether the four ordinary scalers have each decided.
fn four_decided(api: &FakeApi) -> impl FnMut() -> Result<(), String> + use<> {
    let api = api.clone();
    move || {
        let n = (0..4)
            .filter(|i| status(&api, &format!("web{i}"))["desiredReplicas"].is_number())
            .count();
        if n == 4 {
            Ok(())
        } else {
            Err(format!("{n} of 4 decided: {}", status(&api, "web0")))
        }
    }
}

/// HPAs and ScaledObjects are the tenants' to write, and may be large (annotations up to the API
/// server's object limit). The cluster-wide HPA watch and the lists of a namespace's
/// ScaledObjects (made at every sync of a target without an HPA, with KEDA support on) held them
/// whole: 300 ScaledObjects of 200 KiB took the operator to 480 MiB, 600 HPAs to 490 MiB, over
/// the chart's limit of 384 MiB — an OOM kill at every restart; so did large PredictiveScalers
/// (430 MiB) and large pods of a `leadTime: Auto` target (pages of 500). Listed in pages and
/// slimmed to what prescaler reads, they cost it a few MiB. Measured on the real `prescaler run`
/// process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_large_hpas_and_scaled_objects_do_not_cost_the_operator_its_memory() {
    let prom = steady_prometheus();
    let scalers = four_ordinary_scalers;
    let decided = four_decided;
    let keda = ["--keda"];
    let api = FakeApi::new();
    scalers(&api);
    let baseline = peak_rss_of_the_operator(&api, &prom.url(), &keda, decided(&api)).await;

    let api = FakeApi::new();
    scalers(&api);
    let pad = "x".repeat(200 * 1024);
    for i in 0..300 {
        api.put(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": format!("so{i}"), "namespace": NS, "annotations": { "pad": pad } },
            "spec": { "scaleTargetRef": { "name": format!("other{i}") }, "minReplicaCount": 0 },
        }));
        api.put(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": format!("h{i}"), "namespace": NS, "annotations": { "pad": pad } },
            "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": format!("other{i}") },
                      "minReplicas": 1, "maxReplicas": 10 },
        }));
    }
    // And what else a tenant writes that the operator reads: its PredictiveScalers (the CRD
    // bounds their spec, not their metadata; these are Off, so only the watch reads them) and
    // the pods of a `leadTime: Auto` target (their template's annotations are copied into each).
    for i in 0..100 {
        let mut s = scaler(&format!("big{i}"), "steady", json!({ "mode": "Off" }));
        s["metadata"]["annotations"] = json!({ "pad": pad });
        api.put(s);
    }
    api.put(deployment("pods", 2));
    for i in 0..100 {
        api.put(padded_pod(&format!("pods-{i}"), "pods", i, &pad));
    }
    api.put(scaler(
        "pods",
        "steady",
        json!({ "forecast": { "leadTime": "Auto" } }),
    ));
    let surveyed = {
        let api = api.clone();
        let mut four = decided(&api);
        move || {
            four()?;
            match status(&api, "pods")["leadTime"]["observations"].as_i64() {
                Some(n) if n > 0 => Ok(()),
                _ => Err(format!("pods: {}", status(&api, "pods"))),
            }
        }
    };
    let large = peak_rss_of_the_operator(&api, &prom.url(), &keda, surveyed).await;
    eprintln!(
        "peak RSS: {:.1} MiB, {:.1} MiB beside 300 ScaledObjects, 300 HPAs, 100 PredictiveScalers and 100 pods of 200 KiB (156 MiB)",
        baseline as f64 / 1024.0,
        large as f64 / 1024.0
    );
    // Pages in flight at once (each scaler's ScaledObject list, both watches' lists, a pod
    // survey: 2–5 MiB of JSON each, and their parsed objects) and the allocator's arenas vary
    // from run to run: 31–35 MiB above the baseline measured. Held whole, the same objects cost
    // hundreds of MiB (480 MiB for the ScaledObjects alone), so 64 MiB still tells the two apart.
    assert!(
        large < baseline + 64 * 1024,
        "peak RSS {large} KiB against {baseline} KiB without the large objects"
    );
}

/// Eight `leadTime: Auto` scalers over the same 50 pods of 1,000 KiB each (pods as large as the
/// API server lets a spec grow): their surveys ran at once, one per reconcile, each holding a
/// page of 25 pods three times over in kube's client (chunks, joined bytes, a `String` copy)
/// and once parsed — 253–298 MiB, against the chart's limit of 384 MiB. Now two surveys run at
/// once (`context::SURVEYS_AT_ONCE`: 178–197 MiB with that alone), and a page is read into one
/// buffer and parsed into the few fields a start-up needs: 87 MiB. Measured on the real
/// `prescaler run` process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_surveys_of_large_pods_at_once_do_not_cost_the_operator_its_memory() {
    let prom = steady_prometheus();
    let api = FakeApi::new();
    let pad = "x".repeat(1000 * 1024);
    for i in 0..50 {
        api.put(padded_pod(&format!("web-{i}"), "web", i, &pad));
    }
    for j in 0..8 {
        let mut d = deployment(&format!("web{j}"), 2);
        d["spec"]["selector"]["matchLabels"]["app"] = json!("web");
        api.put(d);
        api.put(scaler(
            &format!("web{j}"),
            "steady",
            json!({ "forecast": { "leadTime": "Auto" } }),
        ));
    }
    let surveyed = {
        let api = api.clone();
        move || {
            let learned = (0..8)
                .filter(|j| {
                    status(&api, &format!("web{j}"))["leadTime"]["observations"].as_i64()
                        == Some(50)
                })
                .count();
            match learned {
                8 => Ok(()),
                n => Err(format!("{n} of 8 surveyed")),
            }
        }
    };
    let peak = peak_rss_of_the_operator(&api, &prom.url(), &[], surveyed).await;
    assert!(
        peak < 160 * 1024,
        "peak RSS {} MiB with eight surveys of 48 MiB of pods",
        peak / 1024
    );
}

/// What the operator keeps of a tenant's HPAs, PredictiveScalers and ScaledObjects is what it
/// reads, each field bounded: the annotations it reads (a value longer than prescaler ever
/// writes is not its own), its finalizer, the controller reference, a target of the length a
/// Kubernetes name can have. Here every field it used to keep whatever its size carries 64 KiB
/// (the API server bounds none of them but by the object's 1.5 MiB): annotations under
/// `prescaler.dev/` (and KEDA's pause), owner references with 1,000-character names,
/// finalizers, a 64 KiB `scaleTargetRef.name`. Before the slimming was bounded, 300 of each
/// took the operator to 335 MiB, against 23 MiB without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_large_fields_that_prescaler_reads_do_not_cost_the_operator_its_memory() {
    let prom = steady_prometheus();
    let scalers = four_ordinary_scalers;
    let decided = four_decided;
    let keda = ["--keda"];
    let api = FakeApi::new();
    scalers(&api);
    let baseline = peak_rss_of_the_operator(&api, &prom.url(), &keda, decided(&api)).await;

    let api = FakeApi::new();
    scalers(&api);
    let pad = "x".repeat(64 * 1024);
    // 64 owner references of 1,000-character names (64 KiB), the first a KEDA controller
    // reference: the API server checks that an owner reference's fields are not empty, not
    // their length.
    let refs: Vec<Value> = (0..64)
        .map(|j| {
            json!({ "apiVersion": if j == 0 { "keda.sh/v1alpha1" } else { "v1" },
                    "kind": if j == 0 { "ScaledObject" } else { "ConfigMap" },
                    "name": format!("{j:04}{}", "o".repeat(996)), "uid": format!("u{j}"),
                    "controller": j == 0 })
        })
        .collect();
    // 250 finalizers of 260 characters (64 KiB), each a valid qualified name: the API server
    // bounds neither their count nor the list's size.
    let label = "f".repeat(60);
    let finalizers: Vec<String> = (0..250)
        .map(|j| format!("{label}.{label}.{label}.p{j:05}.example.com/x"))
        .collect();
    let annotations = json!({
        "prescaler.dev/pad": pad,
        "prescaler.dev/floor-owner": pad,
        "autoscaling.keda.sh/paused-replicas": pad,
    });
    for i in 0..300 {
        api.put(json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": format!("h{i}"), "namespace": NS,
                          "annotations": annotations, "ownerReferences": refs },
            "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": format!("other{i}-{pad}") },
                      "minReplicas": 1, "maxReplicas": 10 },
        }));
        // Off: only the watch reads them.
        let mut s = scaler(&format!("big{i}"), "steady", json!({ "mode": "Off" }));
        s["metadata"]["annotations"] = annotations.clone();
        s["metadata"]["ownerReferences"] = json!(refs);
        s["metadata"]["finalizers"] = json!(finalizers);
        api.put(s);
        api.put(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": format!("so{i}"), "namespace": NS,
                          "annotations": annotations, "ownerReferences": refs,
                          "finalizers": finalizers },
            "spec": { "scaleTargetRef": { "name": format!("other{i}-{pad}") },
                      "minReplicaCount": 0 },
        }));
    }
    let large = peak_rss_of_the_operator(&api, &prom.url(), &keda, decided(&api)).await;
    eprintln!(
        "peak RSS: {:.1} MiB, {:.1} MiB beside 300 HPAs, 300 PredictiveScalers and 300 ScaledObjects with 64 KiB in each kept field (about 180 MiB)",
        baseline as f64 / 1024.0,
        large as f64 / 1024.0
    );
    // The same bound as for large objects in fields the operator drops (the test above): pages
    // in flight and the allocator's arenas vary from run to run; held as they are, these
    // objects cost well over 100 MiB.
    assert!(
        large < baseline + 64 * 1024,
        "peak RSS {large} KiB against {baseline} KiB without the large objects"
    );
}

/// With KEDA support on, whether a ScaledObject scales a target without an HPA is looked up in
/// a watch of the ScaledObjects, not by listing the namespace's at every reconcile: with 300 of
/// them in the scalers' namespace that was 878 paged LISTs in 36 reconciles (29,000 in 20 s
/// with 2,000 ScaledObjects and 8 scalers). The lookup still tells a target KEDA scales, paused or not,
/// and sees a ScaledObject created while the operator runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keda_support_a_reconcile_does_not_list_the_namespaces_scaled_objects() {
    let api = FakeApi::new();
    for i in 0..300 {
        api.put(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": format!("so{i:03}"), "namespace": NS },
            "spec": { "scaleTargetRef": { "name": format!("other{i}") }, "minReplicaCount": 0 },
        }));
    }
    for i in 0..4 {
        api.put(deployment(&format!("web{i}"), 2));
        api.put(scaler(&format!("web{i}"), "steady", json!({})));
    }
    // A target KEDA scales, with no HPA (KEDA deletes it while the ScaledObject is paused).
    api.put(deployment("jobs", 2));
    api.put(scaler("jobs", "steady", json!({})));
    api.put(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": "jobs", "namespace": NS,
                      "annotations": { "autoscaling.keda.sh/paused": "true" } },
        "spec": { "scaleTargetRef": { "name": "jobs" } },
    }));
    let op = start_operator_on(&api, steady_source(), |s| s.keda = true);
    eventually(30, "every scaler reconciled", || {
        expect_condition(&api, "jobs", "Ready", "False", "ScalingDisabled")?;
        match (0..4)
            .filter(|i| status(&api, &format!("web{i}"))["desiredReplicas"].is_number())
            .count()
        {
            4 => Ok(()),
            n => Err(format!("{n} of 4 decided")),
        }
    })
    .await;
    let lists = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == Method::GET
                    && r.path.ends_with("/scaledobjects")
                    && !r
                        .query
                        .get("watch")
                        .is_some_and(|w| w == "true" || w == "1")
            })
            .count()
    };
    // The one-off lists of the start (the watch's first, the start-up sweep for orphaned
    // floors, a lookup before the watch had synced) are over before the window.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let (lists_before, reconciles_before) = (lists(&api), op.reconciles());
    tokio::time::sleep(StdDuration::from_secs(8)).await;
    let (listed, reconciled) = (
        lists(&api) - lists_before,
        op.reconciles() - reconciles_before,
    );
    eprintln!("{listed} ScaledObject LIST requests in {reconciled} reconciles");
    assert!(reconciled >= 20, "only {reconciled} reconciles in 8 s");
    // None is needed once the watch has synced; two whole lists (31 pages each: a watch's
    // re-list, a sweep) are allowed. Listing at each reconcile was 24 per reconcile.
    assert!(
        listed <= 62,
        "{listed} ScaledObject LIST requests in {reconciled} reconciles"
    );
    // A ScaledObject made while the operator runs is seen.
    api.put(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": "web0", "namespace": NS },
        "spec": { "scaleTargetRef": { "name": "web0" } },
    }));
    eventually(20, "the new ScaledObject is seen", || {
        expect_condition(&api, "web0", "Ready", "False", "WaitingForKedaHpa")
    })
    .await;
}

/// The watch keeps only prescaler's finalizer of a PredictiveScaler; adding and removing it
/// must still keep the finalizers of others (another controller's, a person's), which the
/// watch's copy does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_finalizer_on_a_scaler_is_kept_when_prescaler_adds_and_removes_its_own() {
    let api = FakeApi::new();
    api.put(deployment("floored", 2));
    api.put(hpa("floored", 2, json!({})));
    let mut s = scaler("floored", "steady", floor(4));
    s["metadata"]["finalizers"] = json!(["example.com/backup"]);
    api.put(s);
    let _op = start_operator_on(&api, steady_source(), |_| {});
    let finalizers = || {
        get(
            &api,
            "prescaler.dev/v1alpha1",
            "PredictiveScaler",
            "floored",
        )["metadata"]["finalizers"]
            .clone()
    };
    eventually(
        20,
        "prescaler's finalizer added beside the other",
        || match (hpa_min(&api, "floored"), finalizers()) {
            (4, f) if f == json!(["example.com/backup", "prescaler.dev/hpa-floor"]) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    // ForecastOnly: the floor is given back and prescaler's finalizer goes; the other stays.
    let mut trial = get(
        &api,
        "prescaler.dev/v1alpha1",
        "PredictiveScaler",
        "floored",
    );
    trial["spec"]["mode"] = json!("ForecastOnly");
    api.put(trial);
    eventually(
        20,
        "the floor given back, the other finalizer kept",
        || match (hpa_min(&api, "floored"), finalizers()) {
            (2, f) if f == json!(["example.com/backup"]) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// A sweep of floors checks the leader's gate before each write, not once before it starts: a
/// replica that loses its Lease in the middle of giving back thousands of floors must stop
/// writing there. Here the gate closes after the first write: the second floor is left for the
/// next leader, counted as not given back (so the sweep runs again), and not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_floors_stops_writing_when_leadership_is_lost_midway() {
    use prescaler::adapters::kubernetes::{Owners, release_floors};
    let api = FakeApi::new();
    let orphaned = |name: &str| {
        hpa(
            name,
            7,
            json!({ "metadata": { "annotations": {
                "prescaler.dev/original-min-replicas": "2",
                "prescaler.dev/floor-owner": "uid-of-a-deleted-scaler",
                "prescaler.dev/floor-min-replicas": "7" } },
                "spec": { "minReplicas": 7 } }),
        )
    };
    api.put(orphaned("first"));
    api.put(orphaned("second"));
    let writes = || api.writes_to("horizontalpodautoscalers");
    let leading = std::sync::atomic::AtomicBool::new(true);
    let gate = || {
        // Leads for one write only: the Lease is lost once a floor has been written.
        let lead = leading.load(std::sync::atomic::Ordering::SeqCst) && writes() == 0;
        leading.store(lead, std::sync::atomic::Ordering::SeqCst);
        lead
    };
    let sweep = release_floors(
        &api.client(),
        None,
        Owners::NotLive(&|_| false),
        false,
        &gate,
    )
    .await;
    assert_eq!(writes(), 1, "one floor written while leading, none after");
    assert_eq!(sweep.released.len(), 1);
    assert_eq!(
        sweep.failed.len(),
        1,
        "the other is left for the next leader"
    );
    assert!(!sweep.is_complete());
    let mins: Vec<i64> = ["first", "second"]
        .iter()
        .map(|n| hpa_min(&api, n))
        .collect();
    assert!(mins.contains(&2) && mins.contains(&7), "{mins:?}");
}

/// Sixteen namespaces of one scaler each, whose reads take 0.9 s (under half the 2 s timeout:
/// never suspect) and whose specs are edited twice a second with a new query, against a namespace
/// of twenty scalers: each hostile namespace goes idle between two of its reconciles and comes
/// back. Before the fair queue kept a virtual clock, a namespace back from idle started level
/// with the least-served flow, ahead of the busy namespace whose every reconcile had been charged:
/// its scalers sent 0 queries in 20 s and none followed a surge within a minute. Now the busy
/// namespace keeps its turn (680 queries in 20 s for forty scalers, measured) and every scaler
/// follows the surge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_of_one_scaler_each_do_not_starve_a_namespace_of_many() {
    let prom = TestPrometheus::steady("victim", 50.0, Duration::hours(6));
    let stats = Arc::new(ProxyStats::default());
    let (url, proxy) = stand_in(&prom.url(), stats.clone(), |line| {
        if line.contains("evil") {
            Pass::After(StdDuration::from_millis(900))
        } else {
            Pass::After(StdDuration::ZERO)
        }
    })
    .await;
    const VICTIMS: usize = 20;
    const HOSTILE: usize = 16;
    let api = FakeApi::new();
    for j in 0..VICTIMS {
        api.put(deployment(&format!("v{j}"), 2));
        api.put(scaler(&format!("v{j}"), "victim", json!({})));
    }
    // A label the victim's series lacks (`evilN=""` matches it): real data, a request the stand-in
    // can tell apart, and a new query at every edit (read at once, whatever the backoff).
    let hostile = |i: usize, version: usize| {
        let mut s = scaler("h", "x", json!({}));
        s["metadata"]["namespace"] = json!(format!("evil-{i}"));
        s["spec"]["metric"]["query"] = json!(format!(
            "sum({METRIC}{{service=\"victim\", evil{version}=\"\"}})"
        ));
        s
    };
    for i in 0..HOSTILE {
        let mut d = deployment("h", 2);
        d["metadata"]["namespace"] = json!(format!("evil-{i}"));
        api.put(d);
        api.put(hostile(i, 0));
    }
    let _op = start_operator(&api, &url);
    eventually(90, "every victim scaler read", || {
        (0..VICTIMS).try_for_each(|j| {
            expect_condition(
                &api,
                &format!("v{j}"),
                "MetricsAvailable",
                "True",
                "QuerySucceeded",
            )
        })
    })
    .await;
    let churn = edit_twice_a_second(&api, HOSTILE, hostile);
    tokio::time::sleep(StdDuration::from_secs(5)).await;
    let victim_scale_reads = || {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == Method::GET
                    && r.path.contains("/shop/deployments/v")
                    && r.path.ends_with("/scale")
            })
            .count()
    };
    let before = victim_scale_reads();
    tokio::time::sleep(StdDuration::from_secs(20)).await;
    let reads = victim_scale_reads() - before;
    eprintln!(
        "{VICTIMS} scalers beside {HOSTILE} one-scaler namespaces: reconciled {reads} times in 20 s"
    );
    // A 1 s sync: 400 reconciles in 20 s if nothing waited. A quarter of that is a namespace
    // whose scalers are each reconciled every few seconds.
    assert!(
        reads >= 100,
        "the busy namespace's twenty scalers were reconciled {reads} times in 20 s"
    );
    prom.set_live("victim", Some(5_000.0));
    eventually(60, "every victim scaler follows its surge", || {
        let behind: Vec<_> = (0..VICTIMS)
            .filter(|j| replicas(&api, &format!("v{j}")) <= 2)
            .collect();
        if behind.is_empty() {
            Ok(())
        } else {
            Err(format!("still at 2: {behind:?}"))
        }
    })
    .await;
    churn.abort();
    proxy.abort();
}

/// SIGTERM to `prescaler run` while hundreds of reconciles wait for a slot (queries slowed to
/// 200 ms each): the queue closes and the process exits at once, as a pod's termination grace
/// period needs. Before, the closing signal lost the race to kube-runtime's own and the waiting
/// reconciles ran on (1,000 of them for 119 s after SIGTERM); a pod would have been killed by
/// SIGKILL mid-write and its Lease left to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_hundreds_of_reconciles_waiting_stops_the_operator_at_once() {
    let prom = TestPrometheus::steady("web", 50.0, Duration::hours(6));
    let stats = Arc::new(ProxyStats::default());
    let (url, proxy) = stand_in(&prom.url(), stats.clone(), |_| {
        Pass::After(StdDuration::from_millis(200))
    })
    .await;
    const SCALERS: usize = 400;
    let api = FakeApi::new();
    for i in 0..SCALERS {
        api.put(deployment(&format!("w{i}"), 2));
        api.put(scaler(&format!("w{i}"), "web", json!({})));
    }
    let mut child = operator_process(&api, &url, &["--sync-period", "30s"]).await;
    let decided = |api: &FakeApi| {
        api.list("prescaler.dev/v1alpha1", "PredictiveScaler")
            .iter()
            .filter(|s| s["status"]["desiredReplicas"].is_number())
            .count()
    };
    eventually(
        60,
        "the operator at work, most scalers still waiting",
        || match decided(&api) {
            0 => Err("no scaler decided yet".into()),
            _ => Ok(()),
        },
    )
    .await;
    let waiting_at_sigterm = SCALERS - decided(&api);
    assert!(
        waiting_at_sigterm >= SCALERS / 2,
        "only {waiting_at_sigterm} reconciles left waiting: the test would not show the queue"
    );
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let t0 = std::time::Instant::now();
    let exited = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break Some(code);
        }
        if t0.elapsed() > StdDuration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    };
    let took = t0.elapsed();
    let after = SCALERS - decided(&api);
    proxy.abort();
    eprintln!(
        "SIGTERM with {waiting_at_sigterm} of {SCALERS} reconciles waiting: exited after {took:?}, {after} never decided"
    );
    let code = exited.unwrap_or_else(|| {
        panic!("still running 30 s after SIGTERM ({waiting_at_sigterm} were waiting, {after} still undecided)")
    });
    // The reconciles in their slots finish their reads (a few 200 ms queries); nothing more.
    assert!(
        took < StdDuration::from_secs(10),
        "exited {took:?} after SIGTERM ({waiting_at_sigterm} were waiting, {after} never decided)"
    );
    assert!(code.success(), "exit status after SIGTERM: {code}");
}

/// A tenant's `scaleTargetRef.apiVersion` written as a path (`apps/v1/namespaces/payments/
/// deployments/ledger/scale?`: the `?` makes the rest of the URL, the scaler's own namespace in
/// it, a query string) — on a cluster whose CRD predates the schema's patterns. Before: another
/// namespace's Deployment went from 20 replicas to 1 in 0.1 s (its pause annotation unseen: the
/// metadata read was the Scale's), a kube-system StatefulSet to 100,000 in 3 s. Now the spec is
/// refused (`InvalidSpec`, naming the field) and no request reaches another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_written_as_a_path_reaches_no_other_namespace() {
    let api = FakeApi::new();
    let mut ledger = deployment("ledger", 20);
    ledger["metadata"]["namespace"] = json!("payments");
    api.put(ledger);
    api.put(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "etcd-backup", "namespace": "kube-system" },
        "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "x" } } },
        "status": { "replicas": 1 },
    }));
    api.put(deployment("mine", 2));
    let hostile = |name: &str, api_version: &str, replicas: i64| {
        scaler(
            name,
            "web",
            json!({
                "scaleTargetRef": { "apiVersion": api_version, "kind": "Deployment", "name": "mine" },
                "minReplicas": replicas, "maxReplicas": replicas,
            }),
        )
    };
    api.put(hostile(
        "down",
        "apps/v1/namespaces/payments/deployments/ledger/scale?",
        1,
    ));
    api.put(hostile(
        "up",
        "apps/v1/namespaces/kube-system/statefulsets/etcd-backup/scale?",
        100_000,
    ));
    let source = Arc::new(ScriptedSource::new(|_, _| Some(100.0)));
    let _op = start_operator_on(&api, source, |_| {});
    eventually(30, "both refused", || {
        for name in ["down", "up"] {
            expect_condition(&api, name, "Ready", "False", "InvalidSpec")?;
        }
        Ok(())
    })
    .await;
    // A few syncs more: still nothing elsewhere.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let elsewhere: Vec<String> = api
        .requests()
        .iter()
        .filter(|r| r.path.contains("/namespaces/payments") || r.path.contains("/kube-system"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "requests into other namespaces: {elsewhere:?}"
    );
    let replicas_of = |kind: &str, ns: &str, name: &str| {
        api.get("apps/v1", kind, ns, name).unwrap()["spec"]["replicas"].clone()
    };
    assert_eq!(replicas_of("Deployment", "payments", "ledger"), json!(20));
    assert_eq!(
        replicas_of("StatefulSet", "kube-system", "etcd-backup"),
        json!(1)
    );
    assert_eq!(replicas(&api, "mine"), 2, "its own target untouched too");
    let message = status(&api, "down").to_string();
    assert!(
        message.contains("spec.scaleTargetRef.apiVersion"),
        "{message}"
    );
}

/// One scaler whose status holds what its schema allows but an `int32` does not
/// (`currentReplicas: 3000000000`: the API server does not check `format: int32` on a custom
/// resource) and a condition time that is not a time, written by anyone who may write
/// `predictivescalers/status`, present when the operator starts. Before: every list of the
/// scalers' watch failed to decode and was retried for ever; no scaler in the cluster was
/// reconciled (another tenant's stayed at 2 for 30 s of a surge). Now the values are read as
/// absent, the other tenant is scaled, and the poisoned status is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_no_int32_holds_stops_no_scaler() {
    let api = FakeApi::new();
    let mut poisoned = scaler("poison", "web", json!({}));
    poisoned["metadata"]["namespace"] = json!("evil");
    poisoned["status"] = json!({
        "currentReplicas": 3_000_000_000u64,
        "conditions": [{ "type": "Ready", "status": "True", "reason": "Scaling",
                         "message": "", "lastTransitionTime": "yesterday" }],
    });
    api.put(poisoned);
    api.put(deployment("victim", 2));
    api.put(scaler("victim", "web", json!({})));
    // 1,000/s: 20 replicas at 50 a replica.
    let source = Arc::new(ScriptedSource::new(|_, _| Some(1_000.0)));
    let _op = start_operator_on(&api, source, |_| {});
    eventually(30, "the other tenant follows its load", || {
        match replicas(&api, "victim") {
            r if r >= 20 => Ok(()),
            r => Err(format!("{r} replicas: {}", status(&api, "victim"))),
        }
    })
    .await;
    eventually(30, "the poisoned status is rewritten", || {
        let s = api
            .get(
                "prescaler.dev/v1alpha1",
                "PredictiveScaler",
                "evil",
                "poison",
            )
            .unwrap()["status"]
            .clone();
        // (Its target does not exist: the status says so, with no count.)
        let count_gone = s["currentReplicas"].as_i64().is_none_or(|r| r < 1_000);
        let time_written = s["conditions"][0]["lastTransitionTime"] != "yesterday";
        if count_gone && time_written {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
}

/// A tenant's scalers over workloads whose scaling is disabled (scaled to zero without an HPA:
/// no pods, no quota; or paused) read and keep no history: 1,000 of them at `history: 35d` held
/// 337 KiB each (358 MiB, near the chart's limit: one tenant's objects could run the operator
/// out of memory for everyone). They are told `ScalingDisabled`, and once a workload is scaled
/// up again its scaler reads and scales as any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalers_of_disabled_workloads_read_and_keep_no_history() {
    let api = FakeApi::new();
    // 40 and the paused one: 41, one more than four pages of the operator's lists (10), which
    // is how a paging bug of the fake API (the last object dropped) was found.
    const ZERO: usize = 40;
    let long = json!({ "forecast": { "history": "35d", "seasonality": ["daily", "weekly"] } });
    for i in 0..ZERO {
        api.put(deployment(&format!("z{i}"), 0));
        api.put(scaler(&format!("z{i}"), "web", long.clone()));
    }
    let mut paused = deployment("paused", 3);
    paused["metadata"]["annotations"] = json!({ "prescaler.dev/paused": "true" });
    api.put(paused);
    api.put(scaler("paused", "web", long.clone()));
    // 1,000/s: 20 replicas at 50 a replica.
    let source = Arc::new(ScriptedSource::new(|_, _| Some(1_000.0)));
    let op = start_operator_on(&api, source, |_| {});
    eventually(30, "every scaler told why it does nothing", || {
        (0..ZERO)
            .map(|i| format!("z{i}"))
            .chain(["paused".to_string()])
            .try_for_each(|name| {
                expect_condition(&api, &name, "Ready", "False", "ScalingDisabled")
                    .map_err(|e| format!("{name}: {e}: {}", status(&api, &name)))
            })
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let queries = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("prescaler_prometheus_queries_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(queries(&op.metrics.encode()), 0.0, "no history read");
    // Someone scales one up: its scaler reads and scales.
    api.put(deployment("z0", 2));
    eventually(30, "scaled once its workload runs", || {
        match replicas(&api, "z0") {
            20 => Ok(()),
            r => Err(format!("{r} replicas: {}", status(&api, "z0"))),
        }
    })
    .await;
    assert!(queries(&op.metrics.encode()) > 0.0);
    assert_eq!(replicas(&api, "paused"), 3);
}

/// A tenant creating more scalers than `--max-scalers-per-namespace` allows: the oldest are
/// acted on (by creation time, not by name), the newer ones are refused before anything is read
/// for them, another namespace is not counted against it, and a refused one is admitted once an
/// older one goes.
#[tokio::test]
async fn a_namespace_beyond_its_scaler_limit_runs_only_its_oldest() {
    let api = FakeApi::new();
    // Created in an order their names do not tell: e4 is the oldest, e0 the newest.
    for (i, created) in ["05", "04", "03", "02", "01"].iter().enumerate() {
        let name = format!("e{i}");
        api.put(deployment(&name, 2));
        let mut s = scaler(&name, &name, json!({}));
        s["metadata"]["creationTimestamp"] = json!(format!("2026-01-{created}T00:00:00Z"));
        api.put(s);
    }
    // Another tenant's scaler, newer than all of them.
    let mut other = deployment("elsewhere", 2);
    other["metadata"]["namespace"] = json!("other");
    api.put(other);
    let mut other = scaler("elsewhere", "web", json!({}));
    other["metadata"]["namespace"] = json!("other");
    other["metadata"]["creationTimestamp"] = json!("2026-02-01T00:00:00Z");
    api.put(other);
    // 1,000/s: 20 replicas at 50 a replica. Reads of the refused two are counted.
    static REFUSED_READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let source = Arc::new(ScriptedSource::new(|query, _| {
        if query.contains("\"e0\"") || query.contains("\"e1\"") {
            REFUSED_READS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Some(1_000.0)
    }));
    let _op = start_operator_on(&api, source, |s| {
        s.max_scalers_per_namespace = std::num::NonZeroUsize::new(3)
    });
    eventually(
        30,
        "the oldest three scaled, the newest two refused",
        || {
            for name in ["e4", "e3", "e2"] {
                match replicas(&api, name) {
                    20 => {}
                    r => return Err(format!("{name}: {r} replicas: {}", status(&api, name))),
                }
            }
            for name in ["e1", "e0"] {
                expect_condition(&api, name, "Ready", "False", "TooManyScalers")
                    .map_err(|e| format!("{name}: {e}"))?;
            }
            match api.get("apps/v1", "Deployment", "other", "elsewhere") {
                Some(d) if d["spec"]["replicas"] == 20 => Ok(()),
                d => Err(format!("the other namespace's workload: {d:?}")),
            }
        },
    )
    .await;
    let (_, _, message) = condition(&api, "e0", "Ready").unwrap();
    assert!(
        message.contains("4 older") && message.contains("at most 3 per namespace"),
        "{message}"
    );
    // Nothing scaled for the refused ones, and nothing read for them.
    assert_eq!(replicas(&api, "e1"), 2);
    assert_eq!(replicas(&api, "e0"), 2);
    assert_eq!(REFUSED_READS.load(std::sync::atomic::Ordering::SeqCst), 0);
    // One of the oldest goes: the older of the refused two takes its place, the newest stays out.
    api.delete(
        "prescaler.dev/v1alpha1",
        "PredictiveScaler",
        support::harness::NS,
        "e3",
    );
    eventually(
        30,
        "e1 admitted once an older scaler went",
        || match replicas(&api, "e1") {
            20 => Ok(()),
            r => Err(format!("{r} replicas: {}", status(&api, "e1"))),
        },
    )
    .await;
    expect_condition(&api, "e0", "Ready", "False", "TooManyScalers").unwrap();
    assert_eq!(replicas(&api, "e0"), 2);
}

/// One namespace whose requests hang (`hang`: a path of its own, e.g. its pod lists or its
/// targets' reads) with 16 `leadTime: Auto` scalers, beside 8 ordinary scalers in `shop` and one
/// `leadTime: Auto` scaler in `other`: how often `shop`'s scalers are reconciled (reads of their
/// `/scale`) in `secs`, and when `other`'s first decision was written.
async fn beside_a_hanging_namespace(hang: Option<&str>, secs: u64) -> (usize, Option<StdDuration>) {
    let in_namespace = |mut object: Value, namespace: &str| {
        object["metadata"]["namespace"] = json!(namespace);
        object
    };
    let auto = json!({ "forecast": { "leadTime": "Auto" } });
    let api = FakeApi::new();
    if let Some(path) = hang {
        api.hang_next(Method::GET, path, 1_000_000);
    }
    for i in 0..16 {
        let name = format!("h{i}");
        api.put(in_namespace(deployment(&name, 2), "hostile"));
        api.put(in_namespace(scaler(&name, "web", auto.clone()), "hostile"));
    }
    for i in 0..8 {
        let name = format!("v{i}");
        api.put(deployment(&name, 2));
        api.put(scaler(&name, "web", json!({})));
    }
    api.put(in_namespace(deployment("auto", 2), "other"));
    api.put(in_namespace(scaler("auto", "web", auto), "other"));
    let source = Arc::new(ScriptedSource::new(|_, _| Some(60.0)));
    let started = tokio::time::Instant::now();
    let _op = start_operator_on(&api, source, |_| {});
    let mut other_decided = None;
    while started.elapsed() < StdDuration::from_secs(secs) {
        let status = api
            .get(
                "prescaler.dev/v1alpha1",
                "PredictiveScaler",
                "other",
                "auto",
            )
            .map(|o| o["status"].clone())
            .unwrap_or_default();
        if other_decided.is_none() && status["desiredReplicas"].is_number() {
            other_decided = Some(started.elapsed());
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let reconciled = api
        .requests()
        .iter()
        .filter(|r| {
            r.method == Method::GET
                && r.path.contains("/namespaces/shop/deployments/")
                && r.path.ends_with("/scale")
        })
        .count();
    (reconciled, other_decided)
}

/// A namespace whose pod lists hang (`leadTime: Auto` scalers whose surveys cannot finish), or
/// whose targets' reads hang: every other namespace is still reconciled, and another
/// namespace's `leadTime: Auto` scaler decides within a request's timeout. A first survey used
/// to wait for its turn
/// (two at a time) while holding its reconcile slot, a failed one was tried again at every
/// sync, and a namespace was marked slow only for slow Prometheus reads, once they ended: `shop`
/// got 31 reconciles in 30 s against 240 (pod lists hanging) and 24 against 240 (target reads
/// hanging), and `other` no decision at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_whose_requests_hang_does_not_stall_the_others() {
    const SECS: u64 = 20;
    let (base, base_other) = beside_a_hanging_namespace(None, SECS).await;
    assert!(base_other.is_some());
    for hang in [
        "/namespaces/hostile/pods",
        "/namespaces/hostile/deployments",
    ] {
        let (reconciled, other) = beside_a_hanging_namespace(Some(hang), SECS).await;
        eprintln!(
            "{hang} hanging: shop reconciled {reconciled} times in {SECS} s (answered: {base}); other decided after {other:?} (answered: {base_other:?})"
        );
        // A third: a hanging namespace's first reconciles still take their slots until they
        // are marked slow (5 s), a share of the run.
        assert!(
            reconciled * 3 > base,
            "{hang} hanging: shop reconciled {reconciled} times against {base}"
        );
        // At worst a request's timeout (10 s): the slots the hanging namespace took before it
        // was marked slow are held until their requests time out (on a loaded machine its 16
        // reconciles were admitted before the others had asked).
        let other = other.unwrap_or_else(|| panic!("{hang} hanging: other never decided"));
        assert!(
            other < StdDuration::from_secs(13),
            "{hang} hanging: other decided after {other:?}"
        );
    }
}

/// A scaler created in the same second as a running one (the API server's creation time has a
/// second's resolution: a batch `kubectl apply` makes many), with a name earlier in the
/// alphabet, beyond the namespace's limit: the running one keeps its place and its floor.
/// Ranked by name alone, the newer one took the place and the running one gave its floor back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaler_created_in_the_same_second_does_not_stop_a_running_one() {
    let api = FakeApi::new();
    let second = "2026-01-01T00:00:00Z";
    api.put(deployment("zz", 2));
    api.put(hpa("zz", 2, json!({})));
    let mut s = scaler("zz", "zz", floor(20));
    s["metadata"]["creationTimestamp"] = json!(second);
    api.put(s);
    let source = Arc::new(ScriptedSource::new(|_, _| Some(60.0)));
    let _op = start_operator_on(&api, source, |s| {
        s.max_scalers_per_namespace = std::num::NonZeroUsize::new(1)
    });
    eventually(30, "zz's floor raised", || match hpa_min(&api, "zz") {
        20 => Ok(()),
        m => Err(format!("minReplicas {m}: {}", status(&api, "zz"))),
    })
    .await;
    api.put(deployment("aa", 2));
    let mut s = scaler("aa", "aa", json!({}));
    s["metadata"]["creationTimestamp"] = json!(second);
    api.put(s);
    eventually(30, "the newer one refused", || {
        expect_condition(&api, "aa", "Ready", "False", "TooManyScalers")
    })
    .await;
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(hpa_min(&api, "zz"), 20, "{}", status(&api, "zz"));
    expect_condition(&api, "zz", "Ready", "True", "FloorOnHPA").unwrap();
}

/// `leadTime: Auto` surveys the pods again every `pod_survey_interval`, however often the
/// scaler is reconciled in between: a survey still fresh used to be stamped anew at each
/// reconcile, so with a sync shorter than the interval the pods were listed once per process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_are_surveyed_again_every_survey_interval() {
    let api = FakeApi::new();
    api.put(deployment("web", 3));
    api.put(scaler("web", "web", auto_lead_time()));
    let source = Arc::new(ScriptedSource::new(|_, _| Some(60.0)));
    let _op = start_operator_on(&api, source, |s| {
        s.sync_period = StdDuration::from_millis(500);
        s.pod_survey_interval = StdDuration::from_secs(2);
    });
    tokio::time::sleep(StdDuration::from_secs(9)).await;
    let surveys = api
        .requests()
        .iter()
        .filter(|r| r.method == Method::GET && r.path == "/api/v1/namespaces/shop/pods")
        .count();
    assert!(
        (3..=6).contains(&surveys),
        "{surveys} surveys in 9 s at one per 2 s"
    );
}
