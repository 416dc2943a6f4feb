//! **decide**: bring each metric's history up to date (within the read limits and the backoff)
//! and ask the scaler's `Planner` (one metric) or `Several` (several) for the decision and,
//! once a quarter hour, the plan.

use std::time::Instant;

use chrono::{DateTime, DurationRound, Utc};
use kube::ResourceExt;
use tracing::warn;

use crate::adapters::history::{Deeper, Refresh};
use crate::api::{PlanStatus, PredictiveScaler, SavingsStatus, ValidatedSpec};
use crate::operator::backoff::{Failure, FailureKind, read_key};
use crate::operator::conditions::{self, Finding};
use crate::operator::telemetry::{HeldHistory, Metrics};
use crate::planning::forecast::History;
use crate::planning::ledger::{self, Tally};
use crate::planning::outlook;
use crate::planning::plan::Decision;
use crate::planning::planner::Planner;
use crate::planning::several::MetricFigures;

use super::context::{Context, Deciding, MetricReads, PlanMemo, ScalerState};
use super::observe::Target;

/// What the history refreshes found, one per metric in the spec's order.
pub(super) struct LoadRead {
    pub(super) metrics: Vec<MetricRead>,
}

/// What one metric's history refresh found.
pub(super) struct MetricRead {
    /// `spec.metrics[].name` (`load` for `spec.metric`).
    pub(super) name: String,
    /// Why there is no history this time: the read failed, or waits after failures.
    pub(super) failure: Option<Failure>,
    pub(super) refresh: Refresh,
    /// For a decision that calibrates: the history it reads, beyond the shared cache's.
    deep: Option<History>,
}

impl LoadRead {
    /// Whether every metric's history was read.
    pub(super) fn all_read(&self) -> bool {
        self.metrics.iter().all(|m| m.failure.is_none())
    }

    /// Whether this read says nothing new to publish: its failures are each the first, of a
    /// kind that passes (Prometheus unreachable or slow once), of a scaler whose metrics were
    /// available until now.
    pub(super) fn tells_nothing_new(&self, ps: &PredictiveScaler) -> bool {
        let available_until_now = ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::METRICS_AVAILABLE && c.status == "True")
        });
        let mut failures = self.metrics.iter().filter_map(|m| m.failure.as_ref());
        let passing = |f: &Failure| {
            f.in_a_row == 1 && matches!(f.kind, FailureKind::Unreachable | FailureKind::TimedOut)
        };
        let first = failures.next();
        first.is_some_and(passing) && failures.all(passing) && available_until_now
    }

    /// `MetricsAvailable`. With several metrics it names each metric that could not be read
    /// (`metric "queue": …`): the others still scale it up, but nothing scales it down. `listed`:
    /// the spec writes its metric as `spec.metrics` (a list of one names `spec.metrics[0].query`,
    /// the field the user wrote, not `spec.metric.query`).
    pub(super) fn finding(
        &self,
        decision: &Decision,
        figures: &[MetricFigures],
        listed: bool,
    ) -> Finding {
        let rejected = self.metrics.iter().map(|m| m.refresh.rejected).sum();
        if let [one] = self.metrics.as_slice() {
            return match &one.failure {
                Some(f) => Finding::new(
                    conditions::METRICS_AVAILABLE,
                    false,
                    f.reason(),
                    match listed {
                        true => f.message_of("spec.metrics[0].query"),
                        false => f.message(),
                    },
                ),
                None => conditions::metrics_finding(decision, None, rejected),
            };
        }
        let failed: Vec<(usize, &str, &Failure)> = self
            .metrics
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, m.name.as_str(), m.failure.as_ref()?)))
            .collect();
        // Read, but without a live load in the last minutes.
        let silent: Vec<&str> = figures
            .iter()
            .zip(&self.metrics)
            .filter(|(f, m)| f.load.is_none() && m.failure.is_none())
            .map(|(f, _)| f.name.as_str())
            .collect();
        if let Some((_, _, first)) = failed.first() {
            let mut each: Vec<String> = failed
                .iter()
                .map(|(i, name, f)| {
                    let field = format!("spec.metrics[{i}].query");
                    format!("metric {name:?}: {}", f.message_of(&field))
                })
                .collect();
            each.extend(silent.iter().map(|name| conditions::silent_metric(name)));
            return Finding::new(
                conditions::METRICS_AVAILABLE,
                false,
                first.reason(),
                each.join("; "),
            );
        }
        match silent.is_empty() {
            true => conditions::metrics_finding(decision, None, rejected),
            false => conditions::silent_metrics_finding(&silent),
        }
    }
}

/// What a decision reads of a metric's history.
enum Read {
    /// Nothing: the read failed, or waits after failures.
    Failed,
    /// The shared cache, read up to now.
    Cache,
    /// A calibration's history, read for it.
    Calibration(History),
}

/// What a decision did to the scaler's account against the HPA (`planning::ledger`): the minutes
/// it counted, for the metrics, and `status.savings`.
pub(super) struct Savings {
    pub(super) added: Tally,
    pub(super) status: Option<SavingsStatus>,
}

/// What `decide` found and decided.
pub(super) struct Outcome {
    pub(super) decision: Decision,
    /// With several metrics, what each proposed (`status.metrics`); empty with one.
    pub(super) figures: Vec<MetricFigures>,
    pub(super) load: LoadRead,
    pub(super) plan: Option<PlanStatus>,
    pub(super) savings: Savings,
}

/// Brings each metric's history up to date and asks the scaler's decider; and its plan, when
/// the last one is older than its quarter hour or was made for another spec. The decision is entered in the scaler's account against the HPA, and the minutes whose
/// load has settled are counted.
#[tracing::instrument(skip_all)]
pub(super) async fn decide(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &Target,
    now: DateTime<Utc>,
) -> Outcome {
    let state = ctx
        .state_for(&ps.uid().unwrap_or_default(), ps, &target.spec)
        .await;
    let mut state = state.lock_owned().await;
    state.deciding.update_spec(&target.spec);
    take_histories(ctx, &mut state, &target.queries);
    // One metric after the other, each within its own backoff: a reconcile's reads grow with
    // its metrics (at most `Limits::MAX_METRICS`), and one metric's failure does not keep the
    // others from being read.
    let mut load = LoadRead {
        metrics: Vec::with_capacity(state.metrics.len()),
    };
    for i in 0..state.metrics.len() {
        let read = gated_read(ps, ctx, &mut state, i, now).await;
        load.metrics.push(read);
    }
    let reads: Vec<Read> = load
        .metrics
        .iter_mut()
        .map(|m| match (&m.failure, m.deep.take()) {
            (Some(_), _) => Read::Failed,
            (None, Some(deep)) => Read::Calibration(deep),
            (None, None) => Read::Cache,
        })
        .collect();
    let made_for = (
        now.duration_trunc(outlook::STEP).unwrap_or(now),
        ps.metadata.generation,
        target.spec.lead_time.num_seconds(),
    );
    let replicas = target.workload.replicas();
    let model = savings_model(
        &target.spec,
        state.survey.as_ref().and_then(|(_, s)| s.startup),
    );
    let (decision, figures, plan, savings) = plan(
        state,
        reads,
        replicas,
        now,
        made_for,
        model,
        ctx.metrics.clone(),
    )
    .await;
    Outcome {
        decision,
        figures,
        load,
        plan,
        savings,
    }
}

/// Gives each metric the history of its query as sent and its planner's resting needs, shared
/// with every scaler that sends the same (`shared_history`): keyed as with one metric, so a
/// metric's history is one entry of the map whether its scaler has one metric or several.
fn take_histories(ctx: &Context, state: &mut ScalerState, queries: &[String]) {
    let ScalerState {
        deciding,
        metrics,
        held,
        ..
    } = state;
    let planners = deciding.planners();
    metrics.truncate(planners.len().min(queries.len()));
    for (i, (planner, query)) in planners.iter().zip(queries).enumerate() {
        let needs = planner.resting_needs();
        match metrics.get_mut(i) {
            Some(m) if m.history_for.0 == *query && m.history_for.1 == needs => {}
            Some(m) => {
                // Another query at this place in the list (a metric removed before it, the
                // list reordered, the query edited): what the last calibration found of the
                // old series' first sample is not this one's.
                if m.history_for.0 != *query {
                    m.samples_since = None;
                }
                m.history = ctx.histories.handle(query, needs);
                m.history_for = (query.clone(), needs);
                *held = None;
            }
            None => {
                metrics.push(MetricReads {
                    history: ctx.histories.handle(query, needs),
                    history_for: (query.clone(), needs),
                    reads: crate::operator::backoff::ReadBackoff::new(ctx.settings.sync_period),
                    samples_since: None,
                });
                *held = None;
            }
        }
    }
}

/// The model the scaler's account runs: the spec's bounds, and pods that start in what
/// `leadTime: Auto` learned (the start-ups' 90th percentile, rounded up to a minute), else in
/// the backtest's default. (With several metrics the account takes each metric's
/// `targetPerReplica` from its planner.)
fn savings_model(spec: &ValidatedSpec, learned: Option<chrono::Duration>) -> ledger::Model {
    let startup = learned.map_or(ledger::DEFAULT_STARTUP, |s| {
        let minutes = (s.num_seconds().max(0) + 59) / 60;
        chrono::Duration::minutes(minutes).min(ledger::MAX_STARTUP)
    });
    ledger::Model {
        target_per_replica: spec.target_per_replica,
        min_replicas: spec.min_replicas,
        max_replicas: spec.max_replicas,
        startup,
    }
}

/// Reads metric `i`'s load unless the backoff after its failed reads says to wait (see
/// `backoff`): a query Prometheus cannot answer in time is not sent again at every sync. A read
/// that timed out or took half the timeout marks its namespace as slow (see `fair_queue`).
async fn gated_read(
    ps: &PredictiveScaler,
    ctx: &Context,
    state: &mut ScalerState,
    i: usize,
    now: DateTime<Utc>,
) -> MetricRead {
    let ScalerState {
        deciding,
        metrics,
        held,
        ..
    } = state;
    let name = deciding
        .planners()
        .get(i)
        .and_then(|p| p.spec().metrics.get(i))
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let (Some(planner), Some(reads)) = (deciding.planners().get(i), metrics.get_mut(i)) else {
        // `take_histories` gives every planner its reads: nothing to read otherwise.
        return MetricRead {
            name,
            failure: None,
            refresh: Refresh::default(),
            deep: None,
        };
    };
    let key = read_key(ps.metadata.generation, &reads.history_for.0);
    if let Some(waiting) = reads.reads.gate(key, Instant::now()).cloned() {
        return MetricRead {
            name,
            failure: Some(waiting),
            refresh: Refresh::default(),
            deep: None,
        };
    }
    let started = Instant::now();
    let load = read_load(ps, ctx, planner, reads, held, name, now).await;
    let timed_out = load
        .failure
        .as_ref()
        .is_some_and(|f| f.kind == FailureKind::TimedOut);
    if timed_out || started.elapsed() >= ctx.source.read_timeout() / 2 {
        // Its reconciles hold fewer slots for a while.
        ctx.admission.suspect(&ps.namespace().unwrap_or_default());
    }
    load
}

/// The decider's decision and, when the memo is older than `made_for`, a new plan. The planners' work (the histories' series, the decision, a plan of 96 decisions ahead)
/// is CPU only: it runs on the blocking pool, so that one scaler's expensive spec cannot hold up
/// the runtime's workers, which renew the Lease and read the watches.
async fn plan(
    mut state: tokio::sync::OwnedMutexGuard<ScalerState>,
    reads: Vec<Read>,
    replicas: u32,
    now: DateTime<Utc>,
    made_for: (DateTime<Utc>, Option<i64>, i64),
    model: ledger::Model,
    metrics: std::sync::Arc<Metrics>,
) -> (Decision, Vec<MetricFigures>, Option<PlanStatus>, Savings) {
    let planned = tokio::task::spawn_blocking(move || {
        let state = &mut *state;
        // Each series is made under its shared history's lock (on this blocking thread: no
        // reconcile holds it across an await while it waits), then the lock is let go.
        // A calibration's history was read for it; the others are the shared cache's, known
        // to have had samples before it since the last calibration's read.
        let histories: Vec<Option<History>> = reads
            .into_iter()
            .zip(&state.metrics)
            .map(|(read, m)| match read {
                Read::Calibration(deep) => Some(deep),
                Read::Cache => m
                    .history
                    .blocking_lock()
                    .cache
                    .history()
                    .map(|h| h.with_samples_before(m.samples_since)),
                Read::Failed => None,
            })
            .collect();
        match &mut state.deciding {
            Deciding::One(planner) => {
                let history = histories.into_iter().next().flatten();
                let decided_at = Instant::now();
                let decision = planner.decide(history.as_ref(), replicas, now);
                metrics.decision_timed(decided_at.elapsed());
                let plan = refresh_plan(
                    &mut state.plan,
                    made_for,
                    history.is_some(),
                    &metrics,
                    || {
                        outlook::outlook(
                            planner,
                            history.as_ref(),
                            now,
                            outlook::STEP,
                            outlook::HORIZON,
                        )
                    },
                );
                // Minutes are counted only on a history read now: without one, they wait for
                // the next.
                state
                    .ledger
                    .decided_in(now, decision.desired_replicas, decision.quiet.is_some());
                let added = match &history {
                    Some(history) => state.ledger.account(history, &model, now),
                    None => Tally::default(),
                };
                let savings = Savings {
                    added,
                    status: state.ledger.status(&model),
                };
                (decision, Vec::new(), plan, savings)
            }
            Deciding::Several(several) => {
                let histories: Vec<Option<&History>> =
                    histories.iter().map(Option::as_ref).collect();
                let decided_at = Instant::now();
                // `Several` follows the HPA's `computeReplicasForMetrics` (kubernetes
                // `pkg/controller/podautoscaler/horizontal.go`): the highest count over the
                // metrics decides, and a metric that could not be read (`None` here) lets the
                // others raise the count but keeps it from going down.
                let decided = several.decide(&histories, replicas, now);
                metrics.decision_timed(decided_at.elapsed());
                // The plan of the metrics (`outlook_of_metrics`), on every metric's history.
                let plan = refresh_plan(
                    &mut state.plan,
                    made_for,
                    histories.iter().all(Option::is_some),
                    &metrics,
                    || {
                        outlook::outlook_of_metrics(
                            several,
                            &histories,
                            now,
                            outlook::STEP,
                            outlook::HORIZON,
                        )
                    },
                );
                // The account against an HPA on the same metrics (`Ledger::account_metrics`):
                // counted only on every metric's history read now, as a minute needs every
                // metric's sample; otherwise the minutes wait for a reconcile that reads them.
                let decision = &decided.decision;
                state
                    .ledger
                    .decided_in(now, decision.desired_replicas, decision.quiet.is_some());
                let each: Option<Vec<(&History, f64)>> = histories
                    .iter()
                    .zip(several.planners())
                    .map(|(h, p)| Some(((*h)?, p.spec().target_per_replica)))
                    .collect();
                let added = match each {
                    Some(each) if each.len() == histories.len() => {
                        state.ledger.account_metrics(&each, &model, now)
                    }
                    _ => Tally::default(),
                };
                let savings = Savings {
                    added,
                    status: state.ledger.status(&model),
                };
                (decided.decision, decided.metrics, plan, savings)
            }
        }
    })
    .await;
    match planned {
        Ok(decided) => decided,
        // A panic in the planner is this reconcile's, caught and reported by `catch_panic`.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the planner's task did not finish: {e}"),
    }
}
/// The scaler's plan (`status.plan`), made again by `make` (and timed) when the last one was
/// made for another quarter hour, spec generation or lead time and the histories it reads were
/// read now (`read_now`). Otherwise the last plan stands until a reconcile that reads them (when
/// Prometheus failed this time): a plan of held steps would say nothing for a quarter hour.
fn refresh_plan(
    plan: &mut Option<PlanMemo>,
    made_for: (DateTime<Utc>, Option<i64>, i64),
    read_now: bool,
    metrics: &Metrics,
    make: impl FnOnce() -> Option<outlook::Outlook>,
) -> Option<PlanStatus> {
    if read_now && plan.as_ref().is_none_or(|p| p.made_for != made_for) {
        let planned_at = Instant::now();
        let made = make();
        metrics.plan_timed(planned_at.elapsed());
        *plan = made.map(|o| PlanMemo {
            made_for,
            status: o.summary(),
        });
    }
    plan.as_ref().map(|p| p.status.clone())
}

/// Reads one metric's load history up to `now` into its cache (within the reconcile's slot, see
/// `fair_queue`), and records the outcome in its backoff.
async fn read_load(
    ps: &PredictiveScaler,
    ctx: &Context,
    planner: &Planner,
    reads: &mut MetricReads,
    held: &mut Option<HeldHistory>,
    name: String,
    now: DateTime<Utc>,
) -> MetricRead {
    let started = Instant::now();
    // A decision that calibrates reads the calibration's week beyond the shared cache: each
    // metric's planner calibrates on its own metric.
    let deeper = Deeper::for_decision(planner, now);
    let history = reads.history.clone();
    let mut shared = history.lock().await;
    // Another scaler with the same query read it within half a sync: its read stands for this
    // one (`shared_history`).
    let newest = !shared.fresh(now, ctx.settings.sync_period / 2);
    let refreshed = shared
        .cache
        .read(&*ctx.source, now, newest, deeper.as_ref())
        .await;
    if refreshed.is_ok() && newest {
        shared.read(now);
    }
    drop(shared);
    ctx.metrics.history_refreshed(
        started.elapsed(),
        refreshed.as_ref().ok().map(|(r, _)| r.queries),
    );
    match refreshed {
        Ok((refresh, deep)) => {
            reads.reads.succeeded();
            if held.is_none() {
                *held = Some(ctx.metrics.history_held());
            }
            if let Some(deep) = &deep {
                reads.samples_since = deep.samples_since;
            }
            MetricRead {
                name,
                failure: None,
                refresh,
                deep: deep.map(|d| d.history),
            }
        }
        Err(e) => {
            let failure = reads
                .reads
                .failed(FailureKind::of(&e), e.to_string(), Instant::now());
            warn!(
                namespace = ps.namespace(),
                name = ps.name_any(),
                metric = %name,
                error = %e,
                retry_in = ?failure.retry_in,
                "reading the load failed"
            );
            MetricRead {
                name,
                failure: Some(failure.clone()),
                refresh: Refresh::default(),
                deep: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as StdDuration;

    /// A metric whose query timed out three times in a row.
    fn timed_out(name: &str) -> MetricRead {
        MetricRead {
            name: name.into(),
            failure: Some(Failure {
                kind: FailureKind::TimedOut,
                error: "no answer within 10s".into(),
                in_a_row: 3,
                timeouts_in_a_row: 3,
                retry_in: StdDuration::from_secs(120),
            }),
            refresh: Refresh::default(),
            deep: None,
        }
    }

    #[test]
    fn a_failed_read_names_the_field_the_spec_wrote() {
        // What the decision held does not enter a failed read's message.
        let decision = Decision {
            desired_replicas: 3,
            reason: crate::planning::plan::Reason::Reactive,
            floor_replicas: 1,
            load: None,
            reactive_replicas: None,
            live_replicas: None,
            forecast_replicas: None,
            forecast_load: None,
            calibration: None,
            scheduled: None,
            cap: None,
            excluded: None,
            metrics_available: false,
            observed_history: chrono::Duration::zero(),
            quiet: None,
            metric: None,
        };
        let one = LoadRead {
            metrics: vec![timed_out("load")],
        };
        // `spec.metric`: as it always said.
        let f = one.finding(&decision, &[], false);
        assert_eq!(f.reason, "QueryTimeout");
        assert!(
            f.message.starts_with("spec.metric.query timed out 3 times"),
            "{}",
            f.message
        );
        // A list of one in `spec.metrics`: the field written.
        let f = one.finding(&decision, &[], true);
        assert!(
            f.message
                .starts_with("spec.metrics[0].query timed out 3 times"),
            "{}",
            f.message
        );
    }
}
