//! Giving back every floor prescaler holds: what an uninstall runs (the chart's pre-delete hook,
//! `prescaler give-back`), and the orphan sweep the operator makes when it starts.
//!
//! A floor is found by prescaler's annotations on the HPA or KEDA ScaledObject that carries it
//! (`adapters::kubernetes::release_floors`), never by what a PredictiveScaler names now, so a
//! floor whose owner is gone, or whose owner now scales another target, is found as well.
//!
//! An uninstall must not race the operator: a leader that sets a floor again after it was given
//! back would leave it raised for good. So the hook first scales the operator's Deployment to 0
//! and then *takes the operator's Lease* as one more candidate, with client-go's rules — it holds
//! it only once no replica renews it any more (released on graceful shutdown, or expired as this
//! process measured it) — and gives back while it holds it: the same one-writer guarantee that
//! separates two operator replicas.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::controller::FINALIZER;
use super::leader::{Leadership, LeaseSettings};
use crate::adapters::kubernetes::{self, Owners, Released, call};
use crate::api::PredictiveScaler;
use crate::{Error, Result};

/// What `give_back_everything` is to stop first.
#[derive(Clone, Debug)]
pub struct StopOperator {
    /// The operator's Deployment, scaled to 0 first (`None`: it is already stopped).
    pub deployment: Option<String>,
    /// The operator's Lease: held while giving back, so that no operator replica writes.
    pub lease: LeaseSettings,
    /// How long to wait for the Lease.
    pub wait: Duration,
}

/// What was given back.
#[derive(Debug, Default)]
pub struct Summary {
    pub floors: Vec<Released>,
    /// PredictiveScalers whose finalizer was removed.
    pub finalizers: Vec<String>,
}

/// Stops the operator (when asked), then gives back every floor prescaler holds in the cluster
/// and removes its finalizer from every PredictiveScaler, so that nothing is left raised or
/// stuck once the operator is gone. Boxed (see `operator::run`).
pub fn give_back_everything(
    client: &kube::Client,
    stop: Option<StopOperator>,
) -> BoxFuture<'_, Result<Summary>> {
    stop_then_give_back(client, stop).boxed()
}

async fn stop_then_give_back(client: &kube::Client, stop: Option<StopOperator>) -> Result<Summary> {
    let Some(stop) = stop else {
        return give_back(client).await;
    };
    if let Some(name) = &stop.deployment {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &stop.lease.namespace);
        call(
            "scaling the operator's Deployment to 0",
            api.patch_scale(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": 0 } })),
            ),
        )
        .await?;
        info!(
            deployment = name,
            "scaled the operator to 0; waiting for its Lease"
        );
    }
    let lease = Leadership::new(client.clone(), stop.lease.clone());
    if tokio::time::timeout(stop.wait, lease.acquire())
        .await
        .is_err()
    {
        return Err(Error::Config {
            what: "giving back floors".into(),
            message: format!(
                "the operator's Lease {}/{} is still renewed after {:?}: an operator replica still runs, and giving back beside it would race it; stop it and run this again",
                stop.lease.namespace, stop.lease.name, stop.wait
            ),
        });
    }
    let outcome = tokio::select! {
        outcome = give_back(client) => outcome,
        () = lease.hold() => Err(Error::NotLeader),
    };
    lease.release().await;
    outcome
}

/// Every floor first (a scaler without its finalizer must hold none), then the finalizers.
async fn give_back(client: &kube::Client) -> Result<Summary> {
    // 403 on ScaledObjects is not an error here: without the permission no floor was set there.
    let floors =
        kubernetes::release_floors(client, None, Owners::NotLive(&|_| false), false).await?;
    for r in &floors {
        info!(namespace = r.namespace, object = %r.object, restored = r.restored, "floor given back");
    }
    let api: Api<PredictiveScaler> = Api::all(client.clone());
    let scalers = call("listing PredictiveScalers", api.list(&Default::default())).await?;
    let mut finalizers = Vec::new();
    for ps in scalers.items {
        if !ps.finalizers().iter().any(|f| f == FINALIZER) {
            continue;
        }
        let namespace = ps.namespace().unwrap_or_default();
        let name = ps.name_any();
        remove_finalizer(client, &namespace, &name).await?;
        finalizers.push(format!("{namespace}/{name}"));
    }
    Ok(Summary { floors, finalizers })
}

/// Removes prescaler's finalizer, guarded by the resourceVersion read and read again after a
/// conflict (another controller may add or remove its own meanwhile).
async fn remove_finalizer(client: &kube::Client, namespace: &str, name: &str) -> Result<()> {
    let api: Api<PredictiveScaler> = Api::namespaced(client.clone(), namespace);
    for _ in 0..5 {
        let Some(ps) = call("reading a PredictiveScaler", api.get_opt(name)).await? else {
            return Ok(());
        };
        let rest: Vec<&String> = ps.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        if rest.len() == ps.finalizers().len() {
            return Ok(());
        }
        let patch = json!({ "metadata": {
            "resourceVersion": ps.resource_version(), "finalizers": rest } });
        match call(
            "removing prescaler's finalizer",
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => warn!(namespace, name, "conflict; reading again"),
            Err(e) => return Err(e),
        }
    }
    Err(Error::Config {
        what: format!("PredictiveScaler {namespace}/{name}"),
        message: "its finalizers kept changing; run this again".into(),
    })
}
