//! The workload a PredictiveScaler scales, through its `/scale` subresource, and the
//! HorizontalPodAutoscaler that may already scale it.
//!
//! When an HPA targets the same workload, prescaler does not write the workload's replicas (the two
//! would fight every sync); it raises the HPA's `minReplicas` to its own decision instead, so the
//! HPA stays in charge above that floor. The HPA's own value is kept in an annotation on the HPA,
//! so that it can be restored by any operator replica, after any restart.

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::json;

use crate::api::ScaleTargetRef;
use crate::{Error, Result};

/// Where the HPA's own `minReplicas` is kept while prescaler raises it.
pub const ORIGINAL_MIN_ANNOTATION: &str = "prescaler.dev/original-min-replicas";
/// How often an optimistic write is retried after a 409 Conflict.
const CONFLICT_RETRIES: usize = 4;

/// Which PredictiveScaler raised the HPA's floor.
pub const OWNER_ANNOTATION: &str = "prescaler.dev/floor-owner";

/// Why the target could not be used; each becomes a condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetProblem {
    /// No object of that kind and name in the namespace.
    NotFound(String),
    /// The kind is not served, or has no `/scale` subresource.
    NoScaleSubresource(String),
}

impl TargetProblem {
    pub fn reason(&self) -> &'static str {
        match self {
            TargetProblem::NotFound(_) => "TargetNotFound",
            TargetProblem::NoScaleSubresource(_) => "ScaleNotSupported",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            TargetProblem::NotFound(m) | TargetProblem::NoScaleSubresource(m) => m,
        }
    }
}

/// The resolved workload: its API and its current scale.
pub struct Workload {
    api: Api<DynamicObject>,
    pub name: String,
    pub scale: Scale,
}

impl Workload {
    pub fn replicas(&self) -> u32 {
        self.scale
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
            .max(0) as u32
    }

    /// Sets the replica count through `/scale`. The patch carries the resourceVersion that was
    /// read, so a concurrent change is a 409, never silently overwritten; then the scale is read
    /// again and the write retried a few times.
    pub async fn set_replicas(&mut self, replicas: u32) -> Result<()> {
        for attempt in 0.. {
            let patch = json!({
                "metadata": { "resourceVersion": self.scale.metadata.resource_version },
                "spec": { "replicas": replicas },
            });
            match self
                .api
                .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(scale) => {
                    self.scale = scale;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_RETRIES => {
                    self.scale = self.api.get_scale(&self.name).await.map_err(kube_error)?;
                }
                Err(e) => return Err(kube_error(e)),
            }
        }
        unreachable!("the loop returns")
    }
}

/// The API resource for well-known kinds without a discovery round trip, else by discovery.
async fn resource_for(
    client: &kube::Client,
    target: &ScaleTargetRef,
) -> Result<ApiResource, TargetProblem> {
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
        return Ok(ApiResource::from_gvk_with_plural(&gvk, plural));
    }
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| {
            TargetProblem::NoScaleSubresource(format!(
                "{} {:?} is not served by the API server: {e}",
                target.api_version, target.kind
            ))
        })?;
    if !caps.subresources.iter().any(|(r, _)| r.plural == "scale") {
        return Err(TargetProblem::NoScaleSubresource(format!(
            "{} has no /scale subresource; prescaler can scale only kinds that have one",
            target.kind
        )));
    }
    Ok(resource)
}

/// Reads the target's `/scale`. `Ok(Err(problem))` for a target that cannot be used (a
/// condition for the user to fix), `Err` for a failure worth retrying.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    target: &ScaleTargetRef,
) -> Result<Result<Workload, TargetProblem>> {
    let resource = match resource_for(client, target).await {
        Ok(r) => r,
        Err(problem) => return Ok(Err(problem)),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.get_scale(&target.name).await {
        Ok(scale) => Ok(Ok(Workload {
            api,
            name: target.name.clone(),
            scale,
        })),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            // Either the object is missing or its kind has no /scale: tell which.
            let exists = api
                .get_opt(&target.name)
                .await
                .map_err(kube_error)?
                .is_some();
            Ok(Err(if exists {
                TargetProblem::NoScaleSubresource(format!(
                    "{} {namespace}/{} has no /scale subresource",
                    target.kind, target.name
                ))
            } else {
                TargetProblem::NotFound(format!(
                    "{} {namespace}/{} does not exist",
                    target.kind, target.name
                ))
            }))
        }
        Err(e) => Err(kube_error(e)),
    }
}

pub fn kube_error(e: kube::Error) -> Error {
    Error::Kube(Box::new(e))
}

/// The HPA in `namespace` that scales `target`, if any, among `hpas` (the controller's watched
/// cache: one watch for the cluster instead of a list per reconcile).
pub fn hpa_for(
    hpas: &[std::sync::Arc<HorizontalPodAutoscaler>],
    namespace: &str,
    target: &ScaleTargetRef,
) -> Option<HorizontalPodAutoscaler> {
    let group = |api_version: &str| {
        api_version
            .split_once('/')
            .map_or("", |(g, _)| g)
            .to_string()
    };
    hpas.iter()
        .find(|hpa| {
            let r = &hpa.spec.scale_target_ref;
            hpa.metadata.namespace.as_deref() == Some(namespace)
                && r.kind == target.kind
                && r.name == target.name
                && group(r.api_version.as_deref().unwrap_or("")) == group(&target.api_version)
        })
        .map(|hpa| (**hpa).clone())
}

/// The HPA's own `minReplicas`: the saved original while prescaler holds the floor.
pub fn hpa_original_min(hpa: &HorizontalPodAutoscaler) -> i32 {
    hpa.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORIGINAL_MIN_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| hpa.spec.min_replicas.unwrap_or(1))
}

fn holds_floor(hpa: &HorizontalPodAutoscaler) -> bool {
    hpa.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ORIGINAL_MIN_ANNOTATION))
}

/// The patch that raises the HPA's `minReplicas` to `floor` (never below the HPA's own value,
/// never above its `maxReplicas`), saving the original; with the floor it sets if that changed.
/// `None` when there is nothing to write.
fn floor_patch(
    hpa: &HorizontalPodAutoscaler,
    owner: &str,
    floor: u32,
) -> Option<(serde_json::Value, Option<i32>)> {
    let original = hpa_original_min(hpa);
    let max = hpa.spec.max_replicas;
    let wanted = (floor.min(i32::MAX as u32) as i32).clamp(original, max.max(original));
    let current = hpa.spec.min_replicas.unwrap_or(1);
    if wanted == current && holds_floor(hpa) {
        return None;
    }
    let patch = json!({
        "metadata": {
            "resourceVersion": hpa.metadata.resource_version,
            "annotations": {
                ORIGINAL_MIN_ANNOTATION: original.to_string(),
                OWNER_ANNOTATION: owner,
            },
        },
        "spec": { "minReplicas": wanted },
    });
    Some((patch, (wanted != current).then_some(wanted)))
}

/// The patch that puts the HPA's own `minReplicas` back and removes prescaler's annotations.
fn restore_patch(hpa: &HorizontalPodAutoscaler) -> Option<(serde_json::Value, ())> {
    holds_floor(hpa).then(|| {
        let patch = json!({
            "metadata": {
                "resourceVersion": hpa.metadata.resource_version,
                "annotations": { ORIGINAL_MIN_ANNOTATION: null, OWNER_ANNOTATION: null },
            },
            "spec": { "minReplicas": hpa_original_min(hpa) },
        });
        (patch, ())
    })
}

/// Raises the HPA's `minReplicas` to `floor`. Returns the floor set, if it changed.
pub async fn raise_hpa_floor(
    client: &kube::Client,
    hpa: &HorizontalPodAutoscaler,
    owner: &str,
    floor: u32,
) -> Result<Option<i32>> {
    let written = patch_hpa_guarded(client, hpa, |h| floor_patch(h, owner, floor)).await?;
    Ok(written.flatten())
}

/// Restores the HPA's own `minReplicas`. Returns whether there was a floor to give back.
pub async fn restore_hpa(client: &kube::Client, hpa: &HorizontalPodAutoscaler) -> Result<bool> {
    Ok(patch_hpa_guarded(client, hpa, restore_patch)
        .await?
        .is_some())
}

/// Writes the patch `plan` computes from the HPA, guarded by its resourceVersion. The cached
/// copy is tried first; after a conflict (the HPA controller writes its status often) the
/// patch is computed again from the API server's copy. `None` when `plan` had nothing to write.
async fn patch_hpa_guarded<T>(
    client: &kube::Client,
    cached: &HorizontalPodAutoscaler,
    plan: impl Fn(&HorizontalPodAutoscaler) -> Option<(serde_json::Value, T)>,
) -> Result<Option<T>> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
        client.clone(),
        cached.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = cached.metadata.name.clone().unwrap_or_default();
    let mut current = cached.clone();
    for attempt in 0.. {
        let Some((patch, outcome)) = plan(&current) else {
            return Ok(None);
        };
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(Some(outcome)),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_RETRIES => {
                current = api.get(&name).await.map_err(kube_error)?;
            }
            Err(e) => return Err(kube_error(e)),
        }
    }
    unreachable!("the loop returns")
}
