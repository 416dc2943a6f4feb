//! Confining a tenant's PromQL query to its own namespace, by construction and then verified.
//!
//! The approach is prom-label-proxy's (prometheus-community/prom-label-proxy,
//! `injectproxy/enforce.go`): parse the query, give every vector and matrix selector the
//! matcher `<label>="<namespace>"` in place of any matcher it had on that label, and print the
//! AST again. prom-label-proxy prints with the Prometheus AST's own `String()`, which quotes every
//! value with Go's `strconv.Quote`; here the printer is promql-parser's, which escapes label
//! values, quoted label names and string literals since 0.7 (0.6 wrote values between double
//! quotes unescaped, so a value written in single quotes or backticks that held `"}` closed the
//! selector early and the rest of the query read every namespace).
//!
//! A printer is one bug away from that again, so the printed query is not trusted: it is parsed
//! again and refused unless it selects exactly what the confined AST selected, every selector
//! (in every `or` alternative of its matchers) carries exactly one matcher on the label, `=` the
//! namespace, and nothing in it reads series that no selector names (`info()` joins in
//! `target_info` series by their identifying labels, whatever their namespace).
//!
//! Pure: no I/O, so that the property tests can throw anything at it.

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{self, Expr, VectorSelector};

/// Functions that read series no selector of the query names.
const READS_UNNAMED_SERIES: &[&str] = &["info"];

/// `query` with every selector confined to `namespace` by `label`, printed; or why it cannot be,
/// in words that follow "spec.metric.query ".
pub fn confine_to_namespace(query: &str, label: &str, namespace: &str) -> Result<String, String> {
    let mut expr =
        parser::parse(query).map_err(|e| format!("is not valid PromQL: {}", e.trim()))?;
    walk_mut(&mut expr, &mut |vs| {
        enforce(&mut vs.matchers, label, namespace)
    });
    let printed = expr.to_string();
    let again = parser::parse(&printed).map_err(|e| {
        format!(
            "no longer parses once confined to namespace {namespace:?} ({}); prescaler does not send it",
            e.trim()
        )
    })?;
    // The printed text must select what the confined AST selects: a printer that writes a
    // value so that it reads differently would show here, whatever else it does.
    if selectors(&again) != selectors(&expr) {
        return Err(format!(
            "prints, once confined to namespace {namespace:?}, as a query that selects other series ({}); prescaler does not send it",
            brief(&printed)
        ));
    }
    verify(&again, label, namespace)?;
    Ok(printed)
}

/// Whether `query` (as it would be sent) reads only `namespace`: every selector carries exactly
/// one matcher on `label`, `=` the namespace, in each of its `or` alternatives, and no function
/// reads series beyond its selectors.
pub fn verify_confined(query: &str, label: &str, namespace: &str) -> Result<(), String> {
    let expr = parser::parse(query).map_err(|e| format!("is not valid PromQL: {}", e.trim()))?;
    verify(&expr, label, namespace)
}

fn verify(expr: &Expr, label: &str, namespace: &str) -> Result<(), String> {
    let mut problem = None;
    walk(expr, &mut |node| {
        if problem.is_some() {
            return;
        }
        match node {
            Node::Selector(vs) => {
                if let Err(why) = confined(&vs.matchers, label, namespace) {
                    problem = Some(format!(
                        "has a selector {} {why}, so it could read beyond namespace {namespace:?}; prescaler does not send it",
                        brief(&vs.to_string())
                    ));
                }
            }
            Node::Call(name) if READS_UNNAMED_SERIES.contains(&name) => {
                problem = Some(format!(
                    "calls {name}(), which reads series that no selector names, from any namespace: it cannot be confined to {namespace:?}"
                ));
            }
            Node::Extension => {
                problem = Some("holds an expression prescaler cannot inspect".into());
            }
            Node::Call(_) => {}
        }
    });
    problem.map_or(Ok(()), Err)
}

/// Why `matchers` do not confine a selector to `namespace` by `label`, if they do not.
fn confined(matchers: &Matchers, label: &str, namespace: &str) -> Result<(), String> {
    let alternatives: Vec<&Vec<Matcher>> = if matchers.or_matchers.is_empty() {
        vec![&matchers.matchers]
    } else if matchers.matchers.is_empty() {
        matchers.or_matchers.iter().collect()
    } else {
        // The printer writes only the alternatives when there are some.
        return Err("mixing plain matchers with `or` alternatives".into());
    };
    for alternative in alternatives {
        let on_label: Vec<&Matcher> = alternative.iter().filter(|m| m.name == label).collect();
        match on_label.as_slice() {
            [one] if one.op == MatchOp::Equal && one.value == namespace => {}
            [] => return Err(format!("with no matcher on {label:?}")),
            [_] => {
                return Err(format!(
                    "whose matcher on {label:?} is not `=` {namespace:?}"
                ));
            }
            _ => return Err(format!("with {} matchers on {label:?}", on_label.len())),
        }
    }
    Ok(())
}

/// Gives a selector the matcher `label="namespace"` in place of any it had on that label, in
/// every `or` alternative (where the parser puts all the matchers once there is an `or`).
fn enforce(matchers: &mut Matchers, label: &str, namespace: &str) {
    let own = || Matcher::new(MatchOp::Equal, label, namespace);
    matchers.matchers.retain(|m| m.name != label);
    if matchers.or_matchers.is_empty() {
        matchers.matchers.push(own());
    }
    for alternative in &mut matchers.or_matchers {
        alternative.retain(|m| m.name != label);
        alternative.push(own());
    }
}

/// A matcher as (label, operator, value).
type Match = (String, String, String);
/// A selector's metric name, matchers and `or` alternatives, each set of matchers sorted.
type Selects = (Option<String>, Vec<Match>, Vec<Vec<Match>>);

/// What a query reads: each selector's metric name and matchers, selectors in the order
/// written. The matchers of a selector (or of one `or` alternative) are a set: sorted, as the
/// printer sorts them.
fn selectors(expr: &Expr) -> Vec<Selects> {
    let set = |matchers: &[Matcher]| {
        let mut v: Vec<Match> = matchers
            .iter()
            .map(|m| (m.name.clone(), m.op.to_string(), m.value.clone()))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    walk(expr, &mut |node| {
        if let Node::Selector(vs) = node {
            out.push((
                vs.name.clone(),
                set(&vs.matchers.matchers),
                vs.matchers.or_matchers.iter().map(|a| set(a)).collect(),
            ));
        }
    });
    out
}

/// A query or selector for a message: its first 200 characters.
fn brief(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(200).collect();
    if chars.next().is_some() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

/// The nodes the checks look at.
enum Node<'a> {
    Selector(&'a VectorSelector),
    Call(&'static str),
    Extension,
}

/// Visits every selector, call and extension of `expr`. Exhaustive over `Expr`: a variant a
/// newer promql-parser adds does not compile until it is handled here.
fn walk<'a>(expr: &'a Expr, visit: &mut impl FnMut(Node<'a>)) {
    match expr {
        Expr::VectorSelector(vs) => visit(Node::Selector(vs)),
        Expr::MatrixSelector(ms) => visit(Node::Selector(&ms.vs)),
        Expr::Aggregate(a) => {
            walk(&a.expr, visit);
            if let Some(p) = &a.param {
                walk(p, visit);
            }
        }
        Expr::Unary(u) => walk(&u.expr, visit),
        Expr::Binary(b) => {
            walk(&b.lhs, visit);
            walk(&b.rhs, visit);
        }
        Expr::Paren(p) => walk(&p.expr, visit),
        Expr::Subquery(s) => walk(&s.expr, visit),
        Expr::Call(c) => {
            visit(Node::Call(c.func.name));
            c.args.args.iter().for_each(|a| walk(a, visit));
        }
        Expr::Extension(_) => visit(Node::Extension),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

fn walk_mut(expr: &mut Expr, edit: &mut impl FnMut(&mut VectorSelector)) {
    match expr {
        Expr::VectorSelector(vs) => edit(vs),
        Expr::MatrixSelector(ms) => edit(&mut ms.vs),
        Expr::Aggregate(a) => {
            walk_mut(&mut a.expr, edit);
            if let Some(p) = &mut a.param {
                walk_mut(p, edit);
            }
        }
        Expr::Unary(u) => walk_mut(&mut u.expr, edit),
        Expr::Binary(b) => {
            walk_mut(&mut b.lhs, edit);
            walk_mut(&mut b.rhs, edit);
        }
        Expr::Paren(p) => walk_mut(&mut p.expr, edit),
        Expr::Subquery(s) => walk_mut(&mut s.expr, edit),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| walk_mut(a, edit)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confine(q: &str) -> String {
        confine_to_namespace(q, "namespace", "shop").unwrap()
    }

    #[test]
    fn every_selector_is_confined_to_the_namespace() {
        assert_eq!(
            confine("sum(rate(http_requests_total[2m]))"),
            r#"sum(rate(http_requests_total{namespace="shop"}[2m]))"#
        );
        // Another namespace named in the query is replaced, not added to.
        let q = confine(r#"sum(up{namespace="payments",job="api"}) / sum(up{namespace=~".+"})"#);
        assert!(!q.contains("payments") && !q.contains(".+"), "{q}");
        assert_eq!(q.matches(r#"namespace="shop""#).count(), 2, "{q}");
        // Subqueries, functions, offsets, a trailing comment.
        let q = confine("max_over_time(sum(load)[1h:1m]) + on() vector(1) # total");
        assert!(q.contains(r#"load{namespace="shop"}"#), "{q}");
        assert!(parser::parse(&q).is_ok(), "{q}");
        // Every `or` alternative of a selector's matchers.
        let q = confine(r#"sum(m{a="1" or b="2", namespace="payments"})"#);
        verify_confined(&q, "namespace", "shop").unwrap();
        assert!(!q.contains("payments"), "{q}");
        let bad = confine_to_namespace("sum(", "namespace", "shop").unwrap_err();
        assert!(bad.starts_with("is not valid PromQL"), "{bad}");
    }

    /// The attacks of the review: a value in single quotes or backticks holding `"}`, through
    /// `__name__` and `or` too. Each is confined whole, and its value survives as written.
    #[test]
    fn a_quote_in_a_value_does_not_close_the_selector() {
        for q in [
            r#"sum(M{a='", service="pay"} unless M{z="'})"#,
            r#"sum(M{a=`", service="pay"} unless M{z="`})"#,
            r#"sum({__name__='M", service="pay"} unless {z="'})"#,
            r#"sum(M{a='", service="pay"} or M{z="'})"#,
            r#"sum(M{a="\", service=\"pay\"} or M{z=\""})"#,
            r#"sum(M{a="\x22} or M{z=\u0022"})"#,
            // Matchers the printer sorts after the namespace's.
            r#"sum(M{x='", service="pay"} unless M{z="', service="pay"}) or sum(M{service="pay"})"#,
        ] {
            let confined = confine(q);
            verify_confined(&confined, "namespace", "shop").unwrap();
            let again = parser::parse(&confined).unwrap();
            let original = parser::parse(q).unwrap();
            let (sent, written) = (selectors(&again), selectors(&original));
            assert_eq!(sent.len(), written.len(), "{q} → {confined}");
            for ((_, sent, _), (_, written, _)) in sent.iter().zip(&written) {
                let mut want = written.clone();
                want.push(("namespace".into(), "=".into(), "shop".into()));
                want.sort();
                assert_eq!(sent, &want, "{q} → {confined}");
            }
        }
    }

    /// What promql-parser 0.6 printed for the first attack: the verification refuses it even
    /// if a printer writes it again.
    #[test]
    fn a_printed_query_that_escapes_is_refused() {
        let escaped = r#"sum(M{a="", service="pay"} unless M{z="",namespace="shop"})"#;
        let why = verify_confined(escaped, "namespace", "shop").unwrap_err();
        assert!(why.contains("with no matcher on \"namespace\""), "{why}");
        for (q, want) in [
            (
                r#"sum(M{namespace="shop",namespace="shop"})"#,
                "with 2 matchers",
            ),
            (r#"sum(M{namespace=~"shop"})"#, "is not `=`"),
            (r#"sum(M{namespace="payments"})"#, "is not `=`"),
            (r#"sum(M{namespace="shop" or a="b"})"#, "with no matcher"),
        ] {
            let why = verify_confined(q, "namespace", "shop").unwrap_err();
            assert!(why.contains(want), "{q}: {why}");
        }
        let why = confine_to_namespace(
            r#"sum(info(up, {k8s_namespace="payments"}))"#,
            "namespace",
            "shop",
        )
        .unwrap_err();
        assert!(why.contains("info()"), "{why}");
    }
}
