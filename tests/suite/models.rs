//! The bundled models on the shared ImageNet images: they load, classify, and reach the
//! accuracy `models/README.md` claims (so a broken export or preprocessing fails CI).

use crate::common;

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

fn top1_on(model: &str, step: usize) -> f64 {
    let mut c = Cascade::single(ModelSpec::new(common::model(model)), LoadOptions::default())
        .expect("model loads");
    let report = evaluate(&mut c, &common::sample_set(step), |_, _| {}).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    report.top1().expect("labelled")
}

#[test]
fn lite0_reaches_its_claimed_accuracy() {
    needs_shared_data!();
    let claimed = claimed_top1("efficientnet-lite0");
    let got = top1_on("efficientnet-lite0", 1);
    assert!(
        got >= claimed - 0.01,
        "Lite0 top-1 {got} < claimed {claimed} - 1 point"
    );
}

#[test]
fn lite2_reaches_its_claimed_accuracy() {
    needs_shared_data!();
    let claimed = claimed_top1("efficientnet-lite2");
    let got = top1_on("efficientnet-lite2", 1);
    assert!(
        got >= claimed - 0.01,
        "Lite2 top-1 {got} < claimed {claimed} - 1 point"
    );
}

#[test]
fn lite1_loads_and_classifies() {
    needs_shared_data!();
    // Every 10th image: 50 images, enough to tell a working model (~88%) from a broken one.
    let got = top1_on("efficientnet-lite1", 10);
    assert!(got >= 0.8, "Lite1 top-1 on 50 images: {got}");
}

#[test]
fn grayscale_images_are_classified() {
    needs_shared_data!();
    // Nine of the shared JPEGs are single-channel; they must decode and run like the rest.
    let ds = common::sample_set(1);
    let gray: Vec<_> = ds
        .samples
        .iter()
        .filter(|s| {
            image::ImageReader::open(&s.path)
                .and_then(|r| r.with_guessed_format())
                .ok()
                .and_then(|r| r.decode().ok())
                .is_some_and(|i| i.color().channel_count() == 1)
        })
        .collect();
    assert_eq!(gray.len(), 9, "the shared data has nine grayscale images");
    let mut c = Cascade::single(
        ModelSpec::new(common::model("efficientnet-lite0")),
        LoadOptions::default(),
    )
    .unwrap();
    for s in gray {
        let img = cascade::input::decode_file(&s.path).unwrap();
        assert!(c.classify(&img).unwrap().top.len() == 5);
    }
}

#[test]
fn multiply_adds_match_the_models_known_work() {
    // The models' multiply-adds as ../shared/tools/qemu-insncount/README.md gives them
    // (counted from the ONNX graphs, independently of tract): Lite0 385 M, Lite2 860 M.
    for (name, millions) in [("efficientnet-lite0", 385.0), ("efficientnet-lite2", 860.0)] {
        let model =
            cascade::Model::load(&ModelSpec::new(common::model(name)), LoadOptions::default())
                .expect("model loads");
        let got = model.multiply_adds().expect("tract counts the work") as f64 / 1e6;
        assert!(
            (got - millions).abs() / millions < 0.02,
            "{name}: {got:.1} M multiply-adds, expected about {millions} M"
        );
    }
}
