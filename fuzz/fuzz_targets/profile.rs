//! Calibration profiles (`cascade calibrate -o P.toml`), from their text: an error, or a
//! profile that can be written back and read again unchanged.
#![no_main]

use std::path::Path;

use cascade::stream::{BudgetController, Deadline};
use cascade::{Budget, Profile, Target};
use cascade_fuzz::text;
use libfuzzer_sys::fuzz_target;

/// A budget in hand is positive and finite (src/tune/budget.rs), even one read from a file.
fn valid(budget: Budget) -> bool {
    budget.value().is_finite() && budget.value() > 0.0
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = text(data) else { return };
    let path = Path::new("fuzz/profile.toml");
    let Ok(profile) = Profile::parse(text, path) else {
        return;
    };
    assert!(profile.stages.len() >= 2);
    assert!(profile.stage_latencies_ms().len() == profile.stages.len());
    let exits = profile.stages.len() - 1;
    assert!(profile.thresholds.len() == 1 || profile.thresholds.len() == exits);
    assert!(profile
        .thresholds
        .iter()
        .all(|t| (0.0..=1.0).contains(&t.get())));
    match profile.calibration.target {
        Target::Budget(b) => assert!(valid(b), "{b:?}"),
        Target::MinAccuracy(a) => assert!(a > 0.0 && a <= 1.0, "accuracy {a}"),
    }
    let _ = profile.builder();
    // What `cascade stream --profile` builds from it: a deadline and budget controllers
    // over the stage costs, steered by a few frames. Errors are fine; panics are not.
    let _ = Deadline::new(40.0, profile.stage_latencies_ms(), profile.stage_loads_ms());
    let energies = profile.stage_energies_mj();
    let budgets = [
        (
            Budget::latency_ms(40.0).unwrap(),
            Some(profile.stage_latencies_ms()),
        ),
        (Budget::energy_mj(500.0).unwrap(), energies),
    ];
    for (budget, costs) in budgets {
        let Some(costs) = costs else { continue };
        // The profile's thresholds, as `stream` starts from them (one shared or one per exit).
        let start: Vec<f32> = profile.thresholds.iter().map(|t| t.get()).collect();
        if let Ok(mut c) = BudgetController::from_curve(&profile.curve, &costs, &start, budget) {
            for cost in [0.0, 10.0, 1e9, f64::NAN, 35.0] {
                c.observe(cost);
                assert_eq!(c.thresholds().len(), exits);
                assert!(c.thresholds().iter().all(|t| (0.0..=1.0).contains(t)));
            }
        }
    }
    // What a profile accepts it can save (Profile::save writes this TOML), and what it
    // saves it reads back as the same text.
    if let Ok(saved) = toml::to_string_pretty(&profile) {
        let again = Profile::parse(&saved, path)
            .unwrap_or_else(|e| panic!("a saved profile does not parse: {e}\n{saved}"));
        assert_eq!(toml::to_string_pretty(&again).ok().as_ref(), Some(&saved));
    }
});
