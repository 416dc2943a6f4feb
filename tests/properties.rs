//! Properties over arbitrary input: whatever a tenant writes and whatever samples arrive,
//! validation answers without panicking, and the planner never panics and never leaves
//! `[minReplicas, maxReplicas]`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use prescaler::api::{
    Behavior, PeakWindow, PolicyType, PredictiveScalerSpec, ScalingPolicy, ScalingRules,
    SelectPolicy,
};
use prescaler::planning::forecast::{History, ModelConfig};
use prescaler::planning::plan::Reason;
use prescaler::planning::planner::Planner;
use proptest::prelude::*;

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("6m".to_string()),
        Just("28d".to_string()),
        Just("1h30m".to_string()),
        "[0-9]{1,12}(y|w|d|h|m|s|ms)",
        "[0-9a-z ]{0,8}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sum(rate(http_requests_total[2m]))".to_string()),
        Just("sum(load) # a comment".to_string()),
        "[a-z_(){}\\[\\]=\" 0-9]{0,40}",
        (1usize..200).prop_map(|n| format!("{}1{}", "(".repeat(n), ")".repeat(n))),
    ]
}

fn window() -> impl Strategy<Value = PeakWindow> {
    (
        prop_oneof![
            Just("0 11 * * 1-5".to_string()),
            Just("*/5 * * * *".to_string()),
            Just("0 0 30 2 *".to_string()),
            "[0-9*/ ,-]{0,20}",
        ],
        duration_text(),
        prop_oneof![
            Just("Europe/Berlin".to_string()),
            Just("UTC".to_string()),
            "[A-Za-z/_]{0,20}"
        ],
        any::<i32>(),
    )
        .prop_map(|(schedule, duration, time_zone, min_replicas)| PeakWindow {
            name: "w".into(),
            schedule,
            duration: duration.as_str().into(),
            time_zone,
            min_replicas: Some(min_replicas),
            max_replicas: None,
        })
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    (
        any::<i32>(),
        proptest::collection::vec(
            (any::<bool>(), any::<i32>(), any::<i32>()).prop_map(|(pods, value, period)| {
                ScalingPolicy {
                    type_: if pods {
                        PolicyType::Pods
                    } else {
                        PolicyType::Percent
                    },
                    value,
                    period_seconds: period,
                }
            }),
            0..3,
        ),
        prop_oneof![
            Just(SelectPolicy::Max),
            Just(SelectPolicy::Min),
            Just(SelectPolicy::Disabled)
        ],
    )
        .prop_map(|(window, policies, select)| ScalingRules {
            stabilization_window_seconds: window,
            policies,
            select_policy: select,
        })
}

prop_compose! {
    fn spec()(
        min in prop_oneof![1i32..20, any::<i32>()],
        max in prop_oneof![1i32..200, any::<i32>()],
        c in prop_oneof![0.5f64..500.0, any::<f64>()],
        query in query(),
        history in duration_text(),
        lead in duration_text(),
        windows in proptest::collection::vec(window(), 0..3),
        up in rules(),
        down in rules(),
        objective in prop_oneof![0.01f64..=50.0, any::<f64>()],
    ) -> PredictiveScalerSpec {
        let mut s = PredictiveScalerSpec::new(c, max);
        s.min_replicas = min;
        s.metric.query = query;
        s.forecast.history = history.as_str().into();
        s.forecast.lead_time = lead.as_str().into();
        s.objective.max_underprovisioned_percent = objective;
        s.peak_windows = windows;
        s.behavior = Behavior { scale_up: up, scale_down: down };
        s
    }
}

prop_compose! {
    /// A spec the API server would accept: every field within its bounds, arbitrary within them.
    fn valid_spec()(
        min in 1i32..20,
        extra in 0i32..200,
        c in 0.5f64..500.0,
        history in prop_oneof![Just("1h"), Just("2d"), Just("8d"), Just("28d"), Just("35d")],
        lead in 1i64..40,
        windows in proptest::collection::vec(
            (0u32..60, 0u32..24, 1i64..600, 1i32..300, any::<bool>()),
            0..3,
        ),
        up in proptest::collection::vec((any::<bool>(), 1i32..400, 1i32..1800), 0..3),
        down in proptest::collection::vec((any::<bool>(), 1i32..100, 1i32..1800), 0..3),
        up_window in 0i32..3600,
        down_window in 0i32..3600,
        objective in 0.01f64..=50.0,
        headroom in 0i32..100,
    ) -> PredictiveScalerSpec {
        let policies = |list: Vec<(bool, i32, i32)>| {
            list.into_iter()
                .map(|(pods, value, period_seconds)| ScalingPolicy {
                    type_: if pods { PolicyType::Pods } else { PolicyType::Percent },
                    value,
                    period_seconds,
                })
                .collect()
        };
        let mut s = PredictiveScalerSpec::new(c, min + extra);
        s.min_replicas = min;
        s.metric.query = "sum(rate(http_requests_total[2m]))".into();
        s.forecast.history = history.into();
        s.forecast.lead_time = format!("{lead}m").as_str().into();
        s.objective.max_underprovisioned_percent = objective;
        s.forecast.headroom_percent = headroom;
        s.peak_windows = windows
            .into_iter()
            .map(|(minute, hour, minutes, floor, berlin)| PeakWindow {
                name: "w".into(),
                schedule: format!("{minute} {hour} * * *"),
                duration: format!("{minutes}m").as_str().into(),
                time_zone: if berlin { "Europe/Berlin" } else { "UTC" }.into(),
                min_replicas: Some(floor),
                max_replicas: None,
            })
            .collect();
        s.behavior = Behavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: up_window,
                policies: policies(up),
                select_policy: SelectPolicy::Max,
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: down_window,
                policies: policies(down),
                select_policy: SelectPolicy::Max,
            },
        };
        s
    }
}

fn sample() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0f64..5000.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1e6),
        1 => Just(1e12),
        1 => Just(f64::MAX),
    ]
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).unwrap() // across a DST change in Europe
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn validation_answers_whatever_is_written(s in spec()) {
        // Ok or an error naming a field under `spec.`; never a panic.
        if let Err(e) = s.validate() {
            prop_assert!(e.to_string().contains("spec."), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn decisions_stay_within_the_bounds_whatever_the_samples(
        s in valid_spec(),
        samples in proptest::collection::vec(sample(), 60..240),
        repeat in 4usize..20,
        start in 1u32..50,
    ) {
        let spec = s.validate();
        prop_assert!(spec.is_ok(), "{spec:?}");
        let spec = spec.unwrap();
        // A day and more of minutes: the samples repeated, with one outage in the middle.
        let minutes = samples.len() * repeat;
        let values: Vec<f64> = (0..minutes).map(|m| samples[m % samples.len()]).collect();
        let history = History::new(t0(), Duration::minutes(1), values);
        let mut planner = Planner::new(spec.clone(), ModelConfig::default());
        let mut current = start;
        for m in 0..minutes {
            let now = t0() + Duration::minutes(m as i64);
            let outage = (minutes / 2..minutes / 2 + 40).contains(&m);
            let d = planner.decide((!outage).then_some(&history), current, now);
            prop_assert!(
                (spec.min_replicas..=spec.max_replicas).contains(&d.desired_replicas),
                "minute {m}: {} outside [{}, {}]: {d:?}",
                d.desired_replicas, spec.min_replicas, spec.max_replicas
            );
            prop_assert!((spec.min_replicas..=spec.max_replicas).contains(&d.floor_replicas));
            if !d.metrics_available {
                prop_assert_eq!(&d.reason, &Reason::Hold);
                prop_assert!(d.desired_replicas >= current.min(spec.max_replicas));
            }
            current = d.desired_replicas;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A window remembers the openings around the last instant it was asked about; whatever
    /// order it is asked in, it answers as croner does for each instant alone (DST zones
    /// included).
    #[test]
    fn a_windows_memory_answers_as_croner_does(
        schedule in prop::sample::select(vec!["*/7 * * * *", "30 2 * * *", "0 0 * 2 1#5", "15 1,3 * * 0", "0 9 * * 1-5", "59 23 L * *"]),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
        minutes in prop::collection::vec(0i64..(3 * 366 * 1440), 1..40),
        walk in any::<bool>(),
    ) {
        let spec: prescaler::api::PeakWindow = serde_json::from_value(serde_json::json!({
            "name": "w", "schedule": schedule, "duration": "1h", "timeZone": zone, "minReplicas": 3
        })).unwrap();
        let mut s = prescaler::api::PredictiveScalerSpec::new(10.0, 50);
        s.peak_windows = vec![spec];
        let remembered = s.validate().unwrap().peak_windows.remove(0);
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let mut at = start;
        for m in minutes {
            // Random instants, or a walk from opening to opening as the checks do.
            at = match remembered.opening_after(at) {
                Some(next) if walk => next,
                _ => start + Duration::minutes(m) + Duration::seconds(m % 60),
            };
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.opening_before(at), fresh.opening_before(at), "before {}", at);
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.opening_after(at), fresh.opening_after(at), "after {}", at);
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.is_open(at), fresh.is_open(at), "open {}", at);
        }
    }
}

// --- Namespace confinement (adapters::confine) ------------------------------------------------

use prescaler::adapters::confine::{confine_to_namespace, verify_confined};
use promql_parser::label::Matcher;
use promql_parser::parser::{Expr, parse};

/// Label values an attacker would write: every quote, backslashes, braces, commas, newlines,
/// control characters, Unicode, and whole selector-closing payloads.
fn hostile_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("`".to_string()),
        Just("\\".to_string()),
        Just("}".to_string()),
        Just("{".to_string()),
        Just(",".to_string()),
        Just("\n".to_string()),
        Just("\r".to_string()),
        Just("\t".to_string()),
        Just("\u{0}".to_string()),
        Just("\u{7f}".to_string()),
        Just("=~".to_string()),
        Just("#".to_string()),
        Just(" or ".to_string()),
        Just("é".to_string()),
        Just("🙂".to_string()),
        Just("\u{2028}".to_string()),
        Just("\\x22".to_string()),
        Just("\\u0022".to_string()),
        Just("\", namespace=\"payments\"} or M{z=\"".to_string()),
        Just("'} unless M{namespace='payments".to_string()),
        "[a-z0-9_]{1,4}",
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// How one character is written inside a quoted literal.
#[derive(Clone, Copy, Debug)]
enum Spelling {
    Raw,
    Hex,
    Unicode4,
    Unicode8,
    Octal,
    Short,
}

/// `value` as a PromQL string literal in `quote` (`"`, `'` or a backtick), each character
/// spelled as `spellings` says where that spelling can write it. Backticks cannot hold a
/// backtick, nor (for promql-parser, which reads escapes in them where Prometheus does not) a
/// backslash: such a value is written in double quotes.
fn literal(value: &str, quote: char, spellings: &[Spelling]) -> String {
    let quote = if quote == '`' && (value.contains('`') || value.contains('\\')) {
        '"'
    } else {
        quote
    };
    if quote == '`' {
        return format!("`{value}`");
    }
    let mut out = String::from(quote);
    for (i, c) in value.chars().enumerate() {
        let spelling = spellings[i % spellings.len().max(1)];
        let must_escape = c == quote || c == '\\' || c == '\n';
        match spelling {
            Spelling::Hex | Spelling::Octal if c.is_ascii() => {
                if matches!(spelling, Spelling::Hex) {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\{:03o}", c as u32));
                }
            }
            Spelling::Unicode4 if (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            Spelling::Unicode8 => out.push_str(&format!("\\U{:08x}", c as u32)),
            Spelling::Short if c == '\t' => out.push_str("\\t"),
            Spelling::Short if c == '\r' => out.push_str("\\r"),
            _ if must_escape => match c {
                '\n' => out.push_str("\\n"),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            _ => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn spellings() -> impl Strategy<Value = Vec<Spelling>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(Spelling::Raw),
            1 => Just(Spelling::Hex),
            1 => Just(Spelling::Unicode4),
            1 => Just(Spelling::Unicode8),
            1 => Just(Spelling::Octal),
            1 => Just(Spelling::Short),
        ],
        1..8,
    )
}

fn quote() -> impl Strategy<Value = char> {
    prop_oneof![Just('"'), Just('\''), Just('`')]
}

/// A matcher as (label, operator, value).
type Match = (String, String, String);
/// A selector: the sets of matchers of its `or` alternatives (one without `or`).
type Selector = Vec<Vec<Match>>;

/// The selectors of `expr` as their sets of matchers (the printer sorts them), in order.
fn matcher_sets(expr: &Expr) -> Vec<Selector> {
    fn set(m: &[Matcher]) -> Vec<Match> {
        let mut v: Vec<_> = m
            .iter()
            .map(|m| (m.name.clone(), m.op.to_string(), m.value.clone()))
            .collect();
        v.sort();
        v
    }
    fn walk(e: &Expr, out: &mut Vec<Selector>) {
        match e {
            Expr::VectorSelector(vs) => out.push(
                std::iter::once(set(&vs.matchers.matchers))
                    .chain(vs.matchers.or_matchers.iter().map(|a| set(a)))
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
            Expr::MatrixSelector(ms) => walk(&Expr::VectorSelector(ms.vs.clone()), out),
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

/// The string literals of `expr` (function arguments), in order.
fn strings(expr: &Expr) -> Vec<String> {
    match expr {
        Expr::StringLiteral(s) => vec![s.val.clone()],
        Expr::Call(c) => c.args.args.iter().flat_map(|a| strings(a)).collect(),
        Expr::Aggregate(a) => strings(&a.expr),
        Expr::Binary(b) => [strings(&b.lhs), strings(&b.rhs)].concat(),
        Expr::Paren(p) => strings(&p.expr),
        _ => vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Whatever a tenant writes in a label value or a string, in whatever quotes and escapes,
    /// the confined query means what was written (the same selectors with the same values,
    /// each with `namespace="shop"` in place of any namespace matcher) and passes the
    /// verification; and a query that reads other namespaces in any way the printer could
    /// make never passes it.
    #[test]
    fn confinement_keeps_every_value_and_reads_only_its_namespace(
        values in proptest::collection::vec(hostile_value(), 3),
        quotes in proptest::collection::vec(quote(), 3),
        spellings in spellings(),
        template in 0..6usize,
    ) {
        let lit = |i: usize| literal(&values[i], quotes[i], &spellings);
        let (a, b, c) = (lit(0), lit(1), lit(2));
        let query = match template {
            0 => format!("sum(M{{a={a}}})"),
            1 => format!("sum(M{{a={a}}} unless M{{z={b}}}) or sum(M{{service={c}}})"),
            2 => format!("sum({{__name__={a}, b!={b}, c=\"1\"}})"),
            3 => format!("sum(M{{a={a} or b={b}, namespace={c}}})"),
            4 => format!("sum(rate(M{{a={a}}}[5m])) / sum(M{{namespace={b}}} offset 1h)"),
            _ => format!("sum(label_replace(M{{a={a}}}, \"x\", {b}, \"a\", \"(.*)\"))"),
        };
        let original = parse(&query).map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        // The generator wrote what it meant: the values parse back as written.
        let sets = matcher_sets(&original);
        prop_assert!(sets.iter().flatten().flatten().any(|(_, _, v)| v == &values[0]), "{query}");

        // The printer round-trips: parse(print(ast)) == ast, in meaning.
        let printed = original.to_string();
        let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(matcher_sets(&again), sets.clone(), "{} → {}", query, printed);
        prop_assert_eq!(strings(&again), strings(&original), "{} → {}", query, printed);

        // Confined: the same selectors and values, namespace="shop" in each (alternative).
        let confined = confine_to_namespace(&query, "namespace", "shop")
            .map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        prop_assert!(verify_confined(&confined, "namespace", "shop").is_ok(), "{}", confined);
        let sent = parse(&confined).unwrap();
        let own = ("namespace".to_string(), "=".to_string(), "shop".to_string());
        let want: Vec<Vec<Vec<_>>> = sets
            .iter()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .map(|m| {
                        let mut m: Vec<_> = m.iter().filter(|(n, _, _)| n != "namespace").cloned().collect();
                        m.push(own.clone());
                        m.sort();
                        m
                    })
                    .collect()
            })
            .collect();
        prop_assert_eq!(matcher_sets(&sent), want, "{} → {}", query, confined);
        prop_assert_eq!(strings(&sent), strings(&original));

        // What an unescaping printer would have sent (every value between double quotes, as
        // promql-parser 0.6 wrote it) is never let through unless it still confines.
        let naive = confined.replace("\\\"", "\"");
        if let Ok(expr) = parse(&naive) {
            let escapes = matcher_sets(&expr).iter().any(|alternatives| {
                alternatives.iter().any(|m| !m.contains(&own) || m.iter().filter(|(n, _, _)| n == "namespace").count() != 1)
            });
            prop_assert_eq!(verify_confined(&naive, "namespace", "shop").is_ok(), !escapes, "{}", naive);
        }
    }

    /// Any text at all: confinement answers without panicking, and what it lets through
    /// verifies.
    #[test]
    fn confinement_answers_whatever_is_written(query in "[a-zA-Z_{}()\\[\\]=~!\"'`\\\\,:# 0-9.+*/-]{0,60}") {
        if let Ok(confined) = confine_to_namespace(&query, "namespace", "shop") {
            prop_assert!(verify_confined(&confined, "namespace", "shop").is_ok(), "{} → {}", query, confined);
        }
    }
}
