//! A cascade whose last stage is on a real MLServer (ONNX Runtime), against the same
//! cascade all in process: same decisions; and what happens when the server is down, dies,
//! comes back, or wants a token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cascade::remote::{Access, Endpoint, Timeouts};
use cascade::runtime::CutShort;
use cascade::tune::Dataset;
use cascade::{decode_file, Cascade, CascadeBuilder, ModelSpec, RgbImage, Threshold};
use serde_json::Value;

use crate::common::{self, arg, cascade, model};
use crate::mlserver::{free_port, MlServer};
use crate::remote::TokenGate;

const LITE2: &str = "efficientnet-lite2";

fn lite2_manifest() -> PathBuf {
    common::root().join("models/efficientnet-lite2.toml")
}

/// Lite0 here, then `last` (Lite2 in process or on a server), at 0.7.
fn cascade_to(last: ModelSpec, access: Access) -> Cascade {
    CascadeBuilder::new()
        .stage(ModelSpec::new(model("efficientnet-lite0")))
        .stage(last)
        .threshold(Threshold::new(0.7).unwrap())
        .access(access)
        .build()
        .unwrap()
}

fn served(endpoint: Endpoint) -> ModelSpec {
    ModelSpec {
        manifest: Some(lite2_manifest()),
        ..ModelSpec::remote(endpoint)
    }
}

/// The shared photographs when they are beside the clone (always in CI), else the
/// repository's 57.
fn photos() -> Dataset {
    if common::full_set_present() {
        common::full_set()
    } else {
        common::sample_set(57)
    }
}

fn decode(path: &Path) -> RgbImage {
    decode_file(path).unwrap()
}

#[test]
fn lite2_on_mlserver_gives_the_decisions_lite2_in_process_gives_over_rest_and_grpc() {
    let server = MlServer::start();
    let mut here = cascade_to(ModelSpec::new(model(LITE2)), Access::default());
    let mut there = cascade_to(served(server.endpoint(LITE2)), Access::default());
    let mut grpc = cascade_to(served(server.grpc_endpoint(LITE2)), Access::default());
    // Without a manifest, the served stage's input comes from the server's metadata.
    let mut bare = cascade_to(ModelSpec::remote(server.endpoint(LITE2)), Access::default());
    let set = photos();
    let (mut deferred, mut same_class, mut same_over_grpc) = (0, 0, 0);
    let mut max_gap = 0f32;
    for (i, sample) in set.samples.iter().enumerate() {
        let image = decode(&sample.path);
        let a = here.classify(&image).unwrap();
        let b = there.classify(&image).unwrap();
        let g = grpc.classify(&image).unwrap();
        assert_eq!(a.exit_stage, b.exit_stage, "{}", sample.path.display());
        assert_eq!(a.exit_stage, g.exit_stage, "{}", sample.path.display());
        assert_eq!(
            (b.cut_short, g.cut_short),
            (None, None),
            "{}",
            sample.path.display()
        );
        if a.exit_stage == 1 {
            deferred += 1;
            // tract and ONNX Runtime sum in different orders: the same class, the
            // same confidence to a few parts in ten thousand.
            max_gap = max_gap
                .max((a.confidence - b.confidence).abs())
                .max((a.confidence - g.confidence).abs());
            assert_eq!(b.stages[1].stage, 1);
        }
        same_class += usize::from(a.class == b.class);
        same_over_grpc += usize::from(a.class == g.class);
        if i < 8 {
            // Its normalization is assumed (ImageNet mean and deviation, not Lite's), so
            // only what the metadata gives is compared.
            let c = bare.classify(&image).unwrap();
            assert_eq!((c.exit_stage, c.cut_short), (b.exit_stage, None));
        }
    }
    assert_eq!(
        bare.stages()[1].input().map(|i| i.shape()),
        there.stages()[1].input().map(|i| i.shape()),
        "the metadata gives the manifest's input shape"
    );
    let n = set.samples.len();
    eprintln!(
        "{n} photos, {deferred} deferred to the server, {same_class} same class over REST, {same_over_grpc} over gRPC, largest confidence gap {max_gap:.2e}"
    );
    assert!(
        deferred * 5 > n,
        "a fair share is deferred: {deferred} of {n}"
    );
    assert_eq!(same_class, n, "every decision the same");
    assert_eq!(same_over_grpc, n, "every decision the same over gRPC");
    assert!(max_gap < 1e-3, "{max_gap}");
    for c in [&there, &grpc] {
        let stats = c.stages()[1].remote_stats().unwrap();
        assert_eq!((stats.answered, stats.failed), (deferred as u64, 0));
    }
}

/// Photos Lite0 is unsure of at 0.7, and one it is sure of, from the repository's set.
fn unsure_and_sure(c: &mut Cascade) -> (Vec<RgbImage>, RgbImage) {
    let mut unsure = Vec::new();
    let mut sure = None;
    for s in common::sample_set(57).samples {
        let image = decode(&s.path);
        let d = c.classify(&image).unwrap();
        match d.stages[0].confidence >= 0.7 {
            true if sure.is_none() => sure = Some(image),
            false if unsure.len() < 4 => unsure.push(image),
            _ => {}
        }
    }
    (unsure, sure.expect("one photo Lite0 is sure of"))
}

#[test]
fn a_server_that_is_down_dies_or_comes_back_costs_answers_never_the_cascade() {
    let port = free_port();
    let endpoint: Endpoint = format!("http://127.0.0.1:{port}/v2/models/{LITE2}")
        .parse()
        .unwrap();
    let access = Access {
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            request: Duration::from_secs(5),
        },
        ..Access::default()
    };
    // Nothing listens yet: building succeeds (the manifest says what to send).
    let mut c = cascade_to(served(endpoint), access);
    let mut local = cascade_to(
        ModelSpec::new(model("efficientnet-lite0")),
        Access::default(),
    );
    let (unsure, sure) = unsure_and_sure(&mut local);
    for image in &unsure {
        let t0 = Instant::now();
        let d = c.classify(image).unwrap();
        let alone = local.classify(image).unwrap();
        assert_eq!(d.cut_short, Some(CutShort::Unanswered));
        assert_eq!((d.exit_stage, d.class), (0, alone.stages[0].class));
        assert_eq!(
            d.stages.len(),
            1,
            "the unanswered stage is not an executed one"
        );
        assert!(t0.elapsed() < Duration::from_secs(3), "no stall");
    }
    let d = c.classify(&sure).unwrap();
    assert_eq!(
        (d.exit_stage, d.cut_short),
        (0, None),
        "a sure input never asks"
    );

    // The server starts where the stage looks: once its back-off ends, it is asked again.
    let server = MlServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(70);
    let answered = loop {
        let d = c.classify(&unsure[0]).unwrap();
        if d.cut_short.is_none() {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the stage never used the server again"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(answered.exit_stage, 1);
    for image in &unsure {
        assert_eq!(c.classify(image).unwrap().exit_stage, 1);
    }

    // Killed: the next deferred inputs fall back at once, and the cascade goes on.
    drop(server);
    for image in &unsure {
        let t0 = Instant::now();
        let d = c.classify(image).unwrap();
        assert_eq!((d.exit_stage, d.cut_short), (0, Some(CutShort::Unanswered)));
        assert!(t0.elapsed() < Duration::from_secs(3), "no stall");
    }
    let stats = c.stages()[1].remote_stats().unwrap();
    assert!(stats.answered > unsure.len() as u64, "{stats:?}");
    assert!(stats.failed >= 1 && stats.skipped >= 1, "{stats:?}");
}

/// `count` repository photos back to back as an MJPEG stream.
fn mjpeg(dir: &Path, count: usize) -> PathBuf {
    let bytes: Vec<u8> = common::sample_set(count)
        .samples
        .iter()
        .flat_map(|s| std::fs::read(&s.path).unwrap())
        .collect();
    let file = dir.join("frames.mjpeg");
    std::fs::write(&file, bytes).unwrap();
    file
}

/// Runs `cascade stream --json` to the end: the frame lines and the summary line.
fn stream(args: &[&str]) -> (Vec<Value>, Value, String) {
    let out = cascade(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["status"], "summary");
    (lines, summary, stderr)
}

#[test]
fn a_stream_counts_the_frames_its_server_did_not_answer_and_the_token_stays_secret() {
    const TOKEN: &str = "s3cret-Token-4242";
    let server = MlServer::start();
    let gate = TokenGate::start(server.http, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let frames = mjpeg(dir.path(), 12);
    let lite0 = model("efficientnet-lite0");
    let manifest = lite2_manifest();
    let url = gate.endpoint().to_string();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let run = |token: bool| {
        let mut args = vec!["stream", "--json", "--no-drop"];
        args.extend(["--pix-fmt", "mjpeg", "--input", arg(&frames)]);
        args.extend(["--stage", arg(&lite0), "--stage", &url]);
        args.extend(["--manifest", arg(&manifest), "--threshold", "0.7"]);
        if token {
            args.extend(["--token-file", arg(&token_file)]);
        }
        stream(&args)
    };

    // Without the token the gate refuses every request: the frames Lite0 is unsure of are
    // answered by Lite0, marked, and counted; every frame is still accounted for.
    let (lines, summary, stderr) = run(false);
    assert_eq!(summary["frames_in"], 12);
    assert_eq!(summary["classified"], 12, "{stderr}");
    let unanswered = lines
        .iter()
        .filter(|v| v["answered_by"] == "unanswered")
        .count() as u64;
    assert!(unanswered > 0, "{stderr}");
    assert_eq!(summary["unanswered"], unanswered);
    assert!(lines.iter().all(|v| v["exit_stage"] == 0));
    assert!(stderr.contains("401"), "the refusal is named: {stderr}");

    // With it, they go to the server.
    let (lines, summary, stderr) = run(true);
    assert_eq!(summary["classified"], 12);
    assert_eq!(summary["unanswered"], 0, "{stderr}");
    let deferred = lines.iter().filter(|v| v["exit_stage"] == 1).count() as u64;
    assert_eq!(deferred, unanswered, "the same frames deferred");
    let everything = format!("{stderr}{}", serde_json::to_string(&lines).unwrap());
    assert!(!everything.contains(TOKEN), "the token never shows");
}

#[test]
fn a_profile_a_bench_and_a_search_keep_the_served_stage_but_never_the_token() {
    const TOKEN: &str = "profile-Token-777";
    let server = MlServer::start();
    let gate = TokenGate::start(server.http, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    let lite0 = model("efficientnet-lite0");
    let manifest = lite2_manifest();
    let url = gate.endpoint().to_string();
    let data = common::sample_dir();
    // `cascade ARGS` with the token in the environment (read through --token-env), no
    // standard input; succeeds, and the token shows on neither output stream.
    let run = |args: &[&str]| -> (String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
            .args(args)
            .args(["--token-env", "CASCADE_TEST_TOKEN"])
            .env("CASCADE_TEST_TOKEN", TOKEN)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "{args:?}"
        );
        (stdout, stderr)
    };
    let (lite0, manifest, data) = (arg(&lite0), arg(&manifest), arg(&data));
    let served = ["--stage", lite0, "--stage", &url, "--manifest", manifest];
    let eight = ["--data", data, "--limit", "8"];

    let mut calibrate = vec!["--threads", "1", "calibrate"];
    calibrate.extend(served);
    calibrate.extend(eight);
    calibrate.extend(["--budget-ms=100000", "-o", arg(&profile)]);
    run(&calibrate);
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains(&format!("model = \"{url}\"")), "{text}");
    assert!(text.contains("efficientnet-lite2.toml"), "{text}");
    assert!(!text.contains(TOKEN));

    // The profile runs the served stage, with the token given again.
    let photo = common::sample_dir().join("n01440764_tench.JPEG");
    let (stdout, _) = run(&[
        "classify",
        "--json",
        "--profile",
        arg(&profile),
        arg(&photo),
    ]);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["cut_short"], Value::Null, "{v}");

    // bench: the served model alone and in the cascade, with the round trip's share of the
    // time, and its energy on the board (a power model here) charged at idle power while
    // the board waits: fewer watts than the model run here.
    let bench = dir.path().join("bench");
    let mut args = vec!["--threads", "1", "bench"];
    args.extend(served);
    args.extend(eight);
    args.extend(["--threshold", "0.7", "--board", "rpi4b", "--workers", "0"]);
    args.extend(["--out", arg(&bench)]);
    let (stdout, _) = run(&args);
    assert!(stdout.contains("round trip to the server"), "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(bench.join("bench.json")).unwrap()).unwrap();
    let configs = json["result"]["configs"].as_array().unwrap();
    let share = |c: &Value| c["remote_share"].as_f64();
    let watts = |c: &Value| {
        c["energy"]["total_mj"].as_f64().unwrap() / c["latency"]["mean_ms"].as_f64().unwrap()
    };
    assert_eq!(share(&configs[0]), None, "Lite0 runs here");
    // The served model's load column is its connect time (manifest, metadata request).
    let connect = configs[1]["load_ms"][0].as_f64();
    assert!(connect.is_some_and(|ms| ms > 0.0), "{}", configs[1]);
    let served_share = share(&configs[1]).unwrap();
    assert!(served_share > 0.5 && served_share <= 1.0, "{served_share}");
    assert!(share(&configs[2]).unwrap() > 0.0);
    assert!(
        watts(&configs[1]) < watts(&configs[0]),
        "waiting costs less power than computing: {} W vs {} W",
        watts(&configs[1]),
        watts(&configs[0])
    );

    // search: the served model is a candidate like a file, reached with the token (the
    // gate refuses it without one, and a candidate's cost is not measured around failures).
    let found = dir.path().join("search");
    let mut args = vec![
        "--threads",
        "1",
        "search",
        "--model",
        lite0,
        "--model",
        &url,
    ];
    args.extend(["--manifest", manifest]);
    args.extend(eight);
    args.extend(["--max-stages", "2", "--json", "--out", arg(&found)]);
    let (stdout, _) = run(&args);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains("efficientnet-lite2"), "{text}");
    assert!(found.join("records.json").is_file());
}
