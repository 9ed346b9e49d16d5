//! What the per-frame path allocates once warm: a global allocator counts the allocations
//! made by the calling thread while counting is switched on (other tests of this binary run
//! on other threads and are not counted).
//!
//! Raw frame conversion (`input/frame.rs`) and the decision (`runtime/confidence.rs`) must
//! allocate nothing, as their docs say. Two parts do allocate, and the test prints how much
//! so that it is on record: fast_image_resize computes its filter coefficients on every
//! resize (454 small allocations for Lite0's 224x224 from 320x240, measured), and tract
//! allocates its activations on every inference (about 1,100 for Lite0).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::common;

use cascade::input::{FrameConverter, FrameFormat, FrameSize, PixelFormat};
use cascade::runtime::{Metric, Preprocessor, Summary};
use cascade::{LoadOptions, Model, ModelSpec};

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
