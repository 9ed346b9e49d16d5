//! `cascade eval`: accuracy and latency over a labelled folder.

use std::process::ExitCode;

use cascade::runtime::Workers;
use cascade::tune::evaluate;
use cascade::tune::LayoutKind;
use cascade::Threads;

use super::output::{line, progress_bar};
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
    /// Images evaluated at once, each on its own thread with its own copy of the cascade's
    /// state (the models' weights are shared) [default: one per big core; 1 = latency
    /// mode, every tract thread on one image].
    #[arg(long, value_name = "N")]
    pub workers: Option<Workers>,
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
    let workers = args.workers.unwrap_or(Workers::ONE);
    let report = evaluate(&mut cascade, &dataset, workers, |done, _| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

    let summary = report.summary(&cascade, threads, &args.data.data);
    if args.json {
        let json = serde_json::to_string(&summary)
            .map_err(|e| cascade::Error::Internal(format!("eval summary as JSON: {e}")))?;
        line(&json)?;
    } else {
        line(summary.text().trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}
