//! The cascade against the real models on shared images: exits, predictions, laziness.

use crate::common;

use cascade::input::{decode_file, RgbImage};
use cascade::runtime::CutShort;
use cascade::MemoryBudget;
use cascade::{Cascade, CascadeBuilder, LoadOptions, Metric, ModelSpec, Summary, Threshold};

fn images(count: usize) -> Vec<RgbImage> {
    common::sample_set(count)
        .samples
        .iter()
        .map(|s| decode_file(&s.path).expect("photo decodes"))
        .collect()
}

/// Each image's class and summary under one model alone.
fn alone(name: &str, images: &[RgbImage]) -> Vec<(usize, Summary)> {
    let mut single = Cascade::single(ModelSpec::new(common::model(name)), LoadOptions::default())
        .expect("model loads");
    images
        .iter()
        .map(|img| {
            let d = single.classify(img).expect("classifies");
            let summary = Summary {
                top: d.top.clone(),
                margin: 0.0,
                certainty: None,
            };
            (d.class, summary)
        })
        .collect()
}

fn two_stage(threshold: f32) -> CascadeBuilder {
    CascadeBuilder::new()
        .stage(ModelSpec::new(common::model("efficientnet-lite0")))
        .stage(ModelSpec::new(common::model("efficientnet-lite2")))
        .metric(Metric::MaxProb)
        .threshold(Threshold::new(threshold).unwrap())
}

#[test]
fn exits_and_predictions_follow_the_threshold() {
    let imgs = images(20); // spread over the classes
    let small = alone("efficientnet-lite0", &imgs);
    let large = alone("efficientnet-lite2", &imgs);

    // Threshold 0: every input exits at stage 0 with the small model's answer.
    let mut c = two_stage(0.0).build().unwrap();
    for (img, (class, _)) in imgs.iter().zip(&small) {
        let d = c.classify(img).unwrap();
        assert_eq!((d.exit_stage, d.class), (0, *class));
        assert_eq!(d.stages.len(), 1);
    }
    assert!(!c.stages()[1].is_loaded(), "never deferred, never loaded");

    // Threshold 1 (no small-model probability reaches 1 on these images): every input is
    // answered by the large model.
    let max_small = small
        .iter()
        .map(|(_, s)| s.max_probability())
        .fold(0.0, f32::max);
    assert!(
        max_small < 1.0,
        "precondition: Lite0 is never certain here ({max_small})"
    );
    let mut c = two_stage(1.0).build().unwrap();
    for (img, (class, _)) in imgs.iter().zip(&large) {
        let d = c.classify(img).unwrap();
        assert_eq!((d.exit_stage, d.class), (1, *class));
        assert_eq!(d.stages.len(), 2);
    }

    // In between: each decision is the prediction of the stage it exited at, and it exited
    // at stage 0 exactly when the small model's confidence reached the threshold.
    let t = 0.7;
    let mut c = two_stage(t).build().unwrap();
    let mut exits = [0usize; 2];
    for (i, img) in imgs.iter().enumerate() {
        let d = c.classify(img).unwrap();
        let (small_class, small_summary) = &small[i];
        let conf = small_summary.max_probability();
        assert!((d.stages[0].confidence - conf).abs() < 1e-6);
        assert_eq!(d.stages[0].class, *small_class);
        if conf >= t {
            assert_eq!((d.exit_stage, d.class), (0, *small_class));
        } else {
            assert_eq!((d.exit_stage, d.class), (1, large[i].0));
        }
        exits[d.exit_stage] += 1;
    }
    assert!(
        exits[0] > 0 && exits[1] > 0,
        "0.7 splits these images: {exits:?}"
    );
}

#[test]
fn three_stages_work() {
    let imgs = images(10);
    let mut c = CascadeBuilder::new()
        .stage(ModelSpec::new(common::model("efficientnet-lite0")))
        .stage(ModelSpec::new(common::model("efficientnet-lite1")))
        .stage(ModelSpec::new(common::model("efficientnet-lite2")))
        .thresholds([Threshold::new(0.9).unwrap(), Threshold::new(0.8).unwrap()])
        .build()
        .unwrap();
    let mut reached = [0usize; 3];
    for img in &imgs {
        let d = c.classify(img).unwrap();
        for (k, run) in d.stages.iter().enumerate() {
            assert_eq!(run.stage, k);
            let exited_here = k == d.exit_stage;
            let rule = [0.9, 0.8].get(k).copied();
            match rule {
                Some(t) => assert_eq!(run.confidence >= t, exited_here),
                None => assert!(exited_here),
            }
        }
        reached[d.exit_stage] += 1;
    }
    assert_eq!(reached.iter().sum::<usize>(), imgs.len());
    assert!(reached[0] > 0);
}

#[test]
fn later_stages_load_lazily_once_and_can_be_released() {
    let imgs = images(5);
    // Never deferred: never loaded.
    let mut c = two_stage(0.0).build().unwrap();
    for img in &imgs {
        c.classify(img).unwrap();
    }
    assert_eq!(c.stages()[1].load_count(), 0);

    // Always deferred: loaded by the first input, exactly once, and reported there.
    let mut c = two_stage(1.0).build().unwrap();
    assert!(c.stages()[0].is_loaded() && !c.stages()[1].is_loaded());
    let first = c.classify(&imgs[0]).unwrap();
    assert!(first.stages[1].load.is_some());
    for img in &imgs[1..] {
        let d = c.classify(img).unwrap();
        assert!(d.stages[1].load.is_none());
    }
    assert_eq!(c.stages()[1].load_count(), 1);

    // Release, then the next deferral loads it again.
    assert!(c.release(1).unwrap());
    assert!(!c.stages()[1].is_loaded());
    let d = c.classify(&imgs[0]).unwrap();
    assert!(d.stages[1].load.is_some());
    assert_eq!(c.stages()[1].load_count(), 2);
    assert!(c.release(0).is_err(), "the first stage stays resident");

    // Preload: resident before the first input, and no load is paid during it.
    let mut c = two_stage(1.0).preload(true).build().unwrap();
    assert!(c.stages()[1].is_loaded());
    assert!(c.classify(&imgs[0]).unwrap().load_time().is_none());
    assert_eq!(c.stages()[1].load_count(), 1);
}

#[test]
fn idle_stages_are_released() {
    let imgs = images(5);
    let idle = |limit: u64| {
        two_stage(0.0)
            .preload(true)
            .release_after_idle(Some(std::time::Duration::from_secs(limit)))
            .build()
            .unwrap()
    };
    // Preloaded, then idle past a zero limit while inputs exit at stage 0: released.
    let mut c = idle(0);
    assert!(c.stages()[1].is_loaded());
    c.classify(&imgs[0]).unwrap();
    assert!(!c.stages()[1].is_loaded());
    // With an hour's limit it stays.
    let mut c = idle(3600);
    c.classify(&imgs[0]).unwrap();
    assert!(c.stages()[1].is_loaded());
}

#[test]
fn a_deadline_can_cut_the_cascade_short() {
    let imgs = images(5);
    let mut c = two_stage(1.0).build().unwrap();
    let mut asked = Vec::new();
    let d = c
        .classify_until(&imgs[0], |next, spent| {
            asked.push((next, spent));
            false
        })
        .unwrap();
    assert_eq!(
        (d.exit_stage, d.cut_short, d.stages.len()),
        (0, Some(CutShort::Deadline), 1)
    );
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, 1);
    assert!(asked[0].1 > std::time::Duration::ZERO);
    assert!(
        !c.stages()[1].is_loaded(),
        "a cut-short input loads nothing"
    );

    // Allowed to defer, or lowered to a threshold every input meets: not cut short.
    let d = c.classify_until(&imgs[0], |_, _| true).unwrap();
    assert_eq!((d.exit_stage, d.cut_short), (1, None));
    c.set_threshold(Threshold::new(0.0).unwrap());
    let d = c.classify(&imgs[0]).unwrap();
    assert_eq!((d.exit_stage, d.cut_short), (0, None));
}

/// A plain grey picture: no model is sure of it, so every exit rule defers.
fn grey() -> RgbImage {
    RgbImage::from_pixel(300, 300, image::Rgb([128, 128, 128]))
}

#[test]
fn a_later_stage_that_does_not_fit_the_memory_budget_is_refused() {
    // Too small for Lite0 alone (about 53 MB to load, 30 MB for models in a 40 MB budget).
    let err = two_stage(0.99)
        .memory(MemoryBudget::from_mb(40).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(err, cascade::Error::Memory(_)), "{err}");

    // 100 MB leaves 75 for models: Lite0 fits, Lite0 beside Lite2's load does not.
    let mut c = two_stage(0.99)
        .memory(MemoryBudget::from_mb(100).unwrap())
        .build()
        .unwrap();
    let d = c.classify(&grey()).unwrap();
    assert_eq!(
        (d.exit_stage, d.cut_short, d.stages.len()),
        (0, Some(CutShort::Memory), 1)
    );
    assert_eq!(c.stages()[1].load_count(), 0, "Lite2 was never loaded");
    assert!(matches!(c.load_stage(1), Err(cascade::Error::Memory(_))));
    // Calibration needs every stage: an error, not a silent gap.
    assert!(matches!(
        c.observe_all(&grey()),
        Err(cascade::Error::Memory(_))
    ));

    // With room, the same input defers to Lite2.
    let mut c = two_stage(0.99)
        .memory(MemoryBudget::from_mb(512).unwrap())
        .build()
        .unwrap();
    let d = c.classify(&grey()).unwrap();
    assert_eq!((d.exit_stage, d.cut_short), (1, None));
}

#[test]
fn a_stage_is_released_to_make_room_for_the_next() {
    // 180 MB leaves 135 for models: Lite0 beside Lite1, or Lite0 beside Lite2, but not all
    // three (Lite0 ~41 + Lite1 ~47 resident + Lite2 ~70 to load).
    let mut c = CascadeBuilder::new()
        .stage(ModelSpec::new(common::model("efficientnet-lite0")))
        .stage(ModelSpec::new(common::model("efficientnet-lite1")))
        .stage(ModelSpec::new(common::model("efficientnet-lite2")))
        .metric(Metric::MaxProb)
        .threshold(Threshold::new(0.99).unwrap())
        .memory(MemoryBudget::from_mb(180).unwrap())
        .build()
        .unwrap();
    let d = c.classify(&grey()).unwrap();
    assert_eq!((d.exit_stage, d.cut_short, d.stages.len()), (2, None, 3));
    assert_eq!(c.released_for_memory(), 1);
    let loaded: Vec<bool> = c.stages().iter().map(|s| s.is_loaded()).collect();
    assert_eq!(loaded, [true, false, true], "Lite1 made room for Lite2");
    // The next unsure input needs Lite1 again: Lite2 goes, Lite1 comes back.
    let d = c.classify(&grey()).unwrap();
    assert_eq!(d.exit_stage, 2);
    assert_eq!(c.released_for_memory(), 3);
    assert_eq!(c.stages()[1].load_count(), 2);
}

#[test]
fn a_pipeline_answers_what_one_worker_answers_in_input_order() {
    use cascade::runtime::run_pipelined;
    // Three stages, so inputs pass two hand-overs, at thresholds that send some to each.
    let c = CascadeBuilder::new()
        .stage(
            ModelSpec::new(common::model("efficientnet-lite0"))
                .at_size(160)
                .unwrap(),
        )
        .stage(ModelSpec::new(common::model("efficientnet-lite0")))
        .stage(ModelSpec::new(common::model("efficientnet-lite1")))
        .thresholds([Threshold::new(0.8).unwrap(), Threshold::new(0.6).unwrap()])
        .build()
        .unwrap();
    let images: Vec<_> = common::sample_set(16)
        .samples
        .iter()
        .map(|s| cascade::decode_file(&s.path).unwrap())
        .collect();
    let mut one = c.fork().unwrap();
    let alone: Vec<_> = images.iter().map(|i| one.classify(i).unwrap()).collect();
    let mut got = Vec::new();
    run_pipelined(
        &c,
        images.iter().enumerate(),
        |(_, i)| i,
        |(n, _), d| {
            got.push((n, d));
            Ok(())
        },
    )
    .unwrap();
    let order: Vec<usize> = got.iter().map(|(n, _)| *n).collect();
    assert_eq!(order, (0..images.len()).collect::<Vec<_>>());
    for ((_, d), a) in got.iter().zip(&alone) {
        assert_eq!((d.class, d.exit_stage), (a.class, a.exit_stage));
        assert!((d.confidence - a.confidence).abs() < 1e-6);
        assert_eq!(d.stages.len(), a.stages.len());
    }
    let exits: Vec<usize> = (0..3)
        .map(|s| alone.iter().filter(|d| d.exit_stage == s).count())
        .collect();
    assert!(
        exits.iter().all(|&e| e > 0),
        "every stage answers some: {exits:?}"
    );

    // An error (here from the caller) stops the run and comes back; no thread is left.
    let mut delivered = 0;
    let e = run_pipelined(
        &c,
        images.iter(),
        |i| i,
        |_, _| {
            delivered += 1;
            if delivered == 3 {
                Err(cascade::Error::InvalidArgument("enough".into()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("enough"), "{e}");
    assert_eq!(delivered, 3);
}
