//! Per-model inference time, single thread, with and without tract's `conv_nhwc` rewrite,
//! on one fixed preprocessed tensor. This is the measurement behind
//! `LoadOptions::default()` (rewrite on for x86_64, off elsewhere).
//!
//! `cargo bench --bench inference`

use std::path::PathBuf;

use cascade::input::decode_file;
use cascade::runtime::Preprocessor;
use cascade::{LoadOptions, Model, ModelSpec, Threads};
use criterion::{criterion_group, criterion_main, Criterion};

/// The allocator the `cascade` binary runs on, so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: cascade::memory::Allocator = cascade::memory::Allocator;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inference(c: &mut Criterion) {
    Threads::new(1).expect("1 thread").apply();
    let image = decode_file(&root().join("assets/images/coffee.png")).expect("bundled image");
    for name in [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
    ] {
        let spec = ModelSpec::new(root().join(format!("models/{name}.onnx")));
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        for conv_nhwc in [false, true] {
            let mut model = Model::load(
                &spec,
                LoadOptions {
                    conv_nhwc,
                    ..LoadOptions::default()
                },
            )
            .expect("model loads");
            let tensor = Preprocessor::new(model.input().clone())
                .run(&image)
                .expect("preprocesses")
                .to_vec();
            let label = if conv_nhwc { "conv_nhwc" } else { "plain" };
            group.bench_function(label, |b| b.iter(|| model.infer(&tensor).expect("runs")[0]));
        }
        group.finish();
    }
}

criterion_group!(benches, inference);
criterion_main!(benches);
