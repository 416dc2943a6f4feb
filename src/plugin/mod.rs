//! `kubectl prescaler`: what a PredictiveScaler will do, and why it did what it did, from a
//! terminal. The logic lives here, taking a `kube::Client` and a history source (`RangeSource`:
//! Prometheus, or a recorded trace in tests), so that it is tested end to end in-process; the
//! binary (`src/bin/kubectl-prescaler`) only parses flags, builds the clients and prints.
//!
//! - `plan`: the next 24 hours at 15-minute steps, computed here with the operator's own planner
//!   and `planning::outlook`, from the cluster's spec, the metric's history read as
//!   `prescaler backtest --prometheus-url` reads it (each metric's with several, planned as the
//!   operator plans them: `outlook_of_metrics`), and the target's replicas from its `/scale`;
//! - `why`: the last decisions and their reasons: status, conditions and the scaler's Events,
//!   newest first;
//! - `backtest`: `prescaler backtest` on the cluster's spec and Prometheus, every metric's query
//!   read and replayed as the columns of a CSV are (`backtest::trace::metrics_from_prometheus`);
//!
//! `plan` and `backtest` read the history as the operator does, from Prometheus and the long-term
//! store beside it when one is set (`--history-prometheus-url`, `adapters::long_term`), and say
//! so, in the operator's `HistoryAvailable` words, when less came back than they asked for.
//! - `savings`: what the operator counted on the live metric against an HPA (`status.savings`),
//!   for one scaler or every one in a namespace.

pub mod render;

use chrono::{DateTime, Duration, DurationRound, Utc};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::adapters::history::RangeSource;
use crate::adapters::kubernetes::{self, call, get_predictive_scaler};
use crate::api::{
    Limits, PredictiveScaler, PredictiveScalerStatus, SavingsStatus, ValidatedSpec, ics,
};
use crate::backtest::{self, Outcome, Setup, manifest, trace::Trace};
use crate::placement;
use crate::planning::coverage::MetricHistory;
use crate::planning::forecast::{COARSE_BLOCK, History, ModelConfig};
use crate::planning::outlook::{self, Outlook};
use crate::planning::planner::Planner;
use crate::planning::several::Several;
use crate::{Error, Result};

/// The metric's history for `spec` up to `now`, read as `prescaler backtest --prometheus-url` reads
/// it (one-minute steps; gaps stay gaps), as far back as the planner's calibration reads, and
/// at least the spec's whole history, so that `HistoryAvailable` says what the source holds.
pub async fn read_history(
    source: &(impl RangeSource + ?Sized),
    spec: &ValidatedSpec,
    query: &str,
    now: DateTime<Utc>,
) -> Result<History> {
    let needs = Planner::new(spec.clone(), ModelConfig::default()).history_needs();
    let span = needs.span.max(spec.history + COARSE_BLOCK);
    let trace = backtest::trace::from_prometheus(source, query, span, now).await?;
    Ok(History::new(
        trace.start,
        Duration::minutes(1),
        trace.metric(),
    ))
}

/// What `plan` found: the scaler, the target's replicas and the outlook.
pub struct PlanReport {
    pub namespace: String,
    pub name: String,
    pub target: String,
    pub spec: ValidatedSpec,
    pub current_replicas: u32,
    /// Where `current_replicas` came from, when not from the target's `/scale`.
    pub notes: Vec<String>,
    pub outlook: Outlook,
}

/// The plan of PredictiveScaler `namespace/name` from `now`: the decision now and every 15
/// minutes of the next 24 hours, by the operator's planner.
pub async fn plan(
    client: &kube::Client,
    source: &(impl RangeSource + ?Sized),
    namespace: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<PlanReport> {
    let scaler = get_predictive_scaler(client, namespace, name).await?;
    let mut spec = scaler.spec.validate()?;
    let target_ref = &scaler.spec.scale_target_ref;
    let target = target_ref.to_string();
    let mut notes = Vec::new();
    // `leadTime: Auto`: the lead time the operator learned and uses (its status says), within
    // the bounds any lead time has.
    if spec.lead_time_auto
        && let Some(learned) = scaler
            .status
            .as_ref()
            .and_then(|s| s.lead_time.as_ref())
            .map(|l| chrono::Duration::seconds(l.seconds))
            .filter(|d| (Limits::MIN_LEAD_TIME..=Limits::MAX_LEAD_TIME).contains(d))
    {
        spec.lead_time = learned;
        notes.push(format!(
            "leadTime is Auto: planned with the {} the operator learned",
            crate::api::format_duration(learned)
        ));
    }
    // The calendar's `.ics` files, merged as the operator merges them; one that cannot be read
    // or expanded is said, and the plan made without the files (as the operator plans after a
    // start with a broken one: the spec's own calendar alone).
    let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
    let span = (day - ics::SPAN_BEFORE, day + ics::SPAN_AFTER);
    notes
        .extend(merge_calendar_files(client, namespace, &scaler, &mut spec, span, "planned").await);
    let current_replicas = match kubernetes::resolve(client, namespace, target_ref).await? {
        Ok(workload) => workload.replicas(),
        Err(problem) => {
            // The plan is still worth seeing: start from what the operator last saw.
            let seen = scaler
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .map_or(spec.min_replicas, |r| r.max(0) as u32);
            notes.push(format!(
                "{}: planned from {seen} replicas",
                problem.message()
            ));
            seen
        }
    };
    // Each metric's history, and its decider, as the operator holds them: one planner, or one
    // `Several` over a planner a metric.
    let mut histories = Vec::with_capacity(spec.metrics.len());
    for metric in &spec.metrics {
        histories.push(read_history(source, &spec, &metric.query, now).await?);
    }
    let views: Vec<Option<&History>> = histories.iter().map(Some).collect();
    // Calibrated at the scaler's own boundaries, as the operator calibrates it.
    let model = placement::scaler_model(&ModelConfig::default(), namespace, name);
    let (observed, outlook) = match spec.several_metrics() {
        false => {
            let mut planner = Planner::new(spec.clone(), model);
            let decision = planner.decide(views[0], current_replicas, now);
            let outlook =
                outlook::outlook(&planner, views[0], now, outlook::STEP, outlook::HORIZON);
            let observed = vec![decision.observed_history];
            (observed, outlook)
        }
        true => {
            let mut several = Several::new(&spec, model);
            let decided = several.decide(&views, current_replicas, now);
            let observed = decided.metrics.iter().map(|m| m.observed_history).collect();
            let outlook =
                outlook::outlook_of_metrics(&several, &views, now, outlook::STEP, outlook::HORIZON)
                    .map(|mut o| {
                        // A step's forecast load is in the unit of the metric that decided it, which
                        // the plan does not name: left out rather than read in another's unit.
                        o.steps.iter_mut().for_each(|s| s.forecast_load = None);
                        o.now.forecast_load = None;
                        o
                    });
            (observed, outlook)
        }
    };
    // As the operator's condition says it: of forecast.history, each metric from its planner's
    // first sample and its own source (a store may fail one query's read and answer another's).
    let fallbacks: Vec<Option<String>> = spec
        .metrics
        .iter()
        .map(|m| source.fallback(&m.query))
        .collect();
    let metrics: Vec<MetricHistory<'_>> = spec
        .metrics
        .iter()
        .zip(&observed)
        .zip(&fallbacks)
        .map(|((m, observed), fallback)| MetricHistory {
            name: &m.name,
            observed: *observed,
            from: backtest::trace::history_from(source, fallback.as_deref()),
        })
        .collect();
    notes.extend(backtest::trace::short_history_note_of_metrics(
        &metrics,
        spec.history,
        &spec.seasonality,
    ));
    let outlook = outlook.ok_or_else(|| Error::Config {
        what: "the plan".into(),
        message: "the planner made no decision to plan from".into(),
    })?;
    if outlook.held {
        notes.push(
            "no calibrated forecast yet (about a day of history is needed): the plan holds the decision now, and the peak windows' floors".into(),
        );
    }
    Ok(PlanReport {
        namespace: namespace.into(),
        name: name.into(),
        target,
        spec,
        current_replicas,
        notes,
        outlook,
    })
}

/// One step of the plan, as `-o json|yaml` prints it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    pub at: String,
    pub replicas: u32,
    /// The term that decides, as in `status.reason`.
    pub reason: &'static str,
    /// The peak window or the forecast basis behind `reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_load: Option<f64>,
    /// The peak window open at `at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_window: Option<String>,
    /// The scheduled floor asked for (a window open within the lead time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_min_replicas: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// `plan -o json|yaml`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PlanDocument {
    pub namespace: String,
    pub name: String,
    pub target: String,
    pub current_replicas: u32,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub step: String,
    pub held: bool,
    pub notes: Vec<String>,
    /// The decision now, then every step.
    pub steps: Vec<PlanRow>,
    pub summary: crate::api::PlanStatus,
}

/// Merges into `spec` the `.ics` files of `scaler`'s ConfigMaps (in its own namespace),
/// expanded over `span`; when they cannot be read or expanded, leaves `spec` as it is (as the
/// operator does after a start with a broken one) and returns a note saying so and what was
/// `done` without them.
async fn merge_calendar_files(
    client: &kube::Client,
    namespace: &str,
    scaler: &PredictiveScaler,
    spec: &mut ValidatedSpec,
    span: (DateTime<Utc>, DateTime<Utc>),
    done: &str,
) -> Option<String> {
    if scaler.spec.calendar.config_map_refs.is_empty() {
        return None;
    }
    match calendar_files(client, namespace, scaler, spec, span).await {
        Ok(merged) => {
            *spec = merged;
            None
        }
        Err(problem) => Some(format!(
            "{problem}: {done} without the calendar's .ics files"
        )),
    }
}

/// `spec` with the `.ics` files of `scaler`'s ConfigMaps expanded over `[from, to)`, or why not.
async fn calendar_files(
    client: &kube::Client,
    namespace: &str,
    scaler: &PredictiveScaler,
    spec: &ValidatedSpec,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> std::result::Result<ValidatedSpec, String> {
    let mut texts = Vec::new();
    for r in &scaler.spec.calendar.config_map_refs {
        let read = kubernetes::config_map_text(client, namespace, &r.name, &r.key).await;
        match read.map_err(|e| e.to_string())? {
            kubernetes::ConfigMapText::Found { text, .. } => texts.push(text),
            kubernetes::ConfigMapText::NotFound => {
                return Err(format!("ConfigMap {namespace}/{} not found", r.name));
            }
            kubernetes::ConfigMapText::NoKey { .. } => {
                return Err(format!(
                    "ConfigMap {namespace}/{} has no key {:?}",
                    r.name, r.key
                ));
            }
        }
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    ics::expand(&scaler.spec.calendar, &texts, from, to)
        .and_then(|entries| spec.with_ics(&entries))
        .map_err(|e| e.to_string())
}

fn row(s: &outlook::Step) -> PlanRow {
    PlanRow {
        at: s.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        replicas: s.replicas,
        reason: s.reason.as_str(),
        by: outlook::decided_by(&s.reason),
        forecast_load: s.forecast_load.map(|v| (v * 1000.0).round() / 1000.0),
        peak_window: s.window_open.clone(),
        scheduled_min_replicas: s.scheduled.as_ref().map(|f| f.min_replicas),
        held: s.held,
    }
}

impl PlanReport {
    pub fn document(&self) -> PlanDocument {
        PlanDocument {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            target: self.target.clone(),
            current_replicas: self.current_replicas,
            min_replicas: self.spec.min_replicas,
            max_replicas: self.spec.max_replicas,
            step: crate::api::format_duration(outlook::STEP),
            held: self.outlook.held,
            notes: self.notes.clone(),
            steps: std::iter::once(&self.outlook.now)
                .chain(&self.outlook.steps)
                .map(row)
                .collect(),
            summary: self.outlook.summary(),
        }
    }
}

/// One Event about the scaler.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    /// The last time it happened.
    pub time: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub count: i32,
    pub note: String,
}

/// What `why` found.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WhyReport {
    pub namespace: String,
    pub name: String,
    pub target: String,
    pub mode: String,
    pub status: PredictiveScalerStatus,
    /// Newest first.
    pub events: Vec<EventRow>,
}

fn jiff_time(t: &k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), 0)
}

fn event_row(e: &Event) -> EventRow {
    // The last time it happened: a series' last observation, else the event's own time, else
    // the older API's fields, else when the object was made.
    let time = e
        .series
        .as_ref()
        .map(|s| &s.last_observed_time.0)
        .or(e.event_time.as_ref().map(|t| &t.0))
        .or(e.deprecated_last_timestamp.as_ref().map(|t| &t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| &t.0))
        .and_then(jiff_time);
    EventRow {
        time,
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        count: e
            .series
            .as_ref()
            .map(|s| s.count)
            .or(e.deprecated_count)
            .unwrap_or(1),
        note: e.note.clone().unwrap_or_default(),
    }
}

/// The last decisions of `namespace/name` and their reasons: its status, conditions and the
/// `limit` newest Events about it.
pub async fn why(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    limit: usize,
) -> Result<WhyReport> {
    let scaler = get_predictive_scaler(client, namespace, name).await?;
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    // The server filters by the object; the check below keeps a server that does not (or an
    // Event about a namespace-mate of the same name and another kind) out.
    let params = ListParams::default().fields(&format!(
        "regarding.kind=PredictiveScaler,regarding.name={name}"
    ));
    let listed = call("listing Events", api.list(&params)).await?;
    let mut events: Vec<EventRow> = listed
        .items
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.name.as_deref() == Some(name) && r.kind.as_deref() == Some("PredictiveScaler")
            })
        })
        .map(event_row)
        .collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.time));
    events.truncate(limit);
    let target_ref = &scaler.spec.scale_target_ref;
    Ok(WhyReport {
        namespace: namespace.into(),
        name: name.into(),
        target: target_ref.to_string(),
        mode: format!("{:?}", scaler.spec.mode),
        status: scaler.status.clone().unwrap_or_default(),
        events,
    })
}

/// What `backtest` replayed.
pub struct BacktestReport {
    pub trace: Trace,
    pub setup: Setup,
    pub outcome: Outcome,
    pub warnings: Vec<String>,
    /// How the replay read the spec (`leadTime: Auto`), for standard error.
    pub notes: Vec<String>,
}

/// `prescaler backtest --prometheus-url … --scaler NAME`: the last `range` of the scaler's
/// queries replayed through its spec, the last 7 days of it scored. Each metric's query is read
/// as it is written (`backtest_confined` confines them as the operator does).
pub async fn backtest(
    client: &kube::Client,
    source: &(impl RangeSource + ?Sized),
    namespace: &str,
    name: &str,
    range: Duration,
    now: DateTime<Utc>,
) -> Result<BacktestReport> {
    backtest_confined(client, source, namespace, name, range, now, None).await
}

/// `backtest`, each metric's query confined to `namespace` by `namespace_label` when it is
/// `Some` (`--confine-queries-to-namespace`), as the operator so configured sends it. Every
/// metric of the spec is read (`backtest::trace::metrics_from_prometheus`) and replayed as the
/// columns of a CSV are (`backtest::run_all_metrics`): one metric as it always was, several
/// each on its own history, scored on their need in replicas.
pub async fn backtest_confined(
    client: &kube::Client,
    source: &(impl RangeSource + ?Sized),
    namespace: &str,
    name: &str,
    range: Duration,
    now: DateTime<Utc>,
    namespace_label: Option<&str>,
) -> Result<BacktestReport> {
    let scaler = get_predictive_scaler(client, namespace, name).await?;
    let warnings = manifest::warnings(&scaler);
    let mut spec = scaler.spec.validate()?;
    let queries = backtest::trace::metric_queries(
        &spec,
        !scaler.spec.metrics.is_empty(),
        namespace_label.map(|label| (label, namespace)),
    )?;
    let read =
        backtest::trace::metrics_from_prometheus(source, &queries, range, &spec.seasonality, now)
            .await?;
    let traces = read.traces;
    let trace_name = match traces.as_slice() {
        [one] => one.name.clone(),
        _ => backtest::trace::metrics_name(&queries),
    };
    let setup = Setup::for_recent(&traces[0], range);
    let short = read.note;
    let mut notes: Vec<String> = short.iter().cloned().collect();
    notes.extend(backtest::resolve_auto_lead_time(&mut spec, &setup));
    // The calendar's `.ics` files over the trace's span and a day after it, as `prescaler
    // backtest` expands a manifest's (a floor ahead of the trace's end).
    let first = &traces[0];
    let end = first.start + Duration::minutes(first.minutes() as i64) + Duration::days(1);
    let span = (first.start, end);
    notes.extend(
        merge_calendar_files(client, namespace, &scaler, &mut spec, span, "replayed").await,
    );
    let model = placement::scaler_model(&ModelConfig::default(), namespace, name);
    let (trace, _, outcome) = backtest::run_all_metrics(&trace_name, traces, &setup, &spec, &model)
        .map_err(|e| with_history_note(e, short.as_deref()))?;
    Ok(BacktestReport {
        trace,
        setup,
        outcome,
        warnings,
        notes,
    })
}

/// A replay that could not be scored ("nothing to score") on a history that came back short
/// says why it is short: the error is all the user sees, and the notes would be lost with it.
fn with_history_note(error: Error, note: Option<&str>) -> Error {
    match (error, note) {
        (Error::Trace { path, message }, Some(note)) => Error::Trace {
            path,
            message: format!("{message}; {note}"),
        },
        (error, _) => error,
    }
}

/// One scaler's account against the HPA, as its status holds it (`None`: nothing counted yet).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavingsRow {
    pub namespace: String,
    pub name: String,
    pub savings: Option<SavingsStatus>,
}

/// `status.savings` of PredictiveScaler `namespace/name`, or of every one in `namespace` (by
/// name). Read from the cluster: the operator counts, this prints.
pub async fn savings(
    client: &kube::Client,
    namespace: &str,
    name: Option<&str>,
) -> Result<Vec<SavingsRow>> {
    let scalers = match name {
        Some(name) => vec![get_predictive_scaler(client, namespace, name).await?],
        None => {
            let api: Api<PredictiveScaler> = Api::namespaced(client.clone(), namespace);
            let listed = call(
                "listing PredictiveScalers",
                api.list(&ListParams::default()),
            )
            .await?;
            listed.items
        }
    };
    let mut rows: Vec<SavingsRow> = scalers
        .into_iter()
        .map(|s| SavingsRow {
            namespace: namespace.to_string(),
            name: kube::ResourceExt::name_any(&s),
            savings: s.status.and_then(|st| st.savings),
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}
