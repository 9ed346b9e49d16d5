//! Runtime: an RGB image becomes a [`Decision`].
//!
//! ```text
//! RgbImage -> preprocess -> stage (model, resident or not) -> confidence -> cascade -> Decision
//! ```
//!
//! - [`ModelSpec`], [`Model`]: an ONNX classifier loaded and optimized by tract, fed as its
//!   sidecar [`Manifest`] ([`InputSpec`]) says, named by its [`Labels`];
//! - [`Preprocessor`]: resize, center crop, normalize, NCHW or NHWC, into reused buffers
//!   (fast_image_resize still allocates its filter coefficients on each call: 454 small
//!   allocations for a 320x240 frame into 224x224, counted by `tests/suite/allocations.rs`);
//! - [`Stage`]: a model that loads itself on first need and can be released, with its
//!   estimated [`Footprint`] (loaded only if that fits the memory budget);
//! - [`Summary`], [`Metric`], [`Threshold`]: how sure a stage is, and when that is enough;
//! - [`CascadeBuilder`], [`Cascade`]: run the cheapest stage first, defer while unsure.

mod cascade;
mod confidence;
mod footprint;
mod kernels;
mod labels;
pub(crate) mod manifest;
mod model;
mod pipeline;
mod preprocess;
#[cfg(test)]
mod reference_logits;
mod sizing;
mod stage;
pub mod workers;

pub use cascade::{
    Cascade, CascadeBuilder, CutShort, Decision, Partial, StageRun, Step, DEFAULT_THRESHOLD,
    MAX_STAGES,
};
pub use confidence::{ExitRule, Metric, Ranked, Summary, Threshold, TOP_K};
pub use footprint::Footprint;
pub use labels::Labels;
pub use manifest::{InputSpec, Layout, Manifest, Normalization};
pub use model::{LoadOptions, Location, Model, ModelSpec, ThreadCap, Threads};
pub use pipeline::run_pipelined;
pub use preprocess::Preprocessor;
pub use stage::{Stage, StageOutput};
pub use workers::{run_in_order, Fork, Workers};
