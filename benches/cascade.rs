//! What the cascade itself costs.
//!
//! - `overhead/*`: a Lite0 -> Lite2 cascade whose threshold every input meets (so it always
//!   exits at stage 0) against Lite0 alone doing the least work that yields logits from the
//!   same image (preprocess + infer). Target: cascade / alone <= 1.02.
//! - `decision/*`: the per-inference decision path alone (softmax summary, exit rule) on
//!   1000 logits, which must not allocate.
//! - `preprocess/*`: one shared photo to each stage resolution.
//! - `cascade_at_0.7/*`: the Lite0 -> Lite2 cascade at threshold 0.7 on the bundled photos
//!   (coffee exits at stage 0; rocket and chelsea are deferred), Lite2 preloaded.
//!
//! `cargo bench --bench cascade`

use std::hint::black_box;
use std::path::PathBuf;

use cascade::input::decode_file;
use cascade::runtime::Preprocessor;
use cascade::{
    runtime::ExitRule, CascadeBuilder, LoadOptions, Metric, Model, ModelSpec, Summary, Threads,
    Threshold,
};
use criterion::{criterion_group, criterion_main, Criterion};

/// The allocator the `cascade` binary runs on, so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: cascade::memory::Allocator = cascade::memory::Allocator;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn spec(name: &str) -> ModelSpec {
    ModelSpec::new(root().join(format!("models/{name}.onnx")))
}

fn overhead(c: &mut Criterion) {
    Threads::new(1).expect("1 thread").apply();
    let image = decode_file(&root().join("assets/images/coffee.png")).expect("bundled image");
    let mut group = c.benchmark_group("overhead");
    group.sample_size(30);

    let mut model =
        Model::load(&spec("efficientnet-lite0"), LoadOptions::default()).expect("loads");
    let mut pre = Preprocessor::new(model.input().clone());
    group.bench_function("lite0_alone", |b| {
        b.iter(|| {
            let tensor = pre.run(&image).expect("preprocesses");
            model.infer(tensor).expect("runs")[0]
        })
    });

    let mut cascade = CascadeBuilder::new()
        .stage(spec("efficientnet-lite0"))
        .stage(spec("efficientnet-lite2"))
        .threshold(Threshold::new(0.0).expect("valid"))
        .build()
        .expect("builds");
    group.bench_function("cascade_exit_at_stage0", |b| {
        b.iter(|| cascade.classify(&image).expect("classifies").class)
    });
    assert!(
        !cascade.stages()[1].is_loaded(),
        "stage 1 must never have run"
    );
    group.finish();
}

fn decision(c: &mut Criterion) {
    let logits: Vec<f32> = (0..1000)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
        .collect();
    let rule = ExitRule {
        metric: Metric::MaxProb,
        threshold: Threshold::new(0.7).expect("valid"),
    };
    c.bench_function("decision/summary_and_exit_rule_1000_classes", |b| {
        b.iter(|| rule.judge(&Summary::of(black_box(&logits))))
    });
}

fn preprocess(c: &mut Criterion) {
    let image = decode_file(&root().join("assets/images/coffee.png")).expect("bundled image");
    let mut group = c.benchmark_group("preprocess");
    for name in [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
    ] {
        let model = Model::load(&spec(name), LoadOptions::default()).expect("loads");
        let mut pre = Preprocessor::new(model.input().clone());
        group.bench_function(format!("600x400_to_{}", model.input().height), |b| {
            b.iter(|| pre.run(&image).expect("preprocesses")[0])
        });
    }
    group.finish();
}

fn fixed_threshold(c: &mut Criterion) {
    Threads::new(1).expect("1 thread").apply();
    let mut cascade = CascadeBuilder::new()
        .stage(spec("efficientnet-lite0"))
        .stage(spec("efficientnet-lite2"))
        .threshold(Threshold::new(0.7).expect("valid"))
        .preload(true)
        .build()
        .expect("builds");
    let mut group = c.benchmark_group("cascade_at_0.7");
    group.sample_size(20);
    for name in ["coffee.png", "rocket.jpg", "chelsea.png"] {
        let image = decode_file(&root().join("assets/images").join(name)).expect("bundled image");
        let exit = cascade.classify(&image).expect("classifies").exit_stage;
        group.bench_function(format!("{name}_exits_at_stage{exit}"), |b| {
            b.iter(|| cascade.classify(&image).expect("classifies").class)
        });
    }
    group.finish();
}

criterion_group!(benches, overhead, decision, preprocess, fixed_threshold);
criterion_main!(benches);
