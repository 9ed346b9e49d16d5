//! Where frames come from: a byte stream (standard input, a file, a FIFO) cut into frames,
//! or a camera device.
//!
//! A source yields one [`Unit`] at a time: a frame, input that is not a frame (skipped and
//! counted, never fatal), or the end. Only a failing read is an error.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::input::mjpeg::MjpegSplitter;
use crate::input::{FrameFormat, PixelFormat, Unit};

/// A producer of frames, run on the reader thread.
pub trait FrameSource: Send {
    /// Reads the next frame into `buf` (cleared first; its capacity is reused).
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Unit>;

    /// The frame format, as far as the source knows it.
    fn format(&self) -> FrameFormat;
}

/// Opens `path` (`-` for standard input) as a source of frames in `format`.
pub fn open(path: &Path, format: FrameFormat) -> Result<Box<dyn FrameSource>> {
    let input: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?)
    };
    from_reader(input, path, format)
}

/// A source over any byte stream; `name` is used in error messages.
pub fn from_reader(
    input: Box<dyn Read + Send>,
    name: &Path,
    format: FrameFormat,
) -> Result<Box<dyn FrameSource>> {
    if format.pixel == PixelFormat::Mjpeg {
        return Ok(Box::new(MjpegSource {
            input,
            name: name.to_path_buf(),
            splitter: MjpegSplitter::new(),
        }));
    }
    let frame_len = format.frame_len().ok_or_else(|| {
        Error::InvalidArgument(format!("--pix-fmt {} needs --size WxH", format.pixel))
    })?;
    Ok(Box::new(RawSource {
        input,
        name: name.to_path_buf(),
        format,
        frame_len,
        done: false,
    }))
}

/// Reads as much of `buf` as the input has, retrying interrupted reads. Returns how many
/// bytes were read: fewer than asked only at the end of input.
fn read_full(input: &mut dyn Read, buf: &mut [u8], name: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: name.to_path_buf(),
                    source: e,
                })
            }
        }
    }
    Ok(got)
}

/// Fixed-size frames back to back, as `rpicam-vid --codec yuv420 -o -` and ffmpeg's
/// `-f rawvideo` write them.
struct RawSource {
    input: Box<dyn Read + Send>,
    name: PathBuf,
    format: FrameFormat,
    frame_len: usize,
    done: bool,
}

impl FrameSource for RawSource {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Unit> {
        if self.done {
            return Ok(Unit::End);
        }
        buf.clear();
        buf.resize(self.frame_len, 0);
        let got = read_full(&mut self.input, buf, &self.name)?;
        if got == self.frame_len {
            return Ok(Unit::Frame);
        }
        self.done = true;
        if got == 0 {
            return Ok(Unit::End);
        }
        Ok(Unit::Bad(format!(
            "truncated last frame: {got} of {} bytes (does the input match --pix-fmt {} --size {}?)",
            self.frame_len,
            self.format.pixel,
            self.format.size.map_or(String::new(), |s| s.to_string()),
        )))
    }

    fn format(&self) -> FrameFormat {
        self.format
    }
}

/// How much is read from the input at a time when looking for JPEG boundaries.
const CHUNK: usize = 64 * 1024;

/// JPEG images back to back (`rpicam-vid --codec mjpeg -o -`, `cat a.jpg b.jpg`).
struct MjpegSource {
    input: Box<dyn Read + Send>,
    name: PathBuf,
    splitter: MjpegSplitter,
}

impl FrameSource for MjpegSource {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Unit> {
        buf.clear();
        loop {
            if let Some(unit) = self.splitter.next(buf) {
                return Ok(unit);
            }
            let tail = self.splitter.space(CHUNK);
            let got = loop {
                match self.input.read(tail) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::Io {
                            path: self.name.clone(),
                            source: e,
                        })
                    }
                }
            };
            self.splitter.filled(got);
            if got == 0 {
                return Ok(self.splitter.finish(buf));
            }
        }
    }

    fn format(&self) -> FrameFormat {
        FrameFormat::mjpeg()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FrameSize;

    /// A reader that hands out at most `step` bytes per read, like a pipe.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn units(source: &mut dyn FrameSource) -> Vec<(Unit, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let unit = source.next(&mut buf).unwrap();
            if unit == Unit::End {
                return out;
            }
            out.push((unit, buf.clone()));
        }
    }

    #[test]
    fn raw_frames_and_a_truncated_tail() {
        let format =
            FrameFormat::new(PixelFormat::Rgb24, Some(FrameSize::new(2, 1).unwrap())).unwrap();
        let data: Vec<u8> = (0..16).collect();
        let input = Trickle {
            data,
            at: 0,
            step: 5,
        };
        let mut source = from_reader(Box::new(input), Path::new("-"), format).unwrap();
        let got = units(source.as_mut());
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], (Unit::Frame, (0..6).collect()));
        assert_eq!(got[1], (Unit::Frame, (6..12).collect()));
        let Unit::Bad(reason) = &got[2].0 else {
            panic!("{got:?}")
        };
        assert!(
            reason.contains("truncated last frame: 4 of 6 bytes"),
            "{reason}"
        );
        // And the end stays the end.
        assert_eq!(source.next(&mut Vec::new()).unwrap(), Unit::End);
    }

    #[test]
    fn raw_input_of_whole_frames_ends_cleanly() {
        let format =
            FrameFormat::new(PixelFormat::Yuyv, Some(FrameSize::new(2, 2).unwrap())).unwrap();
        let input = std::io::Cursor::new(vec![16u8; 24]);
        let mut source = from_reader(Box::new(input), Path::new("x"), format).unwrap();
        let got = units(source.as_mut());
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|(u, b)| *u == Unit::Frame && b.len() == 8));
    }

    #[test]
    fn read_errors_name_the_input() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("device gone"))
            }
        }
        let mut source = from_reader(
            Box::new(Broken),
            Path::new("/dev/video9"),
            FrameFormat::mjpeg(),
        )
        .unwrap();
        let err = source.next(&mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains("/dev/video9") && err.contains("device gone"),
            "{err}"
        );
    }
}
