//! The CRD: `crds/` matches the Rust types, the schema refuses what it can, the examples are valid.

use kube::CustomResourceExt;
use prescaler::api::{Limits, PredictiveScaler, PredictiveScalerSpec};
use serde::Deserialize;

fn generated() -> String {
    serde_yaml_ng::to_string(&PredictiveScaler::crd()).unwrap()
}

#[test]
fn crds_folder_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/predictivescaler.yaml"
    ))
    .unwrap();
    assert!(
        committed == generated(),
        "crds/predictivescaler.yaml is stale: run `cargo run -- crd > crds/predictivescaler.yaml` (and copy it to charts/prescaler/crds/)"
    );
}

fn schema() -> serde_json::Value {
    let crd = serde_json::to_value(PredictiveScaler::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn min_above_max_is_refused_by_a_cel_rule() {
    let metric = serde_json::json!({"query": "sum(up)", "targetPerReplica": 5});
    let ok = serde_json::json!({"minReplicas": 2, "maxReplicas": 5, "metric": metric});
    let bad = serde_json::json!({"minReplicas": 6, "maxReplicas": 5, "metric": metric});
    assert!(PredictiveScalerSpec::validate_cel(&ok, None).is_ok());
    let err = PredictiveScalerSpec::validate_cel(&bad, None).unwrap_err();
    assert!(
        format!("{err:?}").contains("minReplicas must not exceed maxReplicas"),
        "{err:?}"
    );
    // And the rule is in the CRD the API server gets.
    let rules = &schema()["x-kubernetes-validations"];
    assert_eq!(rules[0]["rule"], "self.minReplicas <= self.maxReplicas");
}

#[test]
fn the_schema_bounds_numbers_enums_and_durations() {
    let s = schema();
    let p = &s["properties"];
    assert_eq!(p["minReplicas"]["minimum"], 1.0);
    assert_eq!(p["maxReplicas"]["minimum"], 1.0);
    assert!(
        p["metric"]["properties"]["targetPerReplica"]["minimum"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let modes: Vec<&str> = p["mode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(modes, ["Auto", "ForecastOnly", "Off"]);
    let duration = &p["forecast"]["properties"]["history"];
    assert!(
        duration["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^([0-9]+y)?")
    );
    assert!(duration["maxLength"].as_u64().is_some());
    assert_eq!(
        p["peakWindows"]["items"]["properties"]["duration"]["pattern"],
        duration["pattern"]
    );
    // leadTime: a duration, or Auto.
    let lead = &p["forecast"]["properties"]["leadTime"];
    assert_eq!(lead["maxLength"], duration["maxLength"]);
    let pattern = regex::Regex::new(lead["pattern"].as_str().unwrap()).unwrap();
    for (text, ok) in [
        ("Auto", true),
        ("6m", true),
        ("1h30m", true),
        ("auto", false),
        ("Auto5m", false),
        ("6 m", false),
    ] {
        assert_eq!(pattern.is_match(text), ok, "{text}");
    }
    let objective = &p["objective"]["properties"]["maxUnderprovisionedPercent"];
    assert_eq!(objective["minimum"], 0.01);
    assert_eq!(objective["maximum"], 50.0);
    assert_eq!(p["objective"]["default"]["maxUnderprovisionedPercent"], 0.1);
}

/// The schema carries the same bounds as `validate()`, so the API server refuses what the
/// operator would.
#[test]
fn the_schema_and_validation_share_their_limits() {
    let s = schema();
    let p = &s["properties"];
    let window = &p["peakWindows"]["items"]["properties"];
    let max = Limits::MAX_REPLICAS as f64;
    assert_eq!(p["maxReplicas"]["maximum"], max);
    assert_eq!(p["minReplicas"]["maximum"], max);
    assert_eq!(window["minReplicas"]["maximum"], max);
    assert_eq!(
        p["metric"]["properties"]["query"]["maxLength"],
        Limits::MAX_QUERY_LENGTH
    );
    assert_eq!(p["peakWindows"]["maxItems"], Limits::MAX_PEAK_WINDOWS);
    assert_eq!(window["schedule"]["maxLength"], Limits::MAX_SCHEDULE_LENGTH);
    assert_eq!(
        window["timeZone"]["maxLength"],
        Limits::MAX_TIME_ZONE_LENGTH
    );
    assert_eq!(
        p["behavior"]["properties"]["scaleUp"]["properties"]["policies"]["maxItems"],
        Limits::MAX_POLICIES
    );
}

/// Every property in the schema has a description, so `kubectl explain` documents every field.
#[test]
fn every_field_is_described() {
    fn walk(path: &str, node: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
            for (name, child) in props {
                let here = format!("{path}.{name}");
                // Kubernetes' own types (conditions) bring their own descriptions.
                if child.get("description").is_none() {
                    missing.push(here.clone());
                }
                walk(&here, child, missing);
            }
        }
        if let Some(items) = node.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let crd = serde_json::to_value(PredictiveScaler::crd()).unwrap();
    let mut missing = vec![];
    walk(
        "",
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        &mut missing,
    );
    missing.retain(|p| p != ".apiVersion" && p != ".kind" && p != ".metadata");
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

#[test]
fn printer_columns_and_names_read_well() {
    let crd = PredictiveScaler::crd();
    assert_eq!(crd.spec.names.short_names, Some(vec!["psc".to_string()]));
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for c in [
        "Target", "Min", "Max", "Current", "Desired", "Forecast", "Mode", "Age",
    ] {
        assert!(
            columns.contains(&c.to_string()),
            "missing column {c}: {columns:?}"
        );
    }
}

#[test]
fn examples_parse_and_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            // A file may hold other objects too (the HPA next to its PredictiveScaler).
            for document in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = serde_yaml_ng::Value::deserialize(document).unwrap();
                if value.get("kind").and_then(|k| k.as_str()) != Some("PredictiveScaler") {
                    continue;
                }
                let scaler: PredictiveScaler = serde_yaml_ng::from_value(value)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                scaler
                    .spec
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                PredictiveScalerSpec::validate_cel(
                    &serde_json::to_value(&scaler.spec).unwrap(),
                    None,
                )
                .unwrap();
                seen += 1;
            }
        }
    }
    assert!(seen >= 4, "only {seen} example PredictiveScalers found");
}

#[test]
fn semantic_errors_name_the_field() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/checkout.yaml"
    ))
    .unwrap();
    let base: PredictiveScaler = serde_yaml_ng::from_str(&yaml).unwrap();
    let err = |edit: &dyn Fn(&mut PredictiveScalerSpec)| {
        let mut s = base.spec.clone();
        edit(&mut s);
        s.validate().unwrap_err().to_string()
    };
    assert!(err(&|s| s.forecast.lead_time = "soon".into()).contains("spec.forecast.leadTime"));
    // `Auto` is the one word taken; it is not a duration to parse.
    assert!(err(&|s| s.forecast.lead_time = "auto".into()).contains("spec.forecast.leadTime"));
    assert!(err(&|s| s.min_replicas = 100).contains("spec.minReplicas"));
    assert!(
        err(&|s| s.peak_windows[0].time_zone = "Europe/Atlantis".into())
            .contains("spec.peakWindows[0].timeZone")
    );
    assert!(err(&|s| s.metric.target_per_replica = 0.0).contains("spec.metric.targetPerReplica"));
    assert!(err(&|s| s.forecast.seasonality.clear()).contains("spec.forecast.seasonality"));
    // Values a pattern lets through but that would overflow a date or a buffer.
    assert!(err(&|s| s.forecast.history = "20000000w".into()).contains("spec.forecast.history"));
    assert!(err(&|s| s.forecast.history = "100000w".into()).contains("between 1h and 5w"));
    assert!(
        err(&|s| s.peak_windows[0].duration = "14000000w".into())
            .contains("spec.peakWindows[0].duration")
    );
    let nested = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(err(&|s| s.metric.query = nested.clone()).contains("spec.metric.query"));
    let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
    assert!(err(&|s| s.metric.query = deep.clone()).contains("nests brackets 40 deep"));
    assert!(err(&|s| s.max_replicas = 2_000_000).contains("spec.maxReplicas"));
}

/// `scaleTargetRef`'s names become a request's path: anything but Kubernetes names is refused
/// by the schema's patterns (the API server) and by `validate()` (objects that did not pass
/// it), naming the field. `apps/v1/namespaces/payments/deployments/ledger/scale?` read and wrote
/// another namespace's Deployment before.
#[test]
fn a_target_that_is_not_made_of_kubernetes_names_is_refused() {
    let s = schema();
    let target = &s["properties"]["scaleTargetRef"]["properties"];
    let pattern =
        |field: &str| regex::Regex::new(target[field]["pattern"].as_str().unwrap()).unwrap();
    let hostile = [
        (
            "apiVersion",
            "apps/v1/namespaces/payments/deployments/ledger/scale?",
        ),
        (
            "apiVersion",
            "apps/v1/namespaces/kube-system/statefulsets/etcd/scale?",
        ),
        ("apiVersion", "apps/v1#"),
        ("apiVersion", "../v1"),
        ("kind", "Deployment/../../x"),
        ("kind", "Deployment?"),
        ("name", "ledger/scale?"),
        ("name", ".."),
        ("name", "a%2Fb"),
        ("namespace", "payments/x"),
    ];
    for (field, value) in hostile {
        assert!(
            !pattern(field).is_match(value),
            "the schema lets {field}: {value:?} through"
        );
        let mut spec = PredictiveScalerSpec::new(10.0, 10);
        let r = &mut spec.scale_target_ref;
        match field {
            "apiVersion" => r.api_version = value.into(),
            "kind" => r.kind = value.into(),
            "name" => r.name = value.into(),
            _ => r.namespace = Some(value.into()),
        }
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("spec.scaleTargetRef.{field}")), "{e}");
    }
    for (field, value) in [
        ("apiVersion", "apps/v1"),
        ("apiVersion", "argoproj.io/v1alpha1"),
        ("kind", "Rollout"),
        ("name", "checkout-v2.eu"),
        ("namespace", "shop"),
    ] {
        assert!(pattern(field).is_match(value), "{field}: {value:?}");
    }
}

/// A status the operator cannot decode field by field (an integer past `int32`, a time that is
/// not one) is read with those fields absent, the rest kept, never as an error: one scaler's
/// status must not fail the decoding of a whole list.
#[test]
fn a_status_field_that_does_not_decode_is_read_as_absent() {
    let mut object = serde_json::to_value(PredictiveScaler::new(
        "web",
        PredictiveScalerSpec::new(10.0, 10),
    ))
    .unwrap();
    object["status"] = serde_json::json!({
        "currentReplicas": 3_000_000_000u64,
        "desiredReplicas": 7,
        "reason": "Forecast",
        "conditions": [{ "type": "Ready", "status": "True", "reason": "Scaling",
                         "message": "", "lastTransitionTime": "yesterday" }],
    });
    let read: PredictiveScaler = serde_json::from_value(object).unwrap();
    let status = read.status.unwrap();
    assert_eq!(status.current_replicas, None);
    assert!(status.conditions.is_empty());
    assert_eq!(status.desired_replicas, Some(7));
    assert_eq!(status.reason.as_deref(), Some("Forecast"));
}

#[test]
fn unknown_enum_values_are_refused() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/checkout.yaml"
    ))
    .unwrap();
    let bad = yaml.replace("mode: Auto", "mode: Sometimes");
    let err = serde_yaml_ng::from_str::<PredictiveScaler>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Sometimes"), "{err}");
}

#[test]
fn calendar_and_ceiling_mistakes_are_refused_with_the_field_named() {
    let base = PredictiveScalerSpec::new(10.0, 50);
    let err = |yaml: &str| {
        let mut s = base.clone();
        let extra: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        if let Some(w) = extra.get("peakWindows") {
            s.peak_windows = serde_json::from_value(w.clone()).unwrap();
        }
        if let Some(c) = extra.get("calendar") {
            s.calendar = serde_json::from_value(c.clone()).unwrap();
        }
        s.validate().map(|_| ()).map_err(|e| e.to_string())
    };
    let lunch = "{name: lunch, schedule: '0 11 * * 1-5', duration: 3h, minReplicas: 20}";
    // A floor in force while a lower ceiling is: which wins is the SRE's to say.
    let e = err(&format!(
        "{{peakWindows: [{lunch}, {{name: quiet, schedule: '0 12 * * *', duration: 1h, maxReplicas: 5}}]}}"
    ))
    .unwrap_err();
    assert!(
        e.contains("spec.peakWindows[0].minReplicas")
            && e.contains("quiet")
            && e.contains("spec.peakWindows[1]"),
        "{e}"
    );
    // Not overlapping: fine.
    err(&format!(
        "{{peakWindows: [{lunch}, {{name: night, schedule: '0 22 * * *', duration: 8h, maxReplicas: 5}}]}}"
    ))
    .unwrap();
    // A dated freeze over a weekday lunch.
    let e = err(&format!(
        "{{peakWindows: [{lunch}], calendar: {{events: [{{name: freeze, start: '2026-12-21T12:00:00Z', duration: 2h, maxReplicas: 4}}]}}}}"
    ))
    .unwrap_err();
    assert!(
        e.contains("spec.peakWindows[0].minReplicas")
            && e.contains("freeze")
            && e.contains("2026-12-21T12:00:00Z"),
        "{e}"
    );
    // The same freeze on a Sunday does not meet it.
    err(&format!(
        "{{peakWindows: [{lunch}], calendar: {{events: [{{name: freeze, start: '2026-12-20T12:00:00Z', duration: 2h, maxReplicas: 4}}]}}}}"
    ))
    .unwrap();
    for (yaml, field) in [
        (
            "{peakWindows: [{name: w, schedule: '0 1 * * *', duration: 1h, minReplicas: 9, maxReplicas: 3}]}",
            "spec.peakWindows[0].minReplicas",
        ),
        (
            "{peakWindows: [{name: w, schedule: '0 1 * * *', duration: 1h}]}",
            "spec.peakWindows[0].minReplicas",
        ),
        (
            "{calendar: {exclusions: [{name: x, date: '2026-13-01'}]}}",
            "spec.calendar.exclusions[0].date",
        ),
        (
            "{calendar: {exclusions: [{name: x, date: '2026-12-01', start: '2026-12-01', end: '2026-12-02'}]}}",
            "spec.calendar.exclusions[0].date",
        ),
        (
            "{calendar: {exclusions: [{name: x, start: '2026-12-02', end: '2026-12-01'}]}}",
            "spec.calendar.exclusions[0].end",
        ),
        (
            "{calendar: {exclusions: [{name: x, start: '2026-01-01', end: '2026-03-01'}]}}",
            "spec.calendar.exclusions[0].end",
        ),
        (
            "{calendar: {exclusions: [{name: x, date: '1999-12-31'}]}}",
            "spec.calendar.exclusions[0].date",
        ),
        (
            "{calendar: {timeZone: Mars/Olympus, exclusions: [{name: x, date: '2026-12-31'}]}}",
            "spec.calendar.timeZone",
        ),
        (
            "{calendar: {events: [{name: e, start: 'next friday', duration: 1h, minReplicas: 2}]}}",
            "spec.calendar.events[0].start",
        ),
        (
            "{calendar: {events: [{name: e, start: '2026-11-27T08:00', duration: 1h}]}}",
            "spec.calendar.events[0].minReplicas",
        ),
        (
            "{calendar: {events: [{name: e, start: '2026-11-27T08:00', duration: 1h, loadMultiplier: 1000}]}}",
            "spec.calendar.events[0].loadMultiplier",
        ),
        (
            "{calendar: {events: [{name: e, start: '2026-11-27T08:00', end: '2026-11-27T09:00', duration: 1h, minReplicas: 2}]}}",
            "spec.calendar.events[0].end",
        ),
        (
            "{calendar: {events: [{name: e, start: '2026-11-27T08:00', duration: 1h, maxReplicas: 2}, {name: f, start: '2026-11-27T08:30', duration: 1h, minReplicas: 3}]}}",
            "spec.calendar.events[1].minReplicas",
        ),
    ] {
        let e = err(yaml).expect_err(yaml);
        assert!(e.contains(field), "{yaml}: {e}");
    }
    // A ceiling below the spec's own floor.
    let mut s = base.clone();
    s.min_replicas = 5;
    s.peak_windows =
        serde_yaml_ng::from_str("[{name: q, schedule: '0 1 * * *', duration: 1h, maxReplicas: 3}]")
            .unwrap();
    assert!(
        s.validate()
            .unwrap_err()
            .to_string()
            .contains("spec.peakWindows[0].maxReplicas")
    );
}

#[test]
fn calendar_and_window_rules_are_in_the_schema_for_the_api_server() {
    use prescaler::api::{CalendarEvent, Exclusion, PeakWindow};
    let bad_window = serde_json::json!({"name": "w", "schedule": "0 1 * * *", "duration": "1h",
        "minReplicas": 9, "maxReplicas": 3});
    assert!(PeakWindow::validate_cel(&bad_window, None).is_err());
    let no_bound = serde_json::json!({"name": "w", "schedule": "0 1 * * *", "duration": "1h"});
    assert!(PeakWindow::validate_cel(&no_bound, None).is_err());
    let ceiling_only = serde_json::json!({"name": "w", "schedule": "0 1 * * *", "duration": "1h", "maxReplicas": 3});
    assert!(PeakWindow::validate_cel(&ceiling_only, None).is_ok());
    let both = serde_json::json!({"name": "x", "date": "2026-12-25", "start": "2026-12-25", "end": "2026-12-26"});
    assert!(Exclusion::validate_cel(&both, None).is_err());
    let day = serde_json::json!({"name": "x", "date": "2026-12-25"});
    assert!(Exclusion::validate_cel(&day, None).is_ok());
    let nothing = serde_json::json!({"name": "e", "start": "2026-11-27T08:00", "duration": "1h"});
    assert!(CalendarEvent::validate_cel(&nothing, None).is_err());
    let sale = serde_json::json!({"name": "e", "start": "2026-11-27T08:00", "duration": "1h", "loadMultiplier": 3});
    assert!(CalendarEvent::validate_cel(&sale, None).is_ok());
    // `as` is a CEL reserved word: the rules name it `__as__`, as the API server escapes it.
    use prescaler::api::ConfigMapCalendar;
    let excluded = serde_json::json!({"name": "h", "key": "h.ics", "as": "Exclusion"});
    assert!(ConfigMapCalendar::validate_cel(&excluded, None).is_ok());
    let excluded_with_floor =
        serde_json::json!({"name": "h", "key": "h.ics", "as": "Exclusion", "minReplicas": 3});
    assert!(ConfigMapCalendar::validate_cel(&excluded_with_floor, None).is_err());
    let bare_event = serde_json::json!({"name": "c", "key": "c.ics", "as": "Event"});
    assert!(ConfigMapCalendar::validate_cel(&bare_event, None).is_err());
    let event = serde_json::json!({"name": "c", "key": "c.ics", "as": "Event", "minReplicas": 30});
    assert!(ConfigMapCalendar::validate_cel(&event, None).is_ok());
    let calendar = &schema()["properties"]["calendar"]["properties"];
    assert_eq!(calendar["configMapRefs"]["maxItems"], 4);
    assert_eq!(calendar["events"]["maxItems"], 64);
    assert_eq!(calendar["exclusions"]["maxItems"], 128);
    assert!(
        calendar["events"]["items"]["x-kubernetes-validations"]
            .as_array()
            .unwrap()
            .len()
            == 3
    );
}

#[test]
fn contradictions_are_found_across_frequencies_and_respect_exclusions() {
    let validate = |yaml: &str| {
        let mut s = PredictiveScalerSpec::new(10.0, 50);
        let extra: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
        s.peak_windows = serde_json::from_value(extra["peakWindows"].clone()).unwrap();
        if let Some(c) = extra.get("calendar") {
            s.calendar = serde_json::from_value(c.clone()).unwrap();
        }
        s.validate().map(|_| ()).map_err(|e| e.to_string())
    };
    // An hourly floor and a July ceiling: the hourly window's first openings of the year do not
    // reach July, its arithmetic over July's openings does.
    let e = validate(
        "{peakWindows: [{name: always, schedule: '0 * * * *', duration: 1h, minReplicas: 20},
                        {name: summer, schedule: '0 12 * 7 *', duration: 1h, maxReplicas: 5}]}",
    )
    .unwrap_err();
    assert!(e.contains("always") && e.contains("summer"), "{e}");
    // A night ceiling ending when a morning floor opens is no contradiction (the floor's lead
    // time takes over from the ceiling).
    validate(
        "{peakWindows: [{name: night, schedule: '0 1 * * *', duration: 5h, maxReplicas: 4},
                        {name: morning, schedule: '0 6 * * *', duration: 3h, minReplicas: 30}]}",
    )
    .unwrap();
    // A holiday freeze over a daily floor: the floor is off on the excluded day.
    validate(
        "{peakWindows: [{name: daily, schedule: '0 10 * * *', duration: 2h, minReplicas: 20}],
          calendar: {exclusions: [{name: christmas, date: '2026-12-25'}],
                     events: [{name: freeze, start: '2026-12-25', end: '2026-12-25', maxReplicas: 4}]}}",
    )
    .unwrap();
    // A whole month in a zone that changes clocks in it: 31 days and an hour.
    validate(
        "{peakWindows: [], calendar: {timeZone: Europe/Berlin,
          exclusions: [{name: october, start: '2026-10-01', end: '2026-10-31'}]}}",
    )
    .unwrap();
}

#[test]
fn a_contradiction_check_too_expensive_for_its_budget_is_refused_naming_it() {
    use std::time::Instant;
    let spec = |windows: Vec<serde_json::Value>, calendar: serde_json::Value| {
        let mut s = PredictiveScalerSpec::new(10.0, 50);
        s.peak_windows = serde_json::from_value(windows.into()).unwrap();
        s.calendar = serde_json::from_value(calendar).unwrap();
        s
    };
    let window = |name: String, schedule: &str, bound: &str, n: u32| serde_json::json!({"name": name, "schedule": schedule, "duration": "1m", bound: n});
    // Sixteen every-minute floors against sixteen every-minute ceilings an hour apart (no
    // contradiction): checked in full, within the budget.
    let disjoint = spec(
        (0..16)
            .map(|i| window(format!("f{i}"), "* 10 * * *", "minReplicas", 10))
            .chain((0..16).map(|i| window(format!("c{i}"), "* 3 * * *", "maxReplicas", 5)))
            .collect(),
        serde_json::json!({}),
    );
    let started = Instant::now();
    let valid = disjoint.validate().expect("no contradiction");
    let searches: u64 = valid.peak_windows.iter().map(|w| w.searches()).sum();
    assert!(searches <= 20_000, "{searches} searches");
    eprintln!(
        "16 × 16 every-minute windows: {searches} searches in {:?}",
        started.elapsed()
    );
    // Every-minute floors whose openings all fall in excluded days, against month-long dated
    // ceilings: each pair would walk hundreds of openings. Refused, naming the budget, instead
    // of costing every reconcile (or being checked in part).
    let excluded: Vec<_> = (0..12)
        .map(|m| serde_json::json!({"name": format!("x{m}"), "start": format!("2026-{:02}-01", m + 1), "end": format!("2026-{:02}-28", m + 1)}))
        .collect();
    let ceilings: Vec<_> = (0..64)
        .map(|i| serde_json::json!({"name": format!("e{i}"), "start": format!("2026-{:02}-02", i % 12 + 1), "end": format!("2026-{:02}-27", i % 12 + 1), "maxReplicas": 5}))
        .collect();
    let hostile = spec(
        (0..32)
            .map(|i| window(format!("f{i}"), "* * * * *", "minReplicas", 10))
            .collect(),
        serde_json::json!({"exclusions": excluded, "events": ceilings}),
    );
    let started = Instant::now();
    let e = hostile.validate().unwrap_err().to_string();
    let took = started.elapsed();
    assert!(
        e.contains("spec.peakWindows")
            && e.contains("20000 schedule searches")
            && e.contains("budget"),
        "{e}"
    );
    // One sentence, as it reads in `kubectl describe`: no run of spaces from a line break.
    assert!(!e.contains("  "), "{e}");
    assert!(took.as_secs_f64() < 2.0, "refused in {took:?}");
    eprintln!("refused in {took:?}");
}

/// A quiet window (`minReplicas: 0` on a peak window or an event) and the activation threshold:
/// the schema takes 0 and bounds both, `validate()` refuses what is out of bounds naming the
/// field, and an `.ics` reference's occurrences (floors) still start at 1.
#[test]
fn quiet_windows_and_the_activation_threshold_are_bounded() {
    let s = schema();
    let p = &s["properties"];
    assert_eq!(
        p["peakWindows"]["items"]["properties"]["minReplicas"]["minimum"],
        0.0
    );
    assert_eq!(
        p["calendar"]["properties"]["events"]["items"]["properties"]["minReplicas"]["minimum"],
        0.0
    );
    assert_eq!(
        p["calendar"]["properties"]["configMapRefs"]["items"]["properties"]["minReplicas"]["minimum"],
        1.0
    );
    assert_eq!(p["minReplicas"]["minimum"], 1.0, "zero only in a window");
    let threshold = &p["metric"]["properties"]["activationThreshold"];
    assert_eq!(threshold["minimum"], 0.0);
    assert_eq!(threshold["maximum"], Limits::MAX_ACTIVATION_THRESHOLD);

    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/scale-to-zero.yaml"
    ))
    .unwrap();
    let base: PredictiveScaler = serde_yaml_ng::from_str(&yaml).unwrap();
    let valid = base.spec.validate().unwrap();
    assert!(valid.allows_zero());
    assert_eq!(valid.activation_threshold, 0.05);
    assert!(!valid.without_zero().allows_zero());
    let err = |edit: &dyn Fn(&mut PredictiveScalerSpec)| {
        let mut s = base.spec.clone();
        edit(&mut s);
        s.validate().unwrap_err().to_string()
    };
    for bad in [-1.0, f64::NAN, f64::INFINITY, 2e15] {
        let e = err(&|s| s.metric.activation_threshold = bad);
        assert!(e.contains("spec.metric.activationThreshold"), "{bad}: {e}");
    }
    let e = err(&|s| s.peak_windows[0].min_replicas = Some(-1));
    assert!(e.contains("spec.peakWindows[0].minReplicas"), "{e}");
    let e = err(&|s| s.calendar.events[0].min_replicas = Some(-1));
    assert!(e.contains("spec.calendar.events[0].minReplicas"), "{e}");
    let e = err(&|s| s.min_replicas = 0);
    assert!(e.contains("spec.minReplicas"), "{e}");
    // A quiet window alone (no ceiling) is a window: its zero is what it sets.
    let mut alone = base.spec.clone();
    alone.peak_windows[0].max_replicas = None;
    assert!(alone.validate().is_ok());
    assert!(
        PredictiveScalerSpec::validate_cel(&serde_json::to_value(&alone).unwrap(), None).is_ok()
    );
}

/// `spec.metric` or `spec.metrics`, exactly one: a CEL rule for the API server, and
/// `validate()` (with the field named) for objects that did not pass one; the list is bounded,
/// its names unique.
#[test]
fn exactly_one_of_metric_and_metrics_is_taken() {
    let metric = serde_json::json!({"query": "sum(up)", "targetPerReplica": 5});
    let named =
        |name: &str| serde_json::json!({"name": name, "query": "sum(up)", "targetPerReplica": 5});
    let cel = |spec: serde_json::Value| PredictiveScalerSpec::validate_cel(&spec, None);
    assert!(cel(serde_json::json!({"minReplicas": 1, "maxReplicas": 5, "metrics": [named("a"), named("b")]})).is_ok());
    for spec in [
        serde_json::json!({"minReplicas": 1, "maxReplicas": 5}),
        serde_json::json!({"minReplicas": 1, "maxReplicas": 5, "metric": metric, "metrics": [named("a")]}),
    ] {
        let err = format!("{:?}", cel(spec).unwrap_err());
        assert!(err.contains("set exactly one of metric"), "{err}");
    }
    let s = schema();
    assert_eq!(s["properties"]["metrics"]["maxItems"], 5);
    assert_eq!(s["properties"]["metrics"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        s["properties"]["metrics"]["x-kubernetes-list-map-keys"][0],
        "name"
    );
    assert!(
        !s["required"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("metric"))
    );

    let base: PredictiveScaler = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/several-metrics.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let valid = base.spec.validate().unwrap();
    assert_eq!(valid.metrics.len(), 2);
    assert_eq!(valid.for_metric(1).unwrap().target_per_replica, 500.0);
    let err = |edit: &dyn Fn(&mut PredictiveScalerSpec)| {
        let mut s = base.spec.clone();
        edit(&mut s);
        s.validate().unwrap_err().to_string()
    };
    let both = err(&|s| {
        s.metric = prescaler::api::MetricSpec {
            query: "sum(up)".into(),
            target_per_replica: 1.0,
            activation_threshold: 0.0,
        }
    });
    assert!(
        both.contains("spec.metrics") && both.contains("not both"),
        "{both}"
    );
    assert!(err(&|s| s.metrics.clear()).contains("a load metric is needed"));
    assert!(err(&|s| s.metrics[1].name = "requests".into()).contains("names must be unique"));
    assert!(err(&|s| s.metrics[1].name = "Queue".into()).contains("spec.metrics[1].name"));
    assert!(
        err(&|s| s.metrics[1].target_per_replica = 0.0)
            .contains("spec.metrics[1].targetPerReplica")
    );
    assert!(err(&|s| s.metrics[0].query = "sum(".into()).contains("spec.metrics[0].query"));
    assert!(
        err(&|s| s.metrics[0].activation_threshold = -1.0)
            .contains("spec.metrics[0].activationThreshold")
    );
    let six = err(&|s| {
        s.metrics = (0..6)
            .map(|i| prescaler::api::NamedMetricSpec {
                name: format!("m{i}"),
                ..s.metrics[0].clone()
            })
            .collect()
    });
    assert!(six.contains("at most 5"), "{six}");
}
