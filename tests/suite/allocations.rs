//! What the per-frame path allocates once warm: a global allocator counts the allocations
//! made by the calling thread while counting is switched on (other tests of this binary run
//! on other threads and are not counted).
//!
//! Raw frame conversion (`input/frame.rs`) and the decision (`runtime/confidence.rs`) must
//! allocate nothing, as their docs say; so must the multi-worker path (`stream --workers
//! N`: forks of the stream classifier under `run_in_order`) around the cascade. Three parts
//! do allocate, and the tests print how much so that it is on record: fast_image_resize
//! computes its filter coefficients on every resize (454 small allocations for Lite0's
//! 224x224 from 320x240, measured), tract allocates its activations on every inference
//! (about 1,100 for Lite0), and zune-jpeg its working buffers for every MJPEG frame (into a
//! reused image); a stream's answer is one boxed allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::common;

use std::time::Instant;

use cascade::input::{
    decode_bytes_into, DecodeSize, FrameConverter, FrameFormat, FrameSize, PixelFormat, RgbImage,
};
use cascade::runtime::{run_in_order, Metric, Preprocessor, Summary, Workers};
use cascade::stream::{FrameOutcome, StreamClassifier};
use cascade::{Cascade, LoadOptions, Model, ModelSpec};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // try_with: a thread being torn down has no thread-locals left, and is not counted.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator; counting only reads
// and writes thread-local cells, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    COUNT.with(|c| c.get())
}

#[test]
fn the_counter_sees_an_allocation() {
    // The instrument itself: one Vec is one allocation.
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(vec![1u8; 64]))),
        1
    );
    assert_eq!(allocations_in(|| ()), 0);
}

#[test]
fn warm_frame_conversion_and_the_decision_allocate_nothing() {
    let mut model = Model::load(
        &ModelSpec::new(common::model("efficientnet-lite0")),
        LoadOptions::default(),
    )
    .unwrap();
    let mut pre = Preprocessor::new(model.input().clone());
    let size = FrameSize::new(320, 240).unwrap();
    // Frames of a moving gradient, different every time.
    let frames: Vec<(PixelFormat, Vec<Vec<u8>>)> = [PixelFormat::Rgb24, PixelFormat::Yuv420]
        .into_iter()
        .map(|pixel| {
            let len = FrameFormat::new(pixel, Some(size))
                .unwrap()
                .frame_len()
                .unwrap();
            let frames = (0..4u8)
                .map(|f| {
                    (0..len)
                        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(f * 40))
                        .collect()
                })
                .collect();
            (pixel, frames)
        })
        .collect();
    for (pixel, frames) in &frames {
        let mut converter = FrameConverter::new(FrameFormat::new(*pixel, Some(size)).unwrap());
        // Warm-up: the first frame sizes every reused buffer.
        let image = converter.convert(&frames[0]).unwrap();
        let logits = model.infer(pre.run(image).unwrap()).unwrap().to_vec();
        let (mut around, mut resize, mut inside) = (0, 0, 0);
        for frame in &frames[1..] {
            let mut image = None;
            let c = allocations_in(|| image = Some(converter.convert(frame).unwrap()));
            let mut input: &[f32] = &[];
            resize += allocations_in(|| input = pre.run(image.unwrap()).unwrap());
            around += c;
            let mut out: &[f32] = &[];
            inside += allocations_in(|| out = model.infer(input).unwrap());
            around += allocations_in(|| {
                for metric in [Metric::MaxProb, Metric::Margin, Metric::Entropy] {
                    std::hint::black_box(Summary::for_metric(out, metric));
                }
                std::hint::black_box(Summary::of(&logits));
            });
        }
        let n = frames.len() - 1;
        println!(
            "{pixel:?}: per frame {:.0} allocations in preprocessing (fast_image_resize), \
             {:.0} inside tract's inference",
            resize as f64 / n as f64,
            inside as f64 / n as f64
        );
        assert_eq!(
            around, 0,
            "{pixel:?}: frame conversion or the decision allocated"
        );
    }
}

/// Allocations this thread made since the last call (counting stays as it is).
fn take_count() -> u64 {
    COUNT.with(|c| c.replace(0))
}

thread_local! {
    /// Frames this worker thread has classified so far.
    static FRAMES: Cell<u64> = const { Cell::new(0) };
}

/// `n` frames of `format` at 320x240, a moving gradient (MJPEG: encoded at quality 90).
fn frames(pixel: PixelFormat, n: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|f| {
            let rgb = RgbImage::from_fn(320, 240, |x, y| {
                image::Rgb([(x + u32::from(f) * 9) as u8, (y * 2) as u8, (x ^ y) as u8])
            });
            match pixel {
                PixelFormat::Rgb24 => rgb.into_raw(),
                PixelFormat::Mjpeg => {
                    let mut out = Vec::new();
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                        .encode_image(&rgb)
                        .unwrap();
                    out
                }
                other => unreachable!("{other} frames are not made here"),
            }
        })
        .collect()
}

/// What each part of one warm frame allocates on its own, measured on this thread: tract's
/// inference, the resize, and (MJPEG) the decoder.
fn parts(model: &mut Model, frame: &[u8], pixel: PixelFormat) -> (u64, u64, u64) {
    let mut pre = Preprocessor::new(model.input().clone());
    let mut image = RgbImage::new(0, 0);
    let decode = |image: &mut RgbImage| match pixel {
        PixelFormat::Mjpeg => decode_bytes_into(frame, DecodeSize::Full, image).unwrap(),
        _ => *image = RgbImage::from_raw(320, 240, frame.to_vec()).unwrap(),
    };
    decode(&mut image);
    let _ = model.infer(pre.run(&image).unwrap()).unwrap();
    let decoding = match pixel {
        PixelFormat::Mjpeg => allocations_in(|| decode(&mut image)),
        _ => 0,
    };
    let mut input: &[f32] = &[];
    let resize = allocations_in(|| input = pre.run(&image).unwrap());
    let inside = allocations_in(|| {
        std::hint::black_box(model.infer(input).unwrap());
    });
    (inside, resize, decoding)
}

#[test]
fn a_warm_multi_worker_stream_allocates_only_in_tract_the_resize_and_the_jpeg_decoder() {
    // `stream --workers 2`: forks of one stream classifier under `run_in_order`, each on
    // its own worker thread, frames delivered in order on this thread. The counter is
    // per thread, so it is switched on inside the work, on each worker, and left on
    // there: what a worker allocates between two frames (taking the next input, sending
    // a result) is counted with the next frame.
    let spec = ModelSpec::new(common::model("efficientnet-lite0"));
    let mut model = Model::load(&spec, LoadOptions::default()).unwrap();
    for pixel in [PixelFormat::Rgb24, PixelFormat::Mjpeg] {
        let frames = frames(pixel, 4);
        let (inside, resize, decoding) = parts(&mut model, &frames[1], pixel);
        let size = FrameSize::new(320, 240).unwrap();
        let format = FrameFormat::new(pixel, pixel.is_raw().then_some(size)).unwrap();
        let cascade = Cascade::single(spec.clone(), LoadOptions::default()).unwrap();
        let mut classifier = StreamClassifier::new(cascade, format);
        // This thread: what a run costs in all (forks, threads, the ring of results) for
        // two lengths, after a first run that warms this thread's own state (its channel
        // context), so that the difference is what frames cost here.
        // Sized up front: their growth would be counted as this thread's.
        let mut per_run = Vec::with_capacity(3);
        let mut warm = Vec::with_capacity(4 + 12 + 32);
        for n in [4usize, 12, 32] {
            let mut delivered = 0;
            let here = allocations_in(|| {
                run_in_order(
                    &mut classifier,
                    Workers::new(2).unwrap(),
                    frames.iter().cycle().take(n),
                    |c, frame| {
                        let between = take_count();
                        COUNTING.with(|on| on.set(true));
                        let outcome = c.classify(frame, Instant::now())?;
                        let during = take_count();
                        let nth = FRAMES.with(|f| f.replace(f.get() + 1));
                        Ok((outcome, nth, between, during))
                    },
                    |_, (outcome, nth, between, during)| {
                        assert!(matches!(outcome, FrameOutcome::Answered(_)));
                        delivered += 1;
                        // A worker's first two frames size its buffers.
                        if nth >= 2 {
                            warm.push((between, during));
                        }
                        Ok(())
                    },
                )
                .unwrap()
            });
            assert_eq!(delivered, n);
            per_run.push(here);
        }
        let here_per_frame = (per_run[2] as f64 - per_run[1] as f64) / 20.0;
        let during = warm.iter().map(|&(_, d)| d).max().unwrap();
        let between = warm.iter().map(|&(b, _)| b).max().unwrap();
        println!(
            "{pixel}, 2 workers, per warm frame: {during} allocations in the worker's \
             classify ({inside} in tract's inference, {resize} in fast_image_resize, \
             {decoding} in zune-jpeg, 1 for the boxed answer), {between} between frames, \
             {here_per_frame} on the delivering thread"
        );
        assert_eq!(between, 0, "{pixel}: a worker allocated between two frames");
        assert_eq!(here_per_frame, 0.0, "{pixel}: delivering a frame allocated");
        assert!(
            warm.iter()
                .all(|&(_, d)| d == inside + resize + decoding + 1),
            "{pixel}: a frame allocated outside tract, the resize and the decoder: {warm:?}"
        );
    }
}
