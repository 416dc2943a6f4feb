//! **decide**: bring the scaler's history up to date (within the read limits and the backoff)
//! and ask its `Planner` for the decision and, once a quarter hour, the plan.

use std::time::Instant;

use chrono::{DateTime, DurationRound, Utc};
use kube::ResourceExt;
use tracing::warn;

use crate::adapters::history::{Deeper, Refresh};
use crate::api::{PlanStatus, PredictiveScaler, SavingsStatus, ValidatedSpec};
use crate::operator::backoff::{Failure, FailureKind, read_key};
use crate::operator::conditions::{self, Finding};
use crate::planning::forecast::History;
use crate::planning::ledger::{self, Tally};
use crate::planning::outlook;
use crate::planning::plan::Decision;

use super::context::{Context, PlanMemo, ScalerState};
use super::observe::Target;

/// What the history refresh found.
pub(super) struct LoadRead {
    /// Why there is no history this time: the read failed, or waits after failures.
    pub(super) failure: Option<Failure>,
    pub(super) refresh: Refresh,
    /// For a decision that calibrates: the history it reads, beyond the shared cache's.
    pub(super) deep: Option<History>,
}

impl LoadRead {
    /// Whether this read says nothing new to publish: it is the first failure, of a kind that
    /// passes (Prometheus unreachable or slow once), of a scaler whose metrics were available
    /// until now.
    pub(super) fn tells_nothing_new(&self, ps: &PredictiveScaler) -> bool {
        let available_until_now = ps.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == conditions::METRICS_AVAILABLE && c.status == "True")
        });
        self.failure.as_ref().is_some_and(|f| {
            f.in_a_row == 1 && matches!(f.kind, FailureKind::Unreachable | FailureKind::TimedOut)
        }) && available_until_now
    }

    /// `MetricsAvailable`.
    pub(super) fn finding(&self, decision: &Decision) -> Finding {
        match &self.failure {
            Some(f) => Finding::new(
                conditions::METRICS_AVAILABLE,
                false,
                f.reason(),
                f.message(),
            ),
            None => conditions::metrics_finding(decision, None, self.refresh.rejected),
        }
    }
}

/// What a decision reads of the load's history.
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

/// Brings the scaler's history up to date and asks its planner; and its plan, when the last one
/// is older than its quarter hour or was made for another spec. The decision is entered in the
/// scaler's account against the HPA, and the minutes whose load has settled are counted.
#[tracing::instrument(skip_all)]
pub(super) async fn decide(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &Target,
    now: DateTime<Utc>,
) -> (Decision, LoadRead, Option<PlanStatus>, Savings) {
    let state = ctx
        .state_for(
            &ps.uid().unwrap_or_default(),
            ps,
            &target.spec,
            &target.query,
        )
        .await;
    let mut state = state.lock_owned().await;
    state.planner.update_spec(target.spec.clone());
    let needs = state.planner.resting_needs();
    if state.history_for.0 != target.query || state.history_for.1 != needs {
        state.history = ctx.histories.handle(&target.query, needs);
        state.history_for = (target.query.clone(), needs);
        state.held = None;
    }
    let mut load = gated_read(ps, ctx, &mut state, &target.query, now).await;
    let deep = load.deep.take();
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
    let read = match (&load.failure, deep) {
        (Some(_), _) => Read::Failed,
        (None, Some(deep)) => Read::Calibration(deep),
        (None, None) => Read::Cache,
    };
    let (decision, plan, savings) = plan(
        state,
        read,
        replicas,
        now,
        made_for,
        model,
        ctx.metrics.clone(),
    )
    .await;
    (decision, load, plan, savings)
}

/// The model the scaler's account runs: the spec's bounds, and pods that start in what
/// `leadTime: Auto` learned (the start-ups' 90th percentile, rounded up to a minute), else in
/// the backtest's default.
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

/// Reads the load unless the backoff after failed reads says to wait (see `backoff`): a query
/// Prometheus cannot answer in time is not sent again at every sync. A read that timed out or
/// took half the timeout marks its namespace as slow (see `fair_queue`).
async fn gated_read(
    ps: &PredictiveScaler,
    ctx: &Context,
    state: &mut ScalerState,
    query: &str,
    now: DateTime<Utc>,
) -> LoadRead {
    let key = read_key(ps.metadata.generation, query);
    if let Some(waiting) = state.reads.gate(key, Instant::now()).cloned() {
        return LoadRead {
            failure: Some(waiting),
            refresh: Refresh::default(),
            deep: None,
        };
    }
    let started = Instant::now();
    let load = read_load(ps, ctx, state, now).await;
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

/// The planner's decision and, when the memo is older than `made_for`, a new plan. The
/// planner's work (the history's series, the decision, a plan of 96 decisions ahead) is CPU
/// only: it runs on the blocking pool, so that one scaler's expensive spec cannot hold up the
/// runtime's workers, which renew the Lease and read the watches.
async fn plan(
    mut state: tokio::sync::OwnedMutexGuard<ScalerState>,
    read: Read,
    replicas: u32,
    now: DateTime<Utc>,
    made_for: (DateTime<Utc>, Option<i64>, i64),
    model: ledger::Model,
    metrics: std::sync::Arc<crate::operator::telemetry::Metrics>,
) -> (Decision, Option<PlanStatus>, Savings) {
    let planned = tokio::task::spawn_blocking(move || {
        // The series is made under the shared history's lock (on this blocking thread: no
        // reconcile holds it across an await while it waits), then the lock is let go.
        // A calibration's history was read for it; the others are the shared cache's, known
        // to have had samples before it since the last calibration's read.
        let history = match read {
            Read::Calibration(deep) => Some(deep),
            Read::Cache => state
                .history
                .blocking_lock()
                .cache
                .history()
                .map(|h| h.with_samples_before(state.samples_since)),
            Read::Failed => None,
        };
        let decided_at = Instant::now();
        let decision = state.planner.decide(history.as_ref(), replicas, now);
        metrics.decision_timed(decided_at.elapsed());
        // Without the history (Prometheus failed this time) the last plan stands until a
        // reconcile that reads it: a plan of held steps would say nothing for a quarter hour.
        if history.is_some() && state.plan.as_ref().is_none_or(|p| p.made_for != made_for) {
            let planned_at = Instant::now();
            let plan = outlook::outlook(
                &state.planner,
                history.as_ref(),
                now,
                outlook::STEP,
                outlook::HORIZON,
            );
            metrics.plan_timed(planned_at.elapsed());
            state.plan = plan.map(|o| PlanMemo {
                made_for,
                status: o.summary(),
            });
        }
        let plan = state.plan.as_ref().map(|p| p.status.clone());
        // Minutes are counted only on a history read now: without one, they wait for the next.
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
        (decision, plan, savings)
    })
    .await;
    match planned {
        Ok(decided) => decided,
        // A panic in the planner is this reconcile's, caught and reported by `catch_panic`.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("the planner's task did not finish: {e}"),
    }
}

/// Reads the load history up to `now` into the scaler's cache (within the reconcile's slot, see
/// `fair_queue`), and records the outcome in its backoff.
pub(super) async fn read_load(
    ps: &PredictiveScaler,
    ctx: &Context,
    state: &mut ScalerState,
    now: DateTime<Utc>,
) -> LoadRead {
    let started = Instant::now();
    // A decision that calibrates reads the calibration's week beyond the shared cache.
    let deeper = Deeper::for_decision(&state.planner, now);
    let history = state.history.clone();
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
            state.reads.succeeded();
            if state.held.is_none() {
                state.held = Some(ctx.metrics.history_held());
            }
            if let Some(deep) = &deep {
                state.samples_since = deep.samples_since;
            }
            LoadRead {
                failure: None,
                refresh,
                deep: deep.map(|d| d.history),
            }
        }
        Err(e) => {
            let failure = state
                .reads
                .failed(FailureKind::of(&e), e.to_string(), Instant::now());
            warn!(
                namespace = ps.namespace(),
                name = ps.name_any(),
                error = %e,
                retry_in = ?failure.retry_in,
                "reading the load failed"
            );
            LoadRead {
                failure: Some(failure.clone()),
                refresh: Refresh::default(),
                deep: None,
            }
        }
    }
}
