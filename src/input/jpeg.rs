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
    /// What the headers before the first scan say about Huffman tables.
    tables: Tables,
}

/// Whether a JPEG defines its Huffman tables before its first scan. Motion-JPEG fixes them
/// to the standard ones, so many webcams leave them out of every frame; libjpeg-turbo and
/// FFmpeg then supply the standard ones, zune-jpeg only when the frame carries an `AVI1`
/// APP0 segment, which not every camera writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tables {
    /// A DHT segment came before the first scan.
    defined: bool,
    /// The frame is sequential and Huffman-coded (baseline or extended: SOF0, SOF1), the
    /// kind the standard tables serve.
    sequential: bool,
    /// Offset of the first start-of-scan marker, once walked past.
    first_scan: Option<usize>,
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
            tables: Tables::default(),
        }
    }

    /// Where the standard Huffman tables must be inserted (the first start-of-scan) when the
    /// image is sequential and defined none before it; `None` otherwise or before the walk
    /// reached its first scan.
    pub(crate) fn missing_tables(&self) -> Option<usize> {
        let t = self.tables;
        t.first_scan.filter(|_| t.sequential && !t.defined)
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
                    if self.tables.first_scan.is_none() {
                        match marker {
                            0xC4 => self.tables.defined = true,
                            0xC0 | 0xC1 => self.tables.sequential = true,
                            0xDA => self.tables.first_scan = Some(at),
                            _ => {}
                        }
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

/// What the walk of a whole JPEG image found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Complete {
    /// Where the standard Huffman tables must be inserted before decoding (see
    /// [`with_standard_huffman_tables`]), when the image needs them.
    pub missing_tables: Option<usize>,
}

/// Checks that `bytes` begin with one whole JPEG image, from its start-of-image marker to
/// its end-of-image marker; trailing bytes (some cameras append data) are allowed. The
/// error says what is wrong, for the decoder to report.
pub(crate) fn check_complete(bytes: &[u8]) -> Result<Complete, String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG start-of-image".into());
    }
    let mut walk = Walk::new();
    match walk.advance(bytes) {
        Step::End(_) => Ok(Complete {
            missing_tables: walk.missing_tables(),
        }),
        Step::More => Err("truncated JPEG (no end-of-image marker after the scan)".into()),
        Step::Corrupt { reason, .. } => Err(format!("corrupt JPEG: {reason}")),
    }
}

/// `bytes` with the standard Huffman tables inserted before the start-of-scan at `scan`
/// (from [`Complete::missing_tables`]), as FFmpeg's `mjpeg2jpeg` filter writes them.
pub(crate) fn with_standard_huffman_tables(bytes: &[u8], scan: usize) -> Vec<u8> {
    let (headers, rest) = bytes.split_at(scan.min(bytes.len()));
    [headers, &STANDARD_HUFFMAN_TABLES, rest].concat()
}

/// The Huffman tables of ITU-T T.81 Annex K.3 (tables K.3 to K.6: DC and AC for luminance,
/// destination 0, and chrominance, destination 1) as one DHT segment.
const STANDARD_HUFFMAN_TABLES: [u8; 420] = dht_segment();

const DC_LUMINANCE_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMINANCE_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMINANCE_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
#[rustfmt::skip]
const AC_LUMINANCE_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];
const AC_CHROMINANCE_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const AC_CHROMINANCE_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// The DHT segment of the four tables: marker, length, then per table its class and
/// destination (`0x00` DC 0, `0x10` AC 0, `0x01` DC 1, `0x11` AC 1), 16 code counts and
/// the values.
const fn dht_segment() -> [u8; 420] {
    const fn put(out: &mut [u8; 420], mut at: usize, bytes: &[u8]) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            out[at] = bytes[i];
            at += 1;
            i += 1;
        }
        at
    }
    let mut out = [0u8; 420];
    // 418: the length counts itself and the four tables, not the marker.
    let mut at = put(&mut out, 0, &[0xFF, 0xC4, 0x01, 0xA2]);
    at = put(&mut out, at, &[0x00]);
    at = put(&mut out, at, &DC_LUMINANCE_COUNTS);
    at = put(&mut out, at, &DC_VALUES);
    at = put(&mut out, at, &[0x10]);
    at = put(&mut out, at, &AC_LUMINANCE_COUNTS);
    at = put(&mut out, at, &AC_LUMINANCE_VALUES);
    at = put(&mut out, at, &[0x01]);
    at = put(&mut out, at, &DC_CHROMINANCE_COUNTS);
    at = put(&mut out, at, &DC_VALUES);
    at = put(&mut out, at, &[0x11]);
    at = put(&mut out, at, &AC_CHROMINANCE_COUNTS);
    at = put(&mut out, at, &AC_CHROMINANCE_VALUES);
    assert!(at == 420);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::input::decode::tests::jpeg;

    #[test]
    fn a_whole_image_ends_at_its_end_marker_in_any_number_of_steps() {
        let bytes = jpeg(16, 8);
        assert!(check_complete(&bytes).is_ok());
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

    /// `bytes` without its DHT segments, as a webcam that leaves the tables out sends it.
    pub(crate) fn without_huffman_tables(bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes[..2].to_vec();
        let mut at = 2;
        while bytes[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            if bytes[at + 1] != 0xC4 {
                out.extend_from_slice(&bytes[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        out.extend_from_slice(&bytes[at..]);
        out
    }

    /// Each Huffman table of the DHT segments of `bytes`, by class and destination: its 16
    /// code counts and its values.
    fn huffman_tables(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut tables = Vec::new();
        let mut at = 2;
        while bytes[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            if bytes[at + 1] == 0xC4 {
                let mut t = at + 4;
                while t < at + 2 + len {
                    let n: usize = bytes[t + 1..t + 17].iter().map(|&c| usize::from(c)).sum();
                    tables.push((bytes[t], bytes[t + 1..t + 17 + n].to_vec()));
                    t += 17 + n;
                }
                assert_eq!(t, at + 2 + len, "a DHT segment's tables fill it exactly");
            }
            at += 2 + len;
        }
        tables.sort();
        tables
    }

    #[test]
    fn the_standard_tables_are_those_an_encoder_writes() {
        // The image crate's encoder writes the Annex K tables (not optimized ones).
        let encoded = huffman_tables(&jpeg(16, 16));
        assert_eq!(encoded.len(), 4);
        let mut ours = STANDARD_HUFFMAN_TABLES.to_vec();
        ours.extend_from_slice(&[0xFF, 0xDA]);
        assert_eq!(
            huffman_tables(&[&[0xFF, 0xD8][..], &ours].concat()),
            encoded
        );
    }

    /// Where the walk of `bytes` says the standard tables go; panics unless it is whole.
    fn missing_tables(bytes: &[u8]) -> Option<usize> {
        check_complete(bytes).unwrap().missing_tables
    }

    #[test]
    fn only_a_sequential_jpeg_without_tables_needs_them() {
        let bytes = jpeg(16, 16);
        assert_eq!(missing_tables(&bytes), None);
        let bare = without_huffman_tables(&bytes);
        assert!(bare.len() < bytes.len());
        let scan = missing_tables(&bare).expect("tables missing");
        assert_eq!(bare[scan..scan + 2], [0xFF, 0xDA]);
        let patched = with_standard_huffman_tables(&bare, scan);
        assert_eq!(missing_tables(&patched), None);
        assert_eq!(patched.len(), bare.len() + 420);
        // A progressive frame (SOF2) is left to the decoder; so is an image cut before its
        // scan (not whole: an error, whatever its tables).
        let sof = bare.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut progressive = bare.clone();
        progressive[sof + 1] = 0xC2;
        assert_eq!(missing_tables(&progressive), None);
        assert!(check_complete(&bare[..scan]).is_err());
        // Tables after the first scan (a later scan's) do not serve the first one.
        let mut walk = Walk::new();
        let tables_later = [
            &bare[..bare.len() - 2],
            &STANDARD_HUFFMAN_TABLES,
            &[0xFF, 0xD9],
        ]
        .concat();
        assert!(matches!(walk.advance(&tables_later), Step::End(_)));
        assert_eq!(walk.missing_tables(), Some(scan));
    }
}
