//! Paths and runners shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cascade::runtime::Labels;
use cascade::tune::Dataset;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the 500 shared photographs (`../shared/data`) are beside the clone. The checks
/// that need all 500 (accuracy against `models/README.md`) return early, saying so, on a
/// clone with nothing beside it; in CI (`CI=true`) their absence fails them.
pub fn full_set_present() -> bool {
    if full_set_dir().is_dir() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI needs ../shared/data beside the clone"
    );
    eprintln!("skipped: {} is not there", full_set_dir().display());
    false
}

/// Returns from the calling test when the 500 shared photographs are absent (see
/// [`full_set_present`]).
#[allow(unused_macros)]
macro_rules! needs_full_set {
    () => {
        if !crate::common::full_set_present() {
            return;
        }
    };
}

/// `../shared/data/imagenet-sample-500`: on every developer machine and in CI, not in a
/// user's clone.
pub fn full_set_dir() -> PathBuf {
    root().join("../shared/data/imagenet-sample-500")
}

/// `assets/imagenet-sample`: 57 of the 500 photographs, scaled down, in the repository
/// (see its README). Every test that needs real photos reads these.
pub fn sample_dir() -> PathBuf {
    root().join("assets/imagenet-sample")
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

/// `count` photos of the repository's set, spread over its classes.
pub fn sample_set(count: usize) -> Dataset {
    let mut ds = Dataset::open(&sample_dir(), &imagenet_labels()).expect("assets/imagenet-sample");
    ds.take_every(ds.samples.len() / count.max(1));
    ds.truncate(count);
    ds
}

/// All 500 shared photographs (check [`full_set_present`] first).
pub fn full_set() -> Dataset {
    Dataset::open(&full_set_dir(), &imagenet_labels()).expect("../shared/data")
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

/// Runs the `cascade` binary on one thread, with no standard input.
pub fn cascade(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["--threads", "1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// [`cascade`], asserting a successful run.
pub fn cascade_ok(args: &[&str]) -> Output {
    let out = cascade(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A bundled model's path as a command-line argument.
pub fn model_arg(name: &str) -> String {
    arg(&model(name)).to_string()
}

/// Runs the binary, reads one byte of its standard output and hangs up, as `| head -c1`
/// would; the run must still end successfully, without a panic.
pub fn assert_closed_stdout_is_success(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["--threads", "1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("the binary ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}
