//! Shards across replicas: with `--shards N`, every PredictiveScaler belongs to one of N shards
//! (a stable hash of its namespace and name), each shard has its own Lease, and a replica
//! reconciles and writes only the scalers of the shards whose Lease it holds. Each shard Lease
//! is taken, renewed and given up with client-go's rules (`leader::Leadership`, one per shard),
//! so one writer per scaler holds as it does for the single leader: a replica writes for a shard
//! only until its renew deadline, and another takes the shard only a lease duration after it saw
//! the Lease's last change.
//!
//! How the shards are spread: every replica also renews a *member* Lease of its own (as
//! Kubernetes' coordinated leader election has candidates publish `LeaseCandidate` objects;
//! that API is not on by default, so plain Leases stand for them). From the live members a
//! replica knows its share, `floor(N / members)` or one more:
//! - below the larger, a replica takes free shards (in an order of its own, so that replicas
//!   starting together reach for different ones);
//! - above either, while another live member is below the same, it gives one shard up per round
//!   (stops writing for it, then releases it as client-go releases, so the other takes it at
//!   once);
//! - a shard nobody took for a further lease duration is taken by any replica, its share
//!   whatever: a wrong count of members may slow the spread, never leave a shard unserved.
//!
//! Failure modes (also in `docs/reliability.md`): a replica that dies or is paused stops writing
//! at its renew deadline and its shards are taken a lease duration after their last renewal; a
//! replica cut off from the API server does the same; a member counted live for a lease duration
//! after its death may make another give up a shard it then takes back after a lease duration and
//! a half. None of these makes two writers.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::leader::{Leadership, LeaseSettings};

/// How a replica knows what it may write: alone (no election), as the one leader, or for the
/// shards it holds.
#[derive(Clone, Default)]
pub enum Election {
    /// One replica only, without leader election.
    #[default]
    Alone,
    /// One Lease: the leader writes for every scaler.
    Leader(Arc<Leadership>),
    /// One Lease per shard.
    Shards(Arc<ShardSet>),
}

impl From<Option<Arc<Leadership>>> for Election {
    fn from(lease: Option<Arc<Leadership>>) -> Self {
        lease.map_or(Election::Alone, Election::Leader)
    }
}

/// The most shards: each is a Lease renewed every retry period by its holder.
pub const MAX_SHARDS: u32 = 64;

/// The label that groups an operator's shard and member Leases (its value: the base Lease name).
pub const GROUP_LABEL: &str = "prescaler.io/lease-group";
/// `shard` or `member`.
pub const ROLE_LABEL: &str = "prescaler.io/lease-role";

/// A member Lease unchanged for this many lease durations belongs to a replica that is gone
/// (its pod name will not come back): it is deleted, so that restarts do not pile them up.
const STALE_MEMBER_DURATIONS: u32 = 10;

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shard of the scaler `namespace/name` among `shards`: FNV-1a (64 bits) of
/// `namespace/name`. Every replica, of every version, must agree on it, so neither std's
/// `DefaultHasher` (its algorithm may change between releases) nor a seeded hash will do.
pub fn shard_of(namespace: &str, name: &str, shards: u32) -> u32 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(namespace.as_bytes());
    hasher.write(b"/");
    hasher.write(name.as_bytes());
    (hasher.finish() % u64::from(shards.max(1))) as u32
}

/// The name of shard `shard`'s Lease.
pub fn shard_lease_name(base: &str, shard: u32) -> String {
    format!("{base}-shard-{shard}")
}

/// Labels of the shard Leases (`role` = `shard`) and member Leases (`member`).
fn lease_labels(base: &str, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (GROUP_LABEL.to_string(), base.to_string()),
        (ROLE_LABEL.to_string(), role.to_string()),
    ])
}

/// The settings of every shard's Lease, from the operator's Lease settings (whose name is the
/// base of theirs).
pub fn shard_leases(base: &LeaseSettings, shards: u32) -> Vec<LeaseSettings> {
    (0..shards)
        .map(|shard| LeaseSettings {
            name: shard_lease_name(&base.name, shard),
            labels: lease_labels(&base.name, "shard"),
            ..base.clone()
        })
        .collect()
}

/// What a replica does with the shards in one round, decided from what it sees (pure).
#[derive(Debug, PartialEq, Eq)]
pub struct Moves {
    /// Free shards to try to take, in this replica's order.
    pub take: Vec<u32>,
    /// A shard to give up.
    pub give_up: Option<u32>,
}

/// What one replica sees of the shards in a round.
pub struct View<'a> {
    pub shards: u32,
    /// This replica's identity.
    pub me: &'a str,
    /// The live members, this replica among them.
    pub members: &'a [String],
    /// Per shard: its holder, if any holds it.
    pub holders: &'a [Option<String>],
    /// Per shard: how long it has been free (`None`: held).
    pub free_for: &'a [Option<Duration>],
    /// How long a shard stays free before any replica takes it whatever its share.
    pub unclaimed_after: Duration,
}

impl View<'_> {
    /// The shards this replica takes and gives up this round (see the module's comment).
    pub fn moves(&self) -> Moves {
        let share = self.shards.div_ceil(self.members.len().max(1) as u32);
        let order = preference(self.me, self.shards);
        let mine: Vec<u32> = order
            .iter()
            .copied()
            .filter(|&s| self.holder(s) == Some(self.me))
            .collect();
        let room = (share as usize).saturating_sub(mine.len());
        let free = order.iter().copied().filter(|&s| self.holder(s).is_none());
        let take: Vec<u32> = free
            .enumerate()
            .filter(|&(i, s)| i < room || self.unclaimed(s))
            .map(|(_, s)| s)
            .collect();
        // Shares differ by one at most: `floor` or `share`. A replica above one of them gives a
        // shard up while another is below it (2, 2, 0 of 4 becomes 1, 2, 1).
        let floor = self.shards / self.members.len().max(1) as u32;
        let short_of = |bound: u32| {
            self.members
                .iter()
                .filter(|m| m.as_str() != self.me)
                .any(|m| self.held_by(m) < bound as usize)
        };
        let above = |bound: u32| mine.len() > bound as usize && short_of(bound);
        let give_up = (above(share) || above(floor))
            .then(|| mine.last().copied())
            .flatten();
        Moves { take, give_up }
    }

    fn holder(&self, shard: u32) -> Option<&str> {
        self.holders.get(shard as usize).and_then(|h| h.as_deref())
    }

    fn held_by(&self, member: &str) -> usize {
        (0..self.shards)
            .filter(|&s| self.holder(s) == Some(member))
            .count()
    }

    fn unclaimed(&self, shard: u32) -> bool {
        self.free_for
            .get(shard as usize)
            .copied()
            .flatten()
            .is_some_and(|f| f >= self.unclaimed_after)
    }
}

/// This replica's order of the shards: by a hash of its identity and the shard (rendezvous
/// hashing), so that replicas that start together reach for different shards first.
fn preference(me: &str, shards: u32) -> Vec<u32> {
    let mut order: Vec<(u64, u32)> = (0..shards)
        .map(|s| {
            let mut hasher = fnv::FnvHasher::default();
            hasher.write(me.as_bytes());
            hasher.write(&s.to_le_bytes());
            (hasher.finish(), s)
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, s)| s).collect()
}

/// This replica's shards: a Lease per shard, its own member Lease, and what it saw of the
/// other members.
pub struct ShardSet {
    base: LeaseSettings,
    shards: Vec<Leadership>,
    member: Leadership,
    leases: Api<Lease>,
    /// Per member Lease name: its last renew time seen, and when (by this clock) it changed.
    members: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// Bumped whenever the shards held change: the controller reconciles everything then.
    changes: watch::Sender<u64>,
}

impl ShardSet {
    /// `base` is the operator's Lease settings: its name is the base of the shards' and the
    /// member's Lease names.
    pub fn new(client: kube::Client, base: LeaseSettings, shards: u32) -> Self {
        let member = LeaseSettings {
            name: format!("{}-member-{}", base.name, base.identity),
            labels: lease_labels(&base.name, "member"),
            ..base.clone()
        };
        Self {
            shards: shard_leases(&base, shards)
                .into_iter()
                .map(|s| Leadership::new(client.clone(), s))
                .collect(),
            member: Leadership::new(client.clone(), member),
            leases: Api::namespaced(client, &base.namespace),
            base,
            members: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }

    pub fn count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The shard of `namespace/name`.
    pub fn shard_of(&self, namespace: &str, name: &str) -> u32 {
        shard_of(namespace, name, self.count())
    }

    /// Whether this replica may write for `shard` now: it holds its Lease and renewed it less
    /// than the renew deadline ago.
    pub fn may_write(&self, shard: u32) -> bool {
        self.shards
            .get(shard as usize)
            .is_some_and(Leadership::may_write)
    }

    /// The shards this replica may write for now.
    pub fn held(&self) -> Vec<u32> {
        (0..self.count()).filter(|&s| self.may_write(s)).collect()
    }

    /// Notified whenever the shards held change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The oldest renewal among the shards held, for `/healthz` (`None`: none held).
    pub fn oldest_renewal(&self) -> Option<Instant> {
        self.shards.iter().filter_map(Leadership::renewed_at).min()
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.base
    }

    /// Takes, renews and gives up shards every retry period, until the caller stops it.
    pub async fn run(&self) {
        loop {
            self.round().await;
            tokio::time::sleep(self.base.retry).await;
        }
    }

    /// One round: the member Lease renewed, the held shards renewed (or lost), the members
    /// counted, and the moves made.
    pub async fn round(&self) {
        let before = self.held();
        if let Err(e) = self
            .member
            .try_acquire_or_renew(self.base.renew_deadline)
            .await
        {
            warn!(error = %e, "shards: could not renew this replica's member Lease");
        }
        futures::future::join_all(self.shards.iter().map(|s| self.renew_or_look(s))).await;
        let members = self.live_members().await;
        let holders: Vec<Option<String>> = self.shards.iter().map(Leadership::holder).collect();
        let free_for: Vec<Option<Duration>> =
            self.shards.iter().map(Leadership::free_for).collect();
        let moves = View {
            shards: self.count(),
            me: &self.base.identity,
            members: &members,
            holders: &holders,
            free_for: &free_for,
            unclaimed_after: self.base.lease_duration,
        }
        .moves();
        for shard in moves.take {
            let lease = &self.shards[shard as usize];
            if let Ok(true) = lease.try_acquire_or_renew(self.base.renew_deadline).await {
                info!(shard, identity = self.base.identity, "took a shard");
            }
        }
        if let Some(shard) = moves.give_up {
            info!(
                shard,
                members = members.len(),
                "giving a shard up to a member with fewer"
            );
            self.shards[shard as usize].release().await;
        }
        if self.held() != before {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// A held shard renewed within what is left of its deadline (else lost); any other read.
    async fn renew_or_look(&self, lease: &Leadership) {
        let name = &lease.settings().name;
        let Some(renewed) = lease.renewed_at() else {
            if let Err(e) = lease.look(self.base.renew_deadline).await {
                warn!(lease = name, error = %e, "shards: could not read a shard's Lease");
            }
            return;
        };
        let left = (renewed + self.base.renew_deadline).saturating_duration_since(Instant::now());
        let renewed = match left.is_zero() {
            true => Err("the renew deadline passed".to_string()),
            false => lease.try_acquire_or_renew(left).await,
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                warn!(lease = name, "another replica holds this shard now");
                lease.lost();
            }
            Err(e) if lease.may_write() => {
                warn!(lease = name, error = %e, "shards: renewal failed; retrying")
            }
            Err(e) => {
                warn!(lease = name, error = %e, "shards: lost a shard: not renewed in time");
                lease.lost();
            }
        }
    }

    /// The identities of the live members: this replica, and every member Lease whose renewal
    /// this replica saw change less than a lease duration ago. Member Leases unchanged for
    /// `STALE_MEMBER_DURATIONS` are deleted.
    async fn live_members(&self) -> Vec<String> {
        let me = self.base.identity.clone();
        let selector = format!("{GROUP_LABEL}={},{ROLE_LABEL}=member", self.base.name);
        let listed = tokio::time::timeout(
            self.base.renew_deadline,
            self.leases.list(&ListParams::default().labels(&selector)),
        )
        .await;
        let leases = match listed {
            Ok(Ok(list)) => list.items,
            Ok(Err(e)) => {
                warn!(error = %e, "shards: could not list the member Leases");
                return self.members_as_last_seen();
            }
            Err(_) => {
                warn!("shards: the member Leases were not listed in time");
                return self.members_as_last_seen();
            }
        };
        let stale_after = self.base.lease_duration * STALE_MEMBER_DURATIONS;
        let mut stale = Vec::new();
        {
            let mut seen = locked(&self.members);
            seen.retain(|name, _| leases.iter().any(|l| l.name_any() == *name));
            for lease in &leases {
                let renewed = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.renew_time.as_ref())
                    .map(|t| t.0.to_string());
                let entry = seen
                    .entry(lease.name_any())
                    .or_insert_with(|| (renewed.clone(), Instant::now()));
                if entry.0 != renewed {
                    *entry = (renewed, Instant::now());
                }
                if entry.1.elapsed() >= stale_after {
                    stale.push(lease.clone());
                }
            }
        }
        for lease in stale {
            self.delete_stale(&lease).await;
        }
        self.live_among(&leases, me)
    }

    /// The live members from the leases listed.
    fn live_among(&self, leases: &[Lease], me: String) -> Vec<String> {
        let seen = locked(&self.members);
        let mut live: Vec<String> = leases
            .iter()
            .filter(|l| {
                seen.get(&l.name_any())
                    .is_some_and(|(_, at)| at.elapsed() < self.base.lease_duration)
            })
            .filter_map(|l| l.spec.as_ref()?.holder_identity.clone())
            .filter(|h| !h.is_empty() && *h != me)
            .collect();
        live.push(me);
        live.sort();
        live.dedup();
        live
    }

    /// When the members cannot be listed: this replica alone, so that it takes only shards
    /// nobody holds (it renews what it holds, and gives nothing up on a guess).
    fn members_as_last_seen(&self) -> Vec<String> {
        vec![self.base.identity.clone()]
    }

    /// Deletes a member Lease that has not changed for `STALE_MEMBER_DURATIONS`, on the
    /// condition that it is still the version read (a member that came back keeps its Lease).
    async fn delete_stale(&self, lease: &Lease) {
        let name = lease.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.meta().resource_version.clone(),
                uid: None,
            }),
            ..Default::default()
        };
        match tokio::time::timeout(self.base.renew_deadline, self.leases.delete(&name, &params))
            .await
        {
            Ok(Ok(_)) => info!(
                lease = name,
                "deleted the member Lease of a replica long gone"
            ),
            Ok(Err(e)) => warn!(lease = name, error = %e, "could not delete a stale member Lease"),
            Err(_) => warn!(
                lease = name,
                "could not delete a stale member Lease in time"
            ),
        }
    }

    /// Gives every shard up and deletes this replica's member Lease (on a graceful stop), so
    /// that the other replicas take the shards at once and count one member fewer.
    pub async fn release_all(&self) {
        futures::future::join_all(self.shards.iter().map(Leadership::release)).await;
        let name = &self.member.settings().name;
        let _ = tokio::time::timeout(
            self.base.renew_deadline,
            self.leases.delete(name, &DeleteParams::default()),
        )
        .await;
        self.changes.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_scalers_shard_is_the_same_in_every_process_and_spread_evenly() {
        // FNV-1a (64 bits) of "team-a/web", as the algorithm defines it (offset basis
        // 0xcbf29ce484222325, prime 0x100000001b3), not as this process or this build hashes: a
        // change of it would move scalers between shards across a rolling upgrade.
        assert_eq!(
            shard_of("team-a", "web", 1 << 31),
            (0xe3ce_b295_ae50_bb43_u64 % (1 << 31)) as u32
        );
        assert_eq!(shard_of("team-a", "web", 7), 2);
        let mut counts = [0u32; 4];
        for i in 0..10_000 {
            counts[shard_of(&format!("ns-{}", i % 37), &format!("app-{i}"), 4) as usize] += 1;
        }
        for c in counts {
            assert!((2_300..=2_700).contains(&c), "{counts:?}");
        }
        assert_eq!(shard_of("a", "b", 1), 0);
    }

    fn view<'a>(
        me: &'a str,
        members: &'a [String],
        holders: &'a [Option<String>],
        free_for: &'a [Option<Duration>],
    ) -> View<'a> {
        View {
            shards: holders.len() as u32,
            me,
            members,
            holders,
            free_for,
            unclaimed_after: Duration::from_secs(15),
        }
    }

    #[test]
    fn alone_a_replica_takes_every_shard() {
        let members = names(&["a"]);
        let holders = vec![None; 4];
        let free = vec![Some(Duration::ZERO); 4];
        let moves = view("a", &members, &holders, &free).moves();
        let mut take = moves.take.clone();
        take.sort();
        assert_eq!(take, vec![0, 1, 2, 3]);
        assert_eq!(moves.give_up, None);
    }

    #[test]
    fn a_new_member_gets_shards_given_up_one_a_round() {
        let members = names(&["a", "b"]);
        let holders: Vec<Option<String>> = vec![Some("a".into()); 4];
        let free = vec![None; 4];
        // a holds 4, its share is 2, b holds none: a gives one up.
        let moves = view("a", &members, &holders, &free).moves();
        assert!(moves.take.is_empty());
        let given = moves.give_up.expect("a gives a shard up");
        // b takes free shards only: none is free yet.
        let moves_b = view("b", &members, &holders, &free).moves();
        assert_eq!(
            moves_b,
            Moves {
                take: vec![],
                give_up: None
            }
        );
        // Once a holds its share, it gives nothing more up.
        let mut holders = holders;
        holders[given as usize] = Some("b".into());
        let other = (0..4).find(|&s| s != given).unwrap();
        holders[other as usize] = Some("b".into());
        assert_eq!(view("a", &members, &holders, &free).moves().give_up, None);
    }

    #[test]
    fn a_replica_at_its_share_leaves_free_shards_to_others_until_unclaimed() {
        let members = names(&["a", "b"]);
        let holders: Vec<Option<String>> =
            vec![Some("a".into()), Some("a".into()), None, Some("b".into())];
        let mut free = vec![None, None, Some(Duration::from_secs(3)), None];
        // a is at its share (2 of 4 over 2): shard 2 is b's to take.
        assert!(view("a", &members, &holders, &free).moves().take.is_empty());
        assert_eq!(view("b", &members, &holders, &free).moves().take, vec![2]);
        // Unclaimed for a lease duration (b counted live but gone): a takes it all the same.
        free[2] = Some(Duration::from_secs(15));
        assert_eq!(view("a", &members, &holders, &free).moves().take, vec![2]);
    }

    #[test]
    fn nothing_is_given_up_while_every_member_has_its_share() {
        // 5 shards over 2: shares of 3; a holds 3 and b 2.
        let members = names(&["a", "b"]);
        let holders: Vec<Option<String>> = ["a", "a", "a", "b", "b"]
            .iter()
            .map(|h| Some(h.to_string()))
            .collect();
        let free = vec![None; 5];
        // b holds 2 < 3, so a (at 3, not above) gives nothing up, and b finds nothing free.
        assert_eq!(view("a", &members, &holders, &free).moves().give_up, None);
        assert_eq!(
            view("b", &members, &holders, &free).moves(),
            Moves {
                take: vec![],
                give_up: None
            }
        );
    }

    #[test]
    fn shares_even_out_to_within_one() {
        // 4 shards over 3: 2, 2, 0 is not even; one of the two gives a shard up to c.
        let members = names(&["a", "b", "c"]);
        let holders: Vec<Option<String>> = ["a", "a", "b", "b"]
            .iter()
            .map(|h| Some(h.to_string()))
            .collect();
        let free = vec![None; 4];
        assert!(
            view("a", &members, &holders, &free)
                .moves()
                .give_up
                .is_some()
        );
        // 1, 2, 1: b is above the lower share but nobody is below it; settled.
        let holders: Vec<Option<String>> = ["a", "b", "b", "c"]
            .iter()
            .map(|h| Some(h.to_string()))
            .collect();
        for me in ["a", "b", "c"] {
            assert_eq!(
                view(me, &members, &holders, &free).moves(),
                Moves {
                    take: vec![],
                    give_up: None
                },
                "{me}"
            );
        }
        // More replicas than shards: nobody gives up to a replica that holds none.
        let members = names(&["a", "b", "c"]);
        let holders = vec![Some("a".to_string()), Some("b".to_string())];
        let free = vec![None; 2];
        assert_eq!(view("a", &members, &holders, &free).moves().give_up, None);
    }

    #[test]
    fn replicas_reach_for_different_shards_first() {
        let firsts: std::collections::HashSet<u32> = ["prescaler-0", "prescaler-1", "prescaler-2"]
            .iter()
            .map(|me| preference(me, 16)[0])
            .collect();
        assert!(firsts.len() >= 2, "{firsts:?}");
        let mut all = preference("x", 16);
        all.sort();
        assert_eq!(all, (0..16).collect::<Vec<_>>());
    }
}
