//! Walking a JPEG image's marker structure: the one walker behind both the decoder's
//! completeness check and the MJPEG stream splitter.
//!
//! Searching for the first `FF D9` after an `FF D8` is not enough: an EXIF thumbnail is a
//! whole JPEG inside the APP1 segment, with its own end marker. So the walk follows the
//! marker segments by their lengths and looks for the end marker only where it can be:
//! after a start-of-scan, in entropy-coded data, where a `FF` byte is always followed by
//! `00` or a restart marker unless a real marker begins.
//!
//! The walk is resumable: given the image's bytes so far it says how far it got, and given
//! more bytes later it continues from there, so data arriving in small pieces from a pipe
//! is scanned once.

/// An image larger than this without an end marker is taken for garbage.
pub const MAX_IMAGE: usize = 64 << 20;

/// Where a walk over one image stands. Offsets count from the image's start-of-image
/// marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Inside entropy-coded data (after a start-of-scan) rather than expecting a marker.
    entropy: bool,
    /// Where the walk continues.
    at: usize,
    /// Start of the segment being walked: where to resynchronise from if it is broken.
    segment: usize,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The bytes so far are a valid beginning; more are needed.
    More,
    /// The image ends after this many bytes (its end-of-image marker included).
    End(usize),
    /// The structure is broken; a splitter resynchronises from `resync`.
    Corrupt { resync: usize, reason: String },
}

impl Walk {
    /// A walk over an image whose start-of-image marker (`FF D8`) is at offset 0.
    pub(crate) fn new() -> Walk {
        Walk {
            entropy: false,
            at: 2,
            segment: 0,
        }
    }

    /// Where to resynchronise after the image turned out truncated.
    pub(crate) fn resync_point(&self) -> usize {
        self.segment + 2
    }

    /// Continues the walk over `data`: the image from its first byte, at least as long as
    /// at the previous call.
    pub(crate) fn advance(&mut self, data: &[u8]) -> Step {
        loop {
            if self.entropy {
                let mut i = self.at;
                // A marker takes two bytes, and the walk gives up past MAX_IMAGE.
                let limit = data.len().saturating_sub(1).min(MAX_IMAGE + 1);
                loop {
                    // memchr: the entropy-coded data is most of a JPEG, and a byte-at-a-time
                    // scan of it cost as much as a tenth of decoding the image.
                    let found = data
                        .get(i..limit)
                        .and_then(|rest| memchr::memchr(0xFF, rest));
                    let Some(k) = found else {
                        i = i.max(limit);
                        if i > MAX_IMAGE {
                            return self.corrupt(format!(
                                "no end-of-image marker within {} MiB",
                                MAX_IMAGE >> 20
                            ));
                        }
                        self.at = i.max(self.at);
                        return Step::More;
                    };
                    i += k;
                    match data[i + 1] {
                        // Stuffed zero or restart marker: still entropy-coded data.
                        0x00 | 0xD0..=0xD7 => i += 2,
                        _ => break,
                    }
                }
                self.at = i;
                self.segment = i;
                self.entropy = false;
                continue;
            }
            let at = self.at;
            if at > MAX_IMAGE {
                return self.corrupt(format!(
                    "no end-of-image marker within {} MiB",
                    MAX_IMAGE >> 20
                ));
            }
            if at + 2 > data.len() {
                return Step::More;
            }
            if data[at] != 0xFF {
                return self.corrupt(format!("broken marker structure at byte {at}"));
            }
            match data[at + 1] {
                0xFF => self.at += 1, // fill byte before a marker
                // The next image starts before this one ended: resynchronise right there,
                // so that image is kept.
                0xD8 => {
                    return Step::Corrupt {
                        resync: at,
                        reason: "no end-of-image marker before the next image starts".into(),
                    }
                }
                0xD9 => return Step::End(at + 2),
                0x01 | 0xD0..=0xD7 => self.at += 2, // markers without a length
                0x00 | 0x02..=0xBF => {
                    return self.corrupt(format!(
                        "invalid marker FF {:02X} at byte {at}",
                        data[at + 1]
                    ))
                }
                marker => {
                    if at + 4 > data.len() {
                        return Step::More;
                    }
                    let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
                    if len < 2 {
                        return self.corrupt(format!("segment of length {len} at byte {at}"));
                    }
                    self.segment = at;
                    self.at = at + 2 + len;
                    self.entropy = marker == 0xDA;
                }
            }
        }
    }

    fn corrupt(&self, reason: String) -> Step {
        Step::Corrupt {
            resync: self.resync_point(),
            reason,
        }
    }
}

/// Whether a marker can follow start-of-image: a table, frame header, restart interval,
/// comment or application segment. Rules out `FF D8 FF` runs inside garbage.
pub(crate) fn starts_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF | 0xDB | 0xDD | 0xE0..=0xEF | 0xFE)
}

/// Checks that `bytes` begin with one whole JPEG image, from its start-of-image marker to
/// its end-of-image marker; trailing bytes (some cameras append data) are allowed. The
/// error says what is wrong, for the decoder to report.
pub(crate) fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG start-of-image".into());
    }
    match Walk::new().advance(bytes) {
        Step::End(_) => Ok(()),
        Step::More => Err("truncated JPEG (no end-of-image marker after the scan)".into()),
        Step::Corrupt { reason, .. } => Err(format!("corrupt JPEG: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::decode::tests::jpeg;

    #[test]
    fn a_whole_image_ends_at_its_end_marker_in_any_number_of_steps() {
        let bytes = jpeg(16, 8);
        assert_eq!(check_complete(&bytes), Ok(()));
        assert_eq!(Walk::new().advance(&bytes), Step::End(bytes.len()));
        let mut walk = Walk::new();
        let mut end = None;
        for n in 1..=bytes.len() {
            match walk.advance(&bytes[..n]) {
                Step::More => {}
                Step::End(len) => {
                    end = Some(len);
                    break;
                }
                Step::Corrupt { reason, .. } => panic!("{n}: {reason}"),
            }
        }
        assert_eq!(end, Some(bytes.len()));
    }

    #[test]
    fn truncated_and_broken_images_are_told_apart() {
        let bytes = jpeg(64, 64);
        for cut in [bytes.len() - 2, bytes.len() / 2, 20] {
            let err = check_complete(&bytes[..cut]).unwrap_err();
            assert!(err.contains("truncated"), "{cut}: {err}");
        }
        let mut broken = bytes.clone();
        broken[2..4].copy_from_slice(&[0xFF, 0x02]);
        let err = check_complete(&broken).unwrap_err();
        assert!(err.contains("invalid marker FF 02"), "{err}");
        assert!(check_complete(b"GIF89a").is_err());
    }
}
