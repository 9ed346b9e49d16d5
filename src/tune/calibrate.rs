//! The calibration pipeline, one call from a labelled folder to a [`Profile`]:
//!
//! 1. run every stage on every image (its answer, confidence and measured cost);
//! 2. measure what each stage costs on this device on a few of the same images
//!    (latency, and energy where a meter or a board power model exists), in each variant
//!    that matters here (tract's `conv_nhwc` rewrite on and off, one thread against the
//!    count in effect), keeping the fastest per stage ([`crate::tune::measure_choices`]);
//!    the profile records what won and `--profile` applies it;
//! 3. fit the threshold curve on part of the images, choose the thresholds for the target,
//!    and check them on the images held out, with bounds at a stated confidence
//!    ([`crate::tune::bounds`]); with a guarantee, the held-out images certify the choice
//!    (Learn-then-Test) instead of only checking it.

use crate::energy::Board;
use std::fmt::Write as _;

use crate::energy::{detect_system, EnergyMeter};
use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::remote::Access;
use crate::runtime::CascadeBuilder;
use crate::runtime::{LoadOptions, ModelSpec, Threads};
use crate::runtime::{Metric, Threshold};
use crate::tune::bounds::{fixed_sequence, Bounds, Confidence};
use crate::tune::curve::{self, CurvePoint, Observation, Record, Reference};
use crate::tune::tradeoff::{cheapest_reaching, most_accurate_within};
use crate::tune::{cpu_model, now_rfc3339, sha256_of, FitReport, HeldOut, Profile, ProfileStage};
use crate::tune::{measure_choices, Choices, CostOptions, StageChoice};
use crate::tune::{Budget, Target};
use crate::tune::{DataSpec, LayoutKind};

/// How many of the images each stage's cost is measured on: enough different pictures
/// that no single one sets the figure, few enough to keep them all decoded in memory.
pub const DEFAULT_COST_IMAGES: usize = 16;

/// Share of the images held out to check the chosen threshold on data it was not fitted
/// on: large enough for a held-out accuracy within a few points on a few hundred images.
pub const DEFAULT_HOLDOUT: f64 = 0.3;

/// What to calibrate, and on what.
#[derive(Debug, Clone)]
pub struct CalibrationPlan {
    /// The models, cheapest first (at least two).
    pub stages: Vec<ModelSpec>,
    /// The confidence metric the threshold applies to.
    pub metric: Metric,
    /// How stages compile and run, except what `measure` measures.
    pub options: LoadOptions,
    /// Which choices are measured per stage rather than taken from `options` and
    /// `threads`; the profile records what won.
    pub measure: Choices,
    pub data: DataSpec,
    pub target: Target,
    /// Aim lower than a budget by this share, or this many accuracy points higher.
    pub margin: f64,
    /// Share of the images held out (see [`DEFAULT_HOLDOUT`]).
    pub holdout: f64,
    /// Board power model, for energy when the machine has no meter.
    pub board: Option<Board>,
    /// The thread count the models run with (recorded, and the board model's busy cores);
    /// the most a stage may use: calibration measures one thread against it.
    pub threads: Threads,
    /// See [`DEFAULT_COST_IMAGES`].
    pub cost_images: usize,
    pub cost: CostOptions,
    /// The confidence of the reported bounds (and of the guarantee).
    pub confidence: Confidence,
    /// Choose only thresholds whose bounds on the held-out inputs meet the target.
    pub guarantee: bool,
    /// How stages on servers are reached (token, timeouts).
    pub access: Access,
}

impl CalibrationPlan {
    /// A plan with the defaults for everything but the stages, the data and the target.
    pub fn new(stages: Vec<ModelSpec>, data: DataSpec, target: Target) -> CalibrationPlan {
        CalibrationPlan {
            stages,
            metric: Metric::default(),
            options: LoadOptions::default(),
            measure: Choices::default(),
            data,
            target,
            margin: 0.0,
            holdout: DEFAULT_HOLDOUT,
            board: None,
            threads: Threads::ONE,
            cost_images: DEFAULT_COST_IMAGES,
            cost: CostOptions::default(),
            confidence: Confidence::DEFAULT,
            guarantee: false,
            access: Access::default(),
        }
    }
}

/// Where a calibration is, for progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Running every stage on every image: `done` of `total` images.
    Observing { done: usize, total: usize },
    /// Measuring the cost of stage `stage` of `stages`.
    Measuring { stage: usize, stages: usize },
}

/// One stage alone on one part of the data: what the cascade is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alone {
    /// `fit` or `held out`.
    pub part: &'static str,
    pub stage: usize,
    pub inputs: usize,
    pub accuracy: f64,
    /// Mean of the stage's measured per-image latency, ms.
    pub mean_ms: f64,
}

/// What a calibration found: the profile to save, and what to tell the user about it.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub profile: Profile,
    /// The unit of the curve's costs: `ms`, or `mJ` for an energy budget.
    pub unit: &'static str,
    /// The last stage alone on the fitted and the held-out images.
    pub last_alone: Vec<Alone>,
    /// Images that could not be decoded (left out).
    pub skipped: usize,
}

/// Runs the whole calibration (see the module docs). `progress` hears where it is.
pub fn run(plan: &CalibrationPlan, mut progress: impl FnMut(Progress)) -> Result<Calibration> {
    let mut cascade = plan
        .stages
        .iter()
        .cloned()
        .fold(CascadeBuilder::new(), CascadeBuilder::stage)
        .metric(plan.metric)
        .threshold(Threshold::new(0.0)?)
        .preload(true)
        .load_options(plan.options)
        .access(plan.access.clone())
        .build()?;
    let dataset = plan.data.open(cascade.labels())?;
    let (fit_idx, held_idx) = split(dataset.len(), plan.holdout)?;
    let reference = if dataset.layout == LayoutKind::Unlabeled {
        log::warn!(
            "{} has no labels: calibrating against agreement with the last stage",
            plan.data.dir.display()
        );
        Reference::LastStageAgreement
    } else {
        Reference::Labels
    };
    if dataset.len() < 3 {
        log::warn!(
            "calibrating on {} image(s): the threshold will fit them and little else",
            dataset.len()
        );
    }
    let energy_budget = matches!(plan.target, Target::Budget(Budget::EnergyMj(_)));
    if energy_budget && plan.board.is_none() {
        log::info!("no board power model: energy needs a meter on this machine");
    }

    // 1. Every stage on every input.
    let total = dataset.len();
    let mut records: Vec<Option<Record>> = Vec::with_capacity(total);
    let mut cost_images: Vec<RgbImage> = Vec::with_capacity(plan.cost_images);
    for (i, item) in dataset.decoded(cascade.decode_size()).enumerate() {
        match item.image {
            Ok(image) => {
                let runs = cascade.observe_all(&image)?;
                records.push(Some(Record {
                    stages: runs
                        .iter()
                        .map(|r| Observation {
                            class: r.class,
                            confidence: r.confidence,
                            cost_ms: (r.preprocess + r.inference).as_secs_f64() * 1e3,
                        })
                        .collect(),
                    label: item.sample.label,
                }));
                if cost_images.len() < plan.cost_images {
                    cost_images.push(image);
                }
            }
            Err(_) => records.push(None),
        }
        progress(Progress::Observing { done: i + 1, total });
    }
    let skipped = records.iter().filter(|r| r.is_none()).count();
    let pick =
        |idx: &[usize]| -> Vec<Record> { idx.iter().filter_map(|&i| records[i].clone()).collect() };
    let (fit, held) = (pick(&fit_idx), pick(&held_idx));
    if fit.is_empty() {
        return Err(Error::Dataset {
            path: plan.data.dir.clone(),
            reason: "no image to fit on could be decoded".into(),
        });
    }

    // 2. What each stage costs here, on a few of the same images, in each variant. The
    // observing cascade goes first: measuring loads each model again, once per rewrite.
    drop(cascade);
    let mut meter = detect_system(plan.board.as_ref(), plan.threads.get());
    let n_stages = plan.stages.len();
    let mut stages = Vec::with_capacity(n_stages);
    for (i, spec) in plan.stages.iter().enumerate() {
        progress(Progress::Measuring {
            stage: i,
            stages: n_stages,
        });
        let meter: Option<&mut dyn EnergyMeter> = match &mut meter {
            Some(m) => Some(&mut **m),
            None => None,
        };
        let chosen = measure_choices(
            &ModelSpec {
                options: Some(plan.options),
                ..spec.clone()
            },
            &plan.access,
            plan.threads,
            plan.measure,
            &cost_images,
            meter,
            &plan.cost,
        )?;
        stages.push(ProfileStage {
            model: spec.location.clone(),
            manifest: spec.manifest.clone(),
            input_size: spec.input_size,
            sha256: sha256_of(spec)?,
            load_ms: chosen.load_ms,
            latency: chosen.cost.latency,
            energy: chosen.cost.energy,
            // A served model is not compiled here: nothing was chosen for it.
            choice: spec.path().map(|_| StageChoice {
                conv_nhwc: chosen.options.conv_nhwc,
                threads: chosen.options.threads.map(Threads::get),
                measured: chosen.measured,
            }),
        });
    }
    let costs: Vec<f64> = if energy_budget {
        stages
            .iter()
            .map(|s| s.energy.as_ref().map(|e| e.total_mj))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "an energy budget needs an energy meter or a --board power model".into(),
                )
            })?
    } else {
        stages.iter().map(|s| s.latency.mean_ms).collect()
    };

    // 3. Fit, choose, check on held-out inputs (or certify on them, with a guarantee).
    let curve = curve::curve(&fit, reference, &costs)?;
    let chosen = if plan.guarantee {
        certify(&curve, &held, reference, &costs, plan)?
    } else {
        curve::choose(&curve, plan.target, plan.margin)?
    };
    let holdout = (!held.is_empty())
        .then(|| -> Result<HeldOut> {
            let tally = curve::tally(&held, reference, &chosen.thresholds);
            Ok(HeldOut {
                point: curve::point(&held, reference, &costs, &chosen.thresholds),
                measured_mean_ms: curve::measured_mean_cost(&held, &chosen.thresholds),
                bounds: Some(Bounds::of(&tally, &costs, plan.confidence)?),
            })
        })
        .transpose()?;
    let last = n_stages - 1;
    let last_alone = [("fit", &fit), ("held out", &held)]
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(part, records)| {
            let (accuracy, mean_ms) = curve::stage_alone(records, reference, last);
            Alone {
                part,
                stage: last,
                inputs: records.len(),
                accuracy,
                mean_ms,
            }
        })
        .collect();
    let profile = Profile {
        created: now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        board: plan.board.as_ref().map(|b| b.name.clone()),
        cpu: cpu_model(),
        arch: std::env::consts::ARCH.to_string(),
        threads: plan.threads.get(),
        metric: plan.metric,
        thresholds: chosen
            .thresholds
            .iter()
            .map(|&t| Threshold::new(t))
            .collect::<Result<_>>()?,
        stages,
        calibration: FitReport {
            data: plan.data.dir.display().to_string(),
            target: plan.target,
            margin: plan.margin,
            guarantee: plan.guarantee,
            reference,
            fit_inputs: fit.len(),
            holdout_inputs: held.len(),
            fit: chosen,
            holdout,
        },
        curve,
    };
    Ok(Calibration {
        profile,
        unit: plan.target.unit(),
        last_alone,
        skipped,
    })
}

impl Calibration {
    /// The calibration for people: an excerpt of the curve with the chosen point, the
    /// chosen threshold on the fitted and the held-out images, the last stage alone, and
    /// what each stage measured.
    pub fn report(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let (p, fit) = (&self.profile, &self.profile.calibration);
        curve_excerpt(&mut out, &p.curve, &fit.fit, self.unit);
        let accuracy = match fit.reference {
            Reference::Labels => "accuracy",
            Reference::LastStageAgreement => "agreement with last stage",
        };
        let unit = self.unit;
        let _ = writeln!(
            out,
            "chosen     threshold {} ({} >= it exits{}) for {}{}",
            curve::format_thresholds(&fit.fit.thresholds),
            p.metric,
            if fit.fit.thresholds.len() > 1 {
                "; one per exit"
            } else {
                ""
            },
            fit.target,
            if fit.guarantee {
                ", guaranteed on the held-out inputs"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "fit        {} inputs: {accuracy} {:.1}%, deferred {:.1}%, expected cost {:.2} {unit}",
            fit.fit_inputs,
            100.0 * fit.fit.accuracy,
            100.0 * fit.fit.deferral,
            fit.fit.expected_cost
        );
        if let Some(h) = &fit.holdout {
            let _ = writeln!(
                out,
                "held out   {} inputs: {accuracy} {:.1}%, deferred {:.1}%, expected cost {:.2} {unit}, measured mean latency {:.2} ms",
                fit.holdout_inputs,
                100.0 * h.point.accuracy,
                100.0 * h.point.deferral,
                h.point.expected_cost,
                h.measured_mean_ms
            );
            if let Some(b) = &h.bounds {
                let _ = writeln!(
                    out,
                    "bounds     at {:.0}% confidence on those {} inputs: {accuracy} >= {:.1}%, expected cost <= {:.2} {unit} (Clopper-Pearson{})",
                    100.0 * b.confidence.get(),
                    b.inputs,
                    100.0 * b.accuracy_at_least,
                    b.cost_at_most,
                    if fit.guarantee { ", Learn-then-Test" } else { "" }
                );
            }
        }
        for a in &self.last_alone {
            let _ = writeln!(
                out,
                "last alone {}: {accuracy} {:.1}%, measured mean latency {:.2} ms",
                a.part,
                100.0 * a.accuracy,
                a.mean_ms
            );
        }
        for (i, s) in p.stages.iter().enumerate() {
            let energy = s.energy.as_ref().map_or(String::new(), |e| {
                let est = if e.estimate { ", estimate" } else { "" };
                format!(
                    ", {:.1} mJ ({:.1} above idle; {}{est})",
                    e.total_mj, e.above_idle_mj, e.meter
                )
            });
            let _ = writeln!(
                out,
                "stage {i}    {}{}: {:.2} ms mean, {:.2} median, {:.2} p95 over {} runs{energy}",
                s.model,
                s.input_size
                    .map_or(String::new(), |size| format!("@{size}")),
                s.latency.mean_ms,
                s.latency.p50_ms,
                s.latency.p95_ms,
                s.latency.count
            );
            if let Some(c) = &s.choice {
                let _ = writeln!(out, "           {}", describe_choice(c));
            }
        }
        out
    }
}

/// Learn-then-Test over the fitted curve (see [`crate::tune::bounds`]): the order is fixed
/// by the fitting inputs (cheapest first for a budget, most accurate first for an accuracy
/// target), the held-out inputs test each point's bounds in turn, and of the points that
/// passed, the most accurate (budget) or cheapest (accuracy) on the held-out inputs wins.
fn certify(
    curve: &[CurvePoint],
    held: &[Record],
    reference: Reference,
    costs: &[f64],
    plan: &CalibrationPlan,
) -> Result<CurvePoint> {
    if held.is_empty() {
        return Err(Error::InvalidArgument(
            "a guarantee needs held-out inputs to test on: give --holdout above 0".into(),
        ));
    }
    let mut order: Vec<usize> = (0..curve.len()).collect();
    match plan.target {
        Target::Budget(_) => {
            order.sort_by(|&a, &b| curve[a].expected_cost.total_cmp(&curve[b].expected_cost))
        }
        Target::MinAccuracy(_) => {
            order.sort_by(|&a, &b| curve[b].accuracy.total_cmp(&curve[a].accuracy))
        }
    }
    let bounds = |i: usize| -> Result<Bounds> {
        Bounds::of(
            &curve::tally(held, reference, &curve[i].thresholds),
            costs,
            plan.confidence,
        )
    };
    let first = bounds(order[0])?;
    let passed = fixed_sequence(&order, bounds, plan.target)?;
    let on_held: Vec<CurvePoint> = passed
        .iter()
        .map(|&i| curve::point(held, reference, costs, &curve[i].thresholds))
        .collect();
    let best = match plan.target {
        Target::Budget(_) => most_accurate_within(&on_held, f64::INFINITY),
        Target::MinAccuracy(_) => cheapest_reaching(&on_held, 0.0),
    };
    match best {
        // The fitted point is what the profile reports as "fit"; the held-out figures
        // follow from its thresholds.
        Some(p) => Ok(curve
            .iter()
            .find(|c| c.thresholds == p.thresholds)
            .cloned()
            .unwrap_or_else(|| p.clone())),
        None => {
            let c = plan.confidence.get() * 100.0;
            let n = held.len();
            Err(Error::InvalidArgument(match plan.target {
                Target::Budget(b) => format!(
                    "no threshold is certain enough to keep {}: at {c:.0}% confidence on {n} held-out inputs the cheapest keeps only {:.3} {} or less (more inputs tighten the bound)",
                    plan.target, first.cost_at_most, b.unit()
                ),
                Target::MinAccuracy(_) => format!(
                    "no threshold is certain enough to reach {}: at {c:.0}% confidence on {n} held-out inputs the most accurate is only sure of {:.1}% (more inputs tighten the bound)",
                    plan.target, 100.0 * first.accuracy_at_least
                ),
            }))
        }
    }
}

/// A stage's choice and the medians of what it was chosen from, for the report:
/// `chose plain, 1 thread of: plain, 1 thread 30.12 ms <-, conv_nhwc, 1 thread 30.80 ms`.
fn describe_choice(c: &StageChoice) -> String {
    let chosen = |v: &crate::tune::Variant| {
        v.conv_nhwc == c.conv_nhwc && c.threads.is_none_or(|t| t == v.threads)
    };
    let of: Vec<String> = c
        .measured
        .iter()
        .map(|v| {
            format!(
                "{} {:.2} ms{}",
                v.describe(),
                v.median_ms,
                if chosen(v) { " <-" } else { "" }
            )
        })
        .collect();
    let threads = c.threads.map_or("threads not measured".to_string(), |t| {
        format!("at most {t} thread{}", if t == 1 { "" } else { "s" })
    });
    format!(
        "chose conv_nhwc {}, {threads}; medians of {} interleaved rounds: {}",
        if c.conv_nhwc { "on" } else { "off" },
        if c.measured.len() > 1 {
            crate::tune::VARIANT_ROUNDS
        } else {
            1
        },
        of.join(", ")
    )
}

/// A readable excerpt of the curve: about 15 evenly spaced rows plus the chosen one.
fn curve_excerpt(out: &mut String, curve: &[CurvePoint], chosen: &CurvePoint, unit: &str) {
    let cost = format!("cost ({unit})");
    let _ = writeln!(
        out,
        "{:>10}  {:>8}  {:>8}  {cost:>12}",
        "threshold", "accuracy", "deferred"
    );
    let step = (curve.len() / 15).max(1);
    for (i, p) in curve.iter().enumerate() {
        let is_chosen = p.thresholds == chosen.thresholds;
        if i % step == 0 || i + 1 == curve.len() || is_chosen {
            let _ = writeln!(
                out,
                "{:>10}  {:>7.1}%  {:>7.1}%  {:>12.2}{}",
                curve::format_thresholds(&p.thresholds),
                100.0 * p.accuracy,
                100.0 * p.deferral,
                p.expected_cost,
                if is_chosen { "  <- chosen" } else { "" }
            );
        }
    }
}

/// Splits `n` inputs into a fitting set and a held-out set holding `fraction` of them,
/// spread evenly over the (sorted) inputs so both sets see every part of the data.
pub fn split(n: usize, fraction: f64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction.is_finite() && (0.0..1.0).contains(&fraction)) {
        return Err(Error::InvalidArgument(format!(
            "--holdout must be in [0, 1), got {fraction}"
        )));
    }
    let (mut fit, mut held) = (Vec::new(), Vec::new());
    for i in 0..n {
        // Input i is held out when the running count of held-out inputs steps up at it.
        let before = (i as f64 * fraction).floor();
        let after = ((i + 1) as f64 * fraction).floor();
        if after > before {
            held.push(i);
        } else {
            fit.push(i);
        }
    }
    if fit.is_empty() {
        return Err(Error::InvalidArgument("nothing left to fit on".into()));
    }
    Ok((fit, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_spreads_the_held_out_share_evenly() {
        let (fit, held) = split(10, 0.3).unwrap();
        assert_eq!(held, vec![3, 6, 9]);
        assert_eq!(fit.len(), 7);
        let (fit, held) = split(5, 0.0).unwrap();
        assert_eq!((fit.len(), held.len()), (5, 0));
        assert!(split(5, 1.0).is_err());
    }
}
