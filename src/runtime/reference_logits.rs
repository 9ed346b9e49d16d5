//! Logits agree across architectures: the x86_64 logits of Lite0 on one bundled photo are
//! committed in `tests/fixtures/lite0-tench-logits.txt`, and every target must reproduce
//! them within `TOLERANCE` with the same top-1. `scripts/test` runs the library's tests on
//! aarch64 under qemu, so this is where the NEON kernels (tract's and the project's own) meet
//! the x86_64 ones. A unit test rather than an integration test: on aarch64 every test
//! binary is a thin-LTO link of all of tract (~4 minutes of CI each), and the library's
//! tests are built there anyway. Regenerate on x86_64 with `CASCADE_WRITE_REFERENCE=1`.

use std::path::{Path, PathBuf};

use crate::input::decode_file;
use crate::runtime::{LoadOptions, Model, ModelSpec, Preprocessor, Summary};

/// Max absolute logit difference allowed between targets. Measured: about 1e-5
/// (x86_64 with the NHWC rewrite against aarch64 NEON kernels); float summation order
/// differs between kernels, so exact equality is not expected.
const TOLERANCE: f32 = 1e-4;

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn lite0_logits_match_the_x86_64_reference() {
    let reference = path("tests/fixtures/lite0-tench-logits.txt");
    let mut model = Model::load(
        &ModelSpec::new(path("models/efficientnet-lite0.onnx")),
        LoadOptions::default(),
    )
    .unwrap();
    let img = decode_file(&path("assets/imagenet-sample/n01440764_tench.JPEG")).unwrap();
    let mut pre = Preprocessor::new(model.input().clone());
    let logits = model.infer(pre.run(&img).unwrap()).unwrap().to_vec();

    if cfg!(target_arch = "x86_64") && std::env::var_os("CASCADE_WRITE_REFERENCE").is_some() {
        let text: String = logits.iter().map(|l| format!("{l:.7e}\n")).collect();
        std::fs::write(&reference, text).unwrap();
    }
    let want: Vec<f32> = std::fs::read_to_string(&reference)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(want.len(), logits.len());
    let max_diff = want
        .iter()
        .zip(&logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("max |logit - x86_64 reference| = {max_diff:e}");
    assert!(max_diff <= TOLERANCE, "max logit difference {max_diff}");
    assert_eq!(Summary::of(&logits).class(), Summary::of(&want).class());
    assert_eq!(Summary::of(&logits).class(), Some(0), "tench");
}
