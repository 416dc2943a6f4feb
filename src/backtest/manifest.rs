//! The spec a backtest replays: read from a manifest as strictly as `kubectl --validate=strict`
//! would (an unknown or misspelled field is an error naming its path, not silently ignored), with
//! the command line's overrides on top, and warnings for what a backtest cannot show.

use chrono::Duration;
use serde::Deserialize;

use crate::api::{Mode, PredictiveScaler, PredictiveScalerSpec};
use crate::{Error, Result};

const API_VERSION: &str = "prescaler.dev/v1alpha1";
const KIND: &str = "PredictiveScaler";

/// Reads the one PredictiveScaler in `text` (a YAML stream that may hold other objects, such as
/// the Deployment it scales); `name` is used in messages.
pub fn parse(name: &str, text: &str) -> Result<PredictiveScaler> {
    let value = the_one_scaler(name, text)?;
    let (read, unknown) = read_noting_unknown(value);
    let scaler = read.map_err(|failure| read_error(name, failure, &unknown))?;
    if let Some(first) = unknown.first() {
        return Err(Error::InvalidSpec {
            field: first.clone(),
            message: format!(
                "unknown field in {name} (misspelled?){}",
                also_unknown(&unknown[1..])
            ),
        });
    }
    Ok(scaler)
}

/// The error for a scaler that could not be read: the first unknown field when there is one
/// (the missing field is usually the unknown one, misspelled), else where the read failed.
fn read_error(name: &str, failure: ReadFailure, unknown: &[String]) -> Error {
    let path = failure.path().to_string();
    let cause = failure.into_inner();
    match unknown.split_first() {
        Some((first, rest)) => Error::InvalidSpec {
            field: first.clone(),
            message: format!(
                "unknown field in {name} (misspelled?), and at {path}: {cause}{}",
                also_unknown(rest)
            ),
        },
        None => Error::InvalidSpec {
            field: path,
            message: format!("{cause} (in {name})"),
        },
    }
}

/// The unknown fields after the one an error names, as the end of its message.
fn also_unknown(rest: &[String]) -> String {
    if rest.is_empty() {
        String::new()
    } else {
        format!("; also unknown: {}", rest.join(", "))
    }
}

/// The document of `text` that is a PredictiveScaler of this API version: an error unless there
/// is exactly one (naming what there is when there is none).
fn the_one_scaler(name: &str, text: &str) -> Result<serde_yaml_ng::Value> {
    let mut found = Vec::new();
    let mut kinds = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(|source| Error::Yaml {
            context: format!("{name} is not YAML"),
            source,
        })?;
        if value.is_null() {
            continue;
        }
        let field = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("");
        let (api_version, kind) = (field("apiVersion").to_string(), field("kind").to_string());
        if kind == KIND && api_version == API_VERSION {
            found.push(value);
        } else {
            kinds.push(format!("{api_version} {kind}"));
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Config {
            what: name.into(),
            message: format!(
                "holds no {API_VERSION} {KIND} (found: {})",
                if kinds.is_empty() {
                    "nothing".into()
                } else {
                    kinds.join(", ")
                }
            ),
        }),
        n => Err(Error::Config {
            what: name.into(),
            message: format!("holds {n} PredictiveScalers; a backtest replays one"),
        }),
    }
}

/// A failure to read the scaler, with the path where it happened.
type ReadFailure = serde_path_to_error::Error<serde_yaml_ng::Error>;

/// `value` read as a PredictiveScaler, and the paths of the keys it has that the type does not
/// know.
///
/// Unknown keys are collected as the value is read (serde_ignored), and a failure names the
/// path where it happened (serde_path_to_error): a misspelled *required* field fails as a
/// missing one, and the misspelling is what the user needs to see.
fn read_noting_unknown(
    value: serde_yaml_ng::Value,
) -> (
    std::result::Result<PredictiveScaler, ReadFailure>,
    Vec<String>,
) {
    let mut unknown = Vec::new();
    let read = {
        let mut note = |path: serde_ignored::Path| {
            // `apiVersion` and `kind` were checked already (the derived type reads them
            // itself); `status` is what the operator writes, which a manifest copied from the
            // cluster carries.
            let path = path.to_string();
            if !(path == "apiVersion" || path == "kind" || path.starts_with("status")) {
                unknown.push(path);
            }
        };
        let ignored = serde_ignored::Deserializer::new(value, &mut note);
        serde_path_to_error::deserialize::<_, PredictiveScaler>(ignored)
    };
    (read, unknown)
}

/// What the command line changes in the spec.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub target_per_replica: Option<f64>,
    pub min_replicas: Option<i32>,
    pub max_replicas: Option<i32>,
    pub lead_time: Option<Duration>,
    /// `spec.objective.maxUnderprovisionedPercent`.
    pub max_underprovisioned_percent: Option<f64>,
}

impl Overrides {
    pub fn apply(&self, spec: &mut PredictiveScalerSpec) {
        if let Some(c) = self.target_per_replica {
            spec.metric.target_per_replica = c;
        }
        if let Some(m) = self.min_replicas {
            spec.min_replicas = m;
        }
        if let Some(m) = self.max_replicas {
            spec.max_replicas = m;
        }
        if let Some(l) = self.lead_time {
            spec.forecast.lead_time = crate::api::format_duration(l).as_str().into();
        }
        if let Some(p) = self.max_underprovisioned_percent {
            spec.objective.max_underprovisioned_percent = p;
        }
    }
}

/// What the operator would do differently from the replay: each a sentence for stderr.
pub fn warnings(scaler: &PredictiveScaler) -> Vec<String> {
    let mut out = Vec::new();
    match scaler.spec.mode {
        Mode::Auto => {}
        Mode::ForecastOnly => out.push(
            "spec.mode is ForecastOnly: the operator would compute this and write nothing; the backtest shows what Auto would do".into(),
        ),
        Mode::Off => out.push(
            "spec.mode is Off: the operator would do nothing; the backtest shows what Auto would do".into(),
        ),
    }
    if let (Some(target), own) = (
        scaler.spec.scale_target_ref.namespace.as_deref(),
        scaler.metadata.namespace.as_deref(),
    ) && Some(target) != own
    {
        out.push(format!(
            "spec.scaleTargetRef.namespace is {target:?}: the operator refuses a target outside the PredictiveScaler's own namespace and would scale nothing"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: prescaler.dev/v1alpha1
kind: PredictiveScaler
metadata: { name: api, namespace: shop }
spec:
  scaleTargetRef: { kind: Deployment, name: api }
  maxReplicas: 10
  metric: { query: 'sum(up)', targetPerReplica: 5 }
";

    #[test]
    fn a_good_manifest_reads_among_other_objects() {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{ name: api }}\n---\n{GOOD}"
        );
        let scaler = parse("m.yaml", &text).unwrap();
        assert_eq!(scaler.spec.max_replicas, 10);
        assert!(warnings(&scaler).is_empty());
    }

    #[test]
    fn misspelled_fields_are_refused_with_their_path() {
        for (typo, path) in [
            ("  maxReplicas: 10\n", "spec.maxReplica"),
            ("  metric: {", "spec.metric.querry"),
        ] {
            let bad = match path {
                "spec.maxReplica" => GOOD.replace(typo, "  maxReplicas: 10\n  maxReplica: 3\n"),
                _ => GOOD.replace("query:", "querry: x, query:"),
            };
            let e = parse("m.yaml", &bad).unwrap_err().to_string();
            assert!(
                e.contains(path) && e.contains("unknown field"),
                "{typo}: {e}"
            );
        }
        let e = parse(
            "m.yaml",
            &GOOD.replace("kind: PredictiveScaler", "kind: PredictiveScalar"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("holds no prescaler.dev/v1alpha1 PredictiveScaler")
                && e.contains("PredictiveScalar"),
            "{e}"
        );
        let e = parse(
            "m.yaml",
            &GOOD.replace("spec:\n", "spec:\n  peakWindow: []\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("spec.peakWindow"), "{e}");
    }

    #[test]
    fn a_misspelled_required_field_is_named_with_its_path() {
        // Not only "missing field `targetPerReplica`": the unknown key, where it is, and where
        // the field is missing.
        let e = parse(
            "m.yaml",
            &GOOD.replace("targetPerReplica: 5", "targetPerReplika: 5"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "invalid spec.metric.targetPerReplika: unknown field in m.yaml (misspelled?)"
            ) && e.contains("at spec.metric: missing field `targetPerReplica`"),
            "{e}"
        );
        // A field missing without a misspelling: its path.
        let e = parse("m.yaml", &GOOD.replace("  maxReplicas: 10\n", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid spec: missing field `maxReplicas` (in m.yaml)"),
            "{e}"
        );
        // A wrong type: its path.
        let e = parse(
            "m.yaml",
            &GOOD.replace("maxReplicas: 10", "maxReplicas: ten"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid spec.maxReplicas:"), "{e}");
    }

    #[test]
    fn what_the_operator_would_not_do_is_named() {
        let text = GOOD
            .replace("maxReplicas: 10", "maxReplicas: 10\n  mode: ForecastOnly")
            .replace(
                "{ kind: Deployment, name: api }",
                "{ kind: Deployment, name: api, namespace: other }",
            );
        let w = warnings(&parse("m.yaml", &text).unwrap());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("ForecastOnly") && w[1].contains("namespace"),
            "{w:?}"
        );
    }
}
