//! `cascade stream`: classify frames from a camera, a file or a pipe as they come.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade::input::{FrameSize, PixelFormat};
use cascade::runtime::Workers;
use cascade::stream::Input;
use cascade::stream::{
    Answer, AnsweredBy, Event, Policy, Session, SessionConfig, StreamClassifier, Summary,
};
use cascade::tune::Budget;
use cascade::Cascade;
use serde_json::json;

use super::output::{decision_json, line, ms};
use super::{parse_seconds, CliResult, StageArgs};

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub stages: StageArgs,
    /// Where the frames come from: a file, a FIFO, or `-` for standard input.
    #[arg(long, default_value = "-", value_name = "PATH")]
    pub input: PathBuf,
    /// A V4L2 camera instead of --input (Linux; needs a build with `--features v4l`).
    #[arg(long, value_name = "/dev/videoN", conflicts_with = "input")]
    pub device: Option<PathBuf>,
    /// How frames are encoded: rgb24, yuv420 (I420), nv12, yuyv (raw, need --size) or
    /// mjpeg (JPEG images back to back). With --device: yuyv or mjpeg (default: mjpeg; a
    /// camera without it is refused with the format to ask for instead).
    #[arg(
        long = "pix-fmt",
        value_name = "FORMAT",
        required_unless_present = "device"
    )]
    pub pix_fmt: Option<PixelFormat>,
    /// Frame size of the raw formats (and the size asked of a --device), e.g. 640x480.
    /// A --device without it is asked for the smallest size it offers, at the aspect it
    /// is set to, that gives every stage all the pixels it uses.
    #[arg(long, value_name = "WxH")]
    pub size: Option<FrameSize>,
    /// One JSON object per frame on stdout (classified, dropped or skipped).
    #[arg(long)]
    pub json: bool,
    /// Classify every frame, making the reader wait (for files), instead of keeping only
    /// the newest frame when the cascade falls behind.
    #[arg(long)]
    pub no_drop: bool,
    /// Answer a frame at its current stage when deferring it would, by the profile's
    /// measured stage costs, finish later than this after its arrival. Needs --profile.
    #[arg(long, value_name = "MS")]
    pub deadline_ms: Option<f64>,
    /// Keep the running mean compute time per frame within this by moving the exit
    /// thresholds along the profile's curve as the scenes change (every exit's, when
    /// they have their own). Needs --profile.
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<f64>,
    /// Like --budget-ms, for the mean energy per frame, counted from the profile's
    /// measured energy per run of each stage. Needs a profile with stage energies.
    #[arg(long, value_name = "MJ", conflicts_with = "budget_ms")]
    pub budget_mj: Option<f64>,
    /// Read this machine's energy meter (powercap, hwmon or the Pi 5's PMIC) over the
    /// whole stream and report the measured energy at the end. Sampling meters take some
    /// CPU (the Pi 5's runs `vcgencmd` 20 times a second), so it is off by default.
    #[arg(long)]
    pub meter: bool,
    /// Frames classified at once, each on its own thread running its own fork of the
    /// cascade (the models' weights are shared); answers still come out in frame order
    /// [default: one per big core; 1 = latency mode, every tract thread on one frame].
    #[arg(long, value_name = "N")]
    pub workers: Option<Workers>,
    /// Print statistics on stderr this often (0: only at the end).
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = parse_seconds)]
    pub stats_every: Duration,
}

/// How long one wait for a frame may last, so Ctrl-C and statistics are seen promptly.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: StreamArgs) -> CliResult<ExitCode> {
    let input = match &args.device {
        Some(device) => Input::Camera {
            device: device.clone(),
            pixel: args.pix_fmt,
            size: args.size,
        },
        None => Input::Bytes {
            path: args.input.clone(),
            // clap requires --pix-fmt unless --device is given.
            pixel: args.pix_fmt.unwrap_or(PixelFormat::Mjpeg),
            size: args.size,
        },
    };
    // A server's answer after the frame's deadline is of no use to it.
    let wait = args
        .deadline_ms
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1e3).ok());
    let (cascade, profile) = args.stages.build_within(wait)?;
    // After the cascade, which says how large its frames need to be: a camera is asked
    // for no more than that.
    let source = input.open(cascade.decode_size())?;
    let config = SessionConfig {
        profile,
        deadline_ms: args.deadline_ms,
        budget: match (args.budget_ms, args.budget_mj) {
            (Some(ms), _) => Some(Budget::latency_ms(ms)?),
            (None, Some(mj)) => Some(Budget::energy_mj(mj)?),
            (None, None) => None,
        },
        policy: if args.no_drop {
            Policy::Block
        } else {
            Policy::NewestWins
        },
        workers: args.workers.unwrap_or(Workers::ONE),
        live_energy: args.meter,
    };
    let mut session = Session::start(cascade, &config, source)?;
    let stop = interrupt_flag();
    let report = log::max_level() >= log::LevelFilter::Warn;
    let every = (!args.stats_every.is_zero()).then_some(args.stats_every);
    let mut last_report = Instant::now();
    let mut dropped_since = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            log::info!("interrupted");
            session.stop();
            break;
        }
        let event = match session.next(POLL) {
            Ok(event) => event,
            Err(e) => {
                let summary = session.summary();
                if report {
                    eprint!("{}", summary_text(&summary, session.classifier()));
                }
                if args.json {
                    line(&summary_json(&summary).to_string())?;
                }
                return Err(e.into());
            }
        };
        let text = match event {
            Event::End => break,
            Event::Idle => None,
            Event::Answered {
                index,
                arrival,
                answer,
            } => {
                let cascade = session.classifier().cascade();
                let text = if args.json {
                    answered_json(cascade, index, arrival, &answer)
                } else {
                    answered_text(cascade, index, arrival, &answer, dropped_since)
                };
                dropped_since = 0;
                Some(text)
            }
            Event::Dropped { index, arrival } => {
                dropped_since += 1;
                args.json.then(|| {
                    json!({
                        "frame": index,
                        "t_ms": ms(arrival),
                        "status": "dropped",
                        "reason": "a newer frame arrived before the cascade was free",
                    })
                    .to_string()
                })
            }
            Event::Skipped { index, reason } => args.json.then(|| {
                json!({"frame": index, "status": "skipped", "reason": reason}).to_string()
            }),
        };
        if let Some(text) = text {
            line(&text)?;
        }
        if let Some(every) = every {
            if report && last_report.elapsed() >= every {
                eprint!("{}", summary_text(&session.summary(), session.classifier()));
                last_report = Instant::now();
            }
        }
    }
    let with_deadline = session.classifier().deadline().is_some();
    let finished = session.finish();
    if report {
        eprint!("{}", finished.summary.text(with_deadline));
        if let Some(live) = &finished.live_energy {
            eprint!("{}", live.text(&finished.summary));
        }
    }
    if args.json {
        let mut v = summary_json(&finished.summary);
        if let Some(live) = &finished.live_energy {
            v["measured_energy"] = json!({
                "meter": live.meter,
                "joules": live.energy.joules,
                "seconds": live.energy.seconds,
            });
        }
        line(&v.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Set on Ctrl-C; the loop then stops and prints the summary.
fn interrupt_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)) {
        log::warn!("cannot catch Ctrl-C ({e}); it will end the stream without a summary");
    }
    stop
}

/// The exits' thresholds as `thresholds` (one per exit), and as `threshold` too when they
/// are one value (what a two-stage cascade's lines always carried).
fn thresholds_json(v: &mut serde_json::Value, thresholds: &[f32]) {
    if let [first, rest @ ..] = thresholds {
        if rest.iter().all(|t| t == first) {
            v["threshold"] = (*first).into();
        }
    }
    v["thresholds"] = thresholds.into();
}

fn answered_json(cascade: &Cascade, index: u64, arrival: Duration, a: &Answer) -> String {
    let mut v = decision_json(cascade, &a.decision);
    v["frame"] = index.into();
    v["t_ms"] = ms(arrival).into();
    v["status"] = "classified".into();
    v["answered_by"] = a.answered_by.name().into();
    v["age_ms"] = ms(a.age).into();
    if let Some(t) = &a.thresholds {
        thresholds_json(&mut v, t);
    }
    if let Some(e) = a.energy_mj {
        v["energy_mj"] = e.into();
    }
    v.to_string()
}

fn answered_text(
    cascade: &Cascade,
    index: u64,
    arrival: Duration,
    a: &Answer,
    dropped: u64,
) -> String {
    let d = &a.decision;
    let stage = if cascade.stages().len() > 1 {
        format!(", stage {}", d.exit_stage)
    } else {
        String::new()
    };
    let early = match a.answered_by {
        AnsweredBy::Deadline => ", answered early for the deadline",
        AnsweredBy::Memory => ", answered early: the next stage does not fit the memory budget",
        AnsweredBy::Unanswered => ", answered here: the server of the next stage did not answer",
        _ => "",
    };
    let dropped = if dropped > 0 {
        format!(" [{dropped} dropped before it]")
    } else {
        String::new()
    };
    format!(
        "frame {index} @ {:.3} s: {} ({:.1}%{stage}, {:.1} ms{early}){dropped}",
        arrival.as_secs_f64(),
        cascade.labels().name(d.class),
        100.0 * d.top.first().map_or(0.0, |r| r.probability),
        d.compute_time().as_secs_f64() * 1e3,
    )
}

/// The final statistics as the last line of `--json` output, told from the frames' lines by
/// its status: throughput (frames per second) and latency percentiles for scripts.
fn summary_json(s: &Summary) -> serde_json::Value {
    let mut v = json!({
        "status": "summary",
        "elapsed_s": s.elapsed.as_secs_f64(),
        "workers": s.workers,
        "frames_in": s.frames_in,
        "classified": s.classified,
        "dropped": s.dropped,
        "skipped": s.skipped,
        "failed": s.failed,
        "unfinished": s.unfinished,
        "cut_short": s.cut_short,
        "over_memory": s.over_memory,
        "unanswered": s.unanswered,
        "input_fps": s.input_fps,
        "fps": s.fps,
        "exit_shares": s.exit_shares,
        "latency_ms": {"mean": s.mean_ms, "p50": s.p50_ms, "p95": s.p95_ms},
        "age_ms": {"mean": s.mean_age_ms, "p50": s.p50_age_ms, "p95": s.p95_age_ms},
    });
    if let Some(e) = s.mean_energy_mj {
        v["mean_energy_mj"] = e.into();
    }
    if let Some(b) = &s.budget {
        v["budget"] = json!({
            "unit": b.budget.unit(),
            "limit": b.budget.value(),
            "running_mean": b.running_mean,
            "recent_mean": b.recent_mean,
            "frames": b.frames,
        });
        thresholds_json(&mut v["budget"], &b.thresholds);
    }
    v
}

/// The statistics block printed on stderr every few seconds.
fn summary_text(s: &Summary, classifier: &StreamClassifier) -> String {
    s.text(classifier.deadline().is_some())
}
