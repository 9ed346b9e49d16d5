//! Raw and MJPEG frame conversion, for every pixel format and any size, odd ones included.
//!
//! Input (read with `arbitrary`): the pixel format, the width and height (1 to 255 each,
//! or 0 for an invalid size), whether to fit the frame to its exact length, then the frame.
//! A frame of the right length converts to an image of its size; any other is an error; a
//! converter stays usable after an error. An I420 frame and the same planes as NV12 must
//! give the same picture.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cascade::input::{FrameConverter, FrameFormat, FrameSize, PixelFormat};
use cascade::MemoryBudget;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Header {
    format: u8,
    width: u8,
    height: u8,
    /// Pad or cut the frame to its format's length, so conversion is reached.
    fit: bool,
}

fuzz_target!(
    init: MemoryBudget::from_mb(64).unwrap().apply(),
    |data: &[u8]| {
        let mut u = Unstructured::new(data);
        let Ok(header) = Header::arbitrary(&mut u) else {
            return;
        };
        let mut frame = u.take_rest().to_vec();
        let pixel = PixelFormat::ALL[usize::from(header.format) % PixelFormat::ALL.len()];
        let (w, h) = (u32::from(header.width), u32::from(header.height));
        let size = match FrameSize::new(w, h) {
            Ok(size) => size,
            Err(_) => {
                assert!(w == 0 || h == 0);
                return;
            }
        };
        let format = match FrameFormat::new(pixel, Some(size)) {
            Ok(format) => format,
            Err(_) => {
                assert!(pixel == PixelFormat::Yuyv && w % 2 == 1, "{pixel} {w}x{h} refused");
                return;
            }
        };
        let mut converter = FrameConverter::new(format);
        let Some(len) = format.frame_len() else {
            // MJPEG: any JPEG, of its own size.
            assert_eq!(pixel, PixelFormat::Mjpeg);
            if let Ok(image) = converter.convert(&frame) {
                assert!(image.width() > 0 && image.height() > 0);
            }
            return;
        };
        if header.fit {
            frame.resize(len, 0x80);
        }
        match converter.convert(&frame) {
            Ok(image) => {
                assert_eq!(frame.len(), len);
                assert_eq!(image.dimensions(), (w, h));
            }
            Err(_) => assert_ne!(frame.len(), len),
        }
        // Still usable after whatever happened, and deterministic.
        let exact: Vec<u8> = frame.iter().copied().cycle().take(len).collect();
        let exact = if exact.len() == len { exact } else { vec![0x80; len] };
        let first = converter.convert(&exact).expect("a frame of the right length").clone();
        assert_eq!(converter.convert(&exact).unwrap(), &first);
        if pixel == PixelFormat::Yuv420 {
            let luma = (w * h) as usize;
            let chroma = (len - luma) / 2;
            let (y, uv) = exact.split_at(luma);
            let (us, vs) = uv.split_at(chroma);
            let mut nv12 = y.to_vec();
            for (u, v) in us.iter().zip(vs) {
                nv12.extend_from_slice(&[*u, *v]);
            }
            let nv12_format = FrameFormat::new(PixelFormat::Nv12, Some(size)).unwrap();
            let mut other = FrameConverter::new(nv12_format);
            assert_eq!(other.convert(&nv12).unwrap(), &first, "I420 and NV12 disagree");
        }
    }
);
