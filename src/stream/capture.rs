//! One filled camera buffer to one frame, kept apart from the V4L2 calls that fill the
//! buffer (in [`crate::stream::v4l`], behind the `v4l` feature) so that it is built and
//! tested everywhere, without a camera.
//!
//! Drivers hand out whole buffers: only `bytes_used` of them hold the frame, packed formats
//! may pad each row to a `stride` wider than the picture, and a buffer the driver flagged as
//! corrupt must be skipped like a corrupt JPEG in a pipe.

use crate::input::Unit;
use crate::input::{FrameFormat, PixelFormat};

/// A buffer as the driver returned it.
#[derive(Debug, Clone, Copy)]
pub struct FilledBuffer<'a> {
    /// The whole mapped buffer.
    pub data: &'a [u8],
    /// How many bytes of it the driver filled.
    pub bytes_used: usize,
    /// The driver's error flag.
    pub corrupt: bool,
    /// The driver's frame counter, for messages.
    pub sequence: u32,
}

/// Copies the frame in `filled` into `buf` (cleared first, capacity reused), without the
/// row padding of YUYV. `stride` is the driver's bytes per row (at least the picture's).
pub fn copy_frame(
    filled: FilledBuffer<'_>,
    format: FrameFormat,
    stride: usize,
    buf: &mut Vec<u8>,
) -> Unit {
    buf.clear();
    if filled.corrupt {
        return Unit::Bad(format!(
            "the driver marked frame {} as corrupt",
            filled.sequence
        ));
    }
    let data = &filled.data[..filled.bytes_used.min(filled.data.len())];
    match (format.pixel, format.size) {
        (PixelFormat::Yuyv, Some(size)) => {
            let (width, height) = (size.width as usize, size.height as usize);
            let row = 2 * width;
            let stride = stride.max(row);
            // The last row needs no padding after it.
            let needed = stride * height.saturating_sub(1) + row;
            if data.len() < needed {
                return Unit::Bad(format!(
                    "short frame {} from the camera: {} bytes, {needed} needed for {width}x{height} yuyv",
                    filled.sequence,
                    data.len()
                ));
            }
            for rows in data.chunks(stride).take(height) {
                buf.extend_from_slice(&rows[..row]);
            }
        }
        _ => buf.extend_from_slice(data),
    }
    Unit::Frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::FrameSize;

    fn yuyv(width: u32, height: u32) -> FrameFormat {
        FrameFormat::new(
            PixelFormat::Yuyv,
            Some(FrameSize::new(width, height).unwrap()),
        )
        .unwrap()
    }

    fn filled(data: &[u8], bytes_used: usize) -> FilledBuffer<'_> {
        FilledBuffer {
            data,
            bytes_used,
            corrupt: false,
            sequence: 7,
        }
    }

    #[test]
    fn yuyv_rows_lose_their_padding() {
        // 2x3 pixels: 4 bytes a row, padded to a stride of 6 (padding bytes are 0xEE), in a
        // buffer larger than the frame.
        let mut data = Vec::new();
        for y in 0..3u8 {
            data.extend_from_slice(&[10 * y, 10 * y + 1, 10 * y + 2, 10 * y + 3, 0xEE, 0xEE]);
        }
        data.extend_from_slice(&[0xEE; 10]);
        let mut buf = vec![1, 2, 3];
        let unit = copy_frame(filled(&data, 16), yuyv(2, 3), 6, &mut buf);
        assert_eq!(unit, Unit::Frame);
        assert_eq!(buf, [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);
        // Unpadded rows come through as they are.
        let unit = copy_frame(filled(&buf.clone(), 12), yuyv(2, 3), 4, &mut buf);
        assert_eq!(unit, Unit::Frame);
        assert_eq!(buf.len(), 12);
    }

    #[test]
    fn short_and_corrupt_buffers_are_bad_frames() {
        let data = [0u8; 64];
        let mut buf = Vec::new();
        // 2x3 yuyv with stride 6 needs 6 + 6 + 4 = 16 bytes.
        let short = copy_frame(filled(&data, 15), yuyv(2, 3), 6, &mut buf);
        assert!(
            matches!(short, Unit::Bad(ref m) if m.contains("short frame 7")),
            "{short:?}"
        );
        assert!(buf.is_empty());
        let corrupt = FilledBuffer {
            corrupt: true,
            ..filled(&data, 64)
        };
        let unit = copy_frame(corrupt, yuyv(2, 3), 6, &mut buf);
        assert!(matches!(unit, Unit::Bad(ref m) if m.contains("frame 7 as corrupt")));
    }

    #[test]
    fn mjpeg_is_the_used_bytes() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let mut buf = Vec::new();
        let mjpeg = FrameFormat::new(PixelFormat::Mjpeg, None).unwrap();
        assert_eq!(
            copy_frame(filled(&data, 4), mjpeg, 0, &mut buf),
            Unit::Frame
        );
        assert_eq!(buf, [1, 2, 3, 4]);
        // A driver claiming more than the buffer holds is clamped, not a panic.
        assert_eq!(
            copy_frame(filled(&data, 99), mjpeg, 0, &mut buf),
            Unit::Frame
        );
        assert_eq!(buf.len(), 6);
    }
}
