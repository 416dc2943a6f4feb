//! Giving floors back when some objects cannot be: prescaler's annotations sit on HPAs and
//! ScaledObjects their tenants may edit, so a kept own value may be anything, and a write may be
//! refused. One such object must neither keep every other floor raised nor be written with a
//! value no one can vouch for. Each test is a row of `docs/reliability.md`.

use crate::support;

use std::time::Duration as StdDuration;

use http::Method;
use prescaler::operator::give_back::{Summary, give_back_everything};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::{eventually, start_operator_with};

const ORIGINAL: &str = "prescaler.dev/original-min-replicas";
const OWNER: &str = "prescaler.dev/floor-owner";
const FLOOR: &str = "prescaler.dev/floor-min-replicas";

fn hpa(ns: &str, name: &str, min: i64, max: i64, annotations: Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": name, "namespace": ns, "annotations": annotations },
        "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                  "minReplicas": min, "maxReplicas": max },
    })
}

/// A real floor: own `own`, set `set`, held by `owner`.
fn floor(own: i64, set: i64, owner: &str) -> Value {
    json!({ ORIGINAL: own.to_string(), OWNER: owner, FLOOR: set.to_string() })
}

fn scaled_object(ns: &str, name: &str, min: i64, max: Option<i64>, annotations: Value) -> Value {
    let mut so = json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": { "name": name, "namespace": ns, "annotations": annotations },
        "spec": { "scaleTargetRef": { "name": name }, "minReplicaCount": min,
                  "triggers": [{ "type": "prometheus", "metadata": { "threshold": "50" } }] },
    });
    if let Some(max) = max {
        so["spec"]["maxReplicaCount"] = json!(max);
    }
    so
}

fn predictive_scaler(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "prescaler.dev/v1alpha1", "kind": "PredictiveScaler",
        "metadata": { "name": name, "namespace": ns, "finalizers": ["prescaler.dev/hpa-floor"] },
        "spec": { "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                  "minReplicas": 2, "maxReplicas": 40,
                  "metric": { "query": "sum(m)", "targetPerReplica": 50.0 } },
    })
}

fn get_hpa(api: &FakeApi, ns: &str, name: &str) -> Value {
    api.get("autoscaling/v2", "HorizontalPodAutoscaler", ns, name)
        .unwrap()
}

fn hpa_min(api: &FakeApi, ns: &str, name: &str) -> i64 {
    get_hpa(api, ns, name)["spec"]["minReplicas"]
        .as_i64()
        .unwrap()
}

/// Waits up to `secs` for the HPA `ns/name` to have `minReplicas` `want`.
async fn hpa_min_becomes(api: &FakeApi, secs: u64, what: &str, ns: &str, name: &str, want: i64) {
    eventually(secs, what, || match hpa_min(api, ns, name) {
        n if n == want => Ok(()),
        n => Err(format!("minReplicas {n}")),
    })
    .await;
}

fn get_so(api: &FakeApi, ns: &str, name: &str) -> Value {
    api.get("keda.sh/v1alpha1", "ScaledObject", ns, name)
        .unwrap()
}

/// None of prescaler's annotations left.
fn clean(object: &Value) -> bool {
    let a = &object["metadata"]["annotations"];
    [ORIGINAL, OWNER, FLOOR].iter().all(|k| a.get(*k).is_none())
}

fn finalizers(api: &FakeApi, ns: &str, name: &str) -> Value {
    api.get("prescaler.dev/v1alpha1", "PredictiveScaler", ns, name)
        .unwrap()["metadata"]["finalizers"]
        .clone()
}

fn uid(api: &FakeApi, ns: &str, name: &str) -> String {
    api.get("prescaler.dev/v1alpha1", "PredictiveScaler", ns, name)
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn has_prescaler_finalizer(api: &FakeApi, ns: &str, name: &str) -> bool {
    finalizers(api, ns, name)
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == "prescaler.dev/hpa-floor"))
}

async fn give_back(api: &FakeApi) -> Summary {
    give_back_everything(&api.client(), None)
        .await
        .expect("the give-back runs to its end")
}

/// The reviewer's case: a tenant writes prescaler's annotations, with an own value of 0, on its
/// own HPA, and the API server refuses the write (422 here whatever is sent, standing for its
/// validation). Every other floor — an HPA in another namespace, a ScaledObject listed after the
/// HPAs — is still given back, the PredictiveScaler's finalizer removed, and the call names the
/// one it could not give back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_floor_does_not_stop_the_give_back_of_the_others() {
    let api = FakeApi::new();
    // A real floor prescaler holds for a scaler in "shop": own 2, set 6.
    api.put(hpa("shop", "checkout", 6, 30, floor(2, 6, "uid-x")));
    api.put(predictive_scaler("shop", "checkout"));
    // And one on a ScaledObject, in a third namespace: own 0 (KEDA's scale to zero), set 4.
    api.put(scaled_object(
        "jobs",
        "queue",
        4,
        Some(20),
        floor(0, 4, "uid-y"),
    ));
    // The tenant's forged annotations on its own HPA.
    api.put(hpa(
        "a-tenant",
        "evil",
        3,
        10,
        json!({ ORIGINAL: "0", OWNER: "whatever" }),
    ));
    api.fail_next(
        Method::PATCH,
        "namespaces/a-tenant/horizontalpodautoscalers/evil",
        422,
        100,
    );
    let summary = give_back(&api).await;

    let checkout = get_hpa(&api, "shop", "checkout");
    assert_eq!(checkout["spec"]["minReplicas"], 2, "{checkout}");
    assert!(clean(&checkout), "{checkout}");
    let queue = get_so(&api, "jobs", "queue");
    assert_eq!(queue["spec"]["minReplicaCount"], 0, "{queue}");
    assert!(clean(&queue), "{queue}");
    assert!(!has_prescaler_finalizer(&api, "shop", "checkout"));
    assert_eq!(summary.sweep.released.len(), 2, "{summary:?}");
    assert_eq!(summary.finalizers, vec!["shop/checkout".to_string()]);

    // The refused one is reported, by name, and the whole is incomplete (the command exits
    // non-zero on it).
    assert!(!summary.is_complete());
    assert_eq!(summary.sweep.failed.len(), 1, "{summary:?}");
    let problems = summary.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("a-tenant/HorizontalPodAutoscaler evil"),
        "{problems:?}"
    );
    // Left as it was: the write was refused.
    assert_eq!(hpa_min(&api, "a-tenant", "evil"), 3);
}

/// Own values no object may hold are never written back: not 0 on an HPA (the API server's
/// minimum is 1), not above `maxReplicas` (or a ScaledObject's `maxReplicaCount`, KEDA's 100
/// when unset), not a non-number. The annotations go, and the field keeps its current value
/// (clamped into range), which is what runs now. A ScaledObject's own 0 is valid and given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_value_the_object_may_not_hold_is_not_written_back() {
    let api = FakeApi::new();
    let forged = |own: &str| json!({ ORIGINAL: own, OWNER: "whatever" });
    api.put(hpa("t", "zero", 3, 10, forged("0")));
    api.put(hpa("t", "negative", 3, 10, forged("-4")));
    api.put(hpa("t", "above-max", 3, 10, forged("11")));
    api.put(hpa("t", "huge", 3, 10, forged("99999999999")));
    api.put(hpa("t", "garbage", 3, 10, forged("lots")));
    api.put(hpa("t", "fraction", 3, 10, forged("2.5")));
    // A real floor whose kept value was damaged: it stays at the floor (what runs now).
    api.put(hpa(
        "t",
        "damaged",
        8,
        10,
        json!({ ORIGINAL: "", OWNER: "uid-1", FLOOR: "8" }),
    ));
    // Controls: valid own values are given back as they are.
    api.put(hpa("t", "valid", 6, 10, floor(1, 6, "uid-1")));
    api.put(hpa("t", "at-max", 6, 10, floor(10, 6, "uid-1")));
    api.put(scaled_object(
        "t",
        "so-zero",
        5,
        Some(20),
        floor(0, 5, "uid-2"),
    ));
    api.put(scaled_object(
        "t",
        "so-above-default-max",
        5,
        None,
        forged("101"),
    ));
    api.put(scaled_object(
        "t",
        "so-at-default-max",
        5,
        None,
        forged("100"),
    ));
    let summary = give_back(&api).await;
    assert!(summary.is_complete(), "{:?}", summary.problems());

    for (name, want) in [
        ("zero", 3),
        ("negative", 3),
        ("above-max", 3),
        ("huge", 3),
        ("garbage", 3),
        ("fraction", 3),
        ("damaged", 8),
        ("valid", 1),
        ("at-max", 10),
    ] {
        let h = get_hpa(&api, "t", name);
        assert_eq!(h["spec"]["minReplicas"], want, "{name}: {h}");
        assert!(clean(&h), "{name}: {h}");
    }
    for (name, want) in [
        ("so-zero", 0),
        ("so-above-default-max", 5),
        ("so-at-default-max", 100),
    ] {
        let so = get_so(&api, "t", name);
        assert_eq!(so["spec"]["minReplicaCount"], want, "{name}: {so}");
        assert!(clean(&so), "{name}: {so}");
    }
    // Each refused value is reported with the object, for the Warning and the command's output.
    let mut refused: Vec<(String, Option<String>)> = summary
        .sweep
        .released
        .iter()
        .map(|r| (r.object.to_string(), r.refused.clone()))
        .filter(|(_, r)| r.is_some())
        .collect();
    refused.sort();
    let named = |kind: &str, name: &str, v: &str| (format!("{kind} {name}"), Some(v.to_string()));
    let hpa = "HorizontalPodAutoscaler";
    assert_eq!(
        refused,
        vec![
            named(hpa, "above-max", "11"),
            named(hpa, "damaged", ""),
            named(hpa, "fraction", "2.5"),
            named(hpa, "garbage", "lots"),
            named(hpa, "huge", "99999999999"),
            named(hpa, "negative", "-4"),
            named(hpa, "zero", "0"),
            named("KEDA ScaledObject", "so-above-default-max", "101"),
        ]
    );
}

/// A floor not given back keeps its owner's finalizer (the scaler still holds it; deleting the
/// scaler waits until it is given back), and only that one; run again once the API server
/// accepts the write, everything is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_not_given_back_keeps_only_its_owners_finalizer() {
    let api = FakeApi::new();
    api.put(predictive_scaler("shop", "stuck"));
    api.put(predictive_scaler("shop", "fine"));
    let stuck = uid(&api, "shop", "stuck");
    let fine = uid(&api, "shop", "fine");
    api.put(hpa("shop", "stuck", 6, 30, floor(2, 6, &stuck)));
    api.put(hpa("shop", "fine", 7, 30, floor(3, 7, &fine)));
    api.fail_next(Method::PATCH, "horizontalpodautoscalers/stuck", 500, 1);
    let summary = give_back(&api).await;
    assert_eq!(hpa_min(&api, "shop", "fine"), 3);
    assert_eq!(hpa_min(&api, "shop", "stuck"), 6);
    assert!(has_prescaler_finalizer(&api, "shop", "stuck"));
    assert!(!has_prescaler_finalizer(&api, "shop", "fine"));
    assert_eq!(summary.finalizers, vec!["shop/fine".to_string()]);
    assert_eq!(summary.finalizers_kept.len(), 1, "{summary:?}");
    assert_eq!(summary.finalizers_kept[0].0, "shop/stuck");
    assert!(
        summary.finalizers_kept[0]
            .1
            .contains("HorizontalPodAutoscaler stuck")
    );
    assert_eq!(summary.problems().len(), 2, "{:?}", summary.problems());

    let again = give_back(&api).await;
    assert!(again.is_complete(), "{:?}", again.problems());
    assert_eq!(hpa_min(&api, "shop", "stuck"), 2);
    assert!(clean(&get_hpa(&api, "shop", "stuck")));
    assert_eq!(again.finalizers, vec!["shop/stuck".to_string()]);
}

/// A list that could not be read: what is in the other lists is still given back, but no
/// finalizer is removed (whether a scaler still holds a floor there is unknown), and the call
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_not_read_gives_back_the_rest_and_removes_no_finalizer() {
    let api = FakeApi::new();
    api.put(predictive_scaler("shop", "web"));
    api.put(hpa("shop", "web", 6, 30, floor(2, 6, "uid-1")));
    api.put(scaled_object(
        "jobs",
        "queue",
        4,
        Some(20),
        floor(0, 4, "uid-y"),
    ));
    api.fail_next(Method::GET, "/horizontalpodautoscalers", 500, 1);
    let summary = give_back(&api).await;
    assert_eq!(get_so(&api, "jobs", "queue")["spec"]["minReplicaCount"], 0);
    assert_eq!(hpa_min(&api, "shop", "web"), 6);
    assert!(has_prescaler_finalizer(&api, "shop", "web"));
    assert_eq!(summary.sweep.unlisted.len(), 1, "{summary:?}");
    assert!(summary.finalizers.is_empty());
    assert_eq!(summary.finalizers_kept.len(), 1);
    assert!(!summary.is_complete());
}

/// The operator's start-up sweep for orphaned floors: a floor it could not give back (the API
/// server refused the write) is logged and given back at the next try, `orphan_sweep_retry`
/// later; the others at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_sweep_retries_a_floor_it_could_not_give_back() {
    let api = FakeApi::new();
    api.put(hpa("shop", "refused-once", 6, 30, floor(2, 6, "gone-1")));
    api.put(hpa("shop", "fine", 7, 30, floor(3, 7, "gone-2")));
    api.fail_next(
        Method::PATCH,
        "horizontalpodautoscalers/refused-once",
        503,
        1,
    );
    // No PredictiveScaler: nothing queries Prometheus.
    let _op = start_operator_with(&api, "http://127.0.0.1:9", |s| {
        s.orphan_sweep_retry = StdDuration::from_secs(2);
    });
    hpa_min_becomes(
        &api,
        10,
        "the other floor given back at once",
        "shop",
        "fine",
        3,
    )
    .await;
    let first = std::time::Instant::now();
    assert_eq!(
        api.writes_to("horizontalpodautoscalers/refused-once"),
        1,
        "tried once"
    );
    hpa_min_becomes(
        &api,
        10,
        "the refused floor given back at the retry",
        "shop",
        "refused-once",
        2,
    )
    .await;
    assert!(
        first.elapsed() >= StdDuration::from_secs(1),
        "{:?}",
        first.elapsed()
    );
    assert!(clean(&get_hpa(&api, "shop", "refused-once")));
    // Once complete the sweep stops: no more writes.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(api.writes_to("horizontalpodautoscalers/refused-once"), 2);
    assert_eq!(api.writes_to("horizontalpodautoscalers/fine"), 1);
}

/// A scaler holding an HPA floor whose operator-side scaler `shop/web` (sync period `sync`).
/// Returns the operator; the floor is 9 over the HPA's own 2.
async fn a_floor_held_by_web(api: &FakeApi, sync: StdDuration) -> support::harness::Operator {
    use support::harness::{deployment, scaler, start_operator_on};
    use support::scripted::ScriptedSource;
    api.put(deployment("web", 2));
    api.put(hpa("shop", "web", 2, 30, json!({})));
    let source = std::sync::Arc::new(ScriptedSource::new(|_, _| Some(60.0)));
    let op = start_operator_on(api, source, |s| s.sync_period = sync);
    // Created once the operator runs (its start-up sweep done), as a tenant would.
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    api.put(scaler(
        "web",
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": 9 }] }),
    ));
    hpa_min_becomes(api, 20, "the floor set", "shop", "web", 9).await;
    op
}

/// Removes the scaler's finalizer by hand and deletes it: it goes without a last reconcile.
fn delete_by_hand(api: &FakeApi, name: &str) {
    api.delete_past_finalizers("prescaler.dev/v1alpha1", "PredictiveScaler", "shop", name);
}

/// A scaler deleted by hand (finalizer removed) right after the reconcile that set its floor,
/// before any other: the operator still gives the floor back. The reconcile that set it noted
/// no floor held (the object it read had no finalizer yet), so the floor stayed raised until
/// the operator's next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_set_by_a_first_reconcile_is_given_back_when_its_scaler_goes_by_hand() {
    let api = FakeApi::new();
    // The default sync: no second reconcile comes before the deletion.
    let _op = a_floor_held_by_web(&api, StdDuration::from_secs(30)).await;
    delete_by_hand(&api, "web");
    // Gone scalers are forgotten, and the sweep they owe made, once a sync.
    hpa_min_becomes(&api, 40, "the floor given back", "shop", "web", 2).await;
    assert!(clean(&get_hpa(&api, "shop", "web")));
}

/// A floor elsewhere in the cluster that the API server keeps refusing to give back (an
/// admission webhook's 422), and a floor-holding scaler deleted by hand: the sweep for orphaned
/// floors that this owes runs at once, then waits `orphan_sweep_retry` between tries, as the
/// start-up sweep does — not at every sync, each a list of every HPA in the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_never_given_back_is_retried_on_the_sweep_schedule_not_at_every_sync() {
    let api = FakeApi::new();
    api.put(hpa("elsewhere", "stuck", 6, 30, floor(2, 6, "gone")));
    api.fail_next(
        Method::PATCH,
        "horizontalpodautoscalers/stuck",
        422,
        1_000_000,
    );
    let _op = a_floor_held_by_web(&api, StdDuration::from_secs(1)).await;
    delete_by_hand(&api, "web");
    hpa_min_becomes(&api, 10, "web's floor given back", "shop", "web", 2).await;
    // The owed sweep tried the stuck floor too; the next try is 5 minutes away.
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let tried = api.writes_to("horizontalpodautoscalers/stuck");
    assert!(tried >= 1);
    tokio::time::sleep(StdDuration::from_secs(10)).await;
    let retried = api.writes_to("horizontalpodautoscalers/stuck") - tried;
    assert_eq!(
        retried, 0,
        "the refused floor was tried {retried} times in 10 s at a 1 s sync"
    );
    assert_eq!(hpa_min(&api, "elsewhere", "stuck"), 6);
}
