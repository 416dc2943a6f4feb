//! Kubernetes' own grammar for the names a spec gives the operator to put into a request's path
//! (`scaleTargetRef`'s API version, kind, name and namespace), as apimachinery's validation
//! spells it (`IsDNS1123Subdomain`, `IsDNS1123Label`, `IsDNS1035Label`). kube-rs puts these
//! strings into the URL as they are: a `/`, `?`, `%` or `..` in one would change which object a
//! request reaches (`apiVersion: apps/v1/namespaces/payments/deployments/ledger/scale?` read and
//! wrote another namespace's Deployment). The CRD schema refuses such values with the patterns
//! below, `validate()` with the functions (for objects that did not pass the schema: an older CRD,
//! a backtest's manifest), and the Kubernetes adapter checks again before it builds a path.

/// A DNS-1123 label (a namespace): at most 63 lowercase letters, digits and `-`, starting and
/// ending with a letter or digit.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain (the name of a Deployment, a StatefulSet or a custom resource): such
/// labels joined by dots, at most 253 characters.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// An API version: `v1`, or a group (a DNS-1123 subdomain) and a version (a DNS-1035 label).
pub const API_VERSION_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z]([-a-z0-9]*[a-z0-9])?$";

/// A ConfigMap's key: letters, digits, `-`, `_` and `.` (apimachinery's `IsConfigMapKey`).
pub const CONFIG_MAP_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Whether `s` is a ConfigMap key, as `CONFIG_MAP_KEY_PATTERN` says (the key is looked up in
/// the ConfigMap's `data`, never put into a request's path).
pub fn is_config_map_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A kind: a letter, then letters and digits (`Deployment`, `Rollout`, `CloneSet`).
pub const KIND_PATTERN: &str = "^[A-Za-z][A-Za-z0-9]*$";

/// Letters, digits and `-`, starting and ending with `first` and a letter or digit.
fn label(s: &str, first: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            first(f) && (l.is_ascii_lowercase() || l.is_ascii_digit()) && b.iter().all(inner)
        }
        _ => false,
    }
}

fn alphanumeric(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Whether `s` is a DNS-1123 label (`DNS_LABEL_PATTERN`, at most 63 characters).
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && label(s, alphanumeric)
}

/// Whether `s` is a DNS-1123 subdomain (`DNS_SUBDOMAIN_PATTERN`, at most 253 characters).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|part| label(part, alphanumeric))
}

/// Whether `s` is an API version (`API_VERSION_PATTERN`).
pub fn is_api_version(s: &str) -> bool {
    let version = |v: &str| v.len() <= 63 && label(v, |c| c.is_ascii_lowercase());
    match s.split_once('/') {
        Some((group, v)) => is_dns_subdomain(group) && version(v),
        None => version(s),
    }
}

/// Whether `s` is a kind (`KIND_PATTERN`, at most 63 characters).
pub fn is_kind(s: &str) -> bool {
    s.len() <= 63
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema's patterns (checked by the API server with Go's RE2, whose syntax the `regex`
    /// crate shares) and the functions answer alike, on names that are Kubernetes' and on the
    /// spellings that would change a request's path.
    #[test]
    fn the_schema_patterns_agree_with_the_functions() {
        let samples = [
            "apps/v1",
            "v1",
            "argoproj.io/v1alpha1",
            "keda.sh/v1alpha1",
            "apps.kruise.io/v1beta1",
            "apps/v1/namespaces/payments/deployments/ledger/scale?",
            "apps/v1?",
            "apps/../v1",
            "apps/v1%2F",
            "apps/v1#x",
            "apps//v1",
            "/v1",
            "apps/",
            "apps/1v",
            "Apps/v1",
            "a..b/v1",
            ".",
            "..",
            "",
            "-a",
            "a-",
            "checkout",
            "checkout-v2",
            "web.frontend",
            "Deployment",
            "StatefulSet",
            "Deployment/x",
            "9Deployment",
            "ledger/scale",
            "ledger?",
            "a b",
            "ü",
        ];
        let check = |pattern: &str, f: fn(&str) -> bool| {
            let re = regex::Regex::new(pattern).unwrap();
            for s in samples {
                assert_eq!(re.is_match(s), f(s), "{pattern} on {s:?}");
            }
        };
        check(DNS_LABEL_PATTERN, is_dns_label);
        check(DNS_SUBDOMAIN_PATTERN, is_dns_subdomain);
        check(API_VERSION_PATTERN, is_api_version);
        check(KIND_PATTERN, is_kind);
        check(CONFIG_MAP_KEY_PATTERN, is_config_map_key);
    }

    #[test]
    fn nothing_that_changes_a_path_is_a_name() {
        for s in [
            "apps/v1/namespaces/payments/deployments/ledger/scale?",
            "..",
            "a/b",
            "a?b",
            "a%2Fb",
            "a#b",
        ] {
            assert!(!is_api_version(s) || !s.contains(['?', '%', '#']), "{s}");
            assert!(!is_dns_subdomain(s), "{s}");
            assert!(!is_dns_label(s), "{s}");
            assert!(!is_kind(s), "{s}");
        }
        assert!(is_api_version("apps/v1") && is_api_version("v1"));
        assert!(!is_api_version("apps/v1/namespaces/x/deployments/y/scale"));
        assert!(is_dns_subdomain(&"a".repeat(253)) && !is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_label(&"a".repeat(63)) && !is_dns_label(&"a".repeat(64)));
    }
}
