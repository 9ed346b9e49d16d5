//! `cascade classify`: top classes of each image file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cascade::input::decode_file_sized;
use cascade::runtime::{run_in_order, Decision, Labels, Workers};

use super::output::{decision_json, line};
use super::{CliResult, StageArgs};

#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub stages: StageArgs,
    /// How many classes to show per image (1..=5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub top: u8,
    /// One JSON object per image on stdout instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Images classified at once, each on its own thread with its own copy of the
    /// cascade's state (the models' weights are shared) [default: one per big core;
    /// 1 = latency mode, every tract thread on one image]. Output stays in argument order.
    #[arg(long, value_name = "N")]
    pub workers: Option<Workers>,
    /// Image files to classify.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

pub fn run(args: ClassifyArgs) -> CliResult<ExitCode> {
    let (mut cascade, _) = args.stages.build()?;
    let mut failed = 0usize;
    let workers = args.workers.unwrap_or(Workers::ONE);
    let labels = cascade.labels().clone();
    let stage_count = cascade.stages().len();
    let size = cascade.decode_size();
    let mut write_error: Option<std::io::Error> = None;
    let classified = run_in_order(
        &mut cascade,
        workers,
        args.images.iter(),
        |cascade, path| {
            // A bad image is reported and skipped; the others are still classified.
            Ok(match decode_file_sized(path, size) {
                Ok(image) => {
                    let decision = cascade.classify(&image)?;
                    let json = args.json.then(|| decision_json(cascade, &decision));
                    (path, Ok((decision, json)))
                }
                Err(e) => (path, Err(e)),
            })
        },
        |_, (path, outcome)| {
            let (decision, json) = match outcome {
                Ok(decided) => decided,
                Err(e) => {
                    eprintln!("error: {e}");
                    failed += 1;
                    return Ok(());
                }
            };
            let printed = match json {
                Some(mut v) => {
                    v["path"] = path.display().to_string().into();
                    line(&v.to_string())
                }
                None => print_decision(path, &decision, &labels, stage_count, args.top),
            };
            // Kept as the I/O error it is, so that a closed pipe (`| head`) ends quietly.
            printed.map_err(|e| {
                write_error = Some(e);
                cascade::Error::Internal("standard output is closed".into())
            })
        },
    );
    if let Some(e) = write_error {
        return Err(e.into());
    }
    classified?;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One decision as readable lines: the answer, then the best classes.
fn print_decision(
    path: &Path,
    decision: &Decision,
    labels: &Labels,
    stage_count: usize,
    top: u8,
) -> std::io::Result<()> {
    let stage_note = if stage_count > 1 {
        format!(", stage {}", decision.exit_stage)
    } else {
        String::new()
    };
    let load_note = decision
        .load_time()
        .map(|t| format!(", +{:.0} ms loading", t.as_secs_f64() * 1e3))
        .unwrap_or_default();
    line(&format!(
        "{}: {} ({:.1}%{stage_note}, {:.1} ms{load_note})",
        path.display(),
        labels.name(decision.class),
        100.0 * decision.top.first().map_or(0.0, |r| r.probability),
        decision.compute_time().as_secs_f64() * 1e3,
    ))?;
    for r in decision.top.iter().take(top as usize) {
        line(&format!(
            "  {:6.2}%  {:4}  {}",
            100.0 * r.probability,
            r.class,
            labels.name(r.class)
        ))?;
    }
    Ok(())
}
