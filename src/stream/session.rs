//! A stream session: the reader thread, the newest-frame queue and the workers classifying
//! frames, driven by the caller one [`Event`] at a time, set up in one call from a
//! [`SessionConfig`].
//!
//! Pulling events (rather than taking callbacks) leaves the caller in charge of the loop:
//! it can print each frame, report statistics every few seconds, and stop on Ctrl-C or a
//! closed output, while the library decides everything about frames.
//!
//! ```text
//! reader thread -> queue -> Feed -> run_in_order (N workers) -> channel -> Session::next
//!                                   `- on the session's dispatch thread
//! ```
//!
//! The frames are classified on a thread of the session's own, through the same
//! [`run_in_order`] that `classify --workers` and `eval --workers` use: with one worker
//! (latency mode) that thread classifies every frame itself, with `N` it runs `N` forks of
//! the classifier, one frame each. Either way each frame's fate (classified, dropped,
//! skipped or failed) reaches the caller in input order.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::energy::{detect_system, Background, Energy};
use crate::error::{Error, Result};
use crate::input::FrameFormat;
use crate::runtime::{run_in_order, Cascade, Fork, Workers};
use crate::stream::feed::{Feed, Item};
use crate::stream::queue::{FrameQueue, Note, Policy};
use crate::stream::reader;
use crate::stream::stats::StreamStats;
use crate::stream::Deadline;
use crate::stream::FrameSource;
use crate::stream::{Answer, FrameOutcome, StreamClassifier};
use crate::stream::{BudgetController, Thresholds};
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
    /// Keep the running mean cost per frame within this budget by moving the thresholds.
    pub budget: Option<Budget>,
    pub policy: Policy,
    /// Frames classified at once, each on its own thread running a fork of the cascade
    /// (shared weights). One (the default) is latency mode: one frame at a time, with all
    /// of tract's threads.
    pub workers: Workers,
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
            let start: Vec<f32> = profile.thresholds.iter().map(|t| t.get()).collect();
            let controller =
                BudgetController::from_curve(&profile.curve, &stage_costs, &start, budget)?;
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
    /// A frame was replaced by a newer one before a worker was free for it.
    Dropped { index: u64, arrival: Duration },
    /// Input that was not a usable frame (already logged as a warning).
    Skipped { index: u64, reason: String },
    /// Nothing happened within the wait.
    Idle,
    /// The input has ended and every frame has been reported.
    End,
}

/// The running mean cost against the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReport {
    pub budget: Budget,
    /// Mean cost per classified frame since the start, in the budget's unit.
    pub running_mean: f64,
    /// Mean over about the last 64 frames.
    pub recent_mean: f64,
    /// The thresholds the next frame will use, one per exit.
    pub thresholds: Thresholds,
    /// Frames whose cost the controller has taken: every classified frame, whichever
    /// worker classified it (one controller steers them all).
    pub frames: u64,
}

/// The stream so far. Each frame read is, once reported, exactly one of classified,
/// dropped, skipped or failed; until then it is unfinished.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub elapsed: Duration,
    /// Frames classified at once.
    pub workers: usize,
    /// Frames read, plus input skipped as not a frame.
    pub frames_in: u64,
    pub classified: u64,
    pub dropped: u64,
    /// Corrupt or truncated frames.
    pub skipped: u64,
    /// Frames whose classification failed (the error that ended the stream).
    pub failed: u64,
    /// Frames read but not reported: waiting or being classified, or, once the stream has
    /// ended early (an error, a stop), never to be.
    pub unfinished: u64,
    /// Frames answered early to keep their deadline.
    pub cut_short: u64,
    /// Frames answered early because the next stage does not fit the memory budget.
    pub over_memory: u64,
    /// Frames answered by the stage before a served one that did not answer.
    pub unanswered: u64,
    pub input_fps: f64,
    /// Classified frames per second: the stream's throughput.
    pub fps: f64,
    /// Share of answers from each stage.
    pub exit_shares: Vec<f64>,
    /// Compute time per classified frame.
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Arrival to answer, per classified frame.
    pub mean_age_ms: f64,
    pub p50_age_ms: f64,
    pub p95_age_ms: f64,
    pub mean_energy_mj: Option<f64>,
    pub budget: Option<BudgetReport>,
}

/// What the dispatch thread hands the session, in input order.
#[derive(Debug)]
enum Message {
    Frame {
        index: u64,
        arrival: Instant,
        outcome: FrameOutcome,
    },
    Note(Note),
    /// The cascade failed on this frame: the stream ends here.
    Failed {
        index: u64,
        error: Error,
    },
    /// The input failed after every frame before: the stream ends here.
    ReadFailed(Error),
    /// The workers could not start.
    Error(Error),
    /// Every frame has been reported.
    End,
}

/// Messages waiting for the caller, per worker: enough to keep the workers busy while the
/// caller prints, few enough that a caller that stops reading stops the workers soon (and
/// frames are then dropped at the queue, as a camera needs).
const MESSAGES_PER_WORKER: usize = 2;

/// A stream being classified.
#[derive(Debug)]
pub struct Session {
    queue: Arc<FrameQueue>,
    reader: Option<JoinHandle<()>>,
    dispatch: Option<JoinHandle<()>>,
    messages: Option<Receiver<Message>>,
    /// A fork of the classifier the workers run, which never classifies: it describes the
    /// cascade (stages, labels, deadline) and reads the shared budget controller. A fork
    /// rather than the original, so that it holds no handle on a later stage that the
    /// workers may release.
    classifier: StreamClassifier,
    workers: Workers,
    stats: StreamStats,
    start: Instant,
    /// The end, or an error, has been reported.
    ended: bool,
    /// This machine's energy meter, read over the whole session.
    live: Option<Background>,
}

impl Session {
    /// Starts reading `source` on its own thread and classifying its frames with
    /// `classifier`, `workers` frames at once (forks of it; see [`StreamClassifier`]).
    /// Under [`Policy::NewestWins`] a frame that arrives while every worker is busy waits
    /// in the queue's one slot, and is dropped if a newer one comes first.
    pub fn with_classifier(
        source: Box<dyn FrameSource>,
        classifier: StreamClassifier,
        policy: Policy,
        workers: Workers,
    ) -> Result<Session> {
        let view = classifier.fork()?;
        let queue = Arc::new(FrameQueue::new(policy, workers.get()));
        let start = Instant::now();
        let (sender, messages) = mpsc::sync_channel(MESSAGES_PER_WORKER * workers.get());
        let dispatch = {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("stream-dispatch".into())
                .spawn(move || dispatch(classifier, workers, queue, sender))
                .map_err(|source| Error::Thread {
                    what: "stream dispatch",
                    source,
                })?
        };
        let reader = reader::spawn(source, Arc::clone(&queue));
        let reader = match reader {
            Ok(reader) => reader,
            Err(e) => {
                // The dispatch thread's feed ends with the queue.
                queue.shut_down();
                return Err(e);
            }
        };
        Ok(Session {
            queue,
            reader: Some(reader),
            dispatch: Some(dispatch),
            messages: Some(messages),
            classifier: view,
            workers,
            stats: StreamStats::default(),
            start,
            ended: false,
            live: None,
        })
    }

    /// Starts classifying `source` with `cascade` as `config` says: the profile's measured
    /// stage costs wired into the deadline, the per-frame energy and the budget controller,
    /// on `config.workers` workers.
    pub fn start(
        cascade: Cascade,
        config: &SessionConfig,
        source: Box<dyn FrameSource>,
    ) -> Result<Session> {
        let format = source.format();
        let classifier = config.classifier(cascade, format)?;
        let mut session =
            Session::with_classifier(source, classifier, config.policy, config.workers)?;
        if config.live_energy {
            session.live = live_meter();
        }
        Ok(session)
    }

    /// The classifier the workers run, for its description (cascade, labels, deadline)
    /// and its budget controller; it classifies nothing itself.
    pub fn classifier(&self) -> &StreamClassifier {
        &self.classifier
    }

    pub fn workers(&self) -> Workers {
        self.workers
    }

    /// The next event, waiting up to `wait` for one. An error is either a failure of the
    /// cascade on a frame or a failed read of the input, reported after every frame read
    /// before it; the stream ends there.
    pub fn next(&mut self, wait: Duration) -> Result<Event> {
        if self.ended {
            return Ok(Event::End);
        }
        let Some(messages) = &self.messages else {
            return Ok(Event::End);
        };
        let message = match messages.recv_timeout(wait) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => return Ok(Event::Idle),
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                return Err(Error::Internal(
                    "the stream's workers stopped without a word (a panic)".into(),
                ));
            }
        };
        match message {
            Message::Frame {
                index,
                arrival,
                outcome,
            } => Ok(self.classified(index, arrival, outcome)),
            Message::Note(note) => Ok(self.note_event(note)),
            Message::Failed { index, error } => {
                self.ended = true;
                self.stats.failed += 1;
                log::debug!("frame {index} failed: {error}");
                Err(error)
            }
            Message::ReadFailed(error) | Message::Error(error) => {
                self.ended = true;
                Err(error)
            }
            Message::End => {
                self.ended = true;
                // The dispatch thread sent its last message and returns. The reader has
                // returned too if it closed the queue, not if the stream was stopped while
                // it waits for input (it is then left to end with the process).
                let reader = self.reader.take_if(|_| self.queue.is_closed());
                for (what, handle) in [("frame reader", reader), ("dispatch", self.dispatch.take())]
                {
                    if handle.is_some_and(|h| h.join().is_err()) {
                        log::error!("the stream's {what} thread panicked");
                    }
                }
                Ok(Event::End)
            }
        }
    }

    fn since_start(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    fn note_event(&mut self, note: Note) -> Event {
        match note {
            Note::Dropped { index, arrival } => {
                self.stats.dropped += 1;
                Event::Dropped {
                    index,
                    arrival: self.since_start(arrival),
                }
            }
            Note::Skipped { index, reason } => {
                self.stats.skipped += 1;
                log::warn!("frame {index} skipped: {reason}");
                Event::Skipped { index, reason }
            }
        }
    }

    fn classified(&mut self, index: u64, arrival: Instant, outcome: FrameOutcome) -> Event {
        let arrival = self.since_start(arrival);
        match outcome {
            FrameOutcome::Answered(answer) => {
                let d = &answer.decision;
                self.stats.record(
                    d.exit_stage,
                    d.cut_short,
                    d.compute_time(),
                    answer.age,
                    answer.energy_mj,
                );
                Event::Answered {
                    index,
                    arrival,
                    answer,
                }
            }
            FrameOutcome::Unreadable(reason) => {
                self.stats.unreadable += 1;
                log::warn!("frame {index} skipped: {reason}");
                Event::Skipped { index, reason }
            }
        }
    }

    /// The statistics so far.
    pub fn summary(&self) -> Summary {
        let elapsed = self.start.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let frames_in = self.queue.counts().frames_in;
        let s = &self.stats;
        let skipped = s.skipped + s.unreadable;
        let reported = s.classified + s.dropped + skipped + s.failed;
        Summary {
            elapsed,
            workers: self.workers.get(),
            frames_in,
            classified: s.classified,
            dropped: s.dropped,
            skipped,
            failed: s.failed,
            unfinished: frames_in.saturating_sub(reported),
            cut_short: s.cut_short,
            over_memory: s.over_memory,
            unanswered: s.unanswered,
            input_fps: frames_in as f64 / secs,
            fps: s.classified as f64 / secs,
            exit_shares: s.exit_shares(self.classifier.cascade().stages().len()),
            mean_ms: s.compute.mean_ms(),
            p50_ms: s.compute.percentile_ms(50.0),
            p95_ms: s.compute.percentile_ms(95.0),
            mean_age_ms: s.age.mean_ms(),
            p50_age_ms: s.age.percentile_ms(50.0),
            p95_age_ms: s.age.percentile_ms(95.0),
            mean_energy_mj: s.mean_energy_mj(),
            budget: self.classifier.controller().map(|c| BudgetReport {
                budget: c.budget(),
                running_mean: c.running_mean(),
                recent_mean: c.recent_mean(),
                thresholds: c.thresholds().clone(),
                frames: c.frames(),
            }),
        }
    }

    /// Stops reading; frames being classified are still reported, then the end. A reader
    /// blocked on its input is left to end with the process.
    pub fn stop(&mut self) {
        self.queue.shut_down();
    }

    /// Ends the session: the final statistics, and the energy the live meter measured over
    /// the whole session (idle power included) when [`SessionConfig::live_energy`] found
    /// one. Waits for the frames being classified (their answers are not reported), so
    /// that the workers and their models are gone when it returns.
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
        // Hanging up lets a dispatch thread waiting to send a message see the end.
        drop(self.messages.take());
        if let Some(handle) = self.dispatch.take() {
            if handle.join().is_err() {
                log::error!("the stream's dispatch thread panicked");
            }
        }
        Finished {
            summary,
            live_energy,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The workers end after the frame each holds; nothing waits for them here.
        self.queue.shut_down();
    }
}

/// The dispatch thread: the queue's frames and notes through `workers` forks of
/// `classifier`, each frame's fate sent on in input order. A frame the cascade fails on
/// shuts the queue down at once (the stream ends with it): frames before it still finish
/// and are reported first; frames after it are not reported.
fn dispatch(
    mut classifier: StreamClassifier,
    workers: Workers,
    queue: Arc<FrameQueue>,
    sender: SyncSender<Message>,
) {
    let feed = Feed::new(Arc::clone(&queue));
    let mut ended = false;
    let run = run_in_order(
        &mut classifier,
        workers,
        feed,
        |classifier, item| {
            Ok(match item {
                Item::Frame(frame) => {
                    let outcome = classifier.classify(&frame.data, frame.arrival);
                    queue.recycle(frame.data);
                    match outcome {
                        Ok(outcome) => Message::Frame {
                            index: frame.index,
                            arrival: frame.arrival,
                            outcome,
                        },
                        Err(error) => {
                            queue.shut_down();
                            Message::Failed {
                                index: frame.index,
                                error,
                            }
                        }
                    }
                }
                Item::Note(note) => Message::Note(note),
                Item::ReadFailed(error) => Message::ReadFailed(error),
            })
        },
        |_, message| {
            let last = matches!(message, Message::Failed { .. } | Message::ReadFailed(_));
            if sender.send(message).is_err() {
                // The session has gone; stop the workers (the error is not reported).
                queue.shut_down();
                return Err(Error::Internal("the stream session has ended".into()));
            }
            if last {
                ended = true;
                // Nothing after this frame is reported: the run stops here.
                return Err(Error::Internal("the stream has ended".into()));
            }
            Ok(())
        },
    );
    if ended {
        return;
    }
    // Sent to a session that may have gone: nothing more to do either way.
    let _ = sender.send(match run {
        Ok(()) => Message::End,
        Err(e) => Message::Error(e),
    });
}
