//! Measuring, in one run, each model alone and the cascade on the same decoded images:
//! accuracy, latency distribution, energy, throughput, exits, load times and memory.
//!
//! The cascade is measured for real at its threshold. The threshold curve for the plot
//! is derived from the per-image records of the models-alone runs (each image's measured
//! cost and answer at every stage), which is exact for accuracy and deferral and uses the
//! measured per-image costs for latency.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bench::Memory;
use crate::energy::{EnergyMeter, EnergyPerRun};
use crate::error::Result;
use crate::input::RgbImage;
use crate::runtime::{Cascade, CascadeBuilder};
use crate::runtime::{Metric, Threshold};
use crate::tune::curve::{self, Observation, Record, Reference};
use crate::tune::Latency;

/// One image ready to classify.
pub struct Input {
    pub image: RgbImage,
    pub label: Option<usize>,
}

/// Figures of one configuration (a model alone or the cascade).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub name: String,
    pub images: usize,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
    /// Preprocessing + inference per image, model loads excluded.
    pub latency: Latency,
    /// Images per second over the run's compute time.
    pub throughput: f64,
    /// Energy per image, where a meter or board model exists.
    pub energy: Option<EnergyPerRun>,
    /// Share of images answered by each stage.
    pub exit_shares: Vec<f64>,
    /// Load time of each stage that was loaded (milliseconds), in stage order.
    pub load_ms: Vec<f64>,
    /// Share of the per-image time spent waiting on servers (served stages' round trips,
    /// answered or not); `None` when no stage is served.
    pub remote_share: Option<f64>,
}

/// Per-image record of one configuration, kept to derive the threshold curve.
struct Run {
    figures: Figures,
    /// (class, confidence, cost in ms) of the exit stage for each image.
    per_image: Vec<(usize, f32, f64)>,
}

/// Runs `cascade` over all inputs. With a meter, the energy of the whole loop is divided
/// by the number of images; `idle_w` is the baseline measured before.
fn run_once(
    name: &str,
    cascade: &mut Cascade,
    inputs: &[Input],
    meter: Option<&mut (dyn EnergyMeter + '_)>,
    idle_w: f64,
    mut progress: impl FnMut(),
) -> Result<Run> {
    let n_stages = cascade.stages().len();
    let mut times = Vec::with_capacity(inputs.len());
    let mut per_image = Vec::with_capacity(inputs.len());
    let (mut top1, mut top5, mut labelled) = (0usize, 0usize, 0usize);
    let mut exits = vec![0usize; n_stages];
    let mut loads = vec![None; n_stages];
    for (i, stage) in cascade.stages().iter().enumerate() {
        loads[i] = stage.load_time().map(|d| d.as_secs_f64() * 1e3);
    }
    let served: Vec<bool> = cascade.stages().iter().map(|s| s.is_remote()).collect();
    let mut waited = Duration::ZERO;
    let mut body = || -> Result<Duration> {
        let before = waited;
        for input in inputs {
            let d = cascade.classify(&input.image)?;
            waited += d.unanswered;
            for s in &d.stages {
                if served[s.stage] {
                    waited += s.inference;
                }
            }
            times.push(d.compute_time());
            per_image.push((
                d.class,
                d.stages[0].confidence,
                d.compute_time().as_secs_f64() * 1e3,
            ));
            exits[d.exit_stage] += 1;
            for s in d.stages.iter() {
                if let Some(l) = s.load {
                    loads[s.stage] = Some(l.as_secs_f64() * 1e3);
                }
            }
            if let Some(label) = input.label {
                labelled += 1;
                top1 += usize::from(d.class == label);
                top5 += usize::from(d.top.iter().any(|r| r.class == label));
            }
            progress();
        }
        Ok(waited - before)
    };
    let energy = match meter {
        Some(m) => {
            // The board waits on a server at idle power (a power model charges it so).
            let e = m.measure_waiting(&mut body)?;
            Some(EnergyPerRun::of(m, e, idle_w, inputs.len().max(1))?)
        }
        None => {
            body()?;
            None
        }
    };
    let total: Duration = times.iter().sum();
    let share = |k: usize| {
        if labelled > 0 {
            Some(k as f64 / labelled as f64)
        } else {
            None
        }
    };
    let n = inputs.len().max(1) as f64;
    Ok(Run {
        figures: Figures {
            name: name.to_string(),
            images: inputs.len(),
            top1: share(top1),
            top5: share(top5),
            latency: Latency::of(&times),
            throughput: if total > Duration::ZERO {
                inputs.len() as f64 / total.as_secs_f64()
            } else {
                0.0
            },
            energy,
            exit_shares: exits.iter().map(|&e| e as f64 / n).collect(),
            load_ms: loads.into_iter().flatten().collect(),
            remote_share: (served.iter().any(|&s| s) && total > Duration::ZERO)
                .then(|| waited.as_secs_f64() / total.as_secs_f64()),
        },
        per_image,
    })
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Each model alone, in stage order, then the cascade.
    pub configs: Vec<Figures>,
    /// The cascade's threshold at each exit (the curve sweeps the rest).
    pub thresholds: Vec<Threshold>,
    pub metric: Metric,
    /// Memory before any model is loaded (the decoded images are already resident), with
    /// only the first stage resident, then with every stage loaded.
    pub memory_before_models: Option<Memory>,
    pub memory_first_stage_only: Option<Memory>,
    pub memory_all_stages: Option<Memory>,
    /// The cascade's threshold curve derived from the models-alone records:
    /// (thresholds, accuracy, mean latency ms, mean energy mJ where measured).
    pub curve: Vec<CurveRow>,
    pub reference: Reference,
    pub idle_w: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CurveRow {
    /// One per exit.
    pub thresholds: Vec<f32>,
    pub accuracy: f64,
    pub deferral: f64,
    pub latency_ms: f64,
    pub energy_mj: Option<f64>,
}

/// Measures the plan on `inputs`. `progress(done, total)` counts classified images over
/// all configurations.
pub fn measure(
    plan: &CascadeBuilder,
    inputs: &[Input],
    mut meter: Option<Box<dyn EnergyMeter>>,
    idle_span: Duration,
    mut progress: impl FnMut(usize, usize),
) -> Result<BenchResult> {
    let n = plan.stages.len();
    let total = inputs.len() * (n + 1);
    let mut done = 0usize;
    let idle_w = match meter.as_deref_mut() {
        Some(m) => Some(crate::energy::idle_power(m, idle_span)?),
        None => None,
    };

    let memory_before_models = Memory::now();
    // The cascade first, on a fresh process state, so memory before and after the later
    // stages load is the models' and not left over from the single-model runs.
    let mut cascade = plan
        .clone()
        .preload(false)
        .check(false)
        .release_after_idle(None)
        .build()?;
    let memory_first_stage_only = Memory::now();
    // The plan's thresholds as the cascade applies them: one per exit, a shared one repeated.
    let thresholds: Vec<Threshold> = cascade.rules().iter().map(|r| r.threshold).collect();
    for i in 1..n {
        cascade.load_stage(i)?;
    }
    let memory_all_stages = Memory::now();
    for i in 1..n {
        cascade.release(i)?;
    }
    let mut tick = || {
        done += 1;
        progress(done, total);
    };
    let start = Instant::now();
    let cascade_run = run_once(
        "cascade",
        &mut cascade,
        inputs,
        meter.as_deref_mut(),
        idle_w.unwrap_or(0.0),
        &mut tick,
    )?;
    log::info!("cascade run took {:.1} s", start.elapsed().as_secs_f64());
    drop(cascade);

    let mut alone = Vec::with_capacity(n);
    for (i, spec) in plan.stages.iter().enumerate() {
        let mut single = plan.alone(i)?;
        // Confidences under the plan's metric, so the records can be replayed as the cascade.
        single.set_metric(plan.metric);
        let name = single
            .stages()
            .first()
            .and_then(|s| s.model())
            .map_or_else(|| spec.label(), |m| m.name().to_string());
        let mut run = run_once(
            &name,
            &mut single,
            inputs,
            meter.as_deref_mut(),
            idle_w.unwrap_or(0.0),
            &mut tick,
        )?;
        run.figures.exit_shares = vec![1.0];
        alone.push(run);
    }

    // Replay the per-image records to get the curve.
    let records: Vec<Record> = (0..inputs.len())
        .map(|i| Record {
            stages: alone
                .iter()
                .map(|r| {
                    let (class, confidence, cost_ms) = r.per_image[i];
                    Observation {
                        class,
                        confidence,
                        cost_ms,
                    }
                })
                .collect(),
            label: inputs[i].label,
        })
        .collect();
    let reference = if inputs.iter().any(|i| i.label.is_some()) {
        Reference::Labels
    } else {
        Reference::LastStageAgreement
    };
    let latency_costs: Vec<f64> = alone.iter().map(|r| r.figures.latency.mean_ms).collect();
    let energy_costs: Option<Vec<f64>> = alone
        .iter()
        .map(|r| r.figures.energy.as_ref().map(|e| e.total_mj))
        .collect();
    let curve = curve::curve(&records, reference, &latency_costs)?
        .into_iter()
        .map(|p| CurveRow {
            latency_ms: curve::measured_mean_cost(&records, &p.thresholds),
            thresholds: p.thresholds,
            accuracy: p.accuracy,
            deferral: p.deferral,
            energy_mj: energy_costs
                .as_ref()
                .map(|c| p.reach.iter().zip(c).map(|(r, c)| r * c).sum()),
        })
        .collect();

    let mut configs: Vec<Figures> = alone.into_iter().map(|r| r.figures).collect();
    configs.push(cascade_run.figures);
    Ok(BenchResult {
        configs,
        thresholds,
        metric: plan.metric,
        memory_before_models,
        memory_first_stage_only,
        memory_all_stages,
        curve,
        reference,
        idle_w,
    })
}
