//! Input: bytes from a file, a pipe or a camera become 8-bit RGB images.
pub mod decode;
pub mod frame;
pub mod jpeg;
pub mod mjpeg;
