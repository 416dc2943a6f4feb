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
//!
//! One object the API server refuses does not stop the rest: every floor and every finalizer
//! that can be given back is, and what could not be is named in the `Summary`, which the
//! command turns into a non-zero exit (the hook's Job fails loudly, after doing all it could).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::controller::FINALIZER;
use super::leader::{Leadership, LeaseSettings};
use super::shards;
use crate::adapters::kubernetes::{self, Owners, Sweep, call};
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

/// What was given back, and what could not be.
#[derive(Debug, Default)]
#[must_use]
pub struct Summary {
    /// The floors: given back, not given back (each with why), and the lists not read.
    pub sweep: Sweep,
    /// PredictiveScalers whose finalizer was removed.
    pub finalizers: Vec<String>,
    /// PredictiveScalers whose finalizer was kept, each with why: a floor of theirs was not given
    /// back (or could not be looked for), or the finalizer could not be removed.
    pub finalizers_kept: Vec<(String, String)>,
}

impl Summary {
    /// Whether everything was given back.
    pub fn is_complete(&self) -> bool {
        self.sweep.is_complete() && self.finalizers_kept.is_empty()
    }

    /// One line for each thing not given back, naming it.
    pub fn problems(&self) -> Vec<String> {
        let floors = self
            .sweep
            .failed
            .iter()
            .map(|f| format!("floor not given back: {f}"));
        let lists = self
            .sweep
            .unlisted
            .iter()
            .map(|e| format!("floors not looked for: {e}"));
        let finalizers = self
            .finalizers_kept
            .iter()
            .map(|(name, why)| format!("finalizer kept on PredictiveScaler {name}: {why}"));
        floors.chain(lists).chain(finalizers).collect()
    }
}

/// Stops the operator (when asked), then gives back every floor prescaler holds in the cluster
/// and removes its finalizer from every PredictiveScaler, so that nothing is left raised or
/// stuck once the operator is gone. `Err` when it could not start (the operator not stopped,
/// the Lease lost); otherwise the `Summary`, which is to be checked: a floor the API server
/// refused is named there (`Summary::is_complete`, `Summary::problems`) after every other was
/// given back. Boxed (see `operator::run`).
pub fn give_back_everything(
    client: &kube::Client,
    stop: Option<StopOperator>,
) -> BoxFuture<'_, Result<Summary>> {
    stop_then_give_back(client, stop).boxed()
}

async fn stop_then_give_back(client: &kube::Client, stop: Option<StopOperator>) -> Result<Summary> {
    let Some(stop) = stop else {
        return give_back(client, &|| true).await;
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
    let (base, shard_leases) = operator_leases(client, &stop.lease).await?;
    // The shards' Leases first, then the single leader's: sharded replicas give their shards
    // up to a live single leader's Lease (`shards::ShardSet::stand_aside`), so taking it first
    // would have them yield to this command rather than make it wait for them to stop.
    let acquire_all = async {
        futures::future::join_all(shard_leases.iter().map(Leadership::acquire)).await;
        base.acquire().await;
    };
    let timed_out = tokio::time::timeout(stop.wait, acquire_all).await.is_err();
    let leases: Vec<Leadership> = std::iter::once(base).chain(shard_leases).collect();
    if timed_out {
        return Err(Error::Config {
            what: "giving back floors".into(),
            message: format!(
                "the operator's Lease {}/{} (or a shard's) is still renewed after {:?}: an operator replica still runs, and giving back beside it would race it; stop it and run this again",
                stop.lease.namespace, stop.lease.name, stop.wait
            ),
        });
    }
    let leads = || leases.iter().all(Leadership::may_write);
    let any_lost = futures::future::select_all(leases.iter().map(|l| l.hold().boxed()));
    let outcome = tokio::select! {
        outcome = give_back(client, &leads) => outcome,
        _ = any_lost => Err(crate::adapters::Error::NotLeader.into()),
    };
    futures::future::join_all(leases.iter().map(Leadership::release)).await;
    outcome
}

/// The operator's Lease and every shard Lease it has made (found by their labels, so that the
/// shard count need not be given here): all are held while giving back, so that no replica of
/// any shard writes meanwhile.
async fn operator_leases(
    client: &kube::Client,
    base: &LeaseSettings,
) -> Result<(Leadership, Vec<Leadership>)> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &base.namespace);
    let selector = format!(
        "{}={},{}=shard",
        shards::GROUP_LABEL,
        base.name,
        shards::ROLE_LABEL
    );
    let listed = call(
        "listing the operator's shard Leases",
        api.list(&ListParams::default().labels(&selector)),
    )
    .await?;
    let shard_leases = listed.items.iter().map(|l| {
        let settings = LeaseSettings {
            name: l.name_any(),
            ..base.clone()
        };
        Leadership::new(client.clone(), settings)
    });
    Ok((
        Leadership::new(client.clone(), base.clone()),
        shard_leases.collect(),
    ))
}

/// Every floor first (a scaler without its finalizer must hold none), then the finalizers.
///
/// A floor not given back keeps its owner's finalizer (when the owner is still there): that is
/// what the finalizer says — this scaler still holds a floor — and a later run of this command,
/// or an operator's start, finds the floor again by its annotations. Every other scaler's
/// finalizer is removed. When a list of floors could not be read, no finalizer is removed:
/// which scalers still hold floors is unknown.
///
/// Every write waits on `may_write`, the Lease's own gate when this command holds it: `hold`
/// notices a renewal gone past its deadline only a `retry` later, and the sweep must not write
/// in between.
async fn give_back(
    client: &kube::Client,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<Summary> {
    // 403 on ScaledObjects is not an error here: without the permission no floor was set there.
    let sweep =
        kubernetes::release_floors(client, None, Owners::NotLive(&|_| false), false, may_write)
            .await;
    for r in &sweep.released {
        match &r.refused {
            None => {
                info!(namespace = r.namespace, object = %r.object, restored = r.restored, "floor given back")
            }
            Some(kept) => {
                warn!(namespace = r.namespace, object = %r.object, restored = r.restored, kept, "floor given back at its current value: the kept own value is no value it may hold")
            }
        }
    }
    // Each failure was logged by the sweep, naming its object.
    let mut summary = Summary {
        sweep,
        ..Default::default()
    };
    let api: Api<PredictiveScaler> = Api::all(client.clone());
    let scalers = call("listing PredictiveScalers", api.list(&Default::default())).await?;
    for ps in scalers.items {
        if !ps.finalizers().iter().any(|f| f == FINALIZER) {
            continue;
        }
        let namespace = ps.namespace().unwrap_or_default();
        let name = ps.name_any();
        let full = format!("{namespace}/{name}");
        let uid = ps.uid().unwrap_or_default();
        let held: Vec<String> = summary
            .sweep
            .failed
            .iter()
            .filter(|f| f.owner.as_deref() == Some(uid.as_str()))
            .map(|f| format!("{}/{}", f.namespace, f.object))
            .collect();
        if !held.is_empty() {
            let why = format!("it still holds the floor on {}", held.join(", "));
            warn!(namespace, name, why, "keeping prescaler's finalizer");
            summary.finalizers_kept.push((full, why));
            continue;
        }
        if !summary.sweep.unlisted.is_empty() {
            let why = "floors could not all be listed, so whether it holds one is unknown".into();
            summary.finalizers_kept.push((full, why));
            continue;
        }
        match remove_finalizer(client, &namespace, &name, may_write).await {
            Ok(()) => summary.finalizers.push(full),
            Err(e) => {
                warn!(namespace, name, error = %e, "could not remove prescaler's finalizer; going on with the others");
                summary.finalizers_kept.push((full, e.to_string()));
            }
        }
    }
    Ok(summary)
}

/// Removes prescaler's finalizer, guarded by the resourceVersion read and read again after a
/// conflict (another controller may add or remove its own meanwhile); each attempt only while
/// `may_write` says so.
async fn remove_finalizer(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    may_write: &(dyn Fn() -> bool + Sync),
) -> Result<()> {
    let api: Api<PredictiveScaler> = Api::namespaced(client.clone(), namespace);
    for _ in 0..5 {
        if !may_write() {
            return Err(crate::adapters::Error::NotLeader.into());
        }
        let Some(ps) = call("reading a PredictiveScaler", api.get_opt(name)).await? else {
            return Ok(());
        };
        let rest: Vec<String> = ps
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        if rest.len() == ps.finalizers().len() {
            return Ok(());
        }
        match kubernetes::write_finalizers(client, &ps, rest).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => warn!(namespace, name, "conflict; reading again"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Config {
        what: format!("PredictiveScaler {namespace}/{name}"),
        message: "its finalizers kept changing; run this again".into(),
    })
}
