//! Decoding image files and in-memory encoded images into 8-bit RGB.
//!
//! Grayscale, RGBA and 16-bit images are converted to RGB8 (alpha is dropped), and the EXIF
//! orientation is applied so a phone photo is classified the way it is seen.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};
use crate::input::{jpeg, limits};

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
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits::image_limits());
    match reader.format() {
        None => return Err("unknown image format (JPEG and PNG are supported)".into()),
        // The JPEG decoder fills a cut-off scan with grey instead of failing, which would
        // silently classify half a picture: refuse a JPEG whose scan never ends.
        Some(image::ImageFormat::Jpeg) => jpeg::check_complete(bytes)?,
        Some(_) => {}
    }
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    // From the header, before the decoder allocates the image.
    let (width, height) = decoder.dimensions();
    limits::check(u64::from(width), u64::from(height))?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(image.into_rgb8())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small JPEG with a gradient, for the input module's tests.
    pub(crate) fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn complete_jpeg_decodes() {
        let bytes = jpeg(16, 8);
        let img = decode_bytes(&bytes).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        // Trailing bytes after the end marker are tolerated (some cameras append data).
        let mut padded = bytes.clone();
        padded.extend_from_slice(b"trailer");
        assert!(decode_bytes(&padded).is_ok());
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let bytes = jpeg(64, 64);
        for cut in [bytes.len() - 2, bytes.len() / 2, 20, 3] {
            let err = decode_bytes(&bytes[..cut]).unwrap_err();
            assert!(
                err.contains("truncated") || err.contains("unknown"),
                "{cut}: {err}"
            );
        }
    }

    #[test]
    fn grayscale_and_rgba_png_become_rgb() {
        let gray = image::GrayImage::from_pixel(3, 2, image::Luma([200]));
        let mut png = Vec::new();
        gray.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let img = decode_bytes(&png).unwrap();
        assert_eq!(img.get_pixel(2, 1).0, [200, 200, 200]);

        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]));
        let mut png = Vec::new();
        rgba.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode_bytes(&png).unwrap().get_pixel(0, 0).0, [10, 20, 30]);
    }

    #[test]
    fn a_header_declaring_a_huge_image_is_refused_before_decoding() {
        let mut bytes = jpeg(16, 8);
        // The baseline frame header (FF C0, length, precision) holds height then width.
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]); // 65000 x 65000
        let err = decode_bytes(&bytes).unwrap_err();
        assert!(err.contains("65000x65000 pixels is more than"), "{err}");
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert!(decode_bytes(b"hello world, not an image").is_err());
        assert!(decode_bytes(b"").is_err());
    }
}
