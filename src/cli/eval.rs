//! `cascade eval`: accuracy and latency over a labelled folder.

use std::process::ExitCode;

use cascade::tune::evaluate;
use cascade::tune::LayoutKind;
use cascade::Threads;
use serde_json::json;

use super::output::{line, pct, progress_bar};
use super::{CliResult, DataArgs, StageArgs};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub stages: StageArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// One JSON object with every figure on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs, threads: Threads) -> CliResult<ExitCode> {
    let (mut cascade, _) = args.stages.build()?;
    let dataset = args.data.spec().open(cascade.labels())?;
    if dataset.layout == LayoutKind::Unlabeled {
        log::warn!(
            "no image in {} could be labelled with the model's classes; accuracy is not defined (pass --classes?)",
            args.data.data.display()
        );
    }
    let bar = progress_bar(dataset.len());
    let report = evaluate(&mut cascade, &dataset, |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

    let lat = report.latency();
    let shares = report.exit_shares();
    let loads = report.loads();
    let models: Vec<String> = cascade
        .stages()
        .iter()
        .map(|s| s.spec().path.display().to_string())
        .collect();
    if args.json {
        let v = json!({
            "models": models,
            "thresholds": cascade.rules().iter().map(|r| r.threshold.get()).collect::<Vec<_>>(),
            "metric": cascade.metric().name(),
            "threads": threads.get(),
            "data": args.data.data.display().to_string(),
            "images": report.records.len(),
            "labelled": report.labelled_count(),
            "skipped": report.skipped.len(),
            "top1": report.top1(),
            "top5": report.top5(),
            "exit_shares": shares,
            "latency_ms": lat,
            "decode_ms_mean": report.decode_time.as_secs_f64() * 1e3 / report.records.len().max(1) as f64,
            "loads": loads.iter().map(|(s, t)| json!({"stage": s, "load_ms": t.as_secs_f64() * 1e3})).collect::<Vec<_>>(),
        });
        line(&v.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    line(&format!("models     {}", models.join(" -> ")))?;
    if !cascade.rules().is_empty() {
        let t: Vec<String> = cascade
            .rules()
            .iter()
            .map(|r| r.threshold.get().to_string())
            .collect();
        line(&format!(
            "exit rule  {} >= {}",
            cascade.metric(),
            t.join(", ")
        ))?;
    }
    line(&format!(
        "images     {} ({} labelled, {} skipped), {} thread(s)",
        report.records.len(),
        report.labelled_count(),
        report.skipped.len(),
        threads.get()
    ))?;
    line(&format!("top-1      {}", pct(report.top1())))?;
    line(&format!("top-5      {}", pct(report.top5())))?;
    if shares.len() > 1 {
        let s: Vec<String> = shares
            .iter()
            .enumerate()
            .map(|(i, v)| format!("stage {i}: {:.1}%", 100.0 * v))
            .collect();
        line(&format!("exits      {}", s.join(", ")))?;
    }
    line(&format!(
        "latency    mean {:.2} ms, median {:.2} ms, p95 {:.2} ms per image (preprocess + inference)",
        lat.mean_ms, lat.p50_ms, lat.p95_ms
    ))?;
    for (stage, t) in loads {
        line(&format!(
            "load       stage {stage} loaded during the run in {:.0} ms (not in latency)",
            t.as_secs_f64() * 1e3
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
