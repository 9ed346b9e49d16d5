//! The library embedded the way a board application would use it, with no CLI type:
//! calibrate from a labelled folder, save the profile and read it back, classify, and run
//! a short stream from an in-memory MJPEG source under the profile's budget.

use crate::common;

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use cascade::input::FrameFormat;
use cascade::stream::{from_reader, Answer, Policy};
use cascade::tune::CostOptions;
use cascade::{
    calibrate, decode_file, Budget, CalibrationPlan, DataSpec, Event, ModelSpec, Profile, Session,
    SessionConfig, Target,
};

const PHOTOS: [&str; 3] = [
    "n01440764_tench.JPEG",
    "n01530575_brambling.JPEG",
    "n01614925_bald_eagle.JPEG",
];

#[test]
fn calibrate_save_reload_classify_and_stream_through_the_library() {
    // 1. Calibrate on 16 labelled images for a generous latency budget.
    let plan = CalibrationPlan {
        cost: CostOptions {
            min_runs: 10,
            max_runs: 20,
            warmup: 1,
            ..CostOptions::default()
        },
        cost_images: 4,
        ..CalibrationPlan::new(
            vec![
                ModelSpec::new(common::model("efficientnet-lite0")),
                ModelSpec::new(common::model("efficientnet-lite2")),
            ],
            DataSpec {
                limit: Some(16),
                ..DataSpec::new(common::sample_dir())
            },
            Target::Budget(Budget::latency_ms(100_000.0).unwrap()),
        )
    };
    let mut observed = 0;
    let calibration = calibrate(&plan, |p| {
        if let cascade::tune::calibrate::Progress::Observing { done, .. } = p {
            observed = done;
        }
    })
    .unwrap();
    assert_eq!(observed, 16, "progress counts every image");
    let fit = &calibration.profile.calibration;
    assert_eq!(fit.fit_inputs + fit.holdout_inputs, 16);
    assert_eq!(calibration.profile.stages.len(), 2);

    // 2. Save it in one folder and read it back: model paths are stored relative to the
    //    profile, so they resolve however far the profile is from the models.
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    let path = deep.join("profile.toml");
    calibration.profile.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("model = \"../../"),
        "relative model paths: {text}"
    );
    let profile = Profile::load(&path).unwrap();
    assert_eq!(profile.thresholds, calibration.profile.thresholds);
    assert_eq!(profile.curve, calibration.profile.curve);

    // 3. Classify with the profile's cascade.
    let mut cascade = profile.builder().build().unwrap();
    let expected: Vec<usize> = PHOTOS
        .iter()
        .map(|name| {
            let image = decode_file(&common::sample_dir().join(name)).unwrap();
            cascade.classify(&image).unwrap().class
        })
        .collect();
    assert_eq!(cascade.labels().name(expected[0]), "tench");

    // 4. The same photos as an in-memory MJPEG stream, under a latency budget.
    let bytes: Vec<u8> = PHOTOS
        .iter()
        .flat_map(|name| std::fs::read(common::sample_dir().join(name)).unwrap())
        .collect();
    let source = from_reader(
        Box::new(Cursor::new(bytes)),
        Path::new("memory"),
        FrameFormat::mjpeg(),
    )
    .unwrap();
    let config = SessionConfig {
        budget: Some(Budget::latency_ms(100_000.0).unwrap()),
        profile: Some(profile.clone()),
        policy: Policy::Block,
        ..SessionConfig::default()
    };
    let mut session = Session::start(profile.builder().build().unwrap(), &config, source).unwrap();
    let mut answers: Vec<Box<Answer>> = Vec::new();
    loop {
        match session.next(Duration::from_secs(30)).unwrap() {
            Event::Answered { answer, .. } => answers.push(answer),
            Event::End => break,
            Event::Idle => panic!("an in-memory stream never waits 30 s"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let classes: Vec<usize> = answers.iter().map(|a| a.decision.class).collect();
    assert_eq!(classes, expected, "a frame is classified like its file");
    let finished = session.finish();
    assert_eq!(finished.summary.classified, 3);
    let budget = finished.summary.budget.expect("the budget is reported");
    assert!(budget.running_mean > 0.0 && budget.running_mean < 100_000.0);
}
