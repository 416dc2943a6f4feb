//! The operator process's parts around the controller: Lease leader election (against the fake
//! API, with client-go's semantics under faults) and the telemetry endpoints.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use prescaler::operator::leader::{Leadership, LeaseSettings};
use prescaler::operator::telemetry::{self, Health, Metrics, Probes, ScalerLabels};
use serde_json::json;
use support::fake_api::FakeApi;

/// client-go's 15 s / 10 s / 2 s, scaled down to keep the tests short.
fn candidate(api: &FakeApi, identity: &str) -> Arc<Leadership> {
    let mut s = LeaseSettings::new("prescaler".into(), "ops".into(), identity.into());
    s.lease_duration = Duration::from_millis(1500);
    s.renew_deadline = Duration::from_millis(1000);
    s.retry = Duration::from_millis(200);
    Arc::new(Leadership::new(api.client(), s))
}

/// Runs `step` (`acquire`, `hold`) of a candidate on its own task.
fn in_background<F, T>(
    c: &Arc<Leadership>,
    step: impl FnOnce(Arc<Leadership>) -> F,
) -> tokio::task::JoinHandle<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    tokio::spawn(step(c.clone()))
}

/// `a` acquires and holds the Lease and `b` waits for it, each on its own task, for `settle`:
/// a leader with a standby. Returns the two tasks.
async fn leader_and_standby(
    a: &Arc<Leadership>,
    b: &Arc<Leadership>,
    settle: Duration,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    a.acquire().await;
    let holding = in_background(a, |a| async move { a.hold().await });
    let standby = in_background(b, |b| async move { b.acquire().await });
    tokio::time::sleep(settle).await;
    (holding, standby)
}

/// Looks every 5 ms for `span`: how many looks found both free to write, and whether `b` ever was.
async fn watch_writers(a: &Leadership, b: &Leadership, span: Duration) -> (usize, bool) {
    let started = std::time::Instant::now();
    let (mut both, mut b_wrote) = (0, false);
    while started.elapsed() < span {
        both += usize::from(a.may_write() && b.may_write());
        b_wrote |= b.may_write();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (both, b_wrote)
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get("coordination.k8s.io/v1", "Lease", "ops", "prescaler")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let api = FakeApi::new();
    let (a, b) = (candidate(&api, "a"), candidate(&api, "b"));
    a.acquire().await;
    assert_eq!(holder(&api).as_deref(), Some("a"));
    assert!(a.may_write());

    // a renews; b waits.
    let a_holds = in_background(&a, |c| async move { c.hold().await });
    let b_acquires = in_background(&b, |c| async move { c.acquire().await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b_acquires.is_finished(), "b must not lead while a renews");
    assert_eq!(holder(&api).as_deref(), Some("a"));

    // a dies: once its Lease has gone unchanged for the lease duration, b leads.
    a_holds.abort();
    tokio::time::timeout(Duration::from_secs(5), b_acquires)
        .await
        .expect("b takes over")
        .unwrap();
    let lease = api
        .get("coordination.k8s.io/v1", "Lease", "ops", "prescaler")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // a comes back: `hold` tells it that it lost.
    let lost = tokio::time::timeout(Duration::from_secs(5), a.hold()).await;
    assert!(
        lost.is_ok(),
        "a former leader learns that another holds the Lease"
    );
    assert!(!a.may_write());
    assert_eq!(holder(&api).as_deref(), Some("b"));
}

/// A renewal the API server never answers: the leader stops writing at its renew deadline,
/// before a standby can take over (the lease duration after it last saw a change), so the two
/// never may write at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_renewal_stops_the_leader_before_a_standby_starts() {
    let api = FakeApi::new();
    let (a, b) = (candidate(&api, "a"), candidate(&api, "b"));
    let (a_holds, b_acquires) = leader_and_standby(&a, &b, Duration::from_millis(600)).await;
    api.hang_next(Method::PUT, "/leases/prescaler", 1_000);
    let started = tokio::time::Instant::now();
    let mut a_stopped_at = None;
    let mut overlap = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let (a_writes, b_writes) = (a.may_write(), b.may_write());
        if a_writes && b_writes {
            overlap += 1;
        }
        if !a_writes && a_stopped_at.is_none() {
            a_stopped_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(overlap, 0, "both replicas could write at once");
    let stopped = a_stopped_at.expect("the leader stops writing");
    assert!(
        stopped <= Duration::from_millis(1100),
        "stopped after {stopped:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), a_holds)
            .await
            .is_ok(),
        "hold returns: the process then exits and restarts as a standby"
    );
    b_acquires.abort();
}

/// The holder's clock runs an hour behind: its `renewTime` looks an hour old to a standby. The
/// standby judges expiry by when it saw the Lease change, so it waits while the holder renews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_clock_does_not_hand_the_lease_over() {
    let api = FakeApi::new();
    let skewed = |n: i64| {
        let t = (chrono::Utc::now() - chrono::Duration::hours(1) + chrono::Duration::seconds(n))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": "prescaler", "namespace": "ops" },
            "spec": { "holderIdentity": "a", "leaseDurationSeconds": 1,
                      "acquireTime": t, "renewTime": t, "leaseTransitions": 0 },
        })
    };
    api.put(skewed(0));
    let b = candidate(&api, "b");
    let b_acquires = in_background(&b, |c| async move { c.acquire().await });
    // "a" renews every 200 ms with its skewed clock.
    for n in 1..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        api.put(skewed(n));
        assert!(
            !b_acquires.is_finished(),
            "b took over a Lease that was being renewed"
        );
    }
    // "a" stops renewing: b takes over a lease duration later.
    tokio::time::timeout(Duration::from_secs(5), b_acquires)
        .await
        .expect("b takes over once the Lease stops changing")
        .unwrap();
    assert_eq!(holder(&api).as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_over_at_once() {
    let api = FakeApi::new();
    let (a, b) = (candidate(&api, "a"), candidate(&api, "b"));
    a.acquire().await;
    // b has seen a's Lease before a releases it.
    let b_acquires = in_background(&b, |c| async move { c.acquire().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.release().await;
    assert!(!a.may_write());
    let started = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), b_acquires)
        .await
        .expect("b takes over")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "within a retry of the release, not a lease duration: {:?}",
        started.elapsed()
    );
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
    let api = FakeApi::new();
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let labels = ScalerLabels {
        namespace: "shop".into(),
        name: "checkout".into(),
    };
    metrics.reconcile_finished(&labels, Duration::from_millis(250), false);
    let lease = candidate(&api, "a");
    let idle = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        Probes {
            stall_after: Duration::from_secs(2),
            lease: Some(lease.clone()).into(),
            idle: {
                let idle = idle.clone();
                Arc::new(move || idle.load(std::sync::atomic::Ordering::Relaxed))
            },
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        body.contains(
            "prescaler_scaler_reconcile_seconds_total{namespace=\"shop\",name=\"checkout\"} 0.25"
        ),
        "{body}"
    );
    assert!(
        body.contains("prescaler_reconcile_duration_seconds_count 1"),
        "{body}"
    );

    assert_eq!(
        get(port, "/readyz").await.0,
        503,
        "not ready before the client works"
    );
    health.set_started();
    let (code, body) = get(port, "/readyz").await;
    assert!(code == 200 && body.ends_with("standby"), "{body}");
    assert_eq!(get(port, "/healthz").await.0, 200, "a standby is healthy");

    lease.acquire().await;
    health.set_leading();
    let (code, body) = get(port, "/readyz").await;
    assert!(
        code == 503 && body.contains("waiting"),
        "leading, stores not synced: {body}"
    );
    health.set_hpas_synced();
    assert_eq!(get(port, "/readyz").await.0, 200);
    assert_eq!(get(port, "/healthz").await.0, 200);

    // No reconcile finishes while there are scalers: stalled.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (code, body) = get(port, "/healthz").await;
    assert!(code == 503, "{body}");
    // (The Lease went unrenewed meanwhile too; which problem is named first does not matter.)
    lease.acquire().await;
    health.progress();
    assert_eq!(get(port, "/healthz").await.0, 200);
    // Nothing to reconcile is not a stall.
    idle.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    lease.acquire().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    lease.acquire().await;
    assert_eq!(get(port, "/healthz").await.0, 200);

    // A leader whose Lease is not renewed is unhealthy, whatever the reconciles do.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    health.progress();
    let (code, body) = get(port, "/healthz").await;
    assert!(code == 503 && body.contains("Lease"), "{body}");

    metrics.remove(&labels);
    let (_, body) = get(port, "/metrics").await;
    assert!(
        !body.contains("name=\"checkout\""),
        "a deleted scaler's series are gone"
    );
}

/// A renewal the API server applies at once but answers late (within the renewal's own
/// timeout), then a partition of the leader (its Lease writes unanswered): the leader must stop
/// writing before the standby may start, however late the answer came. Counted from the answer,
/// both could write for about half a second in every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_answered_late_never_makes_two_writers() {
    use std::sync::atomic::{AtomicU8, Ordering};
    // How the leader's Lease PUTs fare: passed, answered late once (then unanswered), unanswered.
    const PASS: u8 = 0;
    const LATE_ONCE: u8 = 1;
    const UNANSWERED: u8 = 2;
    let api = FakeApi::new();
    let mode = Arc::new(AtomicU8::new(PASS));
    // The leader's client: the fake API behind a layer that delays or swallows Lease PUTs, as a
    // slow or partitioned network between the replica and the API server would.
    let client = {
        let inner = api.client();
        let mode = mode.clone();
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (inner, mode) = (inner.clone(), mode.clone());
            async move {
                if req.method() == Method::PUT && req.uri().path().contains("/leases/") {
                    match mode.load(Ordering::SeqCst) {
                        LATE_ONCE => {
                            mode.store(UNANSWERED, Ordering::SeqCst);
                            let answer = inner.send(req).await;
                            tokio::time::sleep(Duration::from_millis(1750)).await;
                            return answer;
                        }
                        UNANSWERED => futures::future::pending::<()>().await,
                        _ => {}
                    }
                }
                inner.send(req).await
            }
        });
        kube::Client::new(service, "default")
    };
    let settings = |identity: &str| {
        let mut s = LeaseSettings::new("prescaler".into(), "ops".into(), identity.into());
        s.lease_duration = Duration::from_millis(3000);
        s.renew_deadline = Duration::from_millis(2000);
        s.retry = Duration::from_millis(100);
        s
    };
    let a = Arc::new(Leadership::new(client, settings("a")));
    let b = Arc::new(Leadership::new(api.client(), settings("b")));
    let (holding, standby) = leader_and_standby(&a, &b, Duration::from_millis(1000)).await;
    assert!(a.may_write() && !b.may_write());
    mode.store(LATE_ONCE, Ordering::SeqCst);
    let (both, b_took_over) = watch_writers(&a, &b, Duration::from_secs(8)).await;
    holding.abort();
    standby.abort();
    assert!(b_took_over, "the standby never took over");
    assert_eq!(
        both, 0,
        "both replicas could write at {both} looks 5 ms apart"
    );
}

/// The Lease deleted under a leader (by a person, a namespace clean-up, an etcd restore): the
/// standby does not create a new one and lead at once while the leader, which notices only at
/// its next renewal, still writes. Created at once, both were free to write for about 7 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lease_never_makes_two_writers() {
    let api = FakeApi::new();
    let (a, b) = (candidate(&api, "a"), candidate(&api, "b"));
    let (holding, standby) = leader_and_standby(&a, &b, Duration::from_millis(1000)).await;
    assert!(a.may_write() && !b.may_write());
    api.delete("coordination.k8s.io/v1", "Lease", "ops", "prescaler");
    let (both, _) = watch_writers(&a, &b, Duration::from_secs(5)).await;
    holding.abort();
    standby.abort();
    assert_eq!(
        both, 0,
        "both replicas could write at {both} looks 5 ms apart"
    );
    assert!(holder(&api).is_some(), "someone holds the Lease again");
}
