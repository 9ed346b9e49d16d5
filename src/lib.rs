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
//! use cascade::{CascadeBuilder, ModelSpec, Threshold, input::decode::decode_file};
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
pub mod energy;
pub mod error;
pub mod input;
pub mod runtime;
pub mod stream;
pub mod tune;

pub use error::{Error, Result};
pub use runtime::cascade::{Cascade, CascadeBuilder, Decision, StageRun};
pub use runtime::confidence::{ExitRule, Metric, Summary, Threshold};
pub use runtime::model::{LoadOptions, Model, ModelSpec, Threads};
