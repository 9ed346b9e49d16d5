//! `cascade`: the command-line tool. Argument parsing and printing only; every decision is
//! made in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// glibc raises its mmap threshold each time a large block is freed; after that, decode and
/// resize buffers of varying sizes come from the heap and fragment it for good. Measured
/// with `/usr/bin/time -v cascade --threads 1 eval --stage lite0 --stage lite2` over the 500
/// shared images: 949 MB peak RSS with glibc's default, 113 MB with a fixed 1 MiB threshold,
/// which keeps every large buffer in its own mapping, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_buffers_out_of_the_heap() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread
    // is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_buffers_out_of_the_heap() {}

fn main() -> ExitCode {
    keep_large_buffers_out_of_the_heap();
    let args = cli::Args::parse();
    cli::init_logger(args.verbose, args.quiet);
    args.threads.apply();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
