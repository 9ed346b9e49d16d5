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

fn ok(out: &Output) -> (Vec<Value>, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, stderr)
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
            model: path,
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
    let point = |t: f32| CurvePoint {
        thresholds: vec![t],
        accuracy: 0.8,
        reach: vec![1.0, f64::from(t)],
        deferral: f64::from(t),
        expected_cost: 10.0 + 30.0 * f64::from(t),
    };
    let profile = Profile {
        created: cascade::tune::now_rfc3339(),
        tool_version: "test".into(),
        board: None,
        cpu: "test".into(),
        arch: std::env::consts::ARCH.into(),
        threads: 1,
        metric: Metric::MaxProb,
        thresholds: vec![Threshold::new(threshold).unwrap()],
        stages: vec![
            stage("efficientnet-lite0", 10.0),
            stage("efficientnet-lite2", 30.0),
        ],
        calibration: FitReport {
            data: "test".into(),
            target: Target::Budget(Budget::latency_ms(20.0).unwrap()),
            margin: 0.0,
            guarantee: false,
            reference: Reference::Labels,
            fit_inputs: 10,
            holdout_inputs: 0,
            fit: point(threshold),
            holdout: None,
        },
        curve: (0..=10).map(|i| point(i as f32 / 10.0)).collect(),
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
