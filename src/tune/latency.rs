//! Latency statistics: mean and nearest-rank percentiles over measured durations.

use std::time::Duration;

/// Mean and percentiles of a set of durations, in milliseconds.
/// The one latency summary: calibration stores it per stage in the profile, eval and the
/// benchmark report it per configuration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// How many durations were measured.
    pub count: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    /// Statistics of `samples`; all zero for an empty set.
    pub fn of(samples: &[Duration]) -> Latency {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean_ms = if ms.is_empty() {
            0.0
        } else {
            ms.iter().sum::<f64>() / ms.len() as f64
        };
        Latency {
            count: ms.len(),
            mean_ms,
            p50_ms: percentile(&ms, 50.0),
            p95_ms: percentile(&ms, 95.0),
            p99_ms: percentile(&ms, 99.0),
        }
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it. 0 for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 10.0);
        assert_eq!(percentile(&v, 10.0), 1.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn latency_of_durations() {
        let d: Vec<Duration> = [3, 1, 2]
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        let l = Latency::of(&d);
        assert_eq!(l.count, 3);
        assert!((l.mean_ms - 2.0).abs() < 1e-9);
        assert!((l.p50_ms - 2.0).abs() < 1e-9);
        assert!((l.p99_ms - 3.0).abs() < 1e-9);
    }
}
