//! The operator at scale: `prescaler run` (the release binary, its own process) against the
//! fake API served over HTTP holding N Deployments and N PredictiveScalers, and a real Prometheus
//! with 4 weeks of history. A benchmark, not a test: it prints numbers and asserts only that the
//! run completed. Run it with
//!
//! ```sh
//! cargo test --release --test integration operator_bench -- --ignored --nocapture
//! ```
//! (`PRESCALER_BENCH_SCALERS` sets N, default 1000; `PRESCALER_BENCH_STEADY_SECS` the steady-state
//! window, default 120; `PRESCALER_BENCH_SETTLE_SECS` how long to wait after the cold start before
//! that window opens, default 0, to measure past the start's transient; `PRESCALER_BENCH_ARGS` more flags for `prescaler run`;
//! `PRESCALER_BENCH_REPLICAS` R > 1 runs R processes with `--shards R`, each reported, the
//! rates summed; `PRESCALER_BENCH_COLD_SECS` how long the cold start may take, default 600.) The
//! operator runs with the image's allocator settings (`support::ALLOCATOR_ENV`) unless the
//! environment sets them. The CPU seconds
//! each process spent on the cold start are printed beside its wall time: on a shared machine
//! they are the steadier figure.
//!
//! Prometheus holds 20 backfilled series; scaler `i` queries series `i % 20` through a query of
//! its own (`sum(...) * (1 + i/100000)`), so every scaler sends its own queries and gets its own
//! result, as 1,000 distinct services would, without backfilling 1,000 series.

use crate::support;

use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, DurationRound, Timelike, Utc};
use serde_json::json;
use support::fake_api::FakeApi;
use support::prometheus::{METRIC, TestPrometheus, samples};

const SERIES: usize = 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// User and system CPU seconds a process has used so far (`/proc/<pid>/stat`, in clock ticks of
/// 1/100 s): what a cold start cost each process, whatever else shared the cores.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields; the command name was the 2nd.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

async fn scrape(port: u16) -> String {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn operator_at_scale() {
    let n = env_or("PRESCALER_BENCH_SCALERS", 1000) as usize;
    let steady = env_or("PRESCALER_BENCH_STEADY_SECS", 120);
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let started = Instant::now();
    let history: Vec<(String, support::prometheus::Series)> = (0..SERIES)
        .map(|s| {
            let series = samples(
                now - Duration::days(28),
                now - Duration::minutes(2),
                Duration::minutes(1),
                |t| {
                    let hour = t.hour() as f64 + t.minute() as f64 / 60.0;
                    let daily = (std::f64::consts::PI * (hour - 4.0) / 24.0).sin().powi(2);
                    100.0 + 50.0 * s as f64 + 400.0 * daily
                },
            );
            (format!("s{s}"), series)
        })
        .collect();
    let refs: Vec<(&str, support::prometheus::Series)> = history
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    let prom = TestPrometheus::start(&refs);
    for s in 0..SERIES {
        prom.set_live(&format!("s{s}"), Some(200.0 + 50.0 * s as f64));
    }
    prom.wait_for_live("s0", 200.0);
    println!(
        "backfilled {SERIES} series x 28 days and started Prometheus in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let prometheus_pid = prom.pid().expect("Prometheus runs");
    let api = FakeApi::new();
    for i in 0..n {
        let name = format!("svc-{i}");
        api.put(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": name, "namespace": "bench" },
            "spec": { "replicas": 2 }, "status": { "replicas": 2 },
        }));
        api.put(json!({
            "apiVersion": "prescaler.dev/v1alpha1", "kind": "PredictiveScaler",
            "metadata": { "name": name, "namespace": "bench" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": 2, "maxReplicas": 100,
                "metric": {
                    "query": format!("sum({METRIC}{{service=\"s{}\"}}) * {}", i % SERIES, 1.0 + i as f64 / 100_000.0),
                    "targetPerReplica": 50,
                },
            },
        }));
    }
    let replicas = env_or("PRESCALER_BENCH_REPLICAS", 1).max(1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http(dir.path()).await;
    let start = Instant::now();
    let prometheus_cpu_before = cpu_secs(prometheus_pid);
    let mut operators: Vec<Replica> = (0..replicas)
        .map(|r| spawn_replica(r, replicas, &prom.url(), &kubeconfig, dir.path()))
        .collect();

    // Cold start: until every scaler has a status with a decision.
    let decided = || {
        api.list("prescaler.dev/v1alpha1", "PredictiveScaler")
            .iter()
            .filter(|p| p["status"]["desiredReplicas"].is_number())
            .count()
    };
    let cold_secs = env_or("PRESCALER_BENCH_COLD_SECS", 600);
    let deadline = Instant::now() + StdDuration::from_secs(cold_secs);
    while decided() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} decided in {cold_secs} s (RSS {:.0} MiB)",
            decided(),
            operators
                .iter()
                .map(|o| rss_kib(o.pid, "VmRSS:") as f64 / 1024.0)
                .sum::<f64>()
        );
        for (r, op) in operators.iter_mut().enumerate() {
            assert!(
                op.child.try_wait().unwrap().is_none(),
                "operator {r} exited: {}",
                std::fs::read_to_string(dir.path().join(format!("operator-{r}.log")))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    let cold = start.elapsed().as_secs_f64();
    let operators_cpu_cold: f64 = operators.iter().map(|o| cpu_secs(o.pid)).sum();
    let prometheus_cpu_cold = cpu_secs(prometheus_pid) - prometheus_cpu_before;
    let rss_cold: Vec<u64> = operators.iter().map(|o| rss_kib(o.pid, "VmRSS:")).collect();

    // Steady state, after the start's transient (the decisions' reasons settle in the first
    // minutes: reactive until the forecast is trusted, then stabilized as it falls) if asked.
    let settle = env_or("PRESCALER_BENCH_SETTLE_SECS", 0);
    tokio::time::sleep(StdDuration::from_secs(settle)).await;
    let writes = |what: &str| {
        api.requests()
            .iter()
            .filter(|r| r.method != http::Method::GET && r.path.contains(what))
            .count() as f64
    };
    let writes_before = ["/status", "/scale", "/events", "/leases", ""].map(writes);
    // Each workload's replicas, to tell a scaler that follows its load from one that flaps: the
    // scales in the window against how far the replicas moved over it.
    let replicas_now = || -> Vec<i64> {
        (0..n)
            .map(|i| {
                api.get("apps/v1", "Deployment", "bench", &format!("svc-{i}"))
                    .and_then(|d| d["spec"]["replicas"].as_i64())
                    .unwrap_or(0)
            })
            .collect()
    };
    let replicas_before = replicas_now();
    let window_opened = Instant::now();
    let before = scrape_all(&operators).await;
    let t0 = Instant::now();
    tokio::time::sleep(StdDuration::from_secs(steady)).await;
    let after = scrape_all(&operators).await;
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let queries_per_min = delta("prescaler_prometheus_queries_total") / minutes;
    let reconciles = delta("prescaler_reconcile_duration_seconds_count");
    let reconcile_ms =
        1000.0 * delta("prescaler_reconcile_duration_seconds_sum") / reconciles.max(1.0);
    let decisions = delta("prescaler_decision_duration_seconds_count");
    let decision_ms =
        1000.0 * delta("prescaler_decision_duration_seconds_sum") / decisions.max(1.0);
    let within_1ms = (metric(
        &after,
        "prescaler_decision_duration_seconds_bucket{le=\"0.001\"}",
    ) - metric(
        &before,
        "prescaler_decision_duration_seconds_bucket{le=\"0.001\"}",
    )) / decisions.max(1.0);
    let errors = metric(&after, "prescaler_reconcile_errors_total") + 0.0;
    let writes_after = ["/status", "/scale", "/events", "/leases", ""].map(writes);
    let replicas_after = replicas_now();
    let moved: i64 = replicas_before
        .iter()
        .zip(&replicas_after)
        .map(|(a, b)| (a - b).abs())
        .sum();
    let scaled: std::collections::BTreeSet<String> = api
        .requests()
        .iter()
        .filter(|r| r.method != http::Method::GET && r.path.ends_with("/scale"))
        .filter(|r| r.at >= window_opened)
        .filter_map(|r| r.path.rsplit('/').nth(1).map(str::to_owned))
        .collect();
    let per_minute = |i: usize| (writes_after[i] - writes_before[i]) / minutes;
    let rss: Vec<u64> = operators.iter().map(|o| rss_kib(o.pid, "VmRSS:")).collect();
    let hwm: Vec<u64> = operators.iter().map(|o| rss_kib(o.pid, "VmHWM:")).collect();
    for op in &mut operators {
        let _ = op.child.kill();
        let _ = op.child.wait();
    }
    let mib = |kib: &[u64]| {
        kib.iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / ")
    };

    println!("scalers                         {n}");
    println!("replicas (--shards)             {replicas}");
    println!("cold start (all decided)        {cold:.1} s");
    println!("steady window                   {steady} s, {settle} s after the cold start");
    println!(
        "CPU during cold start           operator {operators_cpu_cold:.1} s, Prometheus {prometheus_cpu_cold:.1} s"
    );
    println!("RSS after cold start            {} MiB", mib(&rss_cold));
    println!(
        "RSS in steady state             {} MiB (peak {} MiB)",
        mib(&rss),
        mib(&hwm)
    );
    println!(
        "reconciles per minute           {:.0}",
        reconciles / minutes
    );
    println!("Prometheus queries per minute   {queries_per_min:.0}");
    println!("mean reconcile                  {reconcile_ms:.2} ms");
    println!(
        "mean decision                   {decision_ms:.3} ms ({:.1} % within 1 ms)",
        100.0 * within_1ms
    );
    println!("reconcile errors                {errors}");
    println!(
        "API writes per minute           {:.0} (status {:.0}, /scale {:.0}, Events {:.0}, Lease {:.0})",
        per_minute(4),
        per_minute(0),
        per_minute(1),
        per_minute(2),
        per_minute(3)
    );
    // Status writes by cause (`prescaler_status_writes_total{cause=…}`), a minute each.
    let causes: std::collections::BTreeSet<&str> = after
        .lines()
        .filter_map(|l| l.strip_prefix("prescaler_status_writes_total{cause=\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    let by_cause: Vec<String> = causes
        .iter()
        .map(|c| {
            let series = format!("prescaler_status_writes_total{{cause=\"{c}\"}}");
            format!("{c} {:.0}", delta(&series) / minutes)
        })
        .filter(|s| !s.ends_with(" 0"))
        .collect();
    println!("status writes per minute, cause {}", by_cause.join(", "));
    println!(
        "scaled in the window            {} scalers, replicas moved {moved} in all (sum of |end - start|)",
        scaled.len()
    );
    assert!(reconciles > 0.0, "the operator reconciled in steady state");
}

/// One `prescaler run` of the benchmark.
struct Replica {
    child: std::process::Child,
    pid: u32,
    port: u16,
}

/// Killed and reaped however the benchmark ends: a failed assertion (a cold start past its
/// deadline) left a 10 000-scaler operator running after the test.
impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replica `r` of `replicas`: alone without leader election, else one of `replicas` sharing as
/// many shards.
fn spawn_replica(
    r: usize,
    replicas: usize,
    prometheus: &str,
    kubeconfig: &std::path::Path,
    dir: &std::path::Path,
) -> Replica {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.join(format!("operator-{r}.log"))).unwrap();
    let election: Vec<String> = match replicas {
        1 => vec!["--no-leader-election".into()],
        _ => vec![
            "--shards".into(),
            replicas.to_string(),
            "--identity".into(),
            format!("bench-{r}"),
            "--lease-namespace".into(),
            "ops".into(),
        ],
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_prescaler"))
        .args([
            "run",
            "--prometheus-url",
            prometheus,
            "--sync-period",
            "30s",
            // All in one namespace: the per-namespace limit would refuse most of them.
            "--max-scalers-per-namespace",
            "0",
        ])
        .args(election)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // More flags, e.g. `--status-refresh 0s` to measure the status writes without the refresh.
        .args(
            std::env::var("PRESCALER_BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        // As the image runs it, unless the benchmark's own environment says otherwise.
        .envs(
            support::ALLOCATOR_ENV
                .into_iter()
                .filter(|(name, _)| std::env::var_os(name).is_none()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Replica {
        pid: child.id(),
        child,
        port,
    }
}

/// Every replica's `/metrics`, one after the other (the sums are what is read).
async fn scrape_all(operators: &[Replica]) -> String {
    let mut all = String::new();
    for op in operators {
        all += &scrape(op.port).await;
        all.push('\n');
    }
    all
}
