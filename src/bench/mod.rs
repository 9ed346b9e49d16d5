//! Benchmarking: the cascade against each of its models, measured in one run on the same
//! decoded images, and the report that says where the cascade stands.
//!
//! - [`run`] measures each configuration ([`Figures`]: accuracy, latency, energy, exits,
//!   load times) and the process's [`Memory`] on the way;
//! - [`Axis`] and [`Comparison`]: the report's arithmetic (curve, Pareto front, saving
//!   against the large model), on one cost axis at a time;
//! - [`Report::markdown`] and [`Report::write_files`]: Markdown, JSON, CSV and SVG.

mod compare;
mod export;
mod inference;
mod measure;
mod memory;
mod plot;
mod remote;
pub use plot::AccuracyVsCost;
pub use remote::{time_remote, RemoteTiming, RoundTrip};
mod throughput;

use std::time::Duration;

use serde::Serialize;

use crate::energy::detect_system;
use crate::energy::Board;
use crate::error::{Error, Result};
use crate::runtime::CascadeBuilder;
use crate::runtime::{Threads, Workers};
use crate::tune::DataSpec;
use crate::tune::{cpu_model, now_rfc3339, sha256_of};

pub use compare::{Axis, Comparison, Cost, Point};
pub use inference::{time_inference, InferenceTiming, MAX_RUNS};
pub use measure::{BenchResult, CurveRow, Figures, Input};
pub use memory::Memory;
pub use throughput::ThroughputRow;

/// The tract version this build links (pinned in Cargo.toml; checked by a test).
pub const TRACT_VERSION: &str = "0.23.9";

/// How long the idle baseline is measured before the runs, when an energy meter is
/// present: long enough that a sampling meter (20 Hz for the Pi 5's PMIC) averages over
/// dozens of readings.
pub const DEFAULT_IDLE_SPAN: Duration = Duration::from_secs(2);

/// What to benchmark, and on what.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// The cascade (at least two stages, one shared threshold); each of its models is
    /// also measured alone.
    pub cascade: CascadeBuilder,
    pub data: DataSpec,
    /// Board power model, for energy when the machine has no meter.
    pub board: Option<Board>,
    /// The thread count the models run with (recorded, and the board model's busy cores).
    pub threads: Threads,
    /// See [`DEFAULT_IDLE_SPAN`].
    pub idle_span: Duration,
    /// Also measure images per second at 1..=N workers and in latency mode (`None`: not).
    pub workers: Option<Workers>,
}

impl BenchPlan {
    pub fn new(cascade: CascadeBuilder, data: DataSpec) -> BenchPlan {
        BenchPlan {
            cascade,
            data,
            board: None,
            threads: Threads::ONE,
            idle_span: DEFAULT_IDLE_SPAN,
            workers: None,
        }
    }
}

/// What a benchmark ran on, so that a figure can be traced to its machine and models.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Context {
    pub date: String,
    pub board: Option<String>,
    pub cpu: String,
    pub arch: String,
    pub threads: usize,
    pub tract_version: String,
    pub tool_version: String,
    pub data: String,
    pub images: usize,
    pub models: Vec<ModelFile>,
}

/// A model file and its hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
}

/// A whole benchmark: what it ran on, what it measured, and the comparison on each axis.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub context: Context,
    pub result: BenchResult,
    pub comparison_latency: Option<Comparison>,
    pub comparison_energy: Option<Comparison>,
    /// Images per second per configuration and mode (empty unless asked for).
    pub throughput: Vec<ThroughputRow>,
    #[serde(skip)]
    pub latency: Option<Axis>,
    #[serde(skip)]
    pub energy: Option<Axis>,
}

/// Where a benchmark is: `done` of `total` classifications over every configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

/// Runs the whole benchmark: decodes the images once, measures each model alone and the
/// cascade on them, and compares. `progress` hears every classification.
pub fn run(plan: &BenchPlan, mut progress: impl FnMut(Progress)) -> Result<Report> {
    let stages = &plan.cascade.stages;
    if stages.len() < 2 {
        return Err(Error::InvalidArgument(
            "bench compares a cascade with its models: give --profile or at least two --stage"
                .into(),
        ));
    }
    let first = plan.cascade.alone(0)?;
    let dataset = plan.data.open(first.labels())?;
    drop(first);
    let inputs: Vec<Input> = dataset
        .decoded(plan.cascade.decode_size())
        .filter_map(|d| {
            d.image.ok().map(|image| Input {
                image,
                label: d.sample.label,
            })
        })
        .collect();
    log::info!(
        "measuring {} models alone and the cascade on {} images",
        stages.len(),
        inputs.len()
    );
    let meter = detect_system(plan.board.as_ref(), plan.threads.get());
    if meter.is_none() {
        log::warn!(
            "no energy figures: this machine has no readable energy meter (powercap, hwmon, \
             the Pi 5's PMIC) and no board power model (--board NAME gives estimates; \
             `cascade info` shows what is detected)"
        );
    }
    let result = measure::measure(
        &plan.cascade,
        &inputs,
        meter,
        plan.idle_span,
        |done, total| progress(Progress { done, total }),
    )?;
    let throughput = match plan.workers {
        Some(workers) => throughput::measure(
            &plan.cascade,
            &inputs,
            plan.threads,
            workers,
            |done, total| progress(Progress { done, total }),
        )?,
        None => Vec::new(),
    };
    let models = stages
        .iter()
        .map(|s| {
            Ok(ModelFile {
                path: s.label(),
                sha256: sha256_of(s)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let context = Context {
        date: now_rfc3339(),
        board: plan.board.as_ref().map(|b| b.name.clone()),
        cpu: cpu_model(),
        arch: std::env::consts::ARCH.to_string(),
        threads: plan.threads.get(),
        tract_version: TRACT_VERSION.to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        data: plan.data.dir.display().to_string(),
        images: inputs.len(),
        models,
    };
    let latency = Axis::of(&result, Cost::Latency);
    let energy = Axis::of(&result, Cost::Energy);
    Ok(Report {
        context,
        comparison_latency: latency.as_ref().and_then(|a| a.comparison.clone()),
        comparison_energy: energy.as_ref().and_then(|a| a.comparison.clone()),
        throughput,
        result,
        latency,
        energy,
    })
}
