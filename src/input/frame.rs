//! Camera and video frames: their pixel formats and their conversion to 8-bit RGB.
//!
//! A stream hands the cascade raw frames (`rgb24`, planar `yuv420`, `nv12`, packed `yuyv`)
//! or JPEG images (`mjpeg`). [`FrameConverter`] turns each into the same [`RgbImage`] a
//! decoded file gives, so a frame is preprocessed and classified exactly like a file. Raw
//! frames are converted into one reused image: a stream of them allocates nothing per frame.
//! MJPEG frames are decoded into one reused image too, but zune-jpeg allocates its own
//! working buffers (Huffman tables, a row of blocks per component) for every frame.
//!
//! YUV is read as BT.601 limited range (Y in 16..=235, U and V in 16..=240), which is what
//! `rpicam-vid --codec yuv420` and ffmpeg's `rawvideo` write for these formats by default.
//! Planes are tightly packed (no row padding), chroma planes of the 4:2:0 formats are
//! `ceil(W/2) x ceil(H/2)`, so odd sizes work.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::input::{decode_bytes_into, DecodeSize, RgbImage};

/// How the bytes of one frame encode its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// Planar I420: the Y plane, then the U plane, then the V plane (4:2:0).
    Yuv420,
    /// The Y plane, then one plane of interleaved U, V pairs (4:2:0).
    Nv12,
    /// Packed 4:2:2: Y0 U Y1 V for each pair of pixels.
    Yuyv,
    /// One JPEG image per frame, of any size.
    Mjpeg,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 5] = [
        PixelFormat::Rgb24,
        PixelFormat::Yuv420,
        PixelFormat::Nv12,
        PixelFormat::Yuyv,
        PixelFormat::Mjpeg,
    ];

    /// The name used on the command line (and by ffmpeg / rpicam-vid, but for `yuyv`).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Yuv420 => "yuv420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
        }
    }

    /// Whether every frame has the same, known length (all but `mjpeg`).
    pub fn is_raw(self) -> bool {
        self != PixelFormat::Mjpeg
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase();
        // ffmpeg calls I420 `yuv420p` and YUYV `yuyv422`: accept those spellings too.
        let s = match s.as_str() {
            "yuv420p" | "i420" => "yuv420",
            "yuyv422" | "yuy2" => "yuyv",
            other => other,
        };
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown pixel format {s:?} (use rgb24, yuv420, nv12, yuyv or mjpeg)")
            })
    }
}

/// A frame size in pixels, written `WxH` (e.g. `640x480`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

impl FrameSize {
    pub fn new(width: u32, height: u32) -> Result<FrameSize> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidArgument(format!(
                "frame size {width}x{height} has no pixels"
            )));
        }
        // Keeps every byte count well within usize even on 32-bit boards.
        if u64::from(width) * u64::from(height) > 1 << 28 {
            return Err(Error::InvalidArgument(format!(
                "frame size {width}x{height} is larger than any camera frame"
            )));
        }
        Ok(FrameSize { width, height })
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for FrameSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a frame size WxH, e.g. 640x480");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let w: u32 = w.trim().parse().map_err(|_| bad())?;
        let h: u32 = h.trim().parse().map_err(|_| bad())?;
        FrameSize::new(w, h).map_err(|e| e.to_string())
    }
}

/// What a stream's frames are: a pixel format and, for the raw formats, their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    pub pixel: PixelFormat,
    /// Required for the raw formats; ignored for `mjpeg`, whose frames carry their size.
    pub size: Option<FrameSize>,
}

impl FrameFormat {
    /// Checks that raw formats have a size, and that `yuyv` frames have an even width
    /// (each pair of pixels shares one U and one V).
    pub fn new(pixel: PixelFormat, size: Option<FrameSize>) -> Result<FrameFormat> {
        match (pixel, size) {
            (PixelFormat::Mjpeg, _) => Ok(FrameFormat { pixel, size: None }),
            (_, None) => Err(Error::InvalidArgument(format!(
                "--pix-fmt {pixel} needs --size WxH: raw frames do not say how large they are"
            ))),
            (PixelFormat::Yuyv, Some(s)) if s.width % 2 == 1 => Err(Error::InvalidArgument(
                format!("yuyv frames have an even width (pixel pairs share U and V), got {s}"),
            )),
            (_, Some(s)) => {
                crate::input::limits::check(u64::from(s.width), u64::from(s.height))
                    .map_err(|reason| Error::InvalidArgument(format!("frame size {reason}")))?;
                Ok(FrameFormat {
                    pixel,
                    size: Some(s),
                })
            }
        }
    }

    pub fn mjpeg() -> FrameFormat {
        FrameFormat {
            pixel: PixelFormat::Mjpeg,
            size: None,
        }
    }

    /// Bytes in one frame of a raw format; `None` for `mjpeg` (variable) or a missing size.
    pub fn frame_len(&self) -> Option<usize> {
        let s = self.size?;
        let (w, h) = (s.width as usize, s.height as usize);
        let chroma = w.div_ceil(2) * h.div_ceil(2);
        match self.pixel {
            PixelFormat::Rgb24 => Some(3 * w * h),
            PixelFormat::Yuv420 | PixelFormat::Nv12 => Some(w * h + 2 * chroma),
            PixelFormat::Yuyv => Some(2 * w * h),
            PixelFormat::Mjpeg => None,
        }
    }
}

impl fmt::Display for FrameFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            Some(s) => write!(f, "{} {s}", self.pixel),
            None => write!(f, "{}", self.pixel),
        }
    }
}

/// One step of reading frames from a source: a frame, input that is not one, or the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// The buffer holds one whole frame.
    Frame,
    /// Input that is not a usable frame (corrupt, truncated), with the reason.
    Bad(String),
    /// No more input.
    End,
}

/// Converts frames of one format to RGB, reusing its output image.
#[derive(Debug)]
pub struct FrameConverter {
    format: FrameFormat,
    image: RgbImage,
    /// How large MJPEG frames must stay (raw frames are converted whole).
    size: DecodeSize,
}

impl FrameConverter {
    pub fn new(format: FrameFormat) -> FrameConverter {
        let image = match format.size {
            Some(s) if format.pixel.is_raw() => RgbImage::new(s.width, s.height),
            _ => RgbImage::new(0, 0),
        };
        FrameConverter {
            format,
            image,
            size: DecodeSize::Full,
        }
    }

    /// Decodes MJPEG frames no larger than `size` needs (a cascade's `decode_size`; see
    /// [`DecodeSize`]: whole while that fits the memory budget, which is faster, else in
    /// the DCT domain at 1/2, 1/4 or 1/8 scale).
    pub fn with_decode_size(mut self, size: DecodeSize) -> FrameConverter {
        self.size = size;
        self
    }

    pub fn format(&self) -> FrameFormat {
        self.format
    }

    /// Converts one frame. A frame of the wrong length or an undecodable JPEG is an
    /// [`Error::Frame`]; the converter stays usable for the next frame.
    pub fn convert(&mut self, bytes: &[u8]) -> Result<&RgbImage> {
        let bad = |reason: String| Error::Frame { reason };
        let pixel = self.format.pixel;
        if pixel == PixelFormat::Mjpeg {
            // Into the same image every time: a stream of frames of one size reuses it.
            decode_bytes_into(bytes, self.size, &mut self.image).map_err(bad)?;
            return Ok(&self.image);
        }
        let expect = self.format.frame_len().unwrap_or(0);
        if bytes.len() != expect {
            return Err(bad(format!(
                "{} bytes, but a {} frame has {expect}",
                bytes.len(),
                self.format
            )));
        }
        let (w, h) = (self.image.width() as usize, self.image.height() as usize);
        let out: &mut [u8] = &mut self.image;
        match pixel {
            PixelFormat::Rgb24 => out.copy_from_slice(bytes),
            PixelFormat::Yuv420 => i420_to_rgb(bytes, w, h, out),
            PixelFormat::Nv12 => nv12_to_rgb(bytes, w, h, out),
            PixelFormat::Yuyv => yuyv_to_rgb(bytes, w, h, out),
            PixelFormat::Mjpeg => {}
        }
        Ok(&self.image)
    }
}

/// One BT.601 limited-range YUV pixel as RGB, in 8.8 fixed point (the usual integer form
/// of R = 1.164(Y-16) + 1.596(V-128), G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128),
/// B = 1.164(Y-16) + 2.017(U-128)).
#[inline]
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16) + 128;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clip = |x: i32| (x >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

/// Pixels converted at once: enough for the compiler to fill vector registers (16 lanes of
/// i32 are four SSE2 or NEON registers per value).
const BLOCK: usize = 16;

/// `BLOCK` pixels from their Y, U and V to interleaved RGB, each as [`yuv_to_rgb`] gives it,
/// but in plain loops over fixed-size arrays that the compiler vectorizes (converting one
/// pixel at a time, as this did, cost 14.2 M aarch64 instructions per 640x480 I420 frame,
/// 9% of a Lite0 inference; this, 2.7 M).
#[inline(always)]
fn block_to_rgb(y: &[u8], u: &[u8; BLOCK], v: &[u8; BLOCK], out: &mut [u8]) {
    // Lengths the compiler can see, so the loops below carry no bounds checks.
    let (y, out) = (&y[..BLOCK], &mut out[..3 * BLOCK]);
    let mut rgb = [[0u8; BLOCK]; 3];
    // Inlined, the one-pixel formula vectorizes across the block (the same instruction
    // counts as writing it out here).
    for i in 0..BLOCK {
        let [r, g, b] = yuv_to_rgb(y[i], u[i], v[i]);
        rgb[0][i] = r;
        rgb[1][i] = g;
        rgb[2][i] = b;
    }
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        px[0] = rgb[0][i];
        px[1] = rgb[1][i];
        px[2] = rgb[2][i];
    }
}

/// Where a row of 4:2:0 pixels finds its chroma, one U and one V per two pixels: in planes
/// of each (I420) or in U, V pairs (NV12).
#[derive(Clone, Copy)]
enum Chroma<'a> {
    Planes { u: &'a [u8], v: &'a [u8] },
    Pairs(&'a [u8]),
}

impl Chroma<'_> {
    /// The U and V of pixel `x`.
    fn at(self, x: usize) -> (u8, u8) {
        match self {
            Chroma::Planes { u, v } => (u[x / 2], v[x / 2]),
            Chroma::Pairs(uv) => (uv[x / 2 * 2], uv[x / 2 * 2 + 1]),
        }
    }

    /// The U and V of the `BLOCK` pixels from `x` (even), each repeated for the two pixels
    /// that share it.
    #[inline(always)]
    fn block(self, x: usize, u: &mut [u8; BLOCK], v: &mut [u8; BLOCK]) {
        let half = x / 2;
        match self {
            Chroma::Planes { u: us, v: vs } => {
                let (us, vs) = (&us[half..half + BLOCK / 2], &vs[half..half + BLOCK / 2]);
                for k in 0..BLOCK / 2 {
                    u[2 * k] = us[k];
                    u[2 * k + 1] = us[k];
                    v[2 * k] = vs[k];
                    v[2 * k + 1] = vs[k];
                }
            }
            Chroma::Pairs(uv) => {
                let uv = &uv[2 * half..2 * half + BLOCK];
                for k in 0..BLOCK / 2 {
                    u[2 * k] = uv[2 * k];
                    u[2 * k + 1] = uv[2 * k];
                    v[2 * k] = uv[2 * k + 1];
                    v[2 * k + 1] = uv[2 * k + 1];
                }
            }
        }
    }
}

/// One row of 4:2:0 pixels, `luma` (one per pixel) and its `chroma`, into `out` (RGB): whole
/// blocks at once, the rest (a row's last `width % BLOCK` pixels) one by one.
fn row_to_rgb(luma: &[u8], chroma: Chroma, out: &mut [u8]) {
    let mut ys = luma.chunks_exact(BLOCK);
    let mut outs = out.chunks_exact_mut(3 * BLOCK);
    let (mut u, mut v) = ([0u8; BLOCK], [0u8; BLOCK]);
    for (i, (y, px)) in (&mut ys).zip(&mut outs).enumerate() {
        chroma.block(i * BLOCK, &mut u, &mut v);
        block_to_rgb(y, &u, &v, px);
    }
    let done = luma.len() - ys.remainder().len();
    let rest = outs
        .into_remainder()
        .chunks_exact_mut(3)
        .zip(ys.remainder());
    for (x, (px, &y)) in (done..).zip(rest) {
        let (u, v) = chroma.at(x);
        px.copy_from_slice(&yuv_to_rgb(y, u, v));
    }
}

/// Planar 4:2:0 with separate U and V planes of `ceil(w/2) x ceil(h/2)`.
fn i420_to_rgb(src: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (luma, chroma) = src.split_at(w * h);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    for y in 0..h {
        let c = (y / 2) * cw..(y / 2 + 1) * cw;
        let chroma = Chroma::Planes {
            u: &u_plane[c.clone()],
            v: &v_plane[c],
        };
        row_to_rgb(
            &luma[y * w..(y + 1) * w],
            chroma,
            &mut out[y * w * 3..(y + 1) * w * 3],
        );
    }
}

/// Semi-planar 4:2:0: the Y plane, then `ceil(h/2)` rows of `ceil(w/2)` U, V pairs.
fn nv12_to_rgb(src: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let cw = w.div_ceil(2);
    let (luma, chroma) = src.split_at(w * h);
    for y in 0..h {
        let uv = Chroma::Pairs(&chroma[(y / 2) * 2 * cw..(y / 2 + 1) * 2 * cw]);
        row_to_rgb(
            &luma[y * w..(y + 1) * w],
            uv,
            &mut out[y * w * 3..(y + 1) * w * 3],
        );
    }
}

/// Packed 4:2:2: `Y0 U Y1 V` gives two pixels (the width is even, see [`FrameFormat::new`]);
/// `BLOCK` pixels at once, as for 4:2:0.
fn yuyv_to_rgb(src: &[u8], w: usize, h: usize, out: &mut [u8]) {
    let n = w * h;
    let mut quads = src[..2 * n].chunks_exact(2 * BLOCK);
    let mut outs = out[..3 * n].chunks_exact_mut(3 * BLOCK);
    let (mut y, mut u, mut v) = ([0u8; BLOCK], [0u8; BLOCK], [0u8; BLOCK]);
    for (q, px) in (&mut quads).zip(&mut outs) {
        let q = &q[..2 * BLOCK];
        for k in 0..BLOCK / 2 {
            y[2 * k] = q[4 * k];
            y[2 * k + 1] = q[4 * k + 2];
            u[2 * k] = q[4 * k + 1];
            u[2 * k + 1] = q[4 * k + 1];
            v[2 * k] = q[4 * k + 3];
            v[2 * k + 1] = q[4 * k + 3];
        }
        block_to_rgb(&y, &u, &v, px);
    }
    let rest = quads.remainder().chunks_exact(4);
    for (quad, px) in rest.zip(outs.into_remainder().chunks_exact_mut(6)) {
        let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
        px[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
        px[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK: [u8; 3] = [16, 128, 128];
    const WHITE: [u8; 3] = [235, 128, 128];
    /// Pure red, green and blue in BT.601 limited range (Y, U, V).
    const RED: [u8; 3] = [81, 90, 240];
    const GREEN: [u8; 3] = [145, 54, 34];
    const BLUE: [u8; 3] = [41, 240, 110];

    fn near(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 2)
    }

    fn size(w: u32, h: u32) -> Option<FrameSize> {
        Some(FrameSize::new(w, h).unwrap())
    }

    fn pixels(img: &RgbImage) -> Vec<[u8; 3]> {
        img.pixels().map(|p| p.0).collect()
    }

    #[test]
    fn reference_colours_convert() {
        assert_eq!(yuv_to_rgb(BLACK[0], BLACK[1], BLACK[2]), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(WHITE[0], WHITE[1], WHITE[2]), [255, 255, 255]);
        assert!(near(yuv_to_rgb(RED[0], RED[1], RED[2]), [255, 0, 0]));
        assert!(near(yuv_to_rgb(GREEN[0], GREEN[1], GREEN[2]), [0, 255, 0]));
        assert!(near(yuv_to_rgb(BLUE[0], BLUE[1], BLUE[2]), [0, 0, 255]));
        // Mid grey: Y = 126 -> 1.164 * 110 = 128.0.
        assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
        // Out-of-range input clips instead of wrapping.
        assert_eq!(yuv_to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(yuv_to_rgb(255, 255, 255), [255, 125, 255]);
    }

    #[test]
    fn rgb24_is_copied() {
        let bytes: Vec<u8> = (0..18).collect();
        let mut c = FrameConverter::new(FrameFormat::new(PixelFormat::Rgb24, size(3, 2)).unwrap());
        let img = c.convert(&bytes).unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(2, 1).0, [15, 16, 17]);
        assert_eq!(img.as_raw(), &bytes);
    }

    /// A 3x3 I420 frame: chroma is 2x2, so the last column and row have chroma of their own.
    /// Chroma blocks: top-left red, top-right blue, bottom-left green, bottom-right grey.
    #[test]
    fn yuv420_with_odd_size() {
        let f = FrameFormat::new(PixelFormat::Yuv420, size(3, 3)).unwrap();
        assert_eq!(f.frame_len(), Some(9 + 2 * 4));
        let ys = [
            RED[0], RED[0], BLUE[0], //
            RED[0], RED[0], BLUE[0], //
            GREEN[0], GREEN[0], 126,
        ];
        let us = [RED[1], BLUE[1], GREEN[1], 128];
        let vs = [RED[2], BLUE[2], GREEN[2], 128];
        let bytes: Vec<u8> = ys.iter().chain(&us).chain(&vs).copied().collect();
        let mut c = FrameConverter::new(f);
        let px = pixels(c.convert(&bytes).unwrap());
        let expect = [
            [255, 0, 0],
            [255, 0, 0],
            [0, 0, 255],
            [255, 0, 0],
            [255, 0, 0],
            [0, 0, 255],
            [0, 255, 0],
            [0, 255, 0],
            [128, 128, 128],
        ];
        for (i, (a, b)) in px.iter().zip(&expect).enumerate() {
            assert!(near(*a, *b), "pixel {i}: {a:?} vs {b:?}");
        }
    }

    /// A 5x3 I420 frame (3x2 chroma) with a black/white luma ramp and neutral chroma, but
    /// for the chroma sample of the right column in the second chroma row (pixel (4, 2)).
    #[test]
    fn yuv420_odd_width_picks_the_right_chroma() {
        let f = FrameFormat::new(PixelFormat::Yuv420, size(5, 3)).unwrap();
        let mut ys = [WHITE[0]; 15];
        ys[0] = BLACK[0];
        ys[14] = RED[0];
        let mut us = vec![128u8; 6];
        let mut vs = vec![128u8; 6];
        us[5] = RED[1];
        vs[5] = RED[2];
        let bytes: Vec<u8> = ys.iter().chain(&us).chain(&vs).copied().collect();
        let mut c = FrameConverter::new(f);
        let img = c.convert(&bytes).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(3, 2).0, [255, 255, 255]);
        assert!(near(img.get_pixel(4, 2).0, [255, 0, 0]));
    }

    /// The same 3x3 picture as `yuv420_with_odd_size`, with U and V interleaved.
    #[test]
    fn nv12_with_odd_size() {
        let f = FrameFormat::new(PixelFormat::Nv12, size(3, 3)).unwrap();
        assert_eq!(f.frame_len(), Some(17));
        let ys = [
            WHITE[0], BLACK[0], BLUE[0], //
            RED[0], RED[0], BLUE[0], //
            GREEN[0], GREEN[0], 126,
        ];
        let uv = [
            RED[1], RED[2], BLUE[1], BLUE[2], //
            GREEN[1], GREEN[2], 128, 128,
        ];
        let bytes: Vec<u8> = ys.iter().chain(&uv).copied().collect();
        let mut c = FrameConverter::new(f);
        let img = c.convert(&bytes).unwrap();
        // Top-left block: red chroma. White luma with red chroma: R clips, G and B drop.
        // R = 255 + 1.596*112 -> 255; G = 255 + 0.392*38 - 0.813*112 = 179.0;
        // B = 255 - 2.017*38 = 178.4.
        assert!(
            near(img.get_pixel(0, 0).0, [255, 179, 178]),
            "{:?}",
            img.get_pixel(0, 0)
        );
        // Black luma with red chroma: R = 1.596*112 = 178.8, G and B clip at 0.
        assert!(
            near(img.get_pixel(1, 0).0, [179, 0, 0]),
            "{:?}",
            img.get_pixel(1, 0)
        );
        assert!(near(img.get_pixel(0, 1).0, [255, 0, 0]));
        assert!(near(img.get_pixel(2, 0).0, [0, 0, 255]));
        assert!(near(img.get_pixel(2, 1).0, [0, 0, 255]));
        assert!(near(img.get_pixel(1, 2).0, [0, 255, 0]));
        assert_eq!(img.get_pixel(2, 2).0, [128, 128, 128]);
    }

    #[test]
    fn yuyv_pairs_share_chroma() {
        let f = FrameFormat::new(PixelFormat::Yuyv, size(4, 1)).unwrap();
        assert_eq!(f.frame_len(), Some(8));
        let bytes = [
            BLACK[0], 128, WHITE[0], 128, // black, white
            RED[0], RED[1], RED[0], RED[2], // red, red
        ];
        let mut c = FrameConverter::new(f);
        let px = pixels(c.convert(&bytes).unwrap());
        assert_eq!(px[0], [0, 0, 0]);
        assert_eq!(px[1], [255, 255, 255]);
        assert!(
            near(px[2], [255, 0, 0]) && near(px[3], [255, 0, 0]),
            "{px:?}"
        );
        assert!(FrameFormat::new(PixelFormat::Yuyv, size(3, 2)).is_err());
    }

    /// Every pixel of frames wide enough for whole blocks and a tail (odd widths for
    /// 4:2:0), bytes from a fixed pseudo-random sequence, against [`yuv_to_rgb`] of the Y,
    /// U and V that each format's layout gives that pixel, read here index by index.
    #[test]
    fn block_conversion_gives_every_pixel_its_own_yuv() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut bytes = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect()
        };
        for (w, h) in [(37, 5), (48, 2), (16, 1), (3 * BLOCK + 1, 3_usize)] {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            for pixel in [PixelFormat::Yuv420, PixelFormat::Nv12] {
                let f = FrameFormat::new(pixel, size(w as u32, h as u32)).unwrap();
                let src = bytes(f.frame_len().unwrap());
                let (luma, chroma) = src.split_at(w * h);
                let got = pixels(FrameConverter::new(f).convert(&src).unwrap());
                for (i, px) in got.iter().enumerate() {
                    let (x, y) = (i % w, i / w);
                    let c = (y / 2) * cw + x / 2;
                    let (u, v) = match pixel {
                        PixelFormat::Yuv420 => (chroma[c], chroma[cw * ch + c]),
                        _ => (chroma[2 * c], chroma[2 * c + 1]),
                    };
                    assert_eq!(*px, yuv_to_rgb(luma[i], u, v), "{pixel} {w}x{h} at {x},{y}");
                }
            }
            if w % 2 == 0 {
                let f = FrameFormat::new(PixelFormat::Yuyv, size(w as u32, h as u32)).unwrap();
                let src = bytes(f.frame_len().unwrap());
                let got = pixels(FrameConverter::new(f).convert(&src).unwrap());
                for (i, px) in got.iter().enumerate() {
                    let quad = &src[4 * (i / 2)..4 * (i / 2) + 4];
                    let want = yuv_to_rgb(quad[2 * (i % 2)], quad[1], quad[3]);
                    assert_eq!(*px, want, "yuyv {w}x{h} at pixel {i}");
                }
            }
        }
    }

    #[test]
    fn wrong_length_is_an_image_error_and_the_buffer_is_reused() {
        let mut c = FrameConverter::new(FrameFormat::new(PixelFormat::Rgb24, size(2, 2)).unwrap());
        let first = c.convert(&[7; 12]).unwrap().as_raw().as_ptr();
        let err = c.convert(&[0; 11]).unwrap_err().to_string();
        assert!(
            err.contains("11 bytes, but a rgb24 2x2 frame has 12"),
            "{err}"
        );
        assert_eq!(c.convert(&[9; 12]).unwrap().as_raw().as_ptr(), first);
    }

    #[test]
    fn mjpeg_frames_are_decoded_no_larger_than_needed() {
        let img = RgbImage::from_pixel(96, 64, image::Rgb([30, 200, 30]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        let need = |n| DecodeSize::Smallest(std::num::NonZeroU32::new(n).unwrap());
        let mut c = FrameConverter::new(FrameFormat::mjpeg()).with_decode_size(need(16));
        // 64 / 4 = 16: a quarter of each side.
        let out = c.convert(&jpeg).unwrap();
        assert_eq!(out.dimensions(), (24, 16));
        let px = out.get_pixel(12, 8).0;
        assert!(px[1] > 180 && px[0] < 60, "{px:?}");
        // Raw frames are converted whole whatever the size says.
        let mut raw =
            FrameConverter::new(FrameFormat::new(PixelFormat::Rgb24, size(4, 4)).unwrap())
                .with_decode_size(need(1));
        assert_eq!(raw.convert(&[5; 48]).unwrap().dimensions(), (4, 4));
    }

    #[test]
    fn mjpeg_frames_decode_and_garbage_is_refused() {
        let img = RgbImage::from_pixel(9, 7, image::Rgb([200, 30, 30]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        let mut c = FrameConverter::new(FrameFormat::mjpeg());
        let out = c.convert(&jpeg).unwrap();
        assert_eq!(out.dimensions(), (9, 7));
        let px = out.get_pixel(4, 3).0;
        assert!(
            px.iter()
                .zip([200u8, 30, 30])
                .all(|(a, b)| a.abs_diff(b) <= 4),
            "{px:?}"
        );
        assert!(c.convert(b"not a jpeg").is_err());
        assert!(c.convert(&jpeg[..jpeg.len() / 2]).is_err());
    }

    #[test]
    fn parsing_formats_and_sizes() {
        assert_eq!("yuv420p".parse::<PixelFormat>(), Ok(PixelFormat::Yuv420));
        assert_eq!("MJPEG".parse::<PixelFormat>(), Ok(PixelFormat::Mjpeg));
        assert!("h264".parse::<PixelFormat>().is_err());
        assert_eq!(
            "640x480".parse::<FrameSize>(),
            Ok(FrameSize {
                width: 640,
                height: 480
            })
        );
        for bad in ["640", "0x480", "axb", "640x-1", ""] {
            assert!(bad.parse::<FrameSize>().is_err(), "{bad}");
        }
        let err = FrameFormat::new(PixelFormat::Nv12, None).unwrap_err();
        assert!(err.to_string().contains("needs --size"), "{err}");
        assert_eq!(
            FrameFormat::new(PixelFormat::Mjpeg, size(2, 2))
                .unwrap()
                .size,
            None
        );
    }
}
