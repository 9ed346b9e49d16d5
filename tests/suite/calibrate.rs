//! `cascade calibrate` end to end on a few shared images, and its input checks.

use crate::common;

use common::cascade;

fn path(name: &str) -> String {
    common::model_arg(name)
}

fn data() -> String {
    common::sample_dir().display().to_string()
}

fn calibrate_args<'a>(extra: &[&'a str], l0: &'a str, l2: &'a str, data: &'a str) -> Vec<&'a str> {
    let mut v = vec![
        "calibrate",
        "--stage",
        l0,
        "--stage",
        l2,
        "--data",
        data,
        "--limit",
        "24",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn bad_budgets_are_refused() {
    let (l0, l2, d) = (
        path("efficientnet-lite0"),
        path("efficientnet-lite2"),
        data(),
    );
    for budget in [
        "--budget-ms=0",
        "--budget-ms=-3",
        "--budget-ms=NaN",
        "--budget-mj=inf",
    ] {
        let out = cascade(&calibrate_args(
            &[budget, "-o", "/tmp/never.toml"],
            &l0,
            &l2,
            &d,
        ));
        common::assert_fails_with(&out, "must be a positive number");
    }
    let out = cascade(&calibrate_args(
        &["--min-accuracy=1.5", "-o", "/tmp/never.toml"],
        &l0,
        &l2,
        &d,
    ));
    common::assert_fails_with(&out, "--min-accuracy must be in (0, 1]");
}

#[test]
fn unknown_board_is_refused() {
    let (l0, l2, d) = (
        path("efficientnet-lite0"),
        path("efficientnet-lite2"),
        data(),
    );
    let out = cascade(&calibrate_args(
        &[
            "--budget-ms=30",
            "--board",
            "commodore64",
            "-o",
            "/tmp/never.toml",
        ],
        &l0,
        &l2,
        &d,
    ));
    common::assert_fails_with(&out, "board commodore64");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rpi4b"),
        "lists known boards"
    );
}

#[test]
fn calibrated_profile_drives_classify_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let profile_s = profile.display().to_string();
    let (l0, l2, d) = (
        path("efficientnet-lite0"),
        path("efficientnet-lite2"),
        data(),
    );
    // A generous budget: the best accuracy on these images wins.
    let out = cascade(&calibrate_args(
        &["--budget-ms=100000", "--board", "rpi4b", "-o", &profile_s],
        &l0,
        &l2,
        &d,
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("<- chosen") && stdout.contains("held out"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&profile).unwrap();
    let p: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(p["stages"].as_array().unwrap().len(), 2);
    assert_eq!(p["board"].as_str(), Some("rpi4b"));
    let energy = &p["stages"][0]["energy"];
    assert_eq!(energy["estimate"].as_bool(), Some(true));
    assert!(energy["total_mj"].as_float().unwrap() > 0.0);
    let threshold = p["thresholds"][0].as_float().unwrap();
    let csv = std::fs::read_to_string(profile.with_extension("csv")).unwrap();
    assert!(csv.starts_with("thresholds,accuracy,deferral,expected_cost\n"));
    assert!(csv.lines().count() > 3);

    // classify --profile runs the profile's cascade.
    let tench = common::sample_dir()
        .join("n01440764_tench.JPEG")
        .display()
        .to_string();
    let out = cascade(&["classify", "--json", "--profile", &profile_s, &tench]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "tench");

    // eval --profile reports the profile's threshold.
    let out = cascade(&[
        "eval",
        "--json",
        "--profile",
        &profile_s,
        "--data",
        &d,
        "--limit",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["thresholds"][0].as_f64().unwrap() - threshold).abs() < 1e-6);
}

/// Relative `--stage` paths from the repository root and a profile written elsewhere: the
/// profile works from any directory, and `-q` leaves stderr silent.
#[test]
fn a_profile_written_elsewhere_works_from_any_directory_and_quiet_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let profile = elsewhere.join("p.toml");
    let d = data();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .current_dir(common::root())
        .args(["--threads", "1", "-q", "calibrate"])
        .args(["--stage", "models/efficientnet-lite0.onnx"])
        .args(["--stage", "models/efficientnet-lite2.onnx"])
        .args(["--data", &d, "--limit", "6", "--budget-ms=100000", "-o"])
        .arg(&profile)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "-q prints nothing on stderr: {stderr}");
    let text = std::fs::read_to_string(&profile).unwrap();
    // Stored relative to the profile's folder: each path is relative and, followed from
    // there, reaches the model file (whatever the clone's and the temp dir's common prefix).
    let models: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.strip_prefix("model = "))
        .map(|v| v.trim_matches('"').into())
        .collect();
    assert_eq!(models.len(), 2, "{text}");
    for (stored, name) in models
        .iter()
        .zip(["efficientnet-lite0", "efficientnet-lite2"])
    {
        assert!(stored.is_relative(), "{}", stored.display());
        assert_eq!(
            std::fs::canonicalize(elsewhere.join(stored)).unwrap(),
            std::fs::canonicalize(common::model(name)).unwrap(),
            "stored relative to the profile's folder"
        );
    }

    let tench = common::sample_dir().join("n01440764_tench.JPEG");
    for cwd in [elsewhere.clone(), dir.path().to_path_buf(), "/".into()] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
            .current_dir(&cwd)
            .args(["--threads", "1", "classify", "--json", "--profile"])
            .arg(&profile)
            .arg(&tench)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "from {}: {stderr}", cwd.display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], "tench");
    }
    // A bench with -q is silent on stderr too, and still writes its files.
    let out_dir = dir.path().join("bench");
    let out = cascade(&[
        "-q",
        "bench",
        "--profile",
        common::arg(&profile),
        "--data",
        &d,
        "--limit",
        "3",
        "--out",
        common::arg(&out_dir),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    assert!(out_dir.join("bench.json").is_file());
}

#[test]
fn held_out_bounds_are_reported_and_a_guarantee_refuses_what_it_cannot_promise() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let profile_s = profile.display().to_string();
    let (l0, l2, d) = (
        path("efficientnet-lite0"),
        path("efficientnet-lite2"),
        data(),
    );
    // A budget no bound can promise on 7 held-out inputs: refused, with the reason.
    let out = cascade(&calibrate_args(
        &["--budget-ms=0.001", "--guarantee", "-o", &profile_s],
        &l0,
        &l2,
        &d,
    ));
    common::assert_fails_with(&out, "no threshold is certain enough to keep");
    // A generous one is certified; the profile keeps the bounds, confidence and sample size.
    let out = cascade(&calibrate_args(
        &[
            "--budget-ms=100000",
            "--guarantee",
            "--confidence=0.9",
            "-o",
            &profile_s,
        ],
        &l0,
        &l2,
        &d,
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bounds     at 90% confidence"), "{stdout}");
    let p: toml::Value = toml::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let fit = &p["calibration"];
    assert_eq!(fit["guarantee"].as_bool(), Some(true));
    let held = &fit["holdout"];
    let bounds = &held["bounds"];
    assert_eq!(bounds["confidence"].as_float(), Some(0.9));
    let n = fit["holdout_inputs"].as_integer().unwrap();
    assert_eq!(bounds["inputs"].as_integer(), Some(n));
    // A lower bound below what was seen, an upper bound above it.
    let seen = held["point"]["accuracy"].as_float().unwrap();
    let at_least = bounds["accuracy_at_least"].as_float().unwrap();
    assert!(at_least < seen && at_least >= 0.0, "{at_least} vs {seen}");
    let cost = held["point"]["expected_cost"].as_float().unwrap();
    assert!(bounds["cost_at_most"].as_float().unwrap() >= cost);
    // --guarantee and --margin are two answers to the same worry: one at a time.
    let out = cascade(&calibrate_args(
        &[
            "--budget-ms=100",
            "--guarantee",
            "--margin=0.1",
            "-o",
            &profile_s,
        ],
        &l0,
        &l2,
        &d,
    ));
    common::assert_fails_with(&out, "cannot be used with");
}

/// Calibration measures each stage with tract's `conv_nhwc` rewrite on and off, at one
/// thread and at two, records what won and the medians of all four, and `--profile` loads
/// each stage the way its choice says (checked on the loaded cascade's options, not its
/// speed). An explicit `--conv-nhwc` on one thread leaves nothing to measure: the profile
/// records the one variant that ran.
#[test]
fn a_calibrated_profile_records_each_stages_choice_and_loading_it_applies_them() {
    use cascade::tune::{choose_variant, Profile, TIE_TOLERANCE};
    use cascade::{LoadOptions, Threads};

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let profile_s = profile.display().to_string();
    let (l0, l2, d) = (
        path("efficientnet-lite0"),
        path("efficientnet-lite2"),
        data(),
    );
    // Two threads (the suite's helper runs one), so one thread is measured against two.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
        .args(["--threads", "2"])
        .args(calibrate_args(
            &["--budget-ms=100000", "-o", &profile_s],
            &l0,
            &l2,
            &d,
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = Profile::load(&profile).unwrap();
    for stage in &p.stages {
        let choice = stage.choice.as_ref().expect("a choice per stage");
        let mut measured: Vec<(bool, usize)> = choice
            .measured
            .iter()
            .map(|v| (v.conv_nhwc, v.threads))
            .collect();
        measured.sort();
        assert_eq!(measured, [(false, 1), (false, 2), (true, 1), (true, 2)]);
        assert!(choice.measured.iter().all(|v| v.median_ms > 0.0));
        let winner = choose_variant(&choice.measured, TIE_TOLERANCE).unwrap();
        assert_eq!(
            (choice.conv_nhwc, choice.threads),
            (winner.conv_nhwc, Some(winner.threads))
        );
        // The report names the choice and every alternative's median.
        let line = stdout
            .lines()
            .find(|l| l.contains("chose conv_nhwc"))
            .unwrap_or_else(|| panic!("no choice in the report: {stdout}"));
        assert!(
            line.contains(" <-") && line.matches(" ms").count() == 4,
            "{line}"
        );
    }

    // --profile loads each stage as its choice says.
    let loaded = p.builder().preload(true).build().unwrap();
    for (stage, recorded) in loaded.stages().iter().zip(&p.stages) {
        let choice = recorded.choice.as_ref().unwrap();
        let want = LoadOptions {
            conv_nhwc: choice.conv_nhwc,
            threads: choice.threads.map(|t| Threads::new(t).unwrap()),
        };
        assert_eq!(stage.options(), want);
        assert_eq!(stage.model().unwrap().options(), want);
    }
    drop(loaded);

    // An explicit --conv-nhwc on one thread (the helper's): one variant, as given, and no thread cap.
    let out = cascade(&calibrate_args(
        &["--budget-ms=100000", "--conv-nhwc", "off", "-o", &profile_s],
        &l0,
        &l2,
        &d,
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = Profile::load(&profile).unwrap();
    for stage in &p.stages {
        let choice = stage.choice.as_ref().unwrap();
        assert_eq!((choice.conv_nhwc, choice.threads), (false, None));
        let measured: Vec<_> = choice
            .measured
            .iter()
            .map(|v| (v.conv_nhwc, v.threads))
            .collect();
        assert_eq!(measured, [(false, 1)]);
    }
    let built = p.builder().build().unwrap();
    assert_eq!(
        built.stages()[0].options(),
        LoadOptions {
            conv_nhwc: false,
            threads: None
        }
    );
}
