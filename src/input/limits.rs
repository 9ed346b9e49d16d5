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

    /// Half of the memory this process can have: the least of the machine's memory
    /// (`MemTotal`), its address-space limit (`ulimit -v`) and its cgroup's memory limit
    /// (v2 `memory.max` or v1 `memory.limit_in_bytes`); 512 MB where none can be read.
    pub fn of_machine() -> MemoryBudget {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cgroups = read("/proc/self/cgroup");
        let mut cgroup_limits = Vec::new();
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
            match (controllers, path) {
                (Some(""), Some(path)) => {
                    cgroup_limits.push(read(&format!("/sys/fs/cgroup{path}/memory.max")))
                }
                (Some("memory"), Some(path)) => cgroup_limits.push(read(&format!(
                    "/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
                ))),
                _ => {}
            }
        }
        let least = least_memory(
            &read("/proc/meminfo"),
            &read("/proc/self/limits"),
            &cgroup_limits,
        );
        match least {
            Some(bytes) => MemoryBudget((bytes / 2).max(MIN_BUDGET_MB << 20)),
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

/// The least of the memory figures a process is held to, in bytes: `MemTotal` from
/// /proc/meminfo, the soft "Max address space" from /proc/self/limits, and cgroup limits
/// (a number, or `max` for none).
fn least_memory(meminfo: &str, limits: &str, cgroup_limits: &[String]) -> Option<u64> {
    let total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let address_space = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    let cgroups = cgroup_limits
        .iter()
        .filter_map(|v| v.trim().parse::<u64>().ok());
    total.into_iter().chain(address_space).chain(cgroups).min()
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

    #[test]
    fn the_least_of_machine_ulimit_and_cgroup_counts() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree: 1 kB\n";
        let unlimited = "Max cpu time              unlimited            unlimited            seconds\n\
                         Max address space         unlimited            unlimited            bytes\n";
        let limited = "Max address space         367001600            unlimited            bytes\n";
        let gb = 24_000_000 * 1024;
        assert_eq!(least_memory(meminfo, unlimited, &[]), Some(gb));
        assert_eq!(least_memory(meminfo, limited, &[]), Some(367_001_600));
        let cgroup = ["max\n".to_string(), "536870912\n".to_string()];
        assert_eq!(least_memory(meminfo, unlimited, &cgroup), Some(536_870_912));
        assert_eq!(least_memory("", "", &[]), None);
    }
}
