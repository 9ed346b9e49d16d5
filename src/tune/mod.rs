//! Tuning: measuring the stages on labelled data and choosing the exit threshold.
//!
//! ```text
//! DataSpec -> Dataset -> every stage on every image (Record) -> curve -> choose -> Profile
//!                        cost of each stage on this device    -'
//! ```
//!
//! - [`DataSpec`], [`Dataset`]: labelled folders, decoded one way for every pipeline;
//! - [`evaluate`]: accuracy and latency of a cascade over a folder;
//! - [`measure_stage`]: what a stage costs here (latency, energy); [`measure_choices`]: which
//!   way of compiling and running it is fastest here;
//! - [`curve`]: the accuracy/cost curve over thresholds, replayed from per-image records,
//!   and the threshold for a [`Target`] (a [`Budget`] or an accuracy), picked by the one
//!   rule in [`tradeoff`];
//! - [`calibrate`]: the whole pipeline, from a [`calibrate::CalibrationPlan`] to a
//!   [`Profile`] that `--profile` and [`crate::stream::Session`] read back.

pub mod bounds;
mod budget;
pub mod calibrate;
mod cost;
pub mod curve;
mod dataset;
mod eval;
mod latency;
mod profile;
pub mod tradeoff;

pub use bounds::{Bounds, Confidence};
pub use budget::{Budget, Target};
pub use calibrate::{Calibration, CalibrationPlan};
pub use cost::{
    choose_variant, measure_choices, measure_stage, Choices, Chosen, CostOptions, StageCost,
    Variant, TIE_TOLERANCE, VARIANT_ROUNDS,
};
pub use curve::{CurvePoint, Reference};
pub use dataset::{DataSpec, Dataset, Decoded, LayoutKind, Sample};
pub use eval::{evaluate, EvalRecord, EvalReport, EvalSummary, Load};
pub use latency::Latency;
pub use profile::{
    cpu_model, now_rfc3339, sha256_file, sha256_of, FitReport, HeldOut, Profile, ProfileStage,
    StageChoice,
};
