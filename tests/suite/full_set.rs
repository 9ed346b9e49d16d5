//! The checks that need all 500 shared photographs (`../shared/data`, on the project's
//! machines and in CI, not in a user's clone): the bundled models reach the accuracy
//! `models/README.md` claims for them. Ignored by a plain `cargo test`; `scripts/test` runs
//! them with `--ignored` when the photographs are there, and CI (`CI=true`) requires them.

use crate::common;

use cascade::runtime::Workers;
use cascade::tune::evaluate;
use cascade::{Cascade, LoadOptions, ModelSpec};

/// The top-1 accuracy `models/README.md` reports for `model` in its
/// "this project (cascade eval)" column, as a fraction.
fn claimed_top1(model: &str) -> f64 {
    let readme = std::fs::read_to_string(common::root().join("models/README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with(&format!("| {model} @")))
        .unwrap_or_else(|| panic!("models/README.md has no accuracy row for {model}"));
    let cell = row.split('|').nth(3).expect("third column").trim();
    let top1 = cell.split('%').next().unwrap().trim();
    top1.parse::<f64>()
        .unwrap_or_else(|_| panic!("unparsable accuracy {cell:?} for {model}"))
        / 100.0
}

fn top1_on_the_full_set(model: &str) -> f64 {
    let mut c = Cascade::single(ModelSpec::new(common::model(model)), LoadOptions::default())
        .expect("model loads");
    let report = evaluate(&mut c, &common::full_set(), Workers::ONE, |_, _| {}).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    report.top1().expect("labelled")
}

#[test]
#[ignore = "needs ../shared/data; scripts/test runs it when present"]
fn lite0_reaches_its_claimed_accuracy() {
    needs_full_set!();
    let claimed = claimed_top1("efficientnet-lite0");
    let got = top1_on_the_full_set("efficientnet-lite0");
    assert!(
        got >= claimed - 0.01,
        "Lite0 top-1 {got} < claimed {claimed} - 1 point"
    );
}

#[test]
#[ignore = "needs ../shared/data; scripts/test runs it when present"]
fn lite2_reaches_its_claimed_accuracy() {
    needs_full_set!();
    let claimed = claimed_top1("efficientnet-lite2");
    let got = top1_on_the_full_set("efficientnet-lite2");
    assert!(
        got >= claimed - 0.01,
        "Lite2 top-1 {got} < claimed {claimed} - 1 point"
    );
}
