//! Input: bytes from a file, a pipe or a camera become 8-bit RGB images.
//!
//! - [`decode_file`], [`decode_bytes`]: JPEG and PNG files, EXIF orientation applied,
//!   never larger than the process's [`MemoryBudget`](crate::MemoryBudget) allows;
//! - [`FrameFormat`]: how a stream's frames are encoded (raw RGB/YUV, or MJPEG), and
//!   [`FrameConverter`], from a frame's bytes to RGB (BT.601 YUV);
//! - the JPEG marker walk behind both the decoder's completeness check and the MJPEG
//!   splitter that cuts a byte stream into frames.

mod decode;
mod frame;
pub(crate) mod jpeg;
mod limits;
pub(crate) mod mjpeg;

pub use decode::{decode_bytes, decode_file, RgbImage};
pub use frame::{FrameConverter, FrameFormat, FrameSize, PixelFormat, Unit};
