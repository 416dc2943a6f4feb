//! The calendar's `.ics` files (`spec.calendar.configMapRefs`) for a backtest: read from
//! ConfigMap manifests (the `--spec` file itself, and each `--calendar-file`), as the operator
//! reads them from the cluster, and expanded over the trace's span (`ics::expand`), so that a
//! backtest replays the same exclusions and events the operator would.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::api::{PredictiveScaler, ValidatedSpec, ics};
use crate::{Error, Result};

/// A ConfigMap as a manifest holds it: its name, namespace and `data`.
struct ConfigMapManifest {
    name: String,
    namespace: Option<String>,
    data: std::collections::BTreeMap<String, String>,
}

/// The ConfigMaps (`v1`) of a YAML stream; other documents are skipped.
fn config_maps(name: &str, text: &str) -> Result<Vec<ConfigMapManifest>> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(document).map_err(|source| Error::Yaml {
            context: format!("{name} is not YAML"),
            source,
        })?;
        let field = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or("");
        if field("kind") != "ConfigMap" || field("apiVersion") != "v1" {
            continue;
        }
        let meta = |key: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let data = match value.get("data") {
            Some(d) => serde_yaml_ng::from_value(d.clone()).map_err(|source| Error::Yaml {
                context: format!("{name}: a ConfigMap's data is not a map of strings"),
                source,
            })?,
            None => Default::default(),
        };
        out.push(ConfigMapManifest {
            name: meta("name").unwrap_or_default(),
            namespace: meta("namespace"),
            data,
        });
    }
    Ok(out)
}

/// `spec` with the `.ics` files its scaler names, found among `files` (`(name, text)` of each
/// manifest file), expanded over `[from, to)`. A ConfigMap is looked for in the scaler's own
/// namespace, as the operator reads it (a manifest that names no namespace matches any).
pub fn apply(
    scaler: &PredictiveScaler,
    spec: ValidatedSpec,
    files: &[(String, String)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<ValidatedSpec> {
    let refs = &scaler.spec.calendar.config_map_refs;
    if refs.is_empty() {
        return Ok(spec);
    }
    let mut all = Vec::new();
    for (name, text) in files {
        all.extend(config_maps(name, text)?);
    }
    let namespace = scaler.metadata.namespace.as_deref();
    let mut texts = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let found = all.iter().find(|cm| {
            cm.name == r.name
                && (cm.namespace.is_none()
                    || namespace.is_none()
                    || cm.namespace.as_deref() == namespace)
        });
        let Some(cm) = found else {
            return Err(Error::Config {
                what: format!("spec.calendar.configMapRefs[{i}]"),
                message: format!(
                    "ConfigMap {} is in neither the --spec file nor a --calendar-file (kubectl get configmap {} -o yaml > {}.yaml, then --calendar-file {}.yaml)",
                    r.name, r.name, r.name, r.name
                ),
            });
        };
        let Some(text) = cm.data.get(&r.key) else {
            return Err(Error::Config {
                what: format!("spec.calendar.configMapRefs[{i}]"),
                message: format!("ConfigMap {} has no key {} in data", r.name, r.key),
            });
        };
        texts.push(text.as_str());
    }
    let entries = ics::expand(&scaler.spec.calendar, &texts, from, to)?;
    Ok(spec.with_ics(&entries)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler() -> PredictiveScaler {
        let manifest = [
            "apiVersion: prescaler.dev/v1alpha1",
            "kind: PredictiveScaler",
            "metadata: { name: s, namespace: shop }",
            "spec:",
            "  scaleTargetRef: { kind: Deployment, name: s }",
            "  maxReplicas: 10",
            "  metric: { query: 'sum(x)', targetPerReplica: 1 }",
            "  calendar:",
            "    configMapRefs: [{ name: cal, key: h.ics, as: Exclusion }]",
        ]
        .join("\n");
        crate::backtest::manifest::parse("s.yaml", &manifest).unwrap()
    }

    /// A ConfigMap manifest in namespace `NS`, with an all-day event on two Mondays.
    fn cal() -> String {
        [
            "apiVersion: v1",
            "kind: ConfigMap",
            "metadata: { name: cal, namespace: NS }",
            "data:",
            "  h.ics: |",
            "    BEGIN:VCALENDAR",
            "    BEGIN:VEVENT",
            "    SUMMARY:day-off",
            "    DTSTART;VALUE=DATE:20260302",
            "    RRULE:FREQ=WEEKLY;COUNT=2",
            "    END:VEVENT",
            "    END:VCALENDAR",
        ]
        .join("\n")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// The ConfigMap of the scaler's namespace is found in a manifest and its VEVENTs become
    /// exclusions over the span; one of another namespace is not, and the error says how to
    /// get it.
    #[test]
    fn the_scalers_configmap_is_read_from_a_manifest_and_no_other() {
        let s = scaler();
        let spec = s.spec.validate().unwrap();
        let files = vec![("cal.yaml".to_string(), cal().replace("NS", "shop"))];
        let got = apply(
            &s,
            spec.clone(),
            &files,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
        )
        .unwrap();
        let starts: Vec<String> = got
            .calendar
            .exclusions
            .iter()
            .map(|x| format!("{} {}", x.name, x.start.format("%Y-%m-%d")))
            .collect();
        assert_eq!(starts, ["day-off 2026-03-02", "day-off 2026-03-09"]);

        let elsewhere = vec![("cal.yaml".to_string(), cal().replace("NS", "other-team"))];
        let e = apply(
            &s,
            spec,
            &elsewhere,
            utc("2026-03-01T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--calendar-file"), "{e}");
    }
}
