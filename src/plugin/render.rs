//! The plugin's tables, for people at a terminal (`-o json|yaml` is for scripts).

use std::fmt::Write as _;

use chrono::{DateTime, Local, Utc};
use chrono_tz::Tz;

use super::{PlanReport, SavingsRow, WhyReport};
use crate::api::PredictiveScalerStatus;
use crate::planning::ledger;
use crate::planning::outlook::{self, Outlook, Step};
use crate::planning::plan::Reason;

/// The time zone times are shown in.
#[derive(Clone, Copy, Debug)]
pub enum Zone {
    Utc,
    Local,
    Named(Tz),
}

impl Zone {
    /// `DDD HH:MM`, and the zone's name for the header.
    fn show(&self, t: DateTime<Utc>, format: &str) -> String {
        match self {
            Zone::Utc => t.format(format).to_string(),
            Zone::Local => t.with_timezone(&Local).format(format).to_string(),
            Zone::Named(tz) => t.with_timezone(tz).format(format).to_string(),
        }
    }

    /// The time format of the plan's rows: with the UTC offset when it changes among `times`
    /// (a DST change within the horizon), so that a repeated or skipped local hour reads right.
    fn row_format(&self, times: impl IntoIterator<Item = DateTime<Utc>>) -> &'static str {
        let mut offsets = times.into_iter().map(|t| self.show(t, "%:z"));
        let first = offsets.next();
        if offsets.any(|o| Some(&o) != first.as_ref()) {
            "%a %H:%M %:z"
        } else {
            "%a %H:%M"
        }
    }

    fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Local => "local time".into(),
            Zone::Named(tz) => tz.name().into(),
        }
    }
}

/// A bar of `value / max` of `width` cells, in eighths of a cell.
pub fn bar(value: u32, max: u32, width: usize) -> String {
    const PARTS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    if max == 0 || value == 0 {
        return String::new();
    }
    let eighths =
        ((value.min(max) as u64 * width as u64 * 8 + max as u64 / 2) / max as u64).max(1) as usize;
    let mut out = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        out.push(PARTS[eighths % 8 - 1]);
    }
    out
}

/// The term column: the reason, and the window or basis behind it.
fn term(s: &Step) -> String {
    let word = s.reason.as_str();
    match (&s.reason, outlook::decided_by(&s.reason)) {
        (Reason::PeakWindow(_) | Reason::Event(_) | Reason::ScheduledMaximum(_), Some(by)) => {
            format!("{word} {by}")
        }
        (Reason::Forecast(_), Some(by)) => format!("{word} ({by})"),
        _ if s.held => format!("{word} (no forecast)"),
        _ => word.to_string(),
    }
}

/// The window column: the window open at the step (`■ name`), or the floor asked for ahead of
/// it (`▸ name`, a window opening within the lead time).
fn window(s: &Step) -> String {
    match (&s.window_open, &s.scheduled) {
        (Some(w), _) => format!("■ {w}"),
        (None, Some(f)) => format!("▸ {}", f.source.name()),
        (None, None) => String::new(),
    }
}

/// `kubectl prescaler plan`'s table.
pub fn plan_table(r: &PlanReport, zone: Zone) -> String {
    let mut out = plan_heading(r, zone);
    out.push('\n');
    out.push_str(&plan_rows(r, zone));
    out.push('\n');
    out.push_str(&plan_summary(&r.outlook, zone));
    out
}

/// Whose plan it is, from when, on what grid, and the notes on where the numbers came from.
fn plan_heading(r: &PlanReport, zone: Zone) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PredictiveScaler {}/{} scales {}: {} replicas now (min {}, max {})",
        r.namespace, r.name, r.target, r.current_replicas, r.spec.min_replicas, r.spec.max_replicas
    );
    let _ = writeln!(
        out,
        "Plan from {} every {} for {} (times in {}); ■ peak window open, ▸ floor asked ahead of it",
        zone.show(r.outlook.from, "%Y-%m-%d %H:%M"),
        crate::api::format_duration(outlook::STEP),
        crate::api::format_duration(outlook::HORIZON),
        zone.name()
    );
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The plan's columns aligned, the header first, each row ending in its replicas as a bar of
/// the maximum.
fn plan_rows(r: &PlanReport, zone: Zone) -> String {
    let o = &r.outlook;
    let rows: Vec<&Step> = std::iter::once(&o.now).chain(&o.steps).collect();
    let cells = plan_cells(&rows, zone);
    let table = PlanColumns::fitting(&cells);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        table.line(
            PlanColumns::HEADERS,
            &format!("REPLICAS / MAX {}", r.spec.max_replicas)
        )
    );
    for (s, c) in rows.iter().zip(&cells) {
        let b = bar(s.replicas, r.spec.max_replicas, 40);
        let cells = [
            c[0].as_str(),
            c[1].as_str(),
            c[2].as_str(),
            c[3].as_str(),
            c[4].as_str(),
        ];
        let _ = writeln!(out, "{}", table.line(cells, &b));
    }
    out
}

/// Each step's cells: time (the first marked `now`), replicas, term, load, window.
fn plan_cells(rows: &[&Step], zone: Zone) -> Vec<[String; 5]> {
    let format = zone.row_format(rows.iter().map(|s| s.at));
    rows.iter()
        .enumerate()
        .map(|(i, s)| {
            let time = zone.show(s.at, format);
            [
                if i == 0 { format!("{time} now") } else { time },
                s.replicas.to_string(),
                term(s),
                s.forecast_load.map_or(String::new(), |l| format!("{l:.1}")),
                window(s),
            ]
        })
        .collect()
}

/// The plan's five columns, as wide as their widest cell; numbers right-aligned.
struct PlanColumns {
    widths: [usize; 5],
}

impl PlanColumns {
    const HEADERS: [&'static str; 5] = ["TIME", "REPLICAS", "TERM", "LOAD", "WINDOW"];
    const RIGHT: [bool; 5] = [false, true, false, true, false];

    fn fitting(cells: &[[String; 5]]) -> Self {
        let mut widths = Self::HEADERS.map(|h| h.chars().count());
        for c in cells {
            for (w, v) in widths.iter_mut().zip(c) {
                *w = (*w).max(v.chars().count());
            }
        }
        Self { widths }
    }

    /// `cells` padded to the columns, then `last` (unpadded), without trailing spaces.
    fn line(&self, cells: [&str; 5], last: &str) -> String {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let n = self.widths[i].saturating_sub(cell.chars().count());
            if Self::RIGHT[i] {
                l.push_str(&" ".repeat(n));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(n));
            }
            l.push_str("  ");
        }
        l.push_str(last);
        l.trim_end().to_string()
    }
}

/// The plan's next peak and its largest step.
fn plan_summary(o: &Outlook, zone: Zone) -> String {
    let mut out = String::new();
    match (&o.summary().next_peak, o.next_peak()) {
        (Some(p), Some(s)) => {
            let _ = writeln!(
                out,
                "Next peak: {} replicas at {} ({})",
                p.replicas,
                zone.show(s.at, "%a %H:%M"),
                term(s)
            );
        }
        _ => {
            let _ = writeln!(out, "Next peak: none above the replicas asked for now");
        }
    }
    if let Some(m) = o.max() {
        let _ = writeln!(
            out,
            "Most replicas: {} at {} ({})",
            m.replicas,
            zone.show(m.at, "%a %H:%M"),
            term(m)
        );
    }
    out
}

fn since(t: Option<DateTime<Utc>>, zone: Zone) -> String {
    t.map_or("-".into(), |t| zone.show(t, "%m-%d %H:%M:%S"))
}

/// `kubectl prescaler why`'s report.
pub fn why_text(r: &WhyReport, zone: Zone) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PredictiveScaler {}/{} scales {} (mode {})",
        r.namespace, r.name, r.target, r.mode
    );
    out.push_str(&why_status(&r.status));
    out.push_str("\nCONDITIONS\n");
    out.push_str(&conditions_table(&r.status, zone));
    let _ = writeln!(out, "\nEVENTS (newest first, times in {})", zone.name());
    if r.events.is_empty() {
        out.push_str("none\n");
    } else {
        out.push_str(&events_table(r, zone));
    }
    out
}

/// What the status says of the last decision, the calibration, the last scaling and the plan.
fn why_status(s: &PredictiveScalerStatus) -> String {
    let mut out = String::new();
    let num = |v: Option<i32>| v.map_or("-".to_string(), |v| v.to_string());
    match &s.reason {
        Some(reason) => {
            let _ = writeln!(
                out,
                "Decision: {} replicas ({reason}); current {}, forecast {}, reactive {}, scheduled floor {}",
                num(s.desired_replicas),
                num(s.current_replicas),
                num(s.forecast_replicas),
                num(s.reactive_replicas),
                num(s.scheduled_min_replicas)
            );
        }
        None => {
            let _ = writeln!(out, "Decision: none yet (see the conditions)");
        }
    }
    if let Some(l) = s.forecast_load {
        let _ = writeln!(out, "Forecast load within the lead time: {l}");
    }
    out.push_str(&metrics_table(s));
    if let Some(c) = &s.calibration {
        let _ = writeln!(
            out,
            "Calibration: {} +{}% +{} replicas; short {}% of the last day's minutes, {}% of the last week's ({}% bursts no forecast saw)",
            c.basis,
            c.margin_percent,
            c.extra_replicas,
            c.underprovisioned_percent_last_day,
            c.underprovisioned_percent_last_week,
            c.unforeseeable_percent_last_week
        );
    }
    if let Some(t) = &s.last_scale_time {
        let _ = writeln!(out, "Last scaled: {t}");
    }
    if let Some(p) = &s.plan {
        let peak = p.next_peak.as_ref().map_or("none".to_string(), |n| {
            format!(
                "{} replicas at {} ({}{})",
                n.replicas,
                n.at,
                n.reason,
                n.by.as_ref().map_or(String::new(), |b| format!(" {b}"))
            )
        });
        let _ = writeln!(out, "Plan ({}): next peak {peak}", p.computed_at);
    }
    out
}

/// With several metrics: the one that decided, and a line per metric (its live load, its
/// forecast within the lead time, the replicas it needs and the term that asks for them).
/// Nothing with one metric.
fn metrics_table(s: &PredictiveScalerStatus) -> String {
    if s.metrics.is_empty() {
        return String::new();
    }
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut out = String::new();
    if let Some(m) = &s.deciding_metric {
        let _ = writeln!(out, "Decided by metric {:?}", printable(m));
    }
    let mut table = vec![[
        "METRIC".to_string(),
        "LOAD".into(),
        "FORECAST".into(),
        "REPLICAS".into(),
        "TERM".into(),
    ]];
    for m in &s.metrics {
        table.push([
            printable(&m.name),
            num(m.load),
            num(m.forecast_load),
            m.replicas.to_string(),
            printable(&m.reason),
        ]);
    }
    out.push_str(&columns(&table));
    out
}

/// The status' conditions, with a header.
fn conditions_table(s: &PredictiveScalerStatus, zone: Zone) -> String {
    let mut table = vec![[
        "TYPE".to_string(),
        "STATUS".into(),
        "REASON".into(),
        "SINCE".into(),
        "MESSAGE".into(),
    ]];
    for c in &s.conditions {
        table.push([
            c.type_.clone(),
            c.status.clone(),
            printable(&c.reason),
            since(super::jiff_time(&c.last_transition_time.0), zone),
            printable(&c.message),
        ]);
    }
    columns(&table)
}

/// The scaler's Events, with a header.
fn events_table(r: &WhyReport, zone: Zone) -> String {
    let mut table = vec![[
        "TIME".to_string(),
        "TYPE".into(),
        "REASON".into(),
        "COUNT".into(),
        "MESSAGE".into(),
    ]];
    for e in &r.events {
        table.push([
            since(e.time, zone),
            printable(&e.type_),
            printable(&e.reason),
            e.count.to_string(),
            printable(&e.note),
        ]);
    }
    columns(&table)
}

/// `kubectl prescaler savings`: each scaler's account against the HPA, what it is and how it
/// is computed.
pub fn savings_table(rows: &[SavingsRow]) -> String {
    let mut out = String::from(
        "prescaler against an HPA on the same live metric, over the last 7 days (UTC days) the \
         operator counted.\nA model estimate, not a measurement: the backtest's model run on the \
         live metric, minute by minute — simulated pods with a start-up time, prescaler's \
         decisions against the HPA's algorithm at the operator's --savings-hpa-target-utilization; \
         a minute is short when fewer replicas are ready than ceil(load / targetPerReplica) \
         (with several metrics, the HPA on all of them and the highest count over them).\n\n",
    );
    let mut cells = vec![[
        "NAME".to_string(),
        "OVER".to_string(),
        "PRESCALER".to_string(),
        "HPA".to_string(),
        "PRESCALER VS HPA".to_string(),
    ]];
    for r in rows {
        let name = printable(&r.name);
        let Some(s) = &r.savings else {
            cells.push([
                name,
                "-".into(),
                "nothing counted yet".into(),
                "".into(),
                "".into(),
            ]);
            continue;
        };
        let total = ledger::totals(s);
        let span = match (
            DateTime::parse_from_rfc3339(&s.from),
            DateTime::parse_from_rfc3339(&s.through),
        ) {
            (Ok(from), Ok(through)) => ledger::span_words(through - from),
            _ => "-".into(),
        };
        let cost = |c: &ledger::Cost| {
            format!(
                "{} replica-hours, {} % short",
                ledger::replica_hours(c),
                ledger::short_percent(&total, c)
            )
        };
        let (ours, theirs) = (total.prescaler.replica_minutes, total.hpa.replica_minutes);
        let versus = match theirs {
            0 => "-".to_string(),
            _ => {
                let change = 100.0 * (theirs as f64 - ours as f64) / theirs as f64;
                let words = if change >= 0.0 { "fewer" } else { "more" };
                format!(
                    "{} % {words} replica-hours",
                    ledger::significant(change.abs(), 2)
                )
            }
        };
        cells.push([
            name,
            span,
            cost(&total.prescaler),
            format!("at {} %: {}", s.hpa_target_utilization, cost(&total.hpa)),
            versus,
        ]);
    }
    out.push_str(&columns(&cells));
    if let [
        SavingsRow {
            savings: Some(s), ..
        },
    ] = rows
    {
        let _ = writeln!(out, "\n{}", printable(&s.summary));
    }
    out
}

/// Left-aligned columns, the last one unpadded.
fn columns(rows: &[[String; 5]]) -> String {
    let mut widths = [0usize; 5];
    for r in rows {
        for (w, v) in widths.iter_mut().zip(r) {
            *w = (*w).max(v.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut l = String::new();
        for (i, v) in r.iter().enumerate() {
            l.push_str(v);
            if i < 4 {
                l.push_str(&" ".repeat(widths[i] - v.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// `text` without control characters: Events and conditions are written by whoever may write
/// them in the namespace, and a terminal must not take escape sequences from them.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_maximum_in_eighths() {
        assert_eq!(bar(0, 60, 40), "");
        assert_eq!(bar(60, 60, 40), "█".repeat(40));
        assert_eq!(bar(90, 60, 40), "█".repeat(40), "capped at the maximum");
        assert_eq!(bar(30, 60, 40), "█".repeat(20));
        // 1 of 60 over 40 cells is 5.3 eighths: five.
        assert_eq!(bar(1, 60, 40), "▋");
        assert_eq!(bar(1, 1000, 4), "▏", "never invisible");
    }

    #[test]
    fn rows_carry_the_offset_only_across_a_dst_change() {
        let berlin = Zone::Named("Europe/Berlin".parse().unwrap());
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // The night of the fall-back: 02:00-03:00 happens twice.
        let night = [
            t("2026-10-24T23:45:00Z"),
            t("2026-10-25T00:15:00Z"),
            t("2026-10-25T01:15:00Z"),
        ];
        let format = berlin.row_format(night);
        assert_eq!(format, "%a %H:%M %:z");
        assert_eq!(berlin.show(night[1], format), "Sun 02:15 +02:00");
        assert_eq!(berlin.show(night[2], format), "Sun 02:15 +01:00");
        // A February day: no offset shown.
        let day = [t("2026-02-20T06:50:00Z"), t("2026-02-21T06:45:00Z")];
        assert_eq!(berlin.row_format(day), "%a %H:%M");
    }

    #[test]
    fn why_shows_a_line_per_metric_and_the_one_that_decided() {
        use crate::api::MetricStatus;
        let mut status = PredictiveScalerStatus {
            desired_replicas: Some(8),
            reason: Some("Reactive".into()),
            deciding_metric: Some("queue".into()),
            metrics: vec![
                MetricStatus {
                    name: "requests".into(),
                    load: Some(100.0),
                    forecast_load: Some(120.0),
                    replicas: 2,
                    reason: "Forecast".into(),
                },
                MetricStatus {
                    name: "queue".into(),
                    load: Some(400.0),
                    forecast_load: None,
                    replicas: 8,
                    reason: "Reactive".into(),
                },
            ],
            ..Default::default()
        };
        let text = why_status(&status);
        assert!(text.contains("Decided by metric \"queue\""), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let row = |name: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_else(|| panic!("{name}: {text}"))
        };
        assert_eq!(row("requests"), ["requests", "100", "120", "2", "Forecast"]);
        assert_eq!(row("queue"), ["queue", "400", "-", "8", "Reactive"]);
        // One metric: no table.
        status.metrics.clear();
        status.deciding_metric = None;
        assert!(!why_status(&status).contains("METRIC"));
    }
}
