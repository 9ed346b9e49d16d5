//! Decoding image files and in-memory encoded images into 8-bit RGB.
//!
//! Grayscale, RGBA and 16-bit images are converted to RGB8 (alpha is dropped), and the EXIF
//! orientation is applied so a phone photo is classified the way it is seen.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};

/// A decoded image: 8-bit RGB, row-major, interleaved.
pub type RgbImage = image::RgbImage;

/// Decodes an image file (format recognised from its bytes, not its name).
pub fn decode_file(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes).map_err(|reason| Error::Image {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes an encoded image held in memory (JPEG or PNG).
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unknown image format (JPEG and PNG are supported)".into());
    }
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(image.into_rgb8())
}
