//! What one stage costs on this device: latency over warm runs until the median settles,
//! and energy per inference from the best meter present (total and above idle); and which
//! way of compiling and running a stage is fastest here ([`measure_choices`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::energy::{idle_power, EnergyMeter, EnergyPerRun};
use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::remote::Access;
use crate::runtime::{LoadOptions, ModelSpec, Stage, Threads};
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
    Ok(Latency::of(&sample_latency(stage, images, opts)?))
}

/// The durations [`measure_latency`] summarizes.
fn sample_latency(
    stage: &mut Stage,
    images: &[RgbImage],
    opts: &CostOptions,
) -> Result<Vec<Duration>> {
    if images.is_empty() {
        return Err(Error::InvalidArgument(
            "cost measurement needs at least one image".into(),
        ));
    }
    let mut next = images.iter().cycle();
    let mut run = |stage: &mut Stage| -> Result<Duration> {
        let image = next.next().unwrap_or(&images[0]);
        answered(stage, image).map(|(took, _)| took)
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
    Ok(samples)
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
    // A served stage's board mostly waits for the answer: a power model charges that at
    // idle power (a meter measures it as it is).
    let remote = stage.is_remote();
    let energy = meter.measure_waiting(&mut || {
        let mut waited = Duration::ZERO;
        for _ in 0..runs {
            let (_, round_trip) = answered(stage, &images[i % images.len()])?;
            if remote {
                waited += round_trip;
            }
            i += 1;
        }
        Ok(waited)
    })?;
    EnergyPerRun::of(meter, energy, idle_w, runs)
}

/// Runs `stage` on `image`: the time it took (preprocessing and inference) and the
/// inference's share. A served stage that does not answer is an error here: a failure's
/// time is not what the stage costs, and a cost measured around failures would mislead.
fn answered(stage: &mut Stage, image: &RgbImage) -> Result<(Duration, Duration)> {
    let out = stage.run(image)?;
    let (took, inference) = (out.preprocess + out.inference, out.inference);
    match out.answer {
        Ok(_) => Ok((took, inference)),
        Err(why) => Err(Error::remote(
            stage.spec().label(),
            format!("did not answer while its cost was measured: {why}"),
        )),
    }
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
        stage.spec(),
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

/// One way to compile and run a stage, with what it measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// tract's `conv_nhwc` rewrite on or off.
    pub conv_nhwc: bool,
    /// Threads for tract's kernels.
    pub threads: usize,
    /// The median over the interleaved rounds of each round's median latency, ms.
    pub median_ms: f64,
}

impl Variant {
    /// The order of simplicity: tract's plain graph before its `conv_nhwc` rewrite, then
    /// fewer threads before more.
    fn simplicity(&self) -> (bool, usize) {
        (self.conv_nhwc, self.threads)
    }

    /// `plain, 1 thread` or `conv_nhwc, 2 threads`, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} thread{}",
            if self.conv_nhwc { "conv_nhwc" } else { "plain" },
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }
}

/// A variant must be faster than a simpler one by more than this share to be chosen over
/// it: about what one variant's rounds differ by on a shared machine, so a smaller margin
/// is as likely noise as speed.
pub const TIE_TOLERANCE: f64 = 0.03;

/// Interleaved measuring rounds per variant: each variant runs once per round, in turn, and
/// keeps its median round, so a machine whose load drifts over minutes slows every variant
/// alike instead of picking the winner by when each was measured.
pub const VARIANT_ROUNDS: usize = 3;

/// The variant to keep: the simplest of those whose median is within `tolerance` (a
/// share, [`TIE_TOLERANCE`]) of the fastest. A near-tie goes to the simpler variant, tract's
/// plain graph over its rewrite and fewer threads over more (see [`Variant`]'s order):
/// a rewrite that does not pay is one more thing that can differ from the model as tested,
/// and threads that do not pay take cores from other work (other workers, other
/// processes). `None` when nothing was measured.
pub fn choose_variant(measured: &[Variant], tolerance: f64) -> Option<Variant> {
    let fastest = measured
        .iter()
        .map(|v| v.median_ms)
        .min_by(f64::total_cmp)?;
    measured
        .iter()
        .filter(|v| v.median_ms <= fastest * (1.0 + tolerance))
        .min_by_key(|v| v.simplicity())
        .copied()
}

/// Which choices [`measure_choices`] measures; the others come from the options it is
/// given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choices {
    /// tract's `conv_nhwc` rewrite on against off (`false`: the user chose).
    pub conv_nhwc: bool,
    /// One thread against the count in effect, when that is more than one.
    pub threads: bool,
}

impl Default for Choices {
    fn default() -> Self {
        Choices {
            conv_nhwc: true,
            threads: true,
        }
    }
}

/// A stage measured in each variant, and the winner.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The winner's options. `threads` is set only when thread counts were measured.
    pub options: LoadOptions,
    /// The winner's cost: latency over all its rounds' runs, and energy measured in it.
    pub cost: StageCost,
    /// The winner's load time, ms.
    pub load_ms: f64,
    /// Every variant measured, in the order measured (one when there was nothing to choose).
    pub measured: Vec<Variant>,
}

/// Measures `spec` in every variant `choices` asks for on this machine (the `conv_nhwc`
/// rewrite on and off; one thread and `threads`), with [`measure_latency`]'s runs split
/// over [`VARIANT_ROUNDS`] interleaved rounds, and keeps [`choose_variant`]'s pick. Each
/// rewrite is a separate load of the model (two at most are resident, never a whole
/// cascade beside them); a thread count is applied to the calling thread for its rounds
/// ([`Threads::scope`]), the same override a [`crate::runtime::ThreadCap`] uses when the
/// choice is applied. Energy, if a meter is given, is measured for the winner only. With
/// nothing to choose, this is one [`measure_stage`]. What is not measured is as `spec`'s
/// options say (the defaults without any); a served model is reached as `access` says.
pub fn measure_choices(
    spec: &ModelSpec,
    access: &Access,
    threads: Threads,
    choices: Choices,
    images: &[RgbImage],
    meter: Option<&mut dyn EnergyMeter>,
    opts: &CostOptions,
) -> Result<Chosen> {
    let t0 = Instant::now();
    let options = spec.options.unwrap_or_default();
    // A served model is not compiled or threaded here: its round trip is measured as it is.
    let choices = if spec.endpoint().is_some() {
        Choices {
            conv_nhwc: false,
            threads: false,
        }
    } else {
        choices
    };
    let rewrites = if choices.conv_nhwc {
        vec![false, true]
    } else {
        vec![options.conv_nhwc]
    };
    let counts = if choices.threads && threads.get() > 1 {
        vec![Threads::ONE, threads]
    } else {
        vec![threads]
    };
    let mut stages = Vec::with_capacity(rewrites.len());
    for &conv_nhwc in &rewrites {
        let spec = ModelSpec {
            options: None,
            ..spec.clone()
        };
        let mut stage = Stage::new(
            spec,
            LoadOptions {
                conv_nhwc,
                threads: None,
            },
            access,
        );
        stage.load()?;
        stages.push(stage);
    }
    let variants: Vec<(usize, Threads)> = (0..rewrites.len())
        .flat_map(|r| counts.iter().map(move |&t| (r, t)))
        .collect();
    // With several variants, each round takes its share of the runs one measurement would,
    // so choosing costs about what measuring each variant once did.
    let rounds = if variants.len() > 1 {
        VARIANT_ROUNDS
    } else {
        1
    };
    let per_round = CostOptions {
        min_runs: opts.min_runs.div_ceil(rounds),
        max_runs: opts
            .max_runs
            .div_ceil(rounds)
            .max(opts.min_runs.div_ceil(rounds)),
        ..*opts
    };
    let in_effect = Threads::in_effect();
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![Vec::with_capacity(rounds); variants.len()];
    for _ in 0..rounds {
        for (v, &(r, t)) in variants.iter().enumerate() {
            let stage = &mut stages[r];
            let round = if t.get() == in_effect {
                sample_latency(stage, images, &per_round)?
            } else {
                t.scope(|| sample_latency(stage, images, &per_round))?
            };
            samples[v].push(round);
        }
    }
    let measured: Vec<Variant> = variants
        .iter()
        .zip(&samples)
        .map(|(&(r, t), rounds)| {
            let mut medians: Vec<f64> = rounds.iter().map(|s| Latency::of(s).p50_ms).collect();
            medians.sort_by(f64::total_cmp);
            Variant {
                conv_nhwc: rewrites[r],
                threads: t.get(),
                median_ms: medians[medians.len() / 2],
            }
        })
        .collect();
    let winner = choose_variant(&measured, TIE_TOLERANCE)
        .ok_or_else(|| Error::Internal("no variant was measured".into()))?;
    let w = measured
        .iter()
        .position(|v| *v == winner)
        .ok_or_else(|| Error::Internal("the chosen variant was not measured".into()))?;
    let (r, t) = variants[w];
    let latency = Latency::of(&samples[w].concat());
    let stage = &mut stages[r];
    let energy = match meter {
        Some(m) if t.get() == in_effect => Some(measure_energy(stage, images, m, opts)?),
        Some(m) => Some(t.scope(|| measure_energy(stage, images, m, opts))?),
        None => None,
    };
    let load_ms = stage.load_ms();
    let options = LoadOptions {
        conv_nhwc: winner.conv_nhwc,
        threads: (counts.len() > 1).then_some(t),
    };
    log::info!(
        "measured {}: {} chosen ({}) in {:.1} s",
        spec,
        winner.describe(),
        measured
            .iter()
            .map(|v| format!("{}: {:.2} ms", v.describe(), v.median_ms))
            .collect::<Vec<_>>()
            .join(", "),
        t0.elapsed().as_secs_f64()
    );
    Ok(Chosen {
        options,
        cost: StageCost { latency, energy },
        load_ms,
        measured,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(conv_nhwc: bool, threads: usize, median_ms: f64) -> Variant {
        Variant {
            conv_nhwc,
            threads,
            median_ms,
        }
    }

    #[test]
    fn the_faster_variant_wins_by_a_clear_margin() {
        // As on the Intel VM: the rewrite 1.3x faster.
        let measured = [v(false, 1, 19.8), v(true, 1, 15.4)];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
        // Two threads clearly faster than one, with and without the rewrite.
        let measured = [
            v(false, 1, 40.0),
            v(false, 2, 30.0),
            v(true, 1, 39.0),
            v(true, 2, 31.5),
        ];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
    }

    #[test]
    fn a_near_tie_goes_to_the_simpler_variant() {
        // As on the AMD VM: Lite2 55.4 ms with the rewrite, 54.9 without; and the other
        // way round, within 3%, the plain graph still wins.
        let measured = [v(false, 1, 55.4), v(true, 1, 54.9)];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[0]));
        let measured = [v(true, 1, 54.9), v(false, 1, 56.5)];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
        // Just beyond the tolerance, the faster wins.
        let measured = [v(false, 1, 56.6), v(true, 1, 54.9)];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
        // A second thread that buys 2% is not worth a core.
        let measured = [v(false, 2, 30.0), v(false, 1, 30.6)];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
        // Among several near the fastest, the plain graph first, then fewer threads.
        let measured = [
            v(true, 1, 30.0),
            v(false, 2, 30.5),
            v(true, 2, 29.9),
            v(false, 1, 36.0),
        ];
        assert_eq!(choose_variant(&measured, TIE_TOLERANCE), Some(measured[1]));
    }

    #[test]
    fn nothing_measured_chooses_nothing() {
        assert_eq!(choose_variant(&[], TIE_TOLERANCE), None);
        let one = [v(true, 4, 12.0)];
        assert_eq!(choose_variant(&one, TIE_TOLERANCE), Some(one[0]));
    }
}
