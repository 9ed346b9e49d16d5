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

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use cascade::{LoadOptions, Model};
use libfuzzer_sys::fuzz_target;

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn note_panics() {
    if std::env::var_os("FUZZ_STRICT_PANICS").is_some_and(|v| v == "1") {
        return;
    }
    panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(|| "?".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(place.clone()) {
            eprintln!("fuzz: a panic at {place}, caught by the library or not: {info}");
        }
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = info.to_string();
    }));
}

fuzz_target!(init: note_panics(), |data: &[u8]| {
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
            let last = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("fuzz: a panic escaped Model::from_bytes: {last}");
            std::process::abort();
        }
    }
});
