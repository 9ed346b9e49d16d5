//! A stream session: the reader thread, the newest-frame queue and the classifier, driven
//! by the caller one [`Event`] at a time, set up in one call from a [`SessionConfig`].
//!
//! Pulling events (rather than taking callbacks) leaves the caller in charge of the loop:
//! it can print each frame, report statistics every few seconds, and stop on Ctrl-C or a
//! closed output, while the library decides everything about frames.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::energy::{detect_system, Background, Energy};
use crate::error::{Error, Result};
use crate::input::FrameFormat;
use crate::runtime::Cascade;
use crate::stream::queue::{Frame, FrameQueue, Note, Policy, Take};
use crate::stream::reader;
use crate::stream::stats::StreamStats;
use crate::stream::BudgetController;
use crate::stream::Deadline;
use crate::stream::FrameSource;
use crate::stream::{Answer, FrameOutcome, StreamClassifier};
use crate::tune::Budget;
use crate::tune::Profile;

/// How a session runs its cascade: the real-time policies, with the profile whose
/// measured stage costs they need.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// Measured stage costs and threshold curve, from `cascade calibrate`; needed by a
    /// deadline and a budget.
    pub profile: Option<Profile>,
    /// Answer a frame at its current stage when deferring it would, by the profile's
    /// measured costs, finish later than this many ms after its arrival.
    pub deadline_ms: Option<f64>,
    /// Keep the running mean cost per frame within this budget by moving the threshold.
    pub budget: Option<Budget>,
    pub policy: Policy,
    /// Read this machine's energy meter over the whole session (off by default: a
    /// sampling meter takes some CPU).
    pub live_energy: bool,
}

impl SessionConfig {
    /// The classifier for frames of `format`, with the policies this config asks for.
    pub fn classifier(&self, cascade: Cascade, format: FrameFormat) -> Result<StreamClassifier> {
        let mut c = StreamClassifier::new(cascade, format);
        let Some(profile) = &self.profile else {
            let needs = [
                ("--deadline-ms", self.deadline_ms.is_some()),
                (
                    "--budget-ms",
                    matches!(self.budget, Some(Budget::LatencyMs(_))),
                ),
                (
                    "--budget-mj",
                    matches!(self.budget, Some(Budget::EnergyMj(_))),
                ),
            ];
            return match needs.iter().find(|(_, given)| *given) {
                Some((flag, _)) => Err(Error::InvalidArgument(format!(
                    "{flag} needs --profile (measured stage costs, from `cascade calibrate`)"
                ))),
                None => Ok(c),
            };
        };
        if let Some(limit) = self.deadline_ms {
            c = c.with_deadline(Deadline::new(
                limit,
                profile.stage_latencies_ms(),
                profile.stage_loads_ms(),
            )?);
        }
        let energy = profile.stage_energies_mj();
        if let Some(energy) = &energy {
            c = c.with_stage_energy(energy.clone())?;
        }
        if let Some(budget) = self.budget {
            let stage_costs = match budget {
                Budget::LatencyMs(_) => profile.stage_latencies_ms(),
                Budget::EnergyMj(_) => energy.ok_or_else(|| {
                    Error::InvalidArgument(
                        "--budget-mj needs a profile with each stage's energy; calibrate it with \
                         --board (a power model) or on a board with a power meter"
                            .into(),
                    )
                })?,
            };
            let controller = BudgetController::from_curve(
                &profile.curve,
                &stage_costs,
                super::controller::shared(
                    &profile
                        .thresholds
                        .iter()
                        .map(|t| t.get())
                        .collect::<Vec<_>>(),
                )?,
                budget,
            )?;
            c = c.with_controller(controller)?;
        }
        Ok(c)
    }
}

/// This machine's energy meter, read in the background, when it has one. A board's power
/// model does not count: the profile's per-stage figures already give its estimate.
fn live_meter() -> Option<Background> {
    let Some(meter) = detect_system(None, 1) else {
        log::warn!(
            "--meter: this machine has no readable energy meter (powercap, hwmon or vcgencmd)"
        );
        return None;
    };
    match Background::start(meter) {
        Ok(live) => Some(live),
        Err(e) => {
            log::warn!("{e}; the stream runs without live energy figures");
            None
        }
    }
}

/// The end of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub summary: Summary,
    pub live_energy: Option<LiveEnergy>,
}

/// Energy measured by the machine's meter over a whole session, idle power included.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEnergy {
    pub meter: String,
    pub energy: Energy,
}

/// What happened next in the stream. Frames are reported in input order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A frame was classified. `arrival` counts from the start of the stream.
    Answered {
        index: u64,
        arrival: Duration,
        answer: Box<Answer>,
    },
    /// A frame was replaced by a newer one before the cascade was free for it.
    Dropped { index: u64, arrival: Duration },
    /// Input that was not a usable frame (already logged as a warning).
    Skipped { index: u64, reason: String },
    /// Nothing happened within the wait.
    Idle,
    /// The input has ended and every frame has been reported.
    End,
}

/// The running mean cost against the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetReport {
    pub budget: Budget,
    /// Mean cost per classified frame since the start, in the budget's unit.
    pub running_mean: f64,
    /// Mean over about the last 64 frames.
    pub recent_mean: f64,
    /// The threshold the next frame will use.
    pub threshold: f32,
}

/// The stream so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub elapsed: Duration,
    /// Frames read, plus input skipped as not a frame.
    pub frames_in: u64,
    pub classified: u64,
    pub dropped: u64,
    /// Corrupt or truncated frames.
    pub skipped: u64,
    /// Frames answered early to keep their deadline.
    pub cut_short: u64,
    /// Frames answered early because the next stage does not fit the memory budget.
    pub over_memory: u64,
    pub input_fps: f64,
    /// Classified frames per second.
    pub fps: f64,
    /// Share of answers from each stage.
    pub exit_shares: Vec<f64>,
    /// Compute time per classified frame.
    pub mean_ms: f64,
    pub p95_ms: f64,
    /// Arrival to answer, per classified frame.
    pub mean_age_ms: f64,
    pub p95_age_ms: f64,
    pub mean_energy_mj: Option<f64>,
    pub budget: Option<BudgetReport>,
}

/// A stream being classified.
#[derive(Debug)]
pub struct Session {
    queue: Arc<FrameQueue>,
    reader: Option<JoinHandle<()>>,
    classifier: StreamClassifier,
    stats: StreamStats,
    /// Notes from the queue not yet reported, in input order.
    notes: VecDeque<Note>,
    scratch: Vec<Note>,
    /// A frame taken from the queue, reported after the notes that precede it.
    held: Option<Frame>,
    start: Instant,
    closed: bool,
    /// This machine's energy meter, read over the whole session.
    live: Option<Background>,
}

impl Session {
    /// Starts reading `source` on its own thread into `classifier`. Under
    /// [`Policy::NewestWins`] frames that come faster than the cascade finishes them are
    /// dropped, the newest kept.
    pub fn with_classifier(
        source: Box<dyn FrameSource>,
        classifier: StreamClassifier,
        policy: Policy,
    ) -> Result<Session> {
        let queue = Arc::new(FrameQueue::new(policy));
        let start = Instant::now();
        let reader = reader::spawn(source, Arc::clone(&queue))?;
        Ok(Session {
            queue,
            reader: Some(reader),
            classifier,
            stats: StreamStats::default(),
            notes: VecDeque::new(),
            scratch: Vec::new(),
            held: None,
            start,
            closed: false,
            live: None,
        })
    }

    /// Starts classifying `source` with `cascade` as `config` says: the profile's measured
    /// stage costs wired into the deadline, the per-frame energy and the budget controller.
    pub fn start(
        cascade: Cascade,
        config: &SessionConfig,
        source: Box<dyn FrameSource>,
    ) -> Result<Session> {
        let format = source.format();
        let classifier = config.classifier(cascade, format)?;
        let mut session = Session::with_classifier(source, classifier, config.policy)?;
        if config.live_energy {
            session.live = live_meter();
        }
        Ok(session)
    }

    pub fn classifier(&self) -> &StreamClassifier {
        &self.classifier
    }

    /// The next event, waiting up to `wait` for input. An error is either a failure of the
    /// cascade or a failed read of the input (reported after every frame read before it).
    pub fn next(&mut self, wait: Duration) -> Result<Event> {
        loop {
            let note_first = match (self.notes.front(), &self.held) {
                (Some(n), Some(f)) => n.index() < f.index,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if note_first {
                if let Some(note) = self.notes.pop_front() {
                    return Ok(self.note_event(note));
                }
            }
            if let Some(frame) = self.held.take() {
                return self.classify(frame);
            }
            if self.closed {
                if let Some(e) = self.queue.take_failure() {
                    return Err(e);
                }
                return Ok(Event::End);
            }
            match self.queue.take(wait, &mut self.scratch) {
                Take::Frame(f) => self.held = Some(f),
                Take::Idle if self.scratch.is_empty() => return Ok(Event::Idle),
                Take::Idle => {}
                Take::Closed => {
                    self.closed = true;
                    if let Some(handle) = self.reader.take() {
                        // The reader has closed the queue and returns right after.
                        if handle.join().is_err() {
                            log::error!("the frame reader thread panicked");
                        }
                    }
                }
            }
            self.notes.extend(self.scratch.drain(..));
        }
    }

    fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    fn note_event(&mut self, note: Note) -> Event {
        match note {
            Note::Dropped { index, arrival } => Event::Dropped {
                index,
                arrival: self.since_start(arrival),
            },
            Note::Skipped { index, reason } => {
                log::warn!("frame {index} skipped: {reason}");
                Event::Skipped { index, reason }
            }
        }
    }

    fn classify(&mut self, frame: Frame) -> Result<Event> {
        let outcome = self.classifier.classify(&frame.data, frame.arrival);
        let (index, arrival) = (frame.index, self.since_start(frame.arrival));
        self.queue.recycle(frame.data);
        match outcome? {
            FrameOutcome::Answered(answer) => {
                let d = &answer.decision;
                self.stats.record(
                    d.exit_stage,
                    d.cut_short,
                    d.compute_time(),
                    answer.age,
                    answer.energy_mj,
                );
                Ok(Event::Answered {
                    index,
                    arrival,
                    answer,
                })
            }
            FrameOutcome::Unreadable(reason) => {
                self.stats.unreadable += 1;
                log::warn!("frame {index} skipped: {reason}");
                Ok(Event::Skipped { index, reason })
            }
        }
    }

    /// The statistics so far.
    pub fn summary(&self) -> Summary {
        let elapsed = self.start.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let counts = self.queue.counts();
        let s = &self.stats;
        Summary {
            elapsed,
            frames_in: counts.frames_in,
            classified: s.classified,
            dropped: counts.dropped,
            skipped: counts.skipped + s.unreadable,
            cut_short: s.cut_short,
            over_memory: s.over_memory,
            input_fps: counts.frames_in as f64 / secs,
            fps: s.classified as f64 / secs,
            exit_shares: s.exit_shares(self.classifier.cascade().stages().len()),
            mean_ms: s.compute.mean_ms(),
            p95_ms: s.compute.percentile_ms(95.0),
            mean_age_ms: s.age.mean_ms(),
            p95_age_ms: s.age.percentile_ms(95.0),
            mean_energy_mj: s.mean_energy_mj(),
            budget: self.classifier.controller().map(|c| BudgetReport {
                budget: c.budget(),
                running_mean: c.running_mean(),
                recent_mean: c.recent_mean(),
                threshold: c.threshold(),
            }),
        }
    }

    /// Stops reading. A reader blocked on its input is left to end with the process.
    pub fn stop(&mut self) {
        self.queue.shut_down();
    }

    /// Ends the session: the final statistics, and the energy the live meter measured over
    /// the whole session (idle power included) when [`SessionConfig::live_energy`] found
    /// one.
    pub fn finish(mut self) -> Finished {
        self.queue.shut_down();
        let summary = self.summary();
        let live_energy = self.live.take().and_then(|live| {
            let meter = live.name().to_string();
            match live.finish() {
                Ok(energy) => Some(LiveEnergy { meter, energy }),
                Err(e) => {
                    log::warn!("live energy reading failed: {e}");
                    None
                }
            }
        });
        Finished {
            summary,
            live_energy,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.queue.shut_down();
    }
}
