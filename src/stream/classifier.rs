//! The library core of a stream: one frame's bytes in, one cascade answer out.
//!
//! The frame is converted to RGB into a reused buffer and classified exactly like a decoded
//! file (same preprocessing, same cascade). Around the cascade sit the stream's two
//! policies: the per-frame [`Deadline`] decides whether a frame may still be deferred, and
//! the [`BudgetController`] sets the exit threshold for each frame from the costs so far.
//!
//! With several workers each runs a fork ([`Fork`]): its own cascade fork and conversion
//! buffers, the same deadline, and one budget controller shared by all of them. A frame
//! runs at the threshold the controller holds when a worker starts it, which reflects the
//! cost of every frame answered by then, in the order they finished; with `N` workers up
//! to `N - 1` frames started earlier may still be running, so their costs steer the frames
//! after them a little later than with one worker. The controller's correction is a sum
//! over frames, so the order does not change where the running mean ends up.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::input::{FrameConverter, FrameFormat};
use crate::runtime::Threshold;
use crate::runtime::{Cascade, CutShort, Decision, Fork, MAX_STAGES};
use crate::stream::Deadline;
use crate::stream::{BudgetController, Thresholds};
use crate::tune::Budget;

/// Why the answering stage answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// Its confidence reached the exit threshold.
    Confident,
    /// It is the last stage, which always answers.
    LastStage,
    /// It was not confident, but deferring would have missed the frame's deadline.
    Deadline,
    /// It was not confident, but the next stage does not fit the memory budget.
    Memory,
    /// It was not confident, but the next stage is on a server that did not answer.
    Unanswered,
}

impl AnsweredBy {
    pub fn name(self) -> &'static str {
        match self {
            AnsweredBy::Confident => "confident",
            AnsweredBy::LastStage => "last-stage",
            AnsweredBy::Deadline => "deadline",
            AnsweredBy::Memory => "memory",
            AnsweredBy::Unanswered => "unanswered",
        }
    }
}

/// The cascade's answer for one frame and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub decision: Decision,
    pub answered_by: AnsweredBy,
    /// The exit thresholds used for this frame, one per exit (the budget controller moves
    /// them; `None` without one).
    pub thresholds: Option<Thresholds>,
    /// From the frame's arrival to its answer, including the wait for the cascade.
    pub age: Duration,
    /// Compute time of the executed stages, ms: the cost a time budget is about.
    pub cost_ms: f64,
    /// Energy of the executed stages from the profile's per-stage figures, if known.
    pub energy_mj: Option<f64>,
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameOutcome {
    Answered(Box<Answer>),
    /// The bytes are not a picture (corrupt JPEG, wrong length): skipped, with the reason.
    Unreadable(String),
}

/// A cascade fed with frames of one format.
#[derive(Debug)]
pub struct StreamClassifier {
    cascade: Cascade,
    converter: FrameConverter,
    deadline: Option<Deadline>,
    /// One controller for the whole stream, however many workers run forks of this.
    controller: Option<Arc<Mutex<BudgetController>>>,
    stage_energy_mj: Option<Vec<f64>>,
}

/// The controller's state is plain numbers, updated whole: usable after a panic elsewhere.
fn lock(controller: &Mutex<BudgetController>) -> MutexGuard<'_, BudgetController> {
    controller.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fork for StreamClassifier {
    /// The same classifier for another worker thread: a fork of the cascade (shared
    /// weights), its own frame buffers, and the same budget controller.
    fn fork(&self) -> Result<StreamClassifier> {
        Ok(StreamClassifier {
            cascade: self.cascade.fork()?,
            converter: FrameConverter::new(self.converter.format())
                .with_decode_size(self.cascade.decode_size()),
            deadline: self.deadline.clone(),
            controller: self.controller.clone(),
            stage_energy_mj: self.stage_energy_mj.clone(),
        })
    }
}

impl StreamClassifier {
    /// MJPEG frames are decoded no larger than the cascade's stages need.
    pub fn new(cascade: Cascade, format: FrameFormat) -> StreamClassifier {
        let converter = FrameConverter::new(format).with_decode_size(cascade.decode_size());
        StreamClassifier {
            cascade,
            converter,
            deadline: None,
            controller: None,
            stage_energy_mj: None,
        }
    }

    /// Answers a frame early rather than miss `deadline`.
    pub fn with_deadline(mut self, deadline: Deadline) -> StreamClassifier {
        self.deadline = Some(deadline);
        self
    }

    /// Lets `controller` set the exit threshold before every frame. An energy budget needs
    /// the stages' energy first ([`StreamClassifier::with_stage_energy`]): a frame's energy
    /// is the sum of its executed stages' measured energy per run.
    pub fn with_controller(mut self, controller: BudgetController) -> Result<StreamClassifier> {
        if matches!(controller.budget(), Budget::EnergyMj(_)) && self.stage_energy_mj.is_none() {
            return Err(Error::InvalidArgument(
                "an energy budget needs each stage's measured energy; calibrate the profile \
                 on a board with a power meter or a power model (--board)"
                    .into(),
            ));
        }
        self.controller = Some(Arc::new(Mutex::new(controller)));
        Ok(self)
    }

    /// Energy per run of each stage (mJ), to report each frame's energy.
    pub fn with_stage_energy(mut self, per_stage_mj: Vec<f64>) -> Result<StreamClassifier> {
        if per_stage_mj.len() != self.cascade.stages().len() {
            return Err(Error::InvalidArgument(format!(
                "{} stage energies for {} stages",
                per_stage_mj.len(),
                self.cascade.stages().len()
            )));
        }
        self.stage_energy_mj = Some(per_stage_mj);
        Ok(self)
    }

    pub fn cascade(&self) -> &Cascade {
        &self.cascade
    }

    /// The budget controller as it is now (a copy: workers keep moving the shared one).
    pub fn controller(&self) -> Option<BudgetController> {
        self.controller.as_deref().map(|c| lock(c).clone())
    }

    /// Whether `self` and `other` steer one budget controller (one is a fork of the other).
    pub fn shares_controller_with(&self, other: &StreamClassifier) -> bool {
        match (&self.controller, &other.controller) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn deadline(&self) -> Option<&Deadline> {
        self.deadline.as_ref()
    }

    pub fn format(&self) -> FrameFormat {
        self.converter.format()
    }

    /// Classifies one frame that arrived at `arrival`. A frame that is not a picture is an
    /// [`FrameOutcome::Unreadable`]; an error is a failure of the cascade itself.
    pub fn classify(&mut self, bytes: &[u8], arrival: Instant) -> Result<FrameOutcome> {
        let thresholds = match &self.controller {
            Some(c) => {
                // The lock is held for this copy only, never across the inference.
                let current = lock(c).thresholds().clone();
                let mut rules = heapless::Vec::<Threshold, MAX_STAGES>::new();
                for &t in &current {
                    let _ = rules.push(Threshold::new(t.clamp(0.0, 1.0))?);
                }
                self.cascade.set_thresholds(&rules)?;
                Some(current)
            }
            None => None,
        };
        let image = match self.converter.convert(bytes) {
            Ok(image) => image,
            Err(Error::Frame { reason }) => return Ok(FrameOutcome::Unreadable(reason)),
            Err(e) => return Err(e),
        };
        // Which stages are resident now; a deferral can only load the stage it goes to.
        // Asked only for a deadline: it waits while another worker is loading a stage.
        let mut loaded = [false; MAX_STAGES];
        if self.deadline.is_some() {
            for (slot, stage) in loaded.iter_mut().zip(self.cascade.stages()) {
                *slot = stage.is_loaded();
            }
        }
        let deadline = self.deadline.as_ref();
        let decision = self.cascade.classify_until(image, |next, _| {
            deadline.is_none_or(|d| {
                d.allows(
                    next,
                    arrival.elapsed(),
                    loaded.get(next).copied().unwrap_or(false),
                )
            })
        })?;
        let age = arrival.elapsed();
        let cost_ms = decision.compute_time().as_secs_f64() * 1e3;
        let energy_mj: Option<f64> = self.stage_energy_mj.as_ref().map(|e| {
            decision
                .stages
                .iter()
                .map(|s| e.get(s.stage).copied().unwrap_or(0.0))
                .sum()
        });
        if let Some(c) = &self.controller {
            let mut c = lock(c);
            // with_controller made sure the energy is known for an energy budget.
            let cost = match c.budget() {
                Budget::LatencyMs(_) => cost_ms,
                Budget::EnergyMj(_) => energy_mj.unwrap_or(0.0),
            };
            c.observe(cost);
        }
        let last = decision.exit_stage + 1 == self.cascade.stages().len();
        let answered_by = match decision.cut_short {
            Some(CutShort::Deadline) => AnsweredBy::Deadline,
            Some(CutShort::Memory) => AnsweredBy::Memory,
            Some(CutShort::Unanswered) => AnsweredBy::Unanswered,
            None if last => AnsweredBy::LastStage,
            None => AnsweredBy::Confident,
        };
        Ok(FrameOutcome::Answered(Box::new(Answer {
            decision,
            answered_by,
            thresholds,
            age,
            cost_ms,
            energy_mj,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{FrameSize, PixelFormat};
    use crate::runtime::CascadeBuilder;
    use crate::runtime::ModelSpec;

    /// Two copies of the 10-class fixture, every input deferred (threshold 1).
    fn classifier() -> StreamClassifier {
        let tiny = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny-10class.onnx"
        );
        let cascade = CascadeBuilder::new()
            .stage(ModelSpec::new(tiny))
            .stage(ModelSpec::new(tiny))
            .threshold(Threshold::new(1.0).unwrap())
            .build()
            .unwrap();
        let size = FrameSize::new(8, 6).unwrap();
        StreamClassifier::new(
            cascade,
            FrameFormat::new(PixelFormat::Rgb24, Some(size)).unwrap(),
        )
    }

    fn energy_controller() -> BudgetController {
        let curve =
            [(0.0, 10.0), (1.0, 40.0)].map(|(t, c)| (Thresholds::from_slice(&[t]).unwrap(), c));
        BudgetController::new(&curve, &[1.0], Budget::energy_mj(25.0).unwrap()).unwrap()
    }

    #[test]
    fn an_energy_budget_needs_stage_energy_and_counts_it_per_frame() {
        assert!(classifier().with_controller(energy_controller()).is_err());
        assert!(classifier().with_stage_energy(vec![10.0]).is_err());

        let mut c = classifier()
            .with_stage_energy(vec![10.0, 30.0])
            .unwrap()
            .with_controller(energy_controller())
            .unwrap();
        let frame = [128u8; 8 * 6 * 3];
        let FrameOutcome::Answered(answer) = c.classify(&frame, Instant::now()).unwrap() else {
            panic!("a valid frame");
        };
        // Threshold 1 defers to the last stage: both stages ran, 10 + 30 mJ.
        assert_eq!(answer.answered_by, AnsweredBy::LastStage);
        assert_eq!(answer.energy_mj, Some(40.0));
        let controller = c.controller().unwrap();
        assert_eq!(controller.running_mean(), 40.0, "the energy, not the time");
        assert!(
            controller.thresholds()[0] < 1.0,
            "over budget: exits move earlier"
        );

        // A frame of the wrong length is skipped, not an error.
        let short = c.classify(&frame[1..], Instant::now()).unwrap();
        assert!(matches!(short, FrameOutcome::Unreadable(_)));
    }
}
