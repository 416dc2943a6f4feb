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

use std::collections::{BTreeMap, HashMap, HashSet};
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
/// The shard count of the replica that made the Lease (a shard's or a member's).
pub const SHARDS_LABEL: &str = "prescaler.io/shards";

/// A member Lease, or another shard count's shard Lease, unchanged for this many lease
/// durations belongs to replicas that are gone (their pod names will not come back): it is
/// deleted, so that restarts and changes of `--shards` do not pile them up.
const STALE_LEASE_DURATIONS: u32 = 10;

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shard of the scaler `namespace/name` among `shards`: its stable hash
/// (`placement::scaler_hash`, on which every replica of every version agrees) modulo the count.
pub fn shard_of(namespace: &str, name: &str, shards: u32) -> u32 {
    (crate::placement::scaler_hash(namespace, name) % u64::from(shards.max(1))) as u32
}

/// The name of shard `shard`'s Lease among `shards`. The count is in the name: replicas of
/// another count (a `--shards` change rolling out) hash scalers to other shards, and must never
/// hold a Lease of the same name as if it were the same shard.
pub fn shard_lease_name(base: &str, shard: u32, shards: u32) -> String {
    format!("{base}-shard-{shard}-of-{shards}")
}

/// Labels of the shard Leases (`role` = `shard`) and member Leases (`member`) of `shards`.
fn lease_labels(base: &str, role: &str, shards: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (GROUP_LABEL.to_string(), base.to_string()),
        (ROLE_LABEL.to_string(), role.to_string()),
        (SHARDS_LABEL.to_string(), shards.to_string()),
    ])
}

/// The settings of every shard's Lease, from the operator's Lease settings (whose name is the
/// base of theirs).
pub fn shard_leases(base: &LeaseSettings, shards: u32) -> Vec<LeaseSettings> {
    (0..shards)
        .map(|shard| LeaseSettings {
            name: shard_lease_name(&base.name, shard, shards),
            labels: lease_labels(&base.name, "shard", shards),
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

/// What this replica saw of a Lease it does not hold (a member's, another shard count's, the
/// single leader's): its holder and renew time, and when, by this replica's clock, they last
/// changed.
struct Seen {
    holder: Option<String>,
    renewed: Option<String>,
    changed_at: Instant,
}

/// What one look at the group's Leases found.
struct Group {
    /// The live members of this shard count, this replica among them.
    members: Vec<String>,
    /// The lowest shard count of another configuration with a live Lease (1: the single
    /// leader's Lease, `--shards 1`).
    foreign: Option<u32>,
    /// Leases of replicas long gone, to delete.
    stale: Vec<Lease>,
}

/// This replica's shards: a Lease per shard, its own member Lease, and what it saw of the
/// others.
pub struct ShardSet {
    base: LeaseSettings,
    count: u32,
    shards: Vec<Leadership>,
    member: Leadership,
    leases: Api<Lease>,
    /// Per Lease name, what this replica saw of the Leases it does not hold.
    seen: Mutex<HashMap<String, Seen>>,
    /// Shards being given up: no longer written for, not yet released; not to be taken back.
    giving_up: Mutex<HashSet<u32>>,
    /// The shards held as last sent on `changes`.
    announced: Mutex<Vec<u32>>,
    /// Bumped whenever the shards held change: the controller reconciles everything then.
    changes: watch::Sender<u64>,
}

impl ShardSet {
    /// `base` is the operator's Lease settings: its name is the base of the shards' and the
    /// member's Lease names.
    pub fn new(client: kube::Client, base: LeaseSettings, shards: u32) -> Self {
        let member = LeaseSettings {
            name: format!("{}-member-{}", base.name, base.identity),
            labels: lease_labels(&base.name, "member", shards),
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
            count: shards,
            seen: Mutex::default(),
            giving_up: Mutex::default(),
            announced: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard of `namespace/name`.
    pub fn shard_of(&self, namespace: &str, name: &str) -> u32 {
        shard_of(namespace, name, self.count)
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
        (0..self.count).filter(|&s| self.may_write(s)).collect()
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

    /// Renews the shards held, and takes and gives up shards, every retry period, until the
    /// caller stops it. The two run side by side, so that a take or a look that hangs (each is
    /// bounded by the renew deadline) never delays a renewal: in one loop, two hung takes
    /// held every shard past its renew deadline.
    pub async fn run(&self) {
        let renewing = async {
            loop {
                self.renew_held().await;
                self.announce();
                tokio::time::sleep(self.base.retry).await;
            }
        };
        let coordinating = async {
            loop {
                self.coordinate().await;
                self.announce();
                tokio::time::sleep(self.base.retry).await;
            }
        };
        tokio::join!(renewing, coordinating);
    }

    /// One round of both: the held shards renewed (or lost), then the members counted and the
    /// moves made.
    pub async fn round(&self) {
        self.renew_held().await;
        self.coordinate().await;
        self.announce();
    }

    /// Sends a change when the shards that may be written for differ from those last sent:
    /// whenever they changed (a renew deadline that passed between two rounds included).
    fn announce(&self) {
        let held = self.held();
        let mut announced = locked(&self.announced);
        if *announced != held {
            *announced = held;
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Renews every shard held, each within what is left of its renew deadline; a shard not
    /// renewed in time, or found held by another, is lost (nothing more is written for it).
    async fn renew_held(&self) {
        let held = self.shards.iter().filter(|l| l.renewed_at().is_some());
        futures::future::join_all(held.map(Leadership::renew_once)).await;
    }

    /// The member Lease renewed, the shards not held looked at, the group's Leases read, and
    /// the moves made: none while replicas of another shard count still hold a live Lease.
    async fn coordinate(&self) {
        if let Err(e) = self
            .member
            .try_acquire_or_renew(self.base.renew_deadline)
            .await
        {
            warn!(error = %e, "shards: could not renew this replica's member Lease");
        }
        let not_held = self.shards.iter().filter(|l| l.renewed_at().is_none());
        futures::future::join_all(not_held.map(|l| async {
            if let Err(e) = l.look(self.base.renew_deadline).await {
                warn!(lease = l.settings().name, error = %e, "shards: could not read a shard's Lease");
            }
        }))
        .await;
        let Some(group) = self.read_group().await else {
            // Who else runs is unknown: renew what is held (the other loop does), take nothing.
            return;
        };
        for lease in &group.stale {
            self.delete_stale(lease).await;
        }
        if let Some(foreign) = group.foreign {
            self.stand_aside(foreign).await;
            return;
        }
        let holders: Vec<Option<String>> = self.shards.iter().map(Leadership::holder).collect();
        let free_for: Vec<Option<Duration>> =
            self.shards.iter().map(Leadership::free_for).collect();
        let moves = View {
            shards: self.count,
            me: &self.base.identity,
            members: &group.members,
            holders: &holders,
            free_for: &free_for,
            unclaimed_after: self.base.lease_duration,
        }
        .moves();
        let giving_up = locked(&self.giving_up).clone();
        let takes = moves.take.into_iter().filter(|s| !giving_up.contains(s));
        futures::future::join_all(takes.map(|shard| async move {
            let lease = &self.shards[shard as usize];
            if let Ok(true) = lease.try_acquire_or_renew(self.base.renew_deadline).await {
                info!(shard, identity = self.base.identity, "took a shard");
            }
        }))
        .await;
        if let Some(shard) = moves.give_up {
            info!(
                shard,
                members = group.members.len(),
                "giving a shard up to a member with fewer"
            );
            self.give_up(shard).await;
        }
    }

    /// Replicas of another shard count hold a live Lease (a `--shards` change rolling out, or
    /// `--shards 1`'s single leader): they hash scalers to other shards, so both writing would
    /// make two writers. This replica takes nothing meanwhile; and should both hold shards
    /// (both started while neither held any), the larger count gives all of its up, so that
    /// one side always goes on.
    async fn stand_aside(&self, foreign: u32) {
        let held = self.held();
        if foreign < self.count && !held.is_empty() {
            warn!(
                shards = self.count,
                other = foreign,
                "replicas with another --shards hold Leases too: giving every shard up to them"
            );
            futures::future::join_all(held.into_iter().map(|s| self.give_up(s))).await;
        } else {
            info!(
                shards = self.count,
                other = foreign,
                "waiting for the replicas with another --shards to stop"
            );
        }
    }

    /// Stops writing for `shard` at once, then waits out the writes already past their check
    /// before it releases the Lease: the lease duration less the renew deadline, the margin
    /// that a replica taking a shard after its holder stopped renewing leaves as well. Released
    /// at once, a write checked before the give-up and still in flight landed after the taker's
    /// first.
    async fn give_up(&self, shard: u32) {
        let lease = &self.shards[shard as usize];
        if !lease.may_write() {
            return;
        }
        locked(&self.giving_up).insert(shard);
        lease.lost();
        self.announce();
        let margin = self
            .base
            .lease_duration
            .saturating_sub(self.base.renew_deadline);
        tokio::time::sleep(margin).await;
        lease.release_held().await;
        locked(&self.giving_up).remove(&shard);
    }

    /// Lists the group's Leases (members and the shard Leases of every count) and reads the
    /// single leader's: the live members of this count, the lowest other count with a live
    /// Lease, and the Leases long gone. `None` when either read failed.
    async fn read_group(&self) -> Option<Group> {
        let selector = format!("{GROUP_LABEL}={}", self.base.name);
        let timeout = self.base.renew_deadline;
        let params = ListParams::default().labels(&selector);
        let listed = tokio::time::timeout(timeout, self.leases.list(&params));
        let single = tokio::time::timeout(timeout, self.leases.get_opt(&self.base.name));
        let (listed, single) = futures::join!(listed, single);
        let (leases, single) = match (listed, single) {
            (Ok(Ok(list)), Ok(Ok(single))) => (list.items, single),
            (Ok(Err(e)), _) | (_, Ok(Err(e))) => {
                warn!(error = %e, "shards: could not read the group's Leases");
                return None;
            }
            _ => {
                warn!("shards: the group's Leases were not read in time");
                return None;
            }
        };
        Some(self.judge(leases.iter().chain(single.as_ref())))
    }

    /// What the Leases read say (see `read_group`).
    fn judge<'l>(&self, leases: impl Iterator<Item = &'l Lease>) -> Group {
        let mine: HashSet<&str> = self
            .shards
            .iter()
            .map(|l| l.settings().name.as_str())
            .collect();
        let stale_after = self.base.lease_duration * STALE_LEASE_DURATIONS;
        let mut group = Group {
            members: vec![self.base.identity.clone()],
            foreign: None,
            stale: Vec::new(),
        };
        let mut seen = locked(&self.seen);
        let mut present = HashSet::new();
        for lease in leases {
            let name = lease.name_any();
            if mine.contains(name.as_str()) || name == self.member.settings().name {
                continue;
            }
            let spec = lease.spec.as_ref();
            let holder = spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty());
            let renewed = spec
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string());
            let entry = seen.entry(name.clone()).or_insert_with(|| Seen {
                holder: holder.clone(),
                renewed: renewed.clone(),
                changed_at: Instant::now(),
            });
            if entry.holder != holder || entry.renewed != renewed {
                *entry = Seen {
                    holder: holder.clone(),
                    renewed,
                    changed_at: Instant::now(),
                };
            }
            let age = entry.changed_at.elapsed();
            let live = holder.is_some() && age < self.base.lease_duration;
            let label = |key: &str| lease.labels().get(key).cloned();
            let count = label(SHARDS_LABEL).and_then(|c| c.parse::<u32>().ok());
            match (name == self.base.name, label(ROLE_LABEL).as_deref()) {
                (true, _) if live => group.foreign = Some(1),
                (true, _) => {}
                (false, Some("member")) if count == Some(self.count) => {
                    if let Some(h) = holder.filter(|_| live) {
                        group.members.push(h);
                    }
                }
                // Another count's shard Lease, held: its replicas write. (Their members alone
                // do not count: they run, but hold nothing yet.)
                (false, Some("shard")) if live => {
                    let other = count.unwrap_or(0);
                    group.foreign = Some(group.foreign.map_or(other, |f| f.min(other)));
                }
                _ => {}
            }
            if name != self.base.name && !live && age >= stale_after {
                group.stale.push(lease.clone());
            }
            present.insert(name);
        }
        seen.retain(|name, _| present.contains(name));
        group.members.sort();
        group.members.dedup();
        group
    }

    /// Deletes a Lease of replicas long gone, on the condition that it is still the version
    /// read (a replica that came back keeps its Lease).
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
            Ok(Ok(_)) => info!(lease = name, "deleted the Lease of a replica long gone"),
            Ok(Err(e)) => warn!(lease = name, error = %e, "could not delete a stale Lease"),
            Err(_) => warn!(lease = name, "could not delete a stale Lease in time"),
        }
    }

    /// Gives every shard up and deletes this replica's member Lease (on a graceful stop, the
    /// controller stopped), so that the other replicas take the shards at once and count one
    /// member fewer.
    pub async fn release_all(&self) {
        futures::future::join_all(self.shards.iter().map(Leadership::release)).await;
        let name = &self.member.settings().name;
        let _ = tokio::time::timeout(
            self.base.renew_deadline,
            self.leases.delete(name, &DeleteParams::default()),
        )
        .await;
        self.announce();
    }
}

/// Before the single leader (`--shards 1`) takes its Lease: waits until no shard Lease of any
/// count has changed for a lease duration while held, so that it never writes beside replicas
/// of a sharded configuration still running (a `--shards` change rolling out). Should both
/// start at once, the sharded replicas give their shards up (`ShardSet::stand_aside`).
pub async fn wait_until_no_shard_is_held(client: kube::Client, base: &LeaseSettings) {
    let set = ShardSet::new(client, base.clone(), 1);
    let mut told = false;
    loop {
        let selector = format!("{GROUP_LABEL}={},{ROLE_LABEL}=shard", base.name);
        let listed = tokio::time::timeout(
            base.renew_deadline,
            set.leases.list(&ListParams::default().labels(&selector)),
        )
        .await;
        match listed {
            Ok(Ok(list)) => {
                let group = set.judge(list.items.iter());
                let Some(count) = group.foreign else {
                    return;
                };
                if !told {
                    info!(
                        shards = count,
                        "waiting for the replicas with --shards to stop"
                    );
                    told = true;
                }
            }
            Ok(Err(e)) => warn!(error = %e, "could not list the shard Leases"),
            Err(_) => warn!("the shard Leases were not listed in time"),
        }
        tokio::time::sleep(base.retry).await;
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
