//! The hand-over between the reader thread and the classifier: a slot of one frame.
//!
//! A camera does not wait for the cascade. With [`Policy::NewestWins`] a frame put while
//! the previous one is still unclaimed replaces it, and the replaced frame is counted and
//! noted as dropped: the classifier always works on the freshest picture and never on a
//! backlog. [`Policy::Block`] (for files, `--no-drop`) makes the reader wait instead, so
//! every frame is classified.
//!
//! Several workers may take from the slot: whichever is free first takes the newest frame,
//! and a frame is dropped only while every worker is busy.
//!
//! Frame buffers circulate through a small pool (one being filled, one in the slot, one
//! being classified per worker), so a stream of fixed-size frames allocates nothing once
//! warm.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Error;

/// One frame's bytes, numbered in input order (skipped input counts too).
#[derive(Debug)]
pub struct Frame {
    pub index: u64,
    /// When the reader had the whole frame.
    pub arrival: Instant,
    pub data: Vec<u8>,
}

/// What happens when a frame arrives while the previous one is still unclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Replace it and count a drop (live cameras).
    #[default]
    NewestWins,
    /// Wait until it is claimed (files: classify every frame).
    Block,
}

/// Input that did not reach the classifier, for the per-frame report.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Replaced in the slot by a newer frame.
    Dropped { index: u64, arrival: Instant },
    /// Not a frame: corrupt, or truncated at the end of input.
    Skipped { index: u64, reason: String },
}

impl Note {
    pub fn index(&self) -> u64 {
        match self {
            Note::Dropped { index, .. } | Note::Skipped { index, .. } => *index,
        }
    }
}

/// What [`FrameQueue::take`] found.
#[derive(Debug)]
pub enum Take {
    Frame(Frame),
    /// Nothing arrived within the wait.
    Idle,
    /// The reader has finished and every frame has been taken.
    Closed,
}

/// Counts kept by the queue, the authority on what came in and what was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Frames read plus input skipped by the reader.
    pub frames_in: u64,
    pub dropped: u64,
    pub skipped: u64,
}

/// Spare buffers kept for reuse beyond one per consumer: two more are in circulation (one
/// being filled, one in the slot), and two to spare.
const POOL_BEYOND_CONSUMERS: usize = 4;

#[derive(Debug, Default)]
struct State {
    slot: Option<Frame>,
    pool: Vec<Vec<u8>>,
    notes: Vec<Note>,
    counts: QueueCounts,
    /// The reader has finished (end of input or a read error).
    closed: bool,
    failure: Option<Error>,
    /// The consumer has gone: the reader should stop.
    shut_down: bool,
}

/// A newest-frame slot shared by one reader and one or more consumers.
#[derive(Debug)]
pub struct FrameQueue {
    policy: Policy,
    /// Spare buffers kept: enough that every buffer in circulation comes back to the pool.
    pool: usize,
    state: Mutex<State>,
    /// Signalled when a frame is put or the reader closes.
    filled: Condvar,
    /// Signalled when the slot is emptied or the consumer shuts down.
    emptied: Condvar,
}

impl FrameQueue {
    /// A queue for `consumers` threads taking frames (the workers classifying them).
    pub fn new(policy: Policy, consumers: usize) -> FrameQueue {
        FrameQueue {
            policy,
            pool: consumers.max(1) + POOL_BEYOND_CONSUMERS,
            state: Mutex::new(State::default()),
            filled: Condvar::new(),
            emptied: Condvar::new(),
        }
    }

    /// A panic on the other side must not take this side down with a second panic: the
    /// state is plain data and stays consistent between statements, so use it as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer to read the next frame into, from the pool when one is free.
    pub fn buffer(&self) -> Vec<u8> {
        let mut buf = self.lock().pool.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Returns a frame's buffer to the pool once it has been used.
    pub fn recycle(&self, buf: Vec<u8>) {
        let mut s = self.lock();
        if s.pool.len() < self.pool {
            s.pool.push(buf);
        }
    }

    /// Offers a frame. Under `NewestWins` an unclaimed frame is replaced (and noted as
    /// dropped); under `Block` this waits for the slot. Returns false when the consumer
    /// has shut down, and the reader should stop.
    pub fn put(&self, frame: Frame) -> bool {
        let mut s = self.lock();
        if self.policy == Policy::Block {
            while s.slot.is_some() && !s.shut_down {
                s = self.emptied.wait(s).unwrap_or_else(|e| e.into_inner());
            }
        }
        if s.shut_down {
            return false;
        }
        s.counts.frames_in += 1;
        if let Some(old) = s.slot.replace(frame) {
            s.counts.dropped += 1;
            // Input skipped while the old frame waited came after it: the notes stay in
            // input order, as the stream reports them.
            let at = s.notes.partition_point(|n| n.index() < old.index);
            s.notes.insert(
                at,
                Note::Dropped {
                    index: old.index,
                    arrival: old.arrival,
                },
            );
            if s.pool.len() < self.pool {
                s.pool.push(old.data);
            }
        }
        drop(s);
        self.filled.notify_one();
        true
    }

    /// Records input at `index` that is not a frame (it still counts as input).
    pub fn note_skipped(&self, index: u64, reason: String) {
        let mut s = self.lock();
        s.counts.frames_in += 1;
        s.counts.skipped += 1;
        s.notes.push(Note::Skipped { index, reason });
        drop(s);
        // Wakes a waiting consumer so the note is reported without waiting for a frame.
        self.filled.notify_one();
    }

    /// The reader has finished: at the end of input (`None`) or on a read error.
    pub fn close(&self, failure: Option<Error>) {
        let mut s = self.lock();
        s.closed = true;
        s.failure = failure;
        drop(s);
        self.filled.notify_all();
    }

    /// The consumer has stopped: wakes and stops a reader waiting in [`FrameQueue::put`],
    /// and a consumer waiting in [`FrameQueue::take`], which then sees the end. A frame
    /// left in the slot is discarded.
    pub fn shut_down(&self) {
        let mut s = self.lock();
        s.shut_down = true;
        if let Some(frame) = s.slot.take() {
            if s.pool.len() < self.pool {
                s.pool.push(frame.data);
            }
        }
        drop(s);
        self.emptied.notify_all();
        self.filled.notify_all();
    }

    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }

    /// Whether the reader has finished (end of input or a read error).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits up to `wait` for a frame. Notes gathered since the last call are appended to
    /// `notes` whatever is returned (they all precede any frame still to come). After
    /// [`FrameQueue::shut_down`] there is no frame to come: [`Take::Closed`].
    pub fn take(&self, wait: Duration, notes: &mut Vec<Note>) -> Take {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        loop {
            if !s.notes.is_empty() {
                notes.append(&mut s.notes);
            }
            if let Some(frame) = s.slot.take() {
                drop(s);
                self.emptied.notify_one();
                return Take::Frame(frame);
            }
            if s.closed || s.shut_down {
                return Take::Closed;
            }
            if !notes.is_empty() {
                // Let the caller report what it has before waiting for a frame.
                return Take::Idle;
            }
            let now = Instant::now();
            if now >= deadline {
                return Take::Idle;
            }
            s = self
                .filled
                .wait_timeout(s, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The reader's error, once (after [`Take::Closed`]).
    pub fn take_failure(&self) -> Option<Error> {
        self.lock().failure.take()
    }

    pub fn counts(&self) -> QueueCounts {
        self.lock().counts
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    fn frame(q: &FrameQueue, index: u64) -> Frame {
        let mut data = q.buffer();
        data.extend_from_slice(&index.to_le_bytes());
        Frame {
            index,
            arrival: Instant::now(),
            data,
        }
    }

    /// A fast producer and a consumer that sleeps on every frame: the consumer sees ever
    /// newer frames, always the newest there was, and the drops add up.
    #[test]
    fn slow_consumer_gets_the_newest_and_drops_are_counted() {
        const N: u64 = 200;
        let q = Arc::new(FrameQueue::new(Policy::NewestWins, 1));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for i in 0..N {
                    assert!(q.put(frame(&q, i)));
                    thread::sleep(Duration::from_micros(200));
                }
                q.close(None);
            })
        };
        let mut seen = Vec::new();
        let mut notes = Vec::new();
        loop {
            match q.take(Duration::from_secs(5), &mut notes) {
                Take::Frame(f) => {
                    // The bytes travel with their frame through the recycled buffers.
                    assert_eq!(f.data, f.index.to_le_bytes());
                    seen.push(f.index);
                    q.recycle(f.data);
                    thread::sleep(Duration::from_millis(5));
                }
                Take::Idle => {}
                Take::Closed => break,
            }
        }
        producer.join().unwrap();
        let counts = q.counts();
        assert_eq!(counts.frames_in, N);
        assert_eq!(counts.dropped, N - seen.len() as u64);
        assert!(counts.dropped > N / 2, "the consumer is slow: {counts:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(
            seen.last(),
            Some(&(N - 1)),
            "the last frame is never dropped"
        );
        // Every frame is either seen or noted as dropped, exactly once.
        let mut all: Vec<u64> = seen
            .iter()
            .copied()
            .chain(notes.iter().map(Note::index))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..N).collect::<Vec<_>>());
        assert!(notes.iter().all(|n| matches!(n, Note::Dropped { .. })));
    }

    #[test]
    fn blocking_policy_loses_nothing() {
        const N: u64 = 50;
        let q = Arc::new(FrameQueue::new(Policy::Block, 1));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for i in 0..N {
                    assert!(q.put(frame(&q, i)));
                }
                q.close(None);
            })
        };
        let mut seen = Vec::new();
        let mut notes = Vec::new();
        loop {
            match q.take(Duration::from_secs(5), &mut notes) {
                Take::Frame(f) => {
                    seen.push(f.index);
                    q.recycle(f.data);
                    thread::sleep(Duration::from_millis(1));
                }
                Take::Idle => {}
                Take::Closed => break,
            }
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..N).collect::<Vec<_>>());
        assert_eq!(q.counts().dropped, 0);
        assert!(notes.is_empty());
    }

    #[test]
    fn shutting_down_releases_a_blocked_reader() {
        let q = Arc::new(FrameQueue::new(Policy::Block, 1));
        assert!(q.put(frame(&q, 0)));
        let reader = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.put(frame(&q, 1)))
        };
        thread::sleep(Duration::from_millis(20));
        q.shut_down();
        assert!(!reader.join().unwrap(), "put reports the consumer gone");
    }

    #[test]
    fn a_drop_is_noted_before_input_skipped_after_the_dropped_frame() {
        // Frame 0 waits; input 1 is skipped; frame 2 replaces frame 0.
        let q = FrameQueue::new(Policy::NewestWins, 1);
        assert!(q.put(frame(&q, 0)));
        q.note_skipped(1, "corrupt".into());
        assert!(q.put(frame(&q, 2)));
        let mut notes = Vec::new();
        assert!(matches!(q.take(Duration::ZERO, &mut notes), Take::Frame(f) if f.index == 2));
        let order: Vec<u64> = notes.iter().map(Note::index).collect();
        assert_eq!(order, [0, 1], "{notes:?}");
    }

    #[test]
    fn shutting_down_ends_a_waiting_consumer() {
        let q = Arc::new(FrameQueue::new(Policy::NewestWins, 2));
        let consumer = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.take(Duration::from_secs(600), &mut Vec::new()))
        };
        q.shut_down();
        assert!(matches!(consumer.join().unwrap(), Take::Closed));
    }

    #[test]
    fn skipped_input_is_noted_in_order_and_the_end_is_seen_after_the_last_frame() {
        let q = FrameQueue::new(Policy::NewestWins, 1);
        q.note_skipped(0, "corrupt".into());
        assert!(q.put(frame(&q, 1)));
        q.close(None);
        let mut notes = Vec::new();
        match q.take(Duration::ZERO, &mut notes) {
            Take::Frame(f) => assert_eq!(f.index, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            notes,
            vec![Note::Skipped {
                index: 0,
                reason: "corrupt".into()
            }]
        );
        assert!(matches!(q.take(Duration::ZERO, &mut notes), Take::Closed));
        assert_eq!(
            q.counts(),
            QueueCounts {
                frames_in: 2,
                dropped: 0,
                skipped: 1
            }
        );
    }
}
