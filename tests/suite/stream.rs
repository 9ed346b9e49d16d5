//! `cascade stream` end to end: MJPEG and raw frames from files and pipes, through the real
//! models, with corrupt frames, drops, deadlines, budgets, Ctrl-C and a closed stdout.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{arg as p, cascade, model_arg as model};

fn image(name: &str) -> PathBuf {
    common::sample_dir().join(name)
}

/// Six shared photos of different classes.
fn photos() -> Vec<PathBuf> {
    [
        "n01440764_tench.JPEG",
        "n01530575_brambling.JPEG",
        "n01614925_bald_eagle.JPEG",
        "n01484850_great_white_shark.JPEG",
        "n01514859_hen.JPEG",
        "n01582220_magpie.JPEG",
    ]
    .iter()
    .map(|n| image(n))
    .collect()
}

/// The JSON lines of a successful run (for `stream --json`, the frames' lines: the summary
/// line that ends them is checked to be there, last, and left out), and its stderr.
fn ok(out: &Output) -> (Vec<Value>, String) {
    let (lines, summary, stderr) = ok_with_summary(out);
    if let Some(summary) = summary {
        assert_eq!(summary["status"], "summary");
    }
    (lines, stderr)
}

/// [`ok`], with the summary line of `stream --json` apart.
fn ok_with_summary(out: &Output) -> (Vec<Value>, Option<Value>, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = lines.last().filter(|v| v["status"] == "summary").cloned();
    if summary.is_some() {
        lines.pop();
    }
    assert!(
        lines.iter().all(|v| v["status"] != "summary"),
        "the summary is the last line"
    );
    (lines, summary, stderr)
}

fn with_status<'a>(lines: &'a [Value], status: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["status"] == status).collect()
}

/// The number before `what` in the summary's first line, e.g. `4 classified`.
fn summary_count(stderr: &str, what: &str) -> u64 {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("stream:"))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let i = words
        .iter()
        .position(|w| *w == what)
        .unwrap_or_else(|| panic!("{what:?} not in {line}"));
    words[i - 1].parse().unwrap()
}

const CASCADE: [&str; 5] = ["--stage", "", "--stage", "", "--threshold"];

/// `--stage lite0 --stage lite2 --threshold 0.7`.
fn cascade_args() -> Vec<String> {
    let mut v: Vec<String> = CASCADE.iter().map(|s| s.to_string()).collect();
    v[1] = model("efficientnet-lite0");
    v[3] = model("efficientnet-lite2");
    v.push("0.7".into());
    v
}

#[test]
fn mjpeg_stream_gives_the_classes_classify_gives_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let stream_file = dir.path().join("stream.mjpeg");
    let photos = photos();
    let bytes: Vec<u8> = photos
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    std::fs::write(&stream_file, bytes).unwrap();

    let stages = cascade_args();
    let mut args: Vec<&str> = vec!["classify", "--json"];
    args.extend(stages.iter().map(String::as_str));
    args.extend(photos.iter().map(|f| p(f)));
    let (files, _) = ok(&cascade(&args));

    let mut args: Vec<&str> = vec![
        "stream",
        "--pix-fmt",
        "mjpeg",
        "--input",
        p(&stream_file),
        "--no-drop",
        "--json",
    ];
    args.extend(stages.iter().map(String::as_str));
    let (frames, stderr) = ok(&cascade(&args));

    assert_eq!(frames.len(), photos.len(), "{stderr}");
    for (i, (frame, file)) in frames.iter().zip(&files).enumerate() {
        assert_eq!(frame["frame"], i as u64);
        assert_eq!(frame["status"], "classified");
        assert_eq!(
            frame["class"], file["class"],
            "frame {i} vs {}",
            file["path"]
        );
        assert_eq!(frame["exit_stage"], file["exit_stage"], "frame {i}");
        let c = (
            frame["confidence"].as_f64().unwrap(),
            file["confidence"].as_f64().unwrap(),
        );
        assert!((c.0 - c.1).abs() < 1e-6, "frame {i}: {c:?}");
        let by = frame["answered_by"].as_str().unwrap();
        assert!(by == "confident" || by == "last-stage", "{by}");
        assert!(!frame["stages"].as_array().unwrap().is_empty());
        assert!(frame["latency_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(summary_count(&stderr, "classified"), 6);
    assert_eq!(summary_count(&stderr, "dropped"), 0);
    assert!(stderr.contains("exits: stage 0"), "{stderr}");
    assert!(stderr.contains("p95"), "{stderr}");
}

#[test]
fn corrupt_frames_in_the_middle_are_skipped_and_the_rest_classified() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let read = |i: usize| std::fs::read(&photos[i]).unwrap();
    let cut = read(2);
    // A truncated image running into the next, and a well-framed JPEG with no picture.
    let frames: Vec<Vec<u8>> = vec![
        read(0),
        read(1),
        cut[..cut.len() / 2].to_vec(),
        read(3),
        vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xD9],
        read(4),
    ];
    let file = dir.path().join("corrupt.mjpeg");
    std::fs::write(&file, frames.concat()).unwrap();
    let out = cascade(&[
        "stream",
        "--pix-fmt",
        "mjpeg",
        "--input",
        p(&file),
        "--no-drop",
        "--json",
        "--model",
        &model("efficientnet-lite0"),
    ]);
    let (lines, stderr) = ok(&out);
    let classified: Vec<u64> = with_status(&lines, "classified")
        .iter()
        .map(|v| v["frame"].as_u64().unwrap())
        .collect();
    let skipped: Vec<u64> = with_status(&lines, "skipped")
        .iter()
        .map(|v| v["frame"].as_u64().unwrap())
        .collect();
    assert_eq!(classified, [0, 1, 3, 5], "{stderr}");
    assert_eq!(skipped, [2, 4], "{stderr}");
    let names: Vec<&str> = with_status(&lines, "classified")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "tench");
    // One warning per bad frame, and the summary counts them.
    let warnings = stderr.lines().filter(|l| l.starts_with("warning")).count();
    assert_eq!(warnings, 2, "{stderr}");
    assert_eq!(summary_count(&stderr, "skipped"), 2);
    assert_eq!(summary_count(&stderr, "classified"), 4);
}

/// Decodes a photo and squeezes it to `w x h` RGB.
fn raw_rgb(path: &Path, w: u32, h: u32) -> image::RgbImage {
    let img = image::open(path).unwrap().to_rgb8();
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
}

#[test]
fn raw_rgb24_frames_match_classify_and_a_short_tail_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos();
    let mut stream = Vec::new();
    let mut pngs = Vec::new();
    for (i, photo) in photos.iter().take(3).enumerate() {
        let img = raw_rgb(photo, 320, 240);
        let png = dir.path().join(format!("{i}.png"));
        img.save(&png).unwrap();
        pngs.push(png);
        stream.extend_from_slice(img.as_raw());
    }
    // Half a frame at the end: the input does not fit --size.
    stream.extend_from_slice(&vec![128u8; 320 * 240 * 3 / 2]);
    let file = dir.path().join("frames.rgb");
    std::fs::write(&file, &stream).unwrap();
    let lite0 = model("efficientnet-lite0");

    let mut args = vec!["classify", "--json", "--model", &lite0];
    args.extend(pngs.iter().map(|f| p(f)));
    let (files, _) = ok(&cascade(&args));

    let (lines, stderr) = ok(&cascade(&[
        "stream",
        "--pix-fmt",
        "rgb24",
        "--size",
        "320x240",
        "--input",
        p(&file),
        "--no-drop",
        "--json",
        "--model",
        &lite0,
    ]));
    let classified = with_status(&lines, "classified");
    assert_eq!(classified.len(), 3, "{stderr}");
    for (frame, file) in classified.iter().zip(&files) {
        assert_eq!(frame["class"], file["class"]);
        let c = (
            frame["confidence"].as_f64().unwrap(),
            file["confidence"].as_f64().unwrap(),
        );
        assert!((c.0 - c.1).abs() < 1e-6, "{c:?}");
    }
    let skipped = with_status(&lines, "skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["frame"], 3);
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(reason.contains("truncated last frame"), "{reason}");
    assert_eq!(summary_count(&stderr, "skipped"), 1);
}

#[test]
fn yuv420_from_a_pipe_with_an_odd_size() {
    // A uniform mid-grey frame of odd size, written to standard input.
    let (w, h) = (225usize, 171usize);
    let chroma = w.div_ceil(2) * h.div_ceil(2);
    let mut frame = vec![126u8; w * h];
    frame.extend(std::iter::repeat_n(128u8, 2 * chroma));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["--threads", "1", "stream", "--pix-fmt", "yuv420", "--size"])
        .arg(format!("{w}x{h}"))
        .args([
            "--no-drop",
            "--json",
            "--model",
            &model("efficientnet-lite0"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..2 {
        stdin.write_all(&frame).unwrap();
    }
    drop(stdin);
    let (lines, stderr) = ok(&child.wait_with_output().unwrap());
    assert_eq!(with_status(&lines, "classified").len(), 2, "{stderr}");
    assert_eq!(summary_count(&stderr, "skipped"), 0);
}

#[test]
fn frames_faster_than_the_cascade_keep_the_newest_and_count_drops() {
    // 40 frames read from a file in an instant; the cascade needs milliseconds per frame.
    let dir = tempfile::tempdir().unwrap();
    let tench = std::fs::read(image("n01440764_tench.JPEG")).unwrap();
    let file = dir.path().join("burst.mjpeg");
    std::fs::write(&file, tench.repeat(40)).unwrap();
    let (lines, stderr) = ok(&cascade(&[
        "stream",
        "--pix-fmt",
        "mjpeg",
        "--input",
        p(&file),
        "--json",
        "--model",
        &model("efficientnet-lite0"),
    ]));
    let classified = with_status(&lines, "classified");
    let dropped = with_status(&lines, "dropped");
    assert_eq!(lines.len(), 40, "one line per frame: {stderr}");
    assert!(!dropped.is_empty(), "nothing dropped: {stderr}");
    assert_eq!(classified.len() + dropped.len(), 40);
    assert_eq!(summary_count(&stderr, "dropped"), dropped.len() as u64);
    assert_eq!(
        summary_count(&stderr, "classified"),
        classified.len() as u64
    );
    // The last frame is never dropped, and the lines come in frame order.
    assert_eq!(classified.last().unwrap()["frame"], 39);
    let order: Vec<u64> = lines.iter().map(|v| v["frame"].as_u64().unwrap()).collect();
    assert_eq!(order, (0..40).collect::<Vec<_>>());
}

/// A profile for Lite0 -> Lite2 as `cascade calibrate` would write it, with made-up
/// measurements: Lite0 10 ms and 100 mJ, Lite2 30 ms and 300 mJ (energy only `with_energy`),
/// and a straight curve between them.
fn profile(dir: &Path, threshold: f32, with_energy: bool) -> PathBuf {
    profile_with(dir, &[threshold], with_energy)
}

/// A hand-made profile: Lite0 (10 ms) -> Lite2 (30 ms) at `thresholds` (one), or with two
/// thresholds Lite0 -> Lite1 (20 ms) -> Lite2, each exit its own. Its curve: every point
/// `t` steps of 0.1 (each exit at `t`, or the first at `t` and the second at `t / 2`), the
/// share reaching each stage the product of the thresholds before it (as if confidences
/// were uniform), with energy 10 mJ per ms when `with_energy`.
fn profile_with(dir: &Path, thresholds: &[f32], with_energy: bool) -> PathBuf {
    use cascade::energy::EnergyPerRun;
    use cascade::tune::curve::{CurvePoint, Reference};
    use cascade::tune::Latency;
    use cascade::tune::{sha256_file, FitReport, Profile, ProfileStage};
    use cascade::tune::{Budget, Target};
    use cascade::{Metric, Threshold};
    let stage = |name: &str, ms: f64| {
        let path = common::model(name);
        ProfileStage {
            sha256: sha256_file(&path).unwrap(),
            input_size: None,
            choice: None,
            model: path.into(),
            manifest: None,
            load_ms: 500.0,
            latency: Latency {
                count: 10,
                mean_ms: ms,
                p50_ms: ms,
                p95_ms: ms,
                p99_ms: ms,
            },
            energy: with_energy.then(|| EnergyPerRun {
                meter: "test".into(),
                estimate: true,
                total_mj: 10.0 * ms,
                above_idle_mj: 5.0 * ms,
                idle_w: 0.5,
            }),
        }
    };
    let stages = match thresholds.len() {
        1 => vec![
            stage("efficientnet-lite0", 10.0),
            stage("efficientnet-lite2", 30.0),
        ],
        _ => vec![
            stage("efficientnet-lite0", 10.0),
            stage("efficientnet-lite1", 20.0),
            stage("efficientnet-lite2", 30.0),
        ],
    };
    let costs: Vec<f64> = stages.iter().map(|s| s.latency.mean_ms).collect();
    let point = |each: &[f32]| {
        let mut reach = vec![1.0];
        for t in each {
            reach.push(reach[reach.len() - 1] * f64::from(*t));
        }
        CurvePoint {
            thresholds: each.to_vec(),
            accuracy: 0.8,
            deferral: reach[1],
            expected_cost: reach.iter().zip(&costs).map(|(r, c)| r * c).sum(),
            reach,
        }
    };
    let at = |t: f32| match thresholds.len() {
        1 => vec![t],
        _ => vec![t, t / 2.0],
    };
    let profile = Profile {
        created: cascade::tune::now_rfc3339(),
        tool_version: "test".into(),
        board: None,
        cpu: "test".into(),
        arch: std::env::consts::ARCH.into(),
        threads: 1,
        metric: Metric::MaxProb,
        thresholds: thresholds
            .iter()
            .map(|&t| Threshold::new(t).unwrap())
            .collect(),
        stages,
        calibration: FitReport {
            data: "test".into(),
            target: Target::Budget(Budget::latency_ms(20.0).unwrap()),
            margin: 0.0,
            guarantee: false,
            reference: Reference::Labels,
            fit_inputs: 10,
            holdout_inputs: 0,
            fit: point(thresholds),
            holdout: None,
        },
        curve: (0..=10).map(|i| point(&at(i as f32 / 10.0))).collect(),
    };
    let path = dir.join("profile.toml");
    profile.save(&path).unwrap();
    path
}

/// `stream --profile prof --pix-fmt mjpeg --input input --no-drop --json` and `extra`.
fn stream_with(prof: &Path, input: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["stream", "--profile", p(prof), "--pix-fmt", "mjpeg"];
    args.extend(["--input", p(input), "--no-drop", "--json"]);
    args.extend_from_slice(extra);
    cascade(&args)
}

fn mjpeg_of_photos(dir: &Path) -> PathBuf {
    let bytes: Vec<u8> = photos()
        .iter()
        .take(4)
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    let file = dir.join("photos.mjpeg");
    std::fs::write(&file, bytes).unwrap();
    file
}

#[test]
fn a_tight_deadline_answers_unsure_frames_at_the_first_stage() {
    let dir = tempfile::tempdir().unwrap();
    // Threshold 1: every frame would be deferred to Lite2; a 1 ms deadline forbids it.
    let prof = profile(dir.path(), 1.0, false);
    let input = mjpeg_of_photos(dir.path());
    let (lines, stderr) = ok(&stream_with(&prof, &input, &["--deadline-ms", "1"]));
    assert_eq!(lines.len(), 4, "{stderr}");
    for v in &lines {
        assert_eq!(v["answered_by"], "deadline", "{v}");
        assert_eq!(v["exit_stage"], 0);
        assert_eq!(v["stages"].as_array().unwrap().len(), 1);
    }
    assert!(
        stderr.contains("4 answered early for the deadline"),
        "{stderr}"
    );

    // A generous deadline lets them through to the last stage.
    let (lines, _) = ok(&stream_with(&prof, &input, &["--deadline-ms", "60000"]));
    assert!(lines.iter().all(|v| v["answered_by"] == "last-stage"));
}

#[test]
fn a_budget_reports_the_running_mean_and_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let prof = profile(dir.path(), 0.5, true);
    let input = mjpeg_of_photos(dir.path());
    for (flag, value, unit) in [("--budget-ms", "25", "ms"), ("--budget-mj", "250", "mJ")] {
        let (lines, stderr) = ok(&stream_with(&prof, &input, &[flag, value]));
        assert_eq!(lines.len(), 4, "{stderr}");
        // The first frame runs at the profile's threshold.
        assert_eq!(lines[0]["threshold"].as_f64(), Some(0.5));
        assert!(lines.iter().all(|v| v["threshold"].is_number()));
        // Each frame's energy is its executed stages' energy per run.
        for v in &lines {
            let expected = match v["exit_stage"].as_u64() {
                Some(0) => 100.0,
                _ => 400.0,
            };
            assert_eq!(v["energy_mj"].as_f64(), Some(expected), "{v}");
        }
        let against = format!("against {value}.00 {unit}");
        assert!(
            stderr.contains("budget: running mean") && stderr.contains(&against),
            "{stderr}"
        );
    }
}

#[test]
fn a_budget_moves_each_exits_own_threshold() {
    // Three stages whose exits have their own thresholds (0.6 and 0.3, a point of the
    // profile's curve): the controller moves both along the curve, starting there.
    let dir = tempfile::tempdir().unwrap();
    let prof = profile_with(dir.path(), &[0.6, 0.3], true);
    let input = mjpeg_of_photos(dir.path());
    let (lines, stderr) = ok(&stream_with(&prof, &input, &["--budget-ms", "1"]));
    assert_eq!(lines.len(), 4, "{stderr}");
    let thresholds = |v: &serde_json::Value| -> Vec<f64> {
        v["thresholds"]
            .as_array()
            .unwrap_or_else(|| panic!("no thresholds in {v}"))
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect()
    };
    let first = thresholds(&lines[0]);
    assert!(
        (first[0] - 0.6).abs() < 1e-6 && (first[1] - 0.3).abs() < 1e-6,
        "{first:?}"
    );
    assert!(
        lines[0].get("threshold").is_none(),
        "two values: no single threshold"
    );
    // Every frame costs more than 1 ms (below even the curve's cheapest point), so the
    // controller lowers both thresholds, keeping the curve's ratio between them.
    let last = thresholds(&lines[3]);
    assert!(
        last[0] < first[0] && last[1] < first[1],
        "{first:?} -> {last:?}"
    );
    assert!((last[1] - last[0] / 2.0).abs() < 1e-6, "{last:?}");
    assert!(stderr.contains(", thresholds "), "{stderr}");
}

#[test]
fn an_energy_budget_needs_the_stages_energy() {
    let dir = tempfile::tempdir().unwrap();
    let prof = profile(dir.path(), 0.5, false);
    let input = mjpeg_of_photos(dir.path());
    let out = stream_with(&prof, &input, &["--budget-mj", "250"]);
    common::assert_fails_with(&out, "--budget-mj needs a profile with each stage's energy");
}

#[test]
fn deadline_and_budget_need_a_profile() {
    for flag in ["--deadline-ms", "--budget-ms", "--budget-mj"] {
        let out = cascade(&[
            "stream",
            "--pix-fmt",
            "mjpeg",
            "--model",
            &model("efficientnet-lite0"),
            flag,
            "50",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("{flag} needs --profile")),
            "{stderr}"
        );
    }
}

#[test]
fn raw_formats_need_a_size_and_a_missing_input_is_an_error() {
    let lite0 = model("efficientnet-lite0");
    let out = cascade(&["stream", "--pix-fmt", "nv12", "--model", &lite0]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --size"));
    let out = cascade(&[
        "stream",
        "--pix-fmt",
        "mjpeg",
        "--input",
        "/nonexistent/frames.mjpeg",
        "--model",
        &lite0,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot read /nonexistent/frames.mjpeg"),
        "{stderr}"
    );
    let out = cascade(&["stream", "--pix-fmt", "h264", "--model", &lite0]);
    assert!(!out.status.success());
}

#[test]
fn closed_stdout_ends_the_stream_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let tench = std::fs::read(image("n01440764_tench.JPEG")).unwrap();
    let file = dir.path().join("many.mjpeg");
    std::fs::write(&file, tench.repeat(30)).unwrap();
    let lite0 = model("efficientnet-lite0");
    common::assert_closed_stdout_is_success(&[
        "stream",
        "--pix-fmt",
        "mjpeg",
        "--no-drop",
        "--input",
        p(&file),
        "--model",
        &lite0,
    ]);
}

#[test]
fn ctrl_c_prints_the_summary() {
    let tench = std::fs::read(image("n01440764_tench.JPEG")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cascade"))
        // --no-drop: on a loaded machine the second frame can arrive before the first is
        // taken, and newest-wins would then answer only one of them (a hang seen once).
        .args(["--threads", "1", "stream", "--no-drop"])
        .args([
            "--pix-fmt",
            "mjpeg",
            "--model",
            &model("efficientnet-lite0"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A live pipe: two frames, and the writer stays open like a camera would.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&tench).unwrap();
    stdin.write_all(&tench).unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    // Wait for the second frame's line too, then interrupt.
    let started = Instant::now();
    let mut seen = vec![first[0]];
    while seen.iter().filter(|&&b| b == b'\n').count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no second line"
        );
        let mut b = [0u8; 1];
        stdout.read_exact(&mut b).unwrap();
        seen.push(b[0]);
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stream:"), "{stderr}");
    assert_eq!(summary_count(&stderr, "classified"), 2);
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("frame 0 @ "), "{text}");
    assert!(text.contains("tench"), "{text}");
}

#[cfg(not(feature = "v4l"))]
#[test]
fn a_camera_needs_the_v4l_build() {
    let out = cascade(&[
        "stream",
        "--device",
        "/dev/video0",
        "--model",
        &model("efficientnet-lite0"),
    ]);
    common::assert_fails_with(&out, "this build has no camera support");
}

#[cfg(feature = "v4l")]
#[test]
fn a_missing_camera_is_a_clear_error() {
    let out = cascade(&[
        "stream",
        "--device",
        "/dev/no-such-video",
        "--model",
        &model("efficientnet-lite0"),
    ]);
    common::assert_fails_with(&out, "/dev/no-such-video");
}

#[test]
fn meter_reports_the_machine_meter_or_that_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let input = mjpeg_of_photos(dir.path());
    let lite0 = model("efficientnet-lite0");
    let args = ["stream", "--meter", "--pix-fmt", "mjpeg", "--no-drop"];
    let (lines, stderr) = ok(&cascade(
        &[
            &args[..],
            &["--input", p(&input), "--json", "--model", &lite0],
        ]
        .concat(),
    ));
    assert_eq!(lines.len(), 4, "{stderr}");
    // These VMs have no readable meter; a machine with one reports what it measured.
    assert!(
        stderr.contains("has no readable energy meter") || stderr.contains("energy measured by"),
        "{stderr}"
    );
}

// Throughput mode: several frames classified at once, on forks of the cascade.

/// `count` of the repository's photos, back to back as an MJPEG stream.
fn mjpeg_of_samples(dir: &Path, count: usize) -> PathBuf {
    let bytes: Vec<u8> = common::sample_set(count)
        .samples
        .iter()
        .flat_map(|s| std::fs::read(&s.path).unwrap())
        .collect();
    let file = dir.join(format!("samples-{count}.mjpeg"));
    std::fs::write(&file, bytes).unwrap();
    file
}

/// Frame index, class, exit stage and confidence of each classified line.
fn decisions(lines: &[Value]) -> Vec<(u64, u64, u64, f64)> {
    with_status(lines, "classified")
        .iter()
        .map(|v| {
            (
                v["frame"].as_u64().unwrap(),
                v["class"].as_u64().unwrap(),
                v["exit_stage"].as_u64().unwrap(),
                v["confidence"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn workers_give_one_workers_answers_in_frame_order() {
    // A file read at its own pace (--no-drop): nothing is dropped, so every frame must get
    // the answer one worker gives it, and the lines must come in frame order.
    let dir = tempfile::tempdir().unwrap();
    let input = mjpeg_of_samples(dir.path(), 12);
    let stages = cascade_args();
    let mut alone = Vec::new();
    for n in ["1", "2", "3"] {
        let mut args = vec!["stream", "--workers", n, "--pix-fmt", "mjpeg", "--no-drop"];
        args.extend(["--json", "--input", p(&input)]);
        args.extend(stages.iter().map(String::as_str));
        let (lines, summary, stderr) = ok_with_summary(&cascade(&args));
        let order: Vec<u64> = lines.iter().map(|v| v["frame"].as_u64().unwrap()).collect();
        assert_eq!(order, (0..12).collect::<Vec<_>>(), "{n} workers: {stderr}");
        let got = decisions(&lines);
        assert_eq!(got.len(), 12, "{n} workers: {stderr}");
        if alone.is_empty() {
            alone = got;
            assert!(
                alone.iter().any(|d| d.2 == 1) && alone.iter().any(|d| d.2 == 0),
                "both stages answer some frames: {alone:?}"
            );
        } else {
            for (a, b) in alone.iter().zip(&got) {
                assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2), "{n} workers");
                assert!((a.3 - b.3).abs() < 1e-6, "{n} workers: {a:?} vs {b:?}");
            }
        }
        let summary = summary.expect("a summary line");
        assert_eq!(summary["workers"], n.parse::<u64>().unwrap());
        assert_eq!(summary["frames_in"], 12);
        assert_eq!(summary["classified"], 12);
        assert_eq!(summary["unfinished"], 0);
        assert!(summary["fps"].as_f64().unwrap() > 0.0);
        let latency = &summary["latency_ms"];
        assert!(latency["p50"].as_f64().unwrap() <= latency["p95"].as_f64().unwrap());
        let mode = match n {
            "1" => "1 worker".to_string(),
            _ => format!("{n} workers"),
        };
        let line = format!("latency ({mode}): mean");
        assert!(stderr.contains(&line), "{line:?} in {stderr}");
        assert!(stderr.contains("p50"), "{stderr}");
    }
}

#[test]
fn every_frame_is_counted_once_across_workers() {
    // A burst read in an instant, newest frame winning, two corrupt frames among them:
    // however many are dropped (it depends on the machine), each frame has exactly one
    // line, in frame order, and the counts add up to the frames read.
    let dir = tempfile::tempdir().unwrap();
    let tench = std::fs::read(image("n01440764_tench.JPEG")).unwrap();
    let bogus = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xD9];
    let mut bytes = Vec::new();
    for i in 0..42 {
        bytes.extend_from_slice(if i == 10 || i == 25 {
            &bogus[..]
        } else {
            &tench
        });
    }
    let file = dir.path().join("burst.mjpeg");
    std::fs::write(&file, bytes).unwrap();
    let (lines, summary, stderr) = ok_with_summary(&cascade(&[
        "stream",
        "--workers",
        "2",
        "--pix-fmt",
        "mjpeg",
        "--input",
        p(&file),
        "--json",
        "--model",
        &model("efficientnet-lite0"),
    ]));
    let order: Vec<u64> = lines.iter().map(|v| v["frame"].as_u64().unwrap()).collect();
    assert_eq!(order, (0..42).collect::<Vec<_>>(), "{stderr}");
    let count = |status| with_status(&lines, status).len() as u64;
    let summary = summary.expect("a summary line");
    assert_eq!(summary["frames_in"], 42);
    assert_eq!(summary["classified"], count("classified"));
    assert_eq!(summary["dropped"], count("dropped"));
    // The corrupt frames are cut like any other, so they may be dropped before a worker
    // finds them corrupt.
    assert_eq!(summary["skipped"], count("skipped"));
    assert!(count("skipped") <= 2);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["unfinished"], 0);
    assert_eq!(
        count("classified") + count("dropped") + count("skipped"),
        42
    );
    assert_eq!(summary_count(&stderr, "dropped"), count("dropped"));
    // The last frame is never dropped.
    assert_eq!(lines[41]["status"], "classified");
}

#[test]
fn one_budget_controller_steers_every_worker() {
    use cascade::stream::{from_reader, Answer, Event, Policy, Session, SessionConfig};
    use cascade::tune::{Budget, Profile};
    let dir = tempfile::tempdir().unwrap();
    let prof = Profile::load(&profile(dir.path(), 0.5, true)).unwrap();
    let bytes = std::fs::read(mjpeg_of_samples(dir.path(), 9)).unwrap();
    let source = from_reader(
        Box::new(std::io::Cursor::new(bytes)),
        Path::new("memory"),
        cascade::input::FrameFormat::mjpeg(),
    )
    .unwrap();
    let config = SessionConfig {
        budget: Some(Budget::energy_mj(250.0).unwrap()),
        profile: Some(prof.clone()),
        policy: Policy::Block,
        workers: cascade::runtime::Workers::new(3).unwrap(),
        ..SessionConfig::default()
    };
    let mut session = Session::start(prof.builder().build().unwrap(), &config, source).unwrap();
    let mut answers: Vec<Box<Answer>> = Vec::new();
    loop {
        match session.next(Duration::from_secs(120)).unwrap() {
            Event::Answered { answer, .. } => answers.push(answer),
            Event::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answers.len(), 9);
    assert!(answers.iter().all(|a| a.thresholds.is_some()));
    let budget = session.finish().summary.budget.expect("a budget");
    // Three workers, one controller: it took the cost of every frame, and its running
    // mean is the mean of every frame's energy.
    assert_eq!(budget.frames, 9);
    let energies: Vec<f64> = answers.iter().map(|a| a.energy_mj.unwrap()).collect();
    let mean = energies.iter().sum::<f64>() / energies.len() as f64;
    assert!(
        (budget.running_mean - mean).abs() < 1e-9,
        "{budget:?} vs {mean}"
    );
}

/// Serves `bytes`, then waits like a live pipe whose writer is still there, until the
/// sender of `open` is dropped.
struct LivePipe {
    bytes: std::io::Cursor<Vec<u8>>,
    open: std::sync::mpsc::Receiver<()>,
}

impl Read for LivePipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.bytes.read(buf)?;
        if n == 0 {
            let _ = self.open.recv();
        }
        Ok(n)
    }
}

#[test]
fn a_failing_frame_is_reported_in_order_and_ends_the_stream() {
    use cascade::input::{FrameFormat, FrameSize, PixelFormat};
    use cascade::runtime::{CascadeBuilder, LoadOptions, ModelSpec, Threshold, Workers};
    use cascade::stream::{from_reader, Event, Policy, Session, SessionConfig};
    use cascade::Cascade;
    // Lite-sized models are not needed: the 10-class fixture answers, and its copy whose
    // logit 3 is NaN fails every frame deferred to it.
    let tiny = ModelSpec::new(common::fixture("tiny-10class.onnx"));
    let colours: [[u8; 3]; 8] = [
        [200, 30, 30],
        [30, 200, 30],
        [30, 30, 200],
        [200, 200, 30],
        [30, 200, 200],
        [200, 30, 200],
        [120, 120, 120],
        [250, 250, 250],
    ];
    let frame = |c: [u8; 3]| image::RgbImage::from_pixel(32, 32, image::Rgb(c));
    let mut alone = Cascade::single(tiny.clone(), LoadOptions::default()).unwrap();
    let mut by_confidence: Vec<(f32, [u8; 3])> = colours
        .iter()
        .map(|&c| (alone.classify(&frame(c)).unwrap().confidence, c))
        .collect();
    by_confidence.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (least, next) = (by_confidence[0].0, by_confidence[1].0);
    assert!(next - least > 1e-4, "{by_confidence:?}");
    // The least confident frame, the only one deferred, goes fifth (index 4).
    let mut order: Vec<[u8; 3]> = by_confidence[1..].iter().map(|x| x.1).collect();
    order.insert(4, by_confidence[0].1);
    let bytes: Vec<u8> = order.iter().flat_map(|&c| frame(c).into_raw()).collect();
    let format =
        FrameFormat::new(PixelFormat::Rgb24, Some(FrameSize::new(32, 32).unwrap())).unwrap();
    for n in 1..=3 {
        let cascade = CascadeBuilder::new()
            .stage(tiny.clone())
            .stage(ModelSpec::new(common::fixture("nan-logit.onnx")))
            .threshold(Threshold::new((least + next) / 2.0).unwrap())
            .build()
            .unwrap();
        let (writer, open) = std::sync::mpsc::channel::<()>();
        let pipe = LivePipe {
            bytes: std::io::Cursor::new(bytes.clone()),
            open,
        };
        let source = from_reader(Box::new(pipe), Path::new("pipe"), format).unwrap();
        let config = SessionConfig {
            policy: Policy::Block,
            workers: Workers::new(n).unwrap(),
            ..SessionConfig::default()
        };
        let mut session = Session::start(cascade, &config, source).unwrap();
        let mut answered = Vec::new();
        let error = loop {
            match session.next(Duration::from_secs(120)) {
                Ok(Event::Answered { index, answer, .. }) => {
                    assert_eq!(answer.decision.exit_stage, 0);
                    answered.push(index);
                }
                Ok(Event::Idle) => panic!("{n} workers: no error after 120 s: a hang"),
                Ok(other) => panic!("{n} workers: unexpected {other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            answered,
            [0, 1, 2, 3],
            "{n} workers: the frames before it, in order"
        );
        assert!(error.to_string().contains("NaN"), "{error}");
        // The input is still open, yet the stream has ended.
        assert!(matches!(session.next(Duration::ZERO), Ok(Event::End)));
        let summary = session.finish().summary;
        assert_eq!((summary.classified, summary.failed), (4, 1), "{summary:?}");
        assert_eq!((summary.dropped, summary.skipped), (0, 0));
        assert_eq!(
            summary.classified + summary.failed + summary.unfinished,
            summary.frames_in,
            "{summary:?}"
        );
        drop(writer);
    }
}

#[test]
fn workers_default_to_one_per_default_thread() {
    // As for classify and eval: one worker per default thread (the big cores) unless
    // --workers says otherwise.
    let info = common::cascade_ok(&["info", "--json"]);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    let default = info["threads"]["threads"].as_u64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = mjpeg_of_photos(dir.path());
    let lite0 = model("efficientnet-lite0");
    let mut args = vec!["stream", "--pix-fmt", "mjpeg", "--no-drop", "--json"];
    args.extend(["--input", p(&input), "--model", &lite0]);
    let (lines, summary, stderr) = ok_with_summary(&cascade(&args));
    assert_eq!(lines.len(), 4, "{stderr}");
    assert_eq!(summary.expect("a summary line")["workers"], default);
}
