//! `cascade classify`: top classes of each image file.

use std::path::PathBuf;
use std::process::ExitCode;

use cascade::input::decode_file;

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
    /// Image files to classify.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

pub fn run(args: ClassifyArgs) -> CliResult<ExitCode> {
    let (mut cascade, _) = args.stages.build()?;
    let mut failed = 0usize;
    for path in &args.images {
        // A bad image is reported and skipped; the others are still classified.
        let image = match decode_file(path) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let decision = cascade.classify(&image)?;
        if args.json {
            let mut v = decision_json(&cascade, &decision);
            v["path"] = path.display().to_string().into();
            line(&v.to_string())?;
            continue;
        }
        let labels = cascade.labels();
        let stage_note = if cascade.stages().len() > 1 {
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
        for r in decision.top.iter().take(args.top as usize) {
            line(&format!(
                "  {:6.2}%  {:4}  {}",
                100.0 * r.probability,
                r.class,
                labels.name(r.class)
            ))?;
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
