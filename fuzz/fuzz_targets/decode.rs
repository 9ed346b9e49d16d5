//! Image decoding (JPEG, PNG) under a small memory budget, whole and (for inputs of odd
//! length) as small as a short side of 8 allows, which takes JPEGs of 16 pixels or more
//! through the reduced-scale decoder: never a panic, and never an image with more pixels
//! than the budget allows. The library catches a panic inside jpeg-decoder and returns an
//! error; libFuzzer's hook is swapped so that such a caught panic passes and only one that
//! escapes the library is a crash (see `cascade_fuzz::note_caught_panics`).
#![no_main]

use std::num::NonZeroU32;
use std::panic::{self, AssertUnwindSafe};

use cascade::input::{decode_bytes_sized, DecodeSize};
use cascade::MemoryBudget;
use libfuzzer_sys::fuzz_target;

/// Small enough that a few dozen header bytes can ask for more than it allows.
const BUDGET_MB: u64 = 64;

fuzz_target!(
    init: {
        MemoryBudget::from_mb(BUDGET_MB).unwrap().apply();
        cascade_fuzz::note_caught_panics();
    },
    |data: &[u8]| {
        let size = match data.len() % 2 {
            0 => DecodeSize::Full,
            _ => DecodeSize::Smallest(NonZeroU32::new(8).unwrap()),
        };
        let decoded = panic::catch_unwind(AssertUnwindSafe(|| decode_bytes_sized(data, size)));
        let Ok(decoded) = decoded else {
            eprintln!("fuzz: a panic escaped decode_bytes_sized: {}", cascade_fuzz::last_panic());
            std::process::abort();
        };
        let Ok(image) = decoded else {
            return;
        };
        let (w, h) = image.dimensions();
        let pixels = u64::from(w) * u64::from(h);
        assert!(pixels > 0, "an empty image was returned");
        let limit = MemoryBudget::from_mb(BUDGET_MB).unwrap().max_pixels();
        assert!(pixels <= limit, "{w}x{h} decoded under a limit of {limit} pixels");
        assert_eq!(image.as_raw().len() as u64, 3 * pixels);
    }
);
