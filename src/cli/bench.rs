//! `cascade bench`: each model alone and the cascade, measured in one run, with a Markdown
//! table on stdout and JSON, CSV and SVG files for scripts and people.

use std::path::PathBuf;
use std::process::ExitCode;

use cascade::bench::{self, BenchPlan};
use cascade::energy::Board;
use cascade::runtime::Workers;
use cascade::Threads;

use super::output::{line, progress_bar, status};
use super::{CascadeArgs, CliResult, DataArgs};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub cascade: CascadeArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Board power model for energy when no meter is present: a shipped board's name, a
    /// TOML file, `none`, or `auto` (the default: this machine's board where a shipped
    /// board file matches its device tree; see `cascade info`).
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// Also measure images per second for each model and the cascade at 1..=N workers (one
    /// image per worker, one thread each) and in latency mode (one image, --threads on it)
    /// [default: one per big core]; 0 skips it.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Folder for bench.json, bench.csv, curve.csv and the SVG plots.
    #[arg(long, value_name = "DIR", default_value = "bench-out")]
    pub out: PathBuf,
}

pub fn run(args: BenchArgs, threads: Threads) -> CliResult<ExitCode> {
    let (cascade, _) = args.cascade.resolve()?;
    let plan = BenchPlan {
        board: Board::select(args.board.as_deref())?,
        threads,
        workers: match args.workers {
            Some(0) => None,
            Some(n) => Some(Workers::new(n)?),
            None => Some(Workers::new(cascade::device::default_threads().get())?),
        },
        ..BenchPlan::new(cascade, args.data.spec())
    };
    cascade::output::check_writable_dir(&args.out)?;
    status(&format!(
        "measuring {} models alone and the cascade",
        plan.cascade.stages.len()
    ));
    let bar = progress_bar(0);
    let report = bench::run(&plan, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })?;
    bar.finish_and_clear();
    // Files first: a closed stdout must not cost the user the report.
    let written = report.write_files(&args.out)?;
    line(report.markdown().trim_end())?;
    for path in written {
        status(&format!("wrote {}", path.display()));
    }
    Ok(ExitCode::SUCCESS)
}
