//! The library core of a stream: one frame's bytes in, one cascade answer out.
//!
//! The frame is converted to RGB into a reused buffer and classified exactly like a decoded
//! file (same preprocessing, same cascade). Around the cascade sit the stream's two
//! policies: the per-frame [`Deadline`] decides whether a frame may still be deferred, and
//! the [`BudgetController`] sets the exit threshold for each frame from the costs so far.

use std::time::{Duration, Instant};

use crate::cascade::{Cascade, Decision, MAX_STAGES};
use crate::confidence::Threshold;
use crate::error::{Error, Result};
use crate::frame::{FrameConverter, FrameFormat};
use crate::stream::controller::BudgetController;
use crate::stream::deadline::Deadline;

/// Why the answering stage answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnsweredBy {
    /// Its confidence reached the exit threshold.
    Confident,
    /// It is the last stage, which always answers.
    LastStage,
    /// It was not confident, but deferring would have missed the frame's deadline.
    Deadline,
}

impl AnsweredBy {
    pub fn name(self) -> &'static str {
        match self {
            AnsweredBy::Confident => "confident",
            AnsweredBy::LastStage => "last-stage",
            AnsweredBy::Deadline => "deadline",
        }
    }
}

/// The cascade's answer for one frame and what it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub decision: Decision,
    pub answered_by: AnsweredBy,
    /// The exit threshold used for this frame (the budget controller moves it).
    pub threshold: Option<f32>,
    /// From the frame's arrival to its answer, including the wait for the cascade.
    pub age: Duration,
    /// Compute time of the executed stages, ms: the cost the budget is about.
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
    controller: Option<BudgetController>,
    stage_energy_mj: Option<Vec<f64>>,
}

impl StreamClassifier {
    pub fn new(cascade: Cascade, format: FrameFormat) -> StreamClassifier {
        StreamClassifier {
            cascade,
            converter: FrameConverter::new(format),
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

    /// Lets `controller` set the exit threshold before every frame.
    pub fn with_controller(mut self, controller: BudgetController) -> StreamClassifier {
        self.controller = Some(controller);
        self
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

    pub fn controller(&self) -> Option<&BudgetController> {
        self.controller.as_ref()
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
        let threshold = match &self.controller {
            Some(c) => {
                let t = Threshold::new(c.threshold().clamp(0.0, 1.0))?;
                self.cascade.set_threshold(t);
                Some(t.get())
            }
            None => None,
        };
        let image = match self.converter.convert(bytes) {
            Ok(image) => image,
            Err(Error::Image { reason, .. }) => return Ok(FrameOutcome::Unreadable(reason)),
            Err(e) => return Err(e),
        };
        // Which stages are resident now; a deferral can only load the stage it goes to.
        let mut loaded = [false; MAX_STAGES];
        for (slot, stage) in loaded.iter_mut().zip(self.cascade.stages()) {
            *slot = stage.is_loaded();
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
        if let Some(c) = &mut self.controller {
            c.observe(cost_ms);
        }
        let answered_by = if decision.cut_short {
            AnsweredBy::Deadline
        } else if decision.exit_stage + 1 == self.cascade.stages().len() {
            AnsweredBy::LastStage
        } else {
            AnsweredBy::Confident
        };
        let energy_mj = self.stage_energy_mj.as_ref().map(|e| {
            decision
                .stages
                .iter()
                .map(|s| e.get(s.stage).copied().unwrap_or(0.0))
                .sum()
        });
        Ok(FrameOutcome::Answered(Box::new(Answer {
            decision,
            answered_by,
            threshold,
            age,
            cost_ms,
            energy_mj,
        })))
    }
}
