//! What the workers of a stream take from the queue: its frames and its notes (frames
//! dropped or input skipped) as one sequence in input order, ended by the reader's error if
//! it had one.
//!
//! Giving the notes to the workers too, as items that cost nothing, lets the one mechanism
//! that puts the workers' results back in input order ([`run_in_order`]) place every
//! frame's fate, classified or not, where it belongs.
//!
//! [`run_in_order`]: crate::runtime::run_in_order

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::stream::queue::{Frame, FrameQueue, Note, Take};

/// One step of the stream, in input order.
#[derive(Debug)]
pub enum Item {
    Frame(Frame),
    Note(Note),
    /// The input failed after every item before this one: the last item.
    ReadFailed(Error),
}

/// How long one wait on the queue lasts. Only the end of a wait is spent; a frame or the
/// end of the stream wakes it at once.
const WAIT: Duration = Duration::from_secs(1);

/// The queue's frames and notes merged in input order. Ends when the reader has ended and
/// everything it read has been taken, or at once when the queue is shut down.
#[derive(Debug)]
pub struct Feed {
    queue: Arc<FrameQueue>,
    /// Notes taken from the queue and not yet handed out, in input order.
    notes: VecDeque<Note>,
    scratch: Vec<Note>,
    /// A frame taken from the queue, handed out after the notes that precede it (a frame
    /// can be skipped by the reader after an earlier frame was put and not yet taken).
    held: Option<Frame>,
    closed: bool,
}

impl Feed {
    pub fn new(queue: Arc<FrameQueue>) -> Feed {
        Feed {
            queue,
            notes: VecDeque::new(),
            scratch: Vec::new(),
            held: None,
            closed: false,
        }
    }
}

impl Iterator for Feed {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            let note_first = match (self.notes.front(), &self.held) {
                (Some(n), Some(f)) => n.index() < f.index,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if note_first {
                if let Some(note) = self.notes.pop_front() {
                    return Some(Item::Note(note));
                }
            }
            if let Some(frame) = self.held.take() {
                return Some(Item::Frame(frame));
            }
            if self.closed {
                // Once: the failure is taken out of the queue.
                return self.queue.take_failure().map(Item::ReadFailed);
            }
            match self.queue.take(WAIT, &mut self.scratch) {
                Take::Frame(f) => self.held = Some(f),
                Take::Idle => {}
                Take::Closed => self.closed = true,
            }
            self.notes.extend(self.scratch.drain(..));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::stream::Policy;

    fn put(q: &FrameQueue, index: u64) {
        let frame = Frame {
            index,
            arrival: Instant::now(),
            data: q.buffer(),
        };
        assert!(q.put(frame));
    }

    fn index(item: &Item) -> Option<u64> {
        match item {
            Item::Frame(f) => Some(f.index),
            Item::Note(n) => Some(n.index()),
            Item::ReadFailed(_) => None,
        }
    }

    #[test]
    fn frames_and_notes_come_in_input_order_then_the_read_error() {
        let q = Arc::new(FrameQueue::new(Policy::NewestWins, 1));
        // Frame 0 replaced by frame 1 (dropped), then input 2 skipped while 1 waits.
        put(&q, 0);
        put(&q, 1);
        q.note_skipped(2, "corrupt".into());
        put(&q, 3);
        q.close(Some(Error::Internal("the camera went away".into())));
        let items: Vec<Item> = Feed::new(Arc::clone(&q)).collect();
        let order: Vec<Option<u64>> = items.iter().map(index).collect();
        // Frame 1 was replaced by frame 3 after input 2 was skipped; its drop still comes
        // before the skip: every input once, in input order.
        assert_eq!(order, [Some(0), Some(1), Some(2), Some(3), None]);
        assert!(matches!(items[0], Item::Note(Note::Dropped { .. })));
        assert!(matches!(items[1], Item::Note(Note::Dropped { .. })));
        assert!(matches!(items[2], Item::Note(Note::Skipped { .. })));
        assert!(matches!(items[3], Item::Frame(_)));
        assert!(matches!(&items[4], Item::ReadFailed(e) if e.to_string().contains("went away")));
    }

    #[test]
    fn a_shut_down_queue_ends_a_waiting_feed() {
        let q = Arc::new(FrameQueue::new(Policy::Block, 2));
        let waiting = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || Feed::new(q).count())
        };
        q.shut_down();
        assert_eq!(
            waiting.join().unwrap(),
            0,
            "nothing came, and the feed ended"
        );
    }
}
