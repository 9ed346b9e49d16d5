//! `cascade info`: what the runtime sees of this machine, for people or (`--json`) scripts.

use std::process::ExitCode;

use cascade::device::DeviceInfo;
use cascade::Threads;

use super::output::line;
use super::CliResult;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// One JSON object instead of the lines for people.
    #[arg(long)]
    pub json: bool,
}

/// `given` is the `--threads` given on the command line, if any.
pub fn run(args: InfoArgs, given: Option<Threads>) -> CliResult<ExitCode> {
    let info = DeviceInfo::of_this_machine();
    if args.json {
        line(&serde_json::to_string_pretty(&info).map_err(std::io::Error::other)?)?;
    } else {
        line(info.report().trim_end())?;
        if let Some(threads) = given {
            line(&format!("{:<13} {threads} (--threads)", "this run:"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
