//! kubectl, the real client, against the fake Kubernetes API served on a port: what the README
//! tells an SRE to type works as written. `kubectl apply -f examples/forecast-only.yaml` (and a
//! misspelled field refused by the server's strict validation), `kubectl patch`, `kubectl get psc`
//! with the printer columns the README shows (and `-o wide`), `kubectl describe psc` with the
//! operator's Events, and `kubectl prescaler why|plan` found by kubectl's own plugin discovery on
//! PATH. The operator runs in-process against the same fake API and a real Prometheus, so the
//! status kubectl prints is one the operator wrote.
//!
//! kubectl is `$KUBECTL` when set (scripts/test.sh sets it when the machine has none and it takes
//! the official one from the helm npm package), else `kubectl` on PATH.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{Duration, DurationRound, Utc};
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::{NS, deployment, eventually, start_operator, status};
use support::prometheus::{TestPrometheus, samples};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// kubectl with the fake API's kubeconfig, its caches in `home`, and `bin` (where
/// `kubectl-prescaler` is) first on PATH.
struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
    bin: PathBuf,
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> Output {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(&kubectl);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("PATH", path)
            .env_remove("PROMETHEUS_URL");
        tokio::task::spawn_blocking(move || {
            command
                .output()
                .unwrap_or_else(|e| panic!("{kubectl}: {e} (scripts/test.sh installs kubectl)"))
        })
        .await
        .unwrap()
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The words of a table's header line.
fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A table's row as (column, cell) pairs, cut at the header's column offsets (an empty cell
/// leaves no word to split on).
fn cells(table: &str, row: usize) -> Vec<(String, String)> {
    let mut lines = table.lines();
    let head = lines.next().unwrap_or_default();
    let line = lines.nth(row).unwrap_or_default();
    let starts: Vec<usize> = head
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || head.as_bytes()[i - 1] == b' '))
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts.get(k + 1).copied().unwrap_or(usize::MAX);
            let cut = |text: &str| {
                text.get(start..end.min(text.len()))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            (cut(head), cut(line))
        })
        .collect()
}

/// What kubectl prints for a status field (nothing when the operator did not set it: the server
/// sends a null cell).
fn printed(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The README's `kubectl get psc` line: the columns it promises.
fn readme_columns() -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("kubectl get psc -n shop") && l.contains('#'))
        .expect("the README shows `kubectl get psc -n shop  # COLUMNS`");
    let mut columns = vec!["NAME".to_string()];
    columns.extend(
        line.split_once('#')
            .unwrap()
            .1
            .split_whitespace()
            .map(String::from),
    );
    columns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_describes_and_finds_the_plugin() {
    // Two days of load for the Deployment `api` (100/s, 2 replicas at 50 each).
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let prom = TestPrometheus::start(&[(
        "api",
        samples(
            now - Duration::days(2),
            now - Duration::minutes(2),
            Duration::minutes(1),
            |_| 100.0,
        ),
    )]);
    prom.set_live("api", Some(100.0));
    prom.wait_for_live("api", 100.0);
    let api = FakeApi::new();
    api.put(deployment("api", 2));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http(dir.path()).await;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_kubectl-prescaler"),
        bin.join("kubectl-prescaler"),
    )
    .unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubectl = Kubectl {
        kubeconfig,
        home,
        bin,
    };
    let version = kubectl.ok(&["version", "--client"]).await;
    eprintln!("{version}");

    // apply, as the README's first PredictiveScaler.
    let example = repo("examples/forecast-only.yaml").display().to_string();
    let out = kubectl.ok(&["apply", "-f", &example]).await;
    assert_eq!(
        out.trim(),
        "predictivescaler.prescaler.dev/api created",
        "{out}"
    );
    let stored = api
        .get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "api")
        .expect("stored by kubectl apply");
    assert_eq!(stored["spec"]["mode"], "ForecastOnly");
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{stored}"
    );
    // A misspelled field: kubectl leaves validation to the server (fieldValidation=Strict),
    // which names the field.
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&example)
            .unwrap()
            .replace("  minReplicas: 3", "  minReplicas: 3\n  peakWindow: []")
            .replace("name: api\n  namespace", "name: typo\n  namespace"),
    )
    .unwrap();
    let out = kubectl.run(&["apply", "-f", typo.to_str().unwrap()]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a misspelled field was accepted");
    assert!(err.contains("unknown field \"spec.peakWindow\""), "{err}");
    assert!(
        api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "typo")
            .is_none()
    );

    // Point the example's query at the test's series, as `kubectl patch` does in the README.
    let patch = json!({ "spec": { "metric": {
        "query": format!("sum({}{{service=\"api\"}})", support::prometheus::METRIC) } } })
    .to_string();
    let out = kubectl
        .ok(&[
            "patch", "psc", "-n", NS, "api", "--type", "merge", "-p", &patch,
        ])
        .await;
    assert!(
        out.contains("predictivescaler.prescaler.dev/api patched"),
        "{out}"
    );

    // The operator decides and publishes.
    let _op = start_operator(&api, &prom.url());
    eventually(60, "a decision in status", || {
        let s = status(&api, "api");
        if s["desiredReplicas"].is_number() && s["reason"].is_string() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let s = status(&api, "api");

    // kubectl get psc: the README's columns, the operator's numbers.
    let table = kubectl.ok(&["get", "psc", "-n", NS]).await;
    assert_eq!(header(&table), readme_columns(), "{table}");
    let row = cells(&table, 0);
    let expected = [
        ("NAME", "api".to_string()),
        ("TARGET", "api".into()),
        ("MIN", "3".into()),
        ("MAX", "40".into()),
        ("CURRENT", printed(&s["currentReplicas"])),
        ("DESIRED", printed(&s["desiredReplicas"])),
        ("FORECAST", printed(&s["forecastReplicas"])),
        ("MODE", "ForecastOnly".into()),
    ];
    for (k, (column, value)) in expected.iter().enumerate() {
        assert_eq!(
            (row[k].0.as_str(), row[k].1.as_str()),
            (*column, value.as_str()),
            "{table}"
        );
    }
    let age = &row[8].1;
    assert!(age.ends_with('s') || age.ends_with('m'), "an age: {table}");
    // -o wide adds the term that decided and the schedule.
    let wide = kubectl.ok(&["get", "psc", "-n", NS, "-o", "wide"]).await;
    let columns = header(&wide);
    assert_eq!(
        columns,
        [
            "NAME", "TARGET", "MIN", "MAX", "CURRENT", "DESIRED", "FORECAST", "REASON", "SCHEDULE",
            "MODE", "AGE"
        ],
        "{wide}"
    );
    let row = cells(&wide, 0);
    assert_eq!(row[7], ("REASON".into(), printed(&s["reason"])), "{wide}");
    assert_eq!(
        row[8],
        ("SCHEDULE".into(), printed(&s["schedule"])),
        "{wide}"
    );
    // The short name, the singular and the category resolve through discovery.
    for name in [
        "predictivescaler",
        "predictivescalers.prescaler.dev",
        "autoscaling",
    ] {
        let out = kubectl.ok(&["get", name, "-n", NS, "-o", "name"]).await;
        assert_eq!(
            out.trim(),
            "predictivescaler.prescaler.dev/api",
            "{name}: {out}"
        );
    }

    // describe: the status and the operator's Events.
    let described = kubectl.ok(&["describe", "psc", "-n", NS, "api"]).await;
    for needle in [
        "Name:         api",
        "Namespace:    shop",
        "Kind:         PredictiveScaler",
        "Desired Replicas:",
        "Conditions:",
        "Events:",
    ] {
        assert!(described.contains(needle), "{needle}: {described}");
    }
    let events = api.list("events.k8s.io/v1", "Event");
    let reason = events
        .iter()
        .find(|e| e["regarding"]["name"] == "api")
        .and_then(|e| e["reason"].as_str())
        .expect("the operator recorded an Event");
    let after_events = &described[described.find("Events:").unwrap()..];
    assert!(after_events.contains(reason), "{reason}: {described}");

    // The plugin, found by kubectl on PATH.
    let plugins = kubectl.ok(&["plugin", "list"]).await;
    assert!(plugins.contains("kubectl-prescaler"), "{plugins}");
    let why = kubectl.ok(&["prescaler", "why", "api", "-n", NS]).await;
    assert!(why.contains("PredictiveScaler shop/api"), "{why}");
    let plan = kubectl
        .ok(&[
            "prescaler",
            "plan",
            "api",
            "-n",
            NS,
            "--prometheus-url",
            &prom.url(),
            "--utc",
        ])
        .await;
    assert!(
        plan.contains("PredictiveScaler shop/api scales Deployment api"),
        "{plan}"
    );
    assert!(plan.contains("Plan from"), "{plan}");
    // A usage error is the plugin's exit code 2, passed through by kubectl.
    let out = kubectl.run(&["prescaler", "plan", "api", "-n", NS]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
