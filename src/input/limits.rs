//! How large an image or frame may be, from the memory the process may use.
//!
//! A JPEG header can declare 65000x65000 pixels in a few dozen bytes; decoding it would
//! ask for 12 GB. So the whole program takes one [`MemoryBudget`] (by default half of the
//! machine's memory), and decoding refuses, from the header and before allocating, any
//! image whose decoded pixels would take more than a quarter of it (the rest is the
//! decoder's own buffers, the resize and the models).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Bytes per decoded pixel (8-bit RGB).
const BYTES_PER_PIXEL: u64 = 3;

/// The share of the budget one decoded image may take.
const IMAGE_SHARE: u64 = 4;

/// The smallest budget that still decodes a 1080p camera frame with room to spare.
const MIN_BUDGET_MB: u64 = 32;

/// The memory the process may use, in bytes: the one setting decode limits follow from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget(u64);

impl MemoryBudget {
    /// A budget of `mb` megabytes (at least 32).
    pub fn from_mb(mb: u64) -> Result<MemoryBudget> {
        if mb < MIN_BUDGET_MB {
            return Err(Error::InvalidArgument(format!(
                "--max-memory-mb must be at least {MIN_BUDGET_MB}, got {mb}"
            )));
        }
        Ok(MemoryBudget(mb.saturating_mul(1 << 20)))
    }

    /// Half of this machine's memory (`MemTotal` in /proc/meminfo), or 512 MB where that
    /// cannot be read.
    pub fn of_machine() -> MemoryBudget {
        let total_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            });
        match total_kb {
            Some(kb) => MemoryBudget((kb * 1024 / 2).max(MIN_BUDGET_MB << 20)),
            None => MemoryBudget(512 << 20),
        }
    }

    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The most pixels one decoded image or frame may have under this budget.
    pub fn max_pixels(self) -> u64 {
        self.0 / IMAGE_SHARE / BYTES_PER_PIXEL
    }

    /// Makes this budget the process's: every later decode and frame format follows it.
    pub fn apply(self) {
        MAX_PIXELS.store(self.max_pixels(), Ordering::Relaxed);
    }
}

/// The process's pixel limit; 0 until set, meaning "the machine's default".
static MAX_PIXELS: AtomicU64 = AtomicU64::new(0);

/// The most pixels a decoded image or frame may have now.
pub(crate) fn max_pixels() -> u64 {
    match MAX_PIXELS.load(Ordering::Relaxed) {
        0 => {
            let limit = MemoryBudget::of_machine().max_pixels();
            MAX_PIXELS.store(limit, Ordering::Relaxed);
            limit
        }
        n => n,
    }
}

/// Checks that a `width x height` image fits the process's limit, before any allocation.
pub(crate) fn check(width: u64, height: u64) -> std::result::Result<(), String> {
    let limit = max_pixels();
    let pixels = width.saturating_mul(height);
    if pixels > limit {
        return Err(format!(
            "{width}x{height} pixels is more than the {:.1} megapixels this process may decode \
             (a quarter of its memory budget; see --max-memory-mb)",
            limit as f64 / 1e6
        ));
    }
    Ok(())
}

/// The image crate's limits for the same budget: its decoders stop allocating past them.
pub(crate) fn image_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    // The decoded image plus the decoder's own buffers of about the same size.
    limits.max_alloc = Some(max_pixels().saturating_mul(BYTES_PER_PIXEL * 2));
    limits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_their_pixel_limits() {
        assert!(MemoryBudget::from_mb(8).is_err());
        let b = MemoryBudget::from_mb(512).unwrap();
        // 512 MiB / 4 / 3 bytes: about 44.7 megapixels, a 12 MP photo fits three times over.
        assert_eq!(b.max_pixels(), (512u64 << 20) / 12);
        assert!(MemoryBudget::of_machine().bytes() >= 32 << 20);
    }
}
