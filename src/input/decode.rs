//! Decoding image files and in-memory encoded images into 8-bit RGB.
//!
//! Grayscale, RGBA and 16-bit images are converted to RGB8 (alpha is dropped), and the EXIF
//! orientation is applied so a phone photo is classified the way it is seen.
//!
//! A JPEG is decoded by zune-jpeg, called directly rather than through the image crate
//! (which copies the file, parses its headers three times and allocates the pixels anew);
//! [`decode_bytes_into`] writes the pixels into a reused image, as a stream of MJPEG frames
//! wants. PNG goes through the image crate.
//!
//! A JPEG need not be decoded at full size when the models will shrink it anyway: given a
//! [`DecodeSize`], one at least 2, 4 or 8 times larger (on its shorter side) than needed can
//! be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (jpeg-decoder's scaled inverse
//! transform), never yielding fewer pixels than needed. That saves memory, but not time:
//! jpeg-decoder's entropy decoding, which no reduction skips, is slower than zune-jpeg
//! decoding the whole image (measured on the development machine: a 1440x1080 JPEG took
//! 8.6 ms at 1/4 scale against 4.5 ms whole, `benches/per_input.rs`). So a cascade's size
//! ([`DecodeSize::ShortSideAtLeast`]) reduces only a JPEG too large for the memory budget
//! whole, which used to be refused; [`DecodeSize::Smallest`] always reduces.

use std::io::Cursor;
use std::num::NonZeroU32;
use std::path::Path;

use image::metadata::Orientation;
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
    let mut image = RgbImage::new(0, 0);
    decode_bytes_into(bytes, size, &mut image)?;
    Ok(image)
}

/// Decodes an encoded image held in memory (JPEG or PNG) no larger than `size` needs into
/// `image`, reusing its pixel buffer: a stream of JPEG frames of one size decodes into the
/// same memory every time (zune-jpeg's own working buffers are still its own). On an error
/// `image` is left empty or as it was.
pub fn decode_bytes_into(
    bytes: &[u8],
    size: DecodeSize,
    image: &mut RgbImage,
) -> std::result::Result<(), String> {
    let unknown = || "unknown image format (JPEG and PNG are supported)".to_string();
    match image::guess_format(bytes).map_err(|_| unknown())? {
        image::ImageFormat::Jpeg => {
            // The JPEG decoder fills a cut-off scan with grey instead of failing, which
            // would silently classify half a picture: refuse a JPEG whose scan never ends.
            // The same walk over its markers says whether it needs the standard tables.
            match jpeg::check_complete(bytes)?.missing_tables {
                Some(scan) => {
                    let whole = jpeg::with_standard_huffman_tables(bytes, scan);
                    decode_jpeg_into(&whole, size, image)
                }
                None => decode_jpeg_into(bytes, size, image),
            }
        }
        format => {
            *image = decode_with_image_crate(bytes, format)?;
            Ok(())
        }
    }
}

/// A JPEG through zune-jpeg directly, with the settings the image crate gives it (lenient,
/// RGB out, so the pixels are the same to the bit), but its headers parsed once instead of
/// three times (the image crate parses them again for the orientation and for the pixels),
/// the file not copied first, and the pixels written into `image`'s buffer. zune-jpeg picks
/// its SIMD paths (AVX2 or NEON inverse DCT, colour conversion, upsampling) at run time.
fn decode_jpeg_into(
    bytes: &[u8],
    size: DecodeSize,
    image: &mut RgbImage,
) -> std::result::Result<(), String> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        // The memory budget is checked below, from the header, before the pixels are.
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| e.to_string())?;
    let (width, height) = decoder
        .dimensions()
        .map(|(w, h)| (w as u32, h as u32))
        .ok_or("the JPEG decoder read no frame header")?;
    if width == 0 || height == 0 {
        return Err("image has no pixels".into());
    }
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif))
        .unwrap_or(Orientation::NoTransforms);
    let reduced = match size.jpeg_reduction(width, height, limits::max_pixels()) {
        1 => None,
        r => decode_jpeg_reduced(bytes, r, width, height)?,
    };
    match reduced {
        Some(rgb) => *image = rgb,
        None => {
            limits::check(u64::from(width), u64::from(height))?;
            let len = decoder
                .output_buffer_size()
                .ok_or_else(|| format!("{width}x{height} pixels do not fit in memory"))?;
            let mut pixels = std::mem::take(image).into_raw();
            // Within the old capacity (the same frame size again) this neither allocates
            // nor writes: every byte is overwritten by the decoder.
            pixels.resize(len, 0);
            decoder
                .decode_into(&mut pixels)
                .map_err(|e| e.to_string())?;
            *image = RgbImage::from_raw(width, height, pixels)
                .ok_or("the JPEG decoder gave too few pixels")?;
        }
    }
    if orientation != Orientation::NoTransforms {
        let mut oriented = DynamicImage::ImageRgb8(std::mem::take(image));
        oriented.apply_orientation(orientation);
        *image = oriented.into_rgb8();
    }
    Ok(())
}

/// Any other format (PNG) through the image crate, converted to RGB8.
fn decode_with_image_crate(
    bytes: &[u8],
    format: image::ImageFormat,
) -> std::result::Result<RgbImage, String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits::image_limits());
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    // From the header, before the decoder allocates the image.
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    limits::check(u64::from(width), u64::from(height))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
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
    fn a_jpeg_without_huffman_tables_decodes_with_the_standard_ones() {
        let bytes = jpeg(48, 40);
        let bare = crate::input::jpeg::tests::without_huffman_tables(&bytes);
        let mut image = RgbImage::new(0, 0);
        // What zune-jpeg alone makes of it, and why the tables are supplied.
        let alone = decode_jpeg_into(&bare, DecodeSize::Full, &mut image).unwrap_err();
        assert!(alone.contains("No DC table"), "{alone}");
        let whole = decode_bytes(&bytes).unwrap();
        assert_eq!(decode_bytes(&bare).unwrap(), whole);
        // At reduced scale too (jpeg-decoder), for a frame larger than a stage needs.
        let reduced = decode_bytes_sized(&bytes, side(12)).unwrap();
        assert!(reduced.width() < 48);
        assert_eq!(decode_bytes_sized(&bare, side(12)).unwrap(), reduced);
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

    /// What the image crate's own JPEG path gives (zune-jpeg behind its `ImageDecoder`),
    /// orientation applied, as this module decoded before it called zune-jpeg itself.
    fn through_the_image_crate(bytes: &[u8]) -> RgbImage {
        let mut decoder = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg)
            .into_decoder()
            .unwrap();
        let orientation = decoder.orientation().unwrap();
        let mut image = DynamicImage::from_decoder(decoder).unwrap();
        image.apply_orientation(orientation);
        image.into_rgb8()
    }

    /// `bytes` with an EXIF segment saying `orientation` (1..=8) right after the start.
    fn with_orientation(bytes: &[u8], orientation: u8) -> Vec<u8> {
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian, first IFD at 8
        tiff.extend_from_slice(&[0, 1]); // one entry:
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0]);
        tiff.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let len = u16::try_from(app1.len() + 2).unwrap();
        let mut out = bytes[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&bytes[2..]);
        out
    }

    #[test]
    fn jpeg_pixels_are_those_of_the_image_crate_to_the_bit() {
        // Colour at two qualities (4:2:0 chroma), grey, and odd sizes (partial blocks).
        let colour = RgbImage::from_fn(61, 37, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 7) as u8, ((x * y) % 251) as u8])
        });
        let mut files = Vec::new();
        for quality in [75, 95] {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
                .encode_image(&colour)
                .unwrap();
            files.push(out);
        }
        let grey = image::GrayImage::from_fn(33, 20, |x, y| image::Luma([(x * 7 + y) as u8]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&grey)
            .unwrap();
        files.push(out);
        files.push(
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("assets/imagenet-sample/n01440764_tench.JPEG"),
            )
            .unwrap(),
        );
        for (i, bytes) in files.iter().enumerate() {
            let ours = decode_bytes(bytes).unwrap();
            let theirs = through_the_image_crate(bytes);
            assert_eq!(ours.dimensions(), theirs.dimensions(), "file {i}");
            assert!(ours == theirs, "file {i}: pixels differ");
        }
    }

    #[test]
    fn the_exif_orientation_is_applied() {
        // 16x8, left half dark and right half bright.
        let img = RgbImage::from_fn(16, 8, |x, _| image::Rgb([if x < 8 { 0 } else { 255 }; 3]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .unwrap();
        for orientation in 1..=8 {
            let tagged = with_orientation(&bytes, orientation);
            let ours = decode_bytes(&tagged).unwrap();
            let want = if orientation >= 5 { (8, 16) } else { (16, 8) };
            assert_eq!(ours.dimensions(), want, "orientation {orientation}");
            assert!(
                ours == through_the_image_crate(&tagged),
                "orientation {orientation}"
            );
        }
        // 6: turned 90 degrees clockwise to be seen upright, so the bright half is below.
        let turned = decode_bytes(&with_orientation(&bytes, 6)).unwrap();
        assert!(turned.get_pixel(4, 2).0[0] < 60 && turned.get_pixel(4, 13).0[0] > 200);
    }

    #[test]
    fn decoding_into_an_image_reuses_its_buffer() {
        let (a, b) = (jpeg(40, 30), jpeg(40, 30));
        let mut image = RgbImage::new(0, 0);
        decode_bytes_into(&a, DecodeSize::Full, &mut image).unwrap();
        let first = image.as_raw().as_ptr();
        decode_bytes_into(&b, DecodeSize::Full, &mut image).unwrap();
        assert_eq!(image.as_raw().as_ptr(), first, "the same pixels buffer");
        assert!(image == decode_bytes(&b).unwrap());
        // A smaller image fits in it too; a PNG or a broken JPEG leaves a usable image.
        decode_bytes_into(&jpeg(20, 10), DecodeSize::Full, &mut image).unwrap();
        assert_eq!(image.dimensions(), (20, 10));
        assert!(decode_bytes_into(&a[..a.len() / 2], DecodeSize::Full, &mut image).is_err());
        decode_bytes_into(&a, DecodeSize::Full, &mut image).unwrap();
        assert_eq!(image.dimensions(), (40, 30));
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert!(decode_bytes(b"hello world, not an image").is_err());
        assert!(decode_bytes(b"").is_err());
    }
}
