//! The planner: everything that decides for one PredictiveScaler, and the memory it keeps.
//!
//! The operator (once per reconcile) and the backtest (once per simulated minute) drive the same
//! planner with the same history shape: the load as Prometheus returns it at each minute. The
//! planner works on the minute grid: a decision at 12:00:40 is the decision of minute 12:00, a
//! second one within the minute revises it, and the forecast's calibration happens at fixed
//! minutes (multiples of its interval), from the history alone. So what a backtest says a spec
//! would have done is what the operator does with it, after a restart or a failover too.

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::calibration::{self, Calibrator, Objective};
use super::forecast::{self, Adjustments, COARSE_BLOCK, History, ModelConfig, View};
use super::plan::{self, Decision, ExpectedEvent, Inputs, Memory};
use super::{behavior, schedule};
use prescaler_api::ValidatedSpec;

/// How much history a planner reads: `span` up to now, the newest `fine` of it minute by minute
/// (older history only through whole `COARSE_BLOCK`s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HistoryNeeds {
    pub span: Duration,
    pub fine: Duration,
}

/// Decides for one PredictiveScaler, minute by minute.
#[derive(Clone, Debug)]
pub struct Planner {
    spec: ValidatedSpec,
    model: ModelConfig,
    /// What the spec's calendar changes in the forecasts.
    adjust: Adjustments,
    calibrator: Calibrator,
    memory: Memory,
    /// The last decision: its minute, the replica count it was made for, and the decision.
    last: Option<(DateTime<Utc>, u32, Decision)>,
}

/// The first instant a view at `t` may read for a spec with `history`: aligned to the coarse
/// block, as the operator's history cache keeps blocks whole.
pub fn history_start(t: DateTime<Utc>, history: Duration) -> DateTime<Utc> {
    let from = t - history;
    from.duration_trunc(COARSE_BLOCK).unwrap_or(from)
}

/// What the calibration aims for, from a spec.
fn objective(spec: &ValidatedSpec) -> Objective {
    Objective {
        max_underprovisioned: spec.max_underprovisioned,
        target_per_replica: spec.target_per_replica,
        min_replicas: spec.min_replicas,
        max_replicas: spec.max_replicas,
        lead: spec.lead_time,
        stabilization: spec.behavior.scale_down.stabilization_window,
    }
}

/// What `history` shows at `t` for a spec with `span` of history.
fn view_at(history: &History, t: DateTime<Utc>, span: Duration) -> Option<View<'_>> {
    history.view_at(t).map(|v| v.since(history_start(t, span)))
}

/// The decision `last` made in `minute`, when it is asked again within the minute by a workload
/// that is where the decision left it (`desired`) or still where it was: the same decision, and
/// the memory untouched. Only a change by someone else revises the minute's decision.
pub(crate) fn repeated<T>(
    last: &Option<(DateTime<Utc>, u32, T)>,
    minute: DateTime<Utc>,
    current_replicas: u32,
    desired: impl Fn(&T) -> u32,
) -> Option<&T> {
    let (at, was, d) = last.as_ref()?;
    (*at == minute && (current_replicas == *was || current_replicas == desired(d))).then_some(d)
}

impl Planner {
    pub fn new(spec: ValidatedSpec, model: ModelConfig) -> Self {
        let calibrator = Calibrator::new(forecast::predictors_for(&spec.seasonality));
        let memory = Memory::with_zero_cooldown(model.zero_cooldown);
        Self {
            adjust: Adjustments::new(&spec.calendar),
            spec,
            model,
            calibrator,
            memory,
            last: None,
        }
    }

    pub fn spec(&self) -> &ValidatedSpec {
        &self.spec
    }

    /// Takes a changed spec. The forecasts recorded for the calibration are rebuilt from the
    /// history when the change makes them meaningless (the history, the seasonality, the lead
    /// time, or a calendar edit within what they read); any other change (the objective, the
    /// bounds, the metric's unit, a calendar edit outside what the record read — declaring next
    /// week's holiday) recalibrates from the record at the next decision, which is what a
    /// rebuild would give. The behaviour's records are kept, as the HPA keeps them across a spec
    /// change.
    pub fn update_spec(&mut self, spec: ValidatedSpec) {
        if spec.record_key() != self.spec.record_key() {
            let adjust = Adjustments::new(&spec.calendar);
            let same_forecasts = (spec.history, &spec.seasonality, spec.lead_time)
                == (
                    self.spec.history,
                    &self.spec.seasonality,
                    self.spec.lead_time,
                );
            // What the recorded forecasts read of the calendar: the past periods before the
            // first (the weekly profile's reach, with its smoothing and level windows), up to
            // the last one's lead time.
            let reach = Duration::weeks(self.model.weekly_periods as i64)
                .max(Duration::days(self.model.daily_periods as i64))
                + self.model.smoothing_half_width
                + self.model.level_window
                + COARSE_BLOCK * 2;
            let unaffected = self.calibrator.recorded().is_some_and(|(first, last)| {
                adjust.agree_within(
                    &self.adjust,
                    first - reach,
                    last + spec.lead_time + self.model.smoothing_half_width + COARSE_BLOCK,
                )
            });
            if same_forecasts && unaffected {
                self.calibrator.invalidate();
            } else {
                self.calibrator = Calibrator::new(forecast::predictors_for(&spec.seasonality));
            }
            self.adjust = adjust;
        } else if self.objective() != objective(&spec) {
            self.calibrator.invalidate();
        }
        self.spec = spec;
        self.last = None;
    }

    fn objective(&self) -> Objective {
        objective(&self.spec)
    }

    /// How much history, up to now, a calibration reads, and how much of it at one-minute steps
    /// (`calibrates_at`: at a start, at each boundary, after a change of spec). The span: as far
    /// back as a forecast reads (`forecast::reach`; less if the spec's history is shorter)
    /// before the oldest minute the calibration replays (its window, a lead time, the
    /// stabilization window and an interval). At one minute: the minutes the calibration scores
    /// and the forecasts it replays read at full resolution (`forecast::COARSE_AFTER` before
    /// each, with the level and smoothing windows) — so that a restarted operator rebuilds the
    /// same calibration as one that ran all along.
    pub fn history_needs(&self) -> HistoryNeeds {
        let replayed = self.model.calibration_window
            + self.spec.lead_time
            + self.spec.behavior.scale_down.stabilization_window
            + self.model.recalibrate_interval;
        self.needs_replaying(replayed)
    }

    /// What a decision between two calibrations reads: the forecasts of the minutes since the
    /// last boundary (at most an interval of them, after a pause) and the live load. A week
    /// less than `history_needs`: the operator holds this much for each scaler, and reads the
    /// rest again from its source only to calibrate.
    pub fn resting_needs(&self) -> HistoryNeeds {
        self.needs_replaying(self.model.recalibrate_interval)
    }

    /// The history forecasts of the last `replayed` minutes read.
    fn needs_replaying(&self, replayed: Duration) -> HistoryNeeds {
        let span = self.spec.history.min(forecast::reach(&self.model)) + replayed + COARSE_BLOCK;
        let fine = replayed
            + forecast::COARSE_AFTER
            + self.model.level_window
            + self.model.smoothing_half_width
            + COARSE_BLOCK * 2;
        HistoryNeeds {
            span,
            fine: fine.min(span),
        }
    }

    /// Whether the decision at `now` calibrates, and so reads `history_needs` rather than
    /// `resting_needs`.
    pub fn calibrates_at(&self, now: DateTime<Utc>) -> bool {
        self.calibrator.calibrates_at(&self.model, now)
    }

    /// What the peak windows and the calendar ask for at `minute`, for a workload at
    /// `current_replicas`: the one place the schedule is read, for the decision now
    /// and for the outlook's future minutes alike. A floor is asked for a lead time before it
    /// opens, and earlier by as many minutes as the scale-up rules need to get there from the
    /// current count.
    pub fn scheduled_at(
        &self,
        minute: DateTime<Utc>,
        current_replicas: u32,
    ) -> schedule::Scheduled {
        let spec = &self.spec;
        // The scale-up rules take at most an hour to reach any floor (`minutes_to_reach`).
        let highest = schedule::highest_floor(
            &spec.peak_windows,
            &spec.calendar,
            minute,
            spec.lead_time + Duration::minutes(60),
        );
        let ramp = behavior::minutes_to_reach(&spec.behavior.scale_up, current_replicas, highest)
            .saturating_sub(1);
        schedule::scheduled(
            &spec.peak_windows,
            &spec.calendar,
            minute,
            spec.lead_time + Duration::minutes(ramp.into()),
        )
    }

    /// The load a declared surge (an event with a `loadMultiplier` above 1) brings within the
    /// lead time: the seasonal forecasts, which already carry the multiplier, or without them
    /// the live load as the routine has it, times the multiplier.
    pub(super) fn expected_event(
        &self,
        minute: DateTime<Utc>,
        load: Option<f64>,
        daily: f64,
        weekly: f64,
    ) -> Option<ExpectedEvent> {
        let calendar = &self.spec.calendar;
        let (name, multiplier) = schedule::surge_within(calendar, minute, self.spec.lead_time)?;
        let forecast = [daily, weekly]
            .into_iter()
            .filter(|f| f.is_finite())
            .reduce(f64::max);
        let load =
            forecast.or_else(|| Some(load? / self.adjust.multiplier_at(minute) * multiplier))?;
        Some(ExpectedEvent {
            name: name.to_string(),
            load,
        })
    }

    /// What the spec's calendar changes in the forecasts.
    pub fn adjustments(&self) -> &Adjustments {
        &self.adjust
    }

    /// The model's tunables.
    pub fn model(&self) -> &ModelConfig {
        &self.model
    }

    /// The calibration in use (from the last `decide`), once there is one.
    pub fn calibration(&self) -> Option<&calibration::Calibration> {
        self.calibrator.calibration()
    }

    /// The daily and weekly forecasts recorded for the minute of `t` (NaN where none).
    pub fn recorded_forecasts(&self, t: DateTime<Utc>) -> (f64, f64) {
        self.calibrator.forecasts_at(t)
    }

    /// The predictors the spec's seasonalities ask for.
    pub fn predictors(&self) -> &[forecast::Predictor] {
        self.calibrator.predictors()
    }

    /// What `decide` remembers between calls, for a caller that plays decisions ahead on a copy
    /// (`outlook`) without touching the planner's own.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The last decision, its minute and the replica count it was made for.
    pub fn last_decision(&self) -> Option<(DateTime<Utc>, u32, &Decision)> {
        self.last.as_ref().map(|(t, r, d)| (*t, *r, d))
    }

    /// What `history` shows at `t` to this planner (no older than the spec's history).
    pub fn view<'h>(&self, history: &'h History, t: DateTime<Utc>) -> Option<View<'h>> {
        view_at(history, t, self.spec.history)
    }

    /// What this planner's metric asks for at `minute` (`plan::propose`), and how far back the
    /// history it read reaches: the calibration advanced, the live load read, the forecasts
    /// and the schedule looked up. `decide` shapes it; with several metrics `several` shapes
    /// the highest of the planners' proposals once. Advances the calibration and the quiet
    /// term's memory: call it once a minute, as `decide`.
    pub fn propose(
        &mut self,
        history: Option<&History>,
        current_replicas: u32,
        minute: DateTime<Utc>,
    ) -> (plan::Proposal, Duration) {
        let spec = &self.spec;
        let span = spec.history;
        let (mut live, mut observed_history) =
            (calibration::LiveReading::default(), Duration::zero());
        if let Some(h) = history {
            let objective = objective(spec);
            self.calibrator.advance(
                &self.model,
                h,
                |t| view_at(h, t, span),
                minute,
                &objective,
                &self.adjust,
            );
            if let Some(view) = view_at(h, minute, span) {
                observed_history = view.observed_span();
                live = calibration::live_reading(&self.model, view, minute);
            }
        }
        let (daily, weekly) = self.calibrator.forecasts_at(minute);
        let scheduled = self.scheduled_at(minute, current_replicas);
        let load = live.load;
        let event = self.expected_event(minute, load, daily, weekly);
        let proposal = plan::propose(
            &self.spec,
            Inputs {
                load,
                sustained: live.sustained,
                daily,
                weekly,
                calibration: self.calibrator.calibration(),
                scheduled: &scheduled,
                event: event.as_ref(),
                current_replicas,
                held_zero: live.held_zero,
            },
            &mut self.memory,
            minute,
        );
        (proposal, observed_history)
    }

    /// The memory `decide` keeps, for `several`, which shapes the planners' proposals itself
    /// and tells each what an outage is to hold.
    pub(crate) fn memory_mut(&mut self) -> &mut Memory {
        &mut self.memory
    }

    /// Decides at `now` for a workload at `current_replicas`, from `history`: the metric as
    /// Prometheus returns it at each minute up to now, `None` when it could not be read.
    pub fn decide(
        &mut self,
        history: Option<&History>,
        current_replicas: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
        if let Some(d) = repeated(&self.last, minute, current_replicas, |d| d.desired_replicas) {
            return d.clone();
        }
        let (proposal, observed_history) = self.propose(history, current_replicas, minute);
        let mut decision = match proposal {
            plan::Proposal::Hold(d) => *d,
            plan::Proposal::Ask(asked) => plan::shape(&self.spec, *asked, &mut self.memory, minute),
        };
        decision.observed_history = observed_history;
        self.last = Some((minute, current_replicas, decision.clone()));
        decision
    }
}
