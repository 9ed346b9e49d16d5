//! Throughput: images per second for each model alone and for the cascade, in latency mode
//! (one image at a time, tract's threads on it) and with 1..N workers (one image per
//! worker, one thread each), measured in one run over the same decoded images.
//!
//! The cascade is also measured pipelined ([`run_pipelined`]: one thread per stage, each on
//! one tract thread), the other way to use several cores, on the same images.
//!
//! The per-image latency of the main bench table is one image on an otherwise idle
//! machine; a camera stream or a folder cares about images per second, which workers raise
//! far more than tract's threads do (its threads split only the matrix products).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::Input;
use crate::error::Result;
use crate::runtime::{run_in_order, run_pipelined, Cascade, CascadeBuilder, Decision};
use crate::runtime::{Threads, Workers};
use crate::tune::Latency;

/// One configuration in one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// `alone: <model>` or `cascade`.
    pub config: String,
    /// Threads classifying at once: workers, or with `pipelined` one per stage.
    pub workers: usize,
    /// One thread per stage instead of whole-cascade workers.
    #[serde(default)]
    pub pipelined: bool,
    /// tract threads (process-wide): the latency mode's count, or 1 with workers.
    pub threads: usize,
    /// Images per second over the whole pass (preprocessing, inference and decision;
    /// decoding is done before, once).
    pub images_per_s: f64,
    /// Each image's preprocessing and inference as its worker saw it.
    pub latency: Latency,
    pub top1: Option<f64>,
    pub exit_shares: Vec<f64>,
}

/// Measures every configuration (each stage alone, then the cascade, every stage preloaded
/// so no load is timed) in latency mode with `latency_threads` (skipped when that is one
/// thread: it is then the one-worker row) and at 1..=`max_workers` workers. Leaves tract
/// on `latency_threads`.
pub fn measure(
    builder: &CascadeBuilder,
    inputs: &[Input],
    latency_threads: Threads,
    max_workers: Workers,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<ThroughputRow>> {
    let mut modes: Vec<(Workers, Threads)> = Vec::new();
    if latency_threads.get() > 1 {
        modes.push((Workers::ONE, latency_threads));
    }
    for w in 1..=max_workers.get() {
        modes.push((Workers::new(w)?, Threads::ONE));
    }
    let configs = builder.stages.len() + 1;
    // Every configuration in every mode, and the cascade pipelined.
    let total = configs * modes.len() + 1;
    let mut rows = Vec::with_capacity(total);
    for c in 0..configs {
        let (name, mut cascade) = match builder.stages.get(c) {
            Some(spec) => (format!("alone: {spec}"), builder.alone(c)?),
            None => (
                "cascade".to_string(),
                builder.clone().preload(true).build()?,
            ),
        };
        for &(workers, threads) in &modes {
            threads.apply();
            rows.push(pass(&name, &mut cascade, inputs, workers, threads)?);
            progress(rows.len(), total);
        }
        if c == builder.stages.len() {
            Threads::ONE.apply();
            rows.push(pass_pipelined(&name, &cascade, inputs)?);
            progress(rows.len(), total);
        }
    }
    latency_threads.apply();
    Ok(rows)
}

fn pass(
    name: &str,
    cascade: &mut Cascade,
    inputs: &[Input],
    workers: Workers,
    threads: Threads,
) -> Result<ThroughputRow> {
    let stages = cascade.stages().len();
    let mut tally = Tally::new(stages, inputs.len());
    let start = Instant::now();
    run_in_order(
        cascade,
        workers,
        inputs.iter(),
        |c, input| Ok((c.classify(&input.image)?, input.label)),
        |_, (decision, label)| {
            tally.add(&decision, label);
            Ok(())
        },
    )?;
    Ok(tally.row(
        name,
        workers.get(),
        false,
        threads,
        start.elapsed(),
        inputs.len(),
    ))
}

/// The cascade with one thread per stage, one tract thread each.
fn pass_pipelined(name: &str, cascade: &Cascade, inputs: &[Input]) -> Result<ThroughputRow> {
    let stages = cascade.stages().len();
    let mut tally = Tally::new(stages, inputs.len());
    let start = Instant::now();
    run_pipelined(
        cascade,
        inputs.iter(),
        |input| &input.image,
        |input, decision| {
            tally.add(&decision, input.label);
            Ok(())
        },
    )?;
    Ok(tally.row(
        name,
        stages,
        true,
        Threads::ONE,
        start.elapsed(),
        inputs.len(),
    ))
}

/// What one pass counted.
struct Tally {
    times: Vec<Duration>,
    exits: Vec<usize>,
    labelled: usize,
    right: usize,
}

impl Tally {
    fn new(stages: usize, inputs: usize) -> Tally {
        Tally {
            times: Vec::with_capacity(inputs),
            exits: vec![0; stages],
            labelled: 0,
            right: 0,
        }
    }

    fn add(&mut self, decision: &Decision, label: Option<usize>) {
        self.times.push(decision.compute_time());
        let last = self.exits.len().saturating_sub(1);
        if let Some(n) = self.exits.get_mut(decision.exit_stage.min(last)) {
            *n += 1;
        }
        if let Some(label) = label {
            self.labelled += 1;
            self.right += usize::from(decision.class == label);
        }
    }

    fn row(
        self,
        name: &str,
        workers: usize,
        pipelined: bool,
        threads: Threads,
        wall: Duration,
        count: usize,
    ) -> ThroughputRow {
        let wall = wall.as_secs_f64().max(1e-9);
        let n = count.max(1) as f64;
        ThroughputRow {
            config: name.to_string(),
            workers,
            pipelined,
            threads: threads.get(),
            images_per_s: count as f64 / wall,
            latency: Latency::of(&self.times),
            top1: (self.labelled > 0).then(|| self.right as f64 / self.labelled as f64),
            exit_shares: self.exits.iter().map(|&e| e as f64 / n).collect(),
        }
    }
}
