//! Several load metrics (`spec.metrics`): one `Planner` per metric, each forecast and
//! calibrated on its own metric's history, combined as the HorizontalPodAutoscaler combines its
//! metrics.
//!
//! The HPA (`computeReplicasForMetrics` in kubernetes `pkg/controller/podautoscaler/
//! horizontal.go`) computes a replica count for each metric, keeps the highest
//! (`replicaCountProposal > replicas`: the first metric on a tie) and names it
//! (`metricNameProposal`); `reconcileAutoscaler` then normalizes that one count with the
//! behavior (`normalizeDesiredReplicasWithBehaviors`: stabilization, then the rate limits) —
//! once, not per metric. A metric it cannot read does not stop the others from scaling up, but
//! while one is invalid it refuses to scale down (`invalidMetricsCount > 0 && replicas <
//! specReplicas`), and with none readable it does not scale.
//!
//! So here: each planner proposes (`Planner::propose`: its basis and margins, its live floor,
//! the schedule, its quiet term), the highest proposal is taken, and the bounds and `behavior`
//! shape it once (`plan::shape`), with one behavior memory for the workload. The per-metric
//! behavior would differ: a scale-up stabilization window takes the lowest recommendation of
//! the window, and the lowest of each metric's is not the lowest of their highest. A metric
//! without a live load proposes its hold (never below the current count), so the others can
//! raise the count but nothing lowers it while it is lost; with every metric lost, the highest
//! hold is the decision. A quiet window scales to zero only while every metric asks for zero.
//!
//! With one metric, `Several::decide` is the planner's own `decide`: a single-metric spec
//! decides exactly as before (`tests/parity.rs`).

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::calibration::Calibration;
use super::forecast::{History, ModelConfig};
use super::plan::{self, Asked, Decision, Memory, Proposal, Reason};
use super::planner::Planner;
use prescaler_api::{Metric, ValidatedSpec};

/// What one metric proposed, for the status and `kubectl prescaler why`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFigures {
    /// `spec.metrics[].name` (`prescaler_api::SINGLE_METRIC_NAME` for `spec.metric`).
    pub name: String,
    /// The live load read; `None` when the metric could not be read recently.
    pub load: Option<f64>,
    /// The replicas this metric's terms ask for, before the bounds and `behavior` (0 when its
    /// quiet term asks for zero; a hold's count when it could not be read).
    pub replicas: u32,
    /// The term that asked for them (`Hold` when the metric could not be read).
    pub reason: Reason,
    /// The forecast peak load within the lead time (without margin), and what it needs with
    /// the margins.
    pub forecast_load: Option<f64>,
    pub forecast_replicas: Option<u32>,
    /// This metric's calibration (basis and margins), once there is one.
    pub calibration: Option<Calibration>,
    /// How far back this metric's history reaches.
    pub observed_history: Duration,
}

/// The decision over every metric, and each metric's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// The decision: the deciding metric's figures, shaped once; `decision.metric` names it
    /// when there are several metrics.
    pub decision: Decision,
    /// The index (in `spec.metrics`) of the metric that decided.
    pub deciding: usize,
    /// Each metric's proposal, in the spec's order.
    pub metrics: Vec<MetricFigures>,
}

/// Decides for a PredictiveScaler with one or several metrics, minute by minute.
#[derive(Clone, Debug)]
pub struct Several {
    /// One per metric, in the spec's order, each with its metric's `targetPerReplica` and
    /// activation threshold (`ValidatedSpec::for_metric`).
    planners: Vec<Planner>,
    /// The metric each planner decides for.
    metrics: Vec<Metric>,
    /// The behavior's memory of the combined decision (with several metrics).
    memory: Memory,
    last: Option<(DateTime<Utc>, u32, Decided)>,
}

fn planners_for(spec: &ValidatedSpec, model: &ModelConfig) -> Vec<Planner> {
    (0..spec.metrics.len())
        .filter_map(|i| spec.for_metric(i))
        .map(|s| Planner::new(s, model.clone()))
        .collect()
}

impl Several {
    /// A planner per metric of `spec` (validated: at least one metric).
    pub fn new(spec: &ValidatedSpec, model: ModelConfig) -> Self {
        let memory = Memory::with_zero_cooldown(model.zero_cooldown);
        Self {
            planners: planners_for(spec, &model),
            metrics: spec.metrics.clone(),
            memory,
            last: None,
        }
    }

    /// The planners, one per metric in the spec's order.
    pub fn planners(&self) -> &[Planner] {
        &self.planners
    }

    /// The last decision, its minute and the count it was made for (what an outlook of the
    /// metrics plays ahead from).
    pub fn last_decided(&self) -> Option<(DateTime<Utc>, u32, &Decided)> {
        self.last.as_ref().map(|(t, r, d)| (*t, *r, d))
    }

    /// The combined decision's memory (the behavior's, and what an outage holds).
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The metrics' names, in the spec's order.
    pub fn names(&self) -> Vec<&str> {
        self.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    /// Takes a changed spec: each metric whose name and query are unchanged keeps its planner
    /// (`Planner::update_spec`: its record and calibration where they still apply); a metric
    /// added, renamed or with another query starts afresh, as its history is another. The
    /// combined behavior's memory is kept, as the HPA keeps it across a spec change.
    pub fn update_spec(&mut self, spec: &ValidatedSpec) {
        let model = match self.planners.first() {
            Some(p) => p.model().clone(),
            None => return,
        };
        let mut old: Vec<(Metric, Option<Planner>)> = self
            .metrics
            .drain(..)
            .zip(self.planners.drain(..).map(Some))
            .collect();
        for (i, m) in spec.metrics.iter().enumerate() {
            let Some(metric_spec) = spec.for_metric(i) else {
                continue;
            };
            let same = old
                .iter_mut()
                .find(|(o, p)| p.is_some() && o.name == m.name && o.query == m.query)
                .and_then(|(_, p)| p.take());
            let planner = match same {
                Some(mut p) => {
                    p.update_spec(metric_spec);
                    p
                }
                None => Planner::new(metric_spec, model.clone()),
            };
            self.planners.push(planner);
            self.metrics.push(m.clone());
        }
        self.last = None;
    }

    /// Decides at `now` for a workload at `current_replicas`. `histories[i]` is metric `i`'s
    /// history (as `Planner::decide` takes it; `None` when it could not be read); a missing
    /// entry is read as `None`.
    pub fn decide(
        &mut self,
        histories: &[Option<&History>],
        current_replicas: u32,
        now: DateTime<Utc>,
    ) -> Decided {
        let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
        if let Some(d) = crate::planner::repeated(&self.last, minute, current_replicas, |d| {
            d.decision.desired_replicas
        }) {
            return d.clone();
        }
        let history = |i: usize| histories.get(i).copied().flatten();
        let decided = if self.planners.len() == 1 {
            // One metric: the planner's own decision, untouched.
            let d = self.planners[0].decide(history(0), current_replicas, now);
            let figures = figures_of_decision(&self.metrics[0].name, &d);
            Decided {
                decision: d,
                deciding: 0,
                metrics: vec![figures],
            }
        } else {
            self.combine(history, current_replicas, minute)
        };
        self.last = Some((minute, current_replicas, decided.clone()));
        decided
    }

    fn combine<'h>(
        &mut self,
        history: impl Fn(usize) -> Option<&'h History>,
        current_replicas: u32,
        minute: DateTime<Utc>,
    ) -> Decided {
        let mut proposals = Vec::with_capacity(self.planners.len());
        let mut figures = Vec::with_capacity(self.planners.len());
        for (i, p) in self.planners.iter_mut().enumerate() {
            let (proposal, observed) = p.propose(history(i), current_replicas, minute);
            figures.push(figures_of_proposal(
                &self.metrics[i].name,
                &proposal,
                observed,
            ));
            proposals.push(proposal);
        }
        let (deciding, mut decision) =
            shape_highest(&self.planners, &proposals, &mut self.memory, minute);
        let name = figures[deciding].name.clone();
        // What the coverage condition warns about: the shortest of the metrics' histories.
        let observed = figures
            .iter()
            .map(|f| f.observed_history)
            .min()
            .unwrap_or_else(Duration::zero);
        decision.metric = Some(name);
        decision.observed_history = observed;
        for p in &mut self.planners {
            p.memory_mut().hold_as(&self.memory);
        }
        Decided {
            decision,
            deciding,
            metrics: figures,
        }
    }
}

/// The highest of `proposals` (one per metric, of `planners`) shaped once with the combined
/// `memory`, as the HPA combines its metrics (the module's note): the index of the metric that
/// decided, and the decision. Each planner's memory is told what an outage is to hold
/// (`Memory::hold_as`) by the caller. `Several::decide` and the outlook of several metrics
/// (`outlook::outlook_of_metrics`, on copies of the memories) both shape through it.
pub(crate) fn shape_highest(
    planners: &[Planner],
    proposals: &[Proposal],
    memory: &mut Memory,
    minute: DateTime<Utc>,
) -> (usize, Decision) {
    // The highest proposal decides; the first of equals, as the HPA keeps the first.
    let deciding = proposals.iter().enumerate().fold(0, |best, (i, p)| {
        match p.replicas() > proposals[best].replicas() {
            true => i,
            false => best,
        }
    });
    let spec = planners[deciding].spec().clone();
    let like = proposals.iter().find_map(|p| match p {
        Proposal::Ask(a) => Some((**a).clone()),
        Proposal::Hold(_) => None,
    });
    let decision = match like {
        // No metric could be read: the highest hold, as a single metric holds.
        None => match &proposals[deciding] {
            Proposal::Hold(d) => (**d).clone(),
            Proposal::Ask(_) => unreachable!("no proposal has a live load"),
        },
        Some(like) => {
            let asks: Vec<Asked> = proposals
                .iter()
                .zip(planners)
                .map(|(p, planner)| match p {
                    Proposal::Ask(a) => (**a).clone(),
                    Proposal::Hold(d) => Asked::of_hold(planner.spec(), d, &like),
                })
                .collect();
            let combined = Asked::combine(&asks, deciding);
            // What a metric that cannot be read holds alone: the floor its last trustworthy
            // forecast gives an HPA (or a ScaledObject), for as long as a single metric's
            // hold keeps it (`HOLD_FORECAST_FOR`). Combined as a hold without a forecast,
            // a lost metric's floor fell at once to what the others forecast: an HPA free
            // to scale down before the peak the lost metric foresaw.
            let held_floor = proposals
                .iter()
                .filter_map(|p| match p {
                    Proposal::Hold(d) => Some(d.floor_replicas),
                    Proposal::Ask(_) => None,
                })
                .max();
            let remembered = memory.remembered_forecast();
            let mut d = plan::shape(&spec, combined, memory, minute);
            if let Some(held_floor) = held_floor {
                d.floor_replicas = d.floor_replicas.max(held_floor);
                // The remembered forecast stays what the hold reads, from when it was
                // trusted, until a higher one comes: refreshed each minute by the others'
                // lower forecast, the hold's floor would fall from the next minute.
                memory.keep_higher_forecast(remembered);
            }
            d.metrics_available = proposals.iter().all(|p| matches!(p, Proposal::Ask(_)));
            d
        }
    };
    (deciding, decision)
}

fn figures_of_decision(name: &str, d: &Decision) -> MetricFigures {
    MetricFigures {
        name: name.to_string(),
        load: d.load,
        replicas: d.desired_replicas,
        reason: d.reason.clone(),
        forecast_load: d.forecast_load,
        forecast_replicas: d.forecast_replicas,
        calibration: d.calibration,
        observed_history: d.observed_history,
    }
}

fn figures_of_proposal(name: &str, p: &Proposal, observed_history: Duration) -> MetricFigures {
    let name = name.to_string();
    match p {
        Proposal::Hold(d) => MetricFigures {
            name,
            load: None,
            replicas: d.desired_replicas,
            reason: Reason::Hold,
            forecast_load: None,
            forecast_replicas: None,
            calibration: None,
            observed_history,
        },
        Proposal::Ask(a) => {
            let (forecast_replicas, forecast_load) = a.forecast();
            MetricFigures {
                name,
                load: Some(a.load()),
                replicas: a.replicas(),
                reason: a.reason().clone(),
                forecast_load,
                forecast_replicas,
                calibration: a.calibration().copied(),
                observed_history,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use prescaler_api::{MetricSpec, NamedMetricSpec, PredictiveScalerSpec};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
    }

    fn at(m: i64) -> DateTime<Utc> {
        t0() + Duration::minutes(m)
    }

    /// A spec with the metrics `(name, targetPerReplica)`, 1–100 replicas, `edit` applied.
    fn spec(
        metrics: &[(&str, f64)],
        edit: impl FnOnce(&mut PredictiveScalerSpec),
    ) -> ValidatedSpec {
        let mut s = PredictiveScalerSpec::new(1.0, 100);
        s.metric = MetricSpec::default();
        s.metrics = metrics
            .iter()
            .map(|(name, per_replica)| NamedMetricSpec {
                name: name.to_string(),
                query: format!("sum({})", name.replace('-', "_")),
                target_per_replica: *per_replica,
                activation_threshold: 0.0,
            })
            .collect();
        edit(&mut s);
        s.validate().unwrap()
    }

    fn history(minutes: i64, load: impl Fn(i64) -> f64) -> History {
        History::new(t0(), Duration::minutes(1), (0..minutes).map(load).collect())
    }

    /// Runs `several` over `minutes`, starting at `current`, each decision taken as the next
    /// minute's current count.
    fn run(several: &mut Several, histories: &[Option<&History>], minutes: i64) -> Vec<Decided> {
        let mut current = 2;
        (0..minutes)
            .map(|m| {
                let d = several.decide(histories, current, at(m));
                current = d.decision.desired_replicas;
                d
            })
            .collect()
    }

    #[test]
    fn one_metric_decides_as_its_planner_does() {
        let s = spec(&[("requests", 10.0)], |_| {});
        let h = history(240, |m| 50.0 + 3.0 * (m % 90) as f64);
        let mut several = Several::new(&s, ModelConfig::default());
        let mut planner = Planner::new(s.for_metric(0).unwrap(), ModelConfig::default());
        let mut current = 2;
        for (m, d) in run(&mut several, &[Some(&h)], 240).into_iter().enumerate() {
            let own = planner.decide(Some(&h), current, at(m as i64));
            assert_eq!(d.decision, own);
            assert_eq!(d.decision.metric, None);
            current = own.desired_replicas;
        }
    }

    #[test]
    fn the_metric_whose_load_needs_more_decides_and_is_named() {
        // requests: 100 at 10 a replica (10 replicas); queue: 200 at 5 a replica (40).
        let s = spec(&[("requests", 10.0), ("queue", 5.0)], |_| {});
        let requests = history(30, |_| 100.0);
        let queue = history(30, |_| 200.0);
        let mut several = Several::new(&s, ModelConfig::default());
        let decided = run(&mut several, &[Some(&requests), Some(&queue)], 30);
        let last = decided.last().unwrap();
        assert_eq!(last.deciding, 1);
        assert_eq!(last.decision.metric.as_deref(), Some("queue"));
        assert!(last.decision.desired_replicas >= 40, "{:?}", last.decision);
        assert!(
            last.decision.explain().starts_with("metric \"queue\": "),
            "{}",
            last.decision.explain()
        );
        assert_eq!(last.metrics[0].name, "requests");
        assert_eq!(last.metrics[0].load, Some(100.0));
        assert_eq!(last.metrics[1].load, Some(200.0));
        assert!(last.metrics[1].replicas > last.metrics[0].replicas);

        // The queue dominating every minute, the decisions are the queue's alone: the other
        // metric changes nothing (its proposals are lower), and nothing is shaped twice.
        let alone = spec(&[("queue", 5.0)], |_| {});
        let mut queue_only = Several::new(&alone, ModelConfig::default());
        let own = run(&mut queue_only, &[Some(&queue)], 30);
        for (both, own) in decided.iter().zip(&own) {
            assert_eq!(
                both.decision.desired_replicas,
                own.decision.desired_replicas
            );
            assert_eq!(both.decision.reason, own.decision.reason);
        }

        // The other way round, the first metric decides.
        let light_queue = history(30, |_| 20.0);
        let mut several = Several::new(&s, ModelConfig::default());
        let last = run(&mut several, &[Some(&requests), Some(&light_queue)], 30)
            .pop()
            .unwrap();
        assert_eq!(last.deciding, 0);
        assert_eq!(last.decision.metric.as_deref(), Some("requests"));
    }

    #[test]
    fn the_behavior_is_applied_once_to_the_highest_proposal() {
        // A scale-up stabilization window keeps the lowest recommendation of its 3 minutes.
        // The two metrics take turns: one is at 400 while the other is at 10. Each metric's
        // lowest recommendation over the window is the low one, but the highest over the metrics
        // is high every minute: the HPA stabilizes that, and so must the combination.
        let s = spec(&[("a", 10.0), ("b", 10.0)], |s| {
            s.behavior.scale_up.stabilization_window_seconds = 180;
        });
        let a = history(30, |m| if m % 2 == 0 { 400.0 } else { 10.0 });
        let b = history(30, |m| if m % 2 == 1 { 400.0 } else { 10.0 });
        let mut several = Several::new(&s, ModelConfig::default());
        let decided = run(&mut several, &[Some(&a), Some(&b)], 30);
        let last = &decided.last().unwrap().decision;
        assert!(last.desired_replicas >= 40, "{last:?}");
        // Stabilized per metric and then combined, the count would stay low.
        let mut per_metric: Vec<Planner> = (0..2)
            .map(|i| Planner::new(s.for_metric(i).unwrap(), ModelConfig::default()))
            .collect();
        let mut current = 2;
        for m in 0..30 {
            current = per_metric
                .iter_mut()
                .zip([&a, &b])
                .map(|(p, h)| p.decide(Some(h), current, at(m)).desired_replicas)
                .max()
                .unwrap();
        }
        assert!(current < 40, "stabilized per metric: {current}");
    }

    #[test]
    fn a_metric_that_cannot_be_read_holds_the_count_but_does_not_stop_a_rise() {
        let s = spec(&[("requests", 10.0), ("queue", 5.0)], |_| {});
        let quiet_queue = history(20, |_| 5.0);
        let mut several = Several::new(&s, ModelConfig::default());
        let d = several.decide(&[None, Some(&quiet_queue)], 20, at(10));
        assert!(d.decision.desired_replicas >= 20, "{:?}", d.decision);
        assert!(!d.decision.metrics_available);
        assert_eq!(d.metrics[0].reason, Reason::Hold);
        assert_eq!(d.metrics[0].load, None);

        let busy_queue = history(20, |_| 400.0);
        let mut several = Several::new(&s, ModelConfig::default());
        let d = several.decide(&[None, Some(&busy_queue)], 20, at(10));
        assert!(d.decision.desired_replicas > 20, "{:?}", d.decision);
        assert_eq!(d.decision.metric.as_deref(), Some("queue"));

        // Neither readable: a hold, as with one metric.
        let mut several = Several::new(&s, ModelConfig::default());
        let d = several.decide(&[None, None], 20, at(10));
        assert_eq!(d.decision.reason, Reason::Hold);
        assert_eq!(d.decision.desired_replicas, 20);
    }

    #[test]
    fn a_metric_that_cannot_be_read_keeps_the_floor_its_forecast_gave_for_the_hold() {
        // Nine days of a daily wave on the queue (up to 60 replicas at 5 a replica) and a
        // lighter one on requests: the floor an HPA is given stands on the queue's forecast.
        let minutes = 9 * 1440 + 600;
        let wave = |m: i64| {
            let phase = (m % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
            150.0 - 140.0 * phase.cos()
        };
        let queue = history(minutes, wave);
        // Requests forecast too (a fifth of the wave, at most 6 replicas): a lower forecast that
        // must not replace the one the queue's hold stands on.
        let requests = history(minutes + 60, |m| wave(m) / 5.0);
        let s = spec(&[("requests", 10.0), ("queue", 5.0)], |_| {});
        let mut several = Several::new(&s, ModelConfig::default());
        // At 10:00, the queue near its noon peak (270, 54 replicas).
        let now = minutes - 1;
        let read = several.decide(&[Some(&requests), Some(&queue)], 30, at(now));
        let trusted_floor = read.decision.floor_replicas;
        assert!(
            trusted_floor > 10,
            "the queue's forecast gives the floor: {:?}",
            read.decision
        );
        // The queue is lost: within the hold, the floor stays; requests alone would give 6.
        for m in [1, 2, 10, 29] {
            let d = several.decide(&[Some(&requests), None], 30, at(now + m));
            assert!(
                d.decision.floor_replicas >= trusted_floor,
                "minute {m} of the outage: floor {} < {trusted_floor}",
                d.decision.floor_replicas
            );
        }
        // After the hold, the floor is what the metrics read forecast.
        let d = several.decide(&[Some(&requests), None], 30, at(now + 45));
        assert!(
            d.decision.floor_replicas < trusted_floor,
            "the hold ends: {:?}",
            d.decision
        );
    }

    #[test]
    fn a_changed_spec_gives_each_metric_its_own_load_per_replica() {
        let s = spec(&[("requests", 10.0), ("queue", 5.0)], |_| {});
        let h = history(20, |_| 100.0);
        let mut several = Several::new(&s, ModelConfig::default());
        several.decide(&[Some(&h), Some(&h)], 2, at(10));
        let renamed = spec(&[("queue", 5.0), ("jobs", 2.0)], |_| {});
        several.update_spec(&renamed);
        assert_eq!(several.names(), ["queue", "jobs"]);
        assert_eq!(several.planners()[0].spec().target_per_replica, 5.0);
        assert_eq!(several.planners()[1].spec().target_per_replica, 2.0);
    }
}
