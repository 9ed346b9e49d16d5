//! Running statistics of a stream, in constant memory however long it runs.
//!
//! Percentiles come from a histogram with logarithmic buckets 1% apart (error under 1%),
//! so a camera left running for days neither grows a sample list nor allocates per frame.

use std::time::Duration;

use crate::runtime::{CutShort, MAX_STAGES};

/// Buckets cover 1 µs to about 6 hours at 1% steps.
const BUCKETS: usize = 2400;
const STEP: f64 = 1.01;
const FLOOR_MS: f64 = 1e-3;

/// A latency histogram with exact count and mean.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    sum_ms: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            sum_ms: 0.0,
        }
    }
}

impl Histogram {
    pub fn add(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1e3;
        let i = if ms <= FLOOR_MS {
            0
        } else {
            ((ms / FLOOR_MS).ln() / STEP.ln()).round() as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.sum_ms += ms;
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ms / self.count as f64
        }
    }

    /// Nearest-rank percentile `p` (0..=100), to within 1%; 0 when empty.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return FLOOR_MS * STEP.powi(i as i32);
            }
        }
        FLOOR_MS * STEP.powi(BUCKETS as i32 - 1)
    }
}

/// What the session has reported, frame by frame, in input order.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub classified: u64,
    /// Frames replaced in the queue by a newer one.
    pub dropped: u64,
    /// Input the reader could not cut into a frame.
    pub skipped: u64,
    /// Frames the cascade failed on.
    pub failed: u64,
    /// Frames that reached the classifier but could not be converted (corrupt JPEG).
    pub unreadable: u64,
    /// Frames answered early because deferring would have missed the deadline.
    pub cut_short: u64,
    /// Frames answered early because the next stage does not fit the memory budget.
    pub over_memory: u64,
    /// Frames answered by the stage before a served one that did not answer.
    pub unanswered: u64,
    /// Answers per exit stage.
    pub exits: [u64; MAX_STAGES],
    /// Compute time of the executed stages.
    pub compute: Histogram,
    /// Arrival to answer, including waiting for the cascade.
    pub age: Histogram,
    pub energy_mj_sum: f64,
    pub energy_frames: u64,
}

impl StreamStats {
    pub fn record(
        &mut self,
        exit_stage: usize,
        cut_short: Option<CutShort>,
        compute: Duration,
        age: Duration,
        energy_mj: Option<f64>,
    ) {
        self.classified += 1;
        match cut_short {
            Some(CutShort::Deadline) => self.cut_short += 1,
            Some(CutShort::Memory) => self.over_memory += 1,
            Some(CutShort::Unanswered) => self.unanswered += 1,
            None => {}
        }
        if let Some(n) = self.exits.get_mut(exit_stage) {
            *n += 1;
        }
        self.compute.add(compute);
        self.age.add(age);
        if let Some(e) = energy_mj {
            self.energy_mj_sum += e;
            self.energy_frames += 1;
        }
    }

    /// Share of answers given by each of the first `stages` stages.
    pub fn exit_shares(&self, stages: usize) -> Vec<f64> {
        let n = self.classified.max(1) as f64;
        self.exits
            .iter()
            .take(stages)
            .map(|&k| k as f64 / n)
            .collect()
    }

    /// Mean energy per classified frame, when the stages' energy is known.
    pub fn mean_energy_mj(&self) -> Option<f64> {
        (self.energy_frames > 0).then(|| self.energy_mj_sum / self.energy_frames as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_one_percent() {
        let mut h = Histogram::default();
        for ms in 1..=100u64 {
            h.add(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        assert!((h.mean_ms() - 50.5).abs() < 1e-9);
        for (p, want) in [(50.0, 50.0), (95.0, 95.0), (100.0, 100.0), (1.0, 1.0)] {
            let got = h.percentile_ms(p);
            assert!((got / want - 1.0).abs() < 0.01, "p{p}: {got}");
        }
        assert_eq!(Histogram::default().percentile_ms(95.0), 0.0);
        // Out-of-range values land in the end buckets instead of panicking.
        h.add(Duration::ZERO);
        h.add(Duration::from_secs(1_000_000));
    }

    #[test]
    fn exit_shares_and_energy() {
        let mut s = StreamStats::default();
        let ms = Duration::from_millis;
        s.record(0, None, ms(10), ms(12), Some(5.0));
        s.record(0, Some(CutShort::Memory), ms(10), ms(12), Some(5.0));
        s.record(1, None, ms(40), ms(45), Some(25.0));
        s.record(0, Some(CutShort::Deadline), ms(10), ms(80), Some(5.0));
        assert_eq!(s.exit_shares(2), vec![0.75, 0.25]);
        assert_eq!((s.cut_short, s.over_memory), (1, 1));
        assert_eq!(s.mean_energy_mj(), Some(10.0));
        assert_eq!(StreamStats::default().mean_energy_mj(), None);
    }
}
