//! `cascade`: the command-line tool. Argument parsing and printing only; every decision is
//! made in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// See `cascade::memory::Allocator` for why, and what it measured.
#[global_allocator]
static ALLOCATOR: cascade::memory::Allocator = cascade::memory::Allocator;

fn main() -> ExitCode {
    let mut args = cli::Args::parse();
    cli::init_logger(args.verbose, args.quiet);
    let threads = cli::threads(&mut args);
    threads.apply();
    match cli::run(args, threads) {
        Ok(code) => code,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
