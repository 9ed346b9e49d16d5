//! Accuracy and latency of a cascade (or a single model) over a labelled data folder.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Result;
use crate::runtime::{Cascade, Decision};
use crate::tune::Dataset;
use crate::tune::Latency;

/// One evaluated image.
#[derive(Debug, Clone)]
pub struct EvalRecord {
    pub path: PathBuf,
    pub label: Option<usize>,
    pub decision: Decision,
}

/// The outcome of an evaluation run.
#[derive(Debug, Clone)]
pub struct EvalReport {
    pub records: Vec<EvalRecord>,
    /// Images that could not be decoded, with the reason; they are left out of every figure.
    pub skipped: Vec<(PathBuf, String)>,
    /// Number of stages of the evaluated cascade.
    pub stage_count: usize,
    /// Time spent decoding files (not part of the per-image latency).
    pub decode_time: Duration,
}

impl EvalReport {
    fn labelled(&self) -> impl Iterator<Item = (&EvalRecord, usize)> {
        self.records.iter().filter_map(|r| r.label.map(|l| (r, l)))
    }

    pub fn labelled_count(&self) -> usize {
        self.labelled().count()
    }

    /// Share of labelled images whose answer is right, `None` without labels.
    pub fn top1(&self) -> Option<f64> {
        self.accuracy(|r, l| r.decision.class == l)
    }

    /// Share of labelled images whose label is among the exit stage's five best classes.
    pub fn top5(&self) -> Option<f64> {
        self.accuracy(|r, l| r.decision.top.iter().any(|t| t.class == l))
    }

    fn accuracy(&self, hit: impl Fn(&EvalRecord, usize) -> bool) -> Option<f64> {
        let n = self.labelled_count();
        (n > 0).then(|| self.labelled().filter(|(r, l)| hit(r, *l)).count() as f64 / n as f64)
    }

    /// Share of images answered by each stage.
    pub fn exit_shares(&self) -> Vec<f64> {
        let mut counts = vec![0usize; self.stage_count];
        for r in &self.records {
            if let Some(c) = counts.get_mut(r.decision.exit_stage) {
                *c += 1;
            }
        }
        let n = self.records.len().max(1) as f64;
        counts.into_iter().map(|c| c as f64 / n).collect()
    }

    /// Per-image cost: preprocessing and inference of every executed stage, loads excluded.
    pub fn latency(&self) -> Latency {
        let d: Vec<Duration> = self
            .records
            .iter()
            .map(|r| r.decision.compute_time())
            .collect();
        Latency::of(&d)
    }

    /// Model loads that happened during the run: (stage, load time).
    pub fn loads(&self) -> Vec<(usize, Duration)> {
        self.records
            .iter()
            .flat_map(|r| {
                r.decision
                    .stages
                    .iter()
                    .filter_map(|s| s.load.map(|l| (s.stage, l)))
            })
            .collect()
    }
}

/// Runs every image of `dataset` through `cascade`. `progress(done, total)` is called after
/// each image. Undecodable images are skipped with a warning; model errors stop the run.
pub fn evaluate(
    cascade: &mut Cascade,
    dataset: &Dataset,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    let mut report = EvalReport {
        records: Vec::with_capacity(dataset.len()),
        skipped: Vec::new(),
        stage_count: cascade.stages().len(),
        decode_time: Duration::ZERO,
    };
    for (i, item) in dataset.decoded().enumerate() {
        match item.image {
            Ok(image) => {
                report.decode_time += item.decode_time;
                let decision = cascade.classify(&image)?;
                report.records.push(EvalRecord {
                    path: item.sample.path.clone(),
                    label: item.sample.label,
                    decision,
                });
            }
            Err(e) => report
                .skipped
                .push((item.sample.path.clone(), e.to_string())),
        }
        progress(i + 1, dataset.len());
    }
    Ok(report)
}
