//! The operator's container image, built by `scripts/image.sh` from the `prescaler` this test
//! suite built, and run with podman (Debian's buildah and podman, as root: `scripts/test.sh`
//! installs them): it prints its version, replays the demo on a read-only root file system with
//! no network, and runs the operator from inside the container against the fake Kubernetes API
//! and a real Prometheus on the host's network until the scaler is Ready and `/readyz` answers.
//! No container outlives a test: each is removed (`podman rm -f`) when its guard drops.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DurationRound, Utc};
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::{condition, deployment, eventually, scaler};
use support::prometheus::{TestPrometheus, samples};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// podman with the project's container settings (storage in target/containers, runc, no
/// default ulimits), as `scripts/containers-env.sh` writes them.
fn podman() -> Command {
    let home = repo("target/containers");
    let mut c = Command::new("podman");
    c.env("CONTAINERS_STORAGE_CONF", home.join("storage.conf"))
        .env("CONTAINERS_CONF", home.join("containers.conf"));
    c
}

fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (scripts/test.sh installs podman)"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The image, built once for this test binary from the `prescaler` cargo built with it.
fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tag = format!("localhost/prescaler:test-{}", std::process::id());
        let out = run(Command::new(repo("scripts/image.sh")).args([
            "--binary",
            env!("CARGO_BIN_EXE_prescaler"),
            "--tag",
            &tag,
        ]));
        let report = String::from_utf8_lossy(&out.stdout);
        eprintln!("{report}");
        // The size the README promises (≤ 40 MB), from the script's own report.
        let mb: u64 = report
            .lines()
            .find_map(|l| l.split_once(": ")?.1.split(" MB").next()?.parse().ok())
            .unwrap_or_else(|| panic!("no size in {report}"));
        assert!(mb <= 40, "the image is {mb} MB");
        tag
    })
}

/// Removes the container when dropped (also when the test fails).
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "2", &self.0]).output();
    }
}

fn container_name(what: &str) -> String {
    format!("prescaler-test-{what}-{}", std::process::id())
}

#[test]
fn the_image_is_small_non_root_and_shell_free() {
    let tag = image();
    let out = run(podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        tag,
        "--version",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("prescaler {}", env!("CARGO_PKG_VERSION"))
    );
    let inspect = run(podman().args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        tag,
    ]));
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        r#"65532:65532 ["/usr/local/bin/prescaler"] ["run"]"#
    );
    // glibc's allocator held about 70 MiB more at 10 000 scalers with an arena per thread, and
    // more again when its mmap threshold rose (docs/benchmarks.md): the image sets both.
    let env = run(podman().args(["image", "inspect", "--format", "{{json .Config.Env}}", tag]));
    for (name, value) in support::ALLOCATOR_ENV {
        assert!(
            String::from_utf8_lossy(&env.stdout).contains(&format!("{name}={value}")),
            "{name}: {}",
            String::from_utf8_lossy(&env.stdout)
        );
    }
    // The Dockerfile (for machines that can pull a base image) is the same recipe: its final
    // stage says the same user, entrypoint and command.
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    assert!(last_stage.starts_with("scratch"), "{last_stage}");
    for line in [
        "USER 65532:65532",
        r#"ENTRYPOINT ["/usr/local/bin/prescaler"]"#,
        r#"CMD ["run"]"#,
    ]
    .into_iter()
    .map(String::from)
    .chain(support::ALLOCATOR_ENV.map(|(n, v)| format!("ENV {n}={v}")))
    {
        assert!(
            last_stage.lines().any(|l| l == line),
            "{line}: {last_stage}"
        );
    }
    // No shell to exec into: the image holds the binary, its libraries and the CA bundle only.
    let shell = podman()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            tag,
            "-c",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!shell.status.success(), "the image has a shell");
}

#[test]
fn the_demo_backtest_runs_in_the_container_on_a_read_only_root() {
    let tag = image();
    let examples = format!("{}:/examples:ro", repo("examples").display());
    let out = run(podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "-v",
        &examples,
        "--workdir",
        "/examples",
        tag,
        "backtest",
        "--trace",
        "demo-trace.csv",
        "--spec",
        "checkout.yaml",
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    for strategy in ["prescaler", "hpa100", "hpa80", "oracle"] {
        assert!(
            table.lines().any(|l| l.starts_with(strategy)),
            "{strategy}: {table}"
        );
    }
    // The same numbers as the binary outside the container.
    let outside = run(Command::new(env!("CARGO_BIN_EXE_prescaler"))
        .current_dir(repo("examples"))
        .args([
            "backtest",
            "--trace",
            "demo-trace.csv",
            "--spec",
            "checkout.yaml",
        ]));
    assert_eq!(table, String::from_utf8_lossy(&outside.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_in_the_container_reaches_ready_against_the_api_and_prometheus() {
    let tag = image();
    // A real Prometheus with two days of a steady load, and the fake API on 127.0.0.1: the
    // container shares the host's network, as a pod reaches its API server and Prometheus.
    let now = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap();
    let prom = TestPrometheus::start(&[(
        "web",
        samples(
            now - chrono::Duration::days(2),
            now - chrono::Duration::minutes(2),
            chrono::Duration::minutes(1),
            |_| 100.0,
        ),
    )]);
    prom.set_live("web", Some(100.0));
    prom.wait_for_live("web", 100.0);
    let api = FakeApi::new();
    api.put(deployment("web", 2));
    api.put(scaler("web", "web", json!({ "mode": "Auto" })));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = container_name("run");
    let _container = Container(name.clone());
    let mount = format!("{}:/etc/prescaler/kubeconfig:ro", kubeconfig.display());
    run(podman().args([
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "-v",
        &mount,
        "-e",
        "KUBECONFIG=/etc/prescaler/kubeconfig",
        tag,
        "run",
        "--prometheus-url",
        &prom.url(),
        "--no-leader-election",
        "--sync-period",
        "5s",
        "--log-format",
        "text",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]));
    let logs = || {
        let out = podman().args(["logs", &name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    eventually(
        90,
        "the scaler Ready, from the operator in the container",
        || match condition(&api, "web", "Ready") {
            Some((s, _, _)) if s == "True" => Ok(()),
            other => Err(format!("{other:?}\n{}", logs())),
        },
    )
    .await;
    // Its own probe: leading (no election) with its watches synced.
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let ready = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            use std::io::{Read, Write};
            s.write_all(b"GET /readyz HTTP/1.0\r\nHost: x\r\n\r\n")
                .ok()?;
            let mut text = String::new();
            s.read_to_string(&mut text).ok()?;
            Some(text)
        })
        .await
        .unwrap();
        if ready
            .as_deref()
            .is_some_and(|t| t.starts_with("HTTP/1.0 200") || t.starts_with("HTTP/1.1 200"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz: {ready:?}\n{}", logs());
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
    let log = logs();
    assert!(
        log.contains("connected to the Kubernetes API server"),
        "{log}"
    );
}
