//! Leader election through a `coordination.k8s.io/v1` Lease, so that two operator replicas can
//! run with one active: the leader renews the Lease; a standby takes it over once it has not been
//! renewed for its duration.
//!
//! Written here (about 100 lines, the client-go `leaderelection` algorithm) rather than taken
//! from `kube-leader-election` or `kube-lease-manager`, whose releases pin older kube versions.
//! Every write carries the resourceVersion read, so two candidates can never both win a round.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// Where the Lease lives and who competes for it.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity, usually its pod name.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: Duration,
    /// How often the holder renews, and a candidate retries.
    pub retry: Duration,
}

/// Whether this replica holds the Lease after one round.
async fn try_acquire_or_renew(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(s.identity.clone()),
        lease_duration_seconds: Some(s.duration.as_secs() as i32),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false), // another replica was first
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let ours = current.holder_identity.as_deref() == Some(s.identity.as_str());
    let expired = match (&current.renew_time, current.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            *renewed + SignedDuration::from_secs(secs as i64) < now
        }
        _ => true,
    };
    if !ours && !expired && current.holder_identity.is_some() {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let acquired = if ours { current.acquire_time } else { None };
    lease.spec = Some(spec(transitions, acquired));
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Waits until this replica holds the Lease.
pub async fn acquire(client: &kube::Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    loop {
        match try_acquire_or_renew(&api, s).await {
            Ok(true) => {
                info!(lease = s.name, identity = s.identity, "became the leader");
                return;
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election: could not read or write the Lease"),
        }
        tokio::time::sleep(s.retry).await;
    }
}

/// Renews the Lease until renewal fails for longer than its duration; then returns, and the
/// caller must stop acting (another replica may have taken over).
pub async fn hold(client: &kube::Client, s: &LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(s.retry).await;
        match try_acquire_or_renew(&api, s).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                warn!(lease = s.name, "another replica holds the Lease now");
                return;
            }
            Err(e) => warn!(error = %e, "leader election: renewal failed"),
        }
        // Stop before the Lease can expire at the API server, so two leaders never overlap.
        if last_renewed.elapsed() + s.retry >= s.duration {
            warn!(lease = s.name, "could not renew the Lease in time");
            return;
        }
    }
}
