//! Writing results: plain lines for people, JSON for scripts, progress and status on
//! stderr (silenced by `-q`).

use std::io::Write;

use cascade::{Cascade, Decision};
use serde_json::{json, Value};

/// Writes one line to stdout, flushing so that a pipe reader sees it at once.
pub fn line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

/// Whether status output is wanted (`-q` sets the log level to errors only).
fn chatty() -> bool {
    log::max_level() >= log::LevelFilter::Warn
}

/// A status line on stderr ("measuring ...", "wrote ..."), unless `-q`.
pub fn status(text: &str) {
    if chatty() {
        eprintln!("{text}");
    }
}

/// A progress bar on stderr (hidden with `-q`, and by indicatif when stderr is no terminal).
pub fn progress_bar(len: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !chatty() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A decision as JSON, with class names and each executed stage's model and timings.
pub fn decision_json(cascade: &Cascade, d: &Decision) -> Value {
    let labels = cascade.labels();
    let stages: Vec<Value> = d
        .stages
        .iter()
        .map(|s| {
            json!({
                "stage": s.stage,
                "model": cascade.stages()[s.stage].spec().label(),
                "class": s.class,
                "confidence": s.confidence,
                "preprocess_ms": ms(s.preprocess),
                "inference_ms": ms(s.inference),
                "loaded": s.load.is_some(),
                "load_ms": s.load.map(ms),
            })
        })
        .collect();
    let top: Vec<Value> = d
        .top
        .iter()
        .map(|r| json!({"class": r.class, "name": labels.name(r.class), "probability": r.probability}))
        .collect();
    json!({
        "class": d.class,
        "name": labels.name(d.class),
        "confidence": d.confidence,
        "metric": cascade.metric().name(),
        "exit_stage": d.exit_stage,
        "cut_short": d.cut_short.map(|c| c.name()),
        "latency_ms": ms(d.compute_time()),
        "unanswered_ms": (!d.unanswered.is_zero()).then(|| ms(d.unanswered)),
        "top": top,
        "stages": stages,
    })
}
