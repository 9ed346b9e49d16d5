//! Conditional execution of cascaded image classifiers on small CPUs.
//!
//! A [`Cascade`] runs a small classifier on every input and defers to a larger one only when
//! the small one is not confident. The data flows one way, and so do the modules:
//!
//! ```text
//! file/frame -> decode -> preprocess -> stage (model) -> confidence -> cascade -> Decision
//! ```
//!
//! ```no_run
//! use cascade::{CascadeBuilder, ModelSpec, Threshold, decode::decode_file};
//! # fn main() -> cascade::Result<()> {
//! let mut cascade = CascadeBuilder::new()
//!     .stage(ModelSpec::new("models/efficientnet-lite0.onnx"))
//!     .stage(ModelSpec::new("models/efficientnet-lite2.onnx"))
//!     .threshold(Threshold::new(0.7)?)
//!     .build()?;
//! let decision = cascade.classify(&decode_file("cat.jpg".as_ref())?)?;
//! println!("{} from stage {}", cascade.labels().name(decision.class), decision.exit_stage);
//! # Ok(()) }
//! ```

pub mod bench;
pub mod board;
pub mod calibrate;
pub mod cascade;
pub mod confidence;
pub mod cost;
pub mod dataset;
pub mod decode;
pub mod error;
pub mod eval;
pub mod frame;
pub mod labels;
pub mod manifest;
pub mod meter;
pub mod model;
pub mod plot;
pub mod preprocess;
pub mod profile;
pub mod report;
pub mod stage;
pub mod stats;
pub mod stream;

pub use cascade::{Cascade, CascadeBuilder, Decision, StageRun};
pub use confidence::{ExitRule, Metric, Summary, Threshold};
pub use error::{Error, Result};
pub use model::{LoadOptions, Model, ModelSpec, Threads};
