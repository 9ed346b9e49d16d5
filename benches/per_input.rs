//! What one input costs around the model, next to the model itself (issue 13: everything
//! but the inference at most 3% of Lite0's inference for a 500x375 JPEG).
//!
//! - `decision/*`: the softmax summary and exit rule over Lite0's 1000 logits for a photo,
//!   computing what each metric needs (`Summary::for_metric`, as the cascade does) and
//!   everything (`Summary::of`).
//! - `decode/*`: a 500x375 and a 1440x1080 JPEG (a repository photo upscaled and encoded
//!   at quality 90 here, so the bench needs nothing beside the clone): whole (zune-jpeg),
//!   as a cascade asks (whole, as both fit the memory budget), and as small as Lite0 alone
//!   (shorter side 256) or a Lite0 -> Lite2 cascade (297) allows (jpeg-decoder in the DCT
//!   domain: the 1440x1080 one at 1/4 and 1/2 scale; the 500x375 one is too small).
//! - `per_input/*`: the whole per-input overhead for each of them (read the file, decode,
//!   preprocess for Lite0, decide), its parts (reading the file, decoding it, decoding it
//!   into a reused image as a stream does, preprocessing), and one Lite0 inference in the
//!   same run, so overhead / inference can be read off.
//! - `per_input/overhead_shared_500x375_photos`, when `../shared/data` is beside the clone:
//!   the same overhead over every 500x375 ImageNet photo there (real camera JPEGs, 99 of
//!   the 104 4:4:4, 23 to 313 KB, where the bench's own is 4:2:0 and about 40 KB), all of
//!   them per iteration, so criterion's time divided by their count is the mean per photo.
//!
//! - `camera_frame/*`: one camera frame's overhead in a stream (conversion to RGB, reusing
//!   the stream's buffers, then preprocessing for Lite0) at the sizes a webcam offers, MJPEG,
//!   YUYV and I420 (`rpicam-vid --codec yuv420`): what `stream --device` saves by asking for
//!   the smallest size the cascade needs (640x360 for a camera set to 16:9) instead of the
//!   camera's 1920x1080, and what the raw formats' conversion costs.
//!
//! One thread, as in the README's figures. `cargo bench --bench per_input`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use cascade::input::{
    decode_bytes_into, decode_bytes_sized, decode_file, decode_file_sized, DecodeSize,
    FrameConverter, FrameFormat, FrameSize, PixelFormat, RgbImage,
};
use cascade::runtime::{ExitRule, Preprocessor};
use cascade::{
    Cascade, CascadeBuilder, LoadOptions, Metric, Model, ModelSpec, Summary, Threads, Threshold,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};

/// The allocator the `cascade` binary runs on, so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: cascade::memory::Allocator = cascade::memory::Allocator;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository photo behind every input here (396x297, 4:3).
fn photo() -> RgbImage {
    decode_file(&root().join("assets/imagenet-sample/n01440764_tench.JPEG")).expect("photo")
}

/// The photo resized to `width x height` and encoded as a baseline JPEG, quality 90.
fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let resized = image::imageops::resize(
        &photo(),
        width,
        height,
        image::imageops::FilterType::Triangle,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&resized)
        .expect("encodes");
    out
}

fn spec(name: &str) -> ModelSpec {
    ModelSpec::new(root().join(format!("models/efficientnet-{name}.onnx")))
}

fn lite0() -> Model {
    Model::load(&spec("lite0"), LoadOptions::default()).expect("Lite0 loads")
}

/// What a cascade of Lite0 alone needs decoded (shorter side 256), as `classify` asks it.
fn lite0_size() -> DecodeSize {
    Cascade::single(spec("lite0"), LoadOptions::default())
        .expect("Lite0 loads")
        .decode_size()
}

/// What a Lite0 -> Lite2 cascade needs decoded (shorter side 297), from the manifests.
fn lite0_lite2_size() -> DecodeSize {
    CascadeBuilder::new()
        .stage(spec("lite0"))
        .stage(spec("lite2"))
        .decode_size()
}

/// Every 500x375 photo of `../shared/data/imagenet-sample-500`, by name; none without it.
fn shared_500x375_photos() -> Vec<PathBuf> {
    let dir = root().join("../shared/data/imagenet-sample-500");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut photos: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| image::image_dimensions(p).is_ok_and(|d| d == (500, 375)))
        .collect();
    photos.sort();
    photos
}

fn rule(metric: Metric) -> ExitRule {
    ExitRule {
        metric,
        threshold: Threshold::new(0.7).expect("valid"),
    }
}

/// Decodes an image file the way `classify` does for a cascade needing `size`.
fn decode_for(path: &Path, size: DecodeSize) -> RgbImage {
    decode_file_sized(path, size).expect("decodes")
}

fn decision(c: &mut Criterion) {
    let mut model = lite0();
    let mut pre = Preprocessor::new(model.input().clone());
    let tensor = pre.run(&photo()).expect("preprocesses").to_vec();
    let logits = model.infer(&tensor).expect("runs").to_vec();
    let mut group = c.benchmark_group("decision");
    for metric in Metric::ALL {
        let rule = rule(metric);
        group.bench_function(format!("lite0_logits_{metric}"), |b| {
            b.iter(|| rule.judge(&Summary::for_metric(black_box(&logits), metric)))
        });
    }
    let rule = rule(Metric::MaxProb);
    group.bench_function("lite0_logits_everything", |b| {
        b.iter(|| rule.judge(&Summary::of(black_box(&logits))))
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let sizes = [
        ("whole", DecodeSize::Full),
        ("for_lite0_lite2", lite0_lite2_size()),
        ("smallest_for_lite0", lite0_size().smallest()),
        ("smallest_for_lite0_lite2", lite0_lite2_size().smallest()),
    ];
    let mut group = c.benchmark_group("decode");
    for (w, h) in [(500, 375), (1440, 1080)] {
        let bytes = jpeg(w, h);
        for (name, size) in sizes {
            let decoded = decode_bytes_sized(&bytes, size).expect("decodes");
            let (dw, dh) = decoded.dimensions();
            group.bench_function(format!("{w}x{h}_{name}_to_{dw}x{dh}"), |b| {
                b.iter(|| decode_bytes_sized(black_box(&bytes), size).expect("decodes"))
            });
        }
    }
    group.finish();
}

/// One pixel as BT.601 studio-range Y, U and V, as a camera encodes it.
fn yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(f32::from);
    [
        16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
        128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
        128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
    ]
    .map(|x| x.round() as u8)
}

/// `image` as a YUYV frame (each pair of pixels with the first one's chroma), as a webcam
/// sends it.
fn yuyv(image: &RgbImage) -> Vec<u8> {
    let pixels: Vec<[u8; 3]> = image.pixels().map(|p| yuv(p.0)).collect();
    pixels
        .chunks_exact(2)
        .flat_map(|pair| [pair[0][0], pair[0][1], pair[1][0], pair[0][2]])
        .collect()
}

/// `image` (even sides) as an I420 frame, as `rpicam-vid --codec yuv420` writes it: the Y
/// plane, then U and V planes of a quarter of the pixels, each from a 2x2 block's top-left.
fn i420(image: &RgbImage) -> Vec<u8> {
    let mut planes = [Vec::new(), Vec::new(), Vec::new()];
    for (x, y, p) in image.enumerate_pixels() {
        let [l, u, v] = yuv(p.0);
        planes[0].push(l);
        if x % 2 == 0 && y % 2 == 0 {
            planes[1].push(u);
            planes[2].push(v);
        }
    }
    planes.concat()
}

fn camera_frame(c: &mut Criterion) {
    Threads::ONE.apply();
    let model = lite0();
    let mut pre = Preprocessor::new(model.input().clone());
    let mut group = c.benchmark_group("camera_frame");
    group.sample_size(30);
    for (w, h) in [(1920, 1080), (1280, 720), (640, 360)] {
        let size = FrameSize::new(w, h).expect("a frame size");
        let rgb = image::imageops::resize(&photo(), w, h, image::imageops::FilterType::Triangle);
        let frames = [
            (PixelFormat::Mjpeg, jpeg(w, h)),
            (PixelFormat::Yuyv, yuyv(&rgb)),
            (PixelFormat::Yuv420, i420(&rgb)),
        ];
        for (pixel, bytes) in frames {
            let format = FrameFormat::new(pixel, Some(size)).expect("a frame format");
            let mut converter = FrameConverter::new(format).with_decode_size(lite0_size());
            group.bench_function(format!("{pixel}_{w}x{h}"), |b| {
                b.iter(|| {
                    let image = converter.convert(black_box(&bytes)).expect("converts");
                    pre.run(image).expect("preprocesses")[0]
                })
            });
        }
    }
    group.finish();
}

fn per_input(c: &mut Criterion) {
    Threads::ONE.apply();
    let mut model = lite0();
    let mut pre = Preprocessor::new(model.input().clone());
    let logits = {
        let tensor = pre.run(&photo()).expect("preprocesses").to_vec();
        model.infer(&tensor).expect("runs").to_vec()
    };
    let rule = rule(Metric::MaxProb);
    let size = lite0_size();
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut group = c.benchmark_group("per_input");
    group.sample_size(30);
    for (w, h, size, name) in [
        (500, 375, size, ""),
        (1440, 1080, size, ""),
        (1440, 1080, size.smallest(), "_reduced"),
    ] {
        let path = dir.path().join(format!("{w}x{h}.jpg"));
        std::fs::write(&path, jpeg(w, h)).expect("writes");
        // Everything but the inference: read, decode, preprocess, decide.
        group.bench_function(format!("overhead_{w}x{h}{name}"), |b| {
            b.iter(|| {
                let image = decode_for(&path, size);
                let tensor = pre.run(&image).expect("preprocesses");
                black_box(tensor[0]);
                rule.judge(&Summary::for_metric(black_box(&logits), rule.metric))
            })
        });
        group.bench_function(format!("read_{w}x{h}{name}"), |b| {
            b.iter(|| std::fs::read(black_box(&path)).expect("reads"))
        });
        let bytes = std::fs::read(&path).expect("reads");
        group.bench_function(format!("decode_{w}x{h}{name}"), |b| {
            b.iter(|| decode_bytes_sized(black_box(&bytes), size).expect("decodes"))
        });
        let mut reused = RgbImage::new(0, 0);
        group.bench_function(format!("decode_into_reused_{w}x{h}{name}"), |b| {
            b.iter(|| decode_bytes_into(black_box(&bytes), size, &mut reused).expect("decodes"))
        });
        let image = decode_for(&path, size);
        let (dw, dh) = image.dimensions();
        group.bench_function(format!("preprocess_{dw}x{dh}_to_lite0"), |b| {
            b.iter(|| pre.run(&image).expect("preprocesses")[0])
        });
    }
    let photos = shared_500x375_photos();
    if !photos.is_empty() {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        let name = format!("overhead_shared_500x375_photos_{}", photos.len());
        group.bench_function(name, |b| {
            b.iter(|| {
                for path in &photos {
                    let image = decode_for(path, size);
                    let tensor = pre.run(&image).expect("preprocesses");
                    black_box(tensor[0]);
                    black_box(rule.judge(&Summary::for_metric(black_box(&logits), rule.metric)));
                }
            })
        });
        group.sample_size(30);
        group.sampling_mode(SamplingMode::Auto);
    }
    let tensor = pre.run(&photo()).expect("preprocesses").to_vec();
    group.bench_function("lite0_inference", |b| {
        b.iter(|| model.infer(black_box(&tensor)).expect("runs")[0])
    });
    group.finish();
}

criterion_group!(benches, decision, decode, per_input, camera_frame);
criterion_main!(benches);
