//! The MJPEG splitter, through the public stream source (`stream::from_reader`), fed the
//! stream in read sizes the input chooses.
//!
//! Input: one byte `n`, then `n` read sizes (one byte each, 0 meaning an interrupted read
//! that must be retried), then the stream. The reads cycle through the sizes; with none,
//! each read fills the splitter's buffer. Every frame must be a whole JPEG (start and end
//! markers) cut from the stream in order, never longer than it; the source must reach its
//! end without an error, in a number of steps bounded by the stream's length, and stay
//! there.
#![no_main]

use std::io::{ErrorKind, Read};
use std::path::Path;

use cascade::input::{FrameFormat, Unit};
use cascade::stream::from_reader;
use libfuzzer_sys::fuzz_target;

/// A pipe that hands out the stream in the given read sizes.
struct Pipe {
    stream: Vec<u8>,
    at: usize,
    sizes: Vec<u8>,
    reads: usize,
    interrupted: bool,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = match self.sizes.get(self.reads % self.sizes.len().max(1)) {
            None => buf.len(),
            // One interruption at a time, so a list of zeros still makes progress.
            Some(0) if !self.interrupted => {
                self.interrupted = true;
                return Err(ErrorKind::Interrupted.into());
            }
            Some(&n) => usize::from(n.max(1)),
        };
        self.interrupted = false;
        self.reads += 1;
        let n = size.min(buf.len()).min(self.stream.len() - self.at);
        buf[..n].copy_from_slice(&self.stream[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (sizes, stream) = rest.split_at(usize::from(n).min(rest.len()));
    let pipe = Pipe {
        stream: stream.to_vec(),
        at: 0,
        sizes: sizes.to_vec(),
        reads: 0,
        interrupted: false,
    };
    let mut source = from_reader(
        Box::new(pipe),
        Path::new("fuzz.mjpeg"),
        FrameFormat::mjpeg(),
    )
    .expect("an MJPEG source opens");
    let mut buf = Vec::new();
    // Where the previous frame ended: frames come out in stream order, without overlap.
    let mut after = 0;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= stream.len() + 2, "more units than bytes: a loop");
        match source
            .next(&mut buf)
            .expect("reading from memory never fails")
        {
            Unit::End => break,
            Unit::Bad(reason) => assert!(!reason.is_empty()),
            Unit::Frame => {
                assert!(
                    buf.len() >= 4 && buf.len() <= stream.len(),
                    "{} bytes",
                    buf.len()
                );
                assert_eq!(&buf[..2], [0xFF, 0xD8], "a frame starts with SOI");
                assert_eq!(&buf[buf.len() - 2..], [0xFF, 0xD9], "a frame ends with EOI");
                let at = stream[after..]
                    .windows(buf.len())
                    .position(|w| w == buf.as_slice())
                    .expect("a frame is a piece of the stream, after the previous one");
                after += at + buf.len();
            }
        }
    }
    assert_eq!(
        source.next(&mut buf).unwrap(),
        Unit::End,
        "the end stays the end"
    );
});
