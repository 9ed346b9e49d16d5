//! `cascade search`: replay agrees with a real cascade run image by image, the best
//! cascade's profile runs, and bad input gets a clear message.

use cascade::search::{self, Candidate, SearchPlan};
use cascade::tune::curve::{self, Reference};
use cascade::tune::DataSpec;
use cascade::{decode_file, CascadeBuilder, ModelSpec, Threshold};

use crate::common;
use common::cascade;

fn lite0_at(size: Option<usize>) -> ModelSpec {
    let spec = ModelSpec::new(common::model("efficientnet-lite0"));
    match size {
        Some(s) => spec.at_size(s).unwrap(),
        None => spec,
    }
}

#[test]
fn a_replayed_cascade_equals_a_real_run_of_it_image_by_image() {
    let candidates = vec![
        Candidate::new(lite0_at(Some(128))),
        Candidate::new(lite0_at(Some(160))),
        Candidate::new(lite0_at(None)),
    ];
    let data = DataSpec {
        limit: Some(16),
        ..DataSpec::new(common::sample_dir())
    };
    let plan = SearchPlan {
        holdout: 0.0,
        cost: cascade::tune::CostOptions {
            min_runs: 2,
            max_runs: 3,
            ..Default::default()
        },
        cost_images: 2,
        ..SearchPlan::new(candidates, data.clone())
    };
    let s = search::run(&plan, |_| {}).unwrap();
    assert_eq!(s.replay.cascades, 3 + 3 + 1);
    let records: Vec<_> = s.records.iter().map(|r| r.clone().unwrap()).collect();
    // A 3-stage cascade of every candidate, at per-exit thresholds between the extremes
    // (two that defer some images and let others exit at each stage).
    let stages = [0, 1, 2];
    let projected = search::project(&records, &stages);
    let median = |k: usize| {
        let mut c: Vec<f32> = projected.iter().map(|r| r.stages[k].confidence).collect();
        c.sort_by(f32::total_cmp);
        c[c.len() / 2]
    };
    let thresholds = [median(0), median(1)];
    let costs: Vec<f64> = stages.iter().map(|&i| s.costs[i]).collect();
    let replayed = curve::point(&projected, Reference::Labels, &costs, &thresholds);

    let mut real = stages
        .iter()
        .fold(CascadeBuilder::new(), |b, &i| {
            b.stage(s.candidates[i].spec())
        })
        .thresholds(thresholds.iter().map(|&t| Threshold::new(t).unwrap()))
        .build()
        .unwrap();
    let dataset = data.open(real.labels()).unwrap();
    let mut right = 0;
    let mut reached = [0usize; 3];
    for (sample, record) in dataset.samples.iter().zip(&projected) {
        let image = decode_file(&sample.path).unwrap();
        let d = real.classify(&image).unwrap();
        // The same exit and the same answer, image by image.
        assert_eq!(
            d.exit_stage,
            curve::exit_stage(record, &thresholds),
            "{}",
            sample.path.display()
        );
        assert_eq!(
            d.class,
            record.stages[d.exit_stage].class,
            "{}",
            sample.path.display()
        );
        right += usize::from(Some(d.class) == sample.label);
        for k in reached.iter_mut().take(d.exit_stage + 1) {
            *k += 1;
        }
    }
    let n = projected.len() as f64;
    assert_eq!(replayed.accuracy, right as f64 / n);
    let reach: Vec<f64> = reached.iter().map(|&r| r as f64 / n).collect();
    assert_eq!(replayed.reach, reach);
    // Not a degenerate choice: some images exit at each stage.
    assert!(
        reached[1] < reached[0] && reached[2] < reached[1] && reached[2] > 0,
        "{reached:?}"
    );
}

fn search_args<'a>(extra: &[&'a str], out: &'a str) -> Vec<&'a str> {
    let mut v = vec!["search", "--out", out];
    v.extend_from_slice(extra);
    v
}

#[test]
fn the_best_cascades_profile_runs_and_the_reports_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let profile = dir.path().join("best.toml");
    let (a, b) = (
        format!("{}@128", common::model_arg("efficientnet-lite0")),
        common::model_arg("efficientnet-lite0"),
    );
    let data = common::sample_dir().display().to_string();
    let p = profile.display().to_string();
    let o = cascade(&search_args(
        &[
            "--model",
            &a,
            "--model",
            &b,
            "--data",
            &data,
            "--limit",
            "12",
            "--min-accuracy",
            "0.5",
            "--board",
            "rpi4b",
            "-o",
            &p,
            "--json",
        ],
        &out,
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cascades_evaluated"], 3);
    assert!(!v["front"].as_array().unwrap().is_empty());
    for f in [
        "search.md",
        "search.csv",
        "search.json",
        "search.svg",
        "records.json",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    // The saved records replay to the same front and best, without running a model.
    let again = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.json");
    let o2 = cascade(&[
        "search",
        "--records",
        common::arg(&records),
        "--min-accuracy",
        "0.5",
        "--json",
        "--out",
        common::arg(again.path()),
    ]);
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    let v2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(v2["front"], v["front"]);
    assert_eq!(v2["best"], v["best"]);
    // The board model gave every candidate an energy, so the same records serve an energy
    // budget; one no cascade meets is refused with the cheapest candidate's cost.
    let replay = |budget: &str| {
        cascade(&[
            "search",
            "--records",
            common::arg(&records),
            "--budget-mj",
            budget,
            "--json",
            "--out",
            common::arg(again.path()),
        ])
    };
    let o3 = replay("100000");
    assert!(
        o3.status.success(),
        "{}",
        String::from_utf8_lossy(&o3.stderr)
    );
    let v3: serde_json::Value = serde_json::from_slice(&o3.stdout).unwrap();
    assert_eq!(v3["unit"], "mJ");
    common::assert_fails_with(&replay("0.001"), "no cascade fits budget");
    let best = &v["best"]["fit"];
    assert!(best["accuracy"].as_f64().unwrap() >= 0.5);
    if best["cascade"].as_array().unwrap().len() == 2 {
        let tench = common::sample_dir().join("n01440764_tench.JPEG");
        let o = cascade(&["classify", "--json", "--profile", &p, common::arg(&tench)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn bad_searches_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let lite0 = common::model_arg("efficientnet-lite0");
    let data = common::sample_dir().display().to_string();
    let bad_size = format!("{lite0}@big");
    let o = cascade(&search_args(&["--model", &bad_size, "--data", &data], &out));
    common::assert_fails_with(&o, "big");
    let tiny = format!("{lite0}@16");
    let o = cascade(&search_args(&["--model", &tiny, "--data", &data], &out));
    common::assert_fails_with(&o, "out of range");
    let o = cascade(&search_args(&["--model", &lite0, "--data", &data], &out));
    common::assert_fails_with(&o, "at least two candidates");
    let small = format!("{lite0}@128");
    let o = cascade(&search_args(
        &[
            "--model",
            &small,
            "--model",
            &lite0,
            "--data",
            &data,
            "--limit",
            "4",
            "--budget-ms",
            "0.001",
        ],
        &out,
    ));
    common::assert_fails_with(&o, "no cascade fits");
}

#[test]
fn observing_with_two_workers_records_what_one_worker_does() {
    let plan = |workers: usize| SearchPlan {
        workers: cascade::runtime::Workers::new(workers).unwrap(),
        cost: cascade::tune::CostOptions {
            min_runs: 1,
            max_runs: 2,
            ..Default::default()
        },
        cost_images: 1,
        ..SearchPlan::new(
            vec![
                Candidate::new(lite0_at(Some(96))),
                Candidate::new(lite0_at(Some(128))),
            ],
            DataSpec {
                limit: Some(10),
                ..DataSpec::new(common::sample_dir())
            },
        )
    };
    let answers = |workers: usize| -> Vec<Vec<(usize, f32)>> {
        search::observe(&plan(workers), |_| {})
            .unwrap()
            .records
            .into_iter()
            .map(|r| {
                let r = r.unwrap();
                r.stages.iter().map(|o| (o.class, o.confidence)).collect()
            })
            .collect()
    };
    let one = answers(1);
    assert_eq!(one.len(), 10);
    assert_eq!(answers(2), one);
}
