//! A real Prometheus for tests: Debian's `prometheus` and `promtool` (installed by
//! `scripts/test.sh`), a temporary data dir with weeks of history backfilled by promtool, and a
//! tiny exporter for the live value that Prometheus scrapes every second. The recipe and its
//! pitfalls: the default 15-day retention deletes backfilled weeks at start-up (so a long one is
//! set); promtool takes timestamps in seconds (milliseconds land in the far future); and promtool
//! re-reads a whole file per 2-hour block, so history is written one file per UTC day.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};

/// Samples of one series, at whole seconds.
pub type Series = Vec<(DateTime<Utc>, f64)>;

/// The metric every test series uses; the query `sum(METRIC)` is the total load.
pub const METRIC: &str = "shop_requests_per_second";

/// A running Prometheus with its data and exporter. Killed when dropped.
pub struct TestPrometheus {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    exporter: Exporter,
    tls: bool,
}

/// A `--web.config.file` for Prometheus and what must be on disk for it.
pub struct WebConfig {
    pub yaml: String,
    /// Writes certificates and keys into the temporary directory before Prometheus starts.
    pub prepare: Box<dyn Fn(&Path)>,
}

impl TestPrometheus {
    /// Backfills `history` (series label → samples at whole seconds) and starts Prometheus,
    /// scraping an exporter whose values `set_live` changes.
    pub fn start(history: &[(&str, Series)]) -> Self {
        Self::start_with(history, None)
    }

    /// One series, `service`, at a constant `load`: `span` of history at one minute up to two
    /// minutes ago (before the exporter's first scrape), and live now; returned once Prometheus
    /// answers with the live value.
    pub fn steady(service: &str, load: f64, span: chrono::Duration) -> Self {
        let now = Utc::now()
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap();
        let prom = Self::start(&[(
            service,
            samples(
                now - span,
                now - chrono::Duration::minutes(2),
                chrono::Duration::minutes(1),
                |_| load,
            ),
        )]);
        prom.set_live(service, Some(load));
        prom.wait_for_live(service, load);
        prom
    }

    /// Like `start`, with Prometheus' `--web.config.file` (TLS, basic auth) holding `web_config`;
    /// `{dir}` in it stands for the temporary directory, where `write_file` can put certificates.
    pub fn start_with(history: &[(&str, Series)], web_config: Option<&WebConfig>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(web) = web_config {
            (web.prepare)(dir.path());
            std::fs::write(
                dir.path().join("web.yml"),
                web.yaml.replace("{dir}", &dir.path().display().to_string()),
            )
            .unwrap();
        }
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        backfill(dir.path(), &data, history);
        let exporter = Exporter::start();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
                 scrape_configs:\n\
                 - {{ job_name: exporter, static_configs: [{{ targets: ['127.0.0.1:{}'] }}], \
                      metric_relabel_configs: [{{ action: labeldrop, regex: 'job|instance' }}] }}\n",
                exporter.port
            ),
        )
        .unwrap();
        let mut prometheus = Self {
            dir,
            port,
            child: None,
            exporter,
            tls: web_config.is_some_and(|w| w.yaml.contains("tls_server_config")),
        };
        prometheus.restart();
        prometheus
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The Prometheus process's pid (the child of its watchdog shell), while it runs.
    pub fn pid(&self) -> Option<u32> {
        let shell = self.child.as_ref()?.id();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The temporary directory (certificates live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the live value of a series (by its `service` label); `None` removes it.
    pub fn set_live(&self, service: &str, value: Option<f64>) {
        let mut values = self.exporter.values.lock().unwrap();
        values.retain(|(s, _)| s != service);
        if let Some(v) = value {
            values.push((service.to_string(), v));
        }
    }

    /// Kills Prometheus, as a crash or an outage would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The watchdog and Prometheus share a process group: end both.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts Prometheus (again) on the same port and data, and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill();
        let log_path = self.dir.path().join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        // Prometheus runs under a small shell watchdog that ends it when this test process is
        // gone: a `static` Prometheus shared by a test binary's tests is never dropped, and
        // must not outlive the binary.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(
                "\"$@\" & p=$!; \
                 while kill -0 \"$OWNER\" 2>/dev/null && kill -0 \"$p\" 2>/dev/null; do sleep 0.3; done; \
                 kill \"$p\" 2>/dev/null; wait \"$p\"",
            )
            .arg("prometheus-watchdog")
            .arg(binary("prometheus"))
            .env("OWNER", std::process::id().to_string())
            .process_group(0);
        let web = self.dir.path().join("web.yml");
        if web.exists() {
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let child = command
            .arg(format!(
                "--config.file={}",
                self.dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            // The default 15 d retention would delete the backfilled weeks at start-up.
            .arg("--storage.tsdb.retention.time=3650d")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            // Over TLS or behind auth a plain GET cannot tell: Prometheus' log can.
            let ready = if web.exists() {
                std::fs::read_to_string(&log_path)
                    .is_ok_and(|l| l.contains("Server is ready to receive web requests"))
            } else {
                http_get(self.port, "/-/ready").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Prometheus did not become ready: {}",
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
        );
    }

    /// Waits until the live value of `service` is queryable (a scrape has happened).
    pub fn wait_for_live(&self, service: &str, value: f64) {
        let query = format!("{METRIC}{{{}}}", labels(service));
        let path = format!("/api/v1/query?query={}", urlencode(&query));
        let want = format!("\"{value}\"");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(self.port, &path).is_some_and(|r| r.contains(&want)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("live value {value} of {service} never became queryable");
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes one OpenMetrics file per UTC day (promtool re-reads a whole file per 2-hour block, so
/// one big file is slow) and converts them two at a time.
fn backfill(dir: &Path, data: &Path, history: &[(&str, Series)]) {
    use std::collections::BTreeMap;
    let mut days: BTreeMap<chrono::NaiveDate, String> = BTreeMap::new();
    for (service, samples) in history {
        for (t, v) in samples {
            let day = days.entry(t.date_naive()).or_default();
            // Timestamps in seconds: promtool silently takes milliseconds as seconds.
            day.push_str(&format!(
                "{METRIC}{{{}}} {v} {}\n",
                labels(service),
                t.timestamp()
            ));
        }
    }
    let files: Vec<PathBuf> = days
        .into_iter()
        .map(|(day, body)| {
            let path = dir.join(format!("backfill-{day}.om"));
            // Samples of one series must be in time order; they are, per service; group by series.
            let mut lines: Vec<&str> = body.lines().collect();
            lines.sort_by_key(|l| l.split(' ').next().unwrap_or_default().to_string());
            let mut f = std::fs::File::create(&path).unwrap();
            writeln!(f, "# TYPE {METRIC} gauge").unwrap();
            for l in lines {
                writeln!(f, "{l}").unwrap();
            }
            writeln!(f, "# EOF").unwrap();
            path
        })
        .collect();
    let queue = Arc::new(Mutex::new(files));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            let data = data.to_path_buf();
            std::thread::spawn(move || {
                while let Some(file) = queue.lock().unwrap().pop() {
                    let out = Command::new(binary("promtool"))
                        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
                        .arg(&file)
                        .arg(&data)
                        .output()
                        .expect("run promtool");
                    assert!(
                        out.status.success(),
                        "promtool failed on {}: {}",
                        file.display(),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("backfill worker");
    }
}

/// Serves `/metrics` with the current live values in the Prometheus text format.
struct Exporter {
    port: u16,
    values: Arc<Mutex<Vec<(String, f64)>>>,
}

impl Exporter {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let values: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
        let shared = values.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head; its content does not matter.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut body = format!("# TYPE {METRIC} gauge\n");
                for (service, v) in shared.lock().unwrap().iter() {
                    body.push_str(&format!("{METRIC}{{{}}} {v}\n", labels(service)));
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { port, values }
    }
}

/// A series' labels: `service="<name>"`, or the name itself when it is a label set already
/// (`service="pay",namespace="payments"`).
fn labels(service: &str) -> String {
    if service.contains('=') {
        service.to_string()
    } else {
        format!("service=\"{service}\"")
    }
}

fn binary(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("`{name}` is not installed: scripts/test.sh installs Debian's prometheus package");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).ok()?;
    Some(out)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Samples every `step` over `[start, end)` of `load(t)`.
pub fn samples(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: chrono::Duration,
    load: impl Fn(DateTime<Utc>) -> f64,
) -> Vec<(DateTime<Utc>, f64)> {
    let mut out = Vec::new();
    let mut t = start;
    while t < end {
        out.push((t, load(t)));
        t += step;
    }
    out
}
