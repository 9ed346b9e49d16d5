//! Cutting a byte stream of back-to-back JPEG images into frames, with the marker walk of
//! [`crate::input::jpeg`] (an EXIF thumbnail inside a frame does not end it).
//!
//! A frame that breaks the JPEG structure (garbled bytes, or one cut off where the next
//! image starts) is reported as bad, and the splitter resynchronises on the next
//! start-of-image without losing that next frame. The walk keeps its place between reads,
//! so data arriving in small pieces from a pipe is scanned once.

use crate::input::jpeg::{starts_header, Step, Walk};
use crate::input::Unit;

/// Incremental JPEG splitter over a growing buffer.
#[derive(Debug)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// Start of unconsumed data; the current frame's start-of-image once one is found.
    pos: usize,
    /// The walk over the current frame, once its start-of-image is found.
    walk: Option<Walk>,
    /// Where to look for the next start-of-image, relative to `pos`, while seeking.
    seek_at: usize,
    /// Skipping the rest of a bad frame: those bytes are not reported again.
    quiet: bool,
    /// Bytes seen outside any frame (between or around images), reported once at the end.
    stray: u64,
    /// Bytes handed out by [`MjpegSplitter::space`] and not yet filled.
    reserved: usize,
}

impl Default for MjpegSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl MjpegSplitter {
    pub fn new() -> MjpegSplitter {
        MjpegSplitter {
            buf: Vec::new(),
            pos: 0,
            walk: None,
            seek_at: 0,
            quiet: false,
            stray: 0,
            reserved: 0,
        }
    }

    /// A writable tail of `n` bytes for the next read; report how many were written with
    /// [`MjpegSplitter::filled`].
    pub fn space(&mut self, n: usize) -> &mut [u8] {
        if self.pos > 0 {
            // Offsets are relative to `pos`, so moving the data keeps the walk's place.
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + n, 0);
        self.reserved = n;
        &mut self.buf[len..]
    }

    pub fn filled(&mut self, got: usize) {
        let unused = self.reserved.saturating_sub(got);
        self.buf.truncate(self.buf.len() - unused);
        self.reserved = 0;
    }

    /// Appends data (for callers that do not read into [`MjpegSplitter::space`]).
    #[cfg(test)]
    pub fn push(&mut self, data: &[u8]) {
        self.space(data.len()).copy_from_slice(data);
        self.filled(data.len());
    }

    /// The next frame (appended to `out`) or bad frame from the data so far, or `None`
    /// when more data is needed.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Option<Unit> {
        loop {
            let data = &self.buf[self.pos..];
            let Some(walk) = &mut self.walk else {
                let found = data[self.seek_at.min(data.len())..]
                    .windows(4)
                    .position(|w| w[..3] == [0xFF, 0xD8, 0xFF] && starts_header(w[3]));
                // Without a start, keep three bytes: they may begin an image cut by the read.
                let skip = found.map_or(data.len().saturating_sub(3), |p| self.seek_at + p);
                if !self.quiet {
                    self.stray += skip as u64;
                }
                self.pos += skip;
                self.seek_at = 0;
                found?;
                self.quiet = false;
                self.walk = Some(Walk::new());
                continue;
            };
            return match walk.advance(data) {
                Step::More => None,
                Step::End(len) => {
                    out.extend_from_slice(&data[..len]);
                    self.pos += len;
                    self.walk = None;
                    Some(Unit::Frame)
                }
                Step::Corrupt { resync, reason } => {
                    self.resync(resync);
                    Some(Unit::Bad(format!("corrupt JPEG frame: {reason}")))
                }
            };
        }
    }

    /// Gives up on the current frame and looks for the next start-of-image from `from`
    /// (relative to the frame's start), skipping the rest of this frame silently.
    fn resync(&mut self, from: usize) {
        self.pos = (self.pos + from).min(self.buf.len());
        self.walk = None;
        self.seek_at = 0;
        self.quiet = true;
    }

    /// At the end of input: a frame still open is truncated (reported once, and the rest
    /// searched again, since a bogus segment length may have jumped over whole images);
    /// call again until it returns [`Unit::End`].
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Unit {
        if let Some(unit) = self.next(out) {
            return unit;
        }
        if let Some(walk) = self.walk {
            let rest = self.buf.len() - self.pos;
            self.resync(walk.resync_point());
            return Unit::Bad(format!(
                "truncated last frame: {rest} bytes without an end-of-image marker"
            ));
        }
        if !self.quiet {
            self.stray += (self.buf.len() - self.pos) as u64;
        }
        self.buf.clear();
        self.pos = 0;
        self.seek_at = 0;
        self.quiet = false;
        if self.stray > 0 {
            log::warn!(
                "{} bytes outside any JPEG image were ignored",
                std::mem::take(&mut self.stray)
            );
        }
        Unit::End
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::RgbImage;

    fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([shade, (x * 9) as u8, (x * y * 7) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    /// A JPEG with an EXIF-like APP1 segment holding a whole thumbnail JPEG.
    fn with_thumbnail(main: &[u8], thumb: &[u8]) -> Vec<u8> {
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((thumb.len() + 2 + 6) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(thumb);
        let mut out = main[..2].to_vec();
        out.extend_from_slice(&app1);
        out.extend_from_slice(&main[2..]);
        out
    }

    /// Feeds `stream` in pieces of `step` bytes and collects every unit.
    fn split(stream: &[u8], step: usize) -> Vec<(Unit, Vec<u8>)> {
        let mut s = MjpegSplitter::new();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for piece in stream.chunks(step.max(1)) {
            s.push(piece);
            while let Some(unit) = s.next(&mut buf) {
                out.push((unit, std::mem::take(&mut buf)));
            }
        }
        loop {
            let unit = s.finish(&mut buf);
            if unit == Unit::End {
                return out;
            }
            out.push((unit, std::mem::take(&mut buf)));
        }
    }

    #[test]
    fn back_to_back_images_split_exactly_in_any_piece_size() {
        let images = [jpeg(16, 8, 10), jpeg(9, 13, 200), jpeg(33, 5, 90)];
        let stream = images.concat();
        for step in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let got = split(&stream, step);
            let frames: Vec<&Vec<u8>> = got.iter().map(|(_, b)| b).collect();
            assert!(got.iter().all(|(u, _)| *u == Unit::Frame), "{step}");
            assert_eq!(
                frames,
                images.iter().collect::<Vec<_>>(),
                "piece size {step}"
            );
        }
    }

    #[test]
    fn a_thumbnail_does_not_end_the_frame() {
        let img = with_thumbnail(&jpeg(20, 20, 50), &jpeg(4, 4, 60));
        assert!(crate::input::decode_bytes(&img).is_ok());
        let stream = [img.clone(), jpeg(8, 8, 1)].concat();
        let got = split(&stream, 1000);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Unit::Frame, img));
    }

    #[test]
    fn a_cut_off_frame_is_bad_and_the_next_one_survives() {
        // Large enough that half of b ends inside its entropy-coded data.
        let (a, b, c) = (jpeg(64, 64, 10), jpeg(64, 64, 120), jpeg(8, 8, 240));
        let half = &b[..b.len() / 2];
        let stream = [a.as_slice(), half, &c, &a].concat();
        for step in [1, 5, 512, stream.len()] {
            let got = split(&stream, step);
            let kinds: Vec<bool> = got.iter().map(|(u, _)| *u == Unit::Frame).collect();
            assert_eq!(kinds, [true, false, true, true], "step {step}: {got:?}");
            assert_eq!(got[2].1, c);
            let Unit::Bad(reason) = &got[1].0 else {
                unreachable!()
            };
            assert!(reason.contains("before the next image starts"), "{reason}");
        }
    }

    #[test]
    fn a_frame_cut_inside_its_headers_does_not_swallow_the_next() {
        // Cut inside the quantisation tables: the segment length points past the cut.
        let (a, b) = (jpeg(16, 16, 10), jpeg(12, 12, 100));
        let stream = [&a[..30], b.as_slice()].concat();
        let got = split(&stream, 7);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(got[0].0, Unit::Bad(_)));
        assert_eq!(got[1], (Unit::Frame, b));
    }

    #[test]
    fn garbled_frames_are_bad_or_left_to_the_decoder_but_never_lose_neighbours() {
        let (a, b, c) = (jpeg(24, 24, 10), jpeg(24, 24, 120), jpeg(24, 24, 240));
        // Garble the middle of b in several ways; a and c must always come out whole.
        for (k, fill) in [(0usize, 0xFFu8), (1, 0xC4), (2, 0x00), (3, 0xD8)] {
            let mut bad = b.clone();
            let mid = bad.len() / 2;
            for (j, byte) in bad[mid..mid + 40].iter_mut().enumerate() {
                *byte = if j % 2 == k % 2 { 0xFF } else { fill };
            }
            let stream = [a.as_slice(), &bad, &c].concat();
            let got = split(&stream, 64);
            assert_eq!(got.first(), Some(&(Unit::Frame, a.clone())), "{k}");
            assert_eq!(got.last(), Some(&(Unit::Frame, c.clone())), "{k}");
            assert!(got.len() <= 4, "{k}: {got:?}");
        }
    }

    #[test]
    fn truncated_tail_and_stray_bytes() {
        let (a, b) = (jpeg(16, 16, 10), jpeg(16, 16, 90));
        let stream = [b"junk".as_slice(), &a, b"\n\n", &b[..b.len() - 3]].concat();
        let got = split(&stream, 10);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], (Unit::Frame, a));
        let Unit::Bad(reason) = &got[1].0 else {
            unreachable!()
        };
        assert!(reason.starts_with("truncated last frame"), "{reason}");
        // Input with no image at all ends without a frame (and a warning).
        assert!(split(b"hello, not a jpeg", 3).is_empty());
        assert!(split(b"", 3).is_empty());
    }
}
