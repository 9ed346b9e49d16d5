//! Model manifests (`my-model.toml`): an error or a manifest within its documented ranges.
#![no_main]

use std::path::Path;

use cascade::runtime::Manifest;
use cascade_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let Ok(m) = Manifest::parse(text, Path::new("models/fuzz.toml")) else {
        return;
    };
    let input = m.input;
    assert!((1..=8192).contains(&input.height) && (1..=8192).contains(&input.width));
    assert!(input.crop_fraction > 0.0 && input.crop_fraction <= 1.0);
    let n = input.normalization;
    assert!(n.scale.iter().chain(&n.offset).all(|v| v.is_finite()));
    assert_eq!(input.len(), 3 * input.height * input.width);
    if let Some(labels) = &m.labels {
        assert!(labels.is_absolute() || labels.starts_with("models"));
    }
});
