//! A running stream: the reader thread, the newest-frame queue and the classifier, driven
//! by the caller one [`Event`] at a time.
//!
//! Pulling events (rather than taking callbacks) leaves the caller in charge of the loop:
//! it can print each frame, report statistics every few seconds, and stop on Ctrl-C or a
//! closed output, while the library decides everything about frames.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::tune::curve::Budget;
use crate::error::Result;
use crate::stream::classifier::{Answer, FrameOutcome, StreamClassifier};
use crate::stream::queue::{Frame, FrameQueue, Note, Policy, Take};
use crate::stream::reader;
use crate::stream::source::FrameSource;
use crate::stream::stats::StreamStats;

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
pub struct Stream {
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
}

impl Stream {
    /// Starts reading `source` on its own thread. Under [`Policy::NewestWins`] frames that
    /// come faster than the cascade finishes them are dropped, the newest kept.
    pub fn start(
        source: Box<dyn FrameSource>,
        classifier: StreamClassifier,
        policy: Policy,
    ) -> Result<Stream> {
        let queue = Arc::new(FrameQueue::new(policy));
        let start = Instant::now();
        let reader = reader::spawn(source, Arc::clone(&queue))?;
        Ok(Stream {
            queue,
            reader: Some(reader),
            classifier,
            stats: StreamStats::default(),
            notes: VecDeque::new(),
            scratch: Vec::new(),
            held: None,
            start,
            closed: false,
        })
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
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.queue.shut_down();
    }
}
