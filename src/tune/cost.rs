//! What one stage costs on this device: latency over warm runs until the median settles,
//! and energy per inference from the best meter present (total and above idle).

use std::time::{Duration, Instant};

use crate::energy::{idle_power, EnergyMeter, EnergyPerRun};
use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::runtime::Stage;
use crate::tune::Latency;

/// How long to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostOptions {
    /// Runs before the median is checked for stability.
    pub min_runs: usize,
    /// Upper bound on runs, however noisy the machine.
    pub max_runs: usize,
    /// The median is stable when one more batch of runs moves it less than this share.
    pub tolerance: f64,
    /// Runs not measured first (caches, lazy allocations).
    pub warmup: usize,
    /// Inferences per energy measurement (a longer span averages meter noise).
    pub energy_runs: usize,
    /// How long the idle baseline is measured.
    pub idle_span: Duration,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            min_runs: 30,
            max_runs: 300,
            tolerance: 0.01,
            warmup: 3,
            energy_runs: 30,
            idle_span: Duration::from_secs(1),
        }
    }
}

/// A stage's measured cost.
#[derive(Debug, Clone, PartialEq)]
pub struct StageCost {
    pub latency: Latency,
    pub energy: Option<EnergyPerRun>,
}

/// Times stage runs (preprocessing + inference) over `images`, cycling through them, in
/// batches until the median moves less than `tolerance` between batches.
pub fn measure_latency(
    stage: &mut Stage,
    images: &[RgbImage],
    opts: &CostOptions,
) -> Result<Latency> {
    if images.is_empty() {
        return Err(Error::InvalidArgument(
            "cost measurement needs at least one image".into(),
        ));
    }
    let mut next = images.iter().cycle();
    let mut run = |stage: &mut Stage| -> Result<Duration> {
        let image = next.next().unwrap_or(&images[0]);
        let out = stage.run(image)?;
        Ok(out.preprocess + out.inference)
    };
    for _ in 0..opts.warmup {
        run(stage)?;
    }
    const BATCH: usize = 10;
    let mut samples: Vec<Duration> = Vec::with_capacity(opts.max_runs);
    let mut last_median = f64::NAN;
    while samples.len() < opts.max_runs.max(1) {
        for _ in 0..BATCH {
            samples.push(run(stage)?);
        }
        let median = Latency::of(&samples).p50_ms;
        let settled = ((median - last_median) / median).abs() < opts.tolerance;
        if samples.len() >= opts.min_runs && settled {
            break;
        }
        last_median = median;
    }
    Ok(Latency::of(&samples))
}

/// Energy per inference of `stage`, with an idle baseline measured by the same meter just
/// before.
pub fn measure_energy(
    stage: &mut Stage,
    images: &[RgbImage],
    meter: &mut dyn EnergyMeter,
    opts: &CostOptions,
) -> Result<EnergyPerRun> {
    if images.is_empty() {
        return Err(Error::InvalidArgument(
            "cost measurement needs at least one image".into(),
        ));
    }
    let idle_w = idle_power(meter, opts.idle_span)?;
    let runs = opts.energy_runs.max(1);
    let mut i = 0usize;
    let energy = meter.measure(&mut || {
        for _ in 0..runs {
            stage.run(&images[i % images.len()])?;
            i += 1;
        }
        Ok(())
    })?;
    EnergyPerRun::of(meter, energy, idle_w, runs)
}

/// Latency, then energy if a meter is given.
pub fn measure_stage(
    stage: &mut Stage,
    images: &[RgbImage],
    meter: Option<&mut dyn EnergyMeter>,
    opts: &CostOptions,
) -> Result<StageCost> {
    let t0 = Instant::now();
    let latency = measure_latency(stage, images, opts)?;
    let energy = match meter {
        Some(m) => Some(measure_energy(stage, images, m, opts)?),
        None => None,
    };
    log::info!(
        "measured {}: {:.2} ms median over {} runs{} in {:.1} s",
        stage.spec().path.display(),
        latency.p50_ms,
        latency.count,
        energy
            .as_ref()
            .map(|e| format!(", {:.1} mJ per inference ({})", e.total_mj, e.meter))
            .unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
    Ok(StageCost { latency, energy })
}
