//! **observe**: validate the spec, find the target and the HPA that may scale it, refuse what
//! must not be acted on, and (with `leadTime: Auto`) learn the lead time from the target's pods.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::Result;
use crate::adapters::confine::confine_to_namespace;
use crate::adapters::kubernetes::{self, TargetProblem, Workload};
use crate::api::{Mode, PredictiveScaler, ScaleTargetRef, ValidatedSpec};
use crate::operator::conditions::{self, Finding, ReadyReason};
use crate::planning::startup;

use super::context::{Context, SURVEYS_AT_ONCE};

/// What the reconcile found out about the target, when it can act on it.
pub(super) struct Target {
    pub(super) spec: ValidatedSpec,
    /// The queries sent to Prometheus, one per metric in the spec's order: the spec's, confined
    /// to the namespace when so configured.
    pub(super) queries: Vec<String>,
    pub(super) workload: Workload,
    pub(super) hpa: Option<Arc<HorizontalPodAutoscaler>>,
    /// The KEDA ScaledObject that manages `hpa` (with KEDA support on): the floor goes there.
    pub(super) scaled_object: Option<String>,
    /// `CalendarAvailable`, when the spec reads `.ics` files from ConfigMaps (or did).
    pub(super) calendar: Option<Finding>,
    /// `ScalingLimited=True ScaleToZeroRefused`: the spec allows zero in a quiet window, but an
    /// HPA (or KEDA) scales the target; `spec` then allows none.
    pub(super) zero_refused: Option<Finding>,
}

/// Refuses with a `Ready=False` finding what must not be acted on, else returns the target.
#[tracing::instrument(skip_all)]
pub(super) async fn observe(
    ps: &PredictiveScaler,
    ctx: &Context,
) -> Result<Result<Target, Finding>> {
    let namespace = ps.namespace().unwrap_or_default();
    // First, before anything is validated, read or kept for it.
    if let Some(finding) = beyond_namespace_limit(ps, ctx, &namespace) {
        return Ok(Err(finding));
    }
    let spec = match ctx.validated(ps) {
        Ok(spec) => spec,
        Err(e) => {
            return Ok(Err(refused(
                ReadyReason::InvalidSpec,
                format!("{e}; nothing is scaled until it is fixed"),
            )));
        }
    };
    if let Some(finding) = not_to_be_read(ps, ctx, &namespace) {
        return Ok(Err(finding));
    }
    let target_ref = &ps.spec.scale_target_ref;
    let workload = match kubernetes::resolve(&ctx.client, &namespace, target_ref).await? {
        Ok(w) => w,
        Err(problem) => {
            return Ok(Err(match problem {
                TargetProblem::NotFound(m) => refused(
                    ReadyReason::TargetNotFound,
                    format!("{m}; nothing is scaled until it exists"),
                ),
                TargetProblem::NoScaleSubresource(m) => refused(ReadyReason::ScaleNotSupported, m),
            }));
        }
    };
    let hpa = kubernetes::hpa_for(&ctx.hpas.state(), &namespace, target_ref);
    let scaled_object = hpa.as_deref().and_then(kubernetes::keda_owner);
    if let Some(finding) = keda_refusal(
        ps,
        ctx,
        &namespace,
        hpa.as_deref(),
        scaled_object.as_deref(),
    )
    .await?
    {
        return Ok(Err(finding));
    }
    // Every metric's query is confined as the single metric's is: one metric left unconfined
    // would read every tenant's series through the operator's credentials.
    let mut queries = Vec::with_capacity(spec.metrics.len());
    for (i, metric) in spec.metrics.iter().enumerate() {
        let query = match &ctx.settings.namespace_label {
            Some(label) => match confine_to_namespace(&metric.query, label, &namespace) {
                Ok(q) => q,
                Err(e) => {
                    let field = match ps.spec.metrics.is_empty() {
                        true => "spec.metric.query".to_string(),
                        false => format!("spec.metrics[{i}].query"),
                    };
                    return Ok(Err(refused(
                        ReadyReason::InvalidSpec,
                        format!("{field} {e}; nothing is scaled until it is fixed"),
                    )));
                }
            },
            None => metric.query.clone(),
        };
        queries.push(query);
    }
    // Last, once the scaler is known to act: a refused one reads no ConfigMap.
    let (spec, calendar) =
        super::calendar_files::with_calendar_files(ps, ctx, spec, Utc::now()).await;
    let (spec, zero_refused) = match hpa.as_deref() {
        Some(hpa) if spec.allows_zero() => {
            let finding = conditions::zero_refused_finding(
                &spec,
                &hpa.name_any(),
                scaled_object.as_deref(),
                &target_ref.to_string(),
            );
            (spec.without_zero(), Some(finding))
        }
        _ => (spec, None),
    };
    Ok(Ok(Target {
        spec,
        queries,
        workload,
        hpa,
        scaled_object,
        calendar,
        zero_refused,
    }))
}

/// `Ready=False` for `reason`.
fn refused(reason: ReadyReason, message: String) -> Finding {
    Finding::ready(reason, message)
}

/// The other PredictiveScalers of `namespace` that are not being deleted.
fn siblings(ps: &PredictiveScaler, ctx: &Context, namespace: &str) -> Vec<Arc<PredictiveScaler>> {
    let mut all = ctx.scalers.state();
    all.retain(|other| {
        other.namespace().as_deref() == Some(namespace)
            && other.uid() != ps.uid()
            && other.meta().deletion_timestamp.is_none()
    });
    all
}

/// The order in which scalers claim things (a target, a place under the namespace's limit):
/// creation time, then, among scalers created in the same second (the API server's resolution:
/// a batch `kubectl apply` makes many), one that already acts before one that does not, then
/// name. Without the middle term a scaler created in the same second as a running one, with a
/// name earlier in the alphabet, took its place and the running one gave its floor back.
fn age(ps: &PredictiveScaler) -> (Option<k8s_openapi::jiff::Timestamp>, bool, String) {
    (
        ps.creation_timestamp().map(|t| t.0),
        !acts(ps),
        ps.name_any(),
    )
}

/// Whether the scaler's status says it acts (or was told not to): `Ready` with a reason other
/// than a refusal for its place (the limit, or another scaler on its target).
fn acts(ps: &PredictiveScaler) -> bool {
    ps.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == crate::operator::conditions::READY
                && c.reason != ReadyReason::TooManyScalers.as_str()
                && c.reason != ReadyReason::AmbiguousTarget.as_str()
        })
    })
}

/// Why nothing is done for this scaler, if its namespace already holds as many older ones as
/// `--max-scalers-per-namespace` allows. Each scaler keeps its metric's history in this process
/// (about a third of a MiB), so one tenant creating thousands would run the operator out of
/// memory for every tenant. The oldest are kept (creation time, then name: the order the
/// one-scaler-per-target rule uses), so a new scaler can never stop one that already runs;
/// scalers in mode Off count too, so that turning one on cannot stop a newer one either.
fn beyond_namespace_limit(
    ps: &PredictiveScaler,
    ctx: &Context,
    namespace: &str,
) -> Option<Finding> {
    let limit = ctx.settings.max_scalers_per_namespace?;
    let own = age(ps);
    let older = siblings(ps, ctx, namespace)
        .iter()
        .filter(|other| age(other) < own)
        .count();
    (older >= limit.get()).then(|| {
        refused(ReadyReason::TooManyScalers,
            format!(
                "namespace {namespace} holds {older} older PredictiveScalers and prescaler acts on at most {limit} per namespace (the operator's --max-scalers-per-namespace), the oldest first: nothing is read or scaled for this one until an older one is deleted or the limit is raised"
            ),
        )
    })
}

/// Why the scaler's target is not even read, if it is not: mode Off, a target in another
/// namespace, or a target an older PredictiveScaler already scales.
fn not_to_be_read(ps: &PredictiveScaler, ctx: &Context, namespace: &str) -> Option<Finding> {
    if ps.spec.mode == Mode::Off {
        return Some(Finding::ready(
            ReadyReason::Off,
            "mode is Off: prescaler computes nothing and changes nothing",
        ));
    }
    let target_ref = &ps.spec.scale_target_ref;
    if let Some(elsewhere) = target_ref.namespace.as_deref().filter(|n| *n != namespace) {
        return Some(refused(
            ReadyReason::CrossNamespaceTarget,
            format!(
                "spec.scaleTargetRef.namespace is {elsewhere:?}: a PredictiveScaler may scale only targets in its own namespace ({namespace:?}); nothing is scaled"
            ),
        ));
    }
    // Two PredictiveScalers on one target would fight; the oldest keeps it, as the HPA
    // controller refuses ambiguous selectors rather than guess.
    let first = siblings(ps, ctx, namespace)
        .into_iter()
        .filter(|other| {
            other.spec.scale_target_ref.kind == target_ref.kind
                && other.spec.scale_target_ref.name == target_ref.name
                && other.spec.mode != Mode::Off
        })
        .min_by_key(|other| age(other))?;
    (age(&first) < age(ps)).then(|| {
        refused(
            ReadyReason::AmbiguousTarget,
            format!(
                "PredictiveScaler {} already scales {} {}; this one does nothing while both exist",
                first.name_any(),
                target_ref.kind,
                target_ref.name
            ),
        )
    })
}

/// Why a target that KEDA scales is not scaled, if it is not: KEDA support off, KEDA's own
/// scaling paused, or its HPA not there yet.
async fn keda_refusal(
    ps: &PredictiveScaler,
    ctx: &Context,
    namespace: &str,
    hpa: Option<&HorizontalPodAutoscaler>,
    scaled_object: Option<&str>,
) -> Result<Option<Finding>> {
    if let Some(name) = scaled_object
        && !ctx.settings.keda
    {
        return Ok(Some(refused(
            ReadyReason::KedaManagedTarget,
            format!(
                "HorizontalPodAutoscaler {} is managed by KEDA ScaledObject {name}, which would undo any floor prescaler sets on it; enable KEDA support (the chart's keda.enabled, or `prescaler run --keda`) to have prescaler hold the ScaledObject's minReplicaCount, or scale with prescaler alone",
                hpa.map(|h| h.name_any()).unwrap_or_default()
            ),
        )));
    }
    // KEDA deletes its HPA while a ScaledObject is paused: a target a ScaledObject scales is
    // never scaled through `/scale` beside it, HPA or not.
    if !ctx.settings.keda || scaled_object.is_some() {
        return Ok(None);
    }
    let Some(so) = scaled_object_for(ctx, namespace, &ps.spec.scale_target_ref).await? else {
        return Ok(None);
    };
    Ok(Some(match kubernetes::keda_paused(&so) {
        Some(why) => refused(
            ReadyReason::ScalingDisabled,
            format!(
                "{why}: KEDA's scaling of the target is paused, so is prescaler's; nothing is written"
            ),
        ),
        None => refused(
            ReadyReason::WaitingForKedaHpa,
            format!(
                "KEDA ScaledObject {} scales this target but its HorizontalPodAutoscaler does not exist yet; prescaler waits for it rather than scale the target beside KEDA",
                so.name_any()
            ),
        ),
    }))
}

impl Target {
    /// Why the target's scaling is disabled, if it is: a pause annotation, or (the HPA's
    /// convention) a workload someone scaled to zero without an HPA — unless it is at zero in a
    /// quiet window (`minReplicas: 0`), prescaler's own zero (`Target::quiet_zero`).
    pub(super) fn scaling_disabled(
        &self,
        ps: &PredictiveScaler,
        target_name: &str,
        now: DateTime<Utc>,
    ) -> Option<Finding> {
        if let Some(why) = &self.workload.paused {
            return Some(Finding::ready(
                ReadyReason::ScalingDisabled,
                format!("{why}: prescaler does not scale it"),
            ));
        }
        (self.workload.replicas() == 0 && self.hpa.is_none() && !self.quiet_zero(ps, now)).then(|| {
            Finding::ready(
                ReadyReason::ScalingDisabled,
                format!(
                    "{target_name} has 0 replicas: scaling is disabled until someone scales it up"
                ),
            )
        })
    }
}

impl Target {
    /// Whether a workload at zero is prescaler's to wake: a quiet window of the spec is open
    /// now (whoever scaled it to zero, the spec says zero is fine now and load must wake it:
    /// turn scaling off with the pause annotation, as with KEDA), or the status says prescaler
    /// asked for zero last (a window that closed while the operator was down, or that the spec
    /// no longer has: the wake is owed). The status is written after the `/scale` write that took the workload to zero, so
    /// only a process lost between the two, with the window closed before the next start, leaves
    /// the zero to a person: the window's own opening covers every other case.
    fn quiet_zero(&self, ps: &PredictiveScaler, now: DateTime<Utc>) -> bool {
        let spec = &self.spec;
        crate::planning::schedule::zero_window(&spec.peak_windows, &spec.calendar, now).is_some()
            || ps
                .status
                .as_ref()
                .is_some_and(|s| s.desired_replicas == Some(0))
    }
}

impl Context {
    /// The watched store of KEDA ScaledObjects `scaled_object_for` reads (the operator runs the
    /// watch with KEDA support on; see `operator::run_controller`). Without it, each lookup
    /// lists the namespace's ScaledObjects.
    pub fn with_scaled_objects(mut self, store: Store<DynamicObject>) -> Self {
        self.scaled_objects = Some(store);
        self
    }
}

/// The ScaledObject that scales `target`, looked up in the watched store once it has synced:
/// listing the namespace's ScaledObjects at each reconcile was a paged LIST per ten of them per
/// reconcile (29,000 requests in 20 s with 2,000 ScaledObjects and 8 scalers at a 1 s sync).
/// Until the watch has synced — at start-up, or never where KEDA is not installed (its watch
/// then fails and retries) — the namespace is listed as before: an empty store must not mean
/// "no ScaledObject" while one may exist, and where the API does not serve them the list says
/// so at once (a 404, one request).
async fn scaled_object_for(
    ctx: &Context,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Result<Option<DynamicObject>> {
    if let Some(store) = &ctx.scaled_objects
        && matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
    {
        return Ok(store
            .find(|so| {
                so.metadata.namespace.as_deref() == Some(namespace)
                    && kubernetes::scaled_object_scales(so, target)
            })
            .map(|so| (*so).clone()));
    }
    Ok(kubernetes::scaled_object_for(&ctx.client, namespace, target).await?)
}

/// `leadTime: Auto`: surveys the target's pods (at most every `pod_survey_interval`) and sets
/// the spec's lead time to the one the tracker says to use. When the pods cannot be read the
/// lead time in use stays (the last survey's, else the default), and the error is returned for
/// the `PodsPending` condition. With it, the survey to show in status (this one, else the last).
#[tracing::instrument(skip_all)]
pub(super) async fn learn_lead_time(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &mut Target,
    now: DateTime<Utc>,
) -> (
    Option<startup::Survey>,
    std::result::Result<startup::Survey, String>,
) {
    let state = ctx
        .state_for(&ps.uid().unwrap_or_default(), ps, &target.spec)
        .await;
    let mut state = state.lock().await;
    let last = state.survey.as_ref().map(|(_, s)| s.clone());
    // No survey now: the lead time stays the last survey's, else the default.
    let keep = |target: &mut Target, result| {
        if let Some(last) = &last {
            target.spec.lead_time = last.lead_time;
        }
        (last.clone(), result)
    };
    let interval = ctx.settings.pod_survey_interval;
    if let Some((at, last)) = &state.survey
        && at.elapsed() < interval
    {
        let last = last.clone();
        return keep(target, Ok(last));
    }
    if let Some((at, why)) = &state.survey_failed
        && at.elapsed() < interval
    {
        // A failed survey is tried again a survey interval later, not at every sync: pods that
        // cannot be listed in time would hold a reconcile slot for `SURVEY_TIMEOUT` each time.
        let why = why.clone();
        return keep(target, Err(why));
    }
    // A survey holds a page of pods, whose size the tenants decide (see `kubernetes::POD_PAGE`):
    // eight at once over pods of a MiB of annotations took the operator to 298 MiB. A survey
    // that finds `SURVEYS_AT_ONCE` running is put off to a later reconcile; it never waits for
    // its turn while it holds a reconcile slot (sixteen scalers whose pod lists hung, each
    // waiting so, took every slot from every other namespace).
    let Ok(_surveying) = ctx.surveys.try_acquire() else {
        let put_off = last.clone().ok_or_else(|| {
            format!(
                "not surveyed yet: {SURVEYS_AT_ONCE} surveys run at once across all scalers, and this one waits for a later reconcile"
            )
        });
        return keep(target, put_off);
    };
    match survey_pods(ps, ctx, target)
        .await
        .map(|pods| state.startup.survey(&pods, now))
    {
        Ok(survey) => {
            target.spec.lead_time = survey.lead_time;
            state.survey = Some((Instant::now(), survey.clone()));
            state.survey_failed = None;
            (Some(survey.clone()), Ok(survey))
        }
        Err(why) => {
            state.survey_failed = Some((Instant::now(), why.clone()));
            keep(target, Err(why))
        }
    }
}

/// The most a whole survey of a target's pods may take (each page is bounded too): it holds a
/// reconcile slot meanwhile.
const SURVEY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The start-ups of the target's pods, within `SURVEY_TIMEOUT`.
async fn survey_pods(
    ps: &PredictiveScaler,
    ctx: &Context,
    target: &Target,
) -> std::result::Result<Vec<startup::PodStart>, String> {
    let namespace = ps.namespace().unwrap_or_default();
    let Some(selector) = target.workload.selector() else {
        return Err(format!(
            "{} reports no pod selector on its /scale (status.selector)",
            target.workload.name
        ));
    };
    let listing = kubernetes::pod_starts(&ctx.client, &namespace, selector);
    match tokio::time::timeout(SURVEY_TIMEOUT, listing).await {
        Ok(listed) => listed.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "listing the pods took longer than {SURVEY_TIMEOUT:?}; tried again in a survey interval"
        )),
    }
}
