//! `cascade calibrate`: measure each stage, fit the exit threshold to a budget, write a
//! profile.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cascade::energy::board::Board;
use cascade::tune::curve::{self as curve, Budget, Observation, Record, Reference, Target};
use cascade::tune::cost::{measure_stage, CostOptions};
use cascade::tune::dataset::LayoutKind;
use cascade::input::decode::decode_file;
use cascade::energy::detect_system;
use cascade::tune::profile::{self, Calibration, HeldOut, Profile, ProfileStage};
use cascade::{CascadeBuilder, Metric, ModelSpec, Threads};

use super::data::DataArgs;
use super::output::{line, progress_bar};
use super::{parse_metric, CliResult, Toggle};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["budget_ms", "budget_mj", "min_accuracy"]))]
pub struct CalibrateArgs {
    /// A cascade stage, cheapest first; repeat for each stage (at least two).
    #[arg(long = "stage", value_name = "MODEL.onnx", required = true)]
    pub stages: Vec<PathBuf>,
    /// Confidence metric the threshold applies to.
    #[arg(long, default_value = "max-prob", value_parser = parse_metric)]
    pub metric: Metric,
    #[command(flatten)]
    pub data: DataArgs,
    /// Best accuracy whose expected latency per input is at most this many milliseconds.
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<f64>,
    /// Best accuracy whose expected energy per input is at most this many millijoules.
    #[arg(long, value_name = "MJ")]
    pub budget_mj: Option<f64>,
    /// Cheapest threshold whose accuracy reaches this share (0..1, e.g. 0.89).
    #[arg(long, value_name = "SHARE")]
    pub min_accuracy: Option<f64>,
    /// Aim lower than the budget by this share (or this many accuracy points higher).
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    pub margin: f64,
    /// Share of the inputs held out to check the chosen threshold on unseen data.
    #[arg(long, default_value_t = 0.3, value_name = "SHARE")]
    pub holdout: f64,
    /// Board power model for energy when no meter is present (name or TOML file).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Where to write the profile.
    #[arg(short, long, value_name = "PROFILE.toml")]
    pub output: PathBuf,
    /// Where to write the whole threshold curve as CSV (default: the profile path, .csv).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// tract's NHWC convolution rewrite (auto: on for x86_64).
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
}

pub fn run(args: CalibrateArgs, threads: Threads) -> CliResult<ExitCode> {
    let target = match (args.budget_ms, args.budget_mj, args.min_accuracy) {
        (Some(ms), _, _) => Target::Budget(Budget::latency_ms(ms)?),
        (_, Some(mj), _) => Target::Budget(Budget::energy_mj(mj)?),
        (_, _, Some(a)) => Target::min_accuracy(a)?,
        _ => {
            return Err(cascade::Error::InvalidArgument(
                "give --budget-ms, --budget-mj or --min-accuracy".into(),
            )
            .into())
        }
    };
    let board = args.board.as_deref().map(Board::resolve).transpose()?;
    let mut cascade = args
        .stages
        .iter()
        .fold(CascadeBuilder::new(), |b, s| b.stage(ModelSpec::new(s)))
        .metric(args.metric)
        .threshold(cascade::Threshold::new(0.0)?)
        .preload(true)
        .load_options(args.conv_nhwc.load_options())
        .build()?;
    let dataset = args.data.open(cascade.labels())?;
    let (fit_idx, held_idx) = curve::split(dataset.len(), args.holdout)?;
    let reference = if dataset.layout == LayoutKind::Unlabeled {
        log::warn!(
            "{} has no labels: calibrating against agreement with the last stage",
            args.data.data.display()
        );
        Reference::LastStageAgreement
    } else {
        Reference::Labels
    };
    if matches!(target, Target::Budget(Budget::EnergyMj(_))) && board.is_none() {
        log::info!("no --board: energy needs a meter on this machine");
    }

    // 1. Every stage on every input.
    let n_stages = cascade.stages().len();
    eprintln!("running {n_stages} stages on {} images", dataset.len());
    let bar = progress_bar(dataset.len());
    let mut records = Vec::with_capacity(dataset.len());
    let mut cost_images = Vec::new();
    for sample in &dataset.samples {
        let image = match decode_file(&sample.path) {
            Ok(i) => i,
            Err(e) => {
                log::warn!("skipping {e}");
                records.push(None);
                bar.inc(1);
                continue;
            }
        };
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
            label: sample.label,
        }));
        if cost_images.len() < 16 {
            cost_images.push(image);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let pick =
        |idx: &[usize]| -> Vec<Record> { idx.iter().filter_map(|&i| records[i].clone()).collect() };
    let (fit, held) = (pick(&fit_idx), pick(&held_idx));

    // 2. What each stage costs here, on a few of the same images.
    let mut meter = detect_system(board.as_ref(), threads.get());
    let opts = CostOptions::default();
    let mut stages = Vec::with_capacity(n_stages);
    for i in 0..n_stages {
        eprintln!("measuring stage {i} ...");
        let meter: Option<&mut dyn cascade::energy::EnergyMeter> = match &mut meter {
            Some(m) => Some(&mut **m),
            None => None,
        };
        let stage = cascade.stage_mut_at(i).ok_or_else(|| missing(i))?;
        let cost = measure_stage(stage, &cost_images, meter, &opts)?;
        let model = stage.model().ok_or_else(|| missing(i))?;
        stages.push(ProfileStage {
            model: stage.spec().path.clone(),
            sha256: profile::sha256_file(&stage.spec().path)?,
            input: model.input().shape().to_vec(),
            load_ms: model.load_time().as_secs_f64() * 1e3,
            latency: cost.latency,
            energy: cost.energy,
        });
    }
    let costs: Vec<f64> = match target {
        Target::Budget(Budget::EnergyMj(_)) => stages
            .iter()
            .map(|s| s.energy.as_ref().map(|e| e.total_mj))
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| {
                cascade::Error::InvalidArgument(
                    "an energy budget needs an energy meter or a --board power model".into(),
                )
            })?,
        _ => stages.iter().map(|s| s.latency.mean_ms).collect(),
    };
    let unit = match target {
        Target::Budget(b) => b.unit(),
        _ => "ms",
    };

    // 3. Fit, choose, check on held-out inputs.
    let curve = curve::curve(&fit, reference, &costs)?;
    let chosen = curve::choose(&curve, target, args.margin)?;
    let holdout = (!held.is_empty()).then(|| HeldOut {
        point: curve::point(&held, reference, &costs, chosen.threshold),
        measured_mean_ms: curve::measured_mean_cost(&held, chosen.threshold),
    });

    let csv_path = args
        .csv
        .clone()
        .unwrap_or_else(|| args.output.with_extension("csv"));
    write_curve_csv(&csv_path, &curve)?;
    print_curve(&curve, &chosen, unit)?;

    let accuracy_word = if reference == Reference::Labels {
        "accuracy"
    } else {
        "agreement with last stage"
    };
    line(&format!(
        "chosen     threshold {:.4} ({} >= it exits) for {target}",
        chosen.threshold, args.metric
    ))?;
    line(&format!(
        "fit        {} inputs: {accuracy_word} {:.1}%, deferred {:.1}%, expected cost {:.2} {unit}",
        fit.len(),
        100.0 * chosen.accuracy,
        100.0 * chosen.deferral,
        chosen.expected_cost
    ))?;
    if let Some(h) = &holdout {
        line(&format!(
            "held out   {} inputs: {accuracy_word} {:.1}%, deferred {:.1}%, expected cost {:.2} {unit}, measured mean latency {:.2} ms",
            held.len(),
            100.0 * h.point.accuracy,
            100.0 * h.point.deferral,
            h.point.expected_cost,
            h.measured_mean_ms
        ))?;
    }
    for (what, records) in [("fit", &fit), ("held out", &held)] {
        if records.is_empty() {
            continue;
        }
        let (acc, ms) = curve::stage_alone(records, reference, n_stages - 1);
        line(&format!(
            "last alone {what}: {accuracy_word} {:.1}%, measured mean latency {:.2} ms",
            100.0 * acc,
            ms
        ))?;
    }
    for (i, s) in stages.iter().enumerate() {
        let energy = s.energy.as_ref().map_or(String::new(), |e| {
            format!(
                ", {:.1} mJ ({:.1} above idle; {}{})",
                e.total_mj,
                e.above_idle_mj,
                e.meter,
                if e.estimate { ", estimate" } else { "" }
            )
        });
        line(&format!(
            "stage {i}    {}: {:.2} ms mean, {:.2} median, {:.2} p95 over {} runs{energy}",
            s.model.display(),
            s.latency.mean_ms,
            s.latency.p50_ms,
            s.latency.p95_ms,
            s.latency.runs
        ))?;
    }

    let profile = Profile {
        created: profile::now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        board: board.map(|b| b.name),
        cpu: profile::cpu_model(),
        arch: std::env::consts::ARCH.to_string(),
        threads: threads.get(),
        metric: args.metric.name().to_string(),
        threshold: chosen.threshold,
        stages,
        calibration: Calibration {
            data: args.data.data.display().to_string(),
            target,
            margin: args.margin,
            reference,
            fit_inputs: fit.len(),
            holdout_inputs: held.len(),
            fit: chosen,
            holdout,
        },
        curve,
    };
    profile.save(&args.output)?;
    line(&format!(
        "wrote      {} and {}",
        args.output.display(),
        csv_path.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn write_curve_csv(path: &std::path::Path, curve: &[curve::CurvePoint]) -> CliResult<()> {
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| cascade::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?);
    writeln!(out, "threshold,accuracy,deferral,expected_cost")?;
    for p in curve {
        writeln!(
            out,
            "{},{:.6},{:.6},{:.6}",
            p.threshold, p.accuracy, p.deferral, p.expected_cost
        )?;
    }
    out.flush()?;
    Ok(())
}

/// A readable excerpt of the curve: about 15 evenly spaced rows plus the chosen one.
fn print_curve(
    curve: &[curve::CurvePoint],
    chosen: &curve::CurvePoint,
    unit: &str,
) -> CliResult<()> {
    line(&format!(
        "{:>10}  {:>8}  {:>8}  {:>12}",
        "threshold",
        "accuracy",
        "deferred",
        format!("cost ({unit})")
    ))?;
    let step = (curve.len() / 15).max(1);
    for (i, p) in curve.iter().enumerate() {
        let is_chosen = p.threshold == chosen.threshold;
        if i % step == 0 || i + 1 == curve.len() || is_chosen {
            line(&format!(
                "{:>10.4}  {:>7.1}%  {:>7.1}%  {:>12.2}{}",
                p.threshold,
                100.0 * p.accuracy,
                100.0 * p.deferral,
                p.expected_cost,
                if is_chosen { "  <- chosen" } else { "" }
            ))?;
        }
    }
    Ok(())
}

fn missing(stage: usize) -> cascade::Error {
    cascade::Error::InvalidArgument(format!("stage {stage} is not loaded"))
}
