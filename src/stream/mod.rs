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

pub mod capture;
pub mod classifier;
pub mod controller;
pub mod deadline;
pub mod open;
pub mod queue;
pub mod reader;
pub mod session;
pub mod source;
pub mod stats;
#[cfg(all(feature = "v4l", target_os = "linux"))]
pub mod v4l;

pub use classifier::{Answer, AnsweredBy, FrameOutcome, StreamClassifier};
pub use controller::BudgetController;
pub use deadline::Deadline;
pub use queue::Policy;
pub use session::{BudgetReport, Event, Finished, LiveEnergy, Session, SessionConfig, Summary};
pub use source::FrameSource;
