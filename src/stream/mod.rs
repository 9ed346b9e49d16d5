//! Classifying a camera stream with the cascade, within a per-frame deadline and a running
//! cost budget.
//!
//! ```text
//! source (reader thread) -> queue (newest frame wins) -> classifier x N workers -> Event
//!                                                          |-- deadline: answer early
//!                                                          `-- controller: move threshold
//!                                                              (one, shared by the workers)
//! ```
//!
//! - [`Input`] opens a [`FrameSource`]: frames from a byte stream (raw formats, or MJPEG
//!   cut at JPEG boundaries) or a V4L2 camera (feature `v4l`); a reader thread pulls them;
//! - the queue between the reader and the workers holds one frame ([`Policy`]);
//! - [`StreamClassifier`]: one frame's bytes to one [`Answer`], with the two real-time
//!   policies, the per-frame [`Deadline`] and the [`BudgetController`]; each worker runs a
//!   fork of it (shared weights and controller, its own buffers);
//! - [`Session`]: the whole stream, started from a [`SessionConfig`] and pulled one
//!   [`Event`] at a time, in input order however many workers classify, with running
//!   statistics ([`Summary`]).

#[cfg(any(test, all(feature = "v4l", target_os = "linux")))]
mod camera_size;
#[cfg(any(test, all(feature = "v4l", target_os = "linux")))]
pub(crate) mod capture;
mod classifier;
mod controller;
mod deadline;
mod feed;
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
pub use controller::{BudgetController, Thresholds};
pub use deadline::Deadline;
pub use open::Input;
pub use queue::Policy;
pub use session::{BudgetReport, Event, Finished, LiveEnergy, Session, SessionConfig, Summary};
pub use source::{from_reader, FrameSource};
