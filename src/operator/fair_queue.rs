//! Fair admission of reconciles among namespaces: a fixed number of slots (`--concurrency`),
//! each reconcile holds one while it reads Prometheus, decides and writes, and the slots are
//! shared out among namespaces by the time they hold them, not by who asks first or most.
//!
//! Why a queue of our own: kube-runtime's controller runs at most `concurrency` reconciles and,
//! when one ends, starts the next ready object in its pending set's hash order. A tenant with a
//! few namespaces whose reads take just under a second and who edits its scalers every half
//! second kept that set full of its own objects: another tenant was reconciled 0 times in 20 s
//! (still 2 replicas 120 s into a surge, with eight such namespaces). Deferring a reconcile that
//! found its namespace over its share freed its controller slot but not its place in that order.
//! So the controller now starts every reconcile at once (`concurrency(0)`) and the reconcile
//! waits here, at no cost to the API server or Prometheus, for a slot.
//!
//! The rule is Kubernetes' API Priority and Fairness' fair queuing, reduced to what a controller
//! needs: each namespace is a flow with a FIFO queue; a freed slot goes to the waiting flow that
//! has used the least slot time, a reconcile being charged its flow's typical slot time when it
//! starts and corrected to what it took when it ends (APF charges an estimate of seats × time
//! and corrects it at completion: `k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing/queueset`).
//! A flow that comes back after an idle spell starts level with the busiest-served of the
//! others, not with the credit of its idle time (as queueset's virtual start). So a namespace
//! whose reads take 0.9 s gets a ninetieth of the starts of one whose reads take 10 ms when both
//! wait, and nothing is left idle while anyone waits (work-conserving).
//!
//! On top of fairness, a bound for reads that hang: a namespace whose read was slow in the last
//! `SUSPECT_FOR` is suspect, and may hold a quarter of the slots (at least one) while more than
//! half are in use, all suspects together half of them (at least one) — so that a victim's read
//! finds a free slot at once, not after a hanging query's timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

// Tokio's clock: the same as std's in the process, and one the tests can pause.
use tokio::time::Instant;

use tokio::sync::oneshot;

/// How long a namespace whose read was slow stays suspect: as long as the read backoff's longest
/// wait (`backoff::MAX_DELAY`), so that a namespace whose queries keep hanging is still suspect
/// when its scalers try again.
pub const SUSPECT_FOR: Duration = crate::operator::backoff::MAX_DELAY;

/// The slot time charged to a reconcile of a flow not seen yet, before any has ended.
const FIRST_ESTIMATE: f64 = 0.1;

/// How much a flow's typical slot time follows its last reconcile (an exponential mean).
const ESTIMATE_WEIGHT: f64 = 0.2;

/// Reconcile slots shared fairly among namespaces (see the module's comment).
pub struct FairQueue {
    slots: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    free: usize,
    /// After `close`: nobody waits and nobody new is admitted (the process is stopping).
    closed: bool,
    /// Flows that wait or hold a slot; an idle one is dropped (see `FairQueue::enqueue`).
    flows: HashMap<String, Flow>,
    /// Slots held by reconciles that were admitted as suspects.
    suspects_holding: usize,
    /// Per namespace, when its last slow read ended.
    suspects: HashMap<String, Instant>,
    /// Arrival order, to break ties between flows that used the same time.
    tickets: u64,
    /// Reconciles waiting, all flows together (a gauge read at every admission).
    waiting: usize,
    /// The typical slot time of all flows: a new flow's first estimate.
    typical: Option<f64>,
    /// The virtual clock: the slot time used by the flow last given a slot, when it was
    /// picked (never going back). A flow that comes back from idle starts at it.
    clock: f64,
}

struct Flow {
    waiting: VecDeque<(u64, oneshot::Sender<Slot>)>,
    holding: usize,
    /// Slot seconds used: charged at each start, corrected at each end.
    used: f64,
    /// This flow's typical slot seconds (an exponential mean).
    estimate: f64,
}

/// A reconcile's slot, given back when dropped.
pub struct Slot {
    queue: Arc<FairQueue>,
    namespace: String,
    started: Instant,
    charged: f64,
    suspect: bool,
    /// False for a slot that never reached its reconcile (its waiter had gone): the grant was
    /// undone where it was made.
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let took = self.started.elapsed().as_secs_f64();
        let mut inner = self.queue.lock();
        inner.end(&self.namespace, self.charged, self.suspect, Some(took));
        self.queue.dispatch(&mut inner);
    }
}

impl FairQueue {
    pub fn new(slots: usize) -> Arc<Self> {
        let slots = slots.max(1);
        Arc::new(Self {
            slots,
            inner: Mutex::new(Inner {
                free: slots,
                ..Inner::default()
            }),
        })
    }

    /// Waits for a slot for a reconcile in `namespace`; `None` once the queue is closed.
    pub async fn acquire(self: &Arc<Self>, namespace: &str) -> Option<Slot> {
        let granted = {
            let mut inner = self.lock();
            if inner.closed {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            inner.enqueue(namespace, tx);
            self.dispatch(&mut inner);
            rx
        };
        granted.await.ok()
    }

    /// A read of `namespace` was slow or timed out: it is suspect for `SUSPECT_FOR`.
    pub fn suspect(&self, namespace: &str) {
        let mut inner = self.lock();
        let now = Instant::now();
        inner
            .suspects
            .retain(|_, at| now.duration_since(*at) < SUSPECT_FOR);
        inner.suspects.insert(namespace.to_string(), now);
    }

    /// Stops admitting: every waiting reconcile gets `None` at once, so that a stopping process
    /// does not work through its queue before it can exit.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.waiting = 0;
        for flow in inner.flows.values_mut() {
            flow.waiting.clear();
        }
        inner.flows.retain(|_, f| f.holding > 0);
    }

    /// Reconciles waiting for a slot, all namespaces together.
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code below panics while holding it; a poisoned lock's maps are still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives free slots to waiting reconciles, fairest first (see the module's comment).
    fn dispatch(self: &Arc<Self>, inner: &mut Inner) {
        while inner.free > 0 {
            let Some(namespace) = inner.next_flow(self.slots) else {
                return;
            };
            let suspect = inner.is_suspect(&namespace);
            let flow = inner
                .flows
                .get_mut(&namespace)
                .expect("picked among the flows");
            let Some((_, waiter)) = flow.waiting.pop_front() else {
                return; // next_flow picks only flows that wait
            };
            inner.waiting -= 1;
            let charged = flow.estimate;
            let picked_at = flow.used;
            flow.holding += 1;
            flow.used += charged;
            inner.free -= 1;
            inner.clock = inner.clock.max(picked_at);
            inner.suspects_holding += usize::from(suspect);
            let slot = Slot {
                queue: self.clone(),
                namespace: namespace.clone(),
                started: Instant::now(),
                charged,
                suspect,
                armed: true,
            };
            if let Err(mut unclaimed) = waiter.send(slot) {
                // The reconcile that waited was dropped (the controller stopping): undo.
                unclaimed.armed = false;
                inner.end(&namespace, charged, suspect, None);
            }
        }
    }
}

impl Inner {
    fn enqueue(&mut self, namespace: &str, waiter: oneshot::Sender<Slot>) {
        let ticket = self.tickets;
        self.tickets += 1;
        let typical = self.typical.unwrap_or(FIRST_ESTIMATE);
        // A flow back from idle starts at the virtual clock (start-time fair queuing, as APF's
        // queueset): an idle spell is not credit to spend against the flows that kept working,
        // and what it used before is still counted while it is ahead of the clock. (Starting at
        // the least-served active flow instead let flows of one reconcile each, idle after each,
        // come back level with each other forever: a namespace of forty scalers got no slot.)
        let clock = self.clock;
        let flow = self
            .flows
            .entry(namespace.to_string())
            .or_insert_with(|| Flow {
                waiting: VecDeque::new(),
                holding: 0,
                used: clock,
                estimate: typical,
            });
        if flow.holding == 0 && flow.waiting.is_empty() {
            flow.used = flow.used.max(clock);
        }
        flow.waiting.push_back((ticket, waiter));
        self.waiting += 1;
    }

    /// The waiting flow that has used the least slot time (the earliest waiter on a tie), among
    /// those a suspect's bound lets start another reconcile.
    fn next_flow(&self, slots: usize) -> Option<String> {
        let busy = self.free <= slots / 2;
        let per_suspect = (slots / 4).max(1);
        let all_suspects = (slots / 2).max(1);
        self.flows
            .iter()
            .filter(|(_, f)| !f.waiting.is_empty())
            .filter(|(ns, f)| {
                !self.is_suspect(ns)
                    || (self.suspects_holding < all_suspects && (!busy || f.holding < per_suspect))
            })
            .min_by(|(_, a), (_, b)| {
                a.used
                    .total_cmp(&b.used)
                    .then_with(|| a.waiting[0].0.cmp(&b.waiting[0].0))
            })
            .map(|(ns, _)| ns.clone())
    }

    fn is_suspect(&self, namespace: &str) -> bool {
        self.suspects
            .get(namespace)
            .is_some_and(|at| at.elapsed() < SUSPECT_FOR)
    }

    /// A slot of `namespace` is given back: after `took` seconds, or never used (`None`).
    fn end(&mut self, namespace: &str, charged: f64, suspect: bool, took: Option<f64>) {
        self.free += 1;
        self.suspects_holding -= usize::from(suspect);
        let Some(flow) = self.flows.get_mut(namespace) else {
            return;
        };
        flow.holding -= 1;
        flow.used += took.unwrap_or(0.0) - charged;
        if let Some(took) = took {
            flow.estimate += ESTIMATE_WEIGHT * (took - flow.estimate);
            let typical = self.typical.get_or_insert(took);
            *typical += ESTIMATE_WEIGHT * (took - *typical);
        }
        // An idle flow is dropped once the clock has caught up with it: until then it is ahead,
        // and coming back it must start where it was, not at the clock.
        if flow.holding == 0 && flow.waiting.is_empty() && flow.used <= self.clock {
            self.flows.remove(namespace);
        }
        let clock = self.clock;
        if self.flows.len() > 64 {
            self.flows
                .retain(|_, f| f.holding > 0 || !f.waiting.is_empty() || f.used > clock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `parallel` reconcilers of `namespace` until `until`, each taking a slot again as
    /// soon as it has given one back and holding it for `hold`; counts the reconciles done.
    async fn tenant(
        queue: Arc<FairQueue>,
        namespace: &'static str,
        parallel: usize,
        hold: Duration,
        until: tokio::time::Instant,
    ) -> usize {
        let mut workers = Vec::new();
        for _ in 0..parallel {
            let queue = queue.clone();
            workers.push(tokio::spawn(async move {
                let mut ran = 0;
                while tokio::time::Instant::now() < until {
                    let _slot = queue.acquire(namespace).await.unwrap();
                    tokio::time::sleep(hold).await;
                    // Only what finished in the time counts (waiters queued at the end run after).
                    ran += usize::from(tokio::time::Instant::now() <= until);
                }
                ran
            }));
        }
        let mut ran = 0;
        for w in workers {
            ran += w.await.unwrap();
        }
        ran
    }

    #[tokio::test(start_paused = true)]
    async fn slow_reconciles_get_fewer_starts_than_quick_ones_by_the_time_they_hold() {
        let queue = FairQueue::new(8);
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        // Sixty reconciles of 0.9 s always waiting in two namespaces, against one namespace of
        // ten at 10 ms: the quick one gets a third of the slot time, not a hundredth of starts.
        let slow_a = tokio::spawn(tenant(
            queue.clone(),
            "hostile-a",
            30,
            Duration::from_millis(900),
            until,
        ));
        let slow_b = tokio::spawn(tenant(
            queue.clone(),
            "hostile-b",
            30,
            Duration::from_millis(900),
            until,
        ));
        let quick = tenant(
            queue.clone(),
            "victim",
            10,
            Duration::from_millis(10),
            until,
        )
        .await;
        let (a, b) = (slow_a.await.unwrap(), slow_b.await.unwrap());
        // Each holds 8 / 3 slots: 60 s × 8/3 / 0.9 ≈ 178 slow reconciles, ≈ 16,000 quick ones.
        assert!((150..=200).contains(&a), "{a}");
        assert!((150..=200).contains(&b), "{b}");
        assert!(quick > 10_000, "{quick}");
    }

    #[tokio::test(start_paused = true)]
    async fn namespaces_of_one_scaler_each_do_not_starve_a_namespace_of_many() {
        // Twelve namespaces of one reconcile each (idle between two), against one of forty: each
        // of the thirteen is owed 8/13 of a slot. Review 6: the forty got none, as the twelve
        // came back from idle level with each other, below the forty's used time, forever.
        let queue = FairQueue::new(8);
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        let names: Vec<&'static str> = (0..12)
            .map(|i| &*Box::leak(format!("one-{i}").into_boxed_str()))
            .collect();
        let small: Vec<_> = names
            .iter()
            .map(|n| {
                tokio::spawn(tenant(
                    queue.clone(),
                    n,
                    1,
                    Duration::from_millis(100),
                    until,
                ))
            })
            .collect();
        let many = tenant(queue.clone(), "many", 40, Duration::from_millis(100), until).await;
        let mut each = Vec::new();
        for s in small {
            each.push(s.await.unwrap());
        }
        // 60 s × 8/13 / 0.1 s ≈ 369 each.
        assert!(many >= 300, "the namespace of forty: {many}");
        assert!(each.iter().all(|&n| n >= 300), "{each:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_alone_uses_every_slot() {
        let queue = FairQueue::new(4);
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        let ran = tenant(queue, "only", 16, Duration::from_millis(100), until).await;
        // 4 slots × 10 s / 0.1 s, less the last round.
        assert!(ran >= 390, "{ran}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspect_namespace_holds_a_quarter_of_the_slots_while_the_pool_is_busy() {
        let queue = FairQueue::new(8);
        queue.suspect("hanging");
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut hangers = Vec::new();
        for _ in 0..20 {
            let (queue, held) = (queue.clone(), held.clone());
            hangers.push(tokio::spawn(async move {
                let _slot = queue.acquire("hanging").await.unwrap();
                held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(30)).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Alone, the pool was quiet up to half: four (half of 8) then, busy, no more than that.
        assert_eq!(held.load(std::sync::atomic::Ordering::SeqCst), 4);
        // Another namespace finds a slot at once.
        let started = tokio::time::Instant::now();
        let slot = queue.acquire("victim").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1));
        drop(slot);
        for h in hangers {
            h.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flow_back_from_idle_has_no_credit_for_its_idle_time() {
        let queue = FairQueue::new(1);
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        let busy = tokio::spawn(tenant(
            queue.clone(),
            "busy",
            4,
            Duration::from_millis(100),
            until,
        ));
        // Ten seconds later, a second flow arrives: from then on, they alternate.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let late = tenant(queue.clone(), "late", 4, Duration::from_millis(100), until).await;
        let busy = busy.await.unwrap();
        // 100 alone, then 50 each — not 100 for the late flow to catch up.
        assert!((45..=55).contains(&late), "{late}");
        assert!((145..=155).contains(&busy), "{busy}");
    }

    #[tokio::test]
    async fn closing_releases_every_waiter_and_a_dropped_waiter_costs_no_slot() {
        let queue = FairQueue::new(1);
        let held = queue.acquire("a").await.unwrap();
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.acquire("b").await.is_none() }
        });
        // A waiter given up before its turn (its reconcile dropped).
        let gave_up = tokio::spawn({
            let queue = queue.clone();
            async move { queue.acquire("c").await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(queue.waiting(), 2);
        gave_up.abort();
        queue.close();
        assert!(waiter.await.unwrap(), "a waiter is told the queue closed");
        drop(held);
        assert_eq!(queue.lock().free, 1, "every slot is back");
        assert!(queue.acquire("d").await.is_none());
    }
}
