//! Decoding image files and in-memory encoded images into 8-bit RGB.
//!
//! Grayscale, RGBA and 16-bit images are converted to RGB8 (alpha is dropped), and the EXIF
//! orientation is applied so a phone photo is classified the way it is seen.
//!
//! A JPEG need not be decoded at full size when the models will shrink it anyway: given a
//! [`DecodeSize`], one at least 2, 4 or 8 times larger (on its shorter side) than needed can
//! be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (jpeg-decoder's scaled inverse
//! transform), never yielding fewer pixels than needed. That saves memory, but not time:
//! jpeg-decoder's entropy decoding, which no reduction skips, is slower than the image
//! crate's zune-jpeg decoding the whole image (measured on the development machine: a
//! 1440x1080 JPEG took 8.6 ms at 1/4 scale against 4.5 ms whole, `benches/per_input.rs`).
//! So a cascade's size ([`DecodeSize::ShortSideAtLeast`]) reduces only a JPEG too large
//! for the memory budget whole, which used to be refused; [`DecodeSize::Smallest`] always
//! reduces. Everything else goes through the image crate.

use std::io::Cursor;
use std::num::NonZeroU32;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};
use crate::input::{jpeg, limits};

/// A decoded image: 8-bit RGB, row-major, interleaved.
pub type RgbImage = image::RgbImage;

/// How large a decoded image must stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DecodeSize {
    /// Every pixel the file holds.
    #[default]
    Full,
    /// Any size whose shorter side keeps at least this many pixels (a cascade's is the
    /// largest resize target among its stages, `Cascade::decode_size`): whole when that
    /// fits the memory budget (the faster way), else as [`DecodeSize::Smallest`], so a
    /// photo too large to decode whole is still classified.
    ShortSideAtLeast(NonZeroU32),
    /// As small as keeps at least this many pixels on the shorter side: a JPEG whose
    /// shorter side is at least 2, 4 or 8 times that is decoded at 1/2, 1/4 or 1/8 scale;
    /// other images are decoded whole. The least memory, not the least time.
    Smallest(NonZeroU32),
}

impl DecodeSize {
    /// The shorter side needed, unless every pixel is.
    pub fn short_side(self) -> Option<NonZeroU32> {
        match self {
            DecodeSize::Full => None,
            DecodeSize::ShortSideAtLeast(side) | DecodeSize::Smallest(side) => Some(side),
        }
    }

    /// The same need, always met with the strongest reduction ([`DecodeSize::Smallest`]).
    pub fn smallest(self) -> DecodeSize {
        self.short_side()
            .map_or(DecodeSize::Full, DecodeSize::Smallest)
    }

    /// How much a `width x height` JPEG is reduced (1, 2, 4 or 8) when at most
    /// `max_pixels` may be decoded.
    pub fn jpeg_reduction(self, width: u32, height: u32, max_pixels: u64) -> u32 {
        let side = match self {
            DecodeSize::Full => return 1,
            DecodeSize::ShortSideAtLeast(_)
                if u64::from(width) * u64::from(height) <= max_pixels =>
            {
                return 1
            }
            DecodeSize::ShortSideAtLeast(side) | DecodeSize::Smallest(side) => side,
        };
        let short = width.min(height);
        [8, 4, 2]
            .into_iter()
            .find(|&r| short / r >= side.get())
            .unwrap_or(1)
    }
}

/// Decodes an image file (format recognised from its bytes, not its name) at full size.
pub fn decode_file(path: &Path) -> Result<RgbImage> {
    decode_file_sized(path, DecodeSize::Full)
}

/// Decodes an image file no larger than `size` needs (see [`DecodeSize`]).
pub fn decode_file_sized(path: &Path, size: DecodeSize) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes_sized(&bytes, size).map_err(|reason| Error::Image {
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes an encoded image held in memory (JPEG or PNG) at full size.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    decode_bytes_sized(bytes, DecodeSize::Full)
}

/// Decodes an encoded image held in memory (JPEG or PNG) no larger than `size` needs.
pub fn decode_bytes_sized(bytes: &[u8], size: DecodeSize) -> std::result::Result<RgbImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits::image_limits());
    let is_jpeg = match reader.format() {
        None => return Err("unknown image format (JPEG and PNG are supported)".into()),
        // The JPEG decoder fills a cut-off scan with grey instead of failing, which would
        // silently classify half a picture: refuse a JPEG whose scan never ends.
        Some(image::ImageFormat::Jpeg) => {
            jpeg::check_complete(bytes)?;
            true
        }
        Some(_) => false,
    };
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    // From the header, before any decoder allocates the image.
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let reduction = if is_jpeg {
        size.jpeg_reduction(width, height, limits::max_pixels())
    } else {
        1
    };
    let scaled = match reduction {
        1 => None,
        r => decode_jpeg_reduced(bytes, r, width, height)?,
    };
    let mut image = match scaled {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => {
            limits::check(u64::from(width), u64::from(height))?;
            DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?
        }
    };
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(image.into_rgb8())
}

/// Decodes a `width x height` JPEG at 1/`reduction` of its size (2, 4 or 8) in the DCT
/// domain, giving `ceil(width / reduction) x ceil(height / reduction)` pixels; `None` when
/// this JPEG cannot be (lossless, CMYK or 12-bit: the caller decodes it whole).
fn decode_jpeg_reduced(
    bytes: &[u8],
    reduction: u32,
    width: u32,
    height: u32,
) -> std::result::Result<Option<RgbImage>, String> {
    use jpeg_decoder::{CodingProcess, PixelFormat};
    let (w, h) = (width.div_ceil(reduction), height.div_ceil(reduction));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    without_panics(|| decoder.read_info())?;
    let Some(info) = decoder.info() else {
        return Ok(None);
    };
    let gray = match info.pixel_format {
        PixelFormat::L8 => true,
        PixelFormat::RGB24 => false,
        PixelFormat::L16 | PixelFormat::CMYK32 => return Ok(None),
    };
    if info.coding_process == CodingProcess::Lossless
        || (u32::from(info.width), u32::from(info.height)) != (width, height)
    {
        return Ok(None);
    }
    let progressive = info.coding_process == CodingProcess::DctProgressive;
    let (cw, ch) = counted_size((width, height), (w, h), progressive);
    limits::check(u64::from(cw), u64::from(ch))?;
    let max_bytes = limits::max_pixels().saturating_mul(crate::memory::BYTES_PER_PIXEL);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_bytes).unwrap_or(usize::MAX));
    // A JPEG's sides fit u16, and so do their fractions. jpeg-decoder takes the strongest
    // reduction that still reaches the requested size on one side: asking for exactly
    // the reduced size gets exactly this reduction.
    let request =
        |side: u32| u16::try_from(side).map_err(|_| format!("JPEG side {side} too large"));
    let (rw, rh) = (request(w)?, request(h)?);
    let got = without_panics(|| decoder.scale(rw, rh))?;
    if (u32::from(got.0), u32::from(got.1)) != (w, h) {
        return Err(format!(
            "the JPEG decoder reduced {width}x{height} to {}x{} instead of {w}x{h}",
            got.0, got.1
        ));
    }
    let pixels = without_panics(|| decoder.decode())?;
    let rgb = if gray {
        pixels.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        pixels
    };
    RgbImage::from_raw(w, h, rgb)
        .map(Some)
        .ok_or_else(|| format!("the JPEG decoder gave too few pixels for {w}x{h}"))
}

/// The size the memory budget counts for decoding a `full`-size JPEG to `reduced`: what is
/// allocated, the reduced pixels, except that a progressive JPEG's decoder also keeps every
/// coefficient of the whole image until its last scan (2 bytes a sample, about what the
/// full-size pixels take), so it counts whole.
fn counted_size(full: (u32, u32), reduced: (u32, u32), progressive: bool) -> (u32, u32) {
    if progressive {
        full
    } else {
        reduced
    }
}

/// Runs one jpeg-decoder step, turning its error, or a panic on a malformed file, into a
/// message.
fn without_panics<T>(
    step: impl FnOnce() -> std::result::Result<T, jpeg_decoder::Error>,
) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the JPEG decoder failed on this file (malformed or unsupported)".into()),
    }
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

    fn side(n: u32) -> DecodeSize {
        DecodeSize::Smallest(NonZeroU32::new(n).unwrap())
    }

    fn within_budget(n: u32) -> DecodeSize {
        DecodeSize::ShortSideAtLeast(NonZeroU32::new(n).unwrap())
    }

    fn mean(img: &RgbImage) -> [f64; 3] {
        let mut sum = [0.0; 3];
        for p in img.pixels() {
            for (s, v) in sum.iter_mut().zip(p.0) {
                *s += f64::from(v);
            }
        }
        sum.map(|s| s / f64::from(img.width() * img.height()))
    }

    #[test]
    fn the_reduction_is_the_largest_that_keeps_the_needed_side() {
        let any = u64::MAX;
        assert_eq!(DecodeSize::Full.jpeg_reduction(4000, 3000, any), 1);
        // Lite0 needs 256, Lite2 297 (their resize targets).
        assert_eq!(side(256).jpeg_reduction(1920, 1080, any), 4);
        assert_eq!(side(297).jpeg_reduction(1920, 1080, any), 2);
        assert_eq!(side(256).jpeg_reduction(1080, 1920, any), 4);
        assert_eq!(side(256).jpeg_reduction(4032, 3024, any), 8);
        assert_eq!(side(256).jpeg_reduction(640, 480, any), 1);
        assert_eq!(side(256).jpeg_reduction(500, 375, any), 1);
        // Exactly twice as large is enough, one pixel less is not.
        assert_eq!(side(256).jpeg_reduction(1000, 512, any), 2);
        assert_eq!(side(256).jpeg_reduction(1000, 511, any), 1);
    }

    #[test]
    fn a_cascade_size_reduces_only_what_does_not_fit_whole() {
        // A 512 MB board: a 64 MB image share, 22.4 M pixels. A 48 MP phone photo used to
        // be refused; it is decoded at 1/8 now. A 1080p frame fits and is decoded whole.
        let limit = crate::MemoryBudget::from_mb(256).unwrap().max_pixels();
        assert_eq!(within_budget(256).jpeg_reduction(8000, 6000, limit), 8);
        assert_eq!(within_budget(297).jpeg_reduction(8000, 6000, limit), 8);
        assert_eq!(within_budget(256).jpeg_reduction(1920, 1080, limit), 1);
        assert_eq!(within_budget(256).jpeg_reduction(4000, 3000, limit), 1);
        // Too large, and not large enough to reduce: refused whole, as before.
        assert_eq!(within_budget(5000).jpeg_reduction(8000, 6000, limit), 1);
    }

    #[test]
    fn a_large_jpeg_is_decoded_at_reduced_scale_with_the_same_colours() {
        // 61x45 (odd sides, partial blocks): shorter side 45 / 8 = 5.6.
        let bytes = jpeg(61, 45);
        let whole = decode_bytes(&bytes).unwrap();
        for (need, reduced) in [(5, (8, 6)), (6, (16, 12)), (11, (16, 12)), (12, (31, 23))] {
            let img = decode_bytes_sized(&bytes, side(need)).unwrap();
            assert_eq!(img.dimensions(), reduced, "need {need}");
            let (a, b) = (mean(&whole), mean(&img));
            for c in 0..3 {
                assert!((a[c] - b[c]).abs() < 3.0, "need {need}: {a:?} {b:?}");
            }
        }
        assert_eq!(
            decode_bytes_sized(&bytes, side(23)).unwrap().dimensions(),
            (61, 45)
        );
    }

    #[test]
    fn a_grayscale_jpeg_at_reduced_scale_becomes_rgb() {
        let gray = image::GrayImage::from_fn(64, 32, |x, _| image::Luma([(x * 4) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&gray)
            .unwrap();
        let img = decode_bytes_sized(&bytes, side(8)).unwrap();
        assert_eq!(img.dimensions(), (16, 8));
        assert!(img.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        assert!(img.get_pixel(15, 4).0[0] > img.get_pixel(0, 4).0[0] + 150);
    }

    #[test]
    fn a_jpeg_that_fits_is_decoded_whole_for_a_cascade() {
        let bytes = jpeg(64, 48);
        let img = decode_bytes_sized(&bytes, within_budget(6)).unwrap();
        assert_eq!(img.dimensions(), (64, 48));
    }

    #[test]
    fn a_png_and_a_truncated_jpeg_are_not_reduced() {
        let rgb = RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]));
        let mut png = Vec::new();
        rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(
            decode_bytes_sized(&png, side(8)).unwrap().dimensions(),
            (64, 64)
        );
        let bytes = jpeg(64, 64);
        let err = decode_bytes_sized(&bytes[..bytes.len() / 2], side(8)).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn the_budget_counts_the_reduced_size_unless_progressive() {
        assert_eq!(counted_size((8000, 6000), (1000, 750), false), (1000, 750));
        assert_eq!(counted_size((8000, 6000), (1000, 750), true), (8000, 6000));
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
