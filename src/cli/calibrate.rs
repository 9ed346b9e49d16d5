//! `cascade calibrate`: measure each stage, fit the exit threshold to a budget, write a
//! profile and the whole threshold curve.

use std::path::PathBuf;
use std::process::ExitCode;

use cascade::energy::Board;
use cascade::tune::calibrate::{self, CalibrationPlan, Progress, DEFAULT_HOLDOUT};
use cascade::tune::curve;
use cascade::tune::{Choices, Confidence, Target};
use cascade::{CascadeBuilder, Metric, ModelSpec, Threads};

use super::output::{line, progress_bar, status};
use super::{CliResult, DataArgs, RemoteArgs, Toggle};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["budget_ms", "budget_mj", "min_accuracy"]))]
pub struct CalibrateArgs {
    /// A cascade stage, cheapest first; repeat for each stage (at least two). `MODEL@SIZE`
    /// runs it at a square input of SIZE pixels.
    /// A URL, http(s)://HOST:PORT/v2/models/NAME, is a model on a server: its round trip
    /// from here is what is measured.
    #[arg(long = "stage", value_name = "MODEL.onnx[@SIZE]|URL", required = true)]
    pub stages: Vec<ModelSpec>,
    /// Confidence metric the threshold applies to.
    #[arg(long, default_value = "max-prob")]
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
    #[arg(long, default_value_t = DEFAULT_HOLDOUT, value_name = "SHARE")]
    pub holdout: f64,
    /// Confidence of the bounds reported on the held-out inputs (accuracy at least,
    /// expected cost at most; exact Clopper-Pearson bounds).
    #[arg(long, default_value_t = Confidence::DEFAULT.get(), value_name = "LEVEL")]
    pub confidence: f64,
    /// Choose only thresholds whose bounds on the held-out inputs meet the target at
    /// --confidence (Learn-then-Test), instead of the best fitted point.
    #[arg(long, conflicts_with = "margin")]
    pub guarantee: bool,
    /// Board power model for energy when no meter is present: a shipped board's name, a
    /// TOML file, `none`, or `auto` (the default: this machine's board where a shipped
    /// board file matches its device tree; see `cascade info`).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Where to write the profile.
    #[arg(short, long, value_name = "PROFILE.toml")]
    pub output: PathBuf,
    /// Where to write the whole threshold curve as CSV (default: the profile path, .csv).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// tract's NHWC convolution rewrite: auto measures it on and off for each stage and keeps
    /// the faster (a near-tie keeps it off); on or off skips measuring it.
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: CalibrateArgs, threads: Threads) -> CliResult<ExitCode> {
    let target = Target::from_flags(args.budget_ms, args.budget_mj, args.min_accuracy)?
        .ok_or_else(|| {
            cascade::Error::InvalidArgument(
                "give --budget-ms, --budget-mj or --min-accuracy".into(),
            )
        })?;
    let stages = CascadeBuilder {
        stages: args.stages.clone(),
        ..CascadeBuilder::new()
    }
    .served_manifests(&args.remote.manifests)?
    .stages;
    let plan = CalibrationPlan {
        metric: args.metric,
        options: args.conv_nhwc.load_options(),
        measure: Choices {
            conv_nhwc: args.conv_nhwc.chosen().is_none(),
            threads: true,
        },
        margin: args.margin,
        holdout: args.holdout,
        confidence: Confidence::new(args.confidence)?,
        guarantee: args.guarantee,
        board: Board::select(args.board.as_deref())?,
        threads,
        access: args.remote.access()?,
        ..CalibrationPlan::new(stages, args.data.spec(), target)
    };
    // Before an hour of measuring, not after it.
    let csv_path = args
        .csv
        .clone()
        .unwrap_or_else(|| args.output.with_extension("csv"));
    cascade::output::check_writable(&args.output)?;
    cascade::output::check_writable(&csv_path)?;
    let bar = progress_bar(0);
    let c = calibrate::run(&plan, |p| match p {
        Progress::Observing { done, total } => {
            bar.set_length(total as u64);
            bar.set_message(format!("images through all {} stages", plan.stages.len()));
            bar.set_position(done as u64);
        }
        Progress::Measuring { stage, .. } => {
            bar.finish_and_clear();
            status(&format!("measuring stage {stage} ..."));
        }
    })?;
    bar.finish_and_clear();

    // Files first: a closed stdout must not cost the user the profile.
    c.profile.save(&args.output)?;
    curve::write_csv(&c.profile.curve, &csv_path)?;

    line(c.report().trim_end())?;
    status(&format!(
        "wrote      {} and {}",
        args.output.display(),
        csv_path.display()
    ));
    Ok(ExitCode::SUCCESS)
}
