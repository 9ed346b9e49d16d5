//! How large a cascade's inputs must be decoded: at least the largest resize target among
//! its stages, so that decoding a JPEG at reduced scale (when it is too large for the memory
//! budget whole; see `input::DecodeSize`) never takes a pixel from a stage that would have
//! used it: every stage still only scales down, as from the full image.
//!
//! A stage's input is its resident model's, or else its manifest's; a stage with neither
//! (an unloaded model without a manifest) could need any size, so its cascade decodes whole.

use std::num::NonZeroU32;

use crate::input::DecodeSize;
use crate::runtime::manifest::{InputSpec, Manifest};
use crate::runtime::{Cascade, CascadeBuilder, ModelSpec};

/// The shorter side a source image needs so that preprocessing for `spec` only scales it
/// down: the resize target, `round(side / crop_fraction)`, of the input's longer side (for
/// a square input, the target of its shorter side, as `Geometry::plan` resizes it).
pub fn needed_short_side(spec: &InputSpec) -> NonZeroU32 {
    let target = |side: usize| (side as f64 / f64::from(spec.crop_fraction)).round();
    let side = target(spec.width).max(target(spec.height));
    // Sides are at most 8192 and the crop fraction in (0, 1]: the target fits u32 when the
    // fraction is not absurdly small, and saturates (never decoding smaller) when it is.
    NonZeroU32::new(side.min(f64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN)
}

/// The decode size for stages with these inputs: the largest needed side, or the full
/// image when any input is unknown.
pub fn decode_size_for(inputs: impl IntoIterator<Item = Option<InputSpec>>) -> DecodeSize {
    let mut largest: Option<NonZeroU32> = None;
    for input in inputs {
        let Some(input) = input else {
            return DecodeSize::Full;
        };
        let side = needed_short_side(&input);
        largest = Some(largest.map_or(side, |l| l.max(side)));
    }
    largest.map_or(DecodeSize::Full, DecodeSize::ShortSideAtLeast)
}

/// The input a model's manifest (explicit, or the sidecar beside the model) describes, at
/// the stage's own input size if it names one (as loading it would make it), read without
/// loading the model; `None` without a readable manifest.
fn manifest_input(spec: &ModelSpec) -> Option<InputSpec> {
    let path = match (&spec.manifest, spec.path()) {
        (Some(m), _) => m.clone(),
        (None, Some(model)) => Manifest::sidecar_of(model),
        (None, None) => return None,
    };
    if !path.is_file() {
        return None;
    }
    match Manifest::from_file(&path) {
        Ok(manifest) => Some(match spec.input_size {
            Some(size) => InputSpec {
                height: size,
                width: size,
                ..manifest.input
            },
            None => manifest.input,
        }),
        Err(e) => {
            log::debug!("decoding whole images: {e}");
            None
        }
    }
}

impl Cascade {
    /// How large inputs to this cascade must be decoded (see the module's notes). Reads the
    /// manifests of stages not yet loaded, so ask once, not per input.
    pub fn decode_size(&self) -> DecodeSize {
        decode_size_for(self.stages().iter().map(|stage| match stage.model() {
            Some(model) => Some(model.input().clone()),
            None => manifest_input(stage.spec()),
        }))
    }
}

impl CascadeBuilder {
    /// How large inputs to the cascade this builds must be decoded, from the stages'
    /// manifests (no model is loaded).
    pub fn decode_size(&self) -> DecodeSize {
        decode_size_for(self.stages.iter().map(manifest_input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::manifest::{Layout, Normalization};

    fn input(height: usize, width: usize, crop_fraction: f32) -> InputSpec {
        InputSpec {
            layout: Layout::Nchw,
            height,
            width,
            crop_fraction,
            normalization: Normalization::imagenet_torchvision(),
        }
    }

    fn side(n: u32) -> DecodeSize {
        DecodeSize::ShortSideAtLeast(NonZeroU32::new(n).unwrap())
    }

    #[test]
    fn the_needed_side_is_the_resize_target() {
        // EfficientNet-Lite0, 1, 2: round(224 / 0.875) = 256, 274.29 -> 274, 297.14 -> 297.
        assert_eq!(needed_short_side(&input(224, 224, 0.875)).get(), 256);
        assert_eq!(needed_short_side(&input(240, 240, 0.875)).get(), 274);
        assert_eq!(needed_short_side(&input(260, 260, 0.875)).get(), 297);
        // A non-square input needs its longer side's target on either axis.
        assert_eq!(needed_short_side(&input(200, 300, 1.0)).get(), 300);
    }

    #[test]
    fn the_largest_stage_sets_the_size_and_an_unknown_one_decodes_whole() {
        let (small, large) = (input(224, 224, 0.875), input(260, 260, 0.875));
        assert_eq!(
            decode_size_for([Some(small.clone()), Some(large.clone())]),
            side(297)
        );
        assert_eq!(decode_size_for([Some(large), None]), DecodeSize::Full);
        assert_eq!(decode_size_for([]), DecodeSize::Full);
    }

    #[test]
    fn the_bundled_manifests_give_the_largest_target() {
        let model = |name: &str| {
            ModelSpec::new(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("models/efficientnet-{name}.onnx")),
            )
        };
        let builder = CascadeBuilder::new()
            .stage(model("lite0"))
            .stage(model("lite2"));
        assert_eq!(builder.decode_size(), side(297));
        let alone = CascadeBuilder::new().stage(model("lite0"));
        assert_eq!(alone.decode_size(), side(256));
        // Lite2 run at 320: round(320 / 0.875) = 366.
        let larger = CascadeBuilder::new()
            .stage(model("lite0"))
            .stage(model("lite2").at_size(320).unwrap());
        assert_eq!(larger.decode_size(), side(366));
        let unknown = CascadeBuilder::new().stage(ModelSpec::new("/no/such/model.onnx"));
        assert_eq!(unknown.decode_size(), DecodeSize::Full);
    }
}
