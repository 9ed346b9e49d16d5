//! `cascade search`: which models, at which input sizes, in how many stages, at which
//! thresholds, for a budget.
//!
//! ```text
//! zoo (models x sizes) -> each candidate once on every image (Record) -> replay every
//!                         cost of each candidate on this device   -'   1-, 2-, 3-stage
//!                                                                     cascade -> front -> best
//! ```
//!
//! Only the per-candidate runs cost inference; replay is arithmetic, so thousands of
//! cascades and thresholds are evaluated in well under a second. The front is fitted on part
//! of the images; the best cascade is then checked, with bounds at a stated confidence, on
//! the images held out (and, with a guarantee, certified on them by Learn-then-Test).

mod replay;
mod report;
mod zoo;

pub use replay::{cascades, project, replay, CascadePoint, Replay};
pub use report::Files;
pub use zoo::{default_zoo, Candidate, DEFAULT_SIZE_STEPS};

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::energy::{detect_system, Board, EnergyMeter};
use crate::error::{Error, Result};
use crate::input::RgbImage;
use crate::remote::Access;
use crate::runtime::{
    run_in_order, Cascade, CascadeBuilder, LoadOptions, Metric, ModelSpec, Threads, Threshold,
    Workers,
};
use crate::tune::bounds::{fixed_sequence, Bounds, Confidence};
use crate::tune::calibrate::split;
use crate::tune::curve::{self, Observation, Record, Reference};
use crate::tune::tradeoff::{cheapest_reaching, most_accurate_within};
use crate::tune::{cpu_model, now_rfc3339, sha256_of, FitReport, HeldOut, Profile, ProfileStage};
use crate::tune::{
    measure_stage, Budget, CostOptions, DataSpec, Dataset, LayoutKind, StageCost, Target,
};

/// Rounds of cost measurement per candidate, interleaved (every candidate once per round):
/// a machine's load drifts over minutes, and measuring each candidate once, one after the
/// other, lets that drift rank them (seen on a shared 2-core VM: Lite0 measured slower than
/// Lite2). Each candidate keeps its median round, so drift hits all of them alike.
pub const COST_ROUNDS: usize = 3;

/// At most this many stages per cascade by default: the paper behind the product found
/// three-model cascades on the front and little beyond.
pub const DEFAULT_MAX_STAGES: usize = 3;

/// What to search, and on what.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    pub candidates: Vec<Candidate>,
    pub data: DataSpec,
    /// The best cascade is chosen for this; without one only the front is reported.
    pub target: Option<Target>,
    pub metric: Metric,
    pub options: LoadOptions,
    pub max_stages: usize,
    /// Share of the images held out to check (or certify) the best cascade on.
    pub holdout: f64,
    pub confidence: Confidence,
    pub guarantee: bool,
    pub board: Option<Board>,
    /// tract threads per worker (and of the cost measurement).
    pub threads: Threads,
    /// Images run at once while observing (each on its own fork of the candidate).
    pub workers: Workers,
    pub cost_images: usize,
    pub cost: CostOptions,
    /// How candidates on servers are reached (token, timeouts).
    pub access: Access,
}

impl SearchPlan {
    pub fn new(candidates: Vec<Candidate>, data: DataSpec) -> SearchPlan {
        SearchPlan {
            candidates,
            data,
            target: None,
            metric: Metric::default(),
            options: LoadOptions::default(),
            max_stages: DEFAULT_MAX_STAGES,
            holdout: crate::tune::calibrate::DEFAULT_HOLDOUT,
            confidence: Confidence::DEFAULT,
            guarantee: false,
            board: None,
            threads: Threads::ONE,
            workers: Workers::ONE,
            cost_images: crate::tune::calibrate::DEFAULT_COST_IMAGES,
            cost: CostOptions::default(),
            access: Access::default(),
        }
    }

    /// Candidate `candidate` alone, loaded (or reached) as the plan says.
    fn alone(&self, candidate: &Candidate) -> Result<Cascade> {
        let mut cascade = CascadeBuilder::new()
            .stage(candidate.spec.clone())
            .load_options(self.options)
            .access(self.access.clone())
            .alone(0)?;
        cascade.set_metric(self.metric);
        Ok(cascade)
    }
}

/// Where a search is, for progress output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Candidate `candidate` of `candidates` has run on `done` of `total` images.
    Observing {
        candidate: usize,
        candidates: usize,
        name: String,
        done: usize,
        total: usize,
    },
    /// Measuring what candidate `candidate` costs here.
    Measuring { candidate: usize, name: String },
}

/// One candidate as measured here: what a profile records of a stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub name: String,
    pub stage: ProfileStage,
}

impl Measured {
    /// The candidate's model at its size.
    pub fn spec(&self) -> ModelSpec {
        ModelSpec {
            location: self.stage.model.clone(),
            manifest: self.stage.manifest.clone(),
            input_size: self.stage.input_size,
            options: None,
        }
    }

    /// Its cost per image in `unit`: mean latency (ms) or energy (mJ) where measured.
    fn cost(&self, energy: bool) -> Option<f64> {
        if energy {
            self.stage.energy.as_ref().map(|e| e.total_mj)
        } else {
            Some(self.stage.latency.mean_ms)
        }
    }
}

/// Every candidate's run on every image: the only part of a search that costs inference.
/// Saved beside the reports (`records.json`), so another target is a replay away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Observed {
    /// The candidates in the order they ran (the order of each record's observations).
    pub candidates: Vec<Measured>,
    /// Every image's record, in the data's order; `None` for one that could not be decoded.
    pub records: Vec<Option<Record>>,
    pub reference: Reference,
    pub data: String,
    pub metric: Metric,
    pub threads: usize,
    pub board: Option<String>,
    pub seconds: f64,
}

impl Observed {
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("search records: {e}")))?;
        crate::output::atomically(path, |w| w.write_all(text.as_bytes()))
    }

    pub fn load(path: &Path) -> Result<Observed> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let o: Observed = serde_json::from_str(&text).map_err(|e| Error::Dataset {
            path: path.to_path_buf(),
            reason: format!("not a search's records.json: {e}"),
        })?;
        let n = o.candidates.len();
        if o.records.iter().flatten().any(|r| r.stages.len() != n) {
            return Err(Error::Dataset {
                path: path.to_path_buf(),
                reason: format!("every record must observe all {n} candidates"),
            });
        }
        Ok(o)
    }
}

/// The best cascade for the target, with what the held-out images say about it.
#[derive(Debug, Clone, Serialize)]
pub struct Best {
    pub names: Vec<String>,
    pub fit: CascadePoint,
    pub holdout: Option<HeldOut>,
}

/// What a search found.
#[derive(Debug, Clone)]
pub struct Search {
    /// The candidates, cheapest first (the indices every [`CascadePoint`] uses).
    pub candidates: Vec<Measured>,
    /// Each candidate's cost in `unit`, in the same order.
    pub costs: Vec<f64>,
    /// `ms`, or `mJ` for an energy budget.
    pub unit: &'static str,
    /// How answers were judged: [`Reference::Labels`], where without labels the labels are
    /// the answers of the candidate named in `agreement_with`.
    pub reference: Reference,
    /// Without labels: the (costliest) candidate whose answers are the reference.
    pub agreement_with: Option<String>,
    pub replay: Replay,
    pub best: Option<Best>,
    /// Every image's record over all candidates (cheapest first), in the data's order;
    /// `None` for an image that could not be decoded.
    pub records: Vec<Option<Record>>,
    /// Which of `records` the front was fitted on (the rest are held out).
    pub fit_indices: Vec<usize>,
    pub fit_inputs: usize,
    pub holdout_inputs: usize,
    /// Wall time of the per-candidate runs and of the replay, seconds.
    pub observe_seconds: f64,
    pub replay_seconds: f64,
    pub plan_target: Option<Target>,
    pub confidence: Confidence,
    pub guarantee: bool,
    pub metric: Metric,
    pub threads: usize,
    pub board: Option<String>,
    pub data: String,
}

/// Runs the search (see the module docs): [`observe`], then [`select`].
pub fn run(plan: &SearchPlan, progress: impl FnMut(Progress)) -> Result<Search> {
    let observed = observe(plan, progress)?;
    select(&observed, plan)
}

/// Runs every candidate of `plan` on every image and measures what each costs here.
pub fn observe(plan: &SearchPlan, mut progress: impl FnMut(Progress)) -> Result<Observed> {
    if plan.candidates.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "a search needs at least two candidates to build cascades from, got {} (add --model MODEL[@SIZE])",
            plan.candidates.len()
        )));
    }
    let energy = matches!(plan.target, Some(Target::Budget(Budget::EnergyMj(_))));
    let mut meter = detect_system(plan.board.as_ref(), plan.threads.get());
    if energy && meter.is_none() {
        return Err(Error::InvalidArgument(
            "an energy budget needs an energy meter or a --board power model".into(),
        ));
    }
    let started = Instant::now();
    let mut columns: Vec<Vec<Option<Observation>>> = Vec::new();
    let mut labels: Vec<Option<usize>> = Vec::new();
    let mut measured = Vec::with_capacity(plan.candidates.len());
    let mut reference = Reference::Labels;
    let candidates = plan.candidates.len();
    let mut rounds: Vec<Vec<StageCost>> = Vec::with_capacity(candidates);
    let mut shared_images: Vec<RgbImage> = Vec::new();
    for (c, candidate) in plan.candidates.iter().enumerate() {
        let mut cascade = plan.alone(candidate)?;
        let dataset = plan.data.open(cascade.labels())?;
        if dataset.layout == LayoutKind::Unlabeled {
            reference = Reference::LastStageAgreement;
        }
        let total = dataset.len();
        let mut column = Vec::with_capacity(total);
        let mut cost_images: Vec<RgbImage> = Vec::with_capacity(plan.cost_images);
        let size = cascade.decode_size();
        // Each worker decodes and runs its own image; records arrive in the folder's order.
        run_in_order(
            &mut cascade,
            plan.workers,
            dataset.samples.iter(),
            |cascade, sample| {
                let item = Dataset::decode(sample, size);
                Ok(match item.image {
                    Ok(image) => {
                        let runs = cascade.observe_all(&image)?;
                        let observation = runs.first().map(|r| Observation {
                            class: r.class,
                            confidence: r.confidence,
                            cost_ms: (r.preprocess + r.inference).as_secs_f64() * 1e3,
                        });
                        (sample.label, observation, Some(image))
                    }
                    Err(_) => (sample.label, None, None),
                })
            },
            |i, (label, observation, image)| {
                if c == 0 {
                    labels.push(label);
                }
                column.push(observation);
                if let Some(image) = image.filter(|_| cost_images.len() < plan.cost_images) {
                    cost_images.push(image);
                }
                progress(Progress::Observing {
                    candidate: c,
                    candidates,
                    name: candidate.name.clone(),
                    done: i + 1,
                    total,
                });
                Ok(())
            },
        )?;
        progress(Progress::Measuring {
            candidate: c,
            name: candidate.name.clone(),
        });
        let not_loaded = || Error::Internal(format!("{} is not loaded", candidate.name));
        let stage = cascade.stage_mut_at(0).ok_or_else(not_loaded)?;
        let meter: Option<&mut dyn EnergyMeter> = match &mut meter {
            Some(m) => Some(&mut **m),
            None => None,
        };
        let cost = measure_stage(stage, &cost_images, meter, &plan.cost)?;
        rounds.push(vec![cost.clone()]);
        if shared_images.is_empty() {
            shared_images = cost_images;
        }
        let load_ms = stage.load_ms();
        measured.push(Measured {
            name: candidate.name.clone(),
            stage: ProfileStage {
                model: candidate.spec.location.clone(),
                manifest: candidate.spec.manifest.clone(),
                input_size: candidate.spec.input_size,
                choice: None,
                sha256: sha256_of(&candidate.spec)?,
                load_ms,
                latency: cost.latency,
                energy: cost.energy,
            },
        });
        columns.push(column);
    }
    // The later cost rounds, each candidate loaded in turn (one model in memory at a time).
    for _ in 1..COST_ROUNDS {
        for (c, candidate) in plan.candidates.iter().enumerate() {
            progress(Progress::Measuring {
                candidate: c,
                name: candidate.name.clone(),
            });
            let mut cascade = plan.alone(candidate)?;
            let stage = cascade
                .stage_mut_at(0)
                .ok_or_else(|| Error::Internal(format!("{} is not loaded", candidate.name)))?;
            let meter: Option<&mut dyn EnergyMeter> = match &mut meter {
                Some(m) => Some(&mut **m),
                None => None,
            };
            rounds[c].push(measure_stage(stage, &shared_images, meter, &plan.cost)?);
        }
    }
    for (m, mut costs) in measured.iter_mut().zip(rounds) {
        costs.sort_by(|a, b| a.latency.mean_ms.total_cmp(&b.latency.mean_ms));
        let median = costs.swap_remove(costs.len() / 2);
        m.stage.latency = median.latency;
        m.stage.energy = median.energy;
    }
    let records = labels
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            let stages: Option<Vec<Observation>> = columns
                .iter()
                .map(|c| c.get(i).copied().flatten())
                .collect();
            stages.map(|stages| Record { stages, label })
        })
        .collect();
    Ok(Observed {
        candidates: measured,
        records,
        reference,
        data: plan.data.dir.display().to_string(),
        metric: plan.metric,
        threads: plan.threads.get(),
        board: plan.board.as_ref().map(|b| b.name.clone()),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Replays every cascade of the observed candidates and picks the best for `plan`'s
/// target (the plan's candidates, data and measuring options are not used: the records
/// already hold what they gave).
pub fn select(observed: &Observed, plan: &SearchPlan) -> Result<Search> {
    if observed.candidates.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "a search needs at least two candidates to build cascades from, got {}",
            observed.candidates.len()
        )));
    }
    if !(1..=crate::runtime::MAX_STAGES).contains(&plan.max_stages) {
        return Err(Error::InvalidArgument(format!(
            "--max-stages must be 1..={}, got {}",
            crate::runtime::MAX_STAGES,
            plan.max_stages
        )));
    }
    let energy = matches!(plan.target, Some(Target::Budget(Budget::EnergyMj(_))));
    let raw: Vec<f64> = observed
        .candidates
        .iter()
        .map(|c| c.cost(energy))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            Error::InvalidArgument(
                "an energy budget needs each candidate's energy: search with a meter or a --board power model".into(),
            )
        })?;
    // Cheapest first: cascades run in cost order.
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
    let candidates: Vec<Measured> = order
        .iter()
        .map(|&i| observed.candidates[i].clone())
        .collect();
    let costs: Vec<f64> = order.iter().map(|&i| raw[i]).collect();
    let records: Vec<Option<Record>> = observed
        .records
        .iter()
        .map(|r| {
            r.as_ref().map(|r| Record {
                stages: order.iter().map(|&i| r.stages[i]).collect(),
                label: r.label,
            })
        })
        .collect();
    // Without labels, every answer is judged by agreement with the costliest candidate
    // (the one a user would run if cost did not matter): its answers become the labels.
    // Agreement with each cascade's own last stage would make every model alone 100% right.
    let (records, agreement_with) = match observed.reference {
        Reference::Labels => (records, None),
        Reference::LastStageAgreement => {
            let last = candidates.len() - 1;
            let relabelled = records
                .into_iter()
                .map(|r| {
                    r.map(|mut r| {
                        r.label = Some(r.stages[last].class);
                        r
                    })
                })
                .collect();
            (relabelled, Some(candidates[last].name.clone()))
        }
    };
    let reference = Reference::Labels;

    let (fit_idx, held_idx) = split(records.len(), plan.holdout)?;
    let pick =
        |idx: &[usize]| -> Vec<Record> { idx.iter().filter_map(|&i| records[i].clone()).collect() };
    let (fit, held) = (pick(&fit_idx), pick(&held_idx));
    if fit.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no image of {} to fit on could be decoded",
            observed.data
        )));
    }
    let started = Instant::now();
    let replay = replay::replay(&fit, reference, &costs, plan.max_stages)?;
    let replay_seconds = started.elapsed().as_secs_f64();

    let best = match plan.target {
        None => None,
        Some(target) => {
            let chosen = if plan.guarantee {
                certify(
                    &replay.front,
                    &held,
                    reference,
                    &costs,
                    target,
                    plan.confidence,
                )?
            } else {
                choose(&replay.front, target, &candidates, &costs)?
            };
            let holdout = (!held.is_empty())
                .then(|| held_out(&held, reference, &costs, &chosen, plan.confidence))
                .transpose()?;
            Some(Best {
                names: chosen
                    .stages
                    .iter()
                    .map(|&i| candidates[i].name.clone())
                    .collect(),
                fit: chosen,
                holdout,
            })
        }
    };
    Ok(Search {
        unit: if energy { "mJ" } else { "ms" },
        candidates,
        costs,
        reference,
        agreement_with,
        replay,
        best,
        records,
        fit_indices: fit_idx,
        fit_inputs: fit.len(),
        holdout_inputs: held.len(),
        observe_seconds: observed.seconds,
        replay_seconds,
        plan_target: plan.target,
        confidence: plan.confidence,
        guarantee: plan.guarantee,
        metric: observed.metric,
        threads: observed.threads,
        board: observed.board.clone(),
        data: observed.data.clone(),
    })
}

/// The front's best point for `target`, by the one rule of [`crate::tune::tradeoff`].
fn choose(
    front: &[CascadePoint],
    target: Target,
    measured: &[Measured],
    costs: &[f64],
) -> Result<CascadePoint> {
    let best = match target {
        Target::Budget(b) => most_accurate_within(front, b.value()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no cascade fits {target}: the cheapest candidate, {}, costs {:.3} {} per image",
                measured[0].name,
                costs[0],
                b.unit()
            ))
        })?,
        Target::MinAccuracy(a) => cheapest_reaching(front, a).ok_or_else(|| {
            let top = front.iter().map(|p| p.point.accuracy).fold(0.0, f64::max);
            Error::InvalidArgument(format!(
                "no cascade reaches {:.1}% accuracy; the best on these images is {:.1}%",
                100.0 * a,
                100.0 * top
            ))
        })?,
    };
    Ok(best.clone())
}

/// A front point's figures on the held-out images, with bounds at `confidence`.
fn held_out(
    held: &[Record],
    reference: Reference,
    costs: &[f64],
    p: &CascadePoint,
    confidence: Confidence,
) -> Result<HeldOut> {
    let records = project(held, &p.stages);
    let stage_costs: Vec<f64> = p.stages.iter().map(|&i| costs[i]).collect();
    let t = &p.point.thresholds;
    Ok(HeldOut {
        point: curve::point(&records, reference, &stage_costs, t),
        measured_mean_ms: curve::measured_mean_cost(&records, t),
        bounds: Some(Bounds::of(
            &curve::tally(&records, reference, t),
            &stage_costs,
            confidence,
        )?),
    })
}

/// Learn-then-Test over the front (the order fixed by the fitting images: cheapest first
/// for a budget, most accurate first for an accuracy target), certified on the held-out
/// images; of the points that pass, the most accurate (budget) or cheapest (accuracy) on
/// those images wins.
fn certify(
    front: &[CascadePoint],
    held: &[Record],
    reference: Reference,
    costs: &[f64],
    target: Target,
    confidence: Confidence,
) -> Result<CascadePoint> {
    if held.is_empty() {
        return Err(Error::InvalidArgument(
            "a guarantee needs held-out images to test on: give --holdout above 0".into(),
        ));
    }
    let mut order: Vec<usize> = (0..front.len()).collect();
    if let Target::MinAccuracy(_) = target {
        order.reverse(); // The front is cheapest (and least accurate) first.
    }
    // Each tested point's held-out figures, kept: the pick among those that passed reads
    // them again instead of replaying the held-out images twice.
    let mut tested: Vec<(usize, CascadePoint)> = Vec::new();
    let passed = fixed_sequence(
        &order,
        |i| {
            let h = held_out(held, reference, costs, &front[i], confidence)?;
            tested.push((
                i,
                CascadePoint {
                    stages: front[i].stages.clone(),
                    point: h.point,
                },
            ));
            h.bounds.ok_or_else(|| Error::Internal("no bounds".into()))
        },
        target,
    )?;
    let on_held: Vec<(usize, CascadePoint)> = tested
        .into_iter()
        .filter(|(i, _)| passed.contains(i))
        .collect();
    let points: Vec<CascadePoint> = on_held.iter().map(|(_, p)| p.clone()).collect();
    let best = match target {
        Target::Budget(_) => most_accurate_within(&points, f64::INFINITY),
        Target::MinAccuracy(_) => cheapest_reaching(&points, 0.0),
    };
    match best.and_then(|b| on_held.iter().find(|(_, p)| p == b)) {
        Some((i, _)) => Ok(front[*i].clone()),
        None => Err(Error::InvalidArgument(format!(
            "no cascade is certain enough to meet {target} at {:.0}% confidence on {} held-out images (more images tighten the bounds)",
            100.0 * confidence.get(),
            held.len()
        ))),
    }
}

impl Search {
    /// The best cascade's profile, ready for `--profile`: `None` when the best is one model
    /// alone (run it with `--model`) or there is no target.
    pub fn best_profile(&self) -> Result<Option<Profile>> {
        let Some(best) = &self.best else {
            return Ok(None);
        };
        if best.fit.stages.len() < 2 {
            return Ok(None);
        }
        let target = self
            .plan_target
            .ok_or_else(|| Error::Internal("a best cascade without a target".into()))?;
        // The profile's curve: this cascade's own threshold curve on the fitting images.
        let fit_records: Vec<Record> = self
            .fit_indices
            .iter()
            .filter_map(|&i| self.records[i].clone())
            .collect();
        let stage_costs: Vec<f64> = best.fit.stages.iter().map(|&i| self.costs[i]).collect();
        let curve = curve::curve(
            &project(&fit_records, &best.fit.stages),
            self.reference,
            &stage_costs,
        )?;
        Ok(Some(Profile {
            created: now_rfc3339(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            board: self.board.clone(),
            cpu: cpu_model(),
            arch: std::env::consts::ARCH.to_string(),
            threads: self.threads,
            metric: self.metric,
            thresholds: best
                .fit
                .point
                .thresholds
                .iter()
                .map(|&t| Threshold::new(t))
                .collect::<Result<_>>()?,
            stages: best
                .fit
                .stages
                .iter()
                .map(|&i| self.candidates[i].stage.clone())
                .collect(),
            calibration: FitReport {
                data: self.data.clone(),
                target,
                margin: 0.0,
                guarantee: self.guarantee,
                reference: match self.agreement_with {
                    Some(_) => Reference::LastStageAgreement,
                    None => self.reference,
                },
                fit_inputs: self.fit_inputs,
                holdout_inputs: self.holdout_inputs,
                fit: best.fit.point.clone(),
                holdout: best.holdout.clone(),
            },
            curve,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::Latency;

    #[test]
    fn saved_records_load_back_bit_for_bit() {
        // Replaying a saved search must give its front exactly: every float survives.
        let costs = [
            0.1 + 0.2,
            1.0 / 3.0,
            17.491_234_567_891_234,
            2.0f64.sqrt() * 1e-7,
        ];
        let observation = |i: usize| Observation {
            class: i,
            confidence: (i as f32 + 0.1) / 7.0,
            cost_ms: costs[i % costs.len()] * (i as f64 + 1.0),
        };
        let stage = |mean_ms: f64| ProfileStage {
            model: "m.onnx".into(),
            manifest: None,
            input_size: Some(192),
            choice: None,
            sha256: "0".repeat(64),
            load_ms: 1.0 / 7.0,
            latency: Latency {
                count: 3,
                mean_ms,
                p50_ms: mean_ms / 3.0,
                p95_ms: mean_ms * 1.1,
                p99_ms: mean_ms * 1.3,
            },
            energy: None,
        };
        let observed = Observed {
            candidates: costs
                .iter()
                .map(|&c| Measured {
                    name: "m".into(),
                    stage: stage(c),
                })
                .collect(),
            records: (0..50)
                .map(|i| {
                    (i % 9 != 0).then(|| Record {
                        stages: (i..i + 4).map(observation).collect(),
                        label: Some(i),
                    })
                })
                .collect(),
            reference: Reference::Labels,
            data: "d".into(),
            metric: Metric::MaxProb,
            threads: 1,
            board: None,
            seconds: 0.1,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.json");
        observed.save(&path).unwrap();
        let back = Observed::load(&path).unwrap();
        assert_eq!(back.records, observed.records);
        for (a, b) in back.candidates.iter().zip(&observed.candidates) {
            assert_eq!(a.stage, b.stage);
        }
    }

    #[test]
    fn without_labels_answers_are_judged_by_the_costliest_candidate() {
        let o = |class| Observation {
            class,
            confidence: 0.5,
            cost_ms: 1.0,
        };
        let stage = |mean_ms: f64| ProfileStage {
            model: "m.onnx".into(),
            manifest: None,
            input_size: None,
            choice: None,
            sha256: "0".repeat(64),
            load_ms: 1.0,
            latency: Latency {
                count: 1,
                mean_ms,
                p50_ms: mean_ms,
                p95_ms: mean_ms,
                p99_ms: mean_ms,
            },
            energy: None,
        };
        // Listed costliest first: "big" agrees with "small" on two images of four.
        let observed = Observed {
            candidates: vec![
                Measured {
                    name: "big".into(),
                    stage: stage(9.0),
                },
                Measured {
                    name: "small".into(),
                    stage: stage(1.0),
                },
            ],
            records: [(1, 1), (2, 2), (3, 0), (4, 0)]
                .iter()
                .map(|&(big, small)| {
                    Some(Record {
                        stages: vec![o(big), o(small)],
                        label: None,
                    })
                })
                .collect(),
            reference: Reference::LastStageAgreement,
            data: "d".into(),
            metric: Metric::MaxProb,
            threads: 1,
            board: None,
            seconds: 0.0,
        };
        let plan = SearchPlan {
            holdout: 0.0,
            ..SearchPlan::new(Vec::new(), DataSpec::new("d"))
        };
        let s = select(&observed, &plan).unwrap();
        assert_eq!(s.agreement_with.as_deref(), Some("big"));
        let single = |name: &str| {
            let i = s.candidates.iter().position(|c| c.name == name).unwrap();
            s.replay
                .singles
                .iter()
                .find(|p| p.stages == [i])
                .unwrap()
                .point
                .accuracy
        };
        assert_eq!((single("small"), single("big")), (0.5, 1.0));
    }
}
