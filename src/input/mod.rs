//! Input: bytes from a file, a pipe or a camera become 8-bit RGB images.
//!
//! - [`decode_file`], [`decode_bytes`]: JPEG and PNG files, EXIF orientation applied,
//!   never larger than the process's [`MemoryBudget`](crate::MemoryBudget) allows; their
//!   `_sized` forms decode a large JPEG at 1/2, 1/4 or 1/8 scale when a [`DecodeSize`]
//!   (a cascade's `decode_size`) says that still covers what the models need;
//! - [`FrameFormat`]: how a stream's frames are encoded (raw RGB/YUV, or MJPEG), and
//!   [`FrameConverter`], from a frame's bytes to RGB (BT.601 YUV);
//! - the JPEG marker walk behind both the decoder's completeness check and the MJPEG
//!   splitter that cuts a byte stream into frames.

mod decode;
mod frame;
pub(crate) mod jpeg;
mod limits;
pub(crate) mod mjpeg;

pub use decode::{
    decode_bytes, decode_bytes_into, decode_bytes_sized, decode_file, decode_file_sized,
    DecodeSize, RgbImage,
};
pub use frame::{FrameConverter, FrameFormat, FrameSize, PixelFormat, Unit};
