//! Classifying a camera stream with the cascade, within a per-frame deadline and a running
//! cost budget.
//!
//! ```text
//! source (reader thread) -> queue (newest frame wins) -> classifier -> Event
//!                                                          |-- deadline: answer early
//!                                                          `-- controller: move threshold
//! ```
//!
//! - [`source`]: frames from a byte stream (raw formats, MJPEG via [`mjpeg`]) or a camera
//!   (`v4l`, feature `v4l`; its buffers become frames in [`capture`]).
//! - [`queue`]: the one-frame slot between the reader and the classifier.
//! - [`classifier`]: one frame's bytes to one answer (the library core).
//! - [`deadline`] and [`controller`]: the two real-time policies.
//! - [`session`]: the whole stream, set up from a [`SessionConfig`] and pulled one
//!   [`Event`] at a time; [`stats`] counts it.

#[cfg(any(test, all(feature = "v4l", target_os = "linux")))]
pub(crate) mod capture;
mod classifier;
mod controller;
mod deadline;
mod open;
pub(crate) mod queue;
pub(crate) mod reader;
mod report;
mod session;
mod source;
pub(crate) mod stats;
#[cfg(all(feature = "v4l", target_os = "linux"))]
mod v4l;
#[cfg(all(feature = "v4l", target_os = "linux"))]
pub use v4l::Camera;

pub use classifier::{Answer, AnsweredBy, FrameOutcome, StreamClassifier};
pub use controller::BudgetController;
pub use deadline::Deadline;
pub use open::Input;
pub use queue::Policy;
pub use session::{BudgetReport, Event, Finished, LiveEnergy, Session, SessionConfig, Summary};
pub use source::{from_reader, FrameSource};
