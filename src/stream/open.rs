//! Opening what the user named as a stream's input: a file, a FIFO or standard input in a
//! given frame format, or a V4L2 camera.

use std::path::PathBuf;

use crate::error::Result;
use crate::input::{DecodeSize, FrameFormat, FrameSize, PixelFormat};
use crate::stream::source::{self, FrameSource};

/// Where a stream's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, a FIFO, or `-` for standard input, holding frames of `pixel` (raw formats
    /// need their `size`; MJPEG frames carry their own).
    Bytes {
        path: PathBuf,
        pixel: PixelFormat,
        size: Option<FrameSize>,
    },
    /// A V4L2 camera (needs a build with the `v4l` feature), asked for `pixel` and `size`
    /// where given; without a size, for the smallest it offers that the cascade's
    /// [`DecodeSize`] allows (see [`Input::open`]).
    Camera {
        device: PathBuf,
        pixel: Option<PixelFormat>,
        size: Option<FrameSize>,
    },
}

impl Input {
    /// Opens the input; frames are read from it once a session starts. `decode` is how
    /// large the cascade needs its frames (`Cascade::decode_size`): a camera with no size
    /// given is asked for the smallest it offers, at the aspect it is set to, whose shorter
    /// side is that large (its current size for [`DecodeSize::Full`]). Frames from bytes
    /// come at the size they were made.
    pub fn open(&self, decode: DecodeSize) -> Result<Box<dyn FrameSource>> {
        match self {
            Input::Bytes { path, pixel, size } => {
                if *pixel == PixelFormat::Mjpeg && size.is_some() {
                    log::warn!("--size is ignored for mjpeg: each JPEG carries its own size");
                }
                source::open(path, FrameFormat::new(*pixel, *size)?)
            }
            Input::Camera {
                device,
                pixel,
                size,
            } => open_camera(device, *pixel, *size, decode),
        }
    }
}

#[cfg(all(feature = "v4l", target_os = "linux"))]
fn open_camera(
    device: &std::path::Path,
    pixel: Option<PixelFormat>,
    size: Option<FrameSize>,
    decode: DecodeSize,
) -> Result<Box<dyn FrameSource>> {
    let camera = crate::stream::v4l::Camera::open(device, pixel, size, decode.short_side())?;
    log::info!(
        "{}: {} {}",
        device.display(),
        camera.format().pixel,
        camera.size()
    );
    Ok(Box::new(camera))
}

#[cfg(not(all(feature = "v4l", target_os = "linux")))]
fn open_camera(
    device: &std::path::Path,
    _: Option<PixelFormat>,
    _: Option<FrameSize>,
    _: DecodeSize,
) -> Result<Box<dyn FrameSource>> {
    Err(crate::Error::InvalidArgument(format!(
        "--device {}: this build has no camera support (build on Linux with `--features v4l`), \
         or pipe frames in: rpicam-vid -t 0 --codec mjpeg -o - | cascade stream --pix-fmt mjpeg ...",
        device.display()
    )))
}
