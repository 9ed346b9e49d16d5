//! Cutting a byte stream of back-to-back JPEG images into frames.
//!
//! Searching for the first `FF D9` after an `FF D8` is not enough: an EXIF thumbnail is a
//! whole JPEG inside the APP1 segment, with its own end marker. So the splitter walks the
//! marker segments by their lengths and looks for the end marker only where it can be: after
//! a start-of-scan, in entropy-coded data, where a `FF` byte is always followed by `00` or a
//! restart marker unless a real marker begins.
//!
//! A frame that breaks this structure (garbled bytes, or one cut off where the next image
//! starts) is reported as bad, and the splitter resynchronises on the next start-of-image
//! without losing that next frame. The walk keeps its place between reads, so data arriving
//! in small pieces from a pipe is scanned once.

use crate::input::frame::Unit;

/// A frame larger than this without an end marker is taken for garbage.
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Looking for a start-of-image marker.
    Seek,
    /// At `at` a marker is expected.
    Marker,
    /// Inside entropy-coded data from `at`.
    Entropy,
}

/// Incremental JPEG splitter over a growing buffer.
#[derive(Debug)]
pub struct MjpegSplitter {
    buf: Vec<u8>,
    /// Start of unconsumed data; the current frame's start-of-image once one is found.
    pos: usize,
    phase: Phase,
    /// Scan position relative to `pos`.
    at: usize,
    /// Start of the segment being walked, relative to `pos`: where to resynchronise from.
    segment: usize,
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
            phase: Phase::Seek,
            at: 0,
            segment: 0,
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
    pub fn push(&mut self, data: &[u8]) {
        self.space(data.len()).copy_from_slice(data);
        self.filled(data.len());
    }

    /// Bytes seen outside any frame so far.
    pub fn stray_bytes(&self) -> u64 {
        self.stray
    }

    /// The next frame (appended to `out`) or bad frame from the data so far, or `None`
    /// when more data is needed.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Option<Unit> {
        loop {
            let data = &self.buf[self.pos..];
            match self.phase {
                Phase::Seek => match data[self.at.min(data.len())..]
                    .windows(4)
                    .position(|w| w[..3] == [0xFF, 0xD8, 0xFF] && starts_header(w[3]))
                {
                    Some(p) => {
                        let skip = self.at + p;
                        if !self.quiet {
                            self.stray += skip as u64;
                        }
                        self.pos += skip;
                        self.quiet = false;
                        self.phase = Phase::Marker;
                        self.at = 2;
                        self.segment = 0;
                    }
                    None => {
                        // Keep three bytes: they may be the start of an image cut by the read.
                        let skip = data.len().saturating_sub(3);
                        if !self.quiet {
                            self.stray += skip as u64;
                        }
                        self.pos += skip;
                        self.at = 0;
                        return None;
                    }
                },
                Phase::Marker => {
                    let at = self.at;
                    if at > MAX_FRAME {
                        return Some(self.bad(
                            self.segment + 2,
                            format!("no end-of-image marker within {} MiB", MAX_FRAME >> 20),
                        ));
                    }
                    if at + 2 > data.len() {
                        return None;
                    }
                    if data[at] != 0xFF {
                        return Some(self.bad(
                            self.segment + 2,
                            format!("broken marker structure at byte {at}"),
                        ));
                    }
                    match data[at + 1] {
                        0xFF => self.at += 1, // fill byte before a marker
                        0xD8 => {
                            // The next image starts before this one ended: resynchronise
                            // right there, so that image is kept.
                            return Some(self.bad(
                                at,
                                "no end-of-image marker before the next image starts".into(),
                            ));
                        }
                        0xD9 => {
                            out.extend_from_slice(&data[..at + 2]);
                            self.pos += at + 2;
                            self.phase = Phase::Seek;
                            self.at = 0;
                            return Some(Unit::Frame);
                        }
                        0x01 | 0xD0..=0xD7 => self.at += 2, // markers without a length
                        0x00 | 0x02..=0xBF => {
                            return Some(self.bad(
                                self.segment + 2,
                                format!("invalid marker FF {:02X} at byte {at}", data[at + 1]),
                            ));
                        }
                        marker => {
                            if at + 4 > data.len() {
                                return None;
                            }
                            let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
                            if len < 2 {
                                return Some(self.bad(
                                    self.segment + 2,
                                    format!("segment of length {len} at byte {at}"),
                                ));
                            }
                            self.segment = at;
                            self.at = at + 2 + len;
                            if marker == 0xDA {
                                self.phase = Phase::Entropy;
                            }
                        }
                    }
                }
                Phase::Entropy => {
                    let mut i = self.at;
                    let found = loop {
                        if i > MAX_FRAME {
                            break Err(true);
                        }
                        if i + 1 >= data.len() {
                            break Err(false);
                        }
                        if data[i] != 0xFF {
                            i += 1;
                            continue;
                        }
                        match data[i + 1] {
                            // Stuffed zero or restart marker: still entropy-coded data.
                            0x00 | 0xD0..=0xD7 => i += 2,
                            _ => break Ok(i),
                        }
                    };
                    match found {
                        Ok(marker) => {
                            self.at = marker;
                            self.segment = marker;
                            self.phase = Phase::Marker;
                        }
                        Err(true) => {
                            return Some(self.bad(
                                self.segment + 2,
                                format!("no end-of-image marker within {} MiB", MAX_FRAME >> 20),
                            ));
                        }
                        Err(false) => {
                            self.at = i.max(self.at);
                            return None;
                        }
                    }
                }
            }
        }
    }

    /// Gives up on the current frame and looks for the next start-of-image from `resync`
    /// (relative to the frame's start), skipping the rest of this frame silently.
    fn bad(&mut self, resync: usize, reason: String) -> Unit {
        self.resync(resync);
        Unit::Bad(format!("corrupt JPEG frame: {reason}"))
    }

    fn resync(&mut self, from: usize) {
        self.pos = (self.pos + from).min(self.buf.len());
        self.phase = Phase::Seek;
        self.at = 0;
        self.segment = 0;
        self.quiet = true;
    }

    /// At the end of input: a frame still open is truncated (reported once, and the rest
    /// searched again, since a bogus segment length may have jumped over whole images);
    /// call again until it returns [`Unit::End`].
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Unit {
        if let Some(unit) = self.next(out) {
            return unit;
        }
        if self.phase != Phase::Seek {
            let rest = self.buf.len() - self.pos;
            self.resync(self.segment + 2);
            return Unit::Bad(format!(
                "truncated last frame: {rest} bytes without an end-of-image marker"
            ));
        }
        if !self.quiet {
            self.stray += (self.buf.len() - self.pos) as u64;
        }
        self.buf.clear();
        self.pos = 0;
        self.at = 0;
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

/// Whether a marker can follow start-of-image: a table, frame header, restart interval,
/// comment or application segment. Rules out `FF D8 FF` runs inside garbage.
fn starts_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF | 0xDB | 0xDD | 0xE0..=0xEF | 0xFE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::decode::RgbImage;

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
        assert!(crate::input::decode::decode_bytes(&img).is_ok());
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
