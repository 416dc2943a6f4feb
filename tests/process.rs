//! The operator process's parts around the controller: Lease leader election (against the fake
//! API) and the telemetry endpoints.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prescaler::leader::{self, LeaseSettings};
use prescaler::telemetry::{self, Health, Metrics, ScalerLabels};
use support::fake_api::FakeApi;

fn candidate(identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: "prescaler".into(),
        namespace: "ops".into(),
        identity: identity.into(),
        duration: Duration::from_secs(2),
        retry: Duration::from_millis(300),
    }
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get("coordination.k8s.io/v1", "Lease", "ops", "prescaler")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let api = FakeApi::new();
    let client = api.client();
    leader::acquire(&client, &candidate("a")).await;
    assert_eq!(holder(&api).as_deref(), Some("a"));

    // a renews; b waits.
    let a = {
        let client = client.clone();
        tokio::spawn(async move { leader::hold(&client, &candidate("a")).await })
    };
    let b = {
        let client = client.clone();
        tokio::spawn(async move { leader::acquire(&client, &candidate("b")).await })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b.is_finished(), "b must not lead while a renews");
    assert_eq!(holder(&api).as_deref(), Some("a"));

    // a dies: once its Lease has expired, b leads.
    a.abort();
    tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .expect("b takes over within the lease duration")
        .unwrap();
    let lease = api
        .get("coordination.k8s.io/v1", "Lease", "ops", "prescaler")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // a comes back: it stands by, and `hold` would tell it it lost.
    let lost = tokio::time::timeout(
        Duration::from_secs(5),
        leader::hold(&client, &candidate("a")),
    )
    .await;
    assert!(
        lost.is_ok(),
        "a former leader learns that another holds the Lease"
    );
    assert_eq!(holder(&api).as_deref(), Some("b"));
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out[9..12].parse().unwrap();
        (code, out)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served() {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let labels = ScalerLabels {
        namespace: "shop".into(),
        name: "checkout".into(),
    };
    metrics.desired_replicas.get_or_create(&labels).set(12);
    metrics.forecast_load.get_or_create(&labels).set(950.5);
    tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("prescaler_desired_replicas{namespace=\"shop\",name=\"checkout\"} 12"),
        "{body}"
    );
    assert!(
        body.contains("prescaler_forecast_load{namespace=\"shop\",name=\"checkout\"} 950.5"),
        "{body}"
    );
    assert!(
        body.contains("# HELP prescaler_reconcile_duration_seconds"),
        "{body}"
    );

    assert_eq!(
        get(port, "/readyz").await.0,
        503,
        "not ready before the client works"
    );
    health.ready.store(true, Ordering::Relaxed);
    assert_eq!(get(port, "/readyz").await.0, 200);

    assert_eq!(
        get(port, "/healthz").await.0,
        503,
        "no heartbeat yet: stalled"
    );
    health.beat();
    assert_eq!(get(port, "/healthz").await.0, 200);

    metrics.remove(&labels);
    let (_, body) = get(port, "/metrics").await;
    assert!(
        !body.contains("name=\"checkout\""),
        "a deleted scaler's series are gone"
    );
}
