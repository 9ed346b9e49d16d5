//! Throughput: images per second for each model alone and for the cascade, in latency mode
//! (one image at a time, tract's threads on it) and with 1..N workers (one image per
//! worker, one thread each), measured in one run over the same decoded images.
//!
//! The per-image latency of the main bench table is one image on an otherwise idle
//! machine; a camera stream or a folder cares about images per second, which workers raise
//! far more than tract's threads do (its threads split only the matrix products).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::Input;
use crate::error::Result;
use crate::runtime::{run_in_order, Cascade, CascadeBuilder, Threads, Workers};
use crate::tune::Latency;

/// One configuration in one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// `alone: <model>` or `cascade`.
    pub config: String,
    pub workers: usize,
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
    let total = configs * modes.len();
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
    let mut times: Vec<Duration> = Vec::with_capacity(inputs.len());
    let mut exits = vec![0usize; stages];
    let (mut labelled, mut right) = (0usize, 0usize);
    let start = Instant::now();
    run_in_order(
        cascade,
        workers,
        inputs.iter(),
        |c, input| Ok((c.classify(&input.image)?, input.label)),
        |_, (decision, label)| {
            times.push(decision.compute_time());
            exits[decision.exit_stage.min(stages - 1)] += 1;
            if let Some(label) = label {
                labelled += 1;
                right += usize::from(decision.class == label);
            }
            Ok(())
        },
    )?;
    let wall = start.elapsed().as_secs_f64().max(1e-9);
    let n = inputs.len().max(1) as f64;
    Ok(ThroughputRow {
        config: name.to_string(),
        workers: workers.get(),
        threads: threads.get(),
        images_per_s: inputs.len() as f64 / wall,
        latency: Latency::of(&times),
        top1: (labelled > 0).then(|| right as f64 / labelled as f64),
        exit_shares: exits.iter().map(|&e| e as f64 / n).collect(),
    })
}
