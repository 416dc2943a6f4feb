//! The workload a PredictiveScaler scales, through its `/scale` subresource, and the
//! HorizontalPodAutoscaler that may already scale it.
//!
//! When an HPA targets the same workload, prescaler does not write the workload's replicas (the
//! two would fight every sync); it sets the HPA's `minReplicas` to its own forecast floor
//! instead, so the HPA stays in charge above that floor. The HPA's own value and what prescaler
//! set are kept in annotations on the HPA, with the owning PredictiveScaler's uid, so that any
//! operator replica can restore it after any restart, and a person's later edit of `minReplicas`
//! is recognised and adopted as the HPA's own value rather than overwritten.
//!
//! An HPA that KEDA manages cannot hold a floor: KEDA rewrites it from its ScaledObject on every
//! sync (kedacore/keda#6061). With KEDA support on, the floor goes to the ScaledObject's
//! `minReplicaCount` instead, with the same bookkeeping (`FloorHolder`).
//!
//! Every call is bounded by `API_TIMEOUT`: a request the API server never answers must not hold
//! a reconcile (or a leader's write) forever.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::json;

use prescaler_api::{PredictiveScaler, ScaleTargetRef, names};
use prescaler_planning::startup::PodStart;

use crate::{Error, Result};

/// Kept on a PredictiveScaler while it holds an HPA's (or a ScaledObject's) floor, so that the floor is given back
/// before the object goes. Only then: a scaler that writes `/scale` directly has nothing to give
/// back and carries no finalizer, so uninstalling the operator never leaves objects stuck.
/// (The operator's controller adds and removes it; it is here because `slim_scaler` keeps it.)
pub const FINALIZER: &str = "prescaler.dev/hpa-floor";

/// The longest any one Kubernetes request may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// The HPA's own `minReplicas`, kept while prescaler sets it.
pub const ORIGINAL_MIN_ANNOTATION: &str = "prescaler.dev/original-min-replicas";
/// The uid of the PredictiveScaler that sets the HPA's floor.
pub const OWNER_ANNOTATION: &str = "prescaler.dev/floor-owner";
/// The `minReplicas` prescaler last set: a different value on the HPA is a person's edit.
pub const FLOOR_ANNOTATION: &str = "prescaler.dev/floor-min-replicas";
/// A workload carrying this annotation (`"true"`) is never scaled by prescaler.
pub const PAUSED_ANNOTATION: &str = "prescaler.dev/paused";
/// KEDA's pause annotation, honoured too.
pub const KEDA_PAUSED_ANNOTATION: &str = "autoscaling.keda.sh/paused";
/// KEDA's other pause: the count frozen at this value.
pub const KEDA_PAUSED_REPLICAS_ANNOTATION: &str = "autoscaling.keda.sh/paused-replicas";

/// Runs one Kubernetes request with `API_TIMEOUT`.
pub async fn call<T>(what: &str, request: impl Future<Output = kube::Result<T>>) -> Result<T> {
    match tokio::time::timeout(API_TIMEOUT, request).await {
        Ok(result) => result.map_err(Error::from),
        Err(_) => Err(Error::Timeout {
            what: what.to_string(),
            after: API_TIMEOUT,
        }),
    }
}

/// Why the target cannot be used; each becomes a condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetProblem {
    /// No object of that kind and name in the namespace.
    NotFound(String),
    /// The kind is not served, or has no `/scale` subresource.
    NoScaleSubresource(String),
}

impl TargetProblem {
    pub fn message(&self) -> &str {
        match self {
            TargetProblem::NotFound(m) | TargetProblem::NoScaleSubresource(m) => m,
        }
    }
}

/// The resolved workload: its API, its current scale, and whether it is paused.
pub struct Workload {
    api: Api<DynamicObject>,
    pub name: String,
    pub scale: Scale,
    /// Why prescaler must not write this workload, if it must not (a pause annotation).
    pub paused: Option<String>,
}

impl Workload {
    /// The label selector of the workload's pods, as `/scale` reports it (`status.selector`).
    pub fn selector(&self) -> Option<&str> {
        self.scale
            .status
            .as_ref()
            .and_then(|s| s.selector.as_deref())
            .filter(|s| !s.is_empty())
    }

    pub fn replicas(&self) -> u32 {
        self.scale
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
            .max(0) as u32
    }

    /// Sets the replica count through `/scale`. The patch carries the resourceVersion read, so a
    /// concurrent change (a person, another controller) is a 409 Conflict and an error, never
    /// silently overwritten: the next reconcile decides again from the fresh count.
    pub async fn set_replicas(&mut self, replicas: u32) -> Result<()> {
        let patch = json!({
            "metadata": { "resourceVersion": self.scale.metadata.resource_version },
            "spec": { "replicas": replicas },
        });
        self.scale = call(
            "writing /scale",
            self.api
                .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        Ok(())
    }
}

/// The API resource for well-known kinds without a discovery round trip, else by discovery.
async fn resource_for(
    client: &kube::Client,
    target: &ScaleTargetRef,
) -> Result<Result<ApiResource, TargetProblem>> {
    let (group, version) = match target.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), target.api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
    let plural = match (group.as_str(), target.kind.as_str()) {
        ("apps", "Deployment") => Some("deployments"),
        ("apps", "StatefulSet") => Some("statefulsets"),
        ("apps", "ReplicaSet") => Some("replicasets"),
        ("", "ReplicationController") => Some("replicationcontrollers"),
        _ => None,
    };
    if let Some(plural) = plural {
        return Ok(Ok(ApiResource::from_gvk_with_plural(&gvk, plural)));
    }
    let discovered =
        match tokio::time::timeout(API_TIMEOUT, kube::discovery::pinned_kind(client, &gvk)).await {
            Ok(result) => result,
            Err(_) => {
                return Err(Error::Timeout {
                    what: format!("discovering {}", target.api_version),
                    after: API_TIMEOUT,
                });
            }
        };
    let (resource, caps) = match discovered {
        Ok(found) => found,
        Err(e) => {
            return Ok(Err(TargetProblem::NoScaleSubresource(format!(
                "{} {:?} is not served by the API server: {e}",
                target.api_version, target.kind
            ))));
        }
    };
    if !caps.subresources.iter().any(|(r, _)| r.plural == "scale") {
        return Ok(Err(TargetProblem::NoScaleSubresource(format!(
            "{} has no /scale subresource; prescaler can scale only kinds that have one",
            target.kind
        ))));
    }
    Ok(Ok(resource))
}

/// Reads the target's metadata (for a pause annotation) and its `/scale`. `Ok(Err(problem))` for
/// a target that cannot be used (a condition for the user to fix), `Err` for a failure worth
/// retrying.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Result<Result<Workload, TargetProblem>> {
    // The spec was validated; this is the last guard before the names become a path (kube puts
    // them into the URL as they are: `apps/v1/namespaces/other/…/scale?` reached another
    // namespace's workload).
    if !(names::is_api_version(&target.api_version)
        && names::is_kind(&target.kind)
        && names::is_dns_subdomain(&target.name)
        && names::is_dns_label(namespace))
    {
        return Err(Error::UnsafeTarget {
            message: "is not made of Kubernetes names; nothing is read or written".into(),
        });
    }
    let resource = match resource_for(client, target).await? {
        Ok(r) => r,
        Err(problem) => return Ok(Err(problem)),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let Some(meta) = call("reading the target", api.get_metadata_opt(&target.name)).await? else {
        return Ok(Err(TargetProblem::NotFound(format!(
            "{} {namespace}/{} does not exist",
            target.kind, target.name
        ))));
    };
    let annotations = meta.metadata.annotations.unwrap_or_default();
    let paused = [PAUSED_ANNOTATION, KEDA_PAUSED_ANNOTATION]
        .into_iter()
        .find(|a| annotations.get(*a).is_some_and(|v| v == "true"))
        .map(|a| {
            format!(
                "{} {namespace}/{} carries {a}: \"true\"",
                target.kind, target.name
            )
        });
    match call("reading /scale", api.get_scale(&target.name)).await {
        // What answered must be the object asked for, in the scaler's namespace: a path that
        // reached anything else is never written to.
        Ok(scale)
            if scale.metadata.namespace.as_deref() != Some(namespace)
                || scale.metadata.name.as_deref() != Some(&target.name) =>
        {
            Err(Error::UnsafeTarget {
                message: format!(
                    "reached {}/{}, not {namespace}/{}; nothing is written",
                    scale.metadata.namespace.unwrap_or_default(),
                    scale.metadata.name.unwrap_or_default(),
                    target.name
                ),
            })
        }
        Ok(scale) => Ok(Ok(Workload {
            api,
            name: target.name.clone(),
            scale,
            paused,
        })),
        Err(Error::Kube(e)) if matches!(&*e, kube::Error::Api(s) if s.is_not_found()) => {
            Ok(Err(TargetProblem::NoScaleSubresource(format!(
                "{} {namespace}/{} has no /scale subresource",
                target.kind, target.name
            ))))
        }
        Err(e) => Err(e),
    }
}

/// Reads a PredictiveScaler (`prescaler backtest --scaler`, `kubectl prescaler`); a missing one
/// is an error that names the namespace (the usual mistake is the wrong one).
pub async fn get_predictive_scaler(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<prescaler_api::PredictiveScaler> {
    let api: Api<prescaler_api::PredictiveScaler> = Api::namespaced(client.clone(), namespace);
    match call("reading the PredictiveScaler", api.get_opt(name)).await? {
        Some(scaler) => Ok(scaler),
        None => Err(Error::Config {
            what: format!("PredictiveScaler {name:?}"),
            message: format!(
                "not found in namespace {namespace:?} (kubectl get psc -A lists them all)"
            ),
        }),
    }
}

/// Whether an HPA scales `target` in `namespace`.
pub fn scales(hpa: &HorizontalPodAutoscaler, namespace: &str, target: &ScaleTargetRef) -> bool {
    let group = |api_version: &str| {
        api_version
            .split_once('/')
            .map_or("", |(g, _)| g)
            .to_string()
    };
    let r = &hpa.spec.scale_target_ref;
    hpa.metadata.namespace.as_deref() == Some(namespace)
        && r.kind == target.kind
        && r.name == target.name
        && group(r.api_version.as_deref().unwrap_or("")) == group(&target.api_version)
}

/// The HPA in `namespace` that scales `target`, among `hpas` (the controller's watched store).
pub fn hpa_for(
    hpas: &[Arc<HorizontalPodAutoscaler>],
    namespace: &str,
    target: &ScaleTargetRef,
) -> Option<Arc<HorizontalPodAutoscaler>> {
    hpas.iter().find(|h| scales(h, namespace, target)).cloned()
}

/// The KEDA ScaledObject that controls this HPA, if one does: KEDA rewrites its HPA on every
/// sync, so a floor set on it would not hold; the ScaledObject's `minReplicaCount` does. KEDA
/// makes its ScaledObject the HPA's controller (`controllerutil.SetControllerReference`); an
/// owner reference that is not the controller is no KEDA HPA.
pub fn keda_owner(hpa: &HorizontalPodAutoscaler) -> Option<String> {
    keda_controller(hpa).map(|o| o.name.clone())
}

fn keda_controller(
    hpa: &HorizontalPodAutoscaler,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    // An owner reference's name is not checked by the API server and goes into request paths
    // (the ScaledObject is read and patched by it): only a Kubernetes name counts.
    hpa.metadata.owner_references.iter().flatten().find(|o| {
        o.kind == "ScaledObject"
            && o.api_version.starts_with("keda.sh/")
            && o.controller == Some(true)
            && names::is_dns_subdomain(&o.name)
    })
}

/// Whether `so` is the very ScaledObject that `hpa` names as its controller (the same uid, not
/// only the same name) and scales `target`. An HPA is the tenant's to write: one that names
/// another team's ScaledObject as its owner must not make prescaler raise that ScaledObject's
/// floor (a write the tenant could not make itself).
pub fn keda_manages(
    so: &DynamicObject,
    hpa: &HorizontalPodAutoscaler,
    target: &ScaleTargetRef,
) -> bool {
    keda_controller(hpa).is_some_and(|o| so.metadata.uid.as_deref() == Some(o.uid.as_str()))
        && scaled_object_scales(so, target)
}

/// An object whose replica floor prescaler may hold: an HPA (`spec.minReplicas`, default 1,
/// bounded by `spec.maxReplicas`) or a KEDA ScaledObject (`spec.minReplicaCount`, default 0,
/// bounded by `spec.maxReplicaCount`, default 100, as KEDA reads them). The floor's bookkeeping
/// — the object's own value, the owner and what was set, kept in annotations on the object — is
/// the same for both: one mechanism, so that a restore, a person's edit and a restart behave
/// alike whichever object carries the floor.
#[derive(Clone, Copy, Debug)]
pub struct FloorHolder<'a> {
    annotations: Option<&'a BTreeMap<String, String>>,
    resource_version: Option<&'a str>,
    /// The floor field's name under `spec`.
    field: &'static str,
    /// The floor field's value now (its default when unset).
    min: i32,
    /// The highest floor the object allows.
    max: i32,
    /// The lowest value the floor field may hold: 1 for an HPA (the API server refuses
    /// `minReplicas: 0` unless the HPAScaleToZero feature gate is on, which prescaler does not
    /// assume), 0 for a ScaledObject (KEDA's scale to zero).
    lowest: i32,
}

impl<'a> FloorHolder<'a> {
    pub fn hpa(hpa: &'a HorizontalPodAutoscaler) -> Self {
        Self {
            annotations: hpa.metadata.annotations.as_ref(),
            resource_version: hpa.metadata.resource_version.as_deref(),
            field: "minReplicas",
            min: hpa.spec.min_replicas.unwrap_or(1),
            max: hpa.spec.max_replicas,
            lowest: 1,
        }
    }

    /// A KEDA ScaledObject: KEDA copies `minReplicaCount` (or 1 when it is 0) and
    /// `maxReplicaCount` into its HPA on every sync (KEDA's `getHPAMinReplicas` and
    /// `getHPAMaxReplicas`, controllers/keda/hpa.go), so this is where a floor holds.
    pub fn scaled_object(so: &'a DynamicObject) -> Self {
        let count = |key: &str, default: i32| {
            so.data["spec"][key]
                .as_i64()
                .map_or(default, |v| v.clamp(0, i32::MAX as i64) as i32)
        };
        Self {
            annotations: so.metadata.annotations.as_ref(),
            resource_version: so.metadata.resource_version.as_deref(),
            field: "minReplicaCount",
            min: count("minReplicaCount", 0),
            max: count("maxReplicaCount", 100),
            lowest: 0,
        }
    }

    fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// Whether prescaler's floor annotations are on the object.
    pub fn holds_floor(&self) -> bool {
        self.annotation(ORIGINAL_MIN_ANNOTATION).is_some()
    }

    /// The uid of the PredictiveScaler that holds the floor, if one does.
    pub fn owner(&self) -> Option<&'a str> {
        self.annotation(OWNER_ANNOTATION)
    }

    /// Whether a person has changed the floor field since prescaler last set it.
    fn edited(&self) -> bool {
        self.annotation(FLOOR_ANNOTATION)
            .and_then(|v| v.parse::<i32>().ok())
            .is_some_and(|set| set != self.min)
    }

    /// The kept own value, checked: `Err` with the annotation's text when it is no integer in
    /// `[lowest, max]`. The annotation is on an object its tenant may edit, so whatever it says
    /// is checked before it is written back: one refused write would otherwise be a value the
    /// API server rejects (`minReplicas: 0`, above `maxReplicas`) or one the tenant chose.
    fn kept(&self) -> Option<std::result::Result<i32, &'a str>> {
        self.annotation(ORIGINAL_MIN_ANNOTATION)
            .map(|v| match v.parse::<i32>() {
                Ok(n) if (self.lowest..=self.max).contains(&n) => Ok(n),
                _ => Err(v),
            })
    }

    /// The value given back in place of a kept own value that is refused: the field's current
    /// value, clamped into `[lowest, max]`. The kept value was the only record of what the object
    /// had before prescaler; once it is unusable nothing says what its owner wants, and the
    /// current value is what runs now — prescaler's floor where it holds one, the tenant's own
    /// value where the annotations were written by hand — so keeping it never lowers the
    /// replicas below what serves now on the word of a value no one can vouch for, and leaves a
    /// tenant's hand-annotated HPA exactly as it was. Clamping makes it a value the API server
    /// accepts. The cost: a real floor whose record was damaged stays at the floor's height
    /// until a person lowers it (the sweep logs a Warning naming the object).
    fn safe_min(&self) -> i32 {
        self.min.clamp(self.lowest, self.max.max(self.lowest))
    }

    /// The object's own floor: the kept original while prescaler sets it, unless a person has
    /// changed the field since prescaler last set it (then theirs); never a value the object
    /// may not hold (see `kept`, `safe_min`).
    pub fn own_min(&self) -> i32 {
        match self.kept() {
            Some(Ok(kept)) if !self.edited() => kept,
            _ => self.safe_min(),
        }
    }

    /// The kept own value's text when it is refused (not an integer in `[lowest, max]`) and
    /// would have been given back: such a value is never written; `safe_min` is, instead.
    pub fn refused_own(&self) -> Option<&'a str> {
        if self.edited() {
            return None;
        }
        self.kept().and_then(std::result::Result::err)
    }

    /// The patch that sets the floor field to `floor` (never below the object's own value, never
    /// above its maximum), keeping the own value and what was set; with the value set if it
    /// changed. `None` when there is nothing to write.
    pub fn floor_patch(
        &self,
        owner_uid: &str,
        floor: u32,
    ) -> Option<(serde_json::Value, Option<i32>)> {
        let own = self.own_min();
        let wanted = (floor.min(i32::MAX as u32) as i32).clamp(own, self.max.max(own));
        let current = self.min;
        let up_to_date = self.annotation(ORIGINAL_MIN_ANNOTATION) == Some(own.to_string().as_str())
            && self.annotation(OWNER_ANNOTATION) == Some(owner_uid)
            && self.annotation(FLOOR_ANNOTATION) == Some(wanted.to_string().as_str());
        if wanted == current && up_to_date {
            return None;
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": self.resource_version,
                "annotations": {
                    ORIGINAL_MIN_ANNOTATION: own.to_string(),
                    OWNER_ANNOTATION: owner_uid,
                    FLOOR_ANNOTATION: wanted.to_string(),
                },
            },
            "spec": { self.field: wanted },
        });
        Some((patch, (wanted != current).then_some(wanted)))
    }

    /// The patch that gives the object its own floor back and removes prescaler's annotations;
    /// with the value restored.
    pub fn restore_patch(&self) -> Option<(serde_json::Value, i32)> {
        self.holds_floor().then(|| {
            let own = self.own_min();
            let patch = json!({
                "metadata": {
                    "resourceVersion": self.resource_version,
                    "annotations": {
                        ORIGINAL_MIN_ANNOTATION: null,
                        OWNER_ANNOTATION: null,
                        FLOOR_ANNOTATION: null,
                    },
                },
                "spec": { self.field: own },
            });
            (patch, own)
        })
    }
}

/// Whether prescaler's floor annotations are on this HPA.
pub fn holds_floor(hpa: &HorizontalPodAutoscaler) -> bool {
    FloorHolder::hpa(hpa).holds_floor()
}

/// The HPA's own `minReplicas`: the kept original while prescaler sets it, unless a person has
/// changed `minReplicas` since prescaler last set it (then theirs).
pub fn hpa_own_min(hpa: &HorizontalPodAutoscaler) -> i32 {
    FloorHolder::hpa(hpa).own_min()
}

/// The patch that sets the HPA's `minReplicas` to `floor` (never below the HPA's own value,
/// never above its `maxReplicas`), keeping the HPA's own value and what was set; with the value
/// set if it changed. `None` when there is nothing to write.
pub fn floor_patch(
    hpa: &HorizontalPodAutoscaler,
    owner_uid: &str,
    floor: u32,
) -> Option<(serde_json::Value, Option<i32>)> {
    FloorHolder::hpa(hpa).floor_patch(owner_uid, floor)
}

/// The patch that gives the HPA its own `minReplicas` back and removes prescaler's annotations;
/// with the value restored.
pub fn restore_patch(hpa: &HorizontalPodAutoscaler) -> Option<(serde_json::Value, i32)> {
    FloorHolder::hpa(hpa).restore_patch()
}

/// Sets the HPA's `minReplicas` to `floor`. The value set, if it changed.
pub async fn set_hpa_floor(
    client: &kube::Client,
    hpa: &HorizontalPodAutoscaler,
    owner_uid: &str,
    floor: u32,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<Option<i32>> {
    let written =
        patch_hpa_guarded(client, hpa, |h| floor_patch(h, owner_uid, floor), may_write).await?;
    Ok(written.flatten())
}

/// How often an HPA write is computed again from a fresh read after a 409 Conflict (the HPA
/// controller writes its status often; a person may edit it).
const CONFLICT_RETRIES: usize = 4;

/// Writes the patch `plan` computes from the HPA, guarded by its resourceVersion. After a
/// conflict the patch is computed again from the API server's copy. `None` when `plan` had
/// nothing to write.
async fn patch_hpa_guarded<T>(
    client: &kube::Client,
    cached: &HorizontalPodAutoscaler,
    plan: impl Fn(&HorizontalPodAutoscaler) -> Option<(serde_json::Value, T)>,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<Option<T>> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
        client.clone(),
        cached.metadata.namespace.as_deref().unwrap_or("default"),
    );
    patch_guarded(&api, "a HorizontalPodAutoscaler", cached, plan, may_write).await
}

/// Writes the patch `plan` computes from `cached`, guarded by its resourceVersion; after a
/// conflict, computed again from the API server's copy (up to `CONFLICT_RETRIES` times). `None`
/// when `plan` had nothing to write. Each attempt asks `may_write` first: the read between two
/// attempts may take up to `API_TIMEOUT`, long enough for a Lease to be lost.
async fn patch_guarded<K, T>(
    api: &Api<K>,
    what: &str,
    cached: &K,
    plan: impl Fn(&K) -> Option<(serde_json::Value, T)>,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<Option<T>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = cached.meta().name.clone().unwrap_or_default();
    let mut current = cached.clone();
    let mut attempt = 0;
    loop {
        let Some((patch, outcome)) = plan(&current) else {
            return Ok(None);
        };
        if !may_write() {
            return Err(Error::NotLeader);
        }
        match call(
            &format!("writing {what}"),
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(_) => return Ok(Some(outcome)),
            Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                current = call(&format!("reading {what}"), api.get(&name)).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Pods per page of the list `pod_starts` reads: one page is what is held in memory at once. A
/// pod is a few KiB, but its template's annotations are the tenant's to write (up to the API
/// server's 1.5 MiB, copied into every pod): 300 pods of 200 KiB in pages of 500 took the
/// operator from 24 to 137 MiB. Twenty-five bound a page to about 37 MiB in the worst case.
pub const POD_PAGE: u32 = 25;
/// Pages read at most (1,250 pods): a survey is a sample of start-ups, not an inventory.
const POD_PAGES: usize = 50;

/// The start-up of the pods `selector` selects in `namespace` (the target's `/scale`
/// `status.selector`), for `leadTime: Auto`: a paged list (`limit` and `continue`, as
/// client-go's pager reads large lists), each page bounded by `API_TIMEOUT`, read into the few
/// fields of `SurveyedPod` — not whole pods: a page's text is all that is held of the pods'
/// specs and annotations, and only while it is parsed.
pub async fn pod_starts(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<Vec<PodStart>> {
    let pods = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"));
    let mut starts = Vec::new();
    let mut params = ListParams::default().labels(selector).limit(POD_PAGE);
    for _ in 0..POD_PAGES {
        let request = pods
            .list(&params)
            .map_err(|e| Error::from(kube::Error::BuildRequest(e)))?;
        let page = call("listing the target's pods", read_pod_page(client, request)).await?;
        starts.extend(page.items.iter().filter_map(pod_start));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(starts)
}

/// Most bytes of one page of pods: 25 pods of the API server's largest object (1.5 MiB), with
/// room to spare. A larger page is refused, not read.
const POD_PAGE_BYTES: u64 = 64 << 20;

/// One page of pods, read into one buffer and parsed from it: kube's `Client::request` holds
/// the body three times at once (its chunks, the joined bytes, a `String` copy), which for pages
/// of large pods was 75 MiB per survey.
async fn read_pod_page(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> kube::Result<PodPage> {
    use futures::AsyncReadExt;
    let body = client.request_stream(request).await?;
    let mut bytes = Vec::new();
    body.take(POD_PAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(kube::Error::ReadEvents)?;
    if bytes.len() as u64 > POD_PAGE_BYTES {
        return Err(kube::Error::ReadEvents(std::io::Error::other(format!(
            "a page of {POD_PAGE} pods is larger than {} MiB",
            POD_PAGE_BYTES >> 20
        ))));
    }
    serde_json::from_slice(&bytes).map_err(kube::Error::SerdeError)
}

/// A page of the pod list, as far as `pod_starts` reads it.
#[derive(serde::Deserialize)]
struct PodPage {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
    #[serde(default)]
    items: Vec<SurveyedPod>,
}

/// The fields of a pod that its start-up is read from; the others are skipped while parsing.
#[derive(serde::Deserialize)]
struct SurveyedPod {
    metadata: SurveyedMeta,
    status: Option<SurveyedStatus>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SurveyedMeta {
    uid: Option<String>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SurveyedStatus {
    phase: Option<String>,
    #[serde(default)]
    conditions: Vec<k8s_openapi::api::core::v1::PodCondition>,
    #[serde(default)]
    container_statuses: Vec<SurveyedContainer>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SurveyedContainer {
    #[serde(default)]
    restart_count: i32,
}

/// A pod's creation, its Ready time (the `Ready` condition's `lastTransitionTime`, when True),
/// whether it is unschedulable (`PodScheduled=False`), restarted or terminating.
fn pod_start(pod: &SurveyedPod) -> Option<PodStart> {
    let time =
        |t: &Time| DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32);
    let created = time(pod.metadata.creation_timestamp.as_ref()?)?;
    let status = pod.status.as_ref();
    // An evicted or finished pod keeps Ready=False until garbage collection: it is not starting.
    if status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| matches!(phase, "Failed" | "Succeeded"))
    {
        return None;
    }
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let ready_at = condition("Ready")
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .and_then(time);
    let unschedulable = condition("PodScheduled").is_some_and(|c| c.status == "False");
    let restarted = status
        .map(|s| s.container_statuses.as_slice())
        .unwrap_or_default()
        .iter()
        .any(|c| c.restart_count > 0);
    Some(PodStart {
        uid: pod.metadata.uid.clone()?,
        created,
        ready_at,
        unschedulable,
        restarted,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// KEDA's ScaledObject (`keda.sh/v1alpha1`), read as a dynamic object: prescaler does not depend
/// on KEDA's types, only on the fields it reads and writes.
fn scaled_objects(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &scaled_object_resource())
}

pub fn scaled_object_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject");
    ApiResource::from_gvk_with_plural(&gvk, "scaledobjects")
}

/// The ScaledObject `name` in `namespace`, if it exists.
pub async fn get_scaled_object(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<DynamicObject>> {
    call(
        "reading a KEDA ScaledObject",
        scaled_objects(client, namespace).get_opt(name),
    )
    .await
}

/// KEDA's pause annotation on a ScaledObject (`autoscaling.keda.sh/paused: "true"`, or
/// `autoscaling.keda.sh/paused-replicas`, which freezes the count): someone turned KEDA's
/// scaling off, and prescaler leaves it off too.
pub fn keda_paused(so: &DynamicObject) -> Option<String> {
    let annotations = so.metadata.annotations.as_ref()?;
    let name = so.metadata.name.as_deref().unwrap_or_default();
    // KEDA reads the annotation with Go's strconv.ParseBool and pauses on anything that is not
    // a false value (an unparsable one included).
    if let Some(v) = annotations
        .get(KEDA_PAUSED_ANNOTATION)
        .filter(|v| !matches!(v.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False"))
    {
        return Some(format!(
            "KEDA ScaledObject {name} carries {KEDA_PAUSED_ANNOTATION}: {v:?}"
        ));
    }
    annotations.get(KEDA_PAUSED_REPLICAS_ANNOTATION).map(|v| {
        format!("KEDA ScaledObject {name} carries {KEDA_PAUSED_REPLICAS_ANNOTATION}: {v:?}")
    })
}

/// Whether a ScaledObject scales `target` (KEDA defaults `scaleTargetRef.kind` to Deployment).
pub fn scaled_object_scales(so: &DynamicObject, target: &ScaleTargetRef) -> bool {
    let r = &so.data["spec"]["scaleTargetRef"];
    r["name"].as_str() == Some(target.name.as_str())
        && r["kind"].as_str().unwrap_or("Deployment") == target.kind
}

/// Sets the ScaledObject's `minReplicaCount` to `floor`, with the HPA floor's bookkeeping. The
/// value set, if it changed.
pub async fn set_scaled_object_floor(
    client: &kube::Client,
    so: &DynamicObject,
    owner_uid: &str,
    floor: u32,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<Option<i32>> {
    let api = scaled_objects(
        client,
        so.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let written = patch_guarded(
        &api,
        "a KEDA ScaledObject",
        so,
        |s| FloorHolder::scaled_object(s).floor_patch(owner_uid, floor),
        may_write,
    )
    .await?;
    Ok(written.flatten())
}

/// The ScaledObjects in a namespace; `None` when the API server does not serve them (KEDA is
/// not installed, or was removed): there is nothing to give back then.
/// The ScaledObjects `keep` keeps (slimmed, see `slim_scaled_object`), page by page; `None`
/// when KEDA is not installed.
async fn list_scaled_objects(
    api: &Api<DynamicObject>,
    keep: impl FnMut(&DynamicObject) -> bool,
    first: bool,
) -> Result<Option<Vec<DynamicObject>>> {
    match list_paged(
        api,
        "listing KEDA ScaledObjects",
        keep,
        slim_scaled_object,
        first,
    )
    .await
    {
        Ok(kept) => Ok(Some(kept)),
        Err(Error::Kube(e)) if matches!(&*e, kube::Error::Api(s) if s.is_not_found()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Objects per page of the lists prescaler reads whole (HPAs and ScaledObjects, to find a
/// target's or to give floors back): a tenant may make its objects large (annotations, up to the
/// API server's 1.5 MiB each), and a list read in one answer was held whole — 600 HPAs of
/// 200 KiB took the operator to 490 MiB. A page is what is held at once, as client-go's pager
/// reads large lists, and only the objects kept are kept, slimmed. Ten, not client-go's 500:
/// measured with 300 HPAs and 300 ScaledObjects of 200 KiB, pages of 50 still peaked 72 MiB
/// above the operator's normal RSS, pages of 10 at 19 MiB; ordinary objects (a few KiB) cost a
/// request per ten of them.
pub const LIST_PAGE: u32 = 10;

/// Lists `api` page by page (`limit` and `continue`), keeping the objects `keep` keeps,
/// `slim`med; with `first`, stops at the first one kept. `keep` sees the slimmed object, as the
/// watches hold it: a field beyond its bound means the same in a list as in a watch.
async fn list_paged<K>(
    api: &Api<K>,
    what: &str,
    mut keep: impl FnMut(&K) -> bool,
    slim: fn(&mut K),
    first: bool,
) -> Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut kept = Vec::new();
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let page = call(what, api.list(&params)).await?;
        for mut item in page.items {
            slim(&mut item);
            if keep(&item) {
                kept.push(item);
                if first {
                    return Ok(kept);
                }
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(kept),
        }
    }
}

/// The longest annotation value kept of a tenant's object. Prescaler's own values are an
/// integer or a uid (at most 36 characters) and KEDA's pause a boolean or an integer: a
/// kibibyte is far above any of them, and 300 objects' worth of it is a few hundred KiB, where
/// the API server lets one object carry 256 KiB of annotations.
pub const KEPT_VALUE_MAX: usize = 1024;

/// Kubernetes' bounds on what names an object: a DNS subdomain (an object's name, an API
/// group), a DNS label (a kind, a version), a uid (a UUID, 36 characters; some room above it).
const NAME_MAX: usize = 253;
const LABEL_MAX: usize = 63;
const API_VERSION_MAX: usize = NAME_MAX + 1 + LABEL_MAX;
const UID_MAX: usize = 128;

/// The floor's bookkeeping, as `FloorHolder` reads it.
const FLOOR_ANNOTATIONS: [&str; 3] = [ORIGINAL_MIN_ANNOTATION, OWNER_ANNOTATION, FLOOR_ANNOTATION];

/// Of a tenant's annotations, the floor's bookkeeping and, with `keda_pause`, KEDA's pause —
/// nothing else is read. A floor record with any value longer than `KEPT_VALUE_MAX` is dropped
/// whole: prescaler never wrote it (it writes integers and a uid), so the object holds no floor
/// of prescaler's (a floor prescaler sets there later overwrites it). KEDA's pause annotations
/// are cut to `KEPT_VALUE_MAX` instead: KEDA pauses on any `paused` value but a false one and
/// on any `paused-replicas`, and a value that long is neither a false value nor any shorter
/// once cut, so the cut value means what the whole one meant.
fn slim_annotations(
    annotations: Option<BTreeMap<String, String>>,
    keda_pause: bool,
) -> Option<BTreeMap<String, String>> {
    let mut all = annotations?;
    let mut kept = BTreeMap::new();
    let record: Vec<(String, String)> = FLOOR_ANNOTATIONS
        .iter()
        .filter_map(|k| all.remove_entry(*k))
        .collect();
    if record.iter().all(|(_, v)| v.len() <= KEPT_VALUE_MAX) {
        kept.extend(record);
    }
    if keda_pause {
        for key in [KEDA_PAUSED_ANNOTATION, KEDA_PAUSED_REPLICAS_ANNOTATION] {
            if let Some(mut v) = all.remove(key) {
                if v.len() > KEPT_VALUE_MAX {
                    let cut = (0..=KEPT_VALUE_MAX)
                        .rev()
                        .find(|i| v.is_char_boundary(*i))
                        .unwrap_or(0);
                    v.truncate(cut);
                }
                kept.insert(key.to_string(), v);
            }
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// The metadata prescaler reads of any object: identity, generation, creation and deletion
/// marks. The rest (labels, managed fields, generateName …) is dropped; each caller adds back
/// what it reads of the tenant's own fields, bounded.
fn slim_meta(meta: &mut ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: meta.uid.take(),
        resource_version: meta.resource_version.take(),
        generation: meta.generation.take(),
        creation_timestamp: meta.creation_timestamp.take(),
        deletion_timestamp: meta.deletion_timestamp.take(),
        ..ObjectMeta::default()
    }
}

/// Of an object's owner references, the controller reference (what `keda_controller` reads;
/// the API server lets an object have one), when its fields are within Kubernetes' bounds:
/// one beyond them names no object that can exist, so it controls nothing.
fn slim_owner_references(refs: Option<Vec<OwnerReference>>) -> Option<Vec<OwnerReference>> {
    let controller = refs?.into_iter().find(|o| o.controller == Some(true))?;
    (controller.kind.len() <= LABEL_MAX
        && controller.name.len() <= NAME_MAX
        && controller.api_version.len() <= API_VERSION_MAX
        && controller.uid.len() <= UID_MAX)
        .then(|| vec![controller])
}

/// Whether a `scaleTargetRef`'s fields are within Kubernetes' bounds (a kind is a DNS label, a
/// name a DNS subdomain): one beyond them names no workload that can exist.
fn target_within_bounds(kind: &str, name: &str, api_version: &str) -> bool {
    kind.len() <= LABEL_MAX && name.len() <= NAME_MAX && api_version.len() <= API_VERSION_MAX
}

/// Keeps of an HPA what prescaler reads — its identity, controller reference, target, bounds
/// and the floor's annotations — each bounded, for the cluster-wide HPA watch and the floor
/// sweeps: a tenant's HPAs are not held whole, whatever it writes in them (annotations,
/// labels, metrics, owner references, finalizers, a target's name, none of which the API
/// server bounds but by the object's 1.5 MiB). A target beyond Kubernetes' bounds is made
/// empty: it matches no workload (every target is read before its HPA is looked for, and no
/// workload has an empty kind or name), so such an HPA raises no floor. Writes are merge
/// patches of single fields, so what is dropped here is never written back.
pub fn slim_hpa(hpa: &mut HorizontalPodAutoscaler) {
    let mut meta = slim_meta(&mut hpa.metadata);
    meta.annotations = slim_annotations(hpa.metadata.annotations.take(), false);
    meta.owner_references = slim_owner_references(hpa.metadata.owner_references.take());
    hpa.metadata = meta;
    let target = &mut hpa.spec.scale_target_ref;
    if !target_within_bounds(
        &target.kind,
        &target.name,
        target.api_version.as_deref().unwrap_or(""),
    ) {
        *target = Default::default();
    }
    hpa.spec.metrics = None;
    hpa.spec.behavior = None;
    hpa.status = None;
}

/// `slim_hpa` for a PredictiveScaler in the controller's watch: the CRD bounds the spec, not the
/// metadata, and 300 scalers with 700 KiB of annotations each took the operator to 430 MiB
/// (6,000 finalizers each, 479 MiB; 1.2 MiB of owner references, 454 MiB). Its identity,
/// generation, deletion mark, spec and status stay, and of its finalizers only prescaler's
/// (whether it is there is all the controller reads); no annotation or owner reference of a
/// scaler is read. Status is written by server-side apply, and finalizers by
/// `write_finalizers`, which writes the change to the API server's whole list, so nothing
/// dropped here is written back.
pub fn slim_scaler(ps: &mut PredictiveScaler) {
    let mut meta = slim_meta(&mut ps.metadata);
    meta.finalizers = ps
        .metadata
        .finalizers
        .take()
        .filter(|f| f.iter().any(|f| f == FINALIZER))
        .map(|_| vec![FINALIZER.to_string()]);
    ps.metadata = meta;
}

/// `slim_hpa` for a ScaledObject: its identity, the annotations prescaler reads (the floor's,
/// KEDA's pause), and of its spec the target (bounded as an HPA's is) and the replica bounds.
pub fn slim_scaled_object(so: &mut DynamicObject) {
    let mut meta = slim_meta(&mut so.metadata);
    meta.annotations = slim_annotations(so.metadata.annotations.take(), true);
    so.metadata = meta;
    let spec = &so.data["spec"];
    let mut slim = serde_json::Map::new();
    let target = &spec["scaleTargetRef"];
    let field = |f: &str| target[f].as_str();
    if target.is_object()
        && target_within_bounds(
            field("kind").unwrap_or(""),
            field("name").unwrap_or(""),
            field("apiVersion").unwrap_or(""),
        )
    {
        let mut kept = serde_json::Map::new();
        for f in ["name", "kind", "apiVersion"] {
            if let Some(v) = field(f) {
                kept.insert(f.into(), v.into());
            }
        }
        slim.insert("scaleTargetRef".into(), kept.into());
    }
    for f in ["minReplicaCount", "maxReplicaCount"] {
        if let Some(v) = spec.get(f).filter(|v| v.is_number()) {
            slim.insert(f.into(), v.clone());
        }
    }
    so.data = json!({ "spec": slim });
}

/// The ScaledObject that scales `target`, if KEDA is installed and one does: a target KEDA
/// scales is never scaled through `/scale` by prescaler, HPA or not (KEDA deletes its HPA while
/// the ScaledObject is paused).
pub async fn scaled_object_for(
    client: &kube::Client,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Result<Option<DynamicObject>> {
    let api = scaled_objects(client, namespace);
    Ok(
        list_scaled_objects(&api, |so| scaled_object_scales(so, target), true)
            .await?
            .and_then(|kept| kept.into_iter().next()),
    )
}

/// Writes a PredictiveScaler's finalizers, guarded by the resourceVersion `ps` was read at: a
/// concurrent change to the list is a 409 Conflict (for the caller to read again), never a lost
/// finalizer. `ps` may be the watch's slimmed copy, which holds only prescaler's finalizer
/// (see `slim_scaler`): what is written is the API server's whole list, read again, with the
/// change from `ps`'s list to `finalizers` made to it — the finalizers `ps` has and `finalizers`
/// has not removed, the others added — so the finalizers the copy does not hold are kept. The
/// list read is the one `ps` was slimmed from whenever the guarded write succeeds (the same
/// resourceVersion).
pub async fn write_finalizers(
    client: &kube::Client,
    ps: &PredictiveScaler,
    finalizers: Vec<String>,
) -> Result<()> {
    let api: Api<PredictiveScaler> =
        Api::namespaced(client.clone(), &ps.namespace().unwrap_or_default());
    let current = call(
        "reading a PredictiveScaler",
        api.get_metadata(&ps.name_any()),
    )
    .await?;
    let mut written: Vec<String> = current
        .metadata
        .finalizers
        .unwrap_or_default()
        .into_iter()
        .filter(|f| !ps.finalizers().contains(f) || finalizers.contains(f))
        .collect();
    for f in finalizers {
        if !written.contains(&f) {
            written.push(f);
        }
    }
    let patch = json!({ "metadata": {
        "resourceVersion": ps.resource_version(), "finalizers": written } });
    call(
        "writing finalizers",
        api.patch(
            &ps.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ),
    )
    .await
    .map(|_| ())
}

/// An object on which prescaler holds (or held) a floor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FloorObject {
    /// A HorizontalPodAutoscaler's `minReplicas`.
    Hpa(String),
    /// A KEDA ScaledObject's `minReplicaCount`.
    ScaledObject(String),
}

impl FloorObject {
    /// A reference to the object, e.g. for an Event's `related`.
    pub fn object_ref(&self, namespace: &str) -> k8s_openapi::api::core::v1::ObjectReference {
        let (api_version, kind, name) = match self {
            FloorObject::Hpa(name) => ("autoscaling/v2", "HorizontalPodAutoscaler", name),
            FloorObject::ScaledObject(name) => ("keda.sh/v1alpha1", "ScaledObject", name),
        };
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            name: Some(name.clone()),
            namespace: Some(namespace.into()),
            ..Default::default()
        }
    }

    /// The floor field's name.
    pub fn field(&self) -> &'static str {
        match self {
            FloorObject::Hpa(_) => "minReplicas",
            FloorObject::ScaledObject(_) => "minReplicaCount",
        }
    }
}

impl std::fmt::Display for FloorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FloorObject::Hpa(name) => write!(f, "HorizontalPodAutoscaler {name}"),
            FloorObject::ScaledObject(name) => write!(f, "KEDA ScaledObject {name}"),
        }
    }
}

/// A floor given back: the object, its namespace, and the value it has again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub namespace: String,
    pub object: FloorObject,
    pub restored: i32,
    /// The kept own value, when it was refused and so not written back (`restored` is then the
    /// object's current value, clamped: see `FloorHolder::safe_min`).
    pub refused: Option<String>,
}

/// A floor that could not be given back: the object, its namespace, the owner its annotations
/// name, and why.
#[derive(Debug)]
pub struct NotReleased {
    pub namespace: String,
    pub object: FloorObject,
    pub owner: Option<String>,
    pub error: Error,
}

impl std::fmt::Display for NotReleased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}: {}", self.namespace, self.object, self.error)
    }
}

/// What a sweep gave back, and what it could not. One object the API server refuses (a tenant
/// may write prescaler's annotations on its own HPA, with any value) must not keep every other
/// floor raised: the sweep goes on past it, and the caller decides what an incomplete sweep
/// means (the controller retries, the uninstall hook fails after doing all it could).
#[derive(Debug, Default)]
#[must_use]
pub struct Sweep {
    pub released: Vec<Released>,
    /// Floors found but not given back.
    pub failed: Vec<NotReleased>,
    /// Lists that could not be read (of HPAs, of ScaledObjects): the floors there were not
    /// even looked at.
    pub unlisted: Vec<Error>,
}

impl Sweep {
    /// Whether every floor the sweep was to give back was given back.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.unlisted.is_empty()
    }

    /// The first error of an incomplete sweep (a list not read first, then a floor not given
    /// back); the others are in `unlisted` and `failed`.
    pub fn take_error(&mut self) -> Option<Error> {
        if !self.unlisted.is_empty() {
            return Some(self.unlisted.remove(0));
        }
        (!self.failed.is_empty()).then(|| self.failed.remove(0).error)
    }

    /// Records one object's outcome; a failure is logged here, naming the object.
    fn record(
        &mut self,
        namespace: String,
        object: FloorObject,
        owner: Option<&str>,
        written: Result<Option<(i32, Option<String>)>>,
    ) {
        match written {
            Ok(Some((restored, refused))) => self.released.push(Released {
                namespace,
                object,
                restored,
                refused,
            }),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(namespace, object = %object, error = %error, "could not give the floor back; going on with the others");
                self.failed.push(NotReleased {
                    namespace,
                    object,
                    owner: owner.map(str::to_owned),
                    error,
                });
            }
        }
    }
}

/// Whose floors a sweep gives back.
#[derive(Clone, Copy)]
pub enum Owners<'a> {
    /// One PredictiveScaler's (by uid), except the floor on `keep`, the one it holds now.
    One {
        uid: &'a str,
        keep: Option<&'a FloorObject>,
    },
    /// Every floor whose owner is not among the live PredictiveScalers (`is_live(uid)`): what a
    /// scaler deleted while no operator ran, an older operator or a forced finalizer removal
    /// left behind; with `|_| false`, every floor of prescaler's (uninstall).
    NotLive(&'a (dyn Fn(&str) -> bool + Sync)),
}

impl Owners<'_> {
    fn gives_back(&self, holder: &FloorHolder<'_>, object: &FloorObject) -> bool {
        let Some(owner) = holder.owner() else {
            return false;
        };
        match self {
            Owners::One { uid, keep } => owner == *uid && *keep != Some(object),
            Owners::NotLive(is_live) => !is_live(owner),
        }
    }
}

/// Gives back the floors `owners` names, found by prescaler's annotations on the HPAs and KEDA
/// ScaledObjects of `namespace` (all namespaces with `None`), read from the API server — not
/// from the target the scaler names now: a changed `scaleTargetRef`, KEDA support turned off or
/// an operator that stopped mid-way leaves no floor behind. ScaledObjects are looked at whether
/// KEDA support is on or not (a floor set while it was on must come back after it is turned
/// off); where the API does not serve them (KEDA not installed) there is nothing to give back,
/// and with KEDA support off a 403 on them means prescaler was never let near them (`keda`
/// false), so it is not an error.
///
/// Each object is given back on its own: a write the API server refuses, or a list it does not
/// answer, is logged and recorded in the `Sweep`, and the sweep goes on to the others. A kept
/// own value that is no value the object may hold is not written back (see
/// `FloorHolder::refused_own`); a Warning names the object.
pub async fn release_floors(
    client: &kube::Client,
    namespace: Option<&str>,
    owners: Owners<'_>,
    keda: bool,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Sweep {
    let mut sweep = Sweep::default();
    release_hpa_floors(client, namespace, owners, may_write, &mut sweep).await;
    release_scaled_object_floors(client, namespace, owners, keda, may_write, &mut sweep).await;
    sweep
}

/// `release_floors` on the HPAs: those not KEDA's whose floors `owners` names.
async fn release_hpa_floors(
    client: &kube::Client,
    namespace: Option<&str>,
    owners: Owners<'_>,
    may_write: &(dyn Fn() -> bool + Sync),
    sweep: &mut Sweep,
) {
    let hpas: Api<HorizontalPodAutoscaler> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // KEDA copies a ScaledObject's annotations onto its HPA: the bookkeeping seen there is the
    // ScaledObject's, and the floor is given back there (writing the HPA would be reverted, and
    // a `minReplicaCount` of 0 is no valid `minReplicas`).
    let gives_back_hpa = |hpa: &HorizontalPodAutoscaler| {
        let object = FloorObject::Hpa(hpa.metadata.name.clone().unwrap_or_default());
        keda_owner(hpa).is_none() && owners.gives_back(&FloorHolder::hpa(hpa), &object)
    };
    let listed = list_paged(
        &hpas,
        "listing HorizontalPodAutoscalers",
        gives_back_hpa,
        slim_hpa,
        false,
    )
    .await;
    let hpas = match listed {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "could not list HorizontalPodAutoscalers to give floors back");
            sweep.unlisted.push(e);
            Vec::new()
        }
    };
    for hpa in hpas {
        let object = FloorObject::Hpa(hpa.metadata.name.clone().unwrap_or_default());
        let holder = FloorHolder::hpa(&hpa);
        let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
        warn_refused(&namespace, &object, &holder);
        let written = match may_write() {
            true => {
                patch_hpa_guarded(client, &hpa, |h| restore(FloorHolder::hpa(h)), may_write).await
            }
            false => Err(Error::NotLeader),
        };
        sweep.record(namespace, object, holder.owner(), written);
    }
}

/// `release_floors` on the KEDA ScaledObjects whose floors `owners` names.
async fn release_scaled_object_floors(
    client: &kube::Client,
    namespace: Option<&str>,
    owners: Owners<'_>,
    keda: bool,
    may_write: &(dyn Fn() -> bool + Sync),
    sweep: &mut Sweep,
) {
    let all_scaled_objects = match namespace {
        Some(ns) => scaled_objects(client, ns),
        None => Api::all_with(client.clone(), &scaled_object_resource()),
    };
    let gives_back_scaled_object = |so: &DynamicObject| {
        let object = FloorObject::ScaledObject(so.metadata.name.clone().unwrap_or_default());
        owners.gives_back(&FloorHolder::scaled_object(so), &object)
    };
    let listed =
        match list_scaled_objects(&all_scaled_objects, gives_back_scaled_object, false).await {
            Ok(listed) => listed,
            Err(e) if e.is_forbidden() && !keda => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not list KEDA ScaledObjects to give floors back");
                sweep.unlisted.push(e);
                None
            }
        };
    for so in listed.into_iter().flatten() {
        let object = FloorObject::ScaledObject(so.metadata.name.clone().unwrap_or_default());
        let holder = FloorHolder::scaled_object(&so);
        let namespace = so.metadata.namespace.clone().unwrap_or_default();
        warn_refused(&namespace, &object, &holder);
        let api = scaled_objects(client, &namespace);
        let written = match may_write() {
            true => {
                patch_guarded(
                    &api,
                    "a KEDA ScaledObject",
                    &so,
                    |s| restore(FloorHolder::scaled_object(s)),
                    may_write,
                )
                .await
            }
            false => Err(Error::NotLeader),
        };
        sweep.record(namespace, object, holder.owner(), written);
    }
}

/// The patch that gives a floor back, with the value restored and the kept own value that was
/// refused (not written back), if any.
fn restore(holder: FloorHolder<'_>) -> Option<(serde_json::Value, (i32, Option<String>))> {
    let refused = holder.refused_own().map(str::to_owned);
    holder.restore_patch().map(|(p, v)| (p, (v, refused)))
}

/// Logs a Warning naming the object when its kept own value is refused: what is written instead
/// is its current value (clamped), and a person may want to set the right one.
fn warn_refused(namespace: &str, object: &FloorObject, holder: &FloorHolder<'_>) {
    if let Some(kept) = holder.refused_own() {
        tracing::warn!(
            namespace,
            object = %object,
            kept,
            written = holder.own_min(),
            "{ORIGINAL_MIN_ANNOTATION} is no value {} may hold (an integer from {} to {}): it is not written back; prescaler's annotations are removed and {} keeps its current value, clamped",
            object.field(),
            holder.lowest,
            holder.max,
            object.field(),
        );
    }
}

/// A ConfigMap's text under one key (a calendar's `.ics`, `spec.calendar.configMapRefs`), or
/// why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigMapText {
    /// The text, and the ConfigMap's `resourceVersion` (what a cache compares).
    Found {
        text: String,
        resource_version: Option<String>,
    },
    /// No ConfigMap of that name in the namespace.
    NotFound,
    /// The ConfigMap has no such key in `data` (`in_binary`: it is in `binaryData`).
    NoKey { in_binary: bool },
}

/// The text under `key` of the ConfigMap `name` in `namespace` (always the scaler's own: the
/// caller has no other to give), within `API_TIMEOUT`.
pub async fn config_map_text(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<ConfigMapText> {
    // The name goes into the request's path: the spec's check allows only a ConfigMap name.
    if !names::is_dns_subdomain(name) {
        return Ok(ConfigMapText::NotFound);
    }
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), namespace);
    let Some(cm) = call("reading a calendar ConfigMap", api.get_opt(name)).await? else {
        return Ok(ConfigMapText::NotFound);
    };
    let resource_version = cm.metadata.resource_version.clone();
    match cm.data.and_then(|mut d| d.remove(key)) {
        Some(text) => Ok(ConfigMapText::Found {
            text,
            resource_version,
        }),
        None => Ok(ConfigMapText::NoKey {
            in_binary: cm.binary_data.is_some_and(|b| b.contains_key(key)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicted_and_finished_pods_are_not_starting() {
        let pod = |phase: &str| -> SurveyedPod {
            serde_json::from_value(json!({
                "metadata": { "name": "p", "uid": "u", "creationTimestamp": "2026-11-20T10:00:00Z" },
                "status": { "phase": phase,
                            "conditions": [{ "type": "Ready", "status": "False" }] },
            }))
            .unwrap()
        };
        assert!(pod_start(&pod("Pending")).is_some());
        assert!(pod_start(&pod("Running")).is_some());
        assert!(pod_start(&pod("Failed")).is_none());
        assert!(pod_start(&pod("Succeeded")).is_none());
    }

    #[test]
    fn keda_pauses_on_anything_but_a_false_value() {
        let so = |value: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": { "name": "q", "annotations": { KEDA_PAUSED_ANNOTATION: value } },
            }))
            .unwrap()
        };
        for paused in ["true", "1", "True", "yes"] {
            assert!(keda_paused(&so(paused)).is_some(), "{paused}");
        }
        for running in ["false", "0", "F"] {
            assert!(keda_paused(&so(running)).is_none(), "{running}");
        }
    }

    fn hpa(min: i32, annotations: &[(&str, &str)]) -> HorizontalPodAutoscaler {
        let mut h: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "shop", "resourceVersion": "7" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
                "minReplicas": min, "maxReplicas": 50,
            },
        }))
        .unwrap();
        h.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        h
    }

    #[test]
    fn the_floor_keeps_the_hpas_own_value_and_never_goes_below_it() {
        let (patch, set) = floor_patch(&hpa(3, &[]), "uid-1", 12).unwrap();
        assert_eq!(set, Some(12));
        assert_eq!(patch["spec"]["minReplicas"], 12);
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_MIN_ANNOTATION],
            "3"
        );
        assert_eq!(patch["metadata"]["annotations"][OWNER_ANNOTATION], "uid-1");
        // Below the HPA's own minimum: its own value.
        let (patch, _) = floor_patch(&hpa(3, &[]), "uid-1", 1).unwrap();
        assert_eq!(patch["spec"]["minReplicas"], 3);
        // Nothing to do when it is set.
        let set_already = hpa(
            12,
            &[
                (ORIGINAL_MIN_ANNOTATION, "3"),
                (OWNER_ANNOTATION, "uid-1"),
                (FLOOR_ANNOTATION, "12"),
            ],
        );
        assert!(floor_patch(&set_already, "uid-1", 12).is_none());
    }

    #[test]
    fn a_persons_edit_of_min_replicas_is_adopted_not_overwritten() {
        // prescaler set 12 over the HPA's own 3; a person then set 6.
        let edited = hpa(
            6,
            &[
                (ORIGINAL_MIN_ANNOTATION, "3"),
                (OWNER_ANNOTATION, "uid-1"),
                (FLOOR_ANNOTATION, "12"),
            ],
        );
        assert_eq!(hpa_own_min(&edited), 6);
        let (patch, _) = floor_patch(&edited, "uid-1", 4).unwrap();
        assert_eq!(
            patch["spec"]["minReplicas"], 6,
            "not below the person's value"
        );
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_MIN_ANNOTATION],
            "6"
        );
        // Restoring gives back the person's value, not the old original.
        let (patch, restored) = restore_patch(&edited).unwrap();
        assert_eq!(
            (patch["spec"]["minReplicas"].as_i64(), restored),
            (Some(6), 6)
        );
    }

    #[test]
    fn only_the_scaled_object_an_hpa_names_as_controller_by_uid_and_that_scales_its_target_manages_it()
     {
        let mut so = scaled_object(Some(1), &[]);
        so.metadata.uid = Some("so-uid".into());
        let target = ScaleTargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "queue".into(),
            namespace: None,
        };
        let owned_by = |uid: &str, controller: Option<bool>| {
            let mut h = hpa(1, &[]);
            h.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "keda.sh/v1alpha1".into(),
                    kind: "ScaledObject".into(),
                    name: "queue".into(),
                    uid: uid.into(),
                    controller,
                    block_owner_deletion: None,
                },
            ]);
            h
        };
        assert!(keda_manages(&so, &owned_by("so-uid", Some(true)), &target));
        // Another object of the same name (a made-up uid): not KEDA's HPA of this one.
        assert!(!keda_manages(&so, &owned_by("other", Some(true)), &target));
        // An owner reference that is not the controller is no KEDA HPA.
        assert_eq!(keda_owner(&owned_by("so-uid", None)), None);
        assert!(!keda_manages(&so, &owned_by("so-uid", None), &target));
        // The right object, but it scales another workload.
        let elsewhere = ScaleTargetRef {
            name: "web".into(),
            ..target.clone()
        };
        assert!(!keda_manages(
            &so,
            &owned_by("so-uid", Some(true)),
            &elsewhere
        ));
    }

    fn scaled_object(min: Option<i64>, annotations: &[(&str, &str)]) -> DynamicObject {
        let mut so: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": { "name": "queue", "namespace": "shop", "resourceVersion": "9" },
            "spec": { "scaleTargetRef": { "name": "queue" }, "maxReplicaCount": 20 },
        }))
        .unwrap();
        if let Some(min) = min {
            so.data["spec"]["minReplicaCount"] = json!(min);
        }
        so.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        so
    }

    #[test]
    fn a_scaled_object_floor_is_kept_like_an_hpa_floor() {
        let so = scaled_object(Some(2), &[]);
        let (patch, set) = FloorHolder::scaled_object(&so)
            .floor_patch("uid-1", 30)
            .unwrap();
        // Capped by maxReplicaCount, written to minReplicaCount, guarded by the resourceVersion.
        assert_eq!(set, Some(20));
        assert_eq!(patch["spec"]["minReplicaCount"], 20);
        assert!(patch["spec"].get("minReplicas").is_none());
        assert_eq!(patch["metadata"]["resourceVersion"], "9");
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_MIN_ANNOTATION],
            "2"
        );
        // Unset, KEDA's default (0) is the ScaledObject's own value.
        let unset = scaled_object(None, &[]);
        assert_eq!(FloorHolder::scaled_object(&unset).own_min(), 0);
        // A person's edit after prescaler's is adopted, and given back on restore.
        let edited = scaled_object(
            Some(9),
            &[
                (ORIGINAL_MIN_ANNOTATION, "2"),
                (OWNER_ANNOTATION, "uid-1"),
                (FLOOR_ANNOTATION, "6"),
            ],
        );
        let holder = FloorHolder::scaled_object(&edited);
        assert_eq!(holder.own_min(), 9);
        assert_eq!(
            holder.floor_patch("uid-1", 6).unwrap().0["spec"]["minReplicaCount"],
            9
        );
        let (patch, restored) = holder.restore_patch().unwrap();
        assert_eq!(
            (patch["spec"]["minReplicaCount"].as_i64(), restored),
            (Some(9), 9)
        );
        assert!(patch["metadata"]["annotations"][OWNER_ANNOTATION].is_null());
    }

    #[test]
    fn a_kept_own_value_the_object_may_not_hold_is_never_given_back() {
        // maxReplicas 50, minReplicas now 7 (prescaler's floor, or the tenant's own value).
        for kept in ["0", "-3", "51", "99999999999", "2.5", " 3", "", "lots"] {
            let h = hpa(
                7,
                &[(ORIGINAL_MIN_ANNOTATION, kept), (OWNER_ANNOTATION, "x")],
            );
            let holder = FloorHolder::hpa(&h);
            assert_eq!(holder.refused_own(), Some(kept), "{kept:?}");
            assert_eq!(holder.own_min(), 7, "{kept:?}: the current value");
            let (patch, restored) = holder.restore_patch().unwrap();
            assert_eq!(
                (patch["spec"]["minReplicas"].as_i64(), restored),
                (Some(7), 7)
            );
            assert!(patch["metadata"]["annotations"][ORIGINAL_MIN_ANNOTATION].is_null());
        }
        for kept in ["1", "50"] {
            let h = hpa(
                7,
                &[(ORIGINAL_MIN_ANNOTATION, kept), (OWNER_ANNOTATION, "x")],
            );
            assert_eq!(FloorHolder::hpa(&h).refused_own(), None);
            assert_eq!(FloorHolder::hpa(&h).own_min(), kept.parse::<i32>().unwrap());
        }
        // A person's edit wins over the kept value, refused or not: nothing refused is used.
        let edited = hpa(
            9,
            &[(ORIGINAL_MIN_ANNOTATION, "0"), (FLOOR_ANNOTATION, "12")],
        );
        assert_eq!(FloorHolder::hpa(&edited).refused_own(), None);
        assert_eq!(FloorHolder::hpa(&edited).own_min(), 9);
        // A floor set over a refused own value keeps a valid one.
        let forged = hpa(
            3,
            &[(ORIGINAL_MIN_ANNOTATION, "0"), (OWNER_ANNOTATION, "x")],
        );
        let (patch, _) = floor_patch(&forged, "uid-1", 6).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][ORIGINAL_MIN_ANNOTATION],
            "3"
        );
        // A ScaledObject may hold 0 (scale to zero); up to maxReplicaCount (20 here; 100 unset).
        let so = scaled_object(Some(5), &[(ORIGINAL_MIN_ANNOTATION, "0")]);
        assert_eq!(FloorHolder::scaled_object(&so).refused_own(), None);
        assert_eq!(FloorHolder::scaled_object(&so).own_min(), 0);
        let so = scaled_object(Some(5), &[(ORIGINAL_MIN_ANNOTATION, "21")]);
        assert_eq!(FloorHolder::scaled_object(&so).refused_own(), Some("21"));
        assert_eq!(FloorHolder::scaled_object(&so).own_min(), 5);
        let mut unbounded = scaled_object(Some(5), &[(ORIGINAL_MIN_ANNOTATION, "100")]);
        unbounded.data["spec"]
            .as_object_mut()
            .unwrap()
            .remove("maxReplicaCount");
        assert_eq!(FloorHolder::scaled_object(&unbounded).own_min(), 100);
    }

    #[test]
    fn keda_pause_annotations_are_read_on_the_scaled_object() {
        assert!(keda_paused(&scaled_object(Some(1), &[])).is_none());
        assert!(
            keda_paused(&scaled_object(
                Some(1),
                &[(KEDA_PAUSED_ANNOTATION, "false")]
            ))
            .is_none()
        );
        let paused = keda_paused(&scaled_object(Some(1), &[(KEDA_PAUSED_ANNOTATION, "true")]));
        assert!(paused.unwrap().contains("ScaledObject queue"));
        assert!(
            keda_paused(&scaled_object(
                Some(1),
                &[(KEDA_PAUSED_REPLICAS_ANNOTATION, "3")]
            ))
            .is_some()
        );
    }
}
