//! `cascade bench`: each model alone and the cascade, measured in one run, with a Markdown
//! table on stdout and JSON, CSV and SVG files for scripts and people.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cascade::bench::measure::{self, BenchPlan, BenchResult, Figures, Input};
use cascade::energy::board::Board;
use cascade::input::decode::decode_file;
use cascade::energy::detect_system;
use cascade::bench::plot;
use cascade::tune::profile::{cpu_model, now_rfc3339, sha256_file, Profile};
use cascade::bench::compare::{Comparison, Point};
use cascade::{Metric, ModelSpec, Threads, Threshold};
use serde_json::json;

use super::data::DataArgs;
use super::output::{line, progress_bar};
use super::{CliError, CliResult, StageArgs};

/// The tract version this build links (pinned in Cargo.toml; checked by a test).
pub const TRACT_VERSION: &str = "0.23.9";

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub stages: StageArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Board power model for energy when no meter is present (name or TOML file).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Folder for bench.json, bench.csv, curve.csv and the SVG plots.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out: PathBuf,
}

pub fn run(args: BenchArgs, threads: Threads) -> CliResult<ExitCode> {
    let (stages, metric, threshold) = plan_from(&args.stages)?;
    let n_stages = stages.len();
    if n_stages < 2 {
        return Err(cascade::Error::InvalidArgument(
            "bench compares a cascade with its models: give --profile or at least two --stage"
                .into(),
        )
        .into());
    }
    let board = args.board.as_deref().map(Board::resolve).transpose()?;
    let first = cascade::Cascade::single(stages[0].clone(), args.stages.conv_nhwc.load_options())?;
    let dataset = args.data.open(first.labels())?;
    drop(first);
    let mut inputs = Vec::with_capacity(dataset.len());
    for s in &dataset.samples {
        match decode_file(&s.path) {
            Ok(image) => inputs.push(Input {
                image,
                label: s.label,
            }),
            Err(e) => log::warn!("skipping {e}"),
        }
    }
    let meter = detect_system(board.as_ref(), threads.get());
    let plan = BenchPlan {
        stages: stages.clone(),
        metric,
        threshold,
        options: args.stages.conv_nhwc.load_options(),
    };
    eprintln!(
        "measuring {} models alone and the cascade on {} images",
        n_stages,
        inputs.len()
    );
    let bar = progress_bar(inputs.len() * (n_stages + 1));
    let result = measure::run(
        &plan,
        &inputs,
        meter,
        std::time::Duration::from_secs(2),
        |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();

    let hashes = stages
        .iter()
        .map(|s| sha256_file(&s.path).map(|h| (s.path.display().to_string(), h)))
        .collect::<cascade::Result<Vec<_>>>()?;
    let context = json!({
        "date": now_rfc3339(),
        "board": board.as_ref().map(|b| b.name.clone()),
        "cpu": cpu_model(),
        "arch": std::env::consts::ARCH,
        "threads": threads.get(),
        "tract_version": TRACT_VERSION,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "data": args.data.data.display().to_string(),
        "images": inputs.len(),
        "models": hashes.iter().map(|(p, h)| json!({"path": p, "sha256": h})).collect::<Vec<_>>(),
    });

    let lat = View::of(&result, |f| Some(f.latency.mean_ms), |r| Some(r.latency_ms));
    let energy = View::of(
        &result,
        |f| f.energy.as_ref().map(|e| e.total_mj),
        |r| r.energy_mj,
    );
    let (latency, curve_lat, cmp_latency) = (lat.measured, lat.curve, lat.comparison);
    let (energy, curve_energy, cmp_energy) = (energy.measured, energy.curve, energy.comparison);
    let cascade_fig = &result.configs[n_stages];

    print_markdown(&result, &context, cmp_latency.as_ref(), cmp_energy.as_ref())?;

    std::fs::create_dir_all(&args.out).map_err(|e| cascade::Error::Io {
        path: args.out.clone(),
        source: e,
    })?;
    let report = json!({
        "context": context,
        "result": result,
        "comparison_latency": cmp_latency,
        "comparison_energy": cmp_energy,
    });
    write(
        &args.out.join("bench.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write(&args.out.join("bench.csv"), &configs_csv(&result))?;
    write(&args.out.join("curve.csv"), &curve_csv(&result))?;
    plot::AccuracyVsCost {
        title: &format!(
            "Accuracy vs mean latency ({} thread(s), {})",
            threads.get(),
            cpu_model()
        ),
        cost_label: "mean latency per image (ms)",
        curve: &curve_lat,
        measured: &latency,
        highlight: "cascade",
    }
    .write_svg(&args.out.join("accuracy_vs_latency.svg"))?;
    if !curve_energy.is_empty() {
        let estimate = cascade_fig.energy.as_ref().is_some_and(|e| e.estimate);
        let note = if estimate {
            " (board model estimate)"
        } else {
            ""
        };
        plot::AccuracyVsCost {
            title: &format!("Accuracy vs energy per image{note}"),
            cost_label: "energy per image (mJ)",
            curve: &curve_energy,
            measured: &energy,
            highlight: "cascade",
        }
        .write_svg(&args.out.join("accuracy_vs_energy.svg"))?;
    }
    eprintln!(
        "wrote {}/{{bench.json,bench.csv,curve.csv,accuracy_vs_latency.svg{}}}",
        args.out.display(),
        if curve_energy.is_empty() {
            ""
        } else {
            ",accuracy_vs_energy.svg"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Stages, metric and threshold from a profile or from --stage/--threshold/--metric.
fn plan_from(s: &StageArgs) -> CliResult<(Vec<ModelSpec>, Metric, Threshold)> {
    if let Some(p) = &s.profile {
        let profile = Profile::load(p)?;
        let stages = profile
            .stages
            .iter()
            .map(|st| ModelSpec::new(&st.model))
            .collect();
        return Ok((stages, profile.metric(), Threshold::new(profile.threshold)?));
    }
    if s.thresholds.len() > 1 {
        return Err(cascade::Error::InvalidArgument(
            "bench takes one --threshold (it sweeps the rest)".into(),
        )
        .into());
    }
    let threshold = match s.thresholds.first() {
        Some(t) => *t,
        None => Threshold::new(super::DEFAULT_THRESHOLD)?,
    };
    Ok((
        s.stages.iter().map(ModelSpec::new).collect(),
        s.metric.unwrap_or_default(),
        threshold,
    ))
}

fn point_of(f: &Figures, cost: impl Fn(&Figures) -> Option<f64>) -> Option<Point> {
    Some(Point {
        name: f.name.clone(),
        accuracy: f.top1?,
        cost: cost(f)?,
    })
}

/// One cost axis (latency or energy) of a result: the measured points, the threshold
/// curve, and how the cascade compares with the largest model on it.
struct View {
    measured: Vec<Point>,
    curve: Vec<Point>,
    comparison: Option<Comparison>,
}

impl View {
    fn of(
        r: &BenchResult,
        cost: impl Fn(&Figures) -> Option<f64>,
        curve_cost: impl Fn(&measure::CurveRow) -> Option<f64>,
    ) -> View {
        let measured: Vec<Point> = r
            .configs
            .iter()
            .filter_map(|f| point_of(f, &cost))
            .collect();
        let curve: Vec<Point> = r
            .curve
            .iter()
            .filter_map(|c| {
                Some(Point {
                    name: format!("t={}", c.threshold),
                    accuracy: c.accuracy,
                    cost: curve_cost(c)?,
                })
            })
            .collect();
        // configs: each model alone in stage order, then the cascade.
        let n = r.configs.len();
        let comparison = match (
            r.configs
                .get(n.wrapping_sub(2))
                .and_then(|f| point_of(f, &cost)),
            r.configs.last().and_then(|f| point_of(f, &cost)),
        ) {
            (Some(large), Some(cascade)) if !curve.is_empty() => {
                Some(Comparison::of(&curve, &large, &cascade, &measured))
            }
            _ => None,
        };
        View {
            measured,
            curve,
            comparison,
        }
    }
}

fn write(path: &Path, text: &str) -> CliResult<()> {
    let mut f = std::fs::File::create(path).map_err(|e| cascade::Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    f.write_all(text.as_bytes()).map_err(CliError::from)
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn configs_csv(r: &BenchResult) -> String {
    let mut out = String::from("config,images,top1,top5,mean_ms,p50_ms,p95_ms,p99_ms,throughput_ips,energy_mj,energy_above_idle_mj,meter,exit_shares,load_ms\n");
    for f in &r.configs {
        let e = f.energy.as_ref();
        out.push_str(&format!(
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{},{},{}\n",
            f.name,
            f.images,
            f.top1.map_or(String::new(), |v| format!("{v:.4}")),
            f.top5.map_or(String::new(), |v| format!("{v:.4}")),
            f.latency.mean_ms,
            f.latency.p50_ms,
            f.latency.p95_ms,
            f.latency.p99_ms,
            f.throughput,
            e.map_or(String::new(), |e| format!("{:.3}", e.total_mj)),
            e.map_or(String::new(), |e| format!("{:.3}", e.above_idle_mj)),
            e.map_or(String::new(), |e| e.meter.replace(',', ";")),
            f.exit_shares
                .iter()
                .map(|s| format!("{s:.4}"))
                .collect::<Vec<_>>()
                .join(";"),
            f.load_ms
                .iter()
                .map(|s| format!("{s:.1}"))
                .collect::<Vec<_>>()
                .join(";"),
        ));
    }
    out
}

fn curve_csv(r: &BenchResult) -> String {
    let mut out = String::from("threshold,accuracy,deferral,latency_ms,energy_mj\n");
    for c in &r.curve {
        out.push_str(&format!(
            "{},{:.6},{:.6},{:.4},{}\n",
            c.threshold,
            c.accuracy,
            c.deferral,
            c.latency_ms,
            c.energy_mj.map_or(String::new(), |e| format!("{e:.4}"))
        ));
    }
    out
}

fn print_markdown(
    r: &BenchResult,
    context: &serde_json::Value,
    lat: Option<&Comparison>,
    energy: Option<&Comparison>,
) -> CliResult<()> {
    line(&format!(
        "Benchmark on {} ({}), {} thread(s), {} images, tract {}, cascade at {} >= {}",
        context["cpu"].as_str().unwrap_or("?"),
        context["arch"].as_str().unwrap_or("?"),
        context["threads"],
        context["images"],
        TRACT_VERSION,
        r.metric,
        r.threshold
    ))?;
    line("")?;
    line("| config | top-1 | top-5 | mean ms | p50 ms | p95 ms | p99 ms | images/s | energy mJ (above idle) | exits per stage | load ms |")?;
    line("|---|---|---|---|---|---|---|---|---|---|---|")?;
    for f in &r.configs {
        let energy = f.energy.as_ref().map_or("n/a".to_string(), |e| {
            format!(
                "{:.1} ({:.1}){}",
                e.total_mj,
                e.above_idle_mj,
                if e.estimate { " est." } else { "" }
            )
        });
        line(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
            f.name,
            pct(f.top1),
            pct(f.top5),
            f.latency.mean_ms,
            f.latency.p50_ms,
            f.latency.p95_ms,
            f.latency.p99_ms,
            f.throughput,
            energy,
            f.exit_shares
                .iter()
                .map(|s| format!("{:.0}%", 100.0 * s))
                .collect::<Vec<_>>()
                .join(" / "),
            f.load_ms
                .iter()
                .map(|s| format!("{s:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
        ))?;
    }
    line("")?;
    if let (Some(base), Some(a), Some(b)) = (
        r.memory_before_models,
        r.memory_first_stage_only,
        r.memory_all_stages,
    ) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        line(&format!(
            "memory: first stage resident +{:.1} MiB, every stage loaded +{:.1} MiB (process RSS {:.1} -> {:.1} -> {:.1} MiB, peak {:.1}; the decoded images are in the baseline)",
            mib(a.rss_kib.saturating_sub(base.rss_kib)),
            mib(b.rss_kib.saturating_sub(base.rss_kib)),
            mib(base.rss_kib),
            mib(a.rss_kib),
            mib(b.rss_kib),
            mib(b.peak_rss_kib)
        ))?;
    }
    for (what, unit, c) in [("latency", "ms", lat), ("energy", "mJ", energy)] {
        let Some(c) = c else { continue };
        if let Some(p) = &c.accuracy_at_large_cost {
            line(&format!(
                "{what}: at the large model's cost the cascade reaches {} ({}, {:.2} {unit})",
                pct(Some(p.accuracy)),
                p.name,
                p.cost
            ))?;
        }
        match (&c.cost_at_large_accuracy, c.saving_ratio) {
            (Some(p), Some(ratio)) => line(&format!(
                "{what}: the large model's accuracy costs the cascade {:.2} {unit} ({}): {:.2}x less",
                p.cost, p.name, ratio
            ))?,
            _ => line(&format!("{what}: no threshold reaches the large model's accuracy on this data"))?,
        }
        line(&format!(
            "{what}: the measured cascade point is {}on the Pareto front of the measured points",
            if c.cascade_on_front { "" } else { "NOT " }
        ))?;
    }
    line("(threshold curve derived from the per-image records of the models-alone runs)")?;
    Ok(())
}
