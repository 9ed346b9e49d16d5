//! `cascade stream`: classify frames from a camera, a file or a pipe as they come.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade::tune::curve::Budget;
use cascade::input::frame::{FrameFormat, FrameSize, PixelFormat};
use cascade::energy::{Background, Energy};
use cascade::tune::profile::Profile;
use cascade::stream::{
    source, Answer, BudgetController, Deadline, Event, FrameSource, Policy, Stream,
    StreamClassifier, Summary,
};
use cascade::Cascade;
use serde_json::json;

use super::output::{decision_json, line};
use super::{CliResult, StageArgs};

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
    /// mjpeg (JPEG images back to back). With --device: yuyv or mjpeg [default: mjpeg].
    #[arg(
        long = "pix-fmt",
        value_name = "FORMAT",
        required_unless_present = "device"
    )]
    pub pix_fmt: Option<PixelFormat>,
    /// Frame size of the raw formats (and the size asked of a --device), e.g. 640x480.
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
    /// threshold along the profile's curve as the scenes change. Needs --profile.
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
    /// Print statistics on stderr this often (0: only at the end).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub stats_every: f64,
}

/// How long one wait for a frame may last, so Ctrl-C and statistics are seen promptly.
const POLL: Duration = Duration::from_millis(100);

pub fn run(args: StreamArgs) -> CliResult<ExitCode> {
    if !(args.stats_every.is_finite() && args.stats_every >= 0.0) {
        return Err(invalid(format!(
            "--stats-every {} must be a non-negative number of seconds",
            args.stats_every
        )));
    }
    let profile = load_profile(&args)?;
    let (source, format) = open_source(&args)?;
    let cascade = args.stages.build()?;
    let classifier = classifier(cascade, format, profile.as_ref(), &args)?;
    let policy = if args.no_drop {
        Policy::Block
    } else {
        Policy::NewestWins
    };
    let stop = interrupt_flag();
    let live = if args.meter { live_meter() } else { None };
    let mut stream = Stream::start(source, classifier, policy)?;
    let report = log::max_level() >= log::LevelFilter::Warn;
    let every = (args.stats_every > 0.0).then(|| Duration::from_secs_f64(args.stats_every));
    let mut last_report = Instant::now();
    let mut dropped_since = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            log::info!("interrupted");
            stream.stop();
            break;
        }
        let event = match stream.next(POLL) {
            Ok(event) => event,
            Err(e) => {
                if report {
                    eprint!("{}", summary_text(&stream.summary(), stream.classifier()));
                }
                return Err(e.into());
            }
        };
        match event {
            Event::End => break,
            Event::Idle => {}
            Event::Answered {
                index,
                arrival,
                answer,
            } => {
                let cascade = stream.classifier().cascade();
                let text = if args.json {
                    answered_json(cascade, index, arrival, &answer)
                } else {
                    answered_text(cascade, index, arrival, &answer, dropped_since)
                };
                dropped_since = 0;
                line(&text)?;
            }
            Event::Dropped { index, arrival } => {
                dropped_since += 1;
                if args.json {
                    line(
                        &json!({
                            "frame": index,
                            "t_ms": ms(arrival),
                            "status": "dropped",
                            "reason": "a newer frame arrived before the cascade was free",
                        })
                        .to_string(),
                    )?;
                }
            }
            Event::Skipped { index, reason } => {
                if args.json {
                    line(
                        &json!({"frame": index, "status": "skipped", "reason": reason}).to_string(),
                    )?;
                }
            }
        }
        if let Some(every) = every {
            if report && last_report.elapsed() >= every {
                eprint!("{}", summary_text(&stream.summary(), stream.classifier()));
                last_report = Instant::now();
            }
        }
    }
    let summary = stream.summary();
    if report {
        eprint!("{}", summary_text(&summary, stream.classifier()));
    }
    if let Some(live) = live {
        let name = live.name().to_string();
        match live.finish() {
            Ok(energy) if report => eprint!("{}", live_energy_text(&name, energy, &summary)),
            Ok(_) => {}
            Err(e) => log::warn!("live energy reading failed: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// This machine's energy meter, read over the whole stream, when it has one. A board's
/// power model does not count: the profile's per-stage figures already give its estimate.
fn live_meter() -> Option<Background> {
    let Some(meter) = cascade::energy::detect_system(None, 1) else {
        log::warn!(
            "--meter: this machine has no readable energy meter (powercap, hwmon or vcgencmd)"
        );
        return None;
    };
    match Background::start(meter) {
        Ok(live) => Some(live),
        Err(e) => {
            log::warn!("{e}; the stream runs without live energy figures");
            None
        }
    }
}

/// The live meter's figures for the whole stream, idle power included.
fn live_energy_text(meter: &str, energy: Energy, s: &Summary) -> String {
    let per_frame = if s.classified > 0 {
        format!(
            ", {:.1} mJ per classified frame",
            1e3 * energy.joules / s.classified as f64
        )
    } else {
        String::new()
    };
    format!(
        "  energy measured by {meter}: {:.2} J over {:.1} s ({:.2} W mean, idle included){per_frame}\n",
        energy.joules,
        energy.seconds,
        energy.watts()
    )
}

fn invalid(msg: String) -> super::CliError {
    cascade::Error::InvalidArgument(msg).into()
}

/// The profile, when given; the deadline and the budget need its measured stage costs.
fn load_profile(args: &StreamArgs) -> CliResult<Option<Profile>> {
    let needs = [
        ("--deadline-ms", args.deadline_ms.is_some()),
        ("--budget-ms", args.budget_ms.is_some()),
        ("--budget-mj", args.budget_mj.is_some()),
    ];
    match &args.stages.profile {
        Some(path) => Ok(Some(Profile::load(path)?)),
        None => match needs.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(invalid(format!(
                "{flag} needs --profile (measured stage costs, from `cascade calibrate`)"
            ))),
            None => Ok(None),
        },
    }
}

fn open_source(args: &StreamArgs) -> CliResult<(Box<dyn FrameSource>, FrameFormat)> {
    if let Some(device) = &args.device {
        return open_device(device, args.pix_fmt, args.size);
    }
    // clap requires --pix-fmt unless --device is given.
    let pixel = args.pix_fmt.unwrap_or(PixelFormat::Mjpeg);
    if pixel == PixelFormat::Mjpeg && args.size.is_some() {
        log::warn!("--size is ignored for mjpeg: each JPEG carries its own size");
    }
    let format = FrameFormat::new(pixel, args.size)?;
    Ok((source::open(&args.input, format)?, format))
}

#[cfg(all(feature = "v4l", target_os = "linux"))]
fn open_device(
    device: &Path,
    pixel: Option<PixelFormat>,
    size: Option<FrameSize>,
) -> CliResult<(Box<dyn FrameSource>, FrameFormat)> {
    let camera = cascade::stream::v4l::Camera::open(device, pixel, size)?;
    let format = camera.format();
    log::info!("{}: {format}", device.display());
    Ok((Box::new(camera), format))
}

#[cfg(not(all(feature = "v4l", target_os = "linux")))]
fn open_device(
    device: &Path,
    _: Option<PixelFormat>,
    _: Option<FrameSize>,
) -> CliResult<(Box<dyn FrameSource>, FrameFormat)> {
    Err(invalid(format!(
        "--device {}: this build has no camera support (build on Linux with `--features v4l`), \
         or pipe frames in: rpicam-vid -t 0 --codec mjpeg -o - | cascade stream --pix-fmt mjpeg ...",
        device.display()
    )))
}

fn classifier(
    cascade: Cascade,
    format: FrameFormat,
    profile: Option<&Profile>,
    args: &StreamArgs,
) -> CliResult<StreamClassifier> {
    let mut c = StreamClassifier::new(cascade, format);
    let Some(profile) = profile else {
        return Ok(c);
    };
    if let Some(d) = args.deadline_ms {
        c = c.with_deadline(Deadline::from_profile(d, profile)?);
    }
    let energy = profile.stage_energies_mj();
    if let Some(energy) = &energy {
        c = c.with_stage_energy(energy.clone())?;
    }
    let budget = match (args.budget_ms, args.budget_mj) {
        (Some(ms), _) => Some(Budget::latency_ms(ms)?),
        (None, Some(mj)) => Some(Budget::energy_mj(mj)?),
        (None, None) => None,
    };
    if let Some(budget) = budget {
        let stage_costs = match budget {
            Budget::LatencyMs(_) => profile.stage_latencies_ms(),
            Budget::EnergyMj(_) => energy.ok_or_else(|| {
                invalid(
                    "--budget-mj needs a profile with each stage's energy; calibrate it with \
                     --board (a power model) or on a board with a power meter"
                        .into(),
                )
            })?,
        };
        let controller =
            BudgetController::from_curve(&profile.curve, &stage_costs, profile.threshold, budget)?;
        c = c.with_controller(controller)?;
    }
    Ok(c)
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

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn answered_json(cascade: &Cascade, index: u64, arrival: Duration, a: &Answer) -> String {
    let mut v = decision_json(cascade, &a.decision);
    v["frame"] = index.into();
    v["t_ms"] = ms(arrival).into();
    v["status"] = "classified".into();
    v["answered_by"] = a.answered_by.name().into();
    v["age_ms"] = ms(a.age).into();
    if let Some(t) = a.threshold {
        v["threshold"] = t.into();
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
        cascade::stream::AnsweredBy::Deadline => ", answered early for the deadline",
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

/// The statistics block printed on stderr every few seconds and at the end.
fn summary_text(s: &Summary, classifier: &StreamClassifier) -> String {
    let mut out = format!(
        "stream: {:.1} s, {} frames in ({:.1} fps), {} classified ({:.1} fps), {} dropped, {} skipped\n",
        s.elapsed.as_secs_f64(),
        s.frames_in,
        s.input_fps,
        s.classified,
        s.fps,
        s.dropped,
        s.skipped
    );
    if s.classified == 0 {
        return out;
    }
    if s.exit_shares.len() > 1 {
        let shares: Vec<String> = s
            .exit_shares
            .iter()
            .enumerate()
            .map(|(i, share)| format!("stage {i} {:.1}%", 100.0 * share))
            .collect();
        out += &format!("  exits: {}", shares.join(", "));
        if classifier.deadline().is_some() {
            out += &format!("; {} answered early for the deadline", s.cut_short);
        }
        out.push('\n');
    }
    out += &format!(
        "  latency: mean {:.1} ms, p95 {:.1} ms; arrival to answer: mean {:.1} ms, p95 {:.1} ms\n",
        s.mean_ms, s.p95_ms, s.mean_age_ms, s.p95_age_ms
    );
    if let Some(b) = s.budget {
        let (limit, unit) = (b.budget.value(), b.budget.unit());
        out += &format!(
            "  budget: running mean {:.2} {unit} per frame against {limit:.2} {unit} ({:+.1}%), recent {:.2} {unit}, threshold {:.3}\n",
            b.running_mean,
            100.0 * (b.running_mean / limit - 1.0),
            b.recent_mean,
            b.threshold
        );
    }
    if let Some(e) = s.mean_energy_mj {
        out += &format!("  energy: mean {e:.1} mJ per frame (the profile's per-stage figures)\n");
    }
    out
}
