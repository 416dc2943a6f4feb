//! What the CRD schema cannot check, checked here, and the spec in the form the planner works
//! with: durations as durations, cron expressions and time zones parsed, percentages as fractions.
//!
//! Every value a tenant writes is bounded, here and (where the schema can say it) in the CRD, by
//! the same `Limits`: the operator serves many tenants, and one object must not be able to make it
//! allocate, loop or overflow for everyone. The bounds are what real use needs, with room.

use chrono::{DateTime, Duration, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};

use super::bounds::{Limits, check_range, invalid, parse_bounds_or_zero, parse_time_zone};
use super::window::Window;
use super::{
    Calendar, PeakWindow, PolicyType, PredictiveScalerSpec, ScalingRules, Seasonality, SelectPolicy,
};
use crate::Error;

/// One direction of `behavior`, with its durations as durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    pub stabilization_window: Duration,
    pub policies: Vec<Policy>,
    pub select_policy: SelectPolicy,
    /// The spec set no policies: these are the direction's defaults. Down, also the default
    /// policy as written (20 % a minute, `selectPolicy: Max`): the CRD's schema fills it in
    /// where `scaleDown` is left out, so an object read from the API server has it written.
    pub default_policies: bool,
}

/// A rate limit: at most `value` pods or percent per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub type_: PolicyType,
    pub value: u32,
    pub period: Duration,
}

/// `behavior`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

/// One load metric, checked: `spec.metric`, or one of `spec.metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// `spec.metrics[].name`; `SINGLE_METRIC_NAME` for `spec.metric`.
    pub name: String,
    /// The PromQL query as written (the operator confines it to the namespace before sending).
    pub query: String,
    pub target_per_replica: f64,
    pub activation_threshold: f64,
}

/// The name `spec.metric` goes by where metrics are named (a backtest CSV's column, the
/// plugin's table): `spec.metrics[].name` are DNS labels, so it can be none of theirs only if a
/// spec has both, which validation refuses.
pub const SINGLE_METRIC_NAME: &str = "load";

/// A spec with every field checked and parsed: what the planner works with.
#[derive(Clone, Debug)]
pub struct ValidatedSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The load metrics, in the order written: `spec.metric` as a list of one, or
    /// `spec.metrics`. A planner decides for one of them (`for_metric`); several are combined
    /// by `planning::several`.
    pub metrics: Vec<Metric>,
    /// The load one replica carries: the first metric's (`metrics[0]`; for a spec with one
    /// metric, `spec.metric.targetPerReplica`). A `Planner` reads it for the metric it decides
    /// for (`for_metric`).
    pub target_per_replica: f64,
    /// The load above which a workload a quiet window scaled to zero is woken: the first
    /// metric's, as `target_per_replica`.
    pub activation_threshold: f64,
    pub history: Duration,
    pub seasonality: Vec<Seasonality>,
    pub lead_time: Duration,
    /// `leadTime: Auto`: the lead time is learned from the pods' start-up (`lead_time` is the
    /// default, 6 minutes, until the operator or the backtest sets it).
    pub lead_time_auto: bool,
    /// Fractions: 0.1 for 10 %.
    pub headroom: f64,
    /// The share of minutes that may be under-provisioned, as a fraction.
    pub max_underprovisioned: f64,
    pub peak_windows: Vec<Window>,
    pub calendar: Calendar,
    pub behavior: Behavior,
}

impl ValidatedSpec {
    /// This spec as the planner of its `index`th metric reads it: that metric's load per
    /// replica and activation threshold (every other field is shared). `None` past the last.
    pub fn for_metric(&self, index: usize) -> Option<ValidatedSpec> {
        let m = self.metrics.get(index)?;
        Some(ValidatedSpec {
            target_per_replica: m.target_per_replica,
            activation_threshold: m.activation_threshold,
            ..self.clone()
        })
    }

    /// Whether the spec has several metrics (`spec.metrics` with more than one).
    pub fn several_metrics(&self) -> bool {
        self.metrics.len() > 1
    }

    /// This spec with what the calendar's `.ics` files add (`ics::expand`), checked as the
    /// spec's own entries are: an occurrence whose floor is in force while a lower ceiling is
    /// is refused, naming both.
    pub fn with_ics(&self, extra: &crate::ics::IcsEntries) -> Result<ValidatedSpec, Error> {
        let calendar = self.calendar.with(extra);
        super::calendar::check_contradictions(&self.peak_windows, &calendar)?;
        Ok(ValidatedSpec {
            calendar,
            ..self.clone()
        })
    }

    /// Whether a peak window or an event allows scaling to zero (`minReplicas: 0`).
    pub fn allows_zero(&self) -> bool {
        self.peak_windows.iter().any(|w| w.scale_to_zero)
            || self.calendar.events.iter().any(|e| e.scale_to_zero)
    }

    /// The entries that allow scaling to zero, by field and name: `peak window "night"`.
    pub fn zero_entries(&self) -> Vec<String> {
        self.peak_windows
            .iter()
            .filter(|w| w.scale_to_zero)
            .map(|w| format!("peak window {:?}", w.name))
            .chain(
                self.calendar
                    .events
                    .iter()
                    .filter(|e| e.scale_to_zero)
                    .map(|e| format!("event {:?}", e.when.name)),
            )
            .collect()
    }

    /// This spec with no window or event allowing zero: what is decided for a target that an
    /// HPA (or KEDA) scales, which cannot run at zero. Their ceilings stay.
    pub fn without_zero(&self) -> ValidatedSpec {
        let mut spec = self.clone();
        for w in &mut spec.peak_windows {
            w.scale_to_zero = false;
        }
        for e in &mut spec.calendar.events {
            e.scale_to_zero = false;
        }
        spec
    }

    /// The fields the forecasts recorded for the calibration depend on: when one of them
    /// changes, the record no longer applies (the calendar's dates change what the seasonal
    /// history holds, and its multipliers the forecasts themselves).
    pub fn record_key(&self) -> impl PartialEq + use<> {
        (
            self.history,
            self.seasonality.clone(),
            self.lead_time,
            self.calendar.forecast_key(),
        )
    }
}

/// `scaleTargetRef`'s names go into request paths: each must be what Kubernetes calls such a
/// name (see `names`), or a `?` or a `/` in one would reach another object.
fn check_target(target: &super::ScaleTargetRef) -> Result<(), Error> {
    use super::names;
    type Check<'a> = (&'a str, Option<&'a str>, fn(&str) -> bool, &'a str);
    let checks: [Check; 4] = [
        (
            "spec.scaleTargetRef.apiVersion",
            Some(&target.api_version),
            names::is_api_version,
            "an API version such as apps/v1",
        ),
        (
            "spec.scaleTargetRef.kind",
            Some(&target.kind),
            names::is_kind,
            "a kind such as Deployment (letters and digits)",
        ),
        (
            "spec.scaleTargetRef.name",
            Some(&target.name),
            names::is_dns_subdomain,
            "an object name (lowercase letters, digits, '-' and '.')",
        ),
        (
            "spec.scaleTargetRef.namespace",
            target.namespace.as_deref(),
            names::is_dns_label,
            "a namespace name",
        ),
    ];
    for (field, value, is_name, what) in checks {
        if let Some(value) = value
            && !is_name(value)
        {
            let shown: String = value.chars().take(64).collect();
            return Err(invalid(field, format!("{shown:?} is not {what}")));
        }
    }
    Ok(())
}

impl PredictiveScalerSpec {
    /// Checks what the CRD schema cannot (cron expressions, time zones, duration bounds, the
    /// query's grammar) and what it can, for objects that did not pass through an API server
    /// (a backtest's manifest, an older CRD). The error names the offending field.
    pub fn validate(&self) -> Result<ValidatedSpec, Error> {
        let (min_replicas, max_replicas) = check_replicas(self.min_replicas, self.max_replicas)?;
        let metrics = check_metrics(self)?;
        let (target_per_replica, activation_threshold) = (
            metrics[0].target_per_replica,
            metrics[0].activation_threshold,
        );
        check_target(&self.scale_target_ref)?;
        let forecast = parse_forecast(&self.forecast)?;
        let max_underprovisioned = parse_objective(self.objective.max_underprovisioned_percent)?;
        let peak_windows = parse_peak_windows(&self.peak_windows)?;
        let calendar = super::calendar::parse(&self.calendar)?;
        super::calendar::check_contradictions(&peak_windows, &calendar)?;
        check_ceilings(
            &peak_windows,
            &calendar,
            &self.calendar.config_map_refs,
            min_replicas,
        )?;
        let behavior = parse_behavior(&self.behavior)?;
        Ok(ValidatedSpec {
            min_replicas,
            max_replicas,
            metrics,
            target_per_replica,
            activation_threshold,
            history: forecast.history,
            seasonality: self.forecast.seasonality.clone(),
            lead_time: forecast.lead_time,
            lead_time_auto: forecast.lead_time_auto,
            headroom: forecast.headroom,
            max_underprovisioned,
            peak_windows,
            calendar,
            behavior,
        })
    }
}

/// `maxReplicas` within what one object may ask for, and `minReplicas` at least one and at most
/// `maxReplicas`: `(minReplicas, maxReplicas)`.
fn check_replicas(min_replicas: i32, max_replicas: i32) -> Result<(u32, u32), Error> {
    let max_replicas = check_range("spec.maxReplicas", max_replicas, 1, Limits::MAX_REPLICAS)?;
    let min_replicas = check_range("spec.minReplicas", min_replicas, 1, max_replicas)?;
    Ok((min_replicas as u32, max_replicas as u32))
}

/// `spec.metric` or `spec.metrics` — exactly one — checked field by field: at most
/// `Limits::MAX_METRICS` (each is read, forecast and calibrated at every decision), names that
/// are DNS labels and unique (they key the status, the plugin's table and the backtest's CSV).
fn check_metrics(spec: &PredictiveScalerSpec) -> Result<Vec<Metric>, Error> {
    let one = |field: &str, name: &str, query: &str, per_replica: f64, threshold: f64| {
        Ok::<_, Error>(Metric {
            name: name.to_string(),
            // In the order the single metric was always checked, so its errors are as they were.
            target_per_replica: check_target_per_replica(
                &format!("{field}.targetPerReplica"),
                per_replica,
            )?,
            activation_threshold: check_activation_threshold(
                &format!("{field}.activationThreshold"),
                threshold,
            )?,
            query: check_query(&format!("{field}.query"), query).map(|_| query.to_string())?,
        })
    };
    match (spec.metric.is_unset(), spec.metrics.is_empty()) {
        (false, false) => Err(invalid(
            "spec.metrics",
            "set exactly one of spec.metric (one load metric) and spec.metrics (several, the \
             highest need wins), not both",
        )),
        (true, true) => Err(invalid(
            "spec.metric",
            "a load metric is needed: spec.metric (query and targetPerReplica), or spec.metrics \
             (up to 5, each with a name)",
        )),
        (false, true) => {
            let m = &spec.metric;
            Ok(vec![one(
                "spec.metric",
                SINGLE_METRIC_NAME,
                &m.query,
                m.target_per_replica,
                m.activation_threshold,
            )?])
        }
        (true, false) => {
            if spec.metrics.len() > Limits::MAX_METRICS {
                return Err(invalid(
                    "spec.metrics",
                    format!(
                        "has {} metrics; at most {} are allowed",
                        spec.metrics.len(),
                        Limits::MAX_METRICS
                    ),
                ));
            }
            let mut checked: Vec<Metric> = Vec::with_capacity(spec.metrics.len());
            for (i, m) in spec.metrics.iter().enumerate() {
                let field = format!("spec.metrics[{i}]");
                if !super::names::is_dns_label(&m.name) {
                    let shown: String = m.name.chars().take(64).collect();
                    return Err(invalid(
                        format!("{field}.name"),
                        format!(
                            "{shown:?} is not a name of lowercase letters, digits and '-' \
                             (at most 63)"
                        ),
                    ));
                }
                if let Some(j) = checked.iter().position(|c| c.name == m.name) {
                    return Err(invalid(
                        format!("{field}.name"),
                        format!(
                            "{:?} is also spec.metrics[{j}]'s name: names must be unique",
                            m.name
                        ),
                    ));
                }
                checked.push(one(
                    &field,
                    &m.name,
                    &m.query,
                    m.target_per_replica,
                    m.activation_threshold,
                )?);
            }
            Ok(checked)
        }
    }
}

/// The load one replica carries divides every load the planner turns into replicas: a finite
/// number of at least 0.001.
fn check_target_per_replica(field: &str, c: f64) -> Result<f64, Error> {
    if !(c.is_finite() && c >= 0.001) {
        return Err(invalid(
            field,
            format!("must be a number of at least 0.001, is {c}"),
        ));
    }
    Ok(c)
}

/// The load a quiet window wakes a workload on: a finite number between 0 and
/// `Limits::MAX_ACTIVATION_THRESHOLD`.
fn check_activation_threshold(field: &str, t: f64) -> Result<f64, Error> {
    if !(t.is_finite() && (0.0..=Limits::MAX_ACTIVATION_THRESHOLD).contains(&t)) {
        return Err(invalid(
            field,
            format!(
                "must be a number between 0 and {:e}, is {t}",
                Limits::MAX_ACTIVATION_THRESHOLD
            ),
        ));
    }
    Ok(t)
}

/// `spec.forecast`'s fields the planner reads as durations and fractions (its seasonality it
/// reads as written).
struct ParsedForecast {
    history: Duration,
    lead_time: Duration,
    lead_time_auto: bool,
    headroom: f64,
}

/// `spec.forecast`, checked field by field in the order they are written.
fn parse_forecast(forecast: &super::ForecastSpec) -> Result<ParsedForecast, Error> {
    let history = forecast.history.parse(
        "spec.forecast.history",
        Limits::MIN_HISTORY,
        Limits::MAX_HISTORY,
    )?;
    let lead_time_auto = forecast.lead_time.as_str() == super::AUTO_LEAD_TIME;
    let lead_time = if lead_time_auto {
        Limits::DEFAULT_LEAD_TIME
    } else {
        forecast.lead_time.parse(
            "spec.forecast.leadTime",
            Limits::MIN_LEAD_TIME,
            Limits::MAX_LEAD_TIME,
        )?
    };
    if forecast.seasonality.is_empty() || forecast.seasonality.len() > 2 {
        return Err(invalid(
            "spec.forecast.seasonality",
            "needs one or both of daily, weekly",
        ));
    }
    let percent = |field: &str, value: i32, min: i32, max: i32| {
        check_range(field, value, min, max).map(|v| v as f64 / 100.0)
    };
    let headroom = percent(
        "spec.forecast.headroomPercent",
        forecast.headroom_percent,
        0,
        500,
    )?;
    Ok(ParsedForecast {
        history,
        lead_time,
        lead_time_auto,
        headroom,
    })
}

/// `spec.objective.maxUnderprovisionedPercent` as a fraction, the share of minutes the
/// calibration aims to keep under-provisioned: between 0.01 % and 50 %.
fn parse_objective(objective: f64) -> Result<f64, Error> {
    if !(objective.is_finite() && (0.01..=50.0).contains(&objective)) {
        return Err(invalid(
            "spec.objective.maxUnderprovisionedPercent",
            format!("must be between 0.01 and 50, is {objective}"),
        ));
    }
    Ok(objective / 100.0)
}

/// `spec.peakWindows`, at most `Limits::MAX_PEAK_WINDOWS` of them so that one object cannot
/// make every decision search many schedules.
fn parse_peak_windows(windows: &[PeakWindow]) -> Result<Vec<Window>, Error> {
    if windows.len() > Limits::MAX_PEAK_WINDOWS {
        return Err(invalid(
            "spec.peakWindows",
            format!("at most {} windows", Limits::MAX_PEAK_WINDOWS),
        ));
    }
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| parse_window(&format!("spec.peakWindows[{i}]"), w))
        .collect()
}

/// No peak window's or event's `maxReplicas` below `spec.minReplicas`: a ceiling the spec's own
/// floor would always break is a mistake to name, not a bound to guess about.
fn check_ceilings(
    peak_windows: &[Window],
    calendar: &Calendar,
    config_map_refs: &[super::ConfigMapCalendar],
    min_replicas: u32,
) -> Result<(), Error> {
    // A schedule's ceiling below minReplicas contradicts the spec's own floor.
    let ceilings = peak_windows
        .iter()
        .enumerate()
        .map(|(i, w)| (format!("spec.peakWindows[{i}]"), w.max_replicas))
        .chain(
            calendar
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("spec.calendar.events[{i}]"), e.max_replicas)),
        )
        .chain(config_map_refs.iter().enumerate().map(|(i, r)| {
            (
                format!("spec.calendar.configMapRefs[{i}]"),
                r.max_replicas.map(|m| m.max(0) as u32),
            )
        }));
    for (field, max) in ceilings {
        if let Some(max) = max
            && max < min_replicas
        {
            return Err(invalid(
                format!("{field}.maxReplicas"),
                format!("{max} is below spec.minReplicas {min_replicas}"),
            ));
        }
    }
    Ok(())
}

/// `spec.behavior`, each direction with its defaults where the spec sets no policies. A
/// `scaleDown` that writes out the default policies is the default: the CRD's schema fills them
/// in where `scaleDown` is left out.
fn parse_behavior(behavior: &super::Behavior) -> Result<Behavior, Error> {
    let default_down = ScalingRules::default_down();
    let mut scale_down = parse_rules(
        "spec.behavior.scaleDown",
        &behavior.scale_down,
        &default_down.policies,
    )?;
    scale_down.default_policies |= behavior.scale_down.policies == default_down.policies
        && behavior.scale_down.select_policy == default_down.select_policy;
    Ok(Behavior {
        scale_up: parse_rules(
            "spec.behavior.scaleUp",
            &behavior.scale_up,
            &ScalingRules::hpa_default_up_policies(),
        )?,
        scale_down,
    })
}

/// The query must be PromQL, of bounded size and nesting. Checked with the parser Prometheus'
/// own grammar is ported to, so that a typo is reported on the object instead of as a failing
/// query every sync.
fn check_query(field: &str, query: &str) -> Result<(), Error> {
    if query.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if query.len() > Limits::MAX_QUERY_LENGTH {
        return Err(invalid(
            field,
            format!(
                "is {} bytes long; at most {} are allowed",
                query.len(),
                Limits::MAX_QUERY_LENGTH
            ),
        ));
    }
    // The parser is recursive descent: a deep nesting would overflow the stack of the thread
    // that parses it, and take the process down with it.
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for c in query.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > Limits::MAX_QUERY_NESTING {
        return Err(invalid(
            field,
            format!(
                "nests brackets {deepest} deep; at most {} are allowed",
                Limits::MAX_QUERY_NESTING
            ),
        ));
    }
    promql_parser::parser::parse(query)
        .map(|_| ())
        .map_err(|e| invalid(field, format!("is not valid PromQL: {}", e.trim())))
}

fn parse_window(field: &str, spec: &PeakWindow) -> Result<Window, Error> {
    let sub = |name: &str| format!("{field}.{name}");
    let time_zone = parse_time_zone(&sub("timeZone"), &spec.time_zone)?;
    if spec.schedule.len() > Limits::MAX_SCHEDULE_LENGTH {
        return Err(invalid(sub("schedule"), "is too long"));
    }
    // Five fields, as in a Kubernetes CronJob: seconds would only invite confusion here.
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(&spec.schedule)
        .map_err(|e| {
            invalid(
                sub("schedule"),
                format!(
                    "{:?} is not a cron expression (minute hour day-of-month month day-of-week): {}",
                    spec.schedule,
                    cron_field_problem(&spec.schedule).unwrap_or_else(|| e.to_string())
                ),
            )
        })?;
    // A pattern like `0 0 30 2 *` parses but never fires; refuse it rather than wait forever.
    let reference: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    if cron
        .find_next_occurrence(&reference.with_timezone(&time_zone), true)
        .is_err()
    {
        return Err(invalid(
            sub("schedule"),
            format!("{:?} never fires", spec.schedule),
        ));
    }
    let duration = spec
        .duration
        .parse(&sub("duration"), Limits::MIN_WINDOW, Limits::MAX_WINDOW)?;
    let (min_replicas, max_replicas, zero) =
        parse_bounds_or_zero(field, spec.min_replicas, spec.max_replicas)?;
    if min_replicas.is_none() && max_replicas.is_none() && !zero {
        return Err(invalid(
            sub("minReplicas"),
            "a peak window needs minReplicas, maxReplicas or both",
        ));
    }
    Ok(Window::new(
        spec.name.clone(),
        cron,
        time_zone,
        duration,
        min_replicas,
        max_replicas,
    )
    .scaling_to_zero(zero))
}

/// The five fields of a cron expression, with what each accepts.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
];

/// Which field of a five-field expression croner refuses, and why ("the hour field \"25\" is
/// out of its range 0-23"): croner's own message names no field. Each field is parsed alone,
/// the others `*`. `None` when the count of fields is not five, or no single field fails.
fn cron_field_problem(schedule: &str) -> Option<String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!("it has {} fields, not 5", fields.len()));
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
    fields.iter().enumerate().find_map(|(i, field)| {
        let mut alone = ["*"; 5];
        alone[i] = field;
        let e = parser.parse(&alone.join(" ")).err()?;
        let (name, range) = CRON_FIELDS[i];
        let cause = e.to_string();
        Some(if cause.contains("out of bounds") {
            format!("the {name} field {field:?} is out of its range {range}")
        } else {
            format!("the {name} field {field:?} is not valid ({range}, with `*`, `,`, `-` and `/`): {cause}")
        })
    })
}

/// `rules` of one direction; without policies, the direction's `default` policies apply (as the
/// API server defaults an HPA's).
fn parse_rules(
    field: &str,
    rules: &ScalingRules,
    default: &[super::ScalingPolicy],
) -> Result<Rules, Error> {
    let seconds = check_range(
        &format!("{field}.stabilizationWindowSeconds"),
        rules.stabilization_window_seconds,
        0,
        3600,
    )?;
    if rules.policies.len() > Limits::MAX_POLICIES {
        return Err(invalid(
            format!("{field}.policies"),
            format!("at most {} policies", Limits::MAX_POLICIES),
        ));
    }
    let written = if rules.policies.is_empty() {
        default
    } else {
        &rules.policies
    };
    let policies = written
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("{field}.policies[{i}]");
            let max = match p.type_ {
                PolicyType::Pods => Limits::MAX_POLICY_PODS,
                PolicyType::Percent => Limits::MAX_POLICY_PERCENT,
            };
            let value = check_range(&format!("{at}.value"), p.value, 1, max)?;
            let period = check_range(&format!("{at}.periodSeconds"), p.period_seconds, 1, 1800)?;
            Ok(Policy {
                type_: p.type_,
                value: value as u32,
                period: Duration::seconds(period.into()),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Rules {
        stabilization_window: Duration::seconds(seconds.into()),
        policies,
        select_policy: rules.select_policy,
        default_policies: rules.policies.is_empty(),
    })
}
