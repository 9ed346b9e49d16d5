//! ONNX or NNEF on the board? Measures what the lazily loaded second stage pays on its first
//! deferral: the time from file to runnable plan, and the process's peak memory, for one
//! model in either format. tract recommends NNEF for embedded deployment because its graph
//! is already typed and decluttered, so loading skips ONNX's parsing, type inference and
//! decluttering.
//!
//! ```sh
//! cargo run --release --example model_formats -- convert models/efficientnet-lite0.onnx 224 target/tmp/lite0.nnef.tar
//! cargo run --release --example model_formats -- load models/efficientnet-lite0.onnx 224 5
//! cargo run --release --example model_formats -- load target/tmp/lite0.nnef.tar 224 5
//! ```
//!
//! One `load` per process, so that the peak resident memory it prints (`VmHWM`) is that
//! format's alone. Both formats end in the same optimized plan: `load` prints the logits'
//! sum on a constant input, which must agree between the two.

use std::path::Path;
use std::time::{Duration, Instant};

use tract_nnef::internal::{bail, format_err};
use tract_onnx::prelude::*;

type Plan = Arc<TypedRunnableModel>;

fn fact(size: usize) -> InferenceFact {
    f32::fact([1, 3, size, size]).into()
}

/// The decluttered typed graph of an ONNX file: what NNEF stores.
fn decluttered(onnx: &Path, size: usize) -> TractResult<TypedModel> {
    tract_onnx::onnx()
        .model_for_path(onnx)?
        .with_input_fact(0, fact(size))?
        .into_typed()?
        .into_decluttered()
}

fn nnef() -> tract_nnef::internal::Nnef {
    tract_nnef::nnef().with_onnx()
}

fn load(path: &Path, size: usize) -> TractResult<Plan> {
    let typed = if path.extension().is_some_and(|e| e == "onnx") {
        decluttered(path, size)?
    } else {
        nnef().model_for_path(path)?
    };
    typed.into_optimized()?.into_runnable()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: model_formats convert MODEL.onnx SIZE OUT.nnef.tar | load MODEL SIZE RUNS";
    let (Some(cmd), Some(model), Some(size)) = (args.first(), args.get(1), args.get(2)) else {
        bail!(usage)
    };
    let model = Path::new(model);
    let size: usize = size.parse()?;
    match cmd.as_str() {
        "convert" => {
            let out = Path::new(args.get(3).ok_or_else(|| format_err!(usage))?);
            let typed = decluttered(model, size)?;
            nnef().write_to_tar(&typed, std::fs::File::create(out)?)?;
            println!(
                "{} -> {} ({} bytes)",
                model.display(),
                out.display(),
                std::fs::metadata(out)?.len()
            );
        }
        "load" => {
            let runs: usize = args.get(3).map_or(Ok(5), |r| r.parse())?;
            let mut times: Vec<Duration> = Vec::new();
            let mut plan = None;
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                plan = Some(load(model, size)?);
                times.push(start.elapsed());
            }
            times.sort();
            let plan = plan.expect("at least one run");
            let input = Tensor::from_shape(&[1, 3, size, size], &vec![0.25f32; 3 * size * size])?;
            let out = plan.run(tvec![input.into()])?;
            let sum: f32 = out[0].to_plain_array_view::<f32>()?.iter().sum();
            println!(
                "{}: load median {:.1} ms (min {:.1}, {} runs), peak RSS {:.1} MiB, file {} bytes, logits sum {sum:.4}",
                model.display(),
                times[times.len() / 2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times.len(),
                peak_rss_mib(),
                std::fs::metadata(model)?.len(),
            );
        }
        _ => bail!(usage),
    }
    Ok(())
}
