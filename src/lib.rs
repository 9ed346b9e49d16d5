//! Conditional execution of cascaded image classifiers on small CPUs.
//!
//! A [`Cascade`] runs a small classifier on every input and defers to a larger one only when
//! the small one is not confident. The data flows one way, and so do the modules:
//!
//! ```text
//! image file / camera frame
//!   -> input     decode JPEG/PNG, convert raw and MJPEG frames           -> RgbImage
//!   -> runtime   preprocess, stage (model, loaded on first need),
//!                confidence, cascade (exit or defer)                     -> Decision
//!   -> stream    source -> newest-frame queue -> classifier, with a
//!                per-frame deadline and a running budget                 -> Event
//!   -> tune      dataset, eval, stage costs, threshold curve, calibration -> Profile
//!   -> energy    meters (powercap, hwmon, vcgencmd) and board power models
//!   -> device    what the runtime sees: board, cores, memory, meter,
//!                governor, throttling; the default thread count         -> DeviceInfo
//!   -> bench     each model alone and the cascade, compared             -> Report
//! ```
//!
//! Across all of them, [`memory`] holds the one [`MemoryBudget`] the process keeps to: a
//! quarter for a decoded image, the rest for the models (a later stage loads only if it
//! fits, and is answered around if it never can).
//!
//! Each layer uses only the ones above it: [`runtime`] knows no file but models and their
//! manifests, [`stream`], [`tune`] and [`bench`](mod@bench) use [`runtime`] and never the other way
//! round, and only [`tune`]'s profile knows the profile's file format. The `cascade`
//! binary is a thin command line over these modules: each command parses its arguments,
//! makes one library call and prints.
//!
//! A board application needs little more than this crate root:
//!
//! ```no_run
//! use cascade::{decode_file, CascadeBuilder, ModelSpec, Threshold};
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
//!
//! Calibrating for a budget, saving the profile and streaming with it:
//!
//! ```no_run
//! use cascade::stream::{Input, Policy};
//! use cascade::{
//!     calibrate, Budget, CalibrationPlan, DataSpec, Event, ModelSpec, PixelFormat, Profile,
//!     Session, SessionConfig, Target,
//! };
//! # fn main() -> cascade::Result<()> {
//! let plan = CalibrationPlan::new(
//!     vec![ModelSpec::new("models/efficientnet-lite0.onnx"), ModelSpec::new("models/efficientnet-lite2.onnx")],
//!     DataSpec::new("photos/"),
//!     Target::Budget(Budget::latency_ms(40.0)?),
//! );
//! let calibration = calibrate(&plan, |_progress| {})?;
//! calibration.profile.save("profile.toml".as_ref())?;
//!
//! let profile = Profile::load("profile.toml".as_ref())?;
//! let cascade = profile.builder().build()?;
//! let config = SessionConfig {
//!     budget: Some(Budget::latency_ms(40.0)?),
//!     profile: Some(profile),
//!     policy: Policy::NewestWins,
//!     ..SessionConfig::default()
//! };
//! let input = Input::Bytes { path: "-".into(), pixel: PixelFormat::Mjpeg, size: None };
//! let source = input.open(cascade.decode_size())?;
//! let mut session = Session::start(cascade, &config, source)?;
//! loop {
//!     match session.next(std::time::Duration::from_millis(100))? {
//!         Event::Answered { index, answer, .. } => println!("frame {index}: class {}", answer.decision.class),
//!         Event::End => break,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod bench;
pub mod device;
pub mod energy;
mod error;
pub mod input;
pub mod memory;
pub mod output;
pub mod remote;
pub mod runtime;
pub mod search;
pub mod stream;
pub mod tune;

pub use error::{Error, Result};
pub use input::{decode_file, PixelFormat, RgbImage};
pub use memory::MemoryBudget;
pub use runtime::{
    Cascade, CascadeBuilder, Decision, LoadOptions, Metric, Model, ModelSpec, Summary, Threads,
    Threshold,
};
pub use stream::{Event, Session, SessionConfig};
pub use tune::calibrate::run as calibrate;
pub use tune::{Budget, Calibration, CalibrationPlan, DataSpec, Profile, Target};
