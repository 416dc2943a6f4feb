//! The `PredictiveScaler` custom resource (`prescaler.dev/v1alpha1`): spec, status, defaults,
//! and the semantic checks that the CRD schema cannot express.
//!
//! Field names follow the HorizontalPodAutoscaler (`scaleTargetRef`, `minReplicas`, `behavior`,
//! `stabilizationWindowSeconds`, `policies`) so that the resource reads like one SREs already know.
//! Every doc comment becomes the field's description in the CRD, and so what `kubectl explain` shows.

//!
//! The pure spec types, `ValidatedSpec`, the calendar and the windows build without kube and
//! k8s-openapi (prescaler-planning uses them so). The `resource` feature adds the Kubernetes
//! resource: the `PredictiveScaler` CustomResource, the CEL rules its CRD carries (on the same
//! types: `KubeSchema` instead of `JsonSchema`), the status with its Conditions, and `crd_yaml`.

mod bounds;
mod calendar;
mod duration;
mod error;
pub mod ics;
pub mod names;
mod validate;
mod window;

pub use bounds::Limits;
pub use calendar::{Calendar, Dated, Event};
pub use duration::{SpecDuration, format as format_duration, parse as parse_duration};
pub use error::Error;
pub use validate::{
    Behavior as ValidBehavior, Metric, Policy, Rules, SINGLE_METRIC_NAME, ValidatedSpec,
};
pub use window::Window;

#[cfg(feature = "resource")]
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
#[cfg(feature = "resource")]
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// PredictiveScaler scales a workload ahead of its load: it combines the live load from Prometheus
/// with the daily and weekly patterns learned from its history, so that enough replicas are ready
/// when a spike arrives, and holds minimum replicas during known peak windows.
// kube's `printcolumn(...)` entries repeat `type_ = ...` by design; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[cfg_attr(feature = "resource", derive(CustomResource, KubeSchema))]
#[cfg_attr(not(feature = "resource"), derive(JsonSchema))]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "resource",
    kube(
        group = "prescaler.dev",
        version = "v1alpha1",
        kind = "PredictiveScaler",
        plural = "predictivescalers",
        shortname = "psc",
        category = "autoscaling",
        namespaced,
        status = "PredictiveScalerStatus",
        printcolumn(
            name = "Target",
            type_ = "string",
            json_path = ".spec.scaleTargetRef.name",
            description = "The workload being scaled"
        ),
        printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
        printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
        printcolumn(
            name = "Current",
            type_ = "integer",
            json_path = ".status.currentReplicas",
            description = "Replicas the target has now"
        ),
        printcolumn(
            name = "Desired",
            type_ = "integer",
            json_path = ".status.desiredReplicas",
            description = "Replicas prescaler asks for"
        ),
        printcolumn(
            name = "Forecast",
            type_ = "integer",
            json_path = ".status.forecastReplicas",
            description = "Replicas the forecast needs within the lead time"
        ),
        printcolumn(
            name = "Reason",
            type_ = "string",
            json_path = ".status.reason",
            description = "Which term decided the desired replicas",
            priority = 1
        ),
        printcolumn(
            name = "Schedule",
            type_ = "string",
            json_path = ".status.schedule",
            description = "What the peak windows and the calendar hold now",
            priority = 1
        ),
        printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[cfg_attr(feature = "resource", x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(kube::core::Reason::FieldValueInvalid).field_path(".minReplicas"),
    validation = Rule::new("has(self.metric) != has(self.metrics)").message("set exactly one of metric (one load metric) and metrics (several, the highest need wins)").reason(kube::core::Reason::FieldValueRequired).field_path(".metric")
))]
#[serde(rename_all = "camelCase")]
pub struct PredictiveScalerSpec {
    /// The workload to scale. It must be in the PredictiveScaler's own namespace and expose the
    /// `/scale` subresource (Deployment, StatefulSet, ReplicaSet, or any custom resource with `/scale`).
    pub scale_target_ref: ScaleTargetRef,

    /// The lower bound for the replica count. prescaler never asks for fewer.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub min_replicas: i32,

    /// The upper bound for the replica count. prescaler never asks for more, whatever the forecast says.
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub max_replicas: i32,

    /// `Auto` scales the target; `ForecastOnly` computes and publishes the forecast and the decision
    /// in status and metrics but never writes to the target (a safe trial); `Off` does nothing.
    #[serde(default)]
    pub mode: Mode,

    /// The load metric: the total load on the workload and how much of it one replica should
    /// carry. Exactly one of `metric` and `metrics`.
    // Absent (`MetricSpec::is_unset`) when `metrics` is written. Not an `Option`: a spec of one
    // metric keeps its shape; what is read and decided on is `ValidatedSpec::metrics`.
    #[serde(default, skip_serializing_if = "MetricSpec::is_unset")]
    #[schemars(schema_with = "metric_schema")]
    pub metric: MetricSpec,

    /// Several load metrics (at most 5), each forecast and calibrated on its own: the replicas
    /// asked for are the highest any of them needs, as the HorizontalPodAutoscaler does with
    /// several metrics. Each has a `name` (unique; the backtest CSV's column for its load).
    /// Exactly one of `metric` and `metrics`. A metric that cannot be read keeps the count from
    /// going down (the others may still raise it); `status.metrics` shows what each one needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = Limits::MAX_METRICS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<NamedMetricSpec>,

    /// How the seasonal forecast is learned and how far ahead it provisions.
    #[serde(default)]
    pub forecast: ForecastSpec,

    /// The availability asked for. prescaler sets its own margins, and chooses between its
    /// forecasts and the live load, to meet it at the least cost, by replaying its last week.
    #[serde(default)]
    pub objective: ObjectiveSpec,

    /// Recurring windows with a replica floor (a weekday lunch rush: prescaler reaches the floor
    /// `forecast.leadTime` before each opening), a replica ceiling (quiet hours, a cost cap at
    /// night, a freeze: it holds while the window is open), or `minReplicas: 0`: quiet hours in
    /// which the workload may be scaled to zero while there is no load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = Limits::MAX_PEAK_WINDOWS))]
    pub peak_windows: Vec<PeakWindow>,

    /// Dated exceptions to the weekly routine: holidays and outages to leave out (`exclusions`),
    /// and dated events to prepare for (`events`, e.g. a sale with three times the usual load).
    #[serde(default, skip_serializing_if = "CalendarSpec::is_empty")]
    pub calendar: CalendarSpec,

    /// Stabilization and rate limits for scaling up and down, in the HorizontalPodAutoscaler's terms.
    #[serde(default)]
    pub behavior: Behavior,
}

/// The CustomResourceDefinition as YAML, as `crds/predictivescaler.yaml` holds it.
#[cfg(feature = "resource")]
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_yaml_ng::to_string(&PredictiveScaler::crd())
        .unwrap_or_else(|e| format!("# the CRD could not be serialized: {e}\n"))
}

impl PredictiveScalerSpec {
    /// A spec with every default, a load per replica and a maximum: what a backtest without a
    /// manifest replays (its target and query are placeholders).
    pub fn new(target_per_replica: f64, max_replicas: i32) -> Self {
        Self {
            scale_target_ref: ScaleTargetRef {
                api_version: default_target_api_version(),
                kind: "Deployment".into(),
                name: "backtest".into(),
                namespace: None,
            },
            min_replicas: default_min_replicas(),
            max_replicas,
            mode: Mode::default(),
            metric: MetricSpec {
                query: "load".into(),
                target_per_replica,
                activation_threshold: 0.0,
            },
            metrics: Vec::new(),
            forecast: ForecastSpec::default(),
            objective: ObjectiveSpec::default(),
            peak_windows: Vec::new(),
            calendar: CalendarSpec::default(),
            behavior: Behavior::default(),
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}

/// The workload to scale, as in the HorizontalPodAutoscaler's `scaleTargetRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    /// API version of the target, e.g. `apps/v1`.
    #[serde(default = "default_target_api_version")]
    #[schemars(length(max = 253), regex(pattern = names::API_VERSION_PATTERN))]
    pub api_version: String,
    /// Kind of the target, e.g. `Deployment` or `StatefulSet`.
    #[schemars(length(min = 1, max = 63), regex(pattern = names::KIND_PATTERN))]
    pub kind: String,
    /// Name of the target, in the PredictiveScaler's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = names::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Only the PredictiveScaler's own namespace is allowed (the operator's permission to scale
    /// must not become a tenant's); a target elsewhere is refused with a condition. Optional: it
    /// exists so that a manifest naming another namespace is refused, not silently retargeted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = names::DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// `Deployment checkout`: the target as Events, conditions and `kubectl prescaler` name it.
impl std::fmt::Display for ScaleTargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

fn default_target_api_version() -> String {
    "apps/v1".into()
}

/// What prescaler does with its decision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Mode {
    /// Scale the target.
    #[default]
    Auto,
    /// Compute and publish everything, write nothing to the target.
    ForecastOnly,
    /// Do nothing.
    Off,
}

/// The load metric.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// A PromQL expression for the total load on the workload, returning one series,
    /// e.g. `sum(rate(http_requests_total{service="checkout"}[2m]))`.
    #[schemars(length(min = 1, max = Limits::MAX_QUERY_LENGTH))]
    pub query: String,
    /// The load one replica should carry, in the query's unit (e.g. 80 requests/s).
    /// The replicas needed for a load are `ceil(load / targetPerReplica)`.
    #[schemars(range(min = 0.001))]
    pub target_per_replica: f64,
    /// Where a peak window or an event allows `minReplicas: 0`: the load, in the query's unit,
    /// at or below which the workload may be scaled to zero, and above which (the live load, or
    /// the forecast within the lead time) it is woken at once. `0`, the default, means any load
    /// wakes it. As KEDA's `activationThreshold`: active when the load is above it. Between 0
    /// and 1e15; read only while such a window is in force.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0.0, max = Limits::MAX_ACTIVATION_THRESHOLD))]
    pub activation_threshold: f64,
}

impl Default for MetricSpec {
    /// The metric of a spec that writes `metrics` instead: unset (`is_unset`), never serialized.
    fn default() -> Self {
        Self {
            query: String::new(),
            target_per_replica: 0.0,
            activation_threshold: 0.0,
        }
    }
}

impl MetricSpec {
    /// Not written: the spec has `metrics` (or neither, which validation refuses).
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// `spec.metric`'s schema: `MetricSpec`'s, without the default that `#[serde(default)]` would
/// put in it (the API server would then write an empty `metric` beside `metrics`).
fn metric_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<MetricSpec>()
}

/// One of several load metrics (`spec.metrics[]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedMetricSpec {
    /// A name for the metric, unique in the list: shown in `status.reason`'s explanation, per
    /// metric in status and `kubectl prescaler why`, and the backtest CSV's column for its load.
    /// A DNS label (lowercase letters, digits and `-`), e.g. `requests` or `queue-depth`.
    #[schemars(length(min = 1, max = 63), regex(pattern = names::DNS_LABEL_PATTERN))]
    pub name: String,
    /// A PromQL expression for the total load on the workload in this metric, returning one
    /// series, e.g. `sum(kafka_consumergroup_lag{group="checkout"})`.
    #[schemars(length(min = 1, max = Limits::MAX_QUERY_LENGTH))]
    pub query: String,
    /// The load of this metric one replica should carry, in the query's unit. The replicas this
    /// metric needs are `ceil(load / targetPerReplica)`.
    #[schemars(range(min = 0.001))]
    pub target_per_replica: f64,
    /// As `metric.activationThreshold`, for this metric: the workload is scaled to zero in a
    /// quiet window only while every metric is at or below its threshold, and woken when any
    /// goes above it. Between 0 and 1e15.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0.0, max = Limits::MAX_ACTIVATION_THRESHOLD))]
    pub activation_threshold: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// How the forecast is learned and used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastSpec {
    /// How much history to learn the seasonal pattern from, between `1h` and `35d`. At least one
    /// full period of the longest seasonality is needed before the forecast is used; two or more
    /// make it robust (four weekly periods are the most that is read).
    #[serde(default = "default_history")]
    pub history: SpecDuration,

    /// The seasonal periods to learn. `weekly` also captures the daily cycle of each weekday.
    #[serde(default = "default_seasonality")]
    #[schemars(length(min = 1, max = 2))]
    pub seasonality: Vec<Seasonality>,

    /// How far ahead to provision: replicas for the load forecast up to this far in the future are
    /// asked for now. Set it to the workload's pod start-up time plus the metric's delay; between
    /// `1m` and `6h`. `Auto` learns it: the 90th percentile of the time the target's pods of the
    /// last 7 days took from creation to Ready, plus a minute of metric delay, rounded up to a
    /// whole minute, between `1m` and `30m` (`6m` until 5 pods have been seen; a new figure is
    /// taken only once it has persisted for 10 minutes, as each change restarts the calibration).
    #[serde(default = "default_lead_time")]
    #[schemars(schema_with = "lead_time_schema")]
    pub lead_time: SpecDuration,

    /// A fixed safety margin on top of everything else, in percent. prescaler sets its own margins
    /// to meet `objective`; this is extra, for a reason prescaler cannot see.
    #[serde(default = "default_headroom_percent")]
    #[schemars(range(min = 0, max = 500))]
    pub headroom_percent: i32,
}

impl Default for ForecastSpec {
    fn default() -> Self {
        Self {
            history: default_history(),
            seasonality: default_seasonality(),
            lead_time: default_lead_time(),
            headroom_percent: default_headroom_percent(),
        }
    }
}

fn default_history() -> SpecDuration {
    "28d".into()
}
fn default_seasonality() -> Vec<Seasonality> {
    vec![Seasonality::Daily, Seasonality::Weekly]
}
fn default_lead_time() -> SpecDuration {
    "6m".into()
}

/// `spec.forecast.leadTime`'s value that learns the lead time from the pods.
pub const AUTO_LEAD_TIME: &str = "Auto";

/// A duration, or `Auto`.
fn lead_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let duration = duration::PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    schemars::json_schema!({
        "type": "string",
        "pattern": format!("^({AUTO_LEAD_TIME}|{duration})$"),
        "minLength": 2,
        "maxLength": duration::MAX_LENGTH,
    })
}
fn default_headroom_percent() -> i32 {
    0
}

/// The availability objective.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSpec {
    /// The share of minutes, in percent, in which the workload may have fewer ready replicas than
    /// its load needs (between 0.01 and 50). 0.1 is about 10 minutes a week. Lower costs more.
    #[serde(default = "default_max_underprovisioned_percent")]
    #[schemars(range(min = 0.01, max = 50.0))]
    pub max_underprovisioned_percent: f64,
}

impl Default for ObjectiveSpec {
    fn default() -> Self {
        Self {
            max_underprovisioned_percent: default_max_underprovisioned_percent(),
        }
    }
}

fn default_max_underprovisioned_percent() -> f64 {
    0.1
}

/// A seasonal period.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Seasonality {
    /// A 24-hour cycle.
    Daily,
    /// A 7-day cycle.
    Weekly,
}

impl Seasonality {
    pub fn period(self) -> chrono::Duration {
        match self {
            Seasonality::Daily => chrono::Duration::days(1),
            Seasonality::Weekly => chrono::Duration::weeks(1),
        }
    }
}

/// A recurring window with a replica floor, a replica ceiling, or both.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "resource", derive(KubeSchema))]
#[cfg_attr(not(feature = "resource"), derive(JsonSchema))]
#[cfg_attr(feature = "resource", x_kube(cel))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("has(self.minReplicas) || has(self.maxReplicas)").message("a peak window needs minReplicas, maxReplicas or both").reason(kube::core::Reason::FieldValueRequired).field_path(".minReplicas")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(kube::core::Reason::FieldValueInvalid).field_path(".minReplicas")))]
#[serde(rename_all = "camelCase")]
pub struct PeakWindow {
    /// A name for the window, shown in status and Events when it decides the replica count.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// When the window opens: a cron expression (`minute hour day-of-month month day-of-week`)
    /// in `timeZone`, e.g. `0 11 * * 1-5` for 11:00 on weekdays. On a day when the clock springs
    /// forward past the time, the window opens right after the jump; when the clock falls back,
    /// it opens once, at the first occurrence. An opening inside a calendar exclusion
    /// is skipped for its floor (a ceiling holds).
    #[schemars(length(min = 1, max = Limits::MAX_SCHEDULE_LENGTH))]
    pub schedule: String,
    /// How long the window stays open, in elapsed time (`3h` is three hours even across a DST
    /// change); between `1m` and `7d`.
    pub duration: SpecDuration,
    /// The IANA time zone of the schedule, e.g. `Europe/Berlin`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = Limits::MAX_TIME_ZONE_LENGTH))]
    pub time_zone: String,
    /// The minimum replica count while the window is open (still capped by `maxReplicas`),
    /// reached `forecast.leadTime` before it opens. `0` makes it a quiet window instead: while
    /// it is open the workload may be scaled to zero once the live load and the forecast within
    /// the lead time are at or below `metric.activationThreshold` (for the scale-down
    /// stabilization window, and at least 5 minutes), and it is woken at once when either goes
    /// above it, and `forecast.leadTime` before the window closes. Only where prescaler writes
    /// the target's `/scale` (an HPA cannot run at zero: refused there, the floor kept at 1 or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = Limits::MAX_REPLICAS))]
    pub min_replicas: Option<i32>,
    /// The maximum replica count while the window is open: quiet hours, a cost ceiling at night,
    /// a freeze (with `minReplicas` equal to it). It wins over every floor and the forecast, and
    /// holds only while the window is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub max_replicas: Option<i32>,
}

/// Dated exceptions: holidays, outages and events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalendarSpec {
    /// The IANA time zone of dates and local times that name none, e.g. `America/New_York`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = Limits::MAX_TIME_ZONE_LENGTH))]
    pub time_zone: String,
    /// Days or intervals that are not like the rest of the week: holidays, outages, a migration.
    /// Peak windows' floors do not apply in them (their ceilings do), and their load is left out
    /// of the seasonal history and of the margins' calibration, so that one odd day does not
    /// distort the following weeks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = Limits::MAX_EXCLUSIONS))]
    pub exclusions: Vec<Exclusion>,
    /// Dated windows to prepare for: a replica floor (reached `forecast.leadTime` before the
    /// start, as for a peak window), a ceiling, and/or the load expected as a multiple of the
    /// usual. Their load is left out of the seasonal history too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = Limits::MAX_EVENTS))]
    pub events: Vec<CalendarEvent>,
    /// iCalendar (`.ics`) files kept in ConfigMaps of the PredictiveScaler's own namespace: each
    /// VEVENT (its RRULE, RDATE and EXDATE honoured) becomes an exclusion, or an event with the
    /// replicas and load multiplier written here (an `.ics` has none). Read at most every 5
    /// minutes; a ConfigMap that is missing, larger than 256 KiB or does not parse is told in
    /// the `CalendarAvailable` condition, and the last calendar read from it stays in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = Limits::MAX_CONFIG_MAP_CALENDARS))]
    pub config_map_refs: Vec<ConfigMapCalendar>,
}

impl CalendarSpec {
    pub fn is_empty(&self) -> bool {
        self.exclusions.is_empty()
            && self.events.is_empty()
            && self.config_map_refs.is_empty()
            && self.time_zone == "UTC"
    }
}

impl Default for CalendarSpec {
    fn default() -> Self {
        Self {
            time_zone: default_time_zone(),
            exclusions: Vec::new(),
            events: Vec::new(),
            config_map_refs: Vec::new(),
        }
    }
}

/// What the VEVENTs of an `.ics` become.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum IcsAs {
    /// Exclusions: peak windows' floors do not apply in them, and their load is left out of
    /// the seasonal history (a holiday calendar).
    Exclusion,
    /// Events, each with the `minReplicas`, `maxReplicas` and `loadMultiplier` of the reference
    /// (a campaign or release calendar).
    Event,
}

/// An `.ics` in a ConfigMap of the PredictiveScaler's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "resource", derive(KubeSchema))]
#[cfg_attr(not(feature = "resource"), derive(JsonSchema))]
#[cfg_attr(feature = "resource", x_kube(cel))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("self.__as__ == 'Event' || !(has(self.minReplicas) || has(self.maxReplicas) || has(self.loadMultiplier))").message("minReplicas, maxReplicas and loadMultiplier are an event's: an exclusion has none").reason(kube::core::Reason::FieldValueForbidden).field_path(".minReplicas")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("self.__as__ == 'Exclusion' || has(self.minReplicas) || has(self.maxReplicas) || has(self.loadMultiplier)").message("as: Event needs minReplicas, maxReplicas or loadMultiplier").reason(kube::core::Reason::FieldValueRequired).field_path(".minReplicas")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(kube::core::Reason::FieldValueInvalid).field_path(".minReplicas")))]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapCalendar {
    /// The ConfigMap's name. It is always read in the PredictiveScaler's own namespace: there
    /// is no namespace field, so the operator's permission to read ConfigMaps cannot become a
    /// tenant's way into another namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = names::DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// The key of the ConfigMap's `data` that holds the `.ics` text (at most 256 KiB).
    #[schemars(length(min = 1, max = 253), regex(pattern = names::CONFIG_MAP_KEY_PATTERN))]
    pub key: String,
    /// `Exclusion` or `Event`: what each VEVENT's occurrences become.
    #[serde(rename = "as")]
    pub as_: IcsAs,
    /// The IANA time zone of floating times and of all-day (DATE) VEVENTs; the calendar's by
    /// default. Times with a `TZID` (an IANA name) or in UTC (`Z`) keep their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = Limits::MAX_TIME_ZONE_LENGTH))]
    pub time_zone: Option<String>,
    /// With `as: Event`: the floor during each occurrence, reached `forecast.leadTime` before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub min_replicas: Option<i32>,
    /// With `as: Event`: the ceiling during each occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub max_replicas: Option<i32>,
    /// With `as: Event`: the load expected during each occurrence as a multiple of the usual
    /// (0.05–100), as for `events[].loadMultiplier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.05, max = 100.0))]
    pub load_multiplier: Option<f64>,
}

/// A day or an interval left out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "resource", derive(KubeSchema))]
#[cfg_attr(not(feature = "resource"), derive(JsonSchema))]
#[cfg_attr(feature = "resource", x_kube(cel))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("has(self.date) != (has(self.start) && has(self.end))").message("an exclusion needs either date, or start and end").reason(kube::core::Reason::FieldValueRequired).field_path(".date")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("has(self.start) == has(self.end)").message("start and end go together").reason(kube::core::Reason::FieldValueRequired).field_path(".end")))]
#[serde(rename_all = "camelCase")]
pub struct Exclusion {
    /// A name, shown in status when it applies, e.g. `thanksgiving`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// A whole local day, `YYYY-MM-DD`, in `timeZone` (23 or 25 hours on a DST change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = Limits::MAX_DATE_LENGTH))]
    pub date: Option<String>,
    /// The start of an interval: RFC 3339 (`2026-12-24T18:00:00Z`, `…+01:00`), a local time in
    /// `timeZone` (`2026-12-24T18:00`), or a date (its local midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = Limits::MAX_DATE_LENGTH))]
    pub start: Option<String>,
    /// The end of the interval (exclusive), written as `start`; a date alone means the end of
    /// that day. At most 32 days after the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = Limits::MAX_DATE_LENGTH))]
    pub end: Option<String>,
    /// The IANA time zone of `date` and local times; the calendar's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = Limits::MAX_TIME_ZONE_LENGTH))]
    pub time_zone: Option<String>,
}

/// A dated window to prepare for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[cfg_attr(feature = "resource", derive(KubeSchema))]
#[cfg_attr(not(feature = "resource"), derive(JsonSchema))]
#[cfg_attr(feature = "resource", x_kube(cel))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("has(self.end) != has(self.duration)").message("an event needs end or duration, not both").reason(kube::core::Reason::FieldValueRequired).field_path(".end")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("has(self.minReplicas) || has(self.maxReplicas) || has(self.loadMultiplier)").message("an event needs minReplicas, maxReplicas or loadMultiplier").reason(kube::core::Reason::FieldValueRequired).field_path(".minReplicas")))]
#[cfg_attr(feature = "resource", x_kube(validation = Rule::new("!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas").reason(kube::core::Reason::FieldValueInvalid).field_path(".minReplicas")))]
#[serde(rename_all = "camelCase")]
pub struct CalendarEvent {
    /// A name, shown in status and Events when it decides the replica count, e.g. `black-friday`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// When it starts: RFC 3339 (`2026-11-27T08:00:00-05:00`), a local time in `timeZone`
    /// (`2026-11-27T08:00`), or a date (its local midnight). A local time the clock skips
    /// (spring forward) means the first instant after the jump; one it repeats (fall back) the
    /// first of the two.
    #[schemars(length(min = 1, max = Limits::MAX_DATE_LENGTH))]
    pub start: String,
    /// When it ends (exclusive), written as `start`; a date alone means the end of that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = Limits::MAX_DATE_LENGTH))]
    pub end: Option<String>,
    /// Or how long it lasts, in elapsed time; between `1m` and `32d` either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<SpecDuration>,
    /// The IANA time zone of local times; the calendar's by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = Limits::MAX_TIME_ZONE_LENGTH))]
    pub time_zone: Option<String>,
    /// The minimum replica count during the event, reached `forecast.leadTime` before it starts
    /// (still capped by `maxReplicas`). `0` allows scaling to zero during the event, as a peak
    /// window's `minReplicas: 0` does (a shutdown, a quiet holiday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = Limits::MAX_REPLICAS))]
    pub min_replicas: Option<i32>,
    /// The maximum replica count during the event (a freeze, a budget); it wins over every floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = Limits::MAX_REPLICAS))]
    pub max_replicas: Option<i32>,
    /// The load expected during the event as a multiple of what the seasonal forecast expects
    /// then (`3` for three times; below 1 for a quiet day), between 0.05 and 100. The forecast
    /// is multiplied for the event's minutes, and the live level it is scaled by is divided by
    /// it, so the multiple is not counted twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.05, max = 100.0))]
    pub load_multiplier: Option<f64>,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// Scaling behaviour, shaped like the HorizontalPodAutoscaler's `behavior`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Rules for scaling up. Without policies, the HorizontalPodAutoscaler's default: at most 4
    /// pods or 100 % more (whichever is more) per 15 seconds, so that one bogus metric sample
    /// cannot send the workload to `maxReplicas` in one step; that default limits what the live
    /// load asks for, not a peak window's floor or a seasonal forecast, which are known ahead and
    /// must arrive on time. Policies written here limit every term.
    #[serde(default = "ScalingRules::default_up")]
    pub scale_up: ScalingRules,
    /// Rules for scaling down. By default the highest recommendation of the last 5 minutes is kept
    /// (as the HPA does), and at most 20% of the replicas are removed per minute.
    #[serde(default = "ScalingRules::default_down")]
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            scale_up: ScalingRules::default_up(),
            scale_down: ScalingRules::default_down(),
        }
    }
}

/// Stabilization and rate limits for one direction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// For scale-down: the highest recommendation of this many past seconds is used; for scale-up:
    /// the lowest. Damps flapping on noisy load.
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: i32,
    /// Rate limits. With several, `selectPolicy` says which applies. With none, the direction's
    /// default applies (see `scaleUp` and `scaleDown`); `selectPolicy: Disabled` forbids scaling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = Limits::MAX_POLICIES))]
    pub policies: Vec<ScalingPolicy>,
    /// `Max` applies the policy that allows the largest change, `Min` the smallest,
    /// `Disabled` forbids scaling in this direction.
    #[serde(default)]
    pub select_policy: SelectPolicy,
}

impl ScalingRules {
    /// No policies of its own: the HorizontalPodAutoscaler's default applies (see `scaleUp`).
    pub fn default_up() -> Self {
        Self {
            stabilization_window_seconds: 0,
            policies: vec![],
            select_policy: SelectPolicy::Max,
        }
    }

    /// The HorizontalPodAutoscaler's default scale-up policies: at most 4 pods or 100 % more,
    /// whichever is more, per 15 seconds.
    pub fn hpa_default_up_policies() -> Vec<ScalingPolicy> {
        vec![
            ScalingPolicy {
                type_: PolicyType::Pods,
                value: 4,
                period_seconds: 15,
            },
            ScalingPolicy {
                type_: PolicyType::Percent,
                value: 100,
                period_seconds: 15,
            },
        ]
    }

    pub fn default_down() -> Self {
        Self {
            stabilization_window_seconds: 300,
            policies: vec![ScalingPolicy {
                type_: PolicyType::Percent,
                value: 20,
                period_seconds: 60,
            }],
            select_policy: SelectPolicy::Max,
        }
    }
}

/// One rate limit: at most `value` pods or percent of the replicas per `periodSeconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub type_: PolicyType,
    /// How many pods, or what percentage of the replicas at the start of the period.
    #[schemars(range(min = 1, max = Limits::MAX_POLICY_PODS))]
    pub value: i32,
    /// The period the limit applies to.
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: i32,
}

/// The unit of a scaling policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PolicyType {
    Pods,
    Percent,
}

/// Which of several policies applies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SelectPolicy {
    #[default]
    Max,
    Min,
    Disabled,
}

/// The margins the objective calls for, and how they did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CalibrationStatus {
    /// What prescaler provisions for: `live load`, `daily forecast`, `weekly forecast`,
    /// `daily or weekly forecast` or `daily forecast or live load`.
    pub basis: String,
    /// The relative margin on it, in percent.
    pub margin_percent: f64,
    /// The absolute margin, in replicas.
    pub extra_replicas: f64,
    /// Of the last day's minutes, the share (%) the current margins would have left
    /// under-provisioned (replayed).
    pub underprovisioned_percent_last_day: f64,
    /// The same over the last week: what `spec.objective` is about.
    pub underprovisioned_percent_last_week: f64,
    /// Of the last week's minutes, the share (%) that were bursts no basis foresaw and no margin
    /// up to +100 % would have covered (flash crowds, a recovery after an outage): they are
    /// counted in `underprovisionedPercentLastWeek` but do not set the margins, so with them the
    /// objective can be missed at any margin worth paying for.
    #[serde(default)]
    pub unforeseeable_percent_last_week: f64,
}

/// One of several metrics (`spec.metrics[]`) as it was last decided on.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// `spec.metrics[].name`.
    #[schemars(length(max = 63))]
    pub name: String,
    /// The live load read, in the metric's unit; absent when it could not be read recently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// The forecast peak load within the lead time, without margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_load: Option<f64>,
    /// The replicas this metric asks for, before the bounds and `behavior` (a hold of the
    /// current count when it could not be read).
    pub replicas: i32,
    /// The term that asked for them: `Reactive`, `Forecast`, `PeakWindow`, `Event`, … or `Hold`
    /// when it could not be read.
    #[schemars(length(max = 63))]
    pub reason: String,
}

/// The lead time in use, with `spec.forecast.leadTime: Auto`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeadTimeStatus {
    /// The lead time in use, in seconds.
    pub seconds: i64,
    /// `Learned` from the target's pods, or `Default` (6 minutes) until 5 have been seen.
    pub source: String,
    /// The start-ups it rests on: pods of the last 7 days seen from creation to Ready, and pods
    /// not Ready for longer than the lead time (counted at their age so far).
    pub observations: i64,
    /// The 90th percentile of those start-ups, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_seconds: Option<i64>,
    /// The lead time that percentile makes (plus 60 s of metric delay, rounded up to a minute),
    /// in seconds; it replaces `seconds` once it has persisted (10 minutes), so that the
    /// calibration, which restarts on each change, is seldom reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_seconds: Option<i64>,
}

/// What prescaler observed and decided. Written by the operator.
#[cfg(feature = "resource")]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PredictiveScalerStatus {
    /// The spec generation this status describes.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub observed_generation: Option<i64>,
    /// Replicas the target had at the last reconcile.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_replicas: Option<i32>,
    /// Replicas prescaler asked for (or would have, in ForecastOnly mode).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub desired_replicas: Option<i32>,
    /// Replicas the live load needs now.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reactive_replicas: Option<i32>,
    /// Replicas the forecast needs within the lead time, margin included.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub forecast_replicas: Option<i32>,
    /// The floor of the peak window or event that is in force or starts within the lead time.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub scheduled_min_replicas: Option<i32>,
    /// The ceiling of the peak window or event in force now.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub scheduled_max_replicas: Option<i32>,
    /// What the schedule holds now, e.g. `event "black-friday" min 20` or
    /// `excluded (thanksgiving)`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub schedule: Option<String>,
    /// Which term decided `desiredReplicas`: `Reactive`, `Forecast`, `PeakWindow`, `Event`,
    /// `MinReplicas`, `MaxReplicas`, `ScheduledMaximum`, `Stabilized`, `RateLimited` or `Hold`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// With several metrics (`spec.metrics`): the metric whose need decided `desiredReplicas`
    /// (the highest; the first of equals).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub deciding_metric: Option<String>,
    /// With several metrics (`spec.metrics`): what each one needs, in the spec's order.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = Limits::MAX_METRICS))]
    pub metrics: Vec<MetricStatus>,
    /// The forecast load (in the metric's unit) for the lead-time window, without margin.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub forecast_load: Option<f64>,
    /// The forecast's mean absolute percentage error over the last day, in percent.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub forecast_error_percent: Option<f64>,
    /// What the margins are and what they achieve, from the last calibration (every 3 hours).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub calibration: Option<CalibrationStatus>,
    /// With `spec.forecast.leadTime: Auto`: the lead time learned from the pods and in use.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub lead_time: Option<LeadTimeStatus>,
    /// When prescaler last changed the target's replica count (RFC 3339).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_scale_time: Option<String>,
    /// The replicas prescaler expects to ask for over the next 24 hours, in brief (the whole
    /// plan, every 15 minutes: `kubectl prescaler plan`). Recomputed every 15 minutes and when
    /// the spec changes.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub plan: Option<PlanStatus>,
    /// What prescaler's decisions cost against an HPA on the same metric over the last 7 days:
    /// a model estimate (the backtest's simulated pods and HPA, run on the live metric). Its
    /// figures are refreshed with the status's other figures, not every minute.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub savings: Option<SavingsStatus>,
    /// `Ready`, `MetricsAvailable`, `ForecastReliable`, `ObjectiveMet`, `MaxReplicasSufficient`,
    /// `ScalingLimited`, and with `leadTime: Auto` `PodsPending`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
}

/// A status field as the operator's watch reads it back: a value it cannot decode is read as
/// absent, and the next status write replaces it. The API server does not check `format: int32`
/// or a condition's time format on a custom resource, so anyone who may write a scaler's status
/// could store `currentReplicas: 3000000000`; decoded strictly, that failed every list of the
/// watch, and no scaler in the cluster was reconciled after the next restart.
#[cfg(feature = "resource")]
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// The plan in brief: the next peak, the most replicas ahead, and the replicas at a few
/// horizons. Its size is fixed: a handful of numbers and names, never the plan's 96 steps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// When the plan was computed (RFC 3339).
    pub computed_at: String,
    /// How far it looks ahead, e.g. `24h`.
    pub horizon: String,
    /// True when there is no calibrated forecast yet: the plan holds the current decision (and
    /// the peak windows' floors).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The next rise above the replicas asked for now, at its highest; absent when nothing
    /// ahead asks for more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_peak: Option<PlannedReplicas>,
    /// The most replicas planned within the horizon (the first time they are planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<PlannedReplicas>,
    /// The replicas planned at fixed horizons: `15m`, `1h`, `3h`, `6h`, `24h`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub ahead: Vec<PlannedReplicas>,
}

/// prescaler against an HPA on the same live metric, over the last 7 days (UTC days: today so
/// far and the 6 before): a model estimate, computed as `prescaler backtest` scores, on the
/// minutes the operator saw. Its size is fixed: at most 7 days of six numbers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavingsStatus {
    /// In words, rounded: "7d: prescaler asked for 312 replica-hours, 0.04 % of minutes short;
    /// an HPA at 80 %: 401 replica-hours, 0.9 % short", and how it is computed.
    #[schemars(length(max = 1024))]
    pub summary: String,
    /// The HPA's target utilization, in % of `targetPerReplica` (the operator's
    /// `--savings-hpa-target-utilization`, the chart's `savings.hpaTargetUtilization`).
    pub hpa_target_utilization: i32,
    /// The simulated pods' start-up, in seconds.
    pub startup_seconds: i64,
    /// The first minute counted (RFC 3339).
    pub from: String,
    /// The end of the last minute counted (RFC 3339).
    pub through: String,
    /// The figures per UTC day, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7))]
    pub days: Vec<SavingsDay>,
}

/// One UTC day of `SavingsStatus`: the minutes counted (those with a load sample), and for
/// prescaler and the HPA the replica-minutes asked for and the minutes short of ready replicas.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SavingsDay {
    /// `YYYY-MM-DD`.
    #[schemars(length(max = 10))]
    pub date: String,
    /// Minutes counted: those with a load sample.
    pub minutes: i64,
    /// Replicas prescaler asked for, summed over the minutes.
    pub replica_minutes: i64,
    /// Minutes prescaler's simulated pods were fewer than the load needed.
    pub short_minutes: i64,
    /// Replicas the model HPA asked for, summed over the minutes.
    pub hpa_replica_minutes: i64,
    /// Minutes the model HPA's simulated pods were fewer than the load needed.
    pub hpa_short_minutes: i64,
}

/// The replicas planned for one time, and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedReplicas {
    /// When (RFC 3339).
    pub at: String,
    /// How far ahead of `computedAt`, e.g. `1h` (only in `ahead`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#in: Option<String>,
    /// The replicas prescaler expects to ask for then.
    pub replicas: i32,
    /// The term that decides them, as in `status.reason`.
    pub reason: String,
    /// The peak window whose floor decides them, or the forecast basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub by: Option<String>,
}
