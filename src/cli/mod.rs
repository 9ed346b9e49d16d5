//! Command-line definitions and dispatch.

mod bench;
mod calibrate;
mod classify;
mod data;
mod eval;
mod output;
mod stream;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cascade::{Cascade, CascadeBuilder, LoadOptions, Metric, ModelSpec, Threads, Threshold};
use clap::{Parser, Subcommand, ValueEnum};

pub use output::is_broken_pipe;

/// Conditional execution of cascaded image classifiers: a small model answers the easy
/// inputs, a larger one (loaded only when first needed) the hard ones.
#[derive(Debug, Parser)]
#[command(name = "cascade", version, about, long_about = None)]
pub struct Args {
    /// Threads for tract's matrix kernels (at least 1).
    #[arg(long, global = true, default_value_t = default_threads(), value_name = "N")]
    pub threads: Threads,
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn default_threads() -> Threads {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Threads::new(n).unwrap_or(Threads::new(1).expect("1 is a valid thread count"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify image files (JPEG, PNG) with one model or a cascade.
    Classify(classify::ClassifyArgs),
    /// Measure top-1/top-5 accuracy and latency over a labelled image folder.
    Eval(eval::EvalArgs),
    /// Measure each stage on this device and pick the exit threshold for a budget.
    Calibrate(calibrate::CalibrateArgs),
    /// Classify a camera stream or raw/MJPEG frames from a file or pipe.
    Stream(stream::StreamArgs),
    /// Measure the cascade against each of its models alone, in one run.
    Bench(bench::BenchArgs),
}

/// Which models to run: one `--model`, or a cascade of `--stage`s with exit rules.
#[derive(Debug, clap::Args)]
pub struct StageArgs {
    /// A single ONNX classifier (its manifest `<model>.toml` is read if present).
    #[arg(
        long,
        value_name = "MODEL.onnx",
        conflicts_with_all = ["stages", "profile"],
        required_unless_present_any = ["stages", "profile"]
    )]
    pub model: Option<PathBuf>,
    /// A profile written by `cascade calibrate`: its stages, metric and threshold.
    #[arg(long, value_name = "PROFILE.toml", conflicts_with_all = ["stages", "thresholds", "metric"])]
    pub profile: Option<PathBuf>,
    /// A cascade stage, cheapest first; repeat for each stage (at least two).
    #[arg(long = "stage", value_name = "MODEL.onnx")]
    pub stages: Vec<PathBuf>,
    /// Exit threshold: one for every stage, or repeat once per stage but the last.
    #[arg(long = "threshold", value_name = "T")]
    pub thresholds: Vec<Threshold>,
    /// Confidence metric compared with the threshold [default: max-prob].
    #[arg(long, value_parser = parse_metric)]
    pub metric: Option<Metric>,
    /// Load every stage up front instead of on first need (for latency-critical use).
    #[arg(long)]
    pub preload: bool,
    /// Load every stage once before starting, to fail early on an unreadable model.
    #[arg(long)]
    pub check: bool,
    /// Release a later stage after it has been idle this many seconds.
    #[arg(long, value_name = "SECONDS")]
    pub release_after: Option<f64>,
    /// tract's NHWC convolution rewrite: auto (on for x86_64, where it measured faster).
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    Auto,
    On,
    Off,
}

pub(crate) fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse()
}

impl Toggle {
    pub(crate) fn load_options(self) -> LoadOptions {
        match self {
            Toggle::Auto => LoadOptions::default(),
            Toggle::On => LoadOptions { conv_nhwc: true },
            Toggle::Off => LoadOptions { conv_nhwc: false },
        }
    }
}

/// The default exit threshold when neither `--threshold` nor `--profile` gives one.
pub(crate) const DEFAULT_THRESHOLD: f32 = 0.7;

impl StageArgs {
    fn load_options(&self) -> LoadOptions {
        self.conv_nhwc.load_options()
    }

    /// Builds the single model or the cascade these options describe.
    pub fn build(&self) -> cascade::Result<Cascade> {
        if let Some(model) = &self.model {
            return Cascade::single(ModelSpec::new(model), self.load_options());
        }
        let release_after = match self.release_after {
            None => None,
            Some(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(cascade::Error::InvalidArgument(format!(
                    "--release-after {s} must be a non-negative number of seconds"
                )))
            }
        };
        let builder = match &self.profile {
            Some(path) => cascade::tune::profile::Profile::load(path)?.builder()?,
            None => {
                let thresholds = if self.thresholds.is_empty() {
                    vec![Threshold::new(DEFAULT_THRESHOLD)?]
                } else {
                    self.thresholds.clone()
                };
                self.stages
                    .iter()
                    .fold(CascadeBuilder::new(), |b, s| b.stage(ModelSpec::new(s)))
                    .metric(self.metric.unwrap_or_default())
                    .thresholds(thresholds)
            }
        };
        let builder = builder
            .preload(self.preload)
            .release_after_idle(release_after)
            .load_options(self.load_options());
        let mut cascade = builder.build()?;
        if self.check {
            cascade.check()?;
        }
        Ok(cascade)
    }
}

pub fn init_logger(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("CASCADE_LOG")
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                _ => "debug",
            };
            writeln!(buf, "{level}: {}", record.args())
        })
        .init();
}

/// Runs a parsed command; `Ok` carries the exit code (non-zero when some input failed).
pub fn run(args: Args) -> CliResult<ExitCode> {
    match args.command {
        Command::Classify(c) => classify::run(c),
        Command::Eval(e) => eval::run(e, args.threads),
        Command::Calibrate(c) => calibrate::run(c, args.threads),
        Command::Stream(s) => stream::run(s),
        Command::Bench(b) => bench::run(b, args.threads),
    }
}

/// The CLI's error: a library error or an output failure, both shown on one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Cascade(#[from] cascade::Error),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type CliResult<T> = Result<T, CliError>;
