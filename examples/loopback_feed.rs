//! Plays a photo to a v4l2loopback device as a USB webcam sends MJPEG: one JPEG per frame,
//! each its own size, at a steady frame rate. `scripts/camera-vivid` runs it inside its VM so
//! that `cascade stream --device` reads MJPEG (its default) from a kernel driver, which
//! vivid, the kernel's virtual camera, cannot give: it has no compressed formats.
//!
//! The frames are sent as many webcams send them, without Huffman tables (Motion-JPEG fixes
//! them to the standard ones, which the encoder used), and alternate between two JPEG
//! qualities, so that their lengths differ as a webcam's do (the driver's buffers are sized
//! once; each frame fills part of one). Each is one `write`, which v4l2loopback turns into
//! one buffer with that many bytes used.
//!
//! Usage: `loopback_feed DEVICE WIDTHxHEIGHT FPS PHOTO` (runs until killed).

use std::error::Error;
use std::io::Write;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use v4l::video::Output;
use v4l::{Device, Format, FourCC};

/// The two qualities the frames alternate between.
const QUALITIES: [u8; 2] = [90, 60];

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, size, fps, photo] = args.as_slice() else {
        return Err("usage: loopback_feed DEVICE WIDTHxHEIGHT FPS PHOTO".into());
    };
    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("{size:?} is not WIDTHxHEIGHT"))?;
    let fps = fps
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .ok_or_else(|| format!("{fps:?} is not a frame rate"))?;

    let rgb = image::open(photo)?
        .resize_to_fill(width, height, FilterType::Triangle)
        .to_rgb8();
    let frames = QUALITIES
        .iter()
        .map(|&q| {
            let mut jpeg = Vec::new();
            JpegEncoder::new_with_quality(&mut jpeg, q).encode_image(&rgb)?;
            without_huffman_tables(&jpeg)
        })
        .collect::<Result<Vec<Vec<u8>>, Box<dyn Error>>>()?;
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);

    let mut dev = Device::with_path(device)?;
    let mut format = Format::new(width, height, FourCC::new(b"MJPG"));
    // The buffer a compressed frame needs: v4l2loopback sizes its own, larger.
    format.size = u32::try_from(largest)?;
    let set = dev.set_format(&format)?;
    if set.fourcc != format.fourcc || (set.width, set.height) != (width, height) {
        return Err(format!(
            "{device} took {} {}x{}: not a v4l2loopback device without a writer?",
            set.fourcc, set.width, set.height
        )
        .into());
    }
    if (set.size as usize) < largest {
        return Err(format!("{device}'s buffers hold {} bytes, not {largest}", set.size).into());
    }
    let lengths: Vec<usize> = frames.iter().map(Vec::len).collect();
    eprintln!(
        "loopback_feed: {device} set to {} {}x{}, frames of {lengths:?} bytes at {fps} fps",
        set.fourcc, set.width, set.height
    );

    let period = Duration::from_secs_f64(1.0 / fps);
    let mut next = Instant::now();
    for frame in frames.iter().cycle() {
        // One write is one frame to v4l2loopback: it must not be split.
        let written = dev.write(frame)?;
        if written != frame.len() {
            return Err(format!("{device} took {written} of a {}-byte frame", frame.len()).into());
        }
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// `jpeg` without its DHT segments (the marker segments before the scan, walked by length).
fn without_huffman_tables(jpeg: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut out = jpeg.get(..2).ok_or("not a JPEG")?.to_vec();
    let mut at = 2;
    loop {
        let header = jpeg.get(at..at + 4).ok_or("no scan in the JPEG")?;
        if header[1] == 0xDA {
            out.extend_from_slice(&jpeg[at..]);
            return Ok(out);
        }
        let end = at + 2 + usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header[1] != 0xC4 {
            out.extend_from_slice(jpeg.get(at..end).ok_or("a cut JPEG segment")?);
        }
        at = end;
    }
}
