//! Accuracy and latency of a cascade (or a single model) over a labelled data folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::Result;
use crate::runtime::{run_in_order, Cascade, CutShort, Decision, Metric, Threads, Workers};
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
    /// Wall time of the whole run (decoding included), from which throughput follows.
    pub wall_time: Duration,
    /// Images in flight at once.
    pub workers: Workers,
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

/// An evaluation's figures, as `eval` reports them (JSON for scripts, [`EvalSummary::text`]
/// for people).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSummary {
    pub models: Vec<String>,
    /// The exit threshold of each exit (none for a single model).
    pub thresholds: Vec<f32>,
    pub metric: Metric,
    pub threads: usize,
    /// Images evaluated at once (1: latency mode).
    pub workers: usize,
    /// Images per second over the whole run, decoding included.
    pub images_per_s: f64,
    pub data: String,
    pub images: usize,
    pub labelled: usize,
    pub skipped: usize,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    pub exit_shares: Vec<f64>,
    /// Images answered early because the next stage does not fit the memory budget.
    pub over_memory: usize,
    /// Images answered by the stage before a served one that did not answer.
    pub unanswered: usize,
    /// Preprocessing plus inference per image, loads excluded.
    pub latency_ms: Latency,
    pub decode_ms_mean: f64,
    /// Stages loaded during the run, and how long each load took.
    pub loads: Vec<Load>,
}

/// A stage loaded during an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Load {
    pub stage: usize,
    pub load_ms: f64,
}

impl EvalReport {
    /// The figures of this run of `cascade` over the folder `data` on `threads` threads.
    pub fn summary(&self, cascade: &Cascade, threads: Threads, data: &Path) -> EvalSummary {
        EvalSummary {
            models: cascade.stages().iter().map(|s| s.spec().label()).collect(),
            thresholds: cascade.rules().iter().map(|r| r.threshold.get()).collect(),
            metric: cascade.metric(),
            threads: threads.get(),
            workers: self.workers.get(),
            images_per_s: (self.records.len() + self.skipped.len()) as f64
                / self.wall_time.as_secs_f64().max(1e-9),
            data: data.display().to_string(),
            images: self.records.len(),
            labelled: self.labelled_count(),
            skipped: self.skipped.len(),
            top1: self.top1(),
            top5: self.top5(),
            exit_shares: self.exit_shares(),
            over_memory: self
                .records
                .iter()
                .filter(|r| r.decision.cut_short == Some(CutShort::Memory))
                .count(),
            unanswered: self
                .records
                .iter()
                .filter(|r| r.decision.cut_short == Some(CutShort::Unanswered))
                .count(),
            latency_ms: self.latency(),
            decode_ms_mean: self.decode_time.as_secs_f64() * 1e3 / self.records.len().max(1) as f64,
            loads: self
                .loads()
                .into_iter()
                .map(|(stage, t)| Load {
                    stage,
                    load_ms: t.as_secs_f64() * 1e3,
                })
                .collect(),
        }
    }
}

impl EvalSummary {
    /// The figures for people, one line each.
    pub fn text(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let mut out = format!("models     {}\n", self.models.join(" -> "));
        if !self.thresholds.is_empty() {
            let t: Vec<String> = self.thresholds.iter().map(f32::to_string).collect();
            out += &format!("exit rule  {} >= {}\n", self.metric, t.join(", "));
        }
        out += &format!(
            "images     {} ({} labelled, {} skipped), {} worker(s), {} thread(s)\n",
            self.images, self.labelled, self.skipped, self.workers, self.threads
        );
        out += &format!(
            "top-1      {}\ntop-5      {}\n",
            pct(self.top1),
            pct(self.top5)
        );
        if self.exit_shares.len() > 1 {
            let s: Vec<String> = self
                .exit_shares
                .iter()
                .enumerate()
                .map(|(i, v)| format!("stage {i}: {:.1}%", 100.0 * v))
                .collect();
            out += &format!("exits      {}\n", s.join(", "));
        }
        if self.over_memory > 0 {
            out += &format!(
                "memory     {} image(s) answered early: the next stage does not fit the memory budget\n",
                self.over_memory
            );
        }
        if self.unanswered > 0 {
            out += &format!(
                "remote     {} image(s) answered by the stage before a server that did not answer\n",
                self.unanswered
            );
        }
        let l = &self.latency_ms;
        out += &format!(
            "latency    mean {:.2} ms, median {:.2} ms, p95 {:.2} ms per image (preprocess + inference)\n",
            l.mean_ms, l.p50_ms, l.p95_ms
        );
        out += &format!(
            "throughput {:.1} images/s (decoding included)\n",
            self.images_per_s
        );
        for load in &self.loads {
            out += &format!(
                "load       stage {} loaded during the run in {:.0} ms (not in latency)\n",
                load.stage, load.load_ms
            );
        }
        out
    }
}

/// Runs every image of `dataset` through `cascade`, `workers` images at a time (each worker
/// decodes and classifies its own image; records stay in the folder's order).
/// `progress(done, total)` is called after each image. Undecodable images are skipped with
/// a warning; model errors stop the run.
pub fn evaluate(
    cascade: &mut Cascade,
    dataset: &Dataset,
    workers: Workers,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    let mut report = EvalReport {
        records: Vec::with_capacity(dataset.len()),
        skipped: Vec::new(),
        stage_count: cascade.stages().len(),
        decode_time: Duration::ZERO,
        wall_time: Duration::ZERO,
        workers,
    };
    let size = cascade.decode_size();
    let started = Instant::now();
    run_in_order(
        cascade,
        workers,
        dataset.samples.iter(),
        |cascade, sample| {
            // The image is dropped here, on the worker: only the decision travels back.
            let item = Dataset::decode(sample, size);
            let decided = match &item.image {
                Ok(image) => Ok(cascade.classify(image)?),
                Err(e) => {
                    log::warn!("skipping {e}");
                    Err(e.to_string())
                }
            };
            Ok((sample, item.decode_time, decided))
        },
        |i, (sample, decode_time, decided)| {
            match decided {
                Ok(decision) => {
                    report.decode_time += decode_time;
                    report.records.push(EvalRecord {
                        path: sample.path.clone(),
                        label: sample.label,
                        decision,
                    });
                }
                Err(reason) => report.skipped.push((sample.path.clone(), reason)),
            }
            progress(i + 1, dataset.len());
            Ok(())
        },
    )?;
    report.wall_time = started.elapsed();
    Ok(report)
}
