//! The sidecar manifest that says how to feed a classifier: input size, layout,
//! normalization and labels.
//!
//! A model `foo.onnx` is described by `foo.toml` beside it. With a manifest, any ONNX image
//! classifier can be used; without one, [`InputSpec::infer`] derives what the ONNX input
//! shape tells and the caller logs what had to be assumed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Memory layout of the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[1, 3, H, W]`: channel planes (PyTorch exports).
    Nchw,
    /// `[1, H, W, 3]`: interleaved pixels (TensorFlow exports).
    Nhwc,
}

impl Layout {
    /// The 4-d input shape for this layout.
    pub fn shape(self, height: usize, width: usize) -> [usize; 4] {
        match self {
            Layout::Nchw => [1, 3, height, width],
            Layout::Nhwc => [1, height, width, 3],
        }
    }
}

/// Per-channel affine normalization `x = pixel * scale[c] + offset[c]`, pixel in 0..=255, RGB.
///
/// Both manifest forms (`mean`/`std` in 0..1 units, or `scale`/`offset`) reduce to this, so
/// the per-pixel loop is one multiply-add whatever the model's convention.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub scale: [f32; 3],
    pub offset: [f32; 3],
}

impl Normalization {
    /// From torchvision-style `mean`/`std` given for pixels in 0..1.
    pub fn from_mean_std(mean: [f32; 3], std: [f32; 3]) -> std::result::Result<Self, String> {
        let mut scale = [0.0; 3];
        let mut offset = [0.0; 3];
        for c in 0..3 {
            if !(std[c].is_finite() && std[c] > 0.0 && mean[c].is_finite()) {
                return Err(format!(
                    "std must be positive and finite, mean finite (channel {c})"
                ));
            }
            scale[c] = 1.0 / (255.0 * std[c]);
            offset[c] = -mean[c] / std[c];
        }
        Ok(Normalization { scale, offset })
    }

    /// The ImageNet mean/std torchvision uses; the usual guess for an undocumented model.
    pub fn imagenet_torchvision() -> Self {
        // Constants are valid, so this cannot fail.
        Self::from_mean_std([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).unwrap_or(Normalization {
            scale: [1.0 / 255.0; 3],
            offset: [0.0; 3],
        })
    }
}

/// Everything preprocessing needs to know about one model's input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    /// Share of the resized image kept by the center crop (0.875 is the ImageNet custom:
    /// resize the shorter side to `size / 0.875`, then crop `size`).
    pub crop_fraction: f32,
    pub normalization: Normalization,
}

impl InputSpec {
    /// The input tensor shape, batch 1.
    pub fn shape(&self) -> [usize; 4] {
        self.layout.shape(self.height, self.width)
    }

    /// Number of f32 values in one input tensor.
    pub fn len(&self) -> usize {
        3 * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Derives a spec from a fixed ONNX input shape alone. Returns the spec and the list of
    /// things that had to be assumed (normalization, crop), for the caller to report.
    pub fn infer(dims: &[usize]) -> std::result::Result<(InputSpec, Vec<String>), String> {
        let (layout, height, width) = match dims {
            [1, 3, h, w] => (Layout::Nchw, *h, *w),
            [1, h, w, 3] => (Layout::Nhwc, *h, *w),
            _ => {
                return Err(format!(
                    "input shape {dims:?} is not [1,3,H,W] or [1,H,W,3]"
                ))
            }
        };
        let assumed = vec![
            "ImageNet mean/std normalization (0.485,0.456,0.406)/(0.229,0.224,0.225)".to_string(),
            "center crop fraction 0.875".to_string(),
            "no labels file (classes are numbered)".to_string(),
        ];
        Ok((
            InputSpec {
                layout,
                height,
                width,
                crop_fraction: 0.875,
                normalization: Normalization::imagenet_torchvision(),
            },
            assumed,
        ))
    }
}

/// A parsed sidecar manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub path: PathBuf,
    /// A short name for reports.
    pub name: Option<String>,
    pub input: InputSpec,
    /// Labels file, resolved relative to the manifest's folder.
    pub labels: Option<PathBuf>,
}

/// The manifest's TOML form. `size` is a side for square inputs or `[height, width]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: Option<String>,
    layout: Layout,
    size: Size,
    #[serde(default = "default_crop")]
    crop_fraction: f32,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    scale: Option<[f32; 3]>,
    offset: Option<[f32; 3]>,
    labels: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Square(usize),
    HeightWidth([usize; 2]),
}

fn default_crop() -> f32 {
    0.875
}

impl Manifest {
    /// The sidecar path for a model: `foo.onnx` -> `foo.toml`.
    pub fn sidecar_of(model: &Path) -> PathBuf {
        model.with_extension("toml")
    }

    /// Reads and validates a manifest file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses manifest text; `path` names it in errors and anchors the labels path.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let file: ManifestFile =
            toml::from_str(text).map_err(|e| bad(crate::error::one_line(&e)))?;
        let (height, width) = match file.size {
            Size::Square(s) => (s, s),
            Size::HeightWidth([h, w]) => (h, w),
        };
        if height == 0 || width == 0 || height > 8192 || width > 8192 {
            return Err(bad(format!(
                "size {height}x{width} is out of range 1..=8192"
            )));
        }
        if !(file.crop_fraction > 0.0 && file.crop_fraction <= 1.0) {
            return Err(bad(format!(
                "crop_fraction {} must be in (0, 1]",
                file.crop_fraction
            )));
        }
        let normalization = match (file.mean, file.std, file.scale, file.offset) {
            (Some(mean), Some(std), None, None) => {
                Normalization::from_mean_std(mean, std).map_err(bad)?
            }
            (None, None, Some(scale), Some(offset)) => {
                if scale.iter().chain(offset.iter()).any(|v| !v.is_finite()) {
                    return Err(bad("scale and offset must be finite".into()));
                }
                Normalization { scale, offset }
            }
            _ => {
                return Err(bad(
                    "give either `mean` and `std` or `scale` and `offset` (three values each)"
                        .into(),
                ))
            }
        };
        let labels = file.labels.map(|l| {
            if l.is_absolute() {
                l
            } else {
                path.parent().unwrap_or(Path::new(".")).join(l)
            }
        });
        Ok(Manifest {
            path: path.to_path_buf(),
            name: file.name,
            input: InputSpec {
                layout: file.layout,
                height,
                width,
                crop_fraction: file.crop_fraction,
                normalization,
            },
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LITE: &str = r#"
        name = "lite"
        layout = "nchw"
        size = 224
        mean = [0.5, 0.5, 0.5]
        std = [0.5, 0.5, 0.5]
        labels = "classes.tsv"
    "#;

    #[test]
    fn parses_mean_std_and_resolves_labels() {
        let m = Manifest::parse(LITE, Path::new("/m/lite.toml")).unwrap();
        assert_eq!(m.input.shape(), [1, 3, 224, 224]);
        assert_eq!(m.input.crop_fraction, 0.875);
        assert_eq!(m.labels.as_deref(), Some(Path::new("/m/classes.tsv")));
        // (255/255 - 0.5)/0.5 = 1 and (0 - 0.5)/0.5 = -1
        let n = m.input.normalization;
        assert!((255.0 * n.scale[0] + n.offset[0] - 1.0).abs() < 1e-6);
        assert!((n.offset[2] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn parses_scale_offset_and_rectangular_size() {
        let m = Manifest::parse(
            "layout = \"nhwc\"\nsize = [120, 160]\nscale = [1.0, 1.0, 1.0]\noffset = [-127.0, -127.0, -127.0]\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(m.input.shape(), [1, 120, 160, 3]);
        assert_eq!(m.input.normalization.offset, [-127.0; 3]);
    }

    #[test]
    fn rejects_bad_manifests() {
        let p = Path::new("bad.toml");
        for text in [
            "layout = \"nchw\"\nsize = 224\n",                          // no normalization
            "layout = \"nchw\"\nsize = 0\nscale=[1.0,1.0,1.0]\noffset=[0.0,0.0,0.0]\n", // size 0
            "layout = \"chw\"\nsize = 224\nscale=[1.0,1.0,1.0]\noffset=[0.0,0.0,0.0]\n", // layout
            "layout = \"nchw\"\nsize = 224\nmean=[0.5,0.5,0.5]\nstd=[0.0,1.0,1.0]\n",   // std 0
            "layout = \"nchw\"\nsize = 224\ncrop_fraction = 1.5\nscale=[1.0,1.0,1.0]\noffset=[0.0,0.0,0.0]\n",
            "layout = \"nchw\"\nsize = 224\nscale=[1.0,1.0,1.0]\noffset=[0.0,0.0,0.0]\ncolour = 1\n",
        ] {
            let err = Manifest::parse(text, p).unwrap_err().to_string();
            assert!(err.starts_with("manifest bad.toml: "), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn infers_layout_from_shape() {
        let (spec, assumed) = InputSpec::infer(&[1, 3, 240, 240]).unwrap();
        assert_eq!(spec.layout, Layout::Nchw);
        assert!(!assumed.is_empty());
        let (spec, _) = InputSpec::infer(&[1, 96, 128, 3]).unwrap();
        assert_eq!(
            (spec.layout, spec.height, spec.width),
            (Layout::Nhwc, 96, 128)
        );
        assert!(InputSpec::infer(&[1, 1000]).is_err());
        assert!(InputSpec::infer(&[1, 1, 28, 28]).is_err());
    }
}
