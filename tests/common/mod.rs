//! Paths shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use cascade::dataset::Dataset;
use cascade::labels::Labels;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data/imagenet-sample-500`, present on every developer machine and in CI.
pub fn sample_dir() -> PathBuf {
    root().join("../shared/data/imagenet-sample-500")
}

pub fn model(name: &str) -> PathBuf {
    root().join("models").join(format!("{name}.onnx"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

pub fn imagenet_labels() -> Labels {
    Labels::from_file(&root().join("models/imagenet-classes.tsv")).expect("bundled class list")
}

/// The 500 shared images, every `step`-th one kept.
pub fn sample_set(step: usize) -> Dataset {
    let mut ds = Dataset::open(&sample_dir(), &imagenet_labels()).expect("shared data");
    ds.take_every(step);
    ds
}

/// Asserts a failing run whose stderr holds exactly one `error` line, mentioning `needle`,
/// and no panic.
pub fn assert_fails_with(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    assert!(errors[0].contains(needle), "{needle:?} not in {stderr:?}");
}
