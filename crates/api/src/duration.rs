//! The spec's duration type: written the way Prometheus users write durations (`90s`, `5m`,
//! `1h30m`, `28d`, `2w`), kept as written, and parsed with Prometheus' own grammar (units in
//! descending order, checked arithmetic) by `promql-parser`, the crate prescaler already uses to
//! check queries.
//!
//! Deserializing never fails on the value: an object the API server accepted must never break
//! the operator's watch of every other object. A bad value is refused by the CRD schema's pattern,
//! and what a pattern cannot see (an overflow, a bound) by `parse` during validation, which names
//! the field.

use std::borrow::Cow;

use chrono::Duration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Prometheus' duration grammar without the bare-number form, as an RE2 pattern for the schema.
pub const PATTERN: &str =
    "^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$";
/// Longer texts are refused by the schema; no useful duration needs more.
pub const MAX_LENGTH: u32 = 24;

/// A duration as written in a spec, e.g. `5m` or `1h30m`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecDuration(String);

impl SpecDuration {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text and checks it against `[min, max]`; the error names `field`.
    pub fn parse(
        &self,
        field: &str,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, crate::Error> {
        let invalid = |message: String| crate::Error::InvalidSpec {
            field: field.to_string(),
            message,
        };
        let value = parse(&self.0).map_err(|why| invalid(format!("{:?} {why}", self.0)))?;
        if value < min || value > max {
            return Err(invalid(format!(
                "{:?} must be between {} and {}",
                self.0,
                format(min),
                format(max)
            )));
        }
        Ok(value)
    }
}

impl From<&str> for SpecDuration {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl std::fmt::Display for SpecDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for SpecDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "minLength": 2,
            "maxLength": MAX_LENGTH,
        })
    }
}

/// Parses `90s`, `5m`, `1h30m`, `28d`, `2w` into a duration; the error says why not. Used for
/// command-line durations too, so that a flag and a spec field read alike.
pub fn parse(text: &str) -> Result<Duration, String> {
    let grammar = "is not a duration like 90s, 5m, 1h30m or 28d";
    // promql-parser also takes a bare number as seconds (and panics on a negative one); the spec
    // grammar always has a unit.
    let shape_ok = text.len() <= MAX_LENGTH as usize
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text.ends_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "ywdhms".contains(c));
    if !shape_ok {
        return Err(grammar.into());
    }
    let std = promql_parser::util::parse_duration(text).map_err(|e| format!("{grammar} ({e})"))?;
    Duration::from_std(std).map_err(|_| "is too long".into())
}

/// Formats a duration the way the spec writes them (`1h30m`, `28d`).
pub fn format(d: Duration) -> String {
    match d.to_std() {
        Ok(std) if !std.is_zero() => promql_parser::util::display_duration(&std),
        _ => "0s".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_is_prometheus_with_a_unit() {
        assert_eq!(parse("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse("28d"), Ok(Duration::days(28)));
        assert_eq!(parse("2w"), Ok(Duration::weeks(2)));
        assert_eq!(parse("250ms"), Ok(Duration::milliseconds(250)));
        for bad in [
            "",
            "6 minutes",
            "5",
            "m",
            "1.5h",
            "-5m",
            "5M",
            "30m1h",
            "0s",
            "1e9s",
            "99999999999999w",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(format(Duration::minutes(90)), "1h30m");
        assert_eq!(format(Duration::days(28)), "4w");
    }

    #[test]
    fn bounds_and_overflow_name_the_field() {
        let d = SpecDuration::new("4294967295w");
        let e = d
            .parse(
                "spec.forecast.history",
                Duration::hours(1),
                Duration::days(35),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.forecast.history"), "{e}");
        let e = SpecDuration::new("36d")
            .parse(
                "spec.forecast.history",
                Duration::hours(1),
                Duration::days(35),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("between 1h and 5w"), "{e}");
    }

    #[test]
    fn the_schema_pattern_agrees_with_the_parser() {
        // The API server checks the pattern with Go's RE2; the `regex` crate has the same syntax.
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for text in [
            "5m", "1h30m", "2w3d", "10s", "1d12h", "30m1h", "5ms", "1m5ms", "m", "5",
        ] {
            assert_eq!(pattern.is_match(text), parse(text).is_ok(), "{text}");
        }
    }
}
