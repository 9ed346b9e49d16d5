//! Loading an ONNX model from bytes: an error or a classifier, never a panic out of the
//! library and never a memory blow-up.
//!
//! The library turns a panic inside tract into an error (`Model::from_bytes` catches it).
//! libFuzzer's panic hook would abort on any panic, even a caught one, so this target
//! swaps it for one that only notes the message: a panic the library catches is the
//! behaviour under test and passes (each new place is printed once, for the record); a
//! panic that escapes the library aborts with its message, a crash. With
//! `FUZZ_STRICT_PANICS=1` libFuzzer's hook stays, so every panic inside tract, caught or
//! not, is a crash with its input saved (to report to tract, or to write a test from).
#![no_main]

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use cascade::{LoadOptions, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: cascade_fuzz::note_caught_panics(), |data: &[u8]| {
    let loaded = panic::catch_unwind(AssertUnwindSafe(|| {
        Model::from_bytes(data, Path::new("fuzz.onnx"), None, LoadOptions::default())
    }));
    match loaded {
        Ok(Ok(model)) => {
            assert!(model.num_classes() >= 2);
            assert_eq!(model.input().shape().iter().product::<usize>(), model.input().len());
        }
        Ok(Err(e)) => assert!(e.to_string().contains("fuzz.onnx"), "{e}"),
        Err(_) => {
            eprintln!("fuzz: a panic escaped Model::from_bytes: {}", cascade_fuzz::last_panic());
            std::process::abort();
        }
    }
});
