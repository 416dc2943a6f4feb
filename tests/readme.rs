//! The README's demo is what its first command prints: the table and the sentences around it are
//! made from `prescaler backtest` on the bundled demo, and this test fails when they differ — the
//! planner improves, the numbers move, and the README cannot go stale. To rewrite the README's
//! block from the command: `scripts/update-readme-demo.sh`.
//!
//! Also: the demo chart's default window is the two hours around the week's steepest rise, which
//! on the demo is the 09:00 Berlin newsletter (08:00 UTC in February).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BEGIN: &str = "<!-- demo:begin (generated: scripts/update-readme-demo.sh) -->\n";
const END: &str = "<!-- demo:end -->";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README's first command, run from the repository as a new user runs it.
fn backtest(extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prescaler"))
        .current_dir(repo())
        .args([
            "backtest",
            "--trace",
            "examples/demo-trace.csv",
            "--spec",
            "examples/checkout.yaml",
        ])
        .args(extra)
        .env_remove("PROMETHEUS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn more_or_less(ratio: f64) -> String {
    let pct = (ratio - 1.0) * 100.0;
    if pct >= 0.05 {
        format!("{pct:.1} % more")
    } else if pct <= -0.05 {
        format!("{:.1} % less", -pct)
    } else {
        "as much".into()
    }
}

/// The README's block: the story in numbers, then the table as printed.
fn demo_block() -> String {
    let (table, _) = backtest(&[]);
    let (json, _) = backtest(&["--json"]);
    let report: Value = serde_json::from_str(&json).unwrap();
    let score = |name: &str| {
        report["scores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["strategy"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .clone()
    };
    let (p, h80, h100, oracle) = (
        score("prescaler"),
        score("hpa80"),
        score("hpa100"),
        score("oracle"),
    );
    let minutes = |s: &Value| s["violationMinutes"].as_i64().unwrap();
    let cost = |s: &Value| s["cost"].as_f64().unwrap();
    let comparison = &report["comparison"];
    let equal = comparison["hpaCostAtEqualViolations"].as_f64();
    let saving = comparison["savingAtEqualViolations"].as_f64();
    let mut story = format!(
        "Over the scored week prescaler was short of replicas for **{} minutes**, the HPA at an \
         80 % target for {} and at 100 % for {}. prescaler asked for {:.1} replica-hours: {} than \
         the HPA at 80 % ({:.1}) and {} than perfect foresight ({:.1}).",
        minutes(&p),
        minutes(&h80),
        minutes(&h100),
        cost(&p),
        more_or_less(cost(&p) / cost(&h80)),
        cost(&h80),
        more_or_less(cost(&p) / cost(&oracle)),
        cost(&oracle),
    );
    if let (Some(equal), Some(saving)) = (equal, saving) {
        story.push_str(&format!(
            " Tuned to be short as rarely as prescaler, the HPA would need {equal:.1} \
             replica-hours: at equal violation minutes prescaler costs {:.1} % {}.",
            saving.abs() * 100.0,
            if saving >= 0.0 { "less" } else { "more" }
        ));
    }
    format!("{story}\n\n```\n{table}```\n")
}

fn readme_parts(readme: &str) -> (usize, usize) {
    let start = readme
        .find(BEGIN)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN:?}"))
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .unwrap_or_else(|| panic!("README.md has no {END:?}"));
    (start, end)
}

#[test]
fn the_readme_demo_is_what_the_command_prints() {
    let path = repo().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (start, end) = readme_parts(&readme);
    let block = demo_block();
    if std::env::var_os("PRESCALER_UPDATE_README").is_some() {
        let updated = format!("{}{block}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        eprintln!("README.md's demo block rewritten:\n{block}");
        return;
    }
    assert!(
        readme[start..end] == block,
        "README.md's demo is stale; run scripts/update-readme-demo.sh. The command prints:\n{block}\nThe README has:\n{}",
        &readme[start..end]
    );
    // The README names the commands that exist.
    assert!(
        !readme.contains("`prescaler demo-trace`"),
        "it is prescaler-bench demo-trace"
    );
    assert!(readme.contains("prescaler-bench demo-trace"));
}

#[test]
fn the_demo_chart_shows_the_newsletter_spike() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("demo.svg");
    let (_, stderr) = backtest(&["--svg", svg.to_str().unwrap()]);
    // "wrote …/demo.svg (2h from 2026-02-16 07:00 UTC)": a window around 08:00 UTC.
    let from = stderr
        .lines()
        .find_map(|l| l.split_once("(2h from ")?.1.strip_suffix(" UTC)"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let hour: u32 = from[11..13].parse().unwrap();
    assert!((6..=8).contains(&hour), "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.contains("<svg"),
        "not an SVG"
    );
    assert!(Path::new(&svg).metadata().unwrap().len() > 1000);
}
