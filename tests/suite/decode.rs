//! Decoding at reduced scale against decoding whole, on real photos through Lite0.

use std::num::NonZeroU32;

use crate::common;

use cascade::input::{decode_bytes, decode_bytes_sized, decode_file, DecodeSize, RgbImage};
use cascade::{Cascade, CascadeBuilder, LoadOptions, ModelSpec};

/// `photo` scaled up `factor` times and encoded as a baseline JPEG (quality 92): a large
/// photo whose content the repository's small one fixes.
fn enlarged_jpeg(photo: &RgbImage, factor: u32) -> Vec<u8> {
    let (w, h) = photo.dimensions();
    let large = image::imageops::resize(
        photo,
        w * factor,
        h * factor,
        image::imageops::FilterType::Triangle,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&large)
        .expect("encodes");
    out
}

/// The photos whose best two Lite0 classes are at least one logit apart under ONNX Runtime
/// (a near-tie may flip on any change of pixels, scaled decoding or not), every third.
fn clear_photos() -> Vec<String> {
    let csv = std::fs::read_to_string(common::sample_dir().join("onnxruntime-top1.csv"))
        .expect("the reference answers");
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let margin: f32 = fields.get(4)?.parse().ok()?;
            (fields.get(1) == Some(&"efficientnet-lite0") && margin >= 1.0)
                .then(|| fields[0].to_string())
        })
        .step_by(3)
        .collect()
}

/// The size a cascade asks for: whole when that fits the memory budget.
fn at_least(n: u32) -> DecodeSize {
    DecodeSize::ShortSideAtLeast(NonZeroU32::new(n).unwrap())
}

/// Always reduced as far as `n` allows.
fn side(n: u32) -> DecodeSize {
    DecodeSize::Smallest(NonZeroU32::new(n).unwrap())
}

#[test]
fn a_cascade_needs_its_largest_stage_resize_target() {
    let lite0 = ModelSpec::new(common::model("efficientnet-lite0"));
    let lite2 = ModelSpec::new(common::model("efficientnet-lite2"));
    let single = Cascade::single(lite0.clone(), LoadOptions::default()).expect("loads");
    // round(224 / 0.875) = 256; Lite2: round(260 / 0.875) = 297, read from its manifest
    // without loading it.
    assert_eq!(single.decode_size(), at_least(256));
    let two = CascadeBuilder::new().stage(lite0).stage(lite2);
    assert_eq!(two.decode_size(), at_least(297));
    let built = two.build().expect("builds");
    assert!(!built.stages()[1].is_loaded());
    assert_eq!(built.decode_size(), at_least(297));
}

#[test]
fn a_large_jpeg_decoded_at_reduced_scale_gets_the_same_class_from_lite0() {
    let mut lite0 = Cascade::single(
        ModelSpec::new(common::model("efficientnet-lite0")),
        LoadOptions::default(),
    )
    .expect("Lite0 loads");
    // Lite0's need, always met at reduced scale (a cascade reduces only what does not fit
    // its memory budget whole, and these fit).
    let size = lite0.decode_size().smallest();
    assert_eq!(size, side(256));
    let photos = clear_photos();
    let mut compared = 0;
    for name in &photos {
        let photo = decode_file(&common::sample_dir().join(name)).expect("photo decodes");
        let (w, h) = photo.dimensions();
        if w.min(h) != 297 {
            continue; // one of the two kept at their smaller original size
        }
        // Shorter side 297 x 4 = 1188, 4.6 times the 256 Lite0 needs: 1/4 scale gives the
        // photo's own size back (1/8 would leave 149).
        let bytes = enlarged_jpeg(&photo, 4);
        let whole = decode_bytes(&bytes).expect("decodes whole");
        assert_eq!(whole.dimensions(), (4 * w, 4 * h));
        let for_cascade = decode_bytes_sized(&bytes, lite0.decode_size()).expect("decodes");
        assert_eq!(for_cascade.dimensions(), (4 * w, 4 * h), "it fits: whole");
        let reduced = decode_bytes_sized(&bytes, size).expect("decodes at 1/4");
        assert_eq!(reduced.dimensions(), (w, h), "{name}");
        assert!(reduced.width().min(reduced.height()) >= 256);

        let full_answer = lite0.classify(&whole).expect("classifies");
        let reduced_answer = lite0.classify(&reduced).expect("classifies");
        assert_eq!(
            reduced_answer.class, full_answer.class,
            "{name}: decoded at 1/4 and whole"
        );
        compared += 1;
        let (p_full, p_reduced) = (
            full_answer.top[0].probability,
            reduced_answer.top[0].probability,
        );
        assert!(
            (p_full - p_reduced).abs() < 0.1,
            "{name}: top-1 probability {p_full} whole, {p_reduced} at 1/4"
        );
    }
    assert!(compared >= 10, "{compared} photos compared of {photos:?}");
}

#[test]
fn each_reduction_keeps_the_needed_side() {
    let photo = decode_file(&common::sample_dir().join("n01440764_tench.JPEG")).expect("photo");
    assert_eq!(photo.dimensions(), (396, 297));
    let bytes = enlarged_jpeg(&photo, 4); // 1584 x 1188
    for (need, want) in [
        (148, (198, 149)), // 1188 / 8 = 148.5: 1/8 scale, ceil(1584 / 8) x ceil(1188 / 8)
        (149, (396, 297)), // 1/8 would give 148 on the short side: 1/4
        (297, (396, 297)), // Lite2 alone, or Lite0 -> Lite2: exactly 1/4
        (298, (792, 594)),
        (594, (792, 594)),
        (595, (1584, 1188)), // not twice as large: whole
    ] {
        let image = decode_bytes_sized(&bytes, side(need)).expect("decodes");
        assert_eq!(image.dimensions(), want, "need {need}");
        assert!(image.width().min(image.height()) >= need);
    }
    assert_eq!(
        decode_bytes_sized(&bytes, DecodeSize::Full)
            .expect("decodes")
            .dimensions(),
        (1584, 1188)
    );
}
