//! What the reconciles share: the controller's settings, the per-scaler memory (planner,
//! history cache, read backoff, lead-time tracker, plan memo) and the limits on Prometheus reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tracing::info;

use crate::adapters::history::HistoryCache;
use crate::adapters::history::LoadSource;
use crate::adapters::kubernetes::FloorObject;
use crate::api::{PlanStatus, PredictiveScaler, ValidatedSpec};
use crate::operator::backoff::ReadBackoff;
use crate::operator::event_filter::EventFilter;
use crate::operator::leader::Leadership;
use crate::operator::telemetry::{Health, Metrics, ScalerLabels};
use crate::planning::forecast::ModelConfig;
use crate::planning::planner::Planner;
use crate::planning::startup;

use super::{labels, locked};

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every PredictiveScaler is reconciled, changed or not.
    pub sync_period: StdDuration,
    /// Reconciles running at once (and so Prometheus queries in flight).
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
}

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
        }
    }
}

/// What one PredictiveScaler's reconciles share.
pub(super) struct ScalerState {
    pub(super) planner: Planner,
    pub(super) cache: HistoryCache,
    /// When the history is read again after a failed read.
    pub(super) reads: ReadBackoff,
    /// `leadTime: Auto`: the pods' start-ups seen, and the lead time in use.
    pub(super) startup: startup::Tracker,
    /// The last survey of the pods and when it was made.
    pub(super) survey: Option<(Instant, startup::Survey)>,
    /// The last plan (`status.plan`), the quarter hour and the spec generation it was made for.
    pub(super) plan: Option<PlanMemo>,
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
    /// Prometheus reads in flight, all namespaces together.
    pub(super) queries: Semaphore,
    /// Per suspect namespace, its share of `queries` (see `read_share`).
    pub(super) namespace_reads: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The read slots that namespaces whose reads time out share (see `read_share`).
    pub(super) suspect_reads: Arc<Semaphore>,
    /// Per namespace, when a read of it was last slow (see `read_share`).
    pub(super) suspects: std::sync::Mutex<HashMap<String, Instant>>,
    /// Per namespace, its reads in flight (see `read_share`).
    pub(super) in_flight: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    /// How many namespaces have scalers, as of the last `forget_gone` (see `read_share`).
    pub(super) namespaces: std::sync::atomic::AtomicUsize,
    /// Per uid, the labels its metrics carry: what to remove when it is gone.
    pub(super) seen: std::sync::Mutex<HashMap<String, ScalerLabels>>,
    /// Every KEDA ScaledObject, kept by a watch with KEDA support on (see
    /// `Context::with_scaled_objects`, beside its reader in `observe`).
    pub(super) scaled_objects: Option<Store<kube::api::DynamicObject>>,
}

/// How long a namespace whose read timed out shares the suspects' slots (`Context::read_share`):
/// as long as the read backoff's longest wait (`backoff::MAX_DELAY`), so that a namespace whose
/// queries keep hanging is still suspect when its scalers try again.
pub(super) const SUSPECT_FOR: StdDuration = crate::operator::backoff::MAX_DELAY;

/// What a reconcile of a suspect namespace holds while it reads Prometheus: one of the suspects'
/// slots and, unless the pool was quiet, its namespace's, given back when it is dropped (see
/// `read_share`).
pub(super) struct ReadShare {
    _namespace: Option<OwnedSemaphorePermit>,
    _suspect: Option<OwnedSemaphorePermit>,
    _in_flight: InFlight,
}

/// One read of a namespace in flight, counted while it lasts (see `read_share`).
struct InFlight {
    all: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    namespace: String,
}

impl InFlight {
    fn new(all: &Arc<std::sync::Mutex<HashMap<String, usize>>>, namespace: &str) -> Self {
        *locked(all).entry(namespace.to_string()).or_default() += 1;
        Self {
            all: all.clone(),
            namespace: namespace.to_string(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut all = locked(&self.all);
        if let Some(n) = all.get_mut(&self.namespace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                all.remove(&self.namespace);
            }
        }
    }
}

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
        let queries = Semaphore::new(settings.concurrency.max(1) as usize);
        let suspect_reads = Arc::new(Semaphore::new(
            (usize::from(settings.concurrency) / 2).max(1),
        ));
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
            queries,
            namespace_reads: Default::default(),
            suspect_reads,
            suspects: Default::default(),
            in_flight: Default::default(),
            namespaces: Default::default(),
            seen: Default::default(),
            scaled_objects: None,
        }
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

    /// The slots for one Prometheus read of a scaler in `namespace`, or `None` when the
    /// namespace is suspect and its share, or the suspects' slots, are all in use.
    ///
    /// Reads and reconciles share `concurrency` slots across the cluster, and a read that hangs
    /// holds its slot until the query timeout. One tenant whose queries hang, and who edits its
    /// scalers so that each new spec is read at once (the backoff starts again with a new
    /// query), held every slot and stopped every other tenant's scaling; so did four such
    /// namespaces under a share per namespace alone. So a namespace whose read was slow (half
    /// the timeout or more, or timed out) in the last `SUSPECT_FOR` is suspect:
    /// - a suspect namespace may have a quarter of the slots in reads (at least one) while
    ///   more than half of them are in use, and more while the pool is quieter: the share keeps
    ///   one suspect from crowding out the others, and need not throttle a Prometheus slow for
    ///   everyone (a cluster whose scalers all live in one suspect namespace was read two at
    ///   a time);
    /// - all suspect namespaces together may have half of them (at least one): a tenant with
    ///   several namespaces (or several careless tenants) cannot hold more, and the other half
    ///   stays for the namespaces whose reads answer.
    ///
    /// A suspect stays one for that time whatever its other reads do: a tenant's one good query
    /// must not clear its hanging ones. A namespace whose reads answer has no share: its reads
    /// are quick, and a share would only cap a cluster whose scalers all live in one namespace
    /// (a hundred scalers read two at a time). What is left open: a new namespace's first slow
    /// reads hold slots for one timeout before it is suspect.
    ///
    /// A reconcile that finds its slots busy does not wait: it does nothing and frees its
    /// reconcile slot at once, to come back soon — a reconcile that waited would keep the slot,
    /// and the controller's queue serves newly triggered objects first, so the busy tenant's
    /// edits would again crowd everyone else out.
    pub(super) fn read_share(&self, namespace: &str) -> Option<ReadShare> {
        if !self.within_fair_share(namespace) {
            return None;
        }
        let Some(share) = self.suspect_share(namespace) else {
            return Some(ReadShare {
                _namespace: None,
                _suspect: None,
                _in_flight: InFlight::new(&self.in_flight, namespace),
            });
        };
        let namespace_slot = share.try_acquire_owned().ok();
        if namespace_slot.is_none() && !self.reads_quiet() {
            return None;
        }
        let suspect_slot = self.suspect_reads.clone().try_acquire_owned().ok()?;
        Some(ReadShare {
            _namespace: namespace_slot,
            _suspect: Some(suspect_slot),
            _in_flight: InFlight::new(&self.in_flight, namespace),
        })
    }

    /// Whether `read_share` would give `namespace` its slots now, without taking them: a
    /// reconcile that would be deferred is deferred before it reads the workload, so that a
    /// scaler waiting for its share costs the API server nothing each time it comes back.
    pub(super) fn read_share_free(&self, namespace: &str) -> bool {
        self.within_fair_share(namespace)
            && self.suspect_share(namespace).is_none_or(|share| {
                (share.available_permits() > 0 || self.reads_quiet())
                    && self.suspect_reads.available_permits() > 0
            })
    }

    /// Whether `namespace` may start one more read while the pool is busy: any namespace, slow
    /// or not, then holds at most an equal part of the slots among the namespaces that have
    /// scalers. Suspicion alone was a threshold, and a tenant whose reads took just under it
    /// (0.9 s of a 2 s timeout) was never capped: its 96 scalers held every slot and another
    /// tenant read nothing in 20 s. What counts here is how many slots a namespace holds,
    /// however quick its reads. A quiet pool caps no one, and a cluster whose scalers all live
    /// in one namespace is not capped at all (a cap of three quarters, counted among the
    /// namespaces reading, slowed the cold start of 550 scalers past a peak window's floor).
    fn within_fair_share(&self, namespace: &str) -> bool {
        if self.reads_quiet() {
            return true;
        }
        let concurrency = usize::from(self.settings.concurrency).max(1);
        let namespaces = self.namespaces.load(std::sync::atomic::Ordering::Relaxed);
        let fair = (concurrency / namespaces.max(1)).max(1);
        locked(&self.in_flight).get(namespace).copied().unwrap_or(0) < fair
    }

    /// The share of reads of `namespace` if it is suspect (see `read_share`).
    fn suspect_share(&self, namespace: &str) -> Option<Arc<Semaphore>> {
        let suspect = locked(&self.suspects)
            .get(namespace)
            .is_some_and(|at| at.elapsed() < SUSPECT_FOR);
        suspect.then(|| {
            let mut all = locked(&self.namespace_reads);
            let per_namespace = (usize::from(self.settings.concurrency) / 4).max(1);
            all.entry(namespace.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(per_namespace)))
                .clone()
        })
    }

    /// Whether more than half of the read slots are free: a suspect namespace's own share
    /// binds only when they are not (see `read_share`).
    fn reads_quiet(&self) -> bool {
        self.queries.available_permits() > usize::from(self.settings.concurrency) / 2
    }

    /// A read of `namespace` was slow or timed out: it is suspect for `SUSPECT_FOR` (see
    /// `read_share`).
    pub(super) fn suspect(&self, namespace: &str) {
        locked(&self.suspects).insert(namespace.to_string(), Instant::now());
    }

    /// Whether this replica may write to workloads and HPAs now.
    pub(super) fn may_write(&self) -> bool {
        self.leadership.as_ref().is_none_or(|l| l.may_write())
    }

    pub(super) async fn state_for(
        &self,
        uid: &str,
        ps: &PredictiveScaler,
        spec: &ValidatedSpec,
    ) -> Arc<Mutex<ScalerState>> {
        let mut states = self.states.lock().await;
        let entry = states.entry(uid.to_string()).or_insert_with(|| {
            let planner = Planner::new(spec.clone(), self.settings.model.clone());
            let cache = HistoryCache::new(ps.spec.metric.query.clone(), planner.history_needs());
            let settle = chrono::Duration::from_std(self.settings.lead_time_settle)
                .unwrap_or(startup::DEFAULT_SETTLE);
            Arc::new(Mutex::new(ScalerState {
                planner,
                cache,
                reads: ReadBackoff::new(self.settings.sync_period),
                startup: startup::Tracker::new(settle),
                survey: None,
                plan: None,
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

    async fn forget_uid(&self, uid: &str) {
        self.states.lock().await.remove(uid);
        locked(&self.failures).remove(uid);
        locked(&self.floor_sweeps).remove(uid);
        locked(&self.validated).remove(uid);
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
    /// would grow the operator's memory without bound. Also drops the read shares of namespaces
    /// without scalers, and suspicions once they expire — not before, even when the namespace
    /// has no scaler left: deleting and re-creating its scalers must not clear a suspicion.
    /// Returns whether a scaler that went had set a floor: its finalizer was removed by hand
    /// (or the object went without its last reconcile), so the floor may still be raised.
    pub(super) async fn forget_gone(&self) -> bool {
        let scalers = self.scalers.state();
        let live: HashSet<String> = scalers.iter().filter_map(|s| s.uid()).collect();
        let namespaces: HashSet<String> = scalers.iter().filter_map(|s| s.namespace()).collect();
        self.namespaces
            .store(namespaces.len(), std::sync::atomic::Ordering::Relaxed);
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
        // A share in use is kept (its reconcile still runs); a new one is made when needed.
        locked(&self.namespace_reads)
            .retain(|ns, share| namespaces.contains(ns) || Arc::strong_count(share) > 1);
        locked(&self.suspects).retain(|_, at| at.elapsed() < SUSPECT_FOR);
        if !gone.is_empty() {
            info!(
                count = gone.len(),
                "forgot the PredictiveScalers that are gone"
            );
        }
        held_floor
    }
}
