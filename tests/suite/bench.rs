//! `cascade bench` end to end on a few shared images: every output file exists, parses and
//! agrees with `eval` at the same threshold.

use crate::common;

use common::cascade_ok as run;

#[test]
fn bench_outputs_exist_parse_and_agree_with_eval() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench");
    let (l0, l2) = (
        common::model_arg("efficientnet-lite0"),
        common::model_arg("efficientnet-lite2"),
    );
    let data = common::sample_dir().display().to_string();
    let stages = ["--stage", &l0, "--stage", &l2, "--threshold", "0.7"];
    let mut args = vec!["bench"];
    args.extend_from_slice(&stages);
    let out_s = out_dir.display().to_string();
    args.extend_from_slice(&[
        "--data",
        &data,
        "--limit",
        "12",
        "--board",
        "rpi4b",
        "--out",
        &out_s,
        "--workers",
        "2",
    ]);
    let out = run(&args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| config | top-1 |"), "{table}");
    assert!(table.contains("| cascade |"), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("bench.json")).unwrap())
            .unwrap();
    let configs = json["result"]["configs"].as_array().unwrap();
    assert_eq!(configs.len(), 3);
    assert_eq!(configs[2]["name"], "cascade");
    for c in configs {
        assert_eq!(c["images"], 12);
        assert!(c["latency"]["mean_ms"].as_f64().unwrap() > 0.0);
        assert!(c["energy"]["total_mj"].as_f64().unwrap() > 0.0);
        assert_eq!(c["energy"]["estimate"], true);
    }
    // Throughput: each model alone and the cascade at 1 and 2 workers (one thread, so no
    // separate latency-mode row), then the cascade pipelined (one thread per stage); the
    // answers do not depend on the mode.
    assert!(table.contains("| throughput | workers |"), "{table}");
    assert!(table.contains("| cascade | 2 (pipelined) | 1 |"), "{table}");
    let rows = json["throughput"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{rows:?}");
    for (i, row) in rows.iter().enumerate() {
        let config = &configs[(i / 2).min(2)];
        let pipelined = i == 6;
        assert_eq!(row["pipelined"], pipelined);
        assert_eq!(
            row["workers"],
            if pipelined { 2 } else { (i % 2 + 1) as u64 }
        );
        assert_eq!(row["threads"], 1);
        assert!(row["images_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(row["latency"]["count"], 12);
        assert_eq!(row["top1"], config["top1"], "{row} against {config}");
        assert_eq!(
            row["exit_shares"], config["exit_shares"],
            "{row} against {config}"
        );
    }
    let shares: f64 = configs[2]["exit_shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9);
    let ctx = &json["context"];
    assert_eq!(ctx["models"].as_array().unwrap().len(), 2);
    assert_eq!(ctx["models"][0]["sha256"].as_str().unwrap().len(), 64);
    let cargo = std::fs::read_to_string(common::root().join("Cargo.toml")).unwrap();
    let tract = ctx["tract_version"].as_str().unwrap();
    let pinned = cargo
        .lines()
        .find(|l| l.starts_with("tract-onnx = "))
        .expect("Cargo.toml pins tract-onnx");
    assert!(
        pinned.contains(&format!("\"={tract}\"")),
        "context names the linked tract: {tract} against {pinned}"
    );

    let csv = std::fs::read_to_string(out_dir.join("bench.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    let curve = std::fs::read_to_string(out_dir.join("curve.csv")).unwrap();
    assert!(curve.lines().skip(1).all(|l| l.split(',').count() == 5));
    for svg in ["accuracy_vs_latency.svg", "accuracy_vs_energy.svg"] {
        let text = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("cascade"),
            "{svg}"
        );
    }

    // The cascade's accuracy is what eval reports on the same images at the same threshold.
    let mut args = vec!["eval", "--json"];
    args.extend_from_slice(&stages);
    args.extend_from_slice(&["--data", &data, "--limit", "12"]);
    let eval: serde_json::Value = serde_json::from_slice(&run(&args).stdout).unwrap();
    assert_eq!(eval["top1"], configs[2]["top1"]);
    assert_eq!(eval["exit_shares"], configs[2]["exit_shares"]);
}

/// A three-stage cascade with its own threshold at each exit: bench runs it at exactly
/// those (the context line names both), and its exits and accuracy are what eval gives
/// at the same thresholds.
#[test]
fn bench_takes_a_threshold_per_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench");
    let out_s = out_dir.display().to_string();
    let (l0, l1, l2) = (
        common::model_arg("efficientnet-lite0"),
        common::model_arg("efficientnet-lite1"),
        common::model_arg("efficientnet-lite2"),
    );
    let data = common::sample_dir().display().to_string();
    let stages = [
        "--stage",
        &l0,
        "--stage",
        &l1,
        "--stage",
        &l2,
        "--threshold",
        "0.8",
        "--threshold",
        "0.5",
    ];
    let limit = ["--data", &data, "--limit", "6"];
    let mut args = vec!["bench", "--workers", "1", "--out", &out_s];
    args.extend_from_slice(&stages);
    args.extend_from_slice(&limit);
    let table = String::from_utf8_lossy(&run(&args).stdout).into_owned();
    assert!(
        table.contains("cascade at max-prob >= 0.8 / 0.5"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("bench.json")).unwrap())
            .unwrap();
    assert_eq!(json["result"]["thresholds"], serde_json::json!([0.8, 0.5]));
    let cascade = &json["result"]["configs"][3];
    assert_eq!(cascade["name"], "cascade");

    let mut args = vec!["eval", "--json"];
    args.extend_from_slice(&stages);
    args.extend_from_slice(&limit);
    let eval: serde_json::Value = serde_json::from_slice(&run(&args).stdout).unwrap();
    assert_eq!(eval["exit_shares"].as_array().unwrap().len(), 3);
    assert_eq!(eval["exit_shares"], cascade["exit_shares"]);
    assert_eq!(eval["top1"], cascade["top1"]);
}
