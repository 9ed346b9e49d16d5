//! `cascade search`: the best cascade (models, sizes, stages, thresholds) for a budget,
//! from a zoo of candidates, with its front written as Markdown, CSV, JSON and SVG.

use std::path::PathBuf;
use std::process::ExitCode;

use cascade::energy::Board;
use cascade::runtime::Workers;
use cascade::search::{
    self, default_zoo, Candidate, Observed, Progress, SearchPlan, DEFAULT_MAX_STAGES,
};
use cascade::tune::calibrate::DEFAULT_HOLDOUT;
use cascade::tune::DataSpec;
use cascade::tune::{Confidence, Target};
use cascade::{Metric, ModelSpec, Threads};

use super::output::{line, progress_bar, status};
use super::{CliResult, RemoteArgs, Toggle};

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["data", "records"]))]
pub struct SearchArgs {
    /// A candidate model, `MODEL.onnx`, `MODEL.onnx@SIZE` or a served model's URL (with
    /// --manifest, --token-file as for a cascade's stages); repeat for each [default:
    /// every model with a manifest in --models, at its native size and 32 and 64 pixels
    /// below].
    #[arg(long = "model", value_name = "MODEL.onnx[@SIZE]")]
    pub models: Vec<ModelSpec>,
    /// Where the default zoo's models are.
    #[arg(long = "models", value_name = "DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Longest cascade tried.
    #[arg(long, default_value_t = DEFAULT_MAX_STAGES, value_name = "N")]
    pub max_stages: usize,
    /// Labelled image folder: `<synset>_*.JPEG` files, or one subfolder per class.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Class list to label the folder with (default: the first model's labels).
    #[arg(long, value_name = "FILE")]
    pub classes: Option<PathBuf>,
    /// Use only the first N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Replay a search's saved `records.json` (every candidate's answer on every image and
    /// its measured cost) for another target, without running any model.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data", "models", "board"])]
    pub records: Option<PathBuf>,
    /// Best cascade whose expected latency per image is at most this many milliseconds.
    #[arg(long, value_name = "MS", conflicts_with_all = ["budget_mj", "min_accuracy"])]
    pub budget_ms: Option<f64>,
    /// Best cascade whose expected energy per image is at most this many millijoules.
    #[arg(long, value_name = "MJ", conflicts_with = "min_accuracy")]
    pub budget_mj: Option<f64>,
    /// Cheapest cascade whose accuracy reaches this share (0..1, e.g. 0.89).
    #[arg(long, value_name = "SHARE")]
    pub min_accuracy: Option<f64>,
    /// Confidence metric the thresholds apply to.
    #[arg(long, default_value = "max-prob")]
    pub metric: Metric,
    /// Share of the images held out to check the best cascade on.
    #[arg(long, default_value_t = DEFAULT_HOLDOUT, value_name = "SHARE")]
    pub holdout: f64,
    /// Confidence of the bounds reported on the held-out images.
    #[arg(long, default_value_t = Confidence::DEFAULT.get(), value_name = "LEVEL")]
    pub confidence: f64,
    /// Choose only a cascade whose bounds on the held-out images meet the target
    /// (Learn-then-Test).
    #[arg(long)]
    pub guarantee: bool,
    /// Board power model for energy when no meter is present (see `calibrate --board`).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Folder for search.md, search.csv, search.json, search.svg and records.json (the
    /// per-candidate runs, for --records).
    #[arg(long, value_name = "DIR", default_value = "search")]
    pub out: PathBuf,
    /// Where to write the best cascade's profile (for --profile).
    #[arg(short, long, value_name = "PROFILE.toml")]
    pub output: Option<PathBuf>,
    /// Images run at once while observing, each on its own thread [default: one per big
    /// core, tract on one thread each]; the cost measurement runs one at a time.
    #[arg(long, value_name = "N")]
    pub workers: Option<Workers>,
    /// Print the JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// tract's NHWC convolution rewrite (auto: on for x86_64).
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: SearchArgs, threads: Threads) -> CliResult<ExitCode> {
    let target = Target::from_flags(args.budget_ms, args.budget_mj, args.min_accuracy)?;
    if args.output.is_some() && target.is_none() {
        let msg = "--output writes the best cascade's profile: give --budget-ms, --budget-mj or --min-accuracy";
        return Err(cascade::Error::InvalidArgument(msg.into()).into());
    }
    let candidates = if args.records.is_some() {
        Vec::new()
    } else if args.models.is_empty() {
        default_zoo(&args.models_dir)?
    } else {
        let mut specs = args.models.clone();
        ModelSpec::give_served_manifests(&mut specs, &args.remote.manifests)?;
        specs.into_iter().map(Candidate::new).collect()
    };
    let data = DataSpec {
        classes: args.classes.clone(),
        limit: args.limit,
        ..DataSpec::new(args.data.clone().unwrap_or_default())
    };
    let plan = SearchPlan {
        target,
        metric: args.metric,
        options: args.conv_nhwc.load_options(),
        max_stages: args.max_stages,
        holdout: args.holdout,
        confidence: Confidence::new(args.confidence)?,
        guarantee: args.guarantee,
        board: Board::select(args.board.as_deref())?,
        threads,
        workers: args.workers.unwrap_or(Workers::ONE),
        access: args.remote.access()?,
        ..SearchPlan::new(candidates, data)
    };
    if let Some(out) = &args.output {
        cascade::output::check_writable(out)?;
    }
    let observed = match &args.records {
        Some(path) => Observed::load(path)?,
        None => observe(&plan)?,
    };
    status(&format!(
        "replaying {} cascades ...",
        search::cascades(observed.candidates.len(), plan.max_stages).len()
    ));
    let result = search::select(&observed, &plan)?;
    let files = result.write(&args.out)?;
    let saved = match &args.records {
        Some(_) => String::new(),
        None => {
            let path = args.out.join("records.json");
            observed.save(&path)?;
            format!("{}, ", path.display())
        }
    };
    let profile = match &args.output {
        Some(path) => {
            match result.best_profile()? {
                Some(p) => {
                    p.save(path)?;
                    Some(path)
                }
                None => {
                    status("the best is one model alone: no cascade profile written (run it with --model)");
                    None
                }
            }
        }
        None => None,
    };
    if args.json {
        line(&result.json().to_string())?;
    } else {
        let md = result.markdown();
        line(md.trim_end())?;
    }
    status(&format!(
        "wrote      {saved}{}, {}, {}, {}{}",
        files.markdown.display(),
        files.csv.display(),
        files.json.display(),
        files.svg.display(),
        profile.map_or(String::new(), |p| format!(" and {}", p.display()))
    ));
    Ok(ExitCode::SUCCESS)
}

/// Runs every candidate on every image, with a progress bar.
fn observe(plan: &SearchPlan) -> CliResult<Observed> {
    let bar = progress_bar(0);
    let observed = search::observe(plan, |p| match p {
        Progress::Observing {
            candidate,
            candidates,
            name,
            done,
            total,
        } => {
            bar.set_length(total as u64);
            bar.set_message(format!("candidate {}/{candidates}: {name}", candidate + 1));
            bar.set_position(done as u64);
        }
        Progress::Measuring { name, .. } => bar.set_message(format!("measuring {name}")),
    });
    bar.finish_and_clear();
    Ok(observed?)
}
