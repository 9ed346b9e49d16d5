//! Logits agree across architectures: the x86_64 logits of Lite0 on one bundled photo are
//! committed in `tests/fixtures/lite0-tench-logits.txt`, and every target must reproduce
//! them within `TOLERANCE` with the same top-1 (run on aarch64 under qemu by
//! `scripts/test`). Regenerate on x86_64 with `CASCADE_WRITE_REFERENCE=1`.

#[macro_use]
mod common;

use cascade::input::decode_file;
use cascade::runtime::Preprocessor;
use cascade::{LoadOptions, Model, ModelSpec, Summary};

/// Max absolute logit difference allowed between targets. Measured: about 1e-5
/// (x86_64 with the NHWC rewrite against aarch64 NEON kernels); float summation order
/// differs between kernels, so exact equality is not expected.
const TOLERANCE: f32 = 1e-4;

#[test]
fn lite0_logits_match_the_x86_64_reference() {
    let reference = common::fixture("lite0-tench-logits.txt");
    let mut model = Model::load(
        &ModelSpec::new(common::model("efficientnet-lite0")),
        LoadOptions::default(),
    )
    .unwrap();
    let img = decode_file(&common::sample_dir().join("n01440764_tench.JPEG")).unwrap();
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
