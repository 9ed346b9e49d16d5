//! Command-line definitions and dispatch. Each command parses its arguments into a library
//! plan, makes one library call and prints; nothing here decides anything a test would
//! want to check.

mod bench;
mod calibrate;
mod classify;
mod eval;
mod info;
mod output;
mod search;
mod stream;
mod time;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cascade::remote::{Access, TokenSource, TrustRoots};
use cascade::tune::DataSpec;
use cascade::tune::Profile;
use cascade::{Cascade, CascadeBuilder, LoadOptions, Metric, ModelSpec, Threads, Threshold};
use clap::{Parser, Subcommand, ValueEnum};

/// Conditional execution of cascaded image classifiers: a small model answers the easy
/// inputs, a larger one (loaded only when first needed) the hard ones.
#[derive(Debug, Parser)]
#[command(name = "cascade", version, about, long_about = None)]
pub struct Args {
    /// Threads for tract's matrix kernels (at least 1) [default: one per big core of a
    /// big.LITTLE chip, else one per core; `cascade info` shows the choice and why].
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<Threads>,
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr: no progress, no "wrote ..." lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Memory the process may use, in MB; images and frames whose decoded pixels would
    /// take more than a quarter of it are refused [default: half of the machine's memory].
    #[arg(long, global = true, value_name = "MB")]
    pub max_memory_mb: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify image files (JPEG, PNG) with one model or a cascade.
    Classify(classify::ClassifyArgs),
    /// Measure top-1/top-5 accuracy and latency over a labelled image folder.
    Eval(eval::EvalArgs),
    /// Measure each stage on this device and pick the exit threshold for a budget.
    Calibrate(calibrate::CalibrateArgs),
    /// Find the best cascade (models, input sizes, stages, thresholds) for a budget.
    Search(search::SearchArgs),
    /// Classify a camera stream or raw/MJPEG frames from a file or pipe.
    Stream(stream::StreamArgs),
    /// Measure the cascade against each of its models alone, in one run.
    Bench(bench::BenchArgs),
    /// Show what the runtime sees: board, cores, memory, energy meter, governor, throttling.
    Info(info::InfoArgs),
    /// Time one model's inference on one image (no data folder needed).
    Time(time::TimeArgs),
}

/// Which cascade to run: a `--profile`, or `--stage`s with exit rules.
#[derive(Debug, clap::Args)]
pub struct CascadeArgs {
    /// A profile written by `cascade calibrate`: its stages, metric and threshold.
    #[arg(long, value_name = "PROFILE.toml", conflicts_with_all = ["stages", "thresholds", "metric"])]
    pub profile: Option<PathBuf>,
    /// A cascade stage, cheapest first; repeat for each stage (at least two). `@SIZE` runs
    /// the model at another square input size (e.g. models/efficientnet-lite0.onnx@192).
    /// A URL, http(s)://HOST:PORT/v2/models/NAME, is a model on an Open Inference Protocol
    /// server (KServe, MLServer, Triton): the board preprocesses, only the tensor travels,
    /// and an input the server does not answer is answered by the stage before it.
    #[arg(long = "stage", value_name = "MODEL.onnx[@SIZE]|URL")]
    pub stages: Vec<ModelSpec>,
    /// Exit threshold: one for every stage, or repeat once per stage but the last [default: 0.7].
    #[arg(long = "threshold", value_name = "T")]
    pub thresholds: Vec<Threshold>,
    /// Confidence metric compared with the threshold: max-prob, margin or entropy [default: max-prob].
    #[arg(long)]
    pub metric: Option<Metric>,
    /// tract's NHWC convolution rewrite: auto (a profile's measured choice per stage, else
    /// on for x86_64), or on/off for every stage.
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// How stages on servers (`--stage URL`) are reached and fed.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The manifest of a stage on a server (input size, layout, normalization, labels:
    /// how the board preprocesses for it); repeat once per served stage, in order.
    /// Without one, the input is as the server's metadata declares it, with ImageNet
    /// normalization assumed.
    #[arg(long = "manifest", value_name = "FILE")]
    pub manifests: Vec<PathBuf>,
    /// The servers' bearer token, from the first line of this file (never on the command
    /// line, never logged or written into a profile).
    #[arg(long, value_name = "FILE", conflicts_with = "token_env")]
    pub token_file: Option<PathBuf>,
    /// The servers' bearer token, from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Most milliseconds a request to a server may take; past it, the input is answered by
    /// the stage before [default: 5000].
    #[arg(long, value_name = "MS")]
    pub remote_timeout_ms: Option<u64>,
    /// Trust only the CA certificates in this PEM file for https:// and grpcs:// servers
    /// (a site's own CA), instead of the public web's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    pub fn access(&self) -> cascade::Result<Access> {
        let access = Access::new(
            token_source(&self.token_file, &self.token_env).as_ref(),
            self.remote_timeout_ms.map(Duration::from_millis),
        )?;
        Ok(access.trusting(trust_roots(&self.ca_cert)?))
    }
}

/// The roots `--ca-cert` names, if it does.
fn trust_roots(file: &Option<PathBuf>) -> cascade::Result<Option<TrustRoots>> {
    file.as_deref().map(TrustRoots::from_pem_file).transpose()
}

/// Where `--token-file` or `--token-env` (they conflict) say the token is.
fn token_source(file: &Option<PathBuf>, env: &Option<String>) -> Option<TokenSource> {
    match (file, env) {
        (Some(file), _) => Some(TokenSource::File(file.clone())),
        (_, Some(var)) => Some(TokenSource::Env(var.clone())),
        _ => None,
    }
}

/// [`CascadeArgs`] or one `--model`, with residency options: what classify, eval and
/// stream run.
#[derive(Debug, clap::Args)]
pub struct StageArgs {
    /// A single ONNX classifier (its manifest `<model>.toml` is read if present);
    /// `@SIZE` runs it at another square input size.
    #[arg(
        long,
        value_name = "MODEL.onnx[@SIZE]",
        conflicts_with_all = ["stages", "profile"],
        required_unless_present_any = ["stages", "profile"]
    )]
    pub model: Option<ModelSpec>,
    #[command(flatten)]
    pub cascade: CascadeArgs,
    /// Load every stage up front instead of on first need (for latency-critical use).
    #[arg(long)]
    pub preload: bool,
    /// Load every stage once before starting, to fail early on an unreadable model.
    #[arg(long)]
    pub check: bool,
    /// Release a later stage after it has been idle this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub release_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    Auto,
    On,
    Off,
}

impl Toggle {
    fn load_options(self) -> LoadOptions {
        LoadOptions {
            conv_nhwc: self.chosen().unwrap_or(LoadOptions::default().conv_nhwc),
            ..LoadOptions::default()
        }
    }

    /// `Some` when the user chose on or off, `None` for auto.
    fn chosen(self) -> Option<bool> {
        match self {
            Toggle::Auto => None,
            Toggle::On => Some(true),
            Toggle::Off => Some(false),
        }
    }
}

/// A non-negative number of seconds that fits a `Duration`.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{s} is not a usable number of seconds"))
}

impl CascadeArgs {
    /// The profile, if one is named, and the cascade it or the stages describe.
    fn resolve(&self) -> cascade::Result<(CascadeBuilder, Option<Profile>)> {
        let (builder, profile) = match &self.profile {
            Some(path) => {
                let profile = Profile::load(path)?;
                (profile.builder(), Some(profile))
            }
            None => (
                self.stages
                    .iter()
                    .cloned()
                    .fold(CascadeBuilder::new(), CascadeBuilder::stage)
                    .metric(self.metric.unwrap_or_default())
                    .thresholds(self.thresholds.iter().copied()),
                None,
            ),
        };
        let builder = builder
            .served_manifests(&self.remote.manifests)?
            .access(self.remote.access()?);
        // An explicit on or off wins over a profile's measured choice; auto keeps it.
        let builder = builder.load_options(self.conv_nhwc.load_options());
        let builder = match self.conv_nhwc.chosen() {
            Some(on) => builder.conv_nhwc(on),
            None => builder,
        };
        Ok((builder, profile))
    }
}

impl StageArgs {
    /// Builds the single model or the cascade these options describe, reading a profile
    /// once; returns the profile too, for the stream's deadline and budget.
    pub fn build(&self) -> cascade::Result<(Cascade, Option<Profile>)> {
        self.build_within(None)
    }

    /// [`StageArgs::build`], with no request to a server waiting longer than `wait`.
    pub fn build_within(
        &self,
        wait: Option<Duration>,
    ) -> cascade::Result<(Cascade, Option<Profile>)> {
        let access = self.cascade.remote.access()?.within(wait);
        if let Some(model) = &self.model {
            let one = CascadeBuilder::new()
                .stage(model.clone())
                .load_options(self.cascade.conv_nhwc.load_options())
                .access(access);
            return Ok((one.alone(0)?, None));
        }
        let (builder, profile) = self.cascade.resolve()?;
        let cascade = builder
            .access(access)
            .preload(self.preload)
            .check(self.check)
            .release_after_idle(self.release_after)
            .build()?;
        Ok((cascade, profile))
    }
}

/// The data-folder options shared by `eval`, `calibrate` and `bench`.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Labelled image folder: `<synset>_*.JPEG` files, or one subfolder per class.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Class list to label the folder with (default: the first model's labels).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl DataArgs {
    fn spec(&self) -> DataSpec {
        DataSpec {
            dir: self.data.clone(),
            classes: self.classes.clone(),
            limit: self.limit,
        }
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

/// The `--threads` given, or the library's default for this machine (logged with the rule
/// that chose it). Also settles `--workers` for the commands that take it: one worker per
/// default thread unless given, and then tract on one thread per worker (its executor is
/// process-wide, so workers would otherwise share and oversubscribe the cores).
pub fn threads(args: &mut Args) -> Threads {
    let workers = match &mut args.command {
        Command::Eval(e) => Some(&mut e.workers),
        Command::Classify(c) => Some(&mut c.workers),
        Command::Search(s) => Some(&mut s.workers),
        Command::Stream(s) => Some(&mut s.workers),
        _ => None,
    };
    let Some(workers) = workers else {
        let threads = args
            .threads
            .unwrap_or_else(cascade::device::default_threads);
        log::info!("tract on {threads} thread(s) (set with --threads)");
        return threads;
    };
    let (chosen, threads) =
        cascade::runtime::workers::settle(*workers, args.threads, cascade::device::default_threads);
    *workers = Some(chosen);
    log::info!(
        "{chosen} worker(s), tract on {threads} thread(s) for each (set with --workers and --threads)"
    );
    threads
}

/// Runs a parsed command with the thread count in effect; `Ok` carries the exit code
/// (non-zero when some input failed).
pub fn run(args: Args, threads: Threads) -> CliResult<ExitCode> {
    if let Some(mb) = args.max_memory_mb {
        cascade::MemoryBudget::from_mb(mb)?.apply();
    }
    match args.command {
        Command::Classify(c) => classify::run(c),
        Command::Eval(e) => eval::run(e, threads),
        Command::Calibrate(c) => calibrate::run(c, threads),
        Command::Search(s) => search::run(s, threads),
        Command::Stream(s) => stream::run(s),
        Command::Bench(b) => bench::run(b, threads),
        Command::Info(i) => info::run(i, args.threads),
        Command::Time(t) => time::run(t),
    }
}

/// The CLI's error: a library error or a failed write to stdout, both shown on one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Cascade(#[from] cascade::Error),
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

pub type CliResult<T> = Result<T, CliError>;

/// Whether an error is stdout having been closed by its reader.
pub fn is_broken_pipe(e: &CliError) -> bool {
    matches!(e, CliError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
}
