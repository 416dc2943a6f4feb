//! Shards across replicas (`--shards`): the shard Leases spread over the replicas, move on a
//! kill and on a pause, and never have two writers — first the Leases alone, in-process, looked
//! at every few milliseconds; then three `prescaler run` processes against the fake API, whose
//! every write is checked against the holder of its scaler's shard Lease at that moment.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use http::Method;
use prescaler::operator::leader::LeaseSettings;
use prescaler::operator::shards::{ShardSet, shard_lease_name, shard_of};
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::process::{OperatorProcess, operator_replica};
use support::prometheus::TestPrometheus;

const SHARDS: u32 = 6;

/// The operator's Lease settings for `identity`, with client-go's 15 s / 10 s / 2 s scaled
/// down.
fn scaled(identity: &str) -> LeaseSettings {
    let mut s = LeaseSettings::new("prescaler".into(), "ops".into(), identity.into());
    s.lease_duration = StdDuration::from_millis(1500);
    s.renew_deadline = StdDuration::from_millis(1000);
    s.retry = StdDuration::from_millis(200);
    s
}

/// A replica's shards, with the durations scaled down.
fn replica(api: &FakeApi, identity: &str) -> Arc<ShardSet> {
    replica_of(api, identity, SHARDS)
}

/// Runs a replica's rounds on a task: aborting it is a kill (nothing given up), or a pause
/// when the same set runs again later.
fn start(set: &Arc<ShardSet>) -> tokio::task::JoinHandle<()> {
    let set = set.clone();
    tokio::spawn(async move { set.run().await })
}

/// How many shards each replica may write for.
fn counts(sets: &[&Arc<ShardSet>]) -> Vec<usize> {
    sets.iter().map(|s| s.held().len()).collect()
}

async fn until(secs: u64, what: &str, sets: &[&Arc<ShardSet>], ok: impl Fn(&[usize]) -> bool) {
    let t0 = Instant::now();
    while !ok(&counts(sets)) {
        assert!(
            t0.elapsed() < StdDuration::from_secs(secs),
            "{what}: after {secs} s the replicas hold {:?}",
            counts(sets)
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_spread_and_move_on_a_kill_and_a_pause_with_one_writer_each() {
    let api = FakeApi::new();
    let (a, b, c) = (replica(&api, "a"), replica(&api, "b"), replica(&api, "c"));
    // Every 5 ms: a shard that two replicas may write for at once.
    let stop = Arc::new(AtomicBool::new(false));
    let doubles = Arc::new(AtomicUsize::new(0));
    let watcher = tokio::spawn({
        let (sets, stop, doubles) = (
            [a.clone(), b.clone(), c.clone()],
            stop.clone(),
            doubles.clone(),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                for shard in 0..SHARDS {
                    if sets.iter().filter(|s| s.may_write(shard)).count() > 1 {
                        doubles.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
        }
    });

    // Alone, a takes every shard; b and c join and the shards even out, given up as released
    // Leases (taken at once, not after a lease duration).
    let mut a_runs = start(&a);
    until(5, "a alone", &[&a], |n| n == [6]).await;
    let mut b_runs = start(&b);
    until(8, "a and b", &[&a, &b], |n| n == [3, 3]).await;
    let c_runs = start(&c);
    until(8, "a, b and c", &[&a, &b, &c], |n| n == [2, 2, 2]).await;

    // c is killed: its shards go to a and b once its Leases have gone unchanged for the lease
    // duration.
    c_runs.abort();
    let killed = Instant::now();
    until(8, "c killed", &[&a, &b], |n| n == [3, 3]).await;
    let took = killed.elapsed();
    assert!(
        took >= StdDuration::from_millis(1500),
        "c's shards taken {took:?} after its last renewal, before a lease duration"
    );
    assert!(
        c.held().is_empty(),
        "c stopped writing at its renew deadline"
    );

    // b is paused past its lease duration: a takes everything. b resumes with what it held in
    // memory; it learns that it lost its shards before it writes, and gets its share back.
    b_runs.abort();
    until(8, "b paused", &[&a], |n| n == [6]).await;
    assert!(
        b.held().is_empty(),
        "b's renew deadline passed while paused"
    );
    b_runs = start(&b);
    until(8, "b resumed", &[&a, &b], |n| n == [3, 3]).await;

    stop.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    a_runs.abort();
    b_runs.abort();
    assert_eq!(
        doubles.load(Ordering::Relaxed),
        0,
        "a shard had two writers at some looks 5 ms apart"
    );
    // A graceful stop (the rounds stopped, then everything released): the shards are given up
    // and a's member Lease goes; a new replica takes them at once, not a lease duration later.
    a_runs = start(&a);
    until(8, "a alone again", &[&a], |n| n == [6]).await;
    a_runs.abort();
    a.release_all().await;
    assert!(a.held().is_empty());
    assert!(
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "ops",
            "prescaler-member-a"
        )
        .is_none()
    );
    let d = replica(&api, "d");
    let d_runs = start(&d);
    // b's and c's member Leases, stale but first seen by d, count for a lease duration: d takes
    // its share of three at once, and the rest once they are known to be gone.
    until(1, "d takes released shards", &[&d], |n| n[0] >= 2).await;
    until(5, "d alone", &[&d], |n| n == [6]).await;
    d_runs.abort();
}

/// Which replica the shard Leases named, looked at every 20 ms: (when, holder per shard).
type Timeline = Vec<(Instant, Vec<Option<String>>)>;

fn holders(api: &FakeApi, shards: u32) -> Vec<Option<String>> {
    (0..shards)
        .map(|k| {
            api.get(
                "coordination.k8s.io/v1",
                "Lease",
                "ops",
                &shard_lease_name("prescaler", k, shards),
            )
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
        })
        .collect()
}

/// The writes of one scaler (its status, its workload's `/scale`) that its shard's Lease did
/// not name their sender for, around when they arrived: a write by a replica that did not hold
/// the shard (allowing for the 20 ms between looks).
/// Also returns how many writes were checked.
fn writes_by_non_holders(
    api: &FakeApi,
    timeline: &Timeline,
    scalers: usize,
) -> (Vec<String>, usize) {
    let (mut wrong, mut checked) = (Vec::new(), 0);
    for r in api.requests() {
        if r.method == Method::GET || r.via.is_none() {
            continue;
        }
        let Some(name) = (0..scalers).map(|i| format!("s{i}")).find(|n| {
            r.path.ends_with(&format!("/{n}/status")) || r.path.ends_with(&format!("/{n}/scale"))
        }) else {
            continue;
        };
        let shard = shard_of(NS, &name, 4) as usize;
        let via = r.via.clone();
        let near = timeline.iter().filter(|(t, _)| {
            let (t, at) = (*t, r.at);
            (t <= at && at.duration_since(t) < StdDuration::from_millis(100))
                || (t > at && t.duration_since(at) < StdDuration::from_millis(40))
        });
        let named = near.clone().any(|(_, h)| h[shard] == via);
        checked += 1;
        if !named && near.count() > 0 {
            wrong.push(format!("{} {} by {:?}", r.method, r.path, via));
        }
    }
    (wrong, checked)
}

/// Three `prescaler run --shards 4` processes over twelve scalers: one is killed, another
/// paused (SIGSTOP) past its lease duration and resumed. Every write for a scaler comes from
/// the replica its shard's Lease names; every scaler keeps being reconciled; no workload is
/// scaled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_one_writer_per_scaler_across_a_kill_and_a_pause() {
    const SCALERS: usize = 12;
    // 120 a minute at 50 a replica: 3 replicas, from 1.
    let prom = TestPrometheus::steady("web", 120.0, Duration::hours(6));
    let api = FakeApi::new();
    for i in 0..SCALERS {
        api.put(deployment(&format!("s{i}"), 1));
        api.put(scaler(&format!("s{i}"), "web", json!({})));
    }
    let args = [
        "--shards",
        "4",
        "--leader-elect-lease-duration",
        "3s",
        "--leader-elect-renew-deadline",
        "2s",
        "--leader-elect-retry-period",
        "500ms",
        "--sync-period",
        "1s",
        "--status-refresh",
        "0s",
    ];
    let url = prom.url();
    let replicas: BTreeMap<&str, _> = futures::future::join_all(
        ["a", "b", "c"].map(|id| operator_replica(&api, &url, id, &args)),
    )
    .await
    .into_iter()
    .zip(["a", "b", "c"])
    .map(|(p, id)| (id, p))
    .collect();
    let timeline = Arc::new(std::sync::Mutex::new(Timeline::new()));
    let looking = tokio::spawn({
        let (api, timeline) = (api.clone(), timeline.clone());
        async move {
            loop {
                let now = holders(&api, 4);
                timeline.lock().unwrap().push((Instant::now(), now));
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
        }
    });
    // Which scalers each replica reconciles: those whose metrics it publishes (a replica drops a
    // scaler's metrics when its shard goes). Each scaler by exactly one of `ids`.
    let served_once_by = |replicas: &BTreeMap<&str, OperatorProcess>, ids: &[&str]| {
        let mut by: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for id in ids {
            for line in replicas[id].metrics().lines() {
                if line.starts_with("prescaler_desired_replicas{")
                    && let Some(name) = line
                        .split("name=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                {
                    by.entry(name.to_string()).or_default().push(id);
                }
            }
        }
        let once = by.values().filter(|ids| ids.len() == 1).count();
        match (by.len(), once) {
            (SCALERS, SCALERS) => Ok(()),
            _ => Err(format!("scalers served: {by:?}")),
        }
    };
    let all_held_by = |ids: &[&str]| {
        let h = holders(&api, 4);
        let spread: std::collections::BTreeSet<_> = h.iter().flatten().cloned().collect();
        match h
            .iter()
            .all(|h| h.as_deref().is_some_and(|h| ids.contains(&h)))
            && ids.iter().all(|id| spread.contains(*id))
        {
            true => Ok(()),
            false => Err(format!("shard holders {h:?}, wanted each of {ids:?}")),
        }
    };

    eventually(
        60,
        "every scaler decided, the shards spread over a, b, c",
        || {
            let decided = (0..SCALERS).filter(|i| replicas_of(&api, *i) == 3).count();
            if decided < SCALERS {
                return Err(format!("{decided} of {SCALERS} workloads at 3 replicas"));
            }
            all_held_by(&["a", "b", "c"])?;
            served_once_by(&replicas, &["a", "b", "c"])
        },
    )
    .await;

    let shards_held = |replicas: &BTreeMap<&str, OperatorProcess>| -> f64 {
        replicas
            .values()
            .flat_map(|r| {
                r.metrics()
                    .lines()
                    .filter(|l| l.starts_with("prescaler_shards_held "))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    eventually(
        10,
        "the shards held, as the replicas publish them",
        || match shards_held(&replicas) {
            4.0 => Ok(()),
            n => Err(format!("{n} shards held in all")),
        },
    )
    .await;

    // a is killed: b and c take its shards and reconcile its scalers.
    let mut replicas = replicas;
    let mut a = replicas.remove("a").unwrap();
    a.kill().unwrap();
    let _ = a.wait();
    eventually(20, "a's shards taken by b and c", || {
        all_held_by(&["b", "c"])
    })
    .await;
    eventually(20, "every scaler served by b or c", || {
        served_once_by(&replicas, &["b", "c"])
    })
    .await;

    // b is paused past its lease duration: c takes everything. Resumed, b writes nothing for a
    // shard it no longer holds, and takes a share back.
    replicas["b"].signal("-STOP");
    eventually(20, "b's shards taken by c", || all_held_by(&["c"])).await;
    eventually(20, "every scaler served by c", || {
        served_once_by(&replicas, &["c"])
    })
    .await;
    replicas["b"].signal("-CONT");
    eventually(20, "b back with a share", || all_held_by(&["b", "c"])).await;
    eventually(20, "every scaler served by b or c again", || {
        served_once_by(&replicas, &["b", "c"])
    })
    .await;

    looking.abort();
    drop(replicas);
    let timeline = timeline.lock().unwrap().clone();
    let (wrong, checked) = writes_by_non_holders(&api, &timeline, SCALERS);
    // At least each workload's scale and each scaler's first status.
    assert!(checked >= 2 * SCALERS, "only {checked} writes to check");
    assert!(
        wrong.is_empty(),
        "{} writes by a replica that did not hold the scaler's shard: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // Nothing scaled twice: each workload went from 1 to 3 once, whoever held it since.
    for i in 0..SCALERS {
        let scales = api
            .requests()
            .iter()
            .filter(|r| {
                r.method != Method::GET && r.path.ends_with(&format!("/deployments/s{i}/scale"))
            })
            .count();
        assert_eq!(scales, 1, "s{i}'s /scale written {scales} times");
    }
}

fn replicas_of(api: &FakeApi, i: usize) -> i64 {
    replicas(api, &format!("s{i}"))
}

/// `prescaler give-back` (the uninstall hook) beside a sharded operator: it finds every shard's
/// Lease by its labels and gives nothing back while a replica renews one; once the replica has
/// stopped and released them, it holds every shard Lease while it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_back_waits_for_every_shard_lease() {
    use prescaler::operator::give_back::{StopOperator, give_back_everything};
    let api = FakeApi::new();
    let operator = replica(&api, "operator-pod");
    let runs = start(&operator);
    until(5, "the operator holds its shards", &[&operator], |n| {
        n == [6]
    })
    .await;
    let hook = |wait_ms: u64| {
        Some(StopOperator {
            deployment: None,
            lease: scaled("hook"),
            wait: StdDuration::from_millis(wait_ms),
        })
    };
    let early = give_back_everything(&api.client(), hook(3000)).await;
    let message = early
        .expect_err("a replica still renews its shards")
        .to_string();
    assert!(message.contains("still renewed"), "{message}");

    runs.abort();
    operator.release_all().await;
    let summary = give_back_everything(&api.client(), hook(5000))
        .await
        .expect("every Lease is free");
    assert!(summary.is_complete(), "{:?}", summary.problems());
    for k in 0..SHARDS {
        let lease = api
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                "ops",
                &shard_lease_name("prescaler", k, SHARDS),
            )
            .unwrap();
        // Taken by the hook (one transition from the operator), then released.
        assert_eq!(lease["spec"]["leaseTransitions"], 1, "shard {k}: {lease}");
        assert!(
            lease["spec"]["holderIdentity"].is_null(),
            "shard {k}: {lease}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What a hostile review found (each test failed before its fix, as its comment says): one writer
// per scaler across a give-up and a change of the shard count, renewals that nothing delays,
// lost shards announced, and the sweep a deleted scaler owes.
// ---------------------------------------------------------------------------------------------

/// A replica of `shards` shards, with the durations scaled down.
fn replica_of(api: &FakeApi, identity: &str, shards: u32) -> Arc<ShardSet> {
    Arc::new(ShardSet::new(api.client(), scaled(identity), shards))
}

/// Writes as the controller makes them: `may_write` asked, then the request in flight for
/// `in_flight` before the API server applies it (network, API Priority and Fairness queueing, a
/// GET before the PATCH as in `write_finalizers`, `give_back_floor` between `held_back`'s check
/// and `set_replicas`). When each lands, counts a landing while another replica may write for
/// the same shard: two writers at that instant.
fn writers(
    sets: Vec<(&'static str, Arc<ShardSet>)>,
    shards: u32,
    in_flight: StdDuration,
    stop: Arc<AtomicBool>,
    doubles: Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            for (id, set) in &sets {
                for shard in 0..shards {
                    if !set.may_write(shard) {
                        continue;
                    }
                    let (id, others, doubles) = (
                        *id,
                        sets.iter()
                            .filter(|(o, _)| o != id)
                            .map(|(o, s)| (*o, s.clone()))
                            .collect::<Vec<_>>(),
                        doubles.clone(),
                    );
                    tokio::spawn(async move {
                        tokio::time::sleep(in_flight).await;
                        for (o, other) in &others {
                            if other.may_write(shard) {
                                doubles.lock().unwrap().push(format!(
                                    "shard {shard}: {id}'s write (checked {in_flight:?} earlier) landed while {o} may write"
                                ));
                            }
                        }
                    });
                }
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    })
}

/// A write checked `in_flight` before it lands is safe under the Lease rules whenever
/// `in_flight` < lease duration − renew deadline (here 500 ms): a taker waits a lease duration
/// from the last renewal it saw, the holder stops a renew deadline after it sent it. A give-up
/// keeps the same margin: it stops writing, waits that long, then releases. (Before, it
/// released at once: with 300 ms of flight, 35 writes landed while the taker could write.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_given_up_waits_out_the_givers_writes_in_flight() {
    let api = FakeApi::new();
    let (a, b) = (replica(&api, "a"), replica(&api, "b"));
    let in_flight = StdDuration::from_millis(300);
    let stop = Arc::new(AtomicBool::new(false));
    let on_kill = Arc::new(std::sync::Mutex::new(Vec::new()));
    let on_give_up = Arc::new(std::sync::Mutex::new(Vec::new()));

    // Control: the kill path (expiry), same flight time. b holds everything, is killed, a
    // takes over a lease duration later.
    let b_runs = start(&b);
    until(5, "b alone", &[&b], |n| n == [6]).await;
    let w = writers(
        vec![("a", a.clone()), ("b", b.clone())],
        SHARDS,
        in_flight,
        stop.clone(),
        on_kill.clone(),
    );
    b_runs.abort();
    let a_runs = start(&a);
    until(8, "a takes b's shards after b's death", &[&a], |n| n == [6]).await;
    tokio::time::sleep(in_flight * 2).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    tokio::time::sleep(in_flight * 2).await;

    // The give-up path: b comes back, a gives three shards up to it by release.
    let stop = Arc::new(AtomicBool::new(false));
    let w = writers(
        vec![("a", a.clone()), ("b", b.clone())],
        SHARDS,
        in_flight,
        stop.clone(),
        on_give_up.clone(),
    );
    let b_runs = start(&b);
    until(8, "a gives b its share", &[&a, &b], |n| n == [3, 3]).await;
    tokio::time::sleep(in_flight * 2).await;
    stop.store(true, Ordering::Relaxed);
    w.await.unwrap();
    tokio::time::sleep(in_flight * 2).await;
    a_runs.abort();
    b_runs.abort();

    let on_kill = on_kill.lock().unwrap().clone();
    let on_give_up = on_give_up.lock().unwrap().clone();
    assert!(on_kill.is_empty(), "control (kill, expiry): {on_kill:?}");
    assert!(
        on_give_up.is_empty(),
        "{} writes landed while another replica could write the same shard after a give-up \
         (none after a kill): {:?}",
        on_give_up.len(),
        &on_give_up[..on_give_up.len().min(6)]
    );
}

/// `--shards 1` → `--shards N` in a rolling upgrade: the new pod runs beside the old leader of
/// the base Lease, and takes no shard while that Lease is renewed. (Before, it never looked at
/// it: both could write for 20 of 20 scalers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_wait_for_a_single_leader_of_shards_1_to_stop() {
    use prescaler::operator::leader::Leadership;
    let api = FakeApi::new();
    let old = Arc::new(Leadership::new(api.client(), scaled("old-pod")));
    old.acquire().await;
    let holding = tokio::spawn({
        let old = old.clone();
        async move { old.hold().await }
    });
    let new = replica(&api, "new-pod");
    let new_runs = start(&new);
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let both: Vec<String> = (0..20)
        .map(|i| format!("web{i}"))
        .filter(|n| old.may_write() && new.may_write(shard_of(NS, n, SHARDS)))
        .collect();
    new_runs.abort();
    holding.abort();
    assert!(
        both.is_empty(),
        "the old leader (--shards 1) and the new replica (--shards {SHARDS}) may both write for {} of 20 scalers: {both:?}",
        both.len()
    );
}

/// `--shards 4` → `--shards 8` in a rolling upgrade: the count is in the shard Leases' names,
/// and the new pod takes nothing while a shard Lease of another count is renewed. (Before, both
/// counts shared the names and hashed scalers differently: 22 of 40 scalers writable by both.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_shard_count_waits_for_the_old_count_to_stop() {
    let api = FakeApi::new();
    let old = replica_of(&api, "old-pod", 4);
    let old_runs = start(&old);
    until(5, "the old pod holds its 4", &[&old], |n| n == [4]).await;
    let new = replica_of(&api, "new-pod", 8);
    let new_runs = start(&new);
    let t0 = Instant::now();
    let mut both = std::collections::BTreeSet::new();
    while t0.elapsed() < StdDuration::from_secs(3) {
        for i in 0..40 {
            let n = format!("web{i}");
            if old.may_write(shard_of(NS, &n, 4)) && new.may_write(shard_of(NS, &n, 8)) {
                both.insert(n);
            }
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    old_runs.abort();
    new_runs.abort();
    assert!(
        both.is_empty(),
        "{} of 40 scalers writable by both the --shards 4 and the --shards 8 pod: {both:?}",
        both.len()
    );
}

/// A Lease of `name` in `ops`, named for `holder`, renewed now (as another client writes it).
fn lease_held_by(name: &str, holder: &str) -> serde_json::Value {
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name, "namespace": "ops" },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 2,
                  "acquireTime": now, "renewTime": now, "leaseTransitions": 0 },
    })
}

/// The held shards are renewed beside the takes, not after them: two takes whose writes get no
/// answer (each bounded by the renew deadline) do not hold the renewals back. (Before, in one
/// loop, every held shard passed its renew deadline: 1.2 s with none writable.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_takes_of_free_shards_do_not_stop_the_renewals() {
    let api = FakeApi::new();
    // Shards 4 and 5 are held by someone else, who renews them every 200 ms.
    let others = [
        shard_lease_name("prescaler", 4, SHARDS),
        shard_lease_name("prescaler", 5, SHARDS),
    ];
    for o in &others {
        api.put(lease_held_by(o, "elsewhere"));
    }
    let keep = Arc::new(AtomicBool::new(true));
    let renewing = tokio::spawn({
        let (api, others, keep) = (api.clone(), others.clone(), keep.clone());
        async move {
            while keep.load(Ordering::Relaxed) {
                tokio::time::sleep(StdDuration::from_millis(200)).await;
                for o in &others {
                    let mut l = api
                        .get("coordination.k8s.io/v1", "Lease", "ops", o)
                        .unwrap();
                    l["spec"] = lease_held_by(o, "elsewhere")["spec"].clone();
                    api.put(l);
                }
            }
        }
    });
    let a = replica(&api, "a");
    let a_runs = start(&a);
    until(5, "a holds the 4 free shards", &[&a], |n| n == [4]).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    // The other holder releases 4 and 5 (as client-go releases); a's writes taking them get no
    // answer.
    keep.store(false, Ordering::Relaxed);
    renewing.await.unwrap();
    for o in &others {
        api.hang_next(Method::PUT, &format!("leases/{o}"), 1);
        let mut l = api
            .get("coordination.k8s.io/v1", "Lease", "ops", o)
            .unwrap();
        l["spec"]["holderIdentity"] = serde_json::Value::Null;
        l["spec"]["leaseDurationSeconds"] = json!(1);
        api.put(l);
    }
    let t0 = Instant::now();
    let mut seen: Vec<(StdDuration, usize)> = Vec::new();
    let mut without = StdDuration::ZERO;
    let mut since: Option<Instant> = None;
    while t0.elapsed() < StdDuration::from_secs(5) {
        let h = a.held().iter().filter(|&&s| s < 4).count();
        if seen.last().is_none_or(|(_, l)| *l != h) {
            seen.push((t0.elapsed(), h));
        }
        match (h, since) {
            (0, None) => since = Some(Instant::now()),
            (n, Some(t)) if n > 0 => {
                without = without.max(t.elapsed());
                since = None;
            }
            _ => {}
        }
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    a_runs.abort();
    assert!(
        without < StdDuration::from_millis(100),
        "a wrote for none of the 4 shards it held for {without:?} (renew deadline 1 s, lease \
         duration 1.5 s) because two takes of other shards hung; held over time: {seen:?}"
    );
}

/// A shard lost to its renew deadline while the rounds sleep (renewals failing fast: 500s) is
/// announced: the controller forgets its scalers and `prescaler_shards_held` follows. (Before,
/// only a change within one round was sent: a replica that lost all six said nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_lost_between_rounds_are_announced() {
    let api = FakeApi::new();
    let a = replica(&api, "a");
    let a_runs = start(&a);
    until(5, "a alone", &[&a], |n| n == [6]).await;
    let mut changes = a.changes();
    changes.borrow_and_update();
    // Every Lease write fails at once from now on (reads still answer).
    api.fail_next(Method::PUT, "leases", 500, 1_000_000);
    api.fail_next(Method::POST, "leases", 500, 1_000_000);
    until(5, "a's renew deadline passed", &[&a], |n| n == [0]).await;
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let announced = changes.has_changed().unwrap();
    a_runs.abort();
    assert!(
        announced,
        "a stopped writing for its 6 shards, and the controller was never told (changes not sent)"
    );
}

/// A floor-holding scaler of shard 1 deleted by hand (its finalizer removed): the sweep it owes
/// is run by the replica that saw it go, the holder of its shard. (Before, only the holder of
/// shard 0 could sweep, and it never knew the scaler: the floor stayed at 9.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_orphaned_in_a_shard_other_than_0_is_given_back() {
    use prescaler::operator::controller::Settings;
    use prescaler::operator::shards::Election;
    use prescaler::operator::telemetry::{Health, Metrics};
    use prescaler::operator::{Caches, run_controller};
    use support::scripted::ScriptedSource;
    let api = FakeApi::new();
    let (a, b) = (replica_of(&api, "a", 2), replica_of(&api, "b", 2));
    let (a_runs, b_runs) = (start(&a), start(&b));
    until(8, "one shard each", &[&a, &b], |n| n == [1, 1]).await;
    let name = (0..)
        .map(|i| format!("web{i}"))
        .find(|n| shard_of(NS, n, 2) == 1)
        .unwrap();
    let source = Arc::new(ScriptedSource::new(|_, _| Some(60.0)));
    let controllers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|set| {
            let settings = Settings {
                sync_period: StdDuration::from_secs(1),
                status_refresh: StdDuration::ZERO,
                ..Settings::default()
            };
            tokio::spawn(run_controller(
                api.client(),
                source.clone(),
                Arc::new(Metrics::default()),
                Arc::new(Health::default()),
                settings,
                Election::Shards(set),
                Caches::new(),
            ))
        })
        .collect();
    // Created once both run (their start-up sweeps done), as a tenant would.
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    api.put(deployment(&name, 2));
    api.put(hpa(&name, 2, json!({})));
    api.put(scaler(
        &name,
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": 9 }] }),
    ));
    let min = |api: &FakeApi| {
        api.get("autoscaling/v2", "HorizontalPodAutoscaler", NS, &name)
            .unwrap()["spec"]["minReplicas"]
            .as_i64()
            .unwrap()
    };
    eventually(20, "the floor set by shard 1's holder", || {
        match min(&api) {
            9 => Ok(()),
            n => Err(format!("minReplicas {n}")),
        }
    })
    .await;
    api.delete_past_finalizers("prescaler.dev/v1alpha1", "PredictiveScaler", NS, &name);
    let given_back = {
        let t0 = Instant::now();
        loop {
            if min(&api) == 2 {
                break true;
            }
            if t0.elapsed() > StdDuration::from_secs(20) {
                break false;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    };
    for c in controllers {
        c.abort();
    }
    a_runs.abort();
    b_runs.abort();
    assert!(
        given_back,
        "{name}'s floor (9 over the HPA's own 2) still set 20 s after its scaler went by hand (1 s syncs)"
    );
}

/// `--shards N` → `--shards 1` in a rolling upgrade: the new single leader waits, before it
/// takes its Lease, until no shard Lease is renewed; the sharded replica stops (releasing its
/// shards) and the leader goes on at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_leader_waits_for_the_sharded_replicas_to_stop() {
    use prescaler::operator::shards::wait_until_no_shard_is_held;
    let api = FakeApi::new();
    let old = replica(&api, "old-pod");
    let old_runs = start(&old);
    until(5, "the sharded replica holds its shards", &[&old], |n| {
        n == [6]
    })
    .await;
    let base = scaled("new-pod");
    let waiting = tokio::spawn({
        let client = api.client();
        async move { wait_until_no_shard_is_held(client, &base).await }
    });
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert!(
        !waiting.is_finished(),
        "the single leader went ahead beside a replica renewing six shards"
    );
    old_runs.abort();
    old.release_all().await;
    tokio::time::timeout(StdDuration::from_secs(2), waiting)
        .await
        .expect("released shards let the single leader go on")
        .unwrap();
}
