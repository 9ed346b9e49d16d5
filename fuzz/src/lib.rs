//! What the fuzz targets share: a cap on single allocations, so a memory blow-up on
//! hostile input is a crash with its input saved, and the text of an input.
//!
//! libFuzzer's own `-malloc_limit_mb` needs a sanitizer's malloc hooks, and scripts/fuzz
//! builds without a sanitizer; this allocator enforces the same limit in any build.
//! libFuzzer's `-rss_limit_mb` (a thread watching the resident size) works in any build and
//! catches the slower blow-ups.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a target may ask for. The largest legitimate one is a
/// decoded image under the targets' 64 MB memory budget: 16 MB of pixels, about as much
/// again for the decoder's buffers.
pub const MAX_ALLOCATION_MB: usize = 512;

struct Capped;

/// Aborts on an allocation over the cap: libFuzzer reports the abort as a crash and
/// writes the input that caused it.
fn check(size: usize) {
    if size > MAX_ALLOCATION_MB << 20 {
        // Formatting into a stack buffer: allocating here would recurse.
        let mut buf = [0u8; 160];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let _ = writeln!(
            cursor,
            "fuzz: an allocation of {size} bytes exceeds the limit of {MAX_ALLOCATION_MB} MB"
        );
        let len = cursor.position() as usize;
        let _ = std::io::stderr().write_all(&buf[..len]);
        std::process::abort();
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; `check` only looks
// at the size and never returns after finding it too large.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// The input as text, for the parsers of text files (a file that is not UTF-8 never
/// reaches them: reading it fails first).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

static LAST_PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
static SEEN: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
    std::sync::Mutex::new(None);

/// For targets whose library call catches panics from a dependency (tract, jpeg-decoder)
/// and returns them as errors: libFuzzer's panic hook would abort on any panic, even a
/// caught one, so this swaps it for one that only notes the message (each new place printed
/// once, for the record). A panic that escapes the library must then be turned into an
/// abort by the target, with [`last_panic`] as its message. With `FUZZ_STRICT_PANICS=1`
/// libFuzzer's hook stays, so every panic, caught or not, is a crash with its input saved.
pub fn note_caught_panics() {
    if std::env::var_os("FUZZ_STRICT_PANICS").is_some_and(|v| v == "1") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map_or_else(|| "?".to_string(), |l| format!("{}:{}", l.file(), l.line()));
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        if seen
            .get_or_insert_with(std::collections::HashSet::new)
            .insert(place.clone())
        {
            eprintln!("fuzz: a panic at {place}, caught by the library or not: {info}");
        }
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = info.to_string();
    }));
}

/// The message of the last panic noted by [`note_caught_panics`]'s hook.
pub fn last_panic() -> String {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
