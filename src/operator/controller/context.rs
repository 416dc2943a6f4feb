//! What the reconciles share: the controller's settings, the per-scaler memory (planner,
//! history cache, read backoff, lead-time tracker, plan memo) and the limits on Prometheus reads.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use tokio::sync::Mutex;
use tracing::info;

use crate::adapters::history::LoadSource;
use crate::adapters::kubernetes::FloorObject;
use crate::api::{PlanStatus, PredictiveScaler, ValidatedSpec};
use crate::operator::backoff::ReadBackoff;
use crate::operator::event_filter::EventFilter;
use crate::operator::fair_queue::FairQueue;
use crate::operator::leader::Leadership;
use crate::operator::shards::ShardSet;
use crate::operator::telemetry::{Health, HeldHistory, Metrics, ScalerLabels};
use crate::placement;
use crate::planning::forecast::ModelConfig;
use crate::planning::ledger::Ledger;
use crate::planning::planner::{HistoryNeeds, Planner};
use crate::planning::several::Several;
use crate::planning::startup;

use super::shared_history::{Histories, HistoryHandle};
use super::{labels, locked};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every PredictiveScaler is reconciled, changed or not.
    pub sync_period: StdDuration,
    /// Reconciles holding a slot at once (and so Prometheus queries in flight), shared fairly
    /// among namespaces (see `fair_queue`).
    pub concurrency: u16,
    pub model: ModelConfig,
    /// The name Events are reported under, usually the pod's.
    pub instance: String,
    /// When set, every scaler's query is confined to its own namespace by this label (see
    /// `prometheus::confine_to_namespace`): tenants cannot read each other's series through
    /// the operator's credentials.
    pub namespace_label: Option<String>,
    /// KEDA support: the floor of a target whose HPA a KEDA ScaledObject manages goes to the
    /// ScaledObject's `minReplicaCount` (needs `patch` on `scaledobjects.keda.sh`). Off, such a
    /// target is refused.
    pub keda: bool,
    /// With `leadTime: Auto`: how long a new learned lead time must persist before it is used
    /// (each change restarts the calibration, so it changes rarely).
    pub lead_time_settle: StdDuration,
    /// With `leadTime: Auto`: the target's pods are listed at most this often per scaler.
    pub pod_survey_interval: StdDuration,
    /// How long after a start-up sweep for orphaned floors that could not give back every one
    /// (an object the API server refused, a list it did not answer) the sweep runs again.
    pub orphan_sweep_retry: StdDuration,
    /// The most PredictiveScalers acted on in one namespace, the oldest first (see
    /// `observe::beyond_namespace_limit`); `None` for no limit.
    pub max_scalers_per_namespace: Option<NonZeroUsize>,
    /// A status whose only changes are figures (forecast load, calibration, the plan's steps,
    /// condition messages) is written at most this often per scaler (plus up to a tenth more,
    /// spread by uid); a change of what an SRE acts on is written at once (see
    /// `report::status_write_due`).
    pub status_refresh: StdDuration,
    /// Whether the history is read from a long-term store beside Prometheus
    /// (`--history-prometheus-url`, see `adapters::long_term`): `HistoryAvailable` then says
    /// what to do about a short history differently.
    pub long_term_history: bool,
    /// How often a scaler's calendar ConfigMaps (`spec.calendar.configMapRefs`) are read again
    /// while its spec stays the same (see `calendar_files`).
    pub calendar_reread: StdDuration,
    /// The target utilization (%) of the HPA each scaler's decisions are compared with on the
    /// live metric (`status.savings`, `prescaler_replica_seconds_total{strategy="hpa"}`).
    pub savings_hpa_target_utilization: u8,
}

/// `--savings-hpa-target-utilization`'s default: the HPA the backtest's table shows beside the
/// HPA at 100 %.
pub const DEFAULT_SAVINGS_HPA_TARGET_UTILIZATION: u8 = 80;

/// `--max-scalers-per-namespace`'s default: at about a third of a MiB of history each, one
/// tenant's scalers hold at most about a tenth of the chart's memory limit (384 MiB), and a
/// namespace rarely has a hundred workloads worth forecasting.
pub const DEFAULT_MAX_SCALERS_PER_NAMESPACE: usize = 100;

impl Default for Settings {
    fn default() -> Self {
        Self {
            sync_period: StdDuration::from_secs(30),
            concurrency: 8,
            model: ModelConfig::default(),
            instance: "prescaler".into(),
            namespace_label: None,
            keda: false,
            lead_time_settle: StdDuration::from_secs(600),
            pod_survey_interval: StdDuration::from_secs(60),
            orphan_sweep_retry: StdDuration::from_secs(300),
            max_scalers_per_namespace: NonZeroUsize::new(DEFAULT_MAX_SCALERS_PER_NAMESPACE),
            status_refresh: StdDuration::from_secs(300),
            long_term_history: false,
            calendar_reread: StdDuration::from_secs(300),
            savings_hpa_target_utilization: DEFAULT_SAVINGS_HPA_TARGET_UTILIZATION,
        }
    }
}

/// What one PredictiveScaler's reconciles share.
pub(super) struct ScalerState {
    pub(super) deciding: Deciding,
    /// Each metric's history and reads, in the spec's order (`decide` keeps it as long as
    /// `spec.metrics`): one entry for a spec with one metric.
    pub(super) metrics: Vec<MetricReads>,
    /// `leadTime: Auto`: the pods' start-ups seen, and the lead time in use.
    pub(super) startup: startup::Tracker,
    /// The last survey of the pods and when it was made.
    pub(super) survey: Option<(Instant, startup::Survey)>,
    /// When the last survey failed, and why, while no survey has succeeded since.
    pub(super) survey_failed: Option<(Instant, String)>,
    /// The last plan (`status.plan`), the quarter hour and the spec generation it was made for.
    pub(super) plan: Option<PlanMemo>,
    /// Counted in `prescaler_histories_held` once a history has been read whole.
    pub(super) held: Option<HeldHistory>,
    /// What the decisions cost against an HPA on the same live metric (`status.savings`).
    pub(super) ledger: Ledger,
}

/// What decides for a scaler: its `Planner` with one metric (the path `tests/parity.rs` holds
/// to the backtest's), or one `Several` over its planners with several (`planning::several`).
// Unboxed: the enum lives in the scaler's state, already on the heap; boxing the planner of the
// common case, one metric, would add an allocation per scaler to save a scaler of several
// metrics some 700 bytes.
#[allow(clippy::large_enum_variant)]
pub(super) enum Deciding {
    One(Planner),
    Several(Several),
}

impl Deciding {
    /// What decides for `spec`, with `model`.
    pub(super) fn new(spec: &ValidatedSpec, model: ModelConfig) -> Self {
        match spec.several_metrics() {
            true => Deciding::Several(Several::new(spec, model)),
            false => Deciding::One(Planner::new(spec.clone(), model)),
        }
    }

    /// The planners, one per metric in the spec's order.
    pub(super) fn planners(&self) -> &[Planner] {
        match self {
            Deciding::One(p) => std::slice::from_ref(p),
            Deciding::Several(s) => s.planners(),
        }
    }

    /// Takes a changed spec; a spec that goes from one metric to several (or back) gets a new
    /// decider, its metrics' planners starting afresh as they would on a new query.
    pub(super) fn update_spec(&mut self, spec: &ValidatedSpec) {
        match self {
            Deciding::One(p) if !spec.several_metrics() => p.update_spec(spec.clone()),
            Deciding::Several(s) if spec.several_metrics() => s.update_spec(spec),
            _ => {
                let model = self.planners().first().map(|p| p.model().clone());
                *self = Deciding::new(spec, model.unwrap_or_default());
            }
        }
    }
}

/// One metric's history and the reads of it.
pub(super) struct MetricReads {
    /// The history of the metric's query as sent (confined), shared with the scalers that send
    /// the same one with the same needs (see `shared_history`).
    pub(super) history: HistoryHandle,
    /// The query and needs `history` is for.
    pub(super) history_for: (String, HistoryNeeds),
    /// When the history is read again after a failed read.
    pub(super) reads: ReadBackoff,
    /// The first sample the source holds within the spec's history, as the last calibration's
    /// read found it: the shared cache holds only what decisions read (`Planner::resting_needs`),
    /// and `HistoryAvailable` counts from here.
    pub(super) samples_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// A plan, kept until the next quarter hour or a spec change: 96 decisions ahead are cheap, but
/// not cheap enough to make for a thousand scalers at every sync.
pub(super) struct PlanMemo {
    /// The quarter hour, the spec generation and the lead time in use (a learned one changes
    /// without a new generation).
    pub(super) made_for: (DateTime<Utc>, Option<i64>, i64),
    pub(super) status: PlanStatus,
}

/// A spec generation and what its validation said.
pub(super) type Validated = (Option<i64>, std::result::Result<ValidatedSpec, String>);

/// Shared by all reconciles.
pub struct Context {
    pub client: kube::Client,
    /// Where the load is read: Prometheus, or a scripted source in tests.
    pub source: Arc<dyn LoadSource>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub settings: Settings,
    pub(super) recorder: Recorder,
    /// Every HPA in the cluster, kept by a watch the operator runs.
    pub(super) hpas: Store<HorizontalPodAutoscaler>,
    /// Every PredictiveScaler, kept by the controller's own watch (to find two on one target).
    pub(super) scalers: Store<PredictiveScaler>,
    /// `None` without leader election (a single replica).
    pub(super) leadership: Option<Arc<Leadership>>,
    /// Per PredictiveScaler uid.
    pub(super) states: Mutex<HashMap<String, Arc<Mutex<ScalerState>>>>,
    /// Consecutive failed reconciles per uid, for the retry backoff.
    pub(super) failures: std::sync::Mutex<HashMap<String, u32>>,
    /// Per uid, the generation and the floor's holder for which the scaler's other floors were
    /// last given back (`release_other_floors`).
    pub(super) floor_sweeps: std::sync::Mutex<HashMap<String, (Option<i64>, FloorObject)>>,
    /// Per uid, the spec generation last validated and what validation said.
    pub(super) validated: std::sync::Mutex<HashMap<String, Validated>>,
    /// Condition Events told in the last ten minutes (see `event_filter`).
    pub(super) told: std::sync::Mutex<EventFilter>,
    /// Per uid, when this process last wrote its status (see `report::status_write_due`).
    pub(super) status_written: std::sync::Mutex<HashMap<String, Instant>>,
    /// The reconcile slots, shared fairly among namespaces (see `fair_queue`).
    pub(super) admission: Arc<FairQueue>,
    /// Pod surveys (`leadTime: Auto`) running at once (see `observe::learn_lead_time`).
    pub(super) surveys: tokio::sync::Semaphore,
    /// Per uid, the labels its metrics carry: what to remove when it is gone.
    pub(super) seen: std::sync::Mutex<HashMap<String, ScalerLabels>>,
    /// Every KEDA ScaledObject, kept by a watch with KEDA support on (see
    /// `Context::with_scaled_objects`, beside its reader in `observe`).
    pub(super) scaled_objects: Option<Store<kube::api::DynamicObject>>,
    /// With `--shards`: the shards this replica holds (see `Context::with_shards`).
    pub(super) shards: Option<Arc<ShardSet>>,
    /// Per uid, what its calendar ConfigMaps last gave (see `calendar_files`).
    pub(super) calendars: std::sync::Mutex<HashMap<String, super::calendar_files::CalendarMemo>>,
    /// The histories held, one per query as sent (see `shared_history`).
    pub(super) histories: Histories,
}

/// Pod surveys at once, all scalers together: each holds a page of pods in memory.
pub(super) const SURVEYS_AT_ONCE: usize = 2;

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        source: Arc<dyn LoadSource>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        settings: Settings,
        hpas: Store<HorizontalPodAutoscaler>,
        scalers: Store<PredictiveScaler>,
        leadership: Option<Arc<Leadership>>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "prescaler".into(),
                instance: Some(settings.instance.clone()),
            },
        );
        let admission = FairQueue::new(usize::from(settings.concurrency));
        Self {
            client,
            source,
            metrics,
            health,
            settings,
            recorder,
            hpas,
            scalers,
            leadership,
            states: Mutex::default(),
            failures: Default::default(),
            floor_sweeps: Default::default(),
            validated: Default::default(),
            told: Default::default(),
            status_written: Default::default(),
            admission,
            surveys: tokio::sync::Semaphore::new(SURVEYS_AT_ONCE),
            seen: Default::default(),
            scaled_objects: None,
            shards: None,
            calendars: Default::default(),
            histories: Histories::default(),
        }
    }

    /// With shards: this replica reconciles and writes only the scalers of the shards it holds.
    pub fn with_shards(mut self, shards: Arc<ShardSet>) -> Self {
        self.shards = Some(shards);
        self
    }

    /// The scaler's spec validated, once per generation: validation parses cron schedules and
    /// checks windows against each other, work that one tenant's spec could make cost every
    /// sync; the spec cannot change without a new generation.
    pub(super) fn validated(
        &self,
        ps: &PredictiveScaler,
    ) -> std::result::Result<ValidatedSpec, String> {
        let uid = ps.uid().unwrap_or_default();
        let generation = ps.metadata.generation;
        let mut all = locked(&self.validated);
        match all.get(&uid) {
            Some((g, result)) if *g == generation && generation.is_some() => result.clone(),
            _ => {
                let result = ps.spec.validate().map_err(|e| e.to_string());
                all.insert(uid, (generation, result.clone()));
                result
            }
        }
    }

    /// Whether this replica leads: it holds the Lease (or runs without election, or with
    /// shards, whose Leases the checks below read).
    fn leads(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.may_write())
    }

    /// Whether this replica may write for `ps` now: it leads and, with shards, holds the shard
    /// of `ps`.
    pub(super) fn may_write(&self, ps: &PredictiveScaler) -> bool {
        self.leads() && self.owns(ps)
    }

    /// Whether this replica may do what concerns every scaler (the sweep for floors whose
    /// scaler is gone, found by uid, so no shard of theirs is known): the leader, or with shards
    /// the holder of shard 0.
    pub(super) fn may_sweep(&self) -> bool {
        self.leads() && self.shards.as_ref().is_none_or(|s| s.may_write(0))
    }

    /// Whether this replica may run a sweep for floors that a scaler it reconciled left when
    /// it went by hand (`forget_gone`): the leader, or with shards a holder of any shard — the
    /// one that saw the scaler go is the holder of its shard, not necessarily of shard 0.
    pub(super) fn may_sweep_owed(&self) -> bool {
        self.leads() && self.shards.as_ref().is_none_or(|s| !s.held().is_empty())
    }

    /// Whether `ps` is this replica's to reconcile: without shards every scaler is (the writes
    /// are gated by the Lease), with shards only those of the shards it holds (and may write
    /// for now).
    pub(super) fn owns(&self, ps: &PredictiveScaler) -> bool {
        self.shards
            .as_ref()
            .is_none_or(|s| s.may_write(self.shard_of(s, ps)))
    }

    fn shard_of(&self, shards: &ShardSet, ps: &PredictiveScaler) -> u32 {
        shards.shard_of(&ps.namespace().unwrap_or_default(), &ps.name_any())
    }

    /// Whether this process keeps anything of `ps` (a planner, a history).
    pub(super) fn keeps(&self, ps: &PredictiveScaler) -> bool {
        ps.uid()
            .is_some_and(|uid| locked(&self.seen).contains_key(&uid))
    }

    pub(super) async fn state_for(
        &self,
        uid: &str,
        ps: &PredictiveScaler,
        spec: &ValidatedSpec,
    ) -> Arc<Mutex<ScalerState>> {
        let mut states = self.states.lock().await;
        let entry = states.entry(uid.to_string()).or_insert_with(|| {
            let model = placement::operator_model(
                &self.settings.model,
                &ps.namespace().unwrap_or_default(),
                &ps.name_any(),
            );
            let settle = chrono::Duration::from_std(self.settings.lead_time_settle)
                .unwrap_or(startup::DEFAULT_SETTLE);
            Arc::new(Mutex::new(ScalerState {
                deciding: Deciding::new(spec, model),
                // Each metric's history is taken by `decide`, for the needs of its planner.
                metrics: Vec::new(),
                startup: startup::Tracker::new(settle),
                survey: None,
                survey_failed: None,
                plan: None,
                held: None,
                ledger: {
                    // After a restart or a failover the days counted so far come back from the
                    // status; the HPA's state is rebuilt from the metric's history.
                    let mut ledger = Ledger::new(self.settings.savings_hpa_target_utilization);
                    if let Some(saved) = ps.status.as_ref().and_then(|s| s.savings.as_ref()) {
                        ledger.restore(saved);
                    }
                    ledger
                },
            }))
        });
        entry.clone()
    }

    /// Drops what this process keeps of a scaler: its planner and history, its memos, its
    /// metrics. (After a panic, to start afresh; when it is gone.)
    pub(super) async fn forget(&self, ps: &PredictiveScaler) {
        match ps.uid() {
            Some(uid) => self.forget_uid(&uid).await,
            None => self.metrics.remove(&labels(ps)),
        }
    }

    /// Drops what the scaler's reconciles keep (its planner and history) and nothing else: for a
    /// scaler that reads nothing while it is refused or its target's scaling is disabled.
    pub(super) async fn drop_state(&self, ps: &PredictiveScaler) {
        if let Some(uid) = ps.uid() {
            self.states.lock().await.remove(&uid);
        }
    }

    async fn forget_uid(&self, uid: &str) {
        self.states.lock().await.remove(uid);
        locked(&self.failures).remove(uid);
        locked(&self.floor_sweeps).remove(uid);
        locked(&self.validated).remove(uid);
        locked(&self.calendars).remove(uid);
        locked(&self.status_written).remove(uid);
        locked(&self.told).forget(uid);
        if let Some(labels) = locked(&self.seen).remove(uid) {
            self.metrics.remove(&labels);
        }
    }

    /// Records that a reconcile of `ps` ran: what `forget_gone` needs to drop it when it goes.
    pub(super) fn note(&self, ps: &PredictiveScaler) {
        if let Some(uid) = ps.uid() {
            locked(&self.seen).entry(uid).or_insert_with(|| labels(ps));
        }
    }

    /// Forgets the scalers that are gone from the watch. A scaler without a finalizer (one that
    /// holds no floor) is deleted without a last reconcile, so nothing else would drop its
    /// planner, history (a few hundred KiB) and metrics: a tenant creating and deleting scalers
    /// would grow the operator's memory without bound.
    /// Returns whether a scaler that went had set a floor: its finalizer was removed by hand
    /// (or the object went without its last reconcile), so the floor may still be raised.
    pub(super) async fn forget_gone(&self) -> bool {
        let scalers = self.scalers.state();
        let live: HashSet<String> = scalers.iter().filter_map(|s| s.uid()).collect();
        let gone: Vec<String> = locked(&self.seen)
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        let held_floor = {
            let sweeps = locked(&self.floor_sweeps);
            gone.iter().any(|uid| sweeps.contains_key(uid))
        };
        for uid in &gone {
            self.forget_uid(uid).await;
        }
        if !gone.is_empty() {
            info!(
                count = gone.len(),
                "forgot the PredictiveScalers that are gone"
            );
        }
        held_floor
    }
}
