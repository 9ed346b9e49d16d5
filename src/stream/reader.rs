//! The reader thread: pulls frames from a source as fast as they come and hands each to
//! the queue, so a slow cascade never makes a camera or a pipe wait (unless asked to).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::input::Unit;
use crate::stream::queue::{Frame, FrameQueue};
use crate::stream::FrameSource;

/// Starts reading `source` into `queue` on a thread of its own. The thread ends at the end
/// of input, on a read error (left in the queue), or once the consumer shuts the queue.
pub fn spawn(mut source: Box<dyn FrameSource>, queue: Arc<FrameQueue>) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("frame-reader".into())
        .spawn(move || read_all(source.as_mut(), &queue))
        .map_err(|source| Error::Thread {
            what: "frame reader",
            source,
        })
}

/// The reader loop, for use on any thread.
fn read_all(source: &mut dyn FrameSource, queue: &FrameQueue) {
    let mut index = 0u64;
    loop {
        if queue.is_shut_down() {
            return;
        }
        let mut buf = queue.buffer();
        match source.next(&mut buf) {
            Ok(Unit::Frame) => {
                let frame = Frame {
                    index,
                    arrival: Instant::now(),
                    data: buf,
                };
                index += 1;
                if !queue.put(frame) {
                    return;
                }
            }
            Ok(Unit::Bad(reason)) => {
                queue.recycle(buf);
                queue.note_skipped(index, reason);
                index += 1;
            }
            Ok(Unit::End) => {
                queue.recycle(buf);
                queue.close(None);
                return;
            }
            Err(e) => {
                queue.close(Some(e));
                return;
            }
        }
    }
}
