//! One model's inference, timed on a fixed input: the smallest measurement there is, and the
//! one whose instruction count under qemu is one model's work per inference (the ARM work
//! record runs it with two run counts and divides the difference).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::runtime::{LoadOptions, Model, ModelSpec, Preprocessor};
use crate::tune::Latency;

/// Most runs one timing may ask for: enough for any statistic, small enough to finish.
pub const MAX_RUNS: usize = 100_000;

/// What [`time_inference`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct InferenceTiming {
    pub model: String,
    /// The input tensor's shape.
    pub input: [usize; 4],
    pub load_ms: f64,
    /// f32 multiply-adds per inference, by tract's cost model.
    pub multiply_adds: Option<u64>,
    /// Inference only: the input is preprocessed once, before the runs.
    pub latency: Latency,
}

/// Loads `spec`, preprocesses `image` once, then runs the model `runs` times on it (after
/// one untimed warm-up run when `warm_up`).
pub fn time_inference(
    spec: &ModelSpec,
    options: LoadOptions,
    image: &RgbImage,
    runs: usize,
    warm_up: bool,
) -> Result<InferenceTiming> {
    if !(1..=MAX_RUNS).contains(&runs) {
        return Err(Error::InvalidArgument(format!(
            "runs must be in 1..={MAX_RUNS}, got {runs}"
        )));
    }
    let mut model = Model::load(spec, options)?;
    let mut pre = Preprocessor::new(model.input().clone());
    let tensor = pre.run(image)?;
    if warm_up {
        model.infer(tensor)?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        model.infer(tensor)?;
        times.push(t0.elapsed());
    }
    Ok(InferenceTiming {
        model: model.name().to_string(),
        input: model.input().shape(),
        load_ms: model.load_time().as_secs_f64() * 1e3,
        multiply_adds: model.multiply_adds(),
        latency: Latency::of(&times),
    })
}
