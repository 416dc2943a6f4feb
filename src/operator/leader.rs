//! Leader election through a `coordination.k8s.io/v1` Lease, with client-go's semantics
//! (k8s.io/client-go/tools/leaderelection/leaderelection.go: `tryAcquireOrRenew`, `renew`,
//! `release`), so that two operator replicas never write at once:
//! - a Lease held by another is taken over only once it has not changed for `lease_duration` as
//!   measured by *this* replica's clock from when it saw the last change — never by comparing the
//!   holder's `renewTime` with the local clock, which clock skew would break;
//! - the leader renews every `retry` period; every Kubernetes call is bounded by a timeout; a
//!   leader that could not renew within `renew_deadline` stops leading, and the controller writes
//!   nothing once that deadline has passed (`Leadership::may_write`), which is shorter than the
//!   lease duration a standby waits;
//! - on a graceful shutdown the Lease is released, so that a standby takes over at once.
//!
//! Written here (about 150 lines) rather than taken from `kube-leader-election` or
//! `kube-lease-manager`, whose releases pin older kube versions.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

/// Where the Lease lives, who competes for it, and client-go's three durations.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// This replica's identity, usually its pod name.
    pub identity: String,
    /// How long a standby waits after the Lease last changed before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading; shorter than
    /// `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby retries.
    pub retry: Duration,
    /// Labels the Lease is created with (the shards' and members' Leases are found by them).
    pub labels: BTreeMap<String, String>,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s, 10 s, 2 s.
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        Self {
            name,
            namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
            labels: BTreeMap::new(),
        }
    }
}

/// This replica's view of the Lease.
#[derive(Debug)]
pub struct Leadership {
    settings: LeaseSettings,
    api: Api<Lease>,
    state: Mutex<Observed>,
}

#[derive(Debug, Default)]
struct Observed {
    /// The Lease's spec as last seen, and when (by this replica's clock) it last changed.
    record: Option<LeaseSpec>,
    changed_at: Option<Instant>,
    /// When this replica last renewed its own Lease successfully.
    renewed_at: Option<Instant>,
}

impl Leadership {
    pub fn new(client: kube::Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            state: Mutex::default(),
        }
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this replica may write: it holds the Lease and renewed it less than
    /// `renew_deadline` ago.
    pub fn may_write(&self) -> bool {
        self.observed()
            .renewed_at
            .is_some_and(|t| t.elapsed() < self.settings.renew_deadline)
    }

    /// When this replica last renewed the Lease.
    pub fn renewed_at(&self) -> Option<Instant> {
        self.observed().renewed_at
    }

    /// One round of client-go's `tryAcquireOrRenew`, bounded by `timeout`. Whether this replica
    /// holds the Lease afterwards.
    pub(super) async fn try_acquire_or_renew(&self, timeout: Duration) -> Result<bool, String> {
        match tokio::time::timeout(timeout, self.acquire_or_renew()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    async fn acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let s = &self.settings;
        let now = MicroTime(Timestamp::now());
        let mut ours = LeaseSpec {
            holder_identity: Some(s.identity.clone()),
            lease_duration_seconds: Some(s.lease_duration.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..Default::default()
        };
        let found = self.api.get_opt(&s.name).await?;
        let Some(mut lease) = found else {
            self.saw(None);
            // A Lease another replica held when this one last looked, and that is gone now
            // (deleted by a person, a namespace clean-up, an etcd restore), is treated as still
            // held until its duration has passed since then: its holder may not have noticed
            // yet and still writes. Created at once, both wrote for about 7 s.
            if self.other_holder().is_some() {
                return Ok(false);
            }
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    labels: (!s.labels.is_empty()).then(|| s.labels.clone()),
                    ..Default::default()
                },
                spec: Some(ours.clone()),
            };
            let sent_at = Instant::now();
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.won(ours, sent_at);
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.is_already_exists() || e.is_conflict() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holds = current.holder_identity.as_deref() == Some(s.identity.as_str());
        self.saw(Some(&current));
        if !holds && self.other_holder().is_some() {
            return Ok(false);
        }
        if holds {
            ours.acquire_time = current.acquire_time;
            ours.lease_transitions = current.lease_transitions;
        } else {
            ours.lease_transitions = Some(current.lease_transitions.unwrap_or(0) + 1);
        }
        lease.spec = Some(ours.clone());
        // `replace` carries the resourceVersion read: two candidates cannot both win a round.
        let sent_at = Instant::now();
        match self
            .api
            .replace(&s.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.won(ours, sent_at);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records the Lease as read now (`None`: there is none). A change restarts the lease
    /// duration a candidate waits, as client-go's `observedTime`; a Lease that is gone keeps the
    /// record of the last one seen (see `acquire_or_renew`), and one never seen
    /// starts its wait at the first look.
    fn saw(&self, current: Option<&LeaseSpec>) {
        let mut seen = self.observed();
        match current {
            Some(current) if seen.record.as_ref() != Some(current) => {
                seen.record = Some(current.clone());
                seen.changed_at = Some(Instant::now());
            }
            None if seen.changed_at.is_none() => seen.changed_at = Some(Instant::now()),
            _ => {}
        }
    }

    /// Reads the Lease and records it, without trying to take it; bounded by `timeout`.
    pub(super) async fn look(&self, timeout: Duration) -> Result<(), String> {
        match tokio::time::timeout(timeout, self.api.get_opt(&self.settings.name)).await {
            Ok(Ok(found)) => {
                self.saw(found.as_ref().and_then(|l| l.spec.as_ref()));
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }

    /// Who holds the Lease as this replica sees it: itself while it may write, else the holder
    /// named in the last record, while that record is less than a lease duration old by this
    /// replica's clock. `None`: free to take.
    pub(super) fn holder(&self) -> Option<String> {
        match self.may_write() {
            true => Some(self.settings.identity.clone()),
            false => self.other_holder(),
        }
    }

    /// Another replica named as the holder in the last record, less than a lease duration after
    /// this replica saw that record change.
    fn other_holder(&self) -> Option<String> {
        let seen = self.observed();
        let named = seen
            .record
            .as_ref()
            .and_then(|r| r.holder_identity.clone())
            .filter(|h| !h.is_empty() && *h != self.settings.identity)?;
        let valid = seen
            .changed_at
            .is_some_and(|t| t.elapsed() < self.settings.lease_duration);
        valid.then_some(named)
    }

    /// How long the Lease has been free to take as this replica sees it (`None`: held, or
    /// never read).
    pub(super) fn free_for(&self) -> Option<Duration> {
        if self.holder().is_some() {
            return None;
        }
        let seen = self.observed();
        let since = seen.changed_at?.elapsed();
        let named = seen
            .record
            .as_ref()
            .and_then(|r| r.holder_identity.as_deref())
            .is_some_and(|h| !h.is_empty() && h != self.settings.identity);
        // A named holder's claim runs out a lease duration after its last change.
        Some(match named {
            true => since.saturating_sub(self.settings.lease_duration),
            false => since,
        })
    }

    /// Stops writing at once: the Lease was found held by another, or its renewal deadline
    /// passed.
    pub(super) fn lost(&self) {
        self.observed().renewed_at = None;
    }

    /// Records a won round, as of `sent_at`, when its write was sent — not when its answer came.
    /// The API server applied the write at some instant after `sent_at`, and a standby counts
    /// `lease_duration` from when it saw that write, later still; so `renew_deadline` counted
    /// from `sent_at` ends before any standby may take over, however late the answer. Counted
    /// from the answer (as client-go's `observedTime` is, which gates no writes), a renewal
    /// answered 1.75 s late left two replicas free to write for half a second.
    fn won(&self, record: LeaseSpec, sent_at: Instant) {
        let mut seen = self.observed();
        seen.record = Some(record);
        seen.changed_at = Some(sent_at);
        seen.renewed_at = Some(sent_at);
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let s = &self.settings;
        loop {
            match self.try_acquire_or_renew(s.renew_deadline).await {
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

    /// Renews the Lease every `retry` until a renewal has not succeeded within `renew_deadline`
    /// or another replica holds it; then returns, and the caller must stop acting.
    pub async fn hold(&self) {
        loop {
            tokio::time::sleep(self.settings.retry).await;
            if !self.renew_once().await {
                return;
            }
        }
    }

    /// One renewal, within what is left of the renew deadline. `false` when the Lease is lost
    /// (the deadline passed, or another replica holds it): nothing more may be written from
    /// then on. A renewal that failed within the deadline is only logged; the next one retries.
    pub(super) async fn renew_once(&self) -> bool {
        let s = &self.settings;
        let deadline = self
            .renewed_at()
            .map_or(Instant::now(), |t| t + s.renew_deadline);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            warn!(
                lease = s.name,
                "could not renew the Lease within the renew deadline"
            );
            self.lost();
            return false;
        }
        match self.try_acquire_or_renew(left).await {
            Ok(true) => true,
            Ok(false) => {
                warn!(lease = s.name, "another replica holds the Lease now");
                // Not one more write: `may_write` would say yes until the renew deadline.
                self.lost();
                false
            }
            Err(e) => {
                warn!(lease = s.name, error = %e, "leader election: renewal failed");
                true
            }
        }
    }

    /// Gives the Lease up (client-go's `release`): an empty holder and a one-second duration, so
    /// that a standby takes over at once. Only if this replica still holds it.
    pub async fn release(&self) {
        if !self.may_write() {
            return;
        }
        // Not one more write from here: once the release lands, another replica may take the
        // Lease at its next try, while this one would still be free to write until it had the
        // answer.
        self.lost();
        self.release_held().await;
    }

    /// The release itself, once this replica has stopped writing (`lost`): only if the Lease
    /// still names it.
    pub(super) async fn release_held(&self) {
        let s = &self.settings;
        let release = async {
            let mut lease = self.api.get(&s.name).await?;
            let current = lease.spec.clone().unwrap_or_default();
            if current.holder_identity.as_deref() != Some(s.identity.as_str()) {
                return Ok(());
            }
            let now = MicroTime(Timestamp::now());
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: current.lease_transitions,
                ..Default::default()
            });
            self.api
                .replace(&s.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(s.renew_deadline, release).await {
            Ok(Ok(())) => info!(lease = s.name, "released the Lease"),
            Ok(Err(e)) => warn!(error = %e, "could not release the Lease"),
            Err(_) => warn!("could not release the Lease in time"),
        }
    }
}
