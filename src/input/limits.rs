//! How large an image or frame may be, from the process's [`MemoryBudget`].
//!
//! A JPEG header can declare 65000x65000 pixels in a few dozen bytes; decoding it would
//! ask for 12 GB. So decoding refuses, from the header and before allocating, any image
//! whose decoded pixels would take more than the budget's image share (a quarter of it; the
//! rest is the decoder's own buffers, the resize and the models).
//!
//! A JPEG decoded at reduced scale ([`DecodeSize`](crate::input::DecodeSize)) is counted
//! at the size it is decoded to, so a 1/8-scale decode of a photo too large to decode whole
//! is allowed; a progressive one is counted whole, because its decoder keeps every
//! coefficient of the full image (2 bytes a sample) until the last scan.

use crate::memory::{MemoryBudget, BYTES_PER_PIXEL};

/// The most pixels a decoded image or frame may have now.
pub(crate) fn max_pixels() -> u64 {
    MemoryBudget::current().max_pixels()
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
