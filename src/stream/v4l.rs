//! V4L2 cameras (`--device /dev/videoN`), behind the `v4l` cargo feature.
//!
//! The camera is asked for YUYV or MJPEG (what USB webcams and the Pi's V4L2 drivers offer
//! without a converter), at the size the user named or else the smallest that gives the
//! cascade every pixel it uses ([`crate::stream::camera_size`]); the driver may settle on
//! another size, which is then used. Frames come from memory-mapped driver buffers and are
//! copied once into the reader's buffer (row padding removed, by [`crate::stream::capture`]),
//! so the queue and the converter treat them like frames from a pipe.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use v4l::buffer::Type;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use crate::error::{Error, Result};
use crate::input::Unit;
use crate::input::{FrameFormat, FrameSize, PixelFormat};
use crate::stream::camera_size::{self, Offered};
use crate::stream::capture::{copy_frame, FilledBuffer};
use crate::stream::FrameSource;

/// Driver buffers: enough to keep capturing while one frame is copied out.
const BUFFERS: u32 = 4;

/// A V4L2 capture device streaming frames.
pub struct Camera {
    path: PathBuf,
    stream: MmapStream<'static>,
    format: FrameFormat,
    /// The size the camera settled on (an MJPEG format carries none: its frames do).
    size: FrameSize,
    /// Bytes per row in the driver's buffers (YUYV may be padded).
    stride: usize,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish()
    }
}

impl Camera {
    /// Opens `path` and asks for `pixel` (YUYV or MJPEG; MJPEG when not given) at `size`;
    /// without one, at the smallest size the camera offers (at the aspect it is set to)
    /// whose shorter side is at least `need`, the cascade's decode size (the driver's
    /// current size when `need` is unknown).
    pub fn open(
        path: &Path,
        pixel: Option<PixelFormat>,
        size: Option<FrameSize>,
        need: Option<NonZeroU32>,
    ) -> Result<Camera> {
        let io = |e: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let pixel = pixel.unwrap_or(PixelFormat::Mjpeg);
        let fourcc = match pixel {
            PixelFormat::Mjpeg => FourCC::new(b"MJPG"),
            PixelFormat::Yuyv => FourCC::new(b"YUYV"),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "--device captures yuyv or mjpeg, not {other}"
                )))
            }
        };
        let device = Device::with_path(path).map_err(io)?;
        // Anything that is not a streaming capture device (a file, an output-only or
        // multi-planar device) is refused here with its name, not with a bare ioctl error.
        let not_a_camera = |why: String| {
            Error::InvalidArgument(format!(
                "{} is not a V4L2 camera that --device can read ({why})",
                path.display()
            ))
        };
        let caps = device
            .query_caps()
            .map_err(|e| not_a_camera(e.to_string()))?;
        let needed = v4l::capability::Flags::VIDEO_CAPTURE | v4l::capability::Flags::STREAMING;
        if !caps.capabilities.contains(needed) {
            return Err(not_a_camera(format!(
                "{} by {} offers {}",
                caps.card, caps.driver, caps.capabilities
            )));
        }
        let mut want = device.format().map_err(io)?;
        want.fourcc = fourcc;
        let size = size.or_else(|| chosen_size(path, &device, fourcc, &want, need));
        if let Some(s) = size {
            want.width = s.width;
            want.height = s.height;
        }
        let got = device.set_format(&want).map_err(io)?;
        if got.fourcc != fourcc {
            return Err(Error::InvalidArgument(format!(
                "{}: the camera offers {} instead of {}; try --pix-fmt {}",
                path.display(),
                got.fourcc,
                fourcc,
                if pixel == PixelFormat::Mjpeg {
                    "yuyv"
                } else {
                    "mjpeg"
                }
            )));
        }
        if size.is_some_and(|s| (s.width, s.height) != (got.width, got.height)) {
            log::warn!(
                "{}: the camera gives {}x{} instead of the size asked for",
                path.display(),
                got.width,
                got.height
            );
        }
        let frame_size = FrameSize::new(got.width, got.height)?;
        let format = FrameFormat::new(pixel, Some(frame_size))?;
        let stream = MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS).map_err(io)?;
        Ok(Camera {
            path: path.to_path_buf(),
            stream,
            format,
            size: frame_size,
            stride: (got.stride as usize).max(2 * got.width as usize),
        })
    }

    /// The frame size the camera settled on.
    pub fn size(&self) -> FrameSize {
        self.size
    }
}

/// The size to ask for when the user named none (see [`camera_size`]), or `None` to leave
/// the driver's current one: when it cannot be read as a size, or the driver lists no
/// sizes for the format (then setting the format reports what it offers instead).
fn chosen_size(
    path: &Path,
    device: &Device,
    fourcc: FourCC,
    current: &v4l::Format,
    need: Option<NonZeroU32>,
) -> Option<FrameSize> {
    let current = FrameSize::new(current.width, current.height).ok()?;
    let offered = match device.enum_framesizes(fourcc) {
        Ok(sizes) => sizes,
        Err(e) => {
            log::debug!(
                "{}: no frame sizes listed for {fourcc}: {e}",
                path.display()
            );
            return None;
        }
    };
    let offered: Vec<Offered> = offered
        .into_iter()
        .filter_map(|s| offered_size(s.size))
        .collect();
    let chosen = camera_size::choose(&offered, current, need);
    if chosen != current {
        let why = match need {
            Some(n) if chosen.width.min(chosen.height) < n.get() => {
                "the largest size at its aspect, none giving the models every pixel they use"
            }
            _ => "the smallest size at its aspect that gives the models every pixel they use",
        };
        log::info!(
            "{}: asking for {chosen} instead of {current}, {why} (--size to choose another)",
            path.display()
        );
    }
    Some(chosen)
}

/// One of the driver's frame sizes, or `None` for one that is not a valid frame size.
fn offered_size(size: v4l::framesize::FrameSizeEnum) -> Option<Offered> {
    use v4l::framesize::FrameSizeEnum;
    Some(match size {
        FrameSizeEnum::Discrete(d) => Offered::Size(FrameSize::new(d.width, d.height).ok()?),
        FrameSizeEnum::Stepwise(s) => Offered::Range {
            min: FrameSize::new(s.min_width, s.min_height).ok()?,
            max: FrameSize::new(s.max_width, s.max_height).ok()?,
            step_width: s.step_width,
            step_height: s.step_height,
        },
    })
}

impl FrameSource for Camera {
    fn next(&mut self, buf: &mut Vec<u8>) -> Result<Unit> {
        let (data, meta) = self.stream.next().map_err(|e| Error::Io {
            path: self.path.clone(),
            source: e,
        })?;
        let filled = FilledBuffer {
            data,
            bytes_used: meta.bytesused as usize,
            corrupt: meta.flags.contains(v4l::buffer::Flags::ERROR),
            sequence: meta.sequence,
        };
        Ok(copy_frame(filled, self.format, self.stride, buf))
    }

    fn format(&self) -> FrameFormat {
        self.format
    }
}
