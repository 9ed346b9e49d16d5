//! The candidates a search chooses from: models at input sizes.

use std::path::Path;

use crate::error::{Error, Result};
use crate::runtime::manifest::Manifest;
use crate::runtime::ModelSpec;

/// How far below its native input size the default zoo runs each model, in pixels: the
/// ImageNet table behind this feature (issue 14) found a model loses little at 86% of its
/// native side and costs ~25% less, while sizes above native bought nothing.
pub const DEFAULT_SIZE_STEPS: [usize; 3] = [64, 32, 0];

/// A model at an input size, with a short name for reports (`efficientnet-lite0@192`).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub spec: ModelSpec,
    pub name: String,
}

impl Candidate {
    pub fn new(spec: ModelSpec) -> Candidate {
        let stem = match (spec.path(), spec.endpoint()) {
            (Some(path), _) => path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            ),
            (None, Some(endpoint)) => endpoint.model().to_string(),
            (None, None) => spec.label(),
        };
        let name = match spec.input_size {
            Some(size) => format!("{stem}@{size}"),
            None => stem,
        };
        Candidate { spec, name }
    }
}

/// The default zoo: every `*.onnx` model in `dir` that has a manifest, at its native size
/// and [`DEFAULT_SIZE_STEPS`] below it.
pub fn default_zoo(dir: &Path) -> Result<Vec<Candidate>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut models: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .filter(|p| Manifest::sidecar_of(p).is_file())
        .collect();
    models.sort();
    let mut zoo = Vec::new();
    for model in models {
        let manifest = Manifest::from_file(&Manifest::sidecar_of(&model))?;
        let native = manifest.input.height.min(manifest.input.width);
        for step in DEFAULT_SIZE_STEPS {
            let spec = if step == 0 {
                ModelSpec::new(&model)
            } else if native > step + 32 {
                ModelSpec::new(&model).at_size(native - step)?
            } else {
                continue;
            };
            zoo.push(Candidate::new(spec));
        }
    }
    Ok(zoo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_zoo_is_every_bundled_model_at_three_sizes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let zoo = default_zoo(&dir).unwrap();
        let names: Vec<&str> = zoo.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "efficientnet-lite0@160",
                "efficientnet-lite0@192",
                "efficientnet-lite0",
                "efficientnet-lite1@176",
                "efficientnet-lite1@208",
                "efficientnet-lite1",
                "efficientnet-lite2@196",
                "efficientnet-lite2@228",
                "efficientnet-lite2",
            ]
        );
    }
}
