//! `kubectl prescaler`: the plan golden-tested on the demo trace, `plan` and `why` end to end
//! against the fake Kubernetes API in-process (the plugin's logic takes a `kube::Client` and a
//! history source), and the binary's exit codes and messages.

use crate::support;

use std::future::ready;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Timelike, Utc};
use prescaler::adapters::history::RangeSource;
use prescaler::backtest::trace::Trace;
use prescaler::planning::plan::Reason;
use prescaler::plugin::{self, render};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::{NS, config_map, deployment};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A recorded trace served as Prometheus would serve its range queries up to `now`.
struct TraceSource {
    trace: Trace,
    now: DateTime<Utc>,
}

impl RangeSource for TraceSource {
    fn range(
        &self,
        _query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = prescaler::adapters::Result<Vec<(DateTime<Utc>, f64)>>> + Send {
        let metric = self.trace.metric();
        let mut out = Vec::new();
        let mut t = start;
        while t <= end.min(self.now) {
            if let Ok(m) = usize::try_from((t - self.trace.start).num_minutes())
                && let Some(v) = metric.get(m).filter(|v| v.is_finite())
            {
                out.push((t, *v));
            }
            t += step;
        }
        ready(Ok(out))
    }
}

/// The bundled checkout example, as `kubectl apply` would store it.
fn checkout() -> Value {
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Friday 2026-02-20, 06:50 UTC (07:50 in Berlin): the newsletter spike is at 09:00 Berlin, the
/// lunch window opens at 11:30 Berlin.
fn now() -> DateTime<Utc> {
    "2026-02-20T06:50:00Z".parse().unwrap()
}

fn demo_source() -> TraceSource {
    TraceSource {
        trace: Trace::load(&repo("examples/demo-trace.csv")).unwrap(),
        now: now(),
    }
}

/// `kubectl prescaler plan checkout` on the demo's history at the tests' instant.
async fn plan_checkout(api: &FakeApi) -> plugin::PlanReport {
    plugin::plan(&api.client(), &demo_source(), NS, "checkout", now())
        .await
        .unwrap()
}

/// The plan's table on a fixed history and instant. Rewrite with `UPDATE_GOLDEN=1 cargo test
/// --release --test integration plugin::` after a deliberate change, and read the diff.
#[tokio::test]
async fn plan_on_the_demo_trace_matches_the_golden_table() {
    let api = FakeApi::new();
    api.put(checkout());
    api.put(deployment("checkout", 4));
    let report = plan_checkout(&api).await;
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let table = render::plan_table(&report, render::Zone::Named(tz));

    // What the table must show, whatever the golden file says.
    let o = &report.outlook;
    assert_eq!(report.current_replicas, 4, "from the Deployment's /scale");
    assert!(!o.held, "18 days of history: calibrated");
    assert_eq!(o.steps.len(), 96);
    let step = |hh: u32, mm: u32| {
        o.steps
            .iter()
            .find(|s| {
                s.at.hour() == hh && s.at.minute() == mm && s.at.date_naive() == now().date_naive()
            })
            .unwrap()
    };
    // The lunch window, 10:30 UTC to 13:00 UTC, holds at least its 18.
    let lunch = step(11, 0);
    assert_eq!(
        lunch.window_open.as_deref(),
        Some("weekday-lunch"),
        "{lunch:?}"
    );
    assert!(lunch.replicas >= 18, "{lunch:?}");
    // The 09:00 Berlin newsletter spike (08:00 UTC) is planned by the forecast, above the night.
    let spike = step(8, 0);
    assert!(matches!(spike.reason, Reason::Forecast(_)), "{spike:?}");
    assert!(
        spike.replicas > o.now.replicas + 2,
        "{spike:?} vs now {:?}",
        o.now
    );
    assert!(table.contains("■ weekday-lunch"), "{table}");
    assert!(table.contains("Fri 09:00"), "times in Berlin: {table}");

    let path = repo("tests/golden/plan-checkout.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    let golden =
        std::fs::read_to_string(&path).expect("golden file; create it with UPDATE_GOLDEN=1");
    assert_eq!(
        table, golden,
        "the plan's table changed; if deliberately, UPDATE_GOLDEN=1 rewrites it"
    );

    // -o json carries the same rows: the decision now, then 96 steps.
    let doc = serde_json::to_value(report.document()).unwrap();
    assert_eq!(doc["steps"].as_array().unwrap().len(), 97);
    assert_eq!(doc["maxReplicas"], 60);
    assert_eq!(doc["summary"]["max"]["replicas"], o.max().unwrap().replicas);
}

#[tokio::test]
async fn a_target_without_scale_is_planned_from_the_status_and_said_so() {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["status"] = json!({ "currentReplicas": 7 });
    api.put(scaler);
    let report = plan_checkout(&api).await;
    assert_eq!(report.current_replicas, 7);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("does not exist") && n.contains("7 replicas")),
        "{:?}",
        report.notes
    );
}

/// The calendar's `.ics` files are planned with, read from the scaler's own namespace as the
/// operator reads them; one that is missing is said, and the plan made without it.
#[tokio::test]
async fn the_plan_holds_the_calendars_ics_events_and_says_when_one_is_missing() {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["spec"]["calendar"] = json!({ "configMapRefs": [
        { "name": "campaigns", "key": "sale.ics", "as": "Event", "minReplicas": 30 }] });
    api.put(scaler.clone());
    api.put(deployment("checkout", 4));
    let sale = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:sale@shop\nSUMMARY:sale\n\
DTSTART:20260220T160000Z\nDURATION:PT1H\nEND:VEVENT\nEND:VCALENDAR\n";
    let campaigns = |namespace: &str| config_map(namespace, "campaigns", "sale.ics", sale);
    // Only in another namespace: not read.
    api.put(campaigns("elsewhere"));
    let report = plan_checkout(&api).await;
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("campaigns not found")
                && n.contains("planned without the calendar's .ics files")),
        "{:?}",
        report.notes
    );
    let at_the_sale = |report: &plugin::PlanReport| {
        report
            .outlook
            .steps
            .iter()
            .find(|s| s.at == "2026-02-20T16:15:00Z".parse::<DateTime<Utc>>().unwrap())
            .cloned()
            .unwrap()
    };
    assert!(
        at_the_sale(&report).replicas < 30,
        "{:?}",
        at_the_sale(&report)
    );

    api.put(campaigns(NS));
    let report = plan_checkout(&api).await;
    // The demo's 18 days of the spec's 28 are said (tests/history_source.rs); nothing else.
    let others: Vec<_> = report
        .notes
        .iter()
        .filter(|n| !n.starts_with("18 of 28 days of history"))
        .collect();
    assert!(others.is_empty(), "{:?}", report.notes);
    let step = at_the_sale(&report);
    assert!(step.replicas >= 30, "{step:?}");
    assert!(matches!(step.reason, Reason::Event(_)), "{step:?}");
}

/// With `leadTime: Auto` the plan uses the lead time the operator learned, as its status
/// says, not the default.
#[tokio::test]
async fn an_auto_lead_time_is_planned_with_the_learned_figure() {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["spec"]["forecast"]["leadTime"] = json!("Auto");
    scaler["status"] =
        json!({ "leadTime": { "seconds": 540, "source": "Learned", "observations": 12 } });
    api.put(scaler);
    api.put(deployment("checkout", 4));
    let report = plan_checkout(&api).await;
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("Auto") && n.contains("9m")),
        "{:?}",
        report.notes
    );
}

/// `kubectl prescaler backtest` replays a `leadTime: Auto` spec as `prescaler backtest` does:
/// with the simulated start-up plus the metric's delay (5m + 1m), said on standard error, and
/// the last 7 days of the range scored. (The plugin once replayed it with the spec's default
/// lead time and said nothing: the two commands answered differently for one scaler.)
#[tokio::test]
async fn the_plugins_backtest_replays_an_auto_lead_time_as_the_cli_does() {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["spec"]["forecast"]["leadTime"] = json!("Auto");
    api.put(scaler);
    let range = chrono::Duration::days(14);
    let report = plugin::backtest(&api.client(), &demo_source(), NS, "checkout", range, now())
        .await
        .unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("leadTime is Auto: replayed with 6m")),
        "{:?}",
        report.notes
    );
    // 14 days read: the first 7 warm the forecast up, the last 7 are scored.
    assert_eq!(
        report.setup.eval_start,
        report.trace.start + chrono::Duration::days(7)
    );
}

/// A scaler with several metrics is planned and replayed on every metric. Here both queries
/// read the same history, so the queue's (10 a replica, five times the requests' need) is the
/// plan of a scaler of that metric alone, step for step, and the backtest's need is the
/// queue's, minute by minute (a replay of the first metric alone needs a fifth of it).
#[tokio::test]
async fn several_metrics_are_planned_and_backtested_on_every_metric() {
    let api = FakeApi::new();
    api.put(deployment("checkout", 3));
    let mut scaler = checkout();
    let spec = scaler["spec"].as_object_mut().unwrap();
    spec.remove("metric");
    spec.insert(
        "metrics".into(),
        json!([
            { "name": "requests", "query": "sum(rate(http_requests_total[1m]))", "targetPerReplica": 50 },
            { "name": "queue", "query": "sum(queue_depth)", "targetPerReplica": 10 },
        ]),
    );
    api.put(scaler);
    let client = api.client();
    let replay = |client: kube::Client| async move {
        plugin::backtest(
            &client,
            &demo_source(),
            NS,
            "checkout",
            Duration::days(14),
            now(),
        )
        .await
        .unwrap()
    };
    let replayed = replay(client.clone()).await;
    assert_eq!(replayed.trace.name, "spec.metrics (requests, queue)");
    let planned = plugin::plan(&client, &demo_source(), NS, "checkout", now())
        .await
        .unwrap();
    let mut queue_alone = checkout();
    queue_alone["spec"]["metric"]["targetPerReplica"] = json!(10);
    api.put(queue_alone);
    let alone = plan_checkout(&api).await;
    let queue_only = replay(client.clone()).await;
    assert_eq!(replayed.outcome.needed, queue_only.outcome.needed);
    assert_eq!(replayed.setup.eval_start, queue_only.setup.eval_start);
    assert!(!planned.outlook.held);
    let replicas = |r: &plugin::PlanReport| -> Vec<u32> {
        let o = &r.outlook;
        std::iter::once(&o.now)
            .chain(&o.steps)
            .map(|s| s.replicas)
            .collect()
    };
    assert_eq!(replicas(&planned), replicas(&alone));
    assert!(
        planned
            .outlook
            .steps
            .iter()
            .all(|s| s.forecast_load.is_none()),
        "a forecast load in an unnamed metric's unit is left out"
    );
}

/// `kubectl prescaler backtest` replays the calendar's `.ics` files, read from the scaler's own
/// namespace, over the trace's span: a sale's floor holds in the replay; without the ConfigMap
/// it is said, and replayed without.
#[tokio::test]
async fn the_plugins_backtest_replays_the_calendars_ics_events() {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["spec"]["calendar"] = json!({ "configMapRefs": [
        { "name": "campaigns", "key": "sale.ics", "as": "Event", "minReplicas": 40 }] });
    api.put(scaler);
    let range = chrono::Duration::days(14);
    let (client, source) = (api.client(), demo_source());
    let replay = || plugin::backtest(&client, &source, NS, "checkout", range, now());
    let without = replay().await.unwrap();
    assert!(
        without
            .notes
            .iter()
            .any(|n| n.contains("campaigns not found") && n.contains("replayed without")),
        "{:?}",
        without.notes
    );
    // A sale on the scored days, at 03:00 UTC, when the demo's load is low.
    let sale = "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:s@shop\n\
    SUMMARY:sale\nDTSTART:20260218T030000Z\nDURATION:PT1H\nEND:VEVENT\nEND:VCALENDAR\n";
    api.put(config_map(NS, "campaigns", "sale.ics", sale));
    let with = replay().await.unwrap();
    assert!(with.notes.is_empty(), "{:?}", with.notes);
    let at = |report: &plugin::BacktestReport| {
        let minute = ("2026-02-18T03:30:00Z".parse::<DateTime<Utc>>().unwrap() - report.trace.start)
            .num_minutes() as usize;
        report.outcome.runs[0].desired[minute]
    };
    assert!(at(&without) < 40, "{}", at(&without));
    assert_eq!(at(&with), 40, "the sale's floor");
}

#[tokio::test]
async fn a_missing_scaler_names_the_namespace() {
    let api = FakeApi::new();
    let e = plugin::plan(&api.client(), &demo_source(), "payments", "checkout", now())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("\"checkout\"") && e.contains("not found in namespace \"payments\""),
        "{e}"
    );
}

fn event(name: &str, regarding: &str, kind: &str, at: &str, reason: &str, note: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": { "name": name, "namespace": NS },
        "eventTime": at, "reportingController": "prescaler", "reportingInstance": "prescaler",
        "action": "Reconcile", "type": "Normal", "reason": reason, "note": note,
        "regarding": { "apiVersion": "prescaler.dev/v1alpha1", "kind": kind, "name": regarding, "namespace": NS },
    })
}

/// A scaler with a status, two Events about it and one about something else.
fn why_fixture() -> FakeApi {
    let api = FakeApi::new();
    let mut scaler = checkout();
    scaler["status"] = json!({
        "currentReplicas": 18, "desiredReplicas": 18, "reason": "PeakWindow",
        "scheduledMinReplicas": 18, "forecastReplicas": 9,
        "plan": { "computedAt": "2026-02-20T10:30:00Z", "horizon": "1d",
                  "nextPeak": { "at": "2026-02-21T08:00:00Z", "replicas": 21, "reason": "Forecast", "by": "daily forecast" } },
        "conditions": [{ "type": "Ready", "status": "True", "reason": "Scaling",
                         "message": "prescaler scales Deployment checkout",
                         "lastTransitionTime": "2026-02-20T06:00:00Z" }],
    });
    api.put(scaler);
    api.put(event("a", "checkout", "PredictiveScaler", "2026-02-20T08:00:00.000000Z", "ScaledUp",
        "Deployment checkout from 4 to 12 replicas (the daily forecast expects a peak of 290.0 within the lead time)"));
    api.put(event(
        "b",
        "checkout",
        "PredictiveScaler",
        "2026-02-20T10:24:00.000000Z",
        "ScaledUp",
        "Deployment checkout from 12 to 18 replicas (peak window \"weekday-lunch\")",
    ));
    api.put(event(
        "c",
        "checkout",
        "Deployment",
        "2026-02-20T10:25:00.000000Z",
        "ScalingReplicaSet",
        "about the Deployment, not the scaler",
    ));
    api
}

#[tokio::test]
async fn why_shows_the_status_and_the_scalers_events_newest_first() {
    let api = why_fixture();
    let report = plugin::why(&api.client(), NS, "checkout", 20)
        .await
        .unwrap();
    let reasons: Vec<_> = report.events.iter().map(|e| e.note.as_str()).collect();
    assert_eq!(reasons.len(), 2, "only the scaler's Events: {reasons:?}");
    assert!(
        reasons[0].contains("from 12 to 18"),
        "newest first: {reasons:?}"
    );
    assert!(reasons[1].contains("from 4 to 12"), "{reasons:?}");
    let text = render::why_text(&report, render::Zone::Utc);
    assert!(
        text.contains("Decision: 18 replicas (PeakWindow)"),
        "{text}"
    );
    assert!(
        text.contains("next peak 21 replicas at 2026-02-21T08:00:00Z (Forecast daily forecast)"),
        "{text}"
    );
    assert!(text.contains("Ready  True    Scaling"), "{text}");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {text}"))
    };
    assert!(at("from 12 to 18") < at("from 4 to 12"), "{text}");
    // A limit keeps the newest.
    let one = plugin::why(&api.client(), NS, "checkout", 1).await.unwrap();
    assert_eq!(one.events.len(), 1);
    assert!(one.events[0].note.contains("from 12 to 18"));
}

/// Runs the binary with `args` (and KUBECONFIG unset, so only `--kubeconfig` counts).
async fn kubectl_prescaler(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler"))
            .args(&args)
            .env_remove("KUBECONFIG")
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_with_codes_a_script_can_use() {
    let api = why_fixture();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http(dir.path()).await.display().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    // 0, and -o json for scripts.
    let out = kubectl_prescaler(s(&[
        "--kubeconfig",
        &kubeconfig,
        "-n",
        NS,
        "why",
        "checkout",
        "-o",
        "json",
    ]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"]["desiredReplicas"], 18);
    assert_eq!(doc["events"][0]["reason"], "ScaledUp");
    assert_eq!(doc["events"].as_array().unwrap().len(), 2);

    // 1: a missing scaler, named with its namespace (the kubeconfig context's, `default`).
    let out = kubectl_prescaler(s(&["--kubeconfig", &kubeconfig, "why", "checkout"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not found in namespace \"default\""), "{err}");

    // 1: a kubeconfig that is not there.
    let missing = dir.path().join("nope").display().to_string();
    let out = kubectl_prescaler(s(&["--kubeconfig", &missing, "why", "checkout"])).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kubeconfig") && err.contains("nope"), "{err}");

    // 2: usage (no name; an unknown output format).
    let out = kubectl_prescaler(s(&["why"])).await;
    assert_eq!(out.status.code(), Some(2));
    let out = kubectl_prescaler(s(&["why", "checkout", "-o", "xml"])).await;
    assert_eq!(out.status.code(), Some(2));
    // The exit codes are in --help.
    let out = kubectl_prescaler(s(&["--help"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit codes: 0 success; 1"));
}

/// `kubectl prescaler savings`: every scaler of the namespace, its figures from its status (the
/// operator counts, the plugin prints), said to be a model estimate; one scaler with its summary.
#[tokio::test]
async fn savings_prints_each_scalers_account_against_the_hpa_from_its_status() {
    let api = FakeApi::new();
    let mut counted = checkout();
    let day = |date: &str, short: i64, hpa_short: i64| {
        json!({ "date": date, "minutes": 1440, "replicaMinutes": 2674, "shortMinutes": short,
                "hpaReplicaMinutes": 3437, "hpaShortMinutes": hpa_short })
    };
    counted["status"] = json!({ "savings": {
        "summary": "7d: prescaler asked for 312 replica-hours, 0.04 % of minutes short; an HPA at 80 % on the same metric: 401 replica-hours, 0.9 % short. A model estimate",
        "hpaTargetUtilization": 80, "startupSeconds": 300,
        "from": "2026-02-14T00:00:00Z", "through": "2026-02-21T00:00:00Z",
        "days": (14..21).map(|d| day(&format!("2026-02-{d}"), i64::from(d == 15) * 4, 13)).collect::<Vec<_>>(),
    }});
    api.put(counted);
    let mut fresh = checkout();
    fresh["metadata"]["name"] = json!("api");
    api.put(fresh);
    let rows = plugin::savings(&api.client(), NS, None).await.unwrap();
    let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api", "checkout"]);
    let text = render::savings_table(&rows);
    assert!(
        text.contains("A model estimate, not a measurement"),
        "{text}"
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name}: {text}"))
            .to_string()
    };
    assert!(line("api").contains("nothing counted yet"), "{text}");
    let checkout = line("checkout");
    // 7 days of 2 674 replica-minutes is 312 replica-hours; 4 of 10 080 minutes short.
    assert!(checkout.contains("7d"), "{checkout}");
    assert!(
        checkout.contains("312 replica-hours, 0.04 % short"),
        "{checkout}"
    );
    assert!(
        checkout.contains("at 80 %: 401 replica-hours, 0.9 % short"),
        "{checkout}"
    );
    assert!(checkout.contains("22 % fewer replica-hours"), "{checkout}");
    // One scaler: its summary too.
    let one = plugin::savings(&api.client(), NS, Some("checkout"))
        .await
        .unwrap();
    assert!(render::savings_table(&one).contains("0.9 % short. A model estimate"));
    let missing = plugin::savings(&api.client(), NS, Some("nope")).await;
    assert!(missing.is_err());
}
