//! Writes the binary seeds of fuzz/seeds (decode, mjpeg, frame): tiny images made here,
//! so they are a few hundred bytes each. The text seeds are copies of the repository's
//! files or written by hand (see fuzz/seeds/README.md).
//!
//!     cargo +nightly run --manifest-path fuzz/Cargo.toml --example make_seeds -- fuzz/seeds

use std::fs;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage};

fn jpeg(w: u32, h: u32, shade: u8, q: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([shade, (x * 29) as u8, (y * 41) as u8]));
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, q)
        .encode_image(&img)
        .unwrap();
    out
}

fn gray_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 16 + y) as u8]));
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&img)
        .unwrap();
    out
}

fn encode_png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// An APP1 segment inserted after SOI.
fn with_app1(main: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = main[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&main[2..]);
    out
}

/// An EXIF payload whose only tag is the orientation `o`, big-endian TIFF.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut p = b"Exif\0\0".to_vec();
    p.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // TIFF header, IFD at 8
    p.extend_from_slice(&1u16.to_be_bytes()); // one entry
    p.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    p.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    p.extend_from_slice(&1u32.to_be_bytes()); // count
    p.extend_from_slice(&o.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    p
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn huge_png() -> Vec<u8> {
    let mut bytes = encode_png(image::DynamicImage::ImageRgb8(RgbImage::new(2, 2)));
    // IHDR data at 16..29 (after signature 8, length 4, type 4): width, height.
    bytes[16..20].copy_from_slice(&60000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn huge_jpeg() -> Vec<u8> {
    let mut bytes = jpeg(8, 8, 1, 50);
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let out = Path::new(&std::env::args().nth(1).unwrap()).to_path_buf();
    let a = jpeg(8, 8, 10, 75);
    let b = jpeg(5, 3, 200, 90);
    let c = jpeg(17, 9, 90, 60);
    let thumb_in = with_app1(
        &jpeg(12, 12, 50, 70),
        &[b"Exif\0\0".as_slice(), &jpeg(4, 4, 60, 50)].concat(),
    );
    let rotated = with_app1(&jpeg(6, 4, 120, 80), &exif_orientation(6));

    // decode
    let d = out.join("decode");
    write(&d, "rgb-8x8.jpg", &a);
    write(&d, "rgb-17x9.jpg", &c);
    write(&d, "gray-9x5.jpg", &gray_jpeg(9, 5));
    write(&d, "exif-orientation-6.jpg", &rotated);
    write(&d, "exif-thumbnail.jpg", &thumb_in);
    write(&d, "header-65000x65000.jpg", &huge_jpeg());
    write(
        &d,
        "rgb-5x3.png",
        &encode_png(image::DynamicImage::ImageRgb8(RgbImage::from_fn(
            5,
            3,
            |x, y| Rgb([x as u8 * 50, y as u8 * 80, 7]),
        ))),
    );
    write(
        &d,
        "gray16-3x2.png",
        &encode_png(image::DynamicImage::ImageLuma16(
            image::ImageBuffer::from_fn(3, 2, |x, y| image::Luma([(x * 20000 + y * 5000) as u16])),
        )),
    );
    write(
        &d,
        "rgba-2x2.png",
        &encode_png(image::DynamicImage::ImageRgba8(
            image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0])),
        )),
    );
    write(
        &d,
        "gray-alpha-4x1.png",
        &encode_png(image::DynamicImage::ImageLumaA8(
            image::ImageBuffer::from_fn(4, 1, |x, _| image::LumaA([x as u8 * 60, 200])),
        )),
    );
    write(&d, "header-60000x60000.png", &huge_png());

    // mjpeg: [n][n read sizes][stream]
    let m = out.join("mjpeg");
    let framed = |sizes: &[u8], parts: &[&[u8]]| {
        let mut v = vec![sizes.len() as u8];
        v.extend_from_slice(sizes);
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    };
    write(&m, "three-whole.bin", &framed(&[], &[&a, &b, &c]));
    write(
        &m,
        "trickle-with-interrupts.bin",
        &framed(&[1, 0, 7, 255, 3], &[&a, &b]),
    );
    write(
        &m,
        "junk-thumbnail-and-cut.bin",
        &framed(
            &[64],
            &[
                b"junk",
                &thumb_in,
                b"\n\n",
                &a[..a.len() / 2],
                &b,
                &c[..c.len() - 3],
            ],
        ),
    );
    write(&m, "cut-in-headers.bin", &framed(&[5], &[&a[..30], &b]));

    // frame: [format index][width][height][fit] then the frame (arbitrary's byte order)
    let f = out.join("frame");
    let header = |fmt: u8, w: u8, h: u8, fit: u8| vec![fmt, w, h, fit];
    let ramp = |n: usize| (0..n).map(|i| (i * 37 % 251) as u8).collect::<Vec<u8>>();
    write(
        &f,
        "rgb24-3x2.bin",
        &[header(0, 3, 2, 0), ramp(18)].concat(),
    );
    write(
        &f,
        "yuv420-3x3.bin",
        &[header(1, 3, 3, 0), ramp(9 + 8)].concat(),
    );
    write(
        &f,
        "yuv420-5x3-fit.bin",
        &[header(1, 5, 3, 1), ramp(10)].concat(),
    );
    write(
        &f,
        "nv12-5x3.bin",
        &[header(2, 5, 3, 0), ramp(15 + 12)].concat(),
    );
    write(&f, "yuyv-4x2.bin", &[header(3, 4, 2, 0), ramp(16)].concat());
    write(
        &f,
        "yuyv-odd-width.bin",
        &[header(3, 3, 2, 1), ramp(12)].concat(),
    );
    write(
        &f,
        "mjpeg.bin",
        &[
            header(4, 0, 0, 0)
                .iter()
                .map(|&x| if x == 0 { 1 } else { x })
                .collect::<Vec<_>>(),
            b.clone(),
        ]
        .concat(),
    );
    write(
        &f,
        "wrong-length.bin",
        &[header(0, 7, 5, 0), ramp(20)].concat(),
    );
}
