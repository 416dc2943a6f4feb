//! The Prometheus source against a real Prometheus (see `support/prometheus.rs`).

use crate::support;

use chrono::{Duration, DurationRound, Utc};
use prescaler::adapters::history::{HistoryCache, RangeSource};
use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
use prescaler::planning::planner::HistoryNeeds;
use support::prometheus::{METRIC, TestPrometheus, samples};

fn needs(span: Duration, fine: Duration) -> HistoryNeeds {
    HistoryNeeds { span, fine }
}

fn load(t: chrono::DateTime<Utc>) -> f64 {
    // A daily wave, distinct at every minute so that misplaced samples show.
    let minute = (t.timestamp() / 60).rem_euclid(1440) as f64;
    100.0 + minute / 10.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_read_in_chunks_then_incrementally() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let start = now - Duration::days(8);
    let history = samples(
        start,
        now - Duration::minutes(2),
        Duration::minutes(1),
        load,
    );
    let prom = TestPrometheus::start(&[("checkout", history)]);
    prom.set_live("checkout", Some(777.0));
    prom.wait_for_live("checkout", 777.0);
    let client = Prometheus::new(&PrometheusConfig::new(prom.url())).unwrap();
    let query = format!("sum({METRIC})");

    // 8 days at one minute is 11,520 points: over the 10,000 one query may carry.
    let from = start + Duration::minutes(1);
    let all = client
        .range(
            &query,
            from,
            now - Duration::minutes(3),
            Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 11_517, "every minute, across the chunk boundary");
    assert!(
        all.iter().all(|(t, v)| *v == load(*t)),
        "each sample on its own minute"
    );
    assert!(
        all.windows(2)
            .all(|w| w[1].0 - w[0].0 == Duration::minutes(1))
    );

    // The grid ends at the last whole minute; a minute on, that point has seen the live value.
    let mut cache = HistoryCache::new(&query, needs(Duration::days(7), Duration::hours(56)));
    let first = cache
        .refresh(&client, Utc::now() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        first.queries, 3,
        "an instant probe, and the week at one-minute steps in two chunks: {first:?}"
    );
    let h = cache.history().unwrap();
    assert_eq!(
        h.start().timestamp() % 300,
        0,
        "coarse blocks are aligned to 5 minutes"
    );
    assert!(h.len() >= 7 * 1440, "{} minutes", h.len());
    let recent = h.index_at_or_before(now - Duration::hours(30)).unwrap();
    assert_eq!(
        h.values()[recent] as f32,
        load(h.time(recent)) as f32,
        "recent history at full resolution"
    );
    let old = h.index_at_or_before(now - Duration::days(5)).unwrap();
    let block = old - old % 5;
    let mean = (block..block + 5).map(|i| load(h.time(i))).sum::<f64>() / 5.0;
    for i in block..block + 5 {
        assert_eq!(
            h.values()[i] as f32,
            mean as f32,
            "older history as 5-minute means"
        );
    }
    assert_eq!(
        *h.values().last().unwrap(),
        777.0,
        "the newest point is the live value"
    );

    prom.set_live("checkout", Some(888.0));
    prom.wait_for_live("checkout", 888.0);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let second = cache
        .refresh(&client, Utc::now() + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(second.queries, 1);
    assert!(
        second.samples <= 4,
        "only the newest minutes are read again: {second:?}"
    );
    let h2 = cache.history().unwrap();
    assert_eq!(*h2.values().last().unwrap(), 888.0);
    assert!(
        h2.len().abs_diff(h.len()) <= 6,
        "what leaves the span is dropped"
    );
    assert!(
        cache.held_bytes() < 60_000,
        "{} bytes for a week",
        cache.held_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_failures_are_explained() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let prom = TestPrometheus::start(&[(
        "checkout",
        samples(
            now - Duration::hours(3),
            now - Duration::minutes(2),
            Duration::minutes(1),
            load,
        ),
    )]);
    prom.set_live("checkout", Some(42.0));
    prom.set_live("search", Some(8.0));
    prom.wait_for_live("search", 8.0);
    let client = Prometheus::new(&PrometheusConfig::new(prom.url())).unwrap();
    // Past this second: the series of "search" exists only since its first scrape, and the
    // last evaluation must come after it.
    let (from, to) = (now - Duration::hours(1), Utc::now() + Duration::minutes(1));
    let range = |q: String| {
        let client = &client;
        async move { client.range(&q, from, to, Duration::minutes(1)).await }
    };

    let nothing = range(format!("sum({METRIC}{{service=\"none\"}})"))
        .await
        .unwrap();
    assert!(nothing.is_empty(), "no series is no measurement, not zero");
    let several = range(METRIC.to_string()).await.unwrap_err().to_string();
    assert!(
        several.contains("returned 2 series") && several.contains("sum("),
        "{several}"
    );
    // The history's first read is an instant probe: a query of several series is refused
    // before any range read asks for its weeks (a minute ahead, as above: "search" is new).
    let mut cache = HistoryCache::new(METRIC, needs(Duration::hours(2), Duration::hours(2)));
    let probed = cache
        .refresh(&client, Utc::now() + Duration::minutes(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(probed.contains("returned 2 series"), "{probed}");
    assert_eq!(client.series_count(METRIC, to).await.unwrap(), 2);
    assert_eq!(client.series_count("1 + 1", to).await.unwrap(), 1);
    assert_eq!(
        client
            .series_count(&format!("{METRIC}{{service=\"none\"}}"), to)
            .await
            .unwrap(),
        0
    );
    let bad = range("sum(".into()).await.unwrap_err().to_string();
    // Named by its URL: beside a long-term store, the SRE must know which endpoint refused.
    assert!(
        bad.contains(&format!("Prometheus at {} refused it", prom.url())),
        "{bad}"
    );

    // Not-a-number and negative values are not load: kept as missing, and counted.
    for query in ["0/0", "-1 * sum(shop_requests_per_second)"] {
        let mut cache = HistoryCache::new(query, needs(Duration::hours(2), Duration::hours(2)));
        let refresh = cache.refresh(&client, Utc::now()).await.unwrap();
        assert!(refresh.rejected > 50, "{query}: {refresh:?}");
        let h = cache.history().unwrap();
        assert!(h.values().iter().all(|v| v.is_nan()), "{query}");
    }

    // A query ending in a comment still reads its coarse history.
    let mut cache = HistoryCache::new(
        format!("sum({METRIC}) # the shop"),
        needs(Duration::days(3), Duration::days(1)),
    );
    cache.refresh(&client, Utc::now()).await.unwrap();
    assert!(
        cache
            .history()
            .unwrap()
            .values()
            .iter()
            .any(|v| v.is_finite())
    );

    let unreachable = Prometheus::new(&PrometheusConfig::new("http://127.0.0.1:1")).unwrap();
    let down = unreachable
        .range("up", from, to, Duration::minutes(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        down.contains("Prometheus at http://127.0.0.1:1 could not be reached"),
        "{down}"
    );
}

/// Prometheus behind TLS (a self-signed CA made with openssl) and basic auth (a bcrypt hash of
/// "scale-ahead", made once with Python's bcrypt): the credentials and the CA bundle reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_are_used() {
    use support::prometheus::WebConfig;
    let web = WebConfig {
        yaml: "tls_server_config: { cert_file: '{dir}/server.crt', key_file: '{dir}/server.key' }\n\
               basic_auth_users: { prescaler: '$2b$04$L9CkROkQ9bEMcQFFz35ChOXuzCPvHkd3CpAkjACNnN.qv7B/ef9/m' }\n"
            .into(),
        prepare: Box::new(|dir| {
            // A CA, and a server certificate it signs (webpki refuses a CA as the server's).
            let openssl = |args: &[&str]| {
                let out = std::process::Command::new("openssl")
                    .args(args)
                    .current_dir(dir)
                    .output()
                    .expect("run openssl");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            };
            openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA"]
                .iter()
                .copied()
                .chain(["-keyout", "ca.key", "-out", "ca.crt"])
                .collect::<Vec<_>>());
            openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"]);
            std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
            openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt"]);
        }),
    };
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let prom = TestPrometheus::start_with(
        &[(
            "checkout",
            samples(
                now - Duration::hours(2),
                now - Duration::minutes(2),
                Duration::minutes(1),
                load,
            ),
        )],
        Some(&web),
    );
    let query = format!("sum({METRIC})");
    async fn read_from(
        client: &Prometheus,
        query: &str,
        now: chrono::DateTime<Utc>,
    ) -> prescaler::adapters::Result<Vec<(chrono::DateTime<Utc>, f64)>> {
        client
            .range(
                query,
                now - Duration::hours(1),
                now - Duration::minutes(3),
                Duration::minutes(1),
            )
            .await
    }
    let read = |client| read_from(client, &query, now);
    let password = prom.dir().join("password");
    std::fs::write(&password, "scale-ahead\n").unwrap();
    let mut cfg = PrometheusConfig::new(prom.url());
    cfg.ca_file = Some(prom.dir().join("ca.crt"));
    cfg.basic_auth = Some(("prescaler".into(), password.clone()));
    let client = Prometheus::new(&cfg).unwrap();
    let values = read(&client).await.unwrap();
    assert!(
        values.len() > 50 && values.iter().all(|(_, v)| *v >= 100.0),
        "{values:?}"
    );

    // The password file is read again when it changes: a rotated secret takes effect without a
    // restart (and a wrong one is refused).
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&password, "guess\n").unwrap();
    let refused = read(&client).await.unwrap_err().to_string();
    assert!(
        refused.contains("401") || refused.contains("Unauthorized"),
        "{refused}"
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&password, "scale-ahead\n").unwrap();
    assert!(
        read(&client).await.is_ok(),
        "the restored secret works again"
    );

    let mut untrusted = cfg.clone();
    untrusted.ca_file = None;
    let tls = read(&Prometheus::new(&untrusted).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        tls.contains("could not be reached") && tls.contains("certificate"),
        "{tls}"
    );
}

/// A Prometheus that accepts the connection and never answers: the query fails within its
/// timeout instead of holding the reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket); // read nothing, answer nothing
        }
    });
    let mut cfg = PrometheusConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.timeout = std::time::Duration::from_secs(1);
    let client = Prometheus::new(&cfg).unwrap();
    let now = Utc::now();
    let started = std::time::Instant::now();
    let err = client
        .range("up", now - Duration::hours(1), now, Duration::minutes(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("no answer in time") && err.contains("--prometheus-timeout"),
        "{err}"
    );
    held.abort();
}
