//! `cascade time`: one model's inference timed on one input, with no data folder needed.

use std::path::PathBuf;
use std::process::ExitCode;

use cascade::bench::{self, MAX_RUNS};
use cascade::input::decode_file;
use cascade::ModelSpec;

use super::output::line;
use super::{CliResult, Toggle};

#[derive(Debug, clap::Args)]
pub struct TimeArgs {
    /// The ONNX classifier to time (its manifest `<model>.toml` is read if present).
    #[arg(long, value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// The image to preprocess once and run the model on.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// Timed runs after one untimed warm-up run.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS as i64))]
    pub runs: u32,
    /// Skip the warm-up run (instruction counts: every run is then a timed one).
    #[arg(long)]
    pub no_warm_up: bool,
    /// tract's NHWC convolution rewrite: auto (on for x86_64, where it measured faster).
    #[arg(long, value_enum, default_value_t = Toggle::Auto)]
    pub conv_nhwc: Toggle,
    /// Also time the same model on an Open Inference Protocol server, over REST
    /// (`http(s)://HOST:PORT/v2/models/NAME`) or gRPC (`grpc(s)://HOST:PORT/NAME`),
    /// alternating with the in-process runs. Repeat it to compare servers or bindings in
    /// one run.
    #[arg(long, value_name = "URL")]
    pub remote: Vec<cascade::remote::Endpoint>,
    /// The server's bearer token, from the first line of this file.
    #[arg(
        long,
        value_name = "FILE",
        requires = "remote",
        conflicts_with = "token_env"
    )]
    pub token_file: Option<PathBuf>,
    /// The server's bearer token, from this environment variable.
    #[arg(long, value_name = "VAR", requires = "remote")]
    pub token_env: Option<String>,
    /// Trust only the CA certificates in this PEM file for https:// and grpcs:// servers
    /// (a site's own CA), instead of the public web's roots.
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub ca_cert: Option<PathBuf>,
    /// One JSON object on stdout instead of a readable line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TimeArgs) -> CliResult<ExitCode> {
    let image = decode_file(&args.image)?;
    if !args.remote.is_empty() {
        return remote(args, &image);
    }
    let t = bench::time_inference(
        &ModelSpec::new(&args.model),
        args.conv_nhwc.load_options(),
        &image,
        args.runs as usize,
        !args.no_warm_up,
    )?;
    if args.json {
        line(&serde_json::to_string(&t).map_err(|e| cascade::Error::Internal(e.to_string()))?)?;
    } else {
        let l = &t.latency;
        let work = t
            .multiply_adds
            .map(|m| format!(", {:.1} M multiply-adds", m as f64 / 1e6))
            .unwrap_or_default();
        line(&format!(
            "{}: input {:?}{work}, loaded in {:.0} ms; {} runs: mean {:.2} ms, median {:.2} ms, p95 {:.2} ms",
            t.model, t.input, t.load_ms, l.count, l.mean_ms, l.p50_ms, l.p95_ms
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `time --remote`: in-process inference against each server's round trip.
fn remote(args: TimeArgs, image: &cascade::RgbImage) -> CliResult<ExitCode> {
    use cascade::remote::{Access, Client};
    let access = Access::new(
        super::token_source(&args.token_file, &args.token_env).as_ref(),
        None,
    )?
    .trusting(super::trust_roots(&args.ca_cert)?);
    let clients = args
        .remote
        .iter()
        .map(|endpoint| Client::new(endpoint.clone(), &access))
        .collect::<cascade::Result<Vec<_>>>()?;
    let t = bench::time_remote(
        &ModelSpec::new(&args.model),
        args.conv_nhwc.load_options(),
        &clients,
        image,
        args.runs as usize,
    )?;
    if args.json {
        line(&serde_json::to_string(&t).map_err(|e| cascade::Error::Internal(e.to_string()))?)?;
    } else {
        let l = &t.local;
        let mut text = format!(
            "{}: {} runs each, alternating: in process median {:.2} ms (p95 {:.2})",
            t.model, l.count, l.p50_ms, l.p95_ms
        );
        for r in &t.remote {
            text.push_str(&format!(
                "; {} round trip median {:.2} ms (p95 {:.2}), {:.2}x",
                r.endpoint,
                r.latency.p50_ms,
                r.latency.p95_ms,
                r.latency.p50_ms / l.p50_ms
            ));
        }
        text.push_str(if t.same_class {
            "; same class every run"
        } else {
            "; classes differed"
        });
        line(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
