//! The calendar's `.ics` files end to end through the operator: ConfigMaps in the fake API
//! (`spec.calendar.configMapRefs`), read in the scaler's own namespace only, their VEVENTs as
//! events and exclusions, and what a missing, broken or oversized one does (`CalendarAvailable`,
//! an Event, the last calendar kept in force).

use crate::support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::*;
use support::scripted::ScriptedSource;

/// 100/s, always: two replicas at 50 a replica, so that any floor shows.
fn steady(_: &str, _: DateTime<Utc>) -> Option<f64> {
    Some(100.0)
}

fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A daily sale starting in 3 minutes (inside the 6-minute lead time), two hours long.
fn sale_ics(now: DateTime<Utc>) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//shop//campaigns//EN\r\nBEGIN:VEVENT\r\n\
UID:sale@shop\r\nSUMMARY:flash-sale\r\nDTSTART:{}\r\nDURATION:PT2H\r\n\
RRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ics_time(now + Duration::minutes(3))
    )
}

/// Today (UTC) as an all-day, yearly holiday.
fn holiday_ics(now: DateTime<Utc>) -> String {
    format!(
        "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:h@shop\nSUMMARY:founders-day\n\
DTSTART;VALUE=DATE:{}\nRRULE:FREQ=YEARLY\nEND:VEVENT\nEND:VCALENDAR\n",
        now.format("%Y%m%d")
    )
}

fn sale_ref() -> Value {
    json!({ "calendar": { "configMapRefs": [
        { "name": "campaigns", "key": "sale.ics", "as": "Event", "minReplicas": 9 }] } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ics_events_and_exclusions_from_configmaps_drive_the_operator() {
    let api = FakeApi::new();
    let now = Utc::now();
    api.put(config_map(NS, "campaigns", "sale.ics", &sale_ics(now)));
    api.put(deployment("sale", 2));
    api.put(scaler("sale", "steady", sale_ref()));
    // A peak window that is always open, switched off by the holiday from the .ics.
    api.put(config_map(
        NS,
        "holidays",
        "holidays.ics",
        &holiday_ics(now),
    ));
    api.put(deployment("holiday", 2));
    api.put(scaler(
        "holiday",
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": 7 }],
                "calendar": { "configMapRefs": [
                    { "name": "holidays", "key": "holidays.ics", "as": "Exclusion" }] } }),
    ));
    // Another tenant's ConfigMap of the same name as the one this scaler names: never read.
    api.put(config_map(
        "other-team",
        "promo",
        "promo.ics",
        &sale_ics(now),
    ));
    api.put(deployment("promo", 2));
    api.put(scaler(
        "promo",
        "steady",
        json!({ "calendar": { "configMapRefs": [
            { "name": "promo", "key": "promo.ics", "as": "Event", "minReplicas": 9 }] } }),
    ));
    let source = Arc::new(ScriptedSource::new(steady).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source, |s| {
        s.calendar_reread = StdDuration::from_secs(1);
    });

    eventually(60, "the .ics event's floor and the .ics holiday", || {
        let got = (
            replicas(&api, "sale"),
            status(&api, "holiday")["schedule"].clone(),
            condition(&api, "promo", "CalendarAvailable").map(|c| c.1),
        );
        if got
            == (
                9,
                json!("excluded (founders-day)"),
                Some("ConfigMapNotFound".into()),
            )
        {
            Ok(())
        } else {
            Err(format!("{got:?}; sale: {}", status(&api, "sale")))
        }
    })
    .await;
    let sale = status(&api, "sale");
    assert_eq!(sale["reason"], "Event", "{sale}");
    assert!(
        sale["schedule"].as_str().unwrap().contains("flash-sale"),
        "{sale}"
    );
    let (status_, reason, message) = condition(&api, "sale", "CalendarAvailable").unwrap();
    assert_eq!((status_.as_str(), reason.as_str()), ("True", "Loaded"));
    assert!(message.contains("0 exclusions and 3 events"), "{message}");
    assert!(replicas(&api, "holiday") < 7, "{}", status(&api, "holiday"));

    // Confinement: the other namespace's ConfigMap was never asked for, and the scaler that
    // named it acts without it, saying so (a Warning Event too).
    assert_eq!(replicas(&api, "promo"), 2, "{}", status(&api, "promo"));
    expect_condition(&api, "promo", "Ready", "True", "Scaling").unwrap();
    let (_, _, message) = condition(&api, "promo", "CalendarAvailable").unwrap();
    assert!(
        message.contains("ConfigMap promo in namespace shop does not exist")
            && message.contains("spec's own calendar is used without it"),
        "{message}"
    );
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/shop/configmaps/promo"),
        "the scaler's own namespace is read"
    );
    assert!(
        !requests.iter().any(|r| r.path.contains("other-team")),
        "another namespace's ConfigMap is never read"
    );
    let ev = events(&api, "promo");
    assert!(
        ev.iter()
            .any(|(t, r, _)| t == "Warning" && r == "ConfigMapNotFound"),
        "{ev:?}"
    );

    // The .ics broken: told, and the floor it gave stays (nothing scaled down for it).
    api.put(config_map(
        NS,
        "campaigns",
        "sale.ics",
        "BEGIN:VCALENDAR\nnot ics at all",
    ));
    eventually(30, "the broken .ics is told", || {
        match condition(&api, "sale", "CalendarAvailable") {
            Some((s, r, _)) if s == "False" && r == "InvalidCalendar" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (_, _, message) = condition(&api, "sale", "CalendarAvailable").unwrap();
    assert!(
        message.contains("stays in force (0 exclusions and 3 events)"),
        "{message}"
    );
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    // The event still decides (the scale-down stabilization alone would hold 9 for 5 minutes,
    // so the reason and the scheduled floor are what show the event kept).
    let sale = status(&api, "sale");
    assert_eq!(replicas(&api, "sale"), 9, "{sale}");
    assert_eq!(sale["reason"], "Event", "{sale}");
    assert_eq!(sale["scheduledMinReplicas"], 9, "{sale}");

    // Too large: refused with the bound named, the last calendar still in force.
    let big = format!(
        "BEGIN:VCALENDAR\n{}END:VCALENDAR\n",
        "X-PAD:0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n".repeat(4500)
    );
    api.put(config_map(NS, "campaigns", "sale.ics", &big));
    eventually(30, "the oversized .ics is told", || {
        match condition(&api, "sale", "CalendarAvailable") {
            Some((s, r, m))
                if s == "False" && r == "ConfigMapTooLarge" && m.contains("256 KiB") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(replicas(&api, "sale"), 9, "{}", status(&api, "sale"));

    // The missing ConfigMap created: picked up within the re-read interval.
    api.put(config_map(NS, "promo", "promo.ics", &sale_ics(now)));
    eventually(30, "the created ConfigMap's event", || {
        let got = (
            replicas(&api, "promo"),
            condition(&api, "promo", "CalendarAvailable").map(|c| c.1),
        );
        if got == (9, Some("Loaded".into())) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
}
