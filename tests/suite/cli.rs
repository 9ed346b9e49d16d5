//! The `cascade` binary on bad input: a clear one-line error, a non-zero exit, no panic.

use crate::common;

use common::{arg as p, assert_fails_with, cascade};

fn lite0() -> String {
    common::model_arg("efficientnet-lite0")
}

fn tench() -> String {
    p(&common::sample_dir().join("n01440764_tench.JPEG")).to_string()
}

#[test]
fn classify_prints_readable_and_json_results() {
    let out = cascade(&["classify", "--model", &lite0(), &tench()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().next().unwrap().contains(": tench ("), "{text}");

    let out = cascade(&[
        "classify",
        "--json",
        "--model",
        &lite0(),
        &tench(),
        &tench(),
    ]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "tench");
    assert_eq!(lines[0]["class"], 0);
    assert_eq!(lines[0]["top"].as_array().unwrap().len(), 5);
}

#[test]
fn missing_image_file() {
    let out = cascade(&["classify", "--model", &lite0(), "/nonexistent/cat.jpg"]);
    assert_fails_with(&out, "cannot read /nonexistent/cat.jpg");
}

#[test]
fn file_that_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.jpg");
    std::fs::write(&f, "just some text\n").unwrap();
    assert_fails_with(
        &cascade(&["classify", "--model", &lite0(), p(&f)]),
        "not a readable image",
    );
}

#[test]
fn truncated_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(tench()).unwrap();
    let f = dir.path().join("half.jpg");
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let out = cascade(&["classify", "--model", &lite0(), p(&f)]);
    assert_fails_with(&out, "half.jpg: not a readable image");
}

#[test]
fn good_images_are_still_classified_beside_a_bad_one() {
    let out = cascade(&[
        "classify",
        "--model",
        &lite0(),
        "/nonexistent.png",
        &tench(),
    ]);
    assert_fails_with(&out, "nonexistent.png");
    assert!(String::from_utf8_lossy(&out.stdout).contains("tench"));
}

#[test]
fn file_that_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.onnx");
    std::fs::write(&f, "not a protobuf at all").unwrap();
    assert_fails_with(
        &cascade(&["classify", "--model", p(&f), &tench()]),
        "cannot load model",
    );
}

#[test]
fn missing_model() {
    let out = cascade(&["classify", "--model", "/nonexistent/m.onnx", &tench()]);
    assert_fails_with(&out, "cannot read /nonexistent/m.onnx");
}

#[test]
fn models_that_are_not_usable_classifiers() {
    for (fixture, reason) in [
        ("not-an-image.onnx", "not an image classifier"),
        ("two-inputs.onnx", "2 inputs"),
        ("manifest-mismatch.onnx", "disagrees with the model"),
    ] {
        let m = common::fixture(fixture);
        assert_fails_with(&cascade(&["classify", "--model", p(&m), &tench()]), reason);
    }
}

#[test]
fn a_model_with_non_finite_logits_is_an_error_naming_it() {
    for (fixture, value) in [
        ("inf-logit.onnx", "logit 3 is inf"),
        ("nan-logit.onnx", "logit 3 is NaN"),
    ] {
        let m = common::fixture(fixture);
        let out = cascade(&["classify", "--model", p(&m), &tench()]);
        assert_fails_with(&out, value);
        assert_fails_with(&out, fixture);
        // As a later stage too: the cascade does not answer from a broken stage.
        let tiny = common::fixture("tiny-10class.onnx");
        let out = cascade(&[
            "classify",
            "--stage",
            p(&tiny),
            "--stage",
            p(&m),
            "--threshold",
            "1",
            &tench(),
        ]);
        assert_fails_with(&out, "not finite");
    }
}

#[test]
fn empty_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = cascade(&["eval", "--model", &lite0(), "--data", p(dir.path())]);
    assert_fails_with(&out, "no images");
}

#[test]
fn zero_threads() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["--threads", "0", "classify", "--model", &lite0(), &tench()])
        .output()
        .unwrap();
    assert_fails_with(&out, "must be at least 1");
}

#[test]
fn absurd_thread_counts_are_refused_at_once() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args([
            "--threads",
            "100000",
            "classify",
            "--model",
            &lite0(),
            &tench(),
        ])
        .output()
        .unwrap();
    assert_fails_with(&out, "at most");
}

#[test]
fn threshold_out_of_range() {
    let l0 = lite0();
    let out = cascade(&[
        "classify",
        "--stage",
        &l0,
        "--stage",
        &l0,
        "--threshold",
        "1.5",
        &tench(),
    ]);
    assert_fails_with(&out, "outside 0..=1");
}

#[test]
fn a_single_stage_is_not_a_cascade() {
    let out = cascade(&["classify", "--stage", &lite0(), &tench()]);
    assert_fails_with(&out, "at least two stages");
}

#[test]
fn stages_with_different_class_counts() {
    let tiny = common::fixture("tiny-10class.onnx");
    // --preload loads both up front, so the mismatch is found before any input.
    let out = cascade(&[
        "classify",
        "--preload",
        "--stage",
        &lite0(),
        "--stage",
        p(&tiny),
        &tench(),
    ]);
    assert_fails_with(&out, "outputs 10 classes but stage 0 outputs 1000");
}

#[test]
fn unreadable_later_stage_is_reported_when_needed_or_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("large.onnx");
    std::fs::write(&broken, "garbage").unwrap();
    // Threshold 1: the first input is deferred, so the broken stage is needed at once.
    let out = cascade(&[
        "classify",
        "--stage",
        &lite0(),
        "--stage",
        p(&broken),
        "--threshold",
        "1",
        &tench(),
    ]);
    assert_fails_with(&out, "large.onnx: cannot load model");
    // Threshold 0: never needed, so classification succeeds lazily ...
    let out = cascade(&[
        "classify",
        "--stage",
        &lite0(),
        "--stage",
        p(&broken),
        "--threshold",
        "0",
        &tench(),
    ]);
    assert!(out.status.success());
    // ... while --check finds it up front.
    let out = cascade(&[
        "classify",
        "--check",
        "--stage",
        &lite0(),
        "--stage",
        p(&broken),
        "--threshold",
        "0",
        &tench(),
    ]);
    assert_fails_with(&out, "large.onnx: cannot load model");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let (model, tench) = (lite0(), tench());
    common::assert_closed_stdout_is_success(&[
        "classify", "--model", &model, &tench, &tench, &tench,
    ]);
}

#[test]
fn an_unwritable_output_fails_before_the_work_and_says_write() {
    let dir = tempfile::tempdir().unwrap();
    // The data folder is missing too: the output is checked first, before any model,
    // image or measurement.
    let data = "/nonexistent/data";
    let profile = dir.path().join("no-such-folder/p.toml");
    let out = cascade(&[
        "calibrate",
        "--stage",
        &lite0(),
        "--stage",
        &lite0(),
        "--data",
        data,
        "--budget-ms",
        "100",
        "-o",
        p(&profile),
    ]);
    assert_fails_with(&out, "cannot write");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = cascade(&[
        "bench",
        "--stage",
        &lite0(),
        "--stage",
        &lite0(),
        "--data",
        data,
        "--out",
        &format!("{}/sub", p(&file)),
    ]);
    assert_fails_with(&out, "cannot write");
}

#[test]
fn a_small_memory_budget_refuses_large_images_with_a_clear_error() {
    // 80 MB: Lite0 (about 53 MB to load) fits the 60 MB models' share, and an image may
    // have at most 80 MiB / 4 / 3 = 7 megapixels; the tench photo is far smaller.
    let (l0, t) = (lite0(), tench());
    assert!(
        cascade(&["--max-memory-mb", "80", "classify", "--model", &l0, &t])
            .status
            .success()
    );
    let out = cascade(&["--max-memory-mb", "8", "classify", "--model", &l0, &t]);
    assert_fails_with(&out, "at least 32");
    let out = cascade(&[
        "--max-memory-mb",
        "80",
        "stream",
        "--model",
        &l0,
        "--pix-fmt",
        "rgb24",
        "--size",
        "4000x3000",
    ]);
    assert_fails_with(&out, "4000x3000 pixels is more than");
}

#[test]
fn a_budget_too_small_for_the_first_model_is_refused_before_loading() {
    let out = cascade(&[
        "--max-memory-mb",
        "40",
        "classify",
        "--model",
        &lite0(),
        &tench(),
    ]);
    assert_fails_with(&out, "memory budget: ");
    assert_fails_with(&out, "needs about 53 MB to load");
}

#[test]
fn a_budget_too_small_for_lite2_answers_from_lite0_and_says_so() {
    // 100 MB leaves 75 for models: Lite0 resident (about 41) plus Lite2's load (about 70)
    // does not fit, so every input Lite0 is unsure of is answered by Lite0, counted.
    let data = common::sample_dir();
    let out = cascade(&[
        "--max-memory-mb",
        "100",
        "eval",
        "--stage",
        &lite0(),
        "--stage",
        &common::model_arg("efficientnet-lite2"),
        "--threshold",
        "0.99",
        "--limit",
        "10",
        "--data",
        p(&data),
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("efficientnet-lite2.onnx needs about")
            && stderr.contains("answered by the stage before it"),
        "{stderr}"
    );
    assert!(stdout.contains("stage 0: 100.0%"), "{stdout}");
    assert!(
        stdout.contains("answered early: the next stage does not fit the memory budget"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("load       stage 1"),
        "Lite2 never loads: {stdout}"
    );
}

#[test]
fn huge_durations_are_errors_not_panics() {
    let (l0, t) = (lite0(), tench());
    for args in [
        vec![
            "classify",
            "--stage",
            &l0,
            "--stage",
            &l0,
            "--release-after",
            "1e20",
            &t,
        ],
        vec![
            "stream",
            "--model",
            &l0,
            "--pix-fmt",
            "mjpeg",
            "--stats-every",
            "1e20",
        ],
    ] {
        assert_fails_with(&cascade(&args), "usable number of seconds");
    }
}

#[test]
fn a_closed_stdout_never_loses_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let data = common::sample_dir().display().to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args([
            "--threads",
            "1",
            "calibrate",
            "--stage",
            &lite0(),
            "--stage",
            &lite0(),
        ])
        .args([
            "--data",
            &data,
            "--limit",
            "3",
            "--budget-ms",
            "100000",
            "-o",
            p(&profile),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| true`: the reader is gone before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        cascade::Profile::load(&profile).is_ok(),
        "the profile was written"
    );
    assert!(profile.with_extension("csv").is_file());
}

#[test]
fn a_missing_labels_file_names_the_manifest_that_points_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::copy(common::fixture("tiny-1000class.onnx"), &model).unwrap();
    let manifest = std::fs::read_to_string(common::fixture("tiny-1000class.toml")).unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        format!("{manifest}labels = \"gone.tsv\"\n"),
    )
    .unwrap();
    let out = cascade(&["classify", "--model", p(&model), &tench()]);
    assert_fails_with(
        &out,
        &format!("manifest {}", dir.path().join("m.toml").display()),
    );
    assert_fails_with(&out, "gone.tsv cannot be read");
}

#[test]
fn time_runs_one_model_on_one_image_and_reports_its_work() {
    let photo = common::root().join("assets/images/rocket.jpg");
    let out = common::cascade_ok(&[
        "time",
        "--model",
        &lite0(),
        p(&photo),
        "--runs",
        "3",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["latency"]["count"], 3);
    assert_eq!(v["input"], serde_json::json!([1, 3, 224, 224]));
    assert!(v["multiply_adds"].as_u64().unwrap() > 300_000_000, "{v}");
    // Out-of-range run counts are refused when parsed.
    let out = cascade(&["time", "--model", &lite0(), p(&photo), "--runs", "0"]);
    assert_fails_with(&out, "runs");
}

#[test]
fn info_describes_this_machine_for_people_and_scripts() {
    let out = common::cascade_ok(&["info"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for key in [
        "board:",
        "cpu:",
        "threads:",
        "memory:",
        "energy meter:",
        "governor:",
        "throttling:",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "{key} not in\n{text}"
        );
    }

    let out = common::cascade_ok(&["info", "--json"]);
    let info: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    for key in [
        "board",
        "arch",
        "cores",
        "available_cores",
        "threads",
        "memory",
        "energy_meter",
        "governor",
        "throttling",
    ] {
        assert!(info.get(key).is_some(), "{key} missing: {info}");
    }
    assert_eq!(info["arch"], std::env::consts::ARCH);
    assert!(info["board"].get("device_tree_model").is_some(), "{info}");
    assert!(info["threads"]["threads"].as_u64().unwrap() >= 1, "{info}");
    assert!(!info["threads"]["rule"].as_str().unwrap().is_empty());
    assert!(
        info["memory"]["budget_mb"].as_u64().unwrap() >= 32,
        "{info}"
    );
    assert!(info["energy_meter"]["summary"].is_string(), "{info}");
    assert!(info["throttling"]["state"].is_string(), "{info}");
    for core in info["cores"].as_array().unwrap() {
        assert!(
            core["kind"].is_string() && core["big"].is_boolean(),
            "{core}"
        );
    }
}

/// A labelled folder of two bundled photos, classes `0` and `1` of the tiny test model.
fn tiny_data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (class, image) in [("0", "chelsea.png"), ("1", "coffee.png")] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        let from = common::root().join("assets/images").join(image);
        std::fs::copy(from, dir.path().join(class).join(image)).unwrap();
    }
    dir
}

#[test]
fn board_auto_on_a_machine_no_board_file_matches_warns_and_continues() {
    if cascade::energy::Board::detect().is_some() {
        eprintln!("skipped: this machine is a shipped board");
        return;
    }
    let data = tiny_data();
    let out_dir = data.path().join("out");
    let tiny = p(&common::fixture("tiny-10class.onnx")).to_string();
    let mut args = vec!["bench", "--stage", &tiny, "--stage", &tiny];
    args.extend(["--data", p(data.path()), "--out", p(&out_dir)]);
    // Not asked: no board, quietly, as before.
    let out = common::cascade_ok(&args);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("--board auto"));
    // Asked: a warning saying so, and the bench runs without energy figures.
    args.extend(["--board", "auto"]);
    let out = common::cascade_ok(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: --board auto:")
            && stderr.contains("continuing without a board power model")
            && stderr.contains("rpi4b"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| cascade |"));
}

#[test]
fn an_unknown_board_is_refused_before_any_work_naming_the_choices() {
    let stages = [
        "--stage",
        "a.onnx",
        "--stage",
        "b.onnx",
        "--data",
        "/nonexistent",
    ];
    let bench = [&["bench"][..], &stages, &["--board", "commodore64"]].concat();
    let calibrate = [
        &["calibrate"][..],
        &stages,
        &[
            "--budget-ms=10",
            "-o",
            "/nonexistent/p.toml",
            "--board",
            "commodore64",
        ],
    ]
    .concat();
    for args in [bench, calibrate] {
        let out = cascade(&args);
        assert_fails_with(&out, "board commodore64: unknown board");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for name in ["rpi4b", "rpi5", "auto", "none"] {
            assert!(stderr.contains(name), "{}: {name} not in {stderr}", args[0]);
        }
    }
}

#[test]
fn classify_with_workers_answers_as_one_worker_in_argument_order() {
    // 12 photos (one unreadable in the middle) through Lite0 -> Lite2: three workers must give
    // one worker's answers, exit stages and error, line for line in argument order.
    let mut files: Vec<String> = common::sample_set(12)
        .samples
        .iter()
        .map(|s| p(&s.path).to_string())
        .collect();
    let not_an_image = common::fixture("tiny-10class.onnx");
    files.insert(6, p(&not_an_image).to_string());
    let run = |workers: &str| {
        let mut args = vec![
            "classify",
            "--json",
            "--workers",
            workers,
            "--threshold",
            "0.7",
        ];
        let lite2 = common::model_arg("efficientnet-lite2");
        let stages = ["--stage", &lite0(), "--stage", &lite2].map(String::from);
        args.extend(stages.iter().map(String::as_str));
        args.extend(files.iter().map(String::as_str));
        let out = cascade(&args);
        assert!(
            !out.status.success(),
            "the unreadable file makes the run fail"
        );
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(stderr.matches("error").count(), 1, "{stderr}");
        let answers: Vec<(String, u64, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let path = v["path"].as_str().unwrap().to_string();
                (
                    path,
                    v["class"].as_u64().unwrap(),
                    v["exit_stage"].as_u64().unwrap(),
                )
            })
            .collect();
        answers
    };
    let one = run("1");
    assert_eq!(one.len(), 12);
    let want: Vec<&String> = files.iter().filter(|f| !f.ends_with(".onnx")).collect();
    assert_eq!(one.iter().map(|a| &a.0).collect::<Vec<_>>(), want);
    assert!(
        one.iter().any(|a| a.2 == 0) && one.iter().any(|a| a.2 == 1),
        "{one:?}"
    );
    assert_eq!(run("3"), one);
}
