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

/// A replica's shards, with client-go's 15 s / 10 s / 2 s scaled down.
fn replica(api: &FakeApi, identity: &str) -> Arc<ShardSet> {
    let mut s = LeaseSettings::new("prescaler".into(), "ops".into(), identity.into());
    s.lease_duration = StdDuration::from_millis(1500);
    s.renew_deadline = StdDuration::from_millis(1000);
    s.retry = StdDuration::from_millis(200);
    Arc::new(ShardSet::new(api.client(), s, SHARDS))
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
                &shard_lease_name("prescaler", k),
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
        let mut lease = LeaseSettings::new("prescaler".into(), "ops".into(), "hook".into());
        lease.lease_duration = StdDuration::from_millis(1500);
        lease.renew_deadline = StdDuration::from_millis(1000);
        lease.retry = StdDuration::from_millis(200);
        Some(StopOperator {
            deployment: None,
            lease,
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
                &shard_lease_name("prescaler", k),
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
