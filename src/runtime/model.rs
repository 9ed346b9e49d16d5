//! Loading an ONNX classifier with tract, checking it is one, and running it.
//!
//! A [`Model`] is optimized once at load time and keeps one tract execution state, so each
//! inference reuses tract's scratch memory instead of re-planning. The optimized plan (the
//! weights, packed for the kernels) is shared: [`Model::fork`] gives another thread its own
//! state on the same weights, so workers cost activations, not copies of the model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Cost;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{one_line, Error, Result};
use crate::remote::Endpoint;
use crate::runtime::kernels;
use crate::runtime::manifest::{InputSpec, Manifest};
use crate::runtime::Labels;

/// Where a stage's model is: a file this process loads, or a model on an Open Inference
/// Protocol server that only receives the preprocessed tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File(PathBuf),
    Remote(Endpoint),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Remote(endpoint) => write!(f, "{endpoint}"),
        }
    }
}

impl Location {
    /// The model file, for a model loaded here.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::File(path) => Some(path),
            Location::Remote(_) => None,
        }
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::File(path)
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::File(path.to_path_buf())
    }
}

impl From<&str> for Location {
    /// A path: a URL is parsed (and checked) by [`ModelSpec`]'s `FromStr`.
    fn from(path: &str) -> Location {
        Location::File(path.into())
    }
}

/// Written as the path or the URL (profiles store it so).
impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Location::File(path) => path.serialize(s),
            Location::Remote(endpoint) => s.serialize_str(&endpoint.to_string()),
        }
    }
}

/// A URL (anything with `://`) is a served model, anything else a file's path.
impl<'de> serde::Deserialize<'de> for Location {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.contains("://") {
            text.parse::<Endpoint>()
                .map(Location::Remote)
                .map_err(serde::de::Error::custom)
        } else {
            Ok(Location::File(PathBuf::from(text)))
        }
    }
}

/// Which model to run, where its manifest is, and at which input size.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub location: Location,
    /// Explicit manifest; `None` looks for the sidecar `<model>.toml` of a file, then infers
    /// (a remote model's input from its server's metadata).
    pub manifest: Option<PathBuf>,
    /// Run the model at this square input side instead of the one it declares (a model
    /// that ends in global pooling takes any size; Lite0 at 192 costs 77% of 224). The
    /// preprocessing follows: resize to `size / crop_fraction`, crop `size`. Local models
    /// only: a server runs its model as it declares it.
    pub input_size: Option<usize>,
    /// How this stage is compiled and run when that was chosen for it by measurement (a
    /// calibrated profile records the winner per stage); `None` takes the cascade's
    /// [`LoadOptions`].
    pub options: Option<LoadOptions>,
}

/// The input sizes a stage may ask for: below 32 a convolutional classifier has no
/// spatial extent left after its downsampling, above 4096 one input tensor alone would
/// take 200 MB.
pub const INPUT_SIZES: std::ops::RangeInclusive<usize> = 32..=4096;

impl ModelSpec {
    /// The model file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ModelSpec::at(Location::File(path.into()))
    }

    /// The model served at `endpoint`.
    pub fn remote(endpoint: Endpoint) -> Self {
        ModelSpec::at(Location::Remote(endpoint))
    }

    fn at(location: Location) -> Self {
        ModelSpec {
            location,
            manifest: None,
            input_size: None,
            options: None,
        }
    }

    /// The model file, for a model loaded here.
    pub fn path(&self) -> Option<&Path> {
        self.location.path()
    }

    /// The model file, or an error naming what needs one (`what`: "hashing", ...).
    pub fn file(&self, what: &str) -> Result<&Path> {
        self.path().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{what} needs a model file, and {} is on a server",
                self.location
            ))
        })
    }

    /// The server's endpoint, for a remote model.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match &self.location {
            Location::Remote(endpoint) => Some(endpoint),
            Location::File(_) => None,
        }
    }

    /// The same model at a square input side of `size` pixels.
    pub fn at_size(mut self, size: usize) -> Result<Self> {
        if let Location::Remote(endpoint) = &self.location {
            return Err(Error::InvalidArgument(format!(
                "{endpoint} is on a server, which runs its model at the size it declares: no @SIZE"
            )));
        }
        if !INPUT_SIZES.contains(&size) {
            return Err(Error::InvalidArgument(format!(
                "input size {size} for {} is out of range ({}..={} pixels)",
                self.location,
                INPUT_SIZES.start(),
                INPUT_SIZES.end()
            )));
        }
        self.input_size = Some(size);
        Ok(self)
    }

    /// Gives the served models among `specs` (URLs), in order, their manifests: how the
    /// board preprocesses for each. As many manifests as served models, or none (each input
    /// is then as its server's metadata declares, with ImageNet normalization assumed).
    pub fn give_served_manifests(specs: &mut [ModelSpec], manifests: &[PathBuf]) -> Result<()> {
        if manifests.is_empty() {
            return Ok(());
        }
        let served: Vec<&mut ModelSpec> = specs
            .iter_mut()
            .filter(|s| s.endpoint().is_some())
            .collect();
        if served.len() != manifests.len() {
            return Err(Error::InvalidArgument(format!(
                "{} manifest(s) for {} model(s) on a server: give one per served model, in order",
                manifests.len(),
                served.len()
            )));
        }
        for (spec, manifest) in served.into_iter().zip(manifests) {
            spec.manifest = Some(manifest.clone());
        }
        Ok(())
    }

    /// How the spec is written on the command line: the path or URL, and `@SIZE` when set.
    pub fn label(&self) -> String {
        match self.input_size {
            Some(size) => format!("{}@{size}", self.location),
            None => self.location.to_string(),
        }
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// `MODEL`, `MODEL@SIZE` (for example `models/efficientnet-lite0.onnx@192`) or a served
/// model's URL (`http://HOST:PORT/v2/models/NAME`; see [`Endpoint`]). An `@` in a folder
/// name is part of the path; after the file name, it must be followed by a size.
impl std::str::FromStr for ModelSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.contains("://") {
            return s
                .parse::<Endpoint>()
                .map(ModelSpec::remote)
                .map_err(|e| e.to_string());
        }
        let Some((path, size)) = s.rsplit_once('@').filter(|(_, size)| !size.contains('/')) else {
            return Ok(ModelSpec::new(s));
        };
        let size: usize = size.parse().map_err(|_| {
            format!("{s:?}: after '@' comes the input size in pixels, as in model.onnx@192")
        })?;
        ModelSpec::new(path)
            .at_size(size)
            .map_err(|e| e.to_string())
    }
}

/// How tract should compile and run the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Apply tract's `conv_nhwc` transform before optimizing. It measured 1.3x faster for
    /// EfficientNet-Lite on an Intel x86_64 VM but no faster on an AMD one, so the default
    /// (on for x86_64; on aarch64 tract already picks NHWC kernels) is only a guess:
    /// `cascade calibrate` measures both on the machine at hand and its profile keeps the
    /// faster per stage.
    pub conv_nhwc: bool,
    /// At most this many threads for this model's inferences (see [`ThreadCap`]); `None`:
    /// the process's count ([`Threads::apply`]). Set per stage by a calibrated profile where
    /// one thread measured as fast as more.
    pub threads: Option<Threads>,
}

// Derivable on aarch64 only, where the rewrite is off: the default differs by architecture.
#[allow(clippy::derivable_impls)]
impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            conv_nhwc: cfg!(target_arch = "x86_64"),
            threads: None,
        }
    }
}

/// A loaded, optimized classifier: shared weights and one execution state of its own.
pub struct Model {
    loaded: Arc<Loaded>,
    state: TypedSimpleState,
    logits: Vec<f32>,
}

/// What every [`Model::fork`] of one load shares, read-only: the optimized plan and what was
/// learned about the model while loading it.
struct Loaded {
    path: PathBuf,
    /// The manifest's `name`, else the file name without its extension.
    name: String,
    input: InputSpec,
    labels: Labels,
    num_classes: usize,
    plan: Arc<TypedRunnableModel>,
    load_time: Duration,
    assumed: Vec<String>,
    multiply_adds: Option<u64>,
    options: LoadOptions,
    /// The stage's thread cap, when its options set one.
    cap: Option<ThreadCap>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.loaded.path)
            .field("input", &self.loaded.input)
            .field("num_classes", &self.loaded.num_classes)
            .finish()
    }
}

impl Model {
    /// Loads, validates and optimizes a classifier.
    pub fn load(spec: &ModelSpec, options: LoadOptions) -> Result<Model> {
        let start = Instant::now();
        let path = spec.file("loading a model in process")?;
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let manifest = match &spec.manifest {
            Some(m) => Some(Manifest::from_file(m)?),
            None => {
                let sidecar = Manifest::sidecar_of(path);
                if sidecar.is_file() {
                    Some(Manifest::from_file(&sidecar)?)
                } else {
                    None
                }
            }
        };
        without_panics(path, || {
            let inference = tract_onnx::onnx()
                .model_for_path(path)
                .map_err(|e| Error::Model {
                    path: path.to_path_buf(),
                    reason: one_line(&e),
                })?;
            Model::from_inference(inference, path, manifest, spec.input_size, options, start)
        })
    }

    /// Loads, validates and optimizes a classifier from ONNX bytes held in memory, as
    /// [`Model::load`] does from a file. `path` only names the model in messages and
    /// reports (nothing is read from it); `manifest` describes its input, as a sidecar
    /// would (`None` infers it from the model). Weights in external data files are not
    /// found this way. Malformed bytes are an error, never a panic.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        manifest: Option<Manifest>,
        options: LoadOptions,
    ) -> Result<Model> {
        let start = Instant::now();
        without_panics(path, || {
            let inference = tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .map_err(|e| Error::Model {
                    path: path.to_path_buf(),
                    reason: one_line(&e),
                })?;
            Model::from_inference(inference, path, manifest, None, options, start)
        })
    }

    /// Checks that a parsed model is an image classifier its manifest agrees with, and
    /// optimizes it.
    fn from_inference(
        inference: InferenceModel,
        path: &Path,
        manifest: Option<Manifest>,
        input_size: Option<usize>,
        options: LoadOptions,
        start: Instant,
    ) -> Result<Model> {
        let model_err = |e: &dyn std::fmt::Display| Error::Model {
            path: path.to_path_buf(),
            reason: one_line(e),
        };
        let shape_err = |reason: String| Error::ModelShape {
            path: path.to_path_buf(),
            reason,
        };
        if inference.inputs.len() != 1 {
            return Err(shape_err(format!(
                "it has {} inputs; an image classifier has one",
                inference.inputs.len()
            )));
        }
        let fact = inference.input_fact(0).map_err(|e| model_err(&e))?;
        if let Some(dt) = fact.datum_type.concretize() {
            if dt != f32::datum_type() {
                return Err(shape_err(format!("its input is {dt:?}, not f32")));
            }
        }
        // Concrete dims where the model fixes them; a symbolic batch dim counts as 1.
        let dims: Vec<Option<usize>> = fact
            .shape
            .dims()
            .enumerate()
            .map(
                |(i, d)| match d.concretize().and_then(|d| d.to_i64().ok()) {
                    Some(v) if v > 0 => Some(v as usize),
                    _ if i == 0 => Some(1),
                    _ => None,
                },
            )
            .collect();
        if fact.shape.is_open() || dims.len() != 4 {
            return Err(shape_err(format!(
                "its input has rank {}, not an image tensor [1,3,H,W] or [1,H,W,3]",
                if fact.shape.is_open() {
                    "unknown".to_string()
                } else {
                    dims.len().to_string()
                }
            )));
        }
        let shown = |d: &[Option<usize>]| {
            d.iter()
                .map(|v| v.map_or("?".to_string(), |v| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        };

        let stem = || {
            path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        };
        let (name, input, labels_path, assumed) = match manifest {
            Some(m) => {
                let want = m.input.shape();
                let agrees = dims.iter().zip(want).all(|(d, w)| d.is_none_or(|d| d == w));
                if !agrees {
                    return Err(Error::Manifest {
                        path: m.path.clone(),
                        reason: format!(
                            "disagrees with the model: it describes input [{}], {} takes [{}]",
                            shown(&want.map(Some)),
                            path.display(),
                            shown(&dims)
                        ),
                    });
                }
                let labels = m.labels.map(|l| (l, m.path.clone()));
                (m.name.unwrap_or_else(stem), m.input, labels, Vec::new())
            }
            None => {
                let concrete: Option<Vec<usize>> = dims.iter().copied().collect();
                let concrete = concrete.ok_or_else(|| {
                    shape_err(format!(
                        "its input [{}] has no fixed size; write a manifest {}",
                        shown(&dims),
                        Manifest::sidecar_of(path).display()
                    ))
                })?;
                let (input, assumed) = InputSpec::infer(&concrete).map_err(shape_err)?;
                (stem(), input, None, assumed)
            }
        };

        // A stage at another size than the model declares: the same weights on a larger or
        // smaller picture; the graph decides below whether it can take it.
        let (name, input) = match input_size {
            Some(size) => (
                format!("{name}@{size}"),
                InputSpec {
                    height: size,
                    width: size,
                    ..input
                },
            ),
            None => (name, input),
        };
        // The graph's declared shapes (ONNX value_info) are those of the native size: forget
        // them, keeping constants, so that shape inference starts from the new input.
        let inference = match input_size {
            Some(_) => {
                let mut inference = inference;
                let outlets: Vec<OutletId> = inference
                    .nodes()
                    .iter()
                    .filter(|n| !n.op_is::<tract_onnx::tract_core::ops::konst::Const>())
                    .flat_map(|n| (0..n.outputs.len()).map(move |i| OutletId::new(n.id, i)))
                    .collect();
                for outlet in outlets {
                    inference
                        .set_outlet_fact(outlet, InferenceFact::default())
                        .map_err(|e| model_err(&e))?;
                }
                inference
            }
            None => inference,
        };
        let typed = inference
            .with_input_fact(0, f32::fact(input.shape()).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .map_err(|e| match input_size {
                Some(size) => model_err(&format!("it cannot run at input size {size}: {e}")),
                None => model_err(&e),
            })?;
        let multiply_adds = multiply_adds(&typed);
        let typed = if options.conv_nhwc {
            apply_transform(typed, "conv_nhwc").map_err(|e| model_err(&e))?
        } else {
            typed
        };
        let optimized = kernels::into_optimized(typed).map_err(|e| model_err(&e))?;
        if optimized.outputs.len() != 1 {
            return Err(shape_err(format!(
                "it has {} outputs; a classifier has one",
                optimized.outputs.len()
            )));
        }
        let out_fact = optimized.output_fact(0).map_err(|e| model_err(&e))?;
        let out_dims: Option<Vec<usize>> = out_fact.shape.as_concrete().map(|s| s.to_vec());
        let num_classes = match out_dims.as_deref() {
            Some([n]) | Some([1, n]) if *n >= 2 => *n,
            other => {
                return Err(shape_err(format!(
                    "its output shape {other:?} is not [1, classes]"
                )))
            }
        };
        if out_fact.datum_type != f32::datum_type() {
            return Err(shape_err(format!(
                "its output is {:?}, not f32 logits",
                out_fact.datum_type
            )));
        }
        let labels = match labels_path {
            Some((p, manifest)) => {
                // A labels file that is not there is the manifest's mistake: name it.
                let labels = Labels::from_file(&p).map_err(|e| match e {
                    Error::Io { source, .. } => Error::Manifest {
                        path: manifest,
                        reason: format!("its labels file {} cannot be read: {source}", p.display()),
                    },
                    other => other,
                })?;
                if labels.len() != num_classes {
                    return Err(Error::Labels {
                        path: p,
                        reason: format!(
                            "has {} classes, the model outputs {num_classes}",
                            labels.len()
                        ),
                    });
                }
                labels
            }
            None => Labels::generic(num_classes),
        };
        let plan = optimized.into_runnable().map_err(|e| model_err(&e))?;
        let loaded = Loaded {
            path: path.to_path_buf(),
            name,
            input,
            labels,
            num_classes,
            plan,
            load_time: start.elapsed(),
            assumed,
            multiply_adds,
            options,
            cap: options.threads.map(ThreadCap::new),
        };
        Model::on(Arc::new(loaded))
    }

    /// A model with its own execution state on already loaded weights.
    fn on(loaded: Arc<Loaded>) -> Result<Model> {
        let state = loaded.plan.spawn().map_err(|e| Error::Model {
            path: loaded.path.clone(),
            reason: one_line(&e),
        })?;
        Ok(Model {
            logits: vec![0.0; loaded.num_classes],
            loaded,
            state,
        })
    }

    /// The same model for another thread: the weights are shared, the execution state and
    /// output buffer are new (tract's activations, a few MB, against tens of MB of weights).
    pub fn fork(&self) -> Result<Model> {
        Model::on(Arc::clone(&self.loaded))
    }

    /// Whether `self` and `other` run on one copy of the weights (one is a fork of the
    /// other, or both of a third).
    pub fn shares_weights_with(&self, other: &Model) -> bool {
        Arc::ptr_eq(&self.loaded, &other.loaded)
    }

    /// Runs the model on one preprocessed input tensor (laid out as [`Model::input`] says)
    /// and returns its logits.
    pub fn infer(&mut self, input: &[f32]) -> Result<&[f32]> {
        let fail = |e: &dyn std::fmt::Display| Error::Inference {
            path: self.loaded.path.clone(),
            reason: one_line(e),
        };
        if input.len() != self.loaded.input.len() {
            return Err(Error::InvalidArgument(format!(
                "input has {} values, {} expects {}",
                input.len(),
                self.loaded.path.display(),
                self.loaded.input.len()
            )));
        }
        let tensor = Tensor::from_shape(&self.loaded.input.shape(), input).map_err(|e| fail(&e))?;
        let state = &mut self.state;
        let outputs = match &self.loaded.cap {
            Some(cap) => cap.run(|| state.run(tvec![tensor.into()])),
            None => state.run(tvec![tensor.into()]),
        }
        .map_err(|e| fail(&e))?;
        let view = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| fail(&e))?;
        if view.len() != self.logits.len() {
            return Err(fail(&format!(
                "output has {} values, expected {}",
                view.len(),
                self.logits.len()
            )));
        }
        for (dst, src) in self.logits.iter_mut().zip(view.iter()) {
            *dst = *src;
        }
        // A NaN or infinite logit makes every probability meaningless (an infinity turns
        // the softmax into NaN): an error naming the model, never a silent answer.
        if let Some((class, v)) = self.logits.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(fail(&format!(
                "its output is not finite (logit {class} is {v}); the model file may be corrupt"
            )));
        }
        Ok(&self.logits)
    }

    pub fn path(&self) -> &Path {
        &self.loaded.path
    }

    /// A short name for reports (the manifest's `name`, else the file stem).
    pub fn name(&self) -> &str {
        &self.loaded.name
    }

    pub fn input(&self) -> &InputSpec {
        &self.loaded.input
    }

    pub fn labels(&self) -> &Labels {
        &self.loaded.labels
    }

    pub fn num_classes(&self) -> usize {
        self.loaded.num_classes
    }

    /// The f32 multiply-adds of one inference, by tract's cost model (`None` if unknown):
    /// the work floor of a machine is this divided by its SIMD FMA lanes.
    pub fn multiply_adds(&self) -> Option<u64> {
        self.loaded.multiply_adds
    }

    /// How the model was compiled and is run.
    pub fn options(&self) -> LoadOptions {
        self.loaded.options
    }

    /// Wall time spent reading, checking and optimizing the model.
    pub fn load_time(&self) -> Duration {
        self.loaded.load_time
    }

    /// What was guessed because the model came without a manifest (empty with one).
    pub fn assumptions(&self) -> &[String] {
        &self.loaded.assumed
    }
}

/// Runs a model load, turning a panic inside tract into an error naming the model: a
/// malformed or hostile file can trip an assertion deep in its parser or shape inference,
/// and a bad file must not take the program down. (The panic message is still printed by
/// the process's panic hook.)
fn without_panics(path: &Path, load: impl FnOnce() -> Result<Model>) -> Result<Model> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(load)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(Error::Model {
            path: path.to_path_buf(),
            reason: format!(
                "tract panicked while loading it ({}); the file is malformed or unsupported",
                one_line(&message)
            ),
        })
    })
}

fn apply_transform(mut model: TypedModel, name: &str) -> TractResult<TypedModel> {
    let transform = tract_onnx::tract_core::transform::get_transform(name)?.ok_or_else(|| {
        tract_onnx::tract_core::internal::format_err!("tract has no `{name}` transform")
    })?;
    transform.transform(&mut model)?;
    Ok(model)
}

/// Number of threads tract's matrix kernels may use, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads(std::num::NonZeroUsize);

impl Threads {
    /// One thread: the deterministic, lightest setting.
    pub const ONE: Threads = Threads(std::num::NonZeroUsize::MIN);

    /// Most threads per core: more only adds switching (and `--threads 100000` would
    /// spawn that many threads).
    pub const MAX_PER_CORE: usize = 4;

    /// `n` threads, at least 1 and at most [`Threads::MAX_PER_CORE`] per core of this
    /// machine.
    pub fn new(n: usize) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let max = Self::MAX_PER_CORE * cores;
        match std::num::NonZeroUsize::new(n) {
            Some(n) if n.get() <= max => Ok(Threads(n)),
            _ => Err(Error::InvalidArgument(format!(
                "--threads must be at least 1 and at most {max} ({} per core on this machine), got {n}",
                Self::MAX_PER_CORE
            ))),
        }
    }

    pub fn get(self) -> usize {
        self.0.get()
    }

    /// Makes every model in this process run its matrix kernels on this many threads.
    /// tract's executor is process-wide, so this is set once by the application.
    pub fn apply(self) {
        tract_linalg::multithread::set_default_executor(self.executor());
    }

    /// Runs `f` with tract's kernels on exactly this many threads, on the calling thread
    /// only (tract lets a thread override the process's executor); the rest of the process
    /// keeps its count. Calibration measures a stage's thread counts this way, and
    /// [`ThreadCap::run`] applies the one chosen the same way. Builds a thread pool per
    /// call: for measuring rounds, not for every inference.
    pub fn scope<R>(self, f: impl FnOnce() -> R) -> R {
        tract_linalg::multithread::multithread_tract_scope(self.executor(), f)
    }

    fn executor(self) -> Executor {
        if self.get() == 1 {
            Executor::SingleThread
        } else {
            Executor::multithread(self.get())
        }
    }

    /// How many threads tract's kernels use on the calling thread now: its override if it
    /// has one, else the process's executor.
    pub fn in_effect() -> usize {
        match tract_linalg::multithread::current_tract_executor() {
            Executor::SingleThread => 1,
            Executor::MultiThread(pool) => pool.current_num_threads(),
            // rayon's global pool, which this project never installs: one per core.
            _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// At most a number of threads for one model. tract's thread pool is process-wide, set by
/// the application ([`Threads::apply`]), but a thread may override it for what it runs
/// itself ([`Threads::scope`]): that is how one stage of a cascade runs on fewer threads
/// than the others when calibration measured more threads buying it nothing. A cap only
/// ever lowers the count: it binds when it is below the count in effect, and otherwise
/// leaves it alone, so a cascade run with one thread per worker (throughput mode) or with
/// `--threads 1` stays on one thread whatever the profile measured.
#[derive(Debug)]
pub struct ThreadCap {
    threads: Threads,
    /// Built on the first inference the cap binds on, then reused.
    executor: std::sync::OnceLock<Executor>,
}

impl ThreadCap {
    pub fn new(threads: Threads) -> ThreadCap {
        ThreadCap {
            threads,
            executor: std::sync::OnceLock::new(),
        }
    }

    pub fn threads(&self) -> Threads {
        self.threads
    }

    /// Runs `f` on at most the cap's threads (see the type's docs).
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.threads.get() >= Threads::in_effect() {
            return f();
        }
        let executor = self.executor.get_or_init(|| self.threads.executor());
        tract_linalg::multithread::multithread_tract_scope(executor.clone(), f)
    }
}

impl std::str::FromStr for Threads {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        Threads::new(n).map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The f32 multiply-adds one inference does, by tract's cost model of the decluttered graph
/// (convolutions and matrix products); `None` when an operator's cost is not a number.
fn multiply_adds(model: &TypedModel) -> Option<u64> {
    let mut total = 0u64;
    for node in model.nodes() {
        let inputs = model.node_input_facts(node.id).ok()?;
        for (cost, count) in node.op.cost(&inputs).ok()? {
            if cost == Cost::FMA(f32::datum_type()) {
                total = total.checked_add(u64::try_from(count.to_i64().ok()?).ok()?)?;
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn a_model_loads_from_bytes_as_from_its_file() {
        let path = fixture("tiny-10class.onnx");
        let bytes = std::fs::read(&path).unwrap();
        let from_file = Model::load(&ModelSpec::new(&path), LoadOptions::default()).unwrap();
        let name = Path::new("in-memory.onnx");
        let mut model = Model::from_bytes(&bytes, name, None, LoadOptions::default()).unwrap();
        assert_eq!(model.input(), from_file.input());
        assert_eq!((model.num_classes(), model.name()), (10, "in-memory"));
        let input = vec![0.5; model.input().len()];
        assert_eq!(model.infer(&input).unwrap().len(), 10);
    }

    #[test]
    fn a_stage_spec_may_name_an_input_size() {
        let spec: ModelSpec = "models/m.onnx@192".parse().unwrap();
        assert_eq!(spec.path(), Some(Path::new("models/m.onnx")));
        assert_eq!(spec.input_size, Some(192));
        assert_eq!(spec.label(), "models/m.onnx@192");
        let plain: ModelSpec = "models/m.onnx".parse().unwrap();
        assert_eq!(
            (plain.input_size, plain.label()),
            (None, "models/m.onnx".into())
        );
        // An '@' in a folder name belongs to the path.
        let folder: ModelSpec = "runs@v2/m.onnx".parse().unwrap();
        assert_eq!(
            (folder.path(), folder.input_size),
            (Some(Path::new("runs@v2/m.onnx")), None)
        );
        // A URL names a served model, which runs at the size its server declares.
        let remote: ModelSpec = "http://127.0.0.1:8080/v2/models/lite2".parse().unwrap();
        assert_eq!(
            remote.endpoint().map(|e| e.model()),
            Some("lite2"),
            "{remote:?}"
        );
        assert_eq!(remote.label(), "http://127.0.0.1:8080/v2/models/lite2");
        assert!(remote.path().is_none());
        for (bad, says) in [
            ("m.onnx@abc", "after '@' comes the input size"),
            ("m.onnx@", "after '@' comes the input size"),
            ("m.onnx@-1", "after '@' comes the input size"),
            ("m.onnx@16", "out of range (32..=4096"),
            ("m.onnx@100000", "out of range"),
            ("http://h:1/v2/models/m@192", "is not a remote stage"),
            ("ftp://h/v2/models/m", "the scheme must be"),
        ] {
            let err = bad.parse::<ModelSpec>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_model_runs_at_another_input_size_with_its_preprocessing_following() {
        // The tiny fixture pools globally, so it takes any size.
        let spec = ModelSpec::new(fixture("tiny-1000class.onnx"))
            .at_size(48)
            .unwrap();
        let mut model = Model::load(&spec, LoadOptions::default()).unwrap();
        assert_eq!(model.input().shape(), [1, 3, 48, 48]);
        assert_eq!(model.name(), "tiny-1000class@48");
        assert_eq!(model.infer(&vec![0.5; 3 * 48 * 48]).unwrap().len(), 1000);
    }

    #[test]
    fn a_fork_shares_the_weights_and_runs_on_its_own_thread() {
        let path = fixture("tiny-10class.onnx");
        let mut model = Model::load(&ModelSpec::new(&path), LoadOptions::default()).unwrap();
        let mut fork = model.fork().unwrap();
        assert!(fork.shares_weights_with(&model));
        let other = Model::load(&ModelSpec::new(&path), LoadOptions::default()).unwrap();
        assert!(
            !other.shares_weights_with(&model),
            "a second load is a second copy"
        );
        let a: Vec<f32> = (0..model.input().len())
            .map(|i| (i % 7) as f32 / 7.0)
            .collect();
        let b = vec![0.5; a.len()];
        let want_a = model.infer(&a).unwrap().to_vec();
        let want_b = model.infer(&b).unwrap().to_vec();
        assert_ne!(want_a, want_b);
        // The fork runs on another thread while the original runs here: each keeps its own
        // state and output buffer.
        let got_b = std::thread::scope(|s| {
            let worker = s.spawn(move || fork.infer(&b).unwrap().to_vec());
            assert_eq!(model.infer(&a).unwrap(), want_a.as_slice());
            worker.join().unwrap()
        });
        assert_eq!(got_b, want_b);
    }

    /// A stage's thread cap lowers the count in effect on its thread and never raises it,
    /// and a model loaded with one reports it and still runs. (What the count does to
    /// speed is for benchmarks; this checks which executor tract is given.)
    #[test]
    fn a_thread_cap_only_lowers_the_count_in_effect() {
        let two = Threads::new(2).unwrap();
        let one = ThreadCap::new(Threads::ONE);
        let cap_two = ThreadCap::new(two);
        assert_eq!(two.scope(Threads::in_effect), 2);
        assert_eq!(two.scope(|| one.run(Threads::in_effect)), 1);
        assert_eq!(two.scope(|| cap_two.run(Threads::in_effect)), 2);
        assert_eq!(Threads::ONE.scope(|| cap_two.run(Threads::in_effect)), 1);

        let options = LoadOptions {
            conv_nhwc: false,
            threads: Some(Threads::ONE),
        };
        let spec = ModelSpec::new(fixture("tiny-10class.onnx"));
        let mut model = Model::load(&spec, options).unwrap();
        assert_eq!(model.options(), options);
        assert_eq!(model.fork().unwrap().options(), options);
        let input = vec![0.5; model.input().len()];
        let capped = two.scope(|| model.infer(&input).unwrap().to_vec());
        let uncapped = LoadOptions {
            threads: None,
            ..options
        };
        let mut plain = Model::load(&spec, uncapped).unwrap();
        assert_eq!(capped, plain.infer(&input).unwrap());
    }

    /// Found by the `model` fuzz target, two ways to make tract panic: a graph output
    /// naming a value no node makes (its ONNX parser indexes its outlets by name), and a
    /// Flatten node without an input (its shape inference indexes the inputs). From bytes
    /// or from a file, each is an error naming the model, never a crash.
    #[test]
    fn a_panic_inside_tract_is_an_error() {
        let tiny = std::fs::read(fixture("tiny-10class.onnx")).unwrap();
        let mut dangling_output = tiny.clone();
        let output = tiny.windows(6).rposition(|w| w == b"logits").unwrap();
        dangling_output[output..output + 6].copy_from_slice(b"absent");
        // The Flatten node's input (field 1) becomes its doc string (field 6).
        let mut flatten_without_input = tiny.clone();
        let input = tiny.windows(8).position(|w| w == b"\n\x06pooled").unwrap();
        assert_eq!(tiny[input - 1], b'-', "the Flatten node starts here");
        flatten_without_input[input] = 0x32;
        let dir = tempfile::tempdir().unwrap();
        for (case, bytes) in [
            ("dangling-output", dangling_output),
            ("flatten-without-input", flatten_without_input),
        ] {
            let name = format!("{case}.onnx");
            let err = Model::from_bytes(&bytes, name.as_ref(), None, LoadOptions::default());
            let text = err.unwrap_err().to_string();
            assert!(text.contains(&name), "{text}");
            assert!(text.contains("tract panicked while loading it"), "{text}");

            let path = dir.path().join(&name);
            std::fs::write(&path, &bytes).unwrap();
            let err = Model::load(&ModelSpec::new(&path), LoadOptions::default()).unwrap_err();
            assert!(matches!(err, Error::Model { .. }), "{case}: {err}");
        }
    }

    #[test]
    fn malformed_bytes_are_an_error_naming_the_model() {
        let bytes = std::fs::read(fixture("tiny-10class.onnx")).unwrap();
        let name = Path::new("hostile.onnx");
        for bad in [&b""[..], b"not a model at all", &bytes[..bytes.len() / 2]] {
            let err = Model::from_bytes(bad, name, None, LoadOptions::default()).unwrap_err();
            assert!(err.to_string().contains("hostile.onnx"), "{err}");
        }
    }
}
