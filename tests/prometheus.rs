//! The Prometheus source against a real Prometheus (see `support/prometheus.rs`).

mod support;

use chrono::{Duration, DurationRound, Utc};
use prescaler::source::{HistoryCache, Prometheus, PrometheusConfig};
use support::prometheus::{METRIC, TestPrometheus, samples};

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
    let mut cache = HistoryCache::new(&query, Duration::days(7));
    let first = cache
        .refresh(&client, Utc::now() + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        first.queries, 2,
        "the coarse part and the fine part: {first:?}"
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
    let peak = (block..block + 5)
        .map(|i| load(h.time(i)))
        .fold(f64::MIN, f64::max);
    for i in block..block + 5 {
        assert_eq!(
            h.values()[i] as f32,
            peak as f32,
            "older history as 5-minute peaks"
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
async fn instant_values_and_failures_are_explained() {
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
    // Just after the scrape: an evaluation at a whole second before it would not see it yet.
    let at = Utc::now() + Duration::seconds(2);

    let total = client.instant(&format!("sum({METRIC})"), at).await.unwrap();
    assert_eq!(total, Some(50.0));
    let nothing = client
        .instant(&format!("sum({METRIC}{{service=\"none\"}})"), at)
        .await
        .unwrap();
    assert_eq!(nothing, None, "no series is no measurement, not zero");

    let several = client.instant(METRIC, at).await.unwrap_err().to_string();
    assert!(
        several.contains("returned 2 series") && several.contains("sum("),
        "{several}"
    );
    let nan = client.instant("0/0", at).await.unwrap_err().to_string();
    assert!(nan.contains("NaN"), "{nan}");
    let inf = client.instant("1/0", at).await.unwrap_err().to_string();
    assert!(inf.contains("inf"), "{inf}");
    let bad = client.instant("sum(", at).await.unwrap_err().to_string();
    assert!(bad.contains("Prometheus refused it"), "{bad}");

    let unreachable = Prometheus::new(&PrometheusConfig::new("http://127.0.0.1:1")).unwrap();
    let down = unreachable.instant("up", at).await.unwrap_err().to_string();
    assert!(down.contains("could not be reached"), "{down}");
}
