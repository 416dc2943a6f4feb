//! `prescaler`'s command line as a user meets it: one flag name for Prometheus everywhere
//! (`--prometheus-url`, with the operator's credential flags in the backtest too), PROMETHEUS_URL
//! in the environment not in the way of `--trace`, `--kubeconfig`/`--context` for `--scaler`, the
//! exit codes (0, 1 an error, 2 a usage error, as the plugin's), and each error saying what and
//! where: the unknown key's path, a duplicate timestamp, the cron field, the API server's
//! address — and an unreachable API server logged with backoff, not every 2 seconds.

use crate::support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, DurationRound, Utc};
use support::prometheus::{METRIC, TestPrometheus, WebConfig, samples};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn prescaler() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_prescaler"));
    c.env_remove("PROMETHEUS_URL").env_remove("KUBECONFIG");
    c
}

fn run(c: &mut Command) -> (Option<i32>, String, String) {
    let out: Output = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn demo_backtest() -> Command {
    let mut c = prescaler();
    c.arg("backtest")
        .arg("--trace")
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(repo("examples/checkout.yaml"));
    c
}

/// A kubeconfig whose server refuses connections (nothing listens on port 1).
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\n\
         clusters: [{ name: gone, cluster: { server: 'http://127.0.0.1:1' } }]\n\
         users: [{ name: u, user: {} }]\n\
         contexts: [{ name: gone, context: { cluster: gone, user: u, namespace: shop } }]\n\
         current-context: gone\n",
    )
    .unwrap();
    path
}

#[test]
fn prometheus_url_in_the_environment_does_not_break_a_trace_backtest() {
    let (code, out, err) = run(demo_backtest().env("PROMETHEUS_URL", "http://prometheus:9090"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("prescaler"), "{out}");
    // Both on the command line: a usage error, saying which.
    let (code, _, err) = run(demo_backtest().args(["--prometheus-url", "http://prometheus:9090"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--trace and --prometheus-url cannot be used together"),
        "{err}"
    );
    // Neither: a usage error naming both.
    let (code, _, err) = run(prescaler().args(["backtest", "--target-per-replica", "5"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--trace <FILE> or --prometheus-url <URL>"),
        "{err}"
    );
    // The old flag name is gone: one name in every command.
    let (code, _, err) = run(prescaler().args(["backtest", "--prometheus", "http://p:9090"]));
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn exit_codes_are_zero_one_and_two_as_documented() {
    let (code, out, _) = run(prescaler().arg("--help"));
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Exit codes: 0 success; 1 an error") && out.contains("2 a usage error"),
        "{out}"
    );
    let (code, _, _) = run(prescaler().arg("--version"));
    assert_eq!(code, Some(0));
    // Usage: an unknown flag, a run without Prometheus.
    let (code, _, _) = run(prescaler().args(["backtest", "--no-such-flag"]));
    assert_eq!(code, Some(2));
    let (code, _, err) = run(prescaler().arg("run"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--prometheus-url <URL> (or PROMETHEUS_URL) is required"),
        "{err}"
    );
    // A status refresh of 0 writes every change: it parses (the run stops at the missing URL);
    // one that is not a duration is a usage error naming the flag.
    let (code, _, err) = run(prescaler().args(["run", "--status-refresh", "0s"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--prometheus-url"), "{err}");
    let (code, _, err) = run(prescaler().args(["run", "--status-refresh", "soon"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--status-refresh"), "{err}");
    // Shards are held through Leases: without leader election they are refused, and so are
    // election durations out of client-go's order — before anything is contacted.
    let run_with = |extra: &[&str]| {
        let mut cmd = prescaler();
        cmd.args(["run", "--prometheus-url", "http://127.0.0.1:1"])
            .args(extra);
        run(&mut cmd)
    };
    let (code, _, err) = run_with(&["--shards", "2", "--no-leader-election"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("needs leader election"), "{err}");
    let (code, _, err) = run_with(&["--leader-elect-renew-deadline", "20s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--leader-elect-renew-deadline (20s) < --leader-elect-lease-duration (15s)"),
        "{err}"
    );
    let (code, _, err) = run_with(&["--shards", "65"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--shards"), "{err}");
    // An error: a file that is not there.
    let (code, _, err) = run(prescaler().args([
        "backtest",
        "--trace",
        "/nonexistent.csv",
        "--target-per-replica",
        "5",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("reading trace /nonexistent.csv"), "{err}");
    // The backtest and `run` take the same Prometheus flags.
    for sub in ["run", "backtest"] {
        let (_, help, _) = run(prescaler().args([sub, "--help"]));
        for flag in [
            "--prometheus-url",
            "--prometheus-bearer-token-file",
            "--prometheus-username",
            "--prometheus-password-file",
            "--prometheus-ca-file",
            "--prometheus-timeout",
            "--prometheus-max-response-bytes",
        ] {
            assert!(help.contains(flag), "prescaler {sub} has no {flag}");
        }
        // The byte limit's bounds are a usage error, in every command that reads Prometheus.
        let (code, _, err) = run(prescaler().args([
            sub,
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--prometheus-max-response-bytes",
            "1000",
        ]));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("1000 is outside 524288..=1073741824 bytes"),
            "{err}"
        );
    }
    let (_, help, _) =
        run(Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler")).args(["plan", "--help"]));
    for flag in [
        "--prometheus-url",
        "--prometheus-username",
        "--prometheus-password-file",
        "--prometheus-max-response-bytes",
        "--context",
        "--kubeconfig",
    ] {
        assert!(help.contains(flag), "kubectl prescaler plan has no {flag}");
    }
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler")).args([
        "plan",
        "api",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--prometheus-max-response-bytes",
        "4Mi",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"4Mi\" is not a number of bytes"), "{err}");
    // give-back (the chart's uninstall hook) lists its flags and the exit codes, and reaches the
    // cluster as the other commands do.
    let (code, help, _) = run(prescaler().args(["give-back", "--help"]));
    assert_eq!(code, Some(0));
    for flag in [
        "--stop-deployment",
        "--lease-name",
        "--lease-namespace",
        "--no-leader-election",
        "--wait",
        "--kubeconfig",
        "--context",
    ] {
        assert!(help.contains(flag), "prescaler give-back has no {flag}");
    }
    let (code, _, err) = run(prescaler().args(["give-back", "--wait", "soon"]));
    assert_eq!(code, Some(2), "{err}");
}

/// `prescaler run`, `prescaler backtest` and `kubectl prescaler plan|backtest` take a long-term
/// history store with credentials of its own; a credential without the store's URL, or a bound
/// out of range, is a usage error naming the flag.
#[test]
fn the_long_term_history_flags_are_the_prometheus_ones_for_a_second_endpoint() {
    let plugin = || Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler"));
    let helps = [
        ("prescaler run", run(prescaler().args(["run", "--help"])).1),
        (
            "prescaler backtest",
            run(prescaler().args(["backtest", "--help"])).1,
        ),
        (
            "kubectl prescaler plan",
            run(plugin().args(["plan", "--help"])).1,
        ),
        (
            "kubectl prescaler backtest",
            run(plugin().args(["backtest", "--help"])).1,
        ),
    ];
    for (command, help) in &helps {
        for flag in [
            "--prometheus-tenant",
            "--history-prometheus-url",
            "--history-prometheus-bearer-token-file",
            "--history-prometheus-username",
            "--history-prometheus-password-file",
            "--history-prometheus-ca-file",
            "--history-prometheus-timeout",
            "--history-prometheus-max-response-bytes",
            "--history-prometheus-tenant",
        ] {
            assert!(help.contains(flag), "{command} has no {flag}");
        }
    }
    // A trace is replayed as it is: a long-term store named with it is a mistake.
    let (code, _, err) = run(demo_backtest().args(["--history-prometheus-url", "http://t:9090"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--trace and --history-prometheus-url cannot be used together"),
        "{err}"
    );
    let (code, _, err) = run(demo_backtest().env("HISTORY_PROMETHEUS_URL", "http://t:9090"));
    assert_eq!(code, Some(0), "the environment's is run's: {err}");
    let live = ["run", "--prometheus-url", "http://127.0.0.1:9"];
    for (extra, names) in [
        (
            &["--history-prometheus-bearer-token-file", "/t"][..],
            "--history-prometheus-url",
        ),
        (
            &["--history-prometheus-username", "u"][..],
            "--history-prometheus-password-file",
        ),
        (
            &[
                "--history-prometheus-url",
                "http://127.0.0.1:9",
                "--history-prometheus-max-response-bytes",
                "1000",
            ][..],
            "1000 is outside",
        ),
        (
            &[
                "--history-prometheus-url",
                "http://127.0.0.1:9",
                "--history-prometheus-timeout",
                "soon",
            ][..],
            "--history-prometheus-timeout",
        ),
    ] {
        let (code, _, err) = run(prescaler().args(live).args(extra));
        assert_eq!(code, Some(2), "{extra:?}: {err}");
        assert!(err.contains(names), "{extra:?}: {err}");
    }
    // A URL that is none is refused at start, naming it (exit 1), before the API server is
    // waited for.
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(prescaler()
        .args(live)
        .args(["--listen", "127.0.0.1:0", "--no-leader-election"])
        .args(["--history-prometheus-url", "thanos:9090"])
        .env("KUBECONFIG", unreachable_kubeconfig(dir.path())));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("\"thanos:9090\" is not a usable URL"), "{err}");
}

#[test]
fn a_misspelled_required_field_names_the_key_and_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("typo.yaml");
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    assert!(text.contains("targetPerReplica:"));
    std::fs::write(
        &spec,
        text.replace("targetPerReplica:", "targetPerReplika:"),
    )
    .unwrap();
    let (code, _, err) = run(prescaler()
        .arg("backtest")
        .arg("--trace")
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(&spec));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("invalid spec.metric.targetPerReplika: unknown field in")
            && err.contains("(misspelled?)")
            && err.contains("at spec.metric: missing field `targetPerReplica`"),
        "{err}"
    );
}

#[test]
fn a_duplicate_timestamp_is_called_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("dup.csv");
    std::fs::write(
        &trace,
        "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:01:00Z,2\n2026-01-01T00:01:00Z,3\n",
    )
    .unwrap();
    let (code, _, err) = run(prescaler()
        .args(["backtest", "--target-per-replica", "5", "--trace"])
        .arg(&trace));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("line 4: duplicate timestamp 2026-01-01T00:01:00Z (also on line 3)"),
        "{err}"
    );
}

#[test]
fn a_bad_cron_names_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let (good, _) = text
        .split_once("schedule: \"")
        .expect("checkout.yaml has a schedule");
    let cases = [
        (
            "30 25 * * 1-5",
            "the hour field \"25\" is out of its range 0-23",
        ),
        (
            "61 * * * *",
            "the minute field \"61\" is out of its range 0-59",
        ),
        (
            "0 9 * 13 *",
            "the month field \"13\" is out of its range 1-12 or JAN-DEC",
        ),
        ("0 9 * *", "it has 4 fields, not 5"),
    ];
    for (schedule, message) in cases {
        let spec = dir.path().join("cron.yaml");
        let rest = text[good.len() + "schedule: \"".len()..]
            .split_once('"')
            .unwrap()
            .1;
        std::fs::write(&spec, format!("{good}schedule: \"{schedule}\"{rest}")).unwrap();
        let (code, _, err) = run(prescaler()
            .arg("backtest")
            .arg("--trace")
            .arg(repo("examples/demo-trace.csv"))
            .arg("--spec")
            .arg(&spec));
        assert_eq!(code, Some(1), "{schedule}: {err}");
        assert!(
            err.contains(".schedule: ") && err.contains(message),
            "{schedule}: {err}"
        );
    }
}

#[test]
fn scaler_from_the_cluster_takes_kubeconfig_and_context_and_names_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let backtest = |extra: &[&str]| {
        let mut c = prescaler();
        c.args([
            "backtest",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--scaler",
            "api",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(extra);
        run(&mut c)
    };
    let (code, _, err) = backtest(&["--context", "gone"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the Kubernetes API server at http://127.0.0.1:1/: unreachable")
            && err.contains("Connection refused"),
        "{err}"
    );
    let (code, _, err) = backtest(&["--context", "elsewhere"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("kubeconfig") && err.contains("elsewhere"),
        "{err}"
    );
    // give-back too (exit 1, the server named): nothing was given back.
    let (code, _, err) = run(prescaler()
        .args(["give-back", "--no-leader-election", "--kubeconfig"])
        .arg(&kubeconfig));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the Kubernetes API server at http://127.0.0.1:1/: unreachable"),
        "{err}"
    );
    // The plugin says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["why", "api"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the Kubernetes API server at http://127.0.0.1:1/: unreachable"),
        "{err}"
    );
}

#[test]
fn an_unreachable_api_server_is_logged_with_its_address_and_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let mut child = prescaler()
        .args([
            "run",
            "--prometheus-url",
            "http://127.0.0.1:9",
            "--no-leader-election",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(StdDuration::from_millis(8_500));
    child.kill().unwrap();
    child.wait().unwrap();
    let elapsed = started.elapsed();
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let tries: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "cannot reach the Kubernetes API server")
        .collect();
    // Tries at 0, 1, 3 and 7 s (backoff 1, 2, 4 s): four in 8.5 s, where a retry every 2 s
    // would have made five, every second nine.
    assert!(
        (3..=4).contains(&tries.len()),
        "{} tries in {elapsed:?}:\n{log}",
        tries.len()
    );
    for t in &tries {
        assert_eq!(t["address"], "http://127.0.0.1:1/", "{t}");
        assert!(
            t["error"].as_str().unwrap().contains("Connection refused"),
            "{t}"
        );
    }
    let delays: Vec<&str> = tries
        .iter()
        .map(|t| t["retry_in"].as_str().unwrap())
        .collect();
    assert_eq!(delays[..3], ["1s", "2s", "4s"], "{log}");
}

/// A Prometheus behind basic auth: the backtest reads it with the operator's credential flags,
/// and without them is refused, naming the query.
#[test]
fn the_backtest_reads_an_authenticated_prometheus() {
    let web = WebConfig {
        yaml: "basic_auth_users: { prescaler: '$2b$04$L9CkROkQ9bEMcQFFz35ChOXuzCPvHkd3CpAkjACNnN.qv7B/ef9/m' }\n".into(),
        prepare: Box::new(|_| {}),
    };
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let prom = TestPrometheus::start_with(
        &[(
            "api",
            samples(
                now - Duration::days(2),
                now - Duration::minutes(2),
                Duration::minutes(1),
                |t| 100.0 + 50.0 * f64::from(u8::from(t.timestamp() % 86_400 > 43_200)),
            ),
        )],
        Some(&web),
    );
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "scale-ahead\n").unwrap();
    let spec = dir.path().join("api.yaml");
    std::fs::write(
        &spec,
        format!(
            "apiVersion: prescaler.dev/v1alpha1\nkind: PredictiveScaler\nmetadata: {{ name: api, namespace: shop }}\n\
             spec:\n  scaleTargetRef: {{ kind: Deployment, name: api }}\n  maxReplicas: 20\n\
             \x20 metric: {{ query: 'sum({METRIC})', targetPerReplica: 50 }}\n"
        ),
    )
    .unwrap();
    let eval_start = (now - Duration::hours(12)).to_rfc3339();
    let backtest = |credentials: bool| {
        let mut c = prescaler();
        c.args(["backtest", "--prometheus-url", &prom.url(), "--range", "2d"])
            .args(["--eval-start", &eval_start])
            .arg("--spec")
            .arg(&spec);
        if credentials {
            c.args([
                "--prometheus-username",
                "prescaler",
                "--prometheus-password-file",
            ])
            .arg(&password);
        }
        run(&mut c)
    };
    let (code, out, err) = backtest(true);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("query \"sum(shop_requests_per_second)\""),
        "{out}"
    );
    let (code, _, err) = backtest(false);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("sum(shop_requests_per_second)")
            && (err.contains("401") || err.contains("Unauthorized")),
        "{err}"
    );
}

/// A server standing for Prometheus or a store behind a multi-tenant gateway: it answers every
/// request with an empty matrix and keeps each request's head. Its URL and those heads.
fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut head, mut line) = (String::new(), String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                head.push_str(&line);
                line.clear();
            }
            kept.lock().unwrap().push(head.to_ascii_lowercase());
            let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, heads)
}

/// `--prometheus-tenant` and `--history-prometheus-tenant` reach their own endpoint as
/// `X-Scope-OrgID` (Mimir, Cortex, a Thanos tenancy proxy), on every request and not the other's;
/// a value a header cannot carry is refused at start-up, naming the flag, in every command.
#[test]
fn each_endpoint_is_sent_its_own_tenant() {
    let (live, live_heads) = recording_server();
    let (store, store_heads) = recording_server();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("web.yaml");
    std::fs::write(
        &spec,
        "apiVersion: prescaler.dev/v1alpha1\nkind: PredictiveScaler\nmetadata: { name: web }\n\
         spec:\n  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }\n  \
         maxReplicas: 10\n  metric: { query: 'sum(x)', targetPerReplica: 10 }\n",
    )
    .unwrap();
    let (code, _, err) = run(prescaler()
        .args([
            "backtest",
            "--prometheus-url",
            &live,
            "--prometheus-tenant",
            "live-team",
        ])
        .args(["--history-prometheus-url", &store])
        .args(["--history-prometheus-tenant", "team-a|team-b", "--spec"])
        .arg(&spec));
    // Both answered nothing: there is nothing to replay, but every request was made.
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nothing to replay"), "{err}");
    let tenant_of = |head: &String| {
        head.lines()
            .find_map(|l| l.strip_prefix("x-scope-orgid: "))
            .map(str::to_string)
    };
    let live_heads = live_heads.lock().unwrap().clone();
    let store_heads = store_heads.lock().unwrap().clone();
    // The probe and the newest hours from Prometheus; the weeks from the store.
    assert!(live_heads.len() >= 2, "{live_heads:?}");
    assert!(!store_heads.is_empty(), "{store_heads:?}");
    for head in &live_heads {
        assert_eq!(tenant_of(head).as_deref(), Some("live-team"), "{head}");
    }
    for head in &store_heads {
        assert_eq!(tenant_of(head).as_deref(), Some("team-a|team-b"), "{head}");
    }

    // Refused at start-up with what is wrong, before anything is read, in every command.
    let bad = [
        ("--prometheus-tenant", "team a"),
        ("--history-prometheus-tenant", "t\u{e9}am"),
        ("--prometheus-tenant", ""),
    ];
    for (flag, value) in bad {
        for sub in ["run", "backtest"] {
            let (code, _, err) = run(prescaler()
                .args([sub, "--prometheus-url", "http://127.0.0.1:9"])
                .args([
                    "--history-prometheus-url",
                    "http://127.0.0.1:9",
                    flag,
                    value,
                ]));
            assert_eq!(code, Some(2), "{sub} {flag} {value:?}: {err}");
            assert!(err.contains(flag), "{sub} {flag} {value:?}: {err}");
        }
    }
    let long = "t".repeat(1025);
    let (code, _, err) = run(Command::new(env!("CARGO_BIN_EXE_kubectl-prescaler")).args([
        "plan",
        "web",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--prometheus-tenant",
        &long,
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("1025 bytes long"), "{err}");
    let (code, _, err) = run(prescaler().args([
        "run",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--prometheus-tenant",
        "team a",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("printable ASCII without spaces"), "{err}");
}
