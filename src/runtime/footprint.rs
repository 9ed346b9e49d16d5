//! How much memory a model takes, known before loading it, so a cascade can decide whether
//! a later stage fits beside the ones already resident.
//!
//! tract keeps the parsed graph, the optimized one and packed copies of the weights; the
//! ONNX file's size is a good predictor of both figures. Measured on x86_64 (tract 0.23.9,
//! glibc with the `memory` module's allocator setting), each model loaded alone in a fresh
//! process, resident memory growth after loading and peak growth while loading:
//!
//! | model | file | resident (MiB) | peak while loading (MiB) |
//! |---|---|---|---|
//! | EfficientNet-Lite0 | 18.6 MB | 38-40 (2.2x) | 49 (2.8x) |
//! | EfficientNet-Lite2 | 24.3 MB | 50 (2.15x) | 64 (2.75x) |
//!
//! The factors below round those up, so an estimate errs on the side of refusing.

use std::path::Path;

/// Resident memory per byte of model file, once loaded and optimized.
const RESIDENT_PER_FILE_BYTE: f64 = 2.3;

/// Peak memory per byte of model file while loading (parsing, optimizing and packing hold
/// more than the result).
const LOAD_PEAK_PER_FILE_BYTE: f64 = 3.0;

/// A model's estimated memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Held while the model is loaded.
    pub resident: u64,
    /// Needed, on top of everything else resident, while it loads.
    pub load_peak: u64,
}

impl Footprint {
    /// The estimate for the model file at `path`; zero when the file cannot be read (its
    /// load then fails with the reason, which is the better message).
    pub fn of_file(path: &Path) -> Footprint {
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        Footprint::of_file_size(bytes)
    }

    /// The estimate for a model file of `bytes` bytes.
    pub fn of_file_size(bytes: u64) -> Footprint {
        Footprint {
            resident: (bytes as f64 * RESIDENT_PER_FILE_BYTE) as u64,
            load_peak: (bytes as f64 * LOAD_PEAK_PER_FILE_BYTE) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_cover_the_measured_figures() {
        // Lite0's file is 18,557,133 bytes: 40 MB measured resident, 49 MB peak.
        let f = Footprint::of_file_size(18_557_133);
        assert!(f.resident >= 40 << 20 && f.load_peak >= 49 << 20, "{f:?}");
        // Lite2's is 24,294,328 bytes: 50 MB resident, 64 MB peak.
        let f = Footprint::of_file_size(24_294_328);
        assert!(f.resident >= 50 << 20 && f.load_peak >= 64 << 20, "{f:?}");
        assert_eq!(
            Footprint::of_file("no/such/model.onnx".as_ref()),
            Footprint::default()
        );
    }
}
