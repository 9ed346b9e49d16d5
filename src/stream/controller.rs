//! Keeping a stream within a cost budget while the share of hard frames drifts.
//!
//! Calibration gives a curve: for each exit threshold, the expected cost per input on the
//! calibration data. On a live stream that curve is only right while the scenes look like
//! the calibration data; when more frames become hard, the same threshold defers more of
//! them and costs more. [`BudgetController`] therefore uses the curve as a feed-forward map
//! and corrects it with an integral term on the observed error: it asks the curve for the
//! threshold whose expected cost is `budget - offset`, where `offset` sums
//! `gain * (cost - budget)` over every frame seen.
//!
//! Because the offset is that sum, the total overspend after `n` frames is exactly
//! `(offset_n - offset_0) / gain`; the offset is bounded by the curve's cost range, so the
//! running mean cost converges to the budget at a rate of `1 / (gain * n)`, whatever the
//! drift, as long as the budget is reachable at all (between the costs of exiting
//! everything at the first stage and deferring everything).

use crate::error::{Error, Result};
use crate::tune::curve::CurvePoint;
use crate::tune::Budget;

/// Default integral gain: the threshold responds to a lasting error within about
/// `1 / gain` frames, while one frame's cost moves it by only a small step.
pub const DEFAULT_GAIN: f64 = 0.02;

/// Weight of the newest frame in the recent mean reported beside the running mean.
const RECENT_WEIGHT: f64 = 1.0 / 64.0;

/// Online threshold controller for a per-frame cost budget (see the module docs).
#[derive(Debug, Clone)]
pub struct BudgetController {
    budget: Budget,
    gain: f64,
    /// `(threshold, cost)`, thresholds ascending, costs made non-decreasing.
    curve: Vec<(f32, f64)>,
    /// The integral correction subtracted from the budget before the curve is asked.
    offset: f64,
    threshold: f32,
    frames: u64,
    total: f64,
    recent: f64,
}

impl BudgetController {
    /// A controller over `curve` (threshold, expected cost per frame in the budget's unit)
    /// that starts at threshold `start`. Its correction starts where the curve puts
    /// `start`, so the first frames run exactly at the calibrated threshold.
    pub fn new(curve: &[(f32, f64)], start: f32, budget: Budget) -> Result<BudgetController> {
        let mut points: Vec<(f32, f64)> = curve
            .iter()
            .copied()
            .filter(|(t, c)| t.is_finite() && c.is_finite())
            .collect();
        if points.is_empty() {
            return Err(Error::InvalidArgument(
                "the profile has no threshold curve to steer a budget along".into(),
            ));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // More deferral never costs less; smooth out measurement noise that says otherwise.
        let mut max = f64::NEG_INFINITY;
        for p in &mut points {
            max = max.max(p.1);
            p.1 = max;
        }
        let mut c = BudgetController {
            budget,
            gain: DEFAULT_GAIN,
            curve: points,
            offset: 0.0,
            threshold: start,
            frames: 0,
            total: 0.0,
            recent: 0.0,
        };
        c.offset = c.clamp_offset(c.limit() - c.cost_at(start));
        let cheapest = c.curve[0].1;
        if c.limit() < cheapest {
            let unit = budget.unit();
            log::warn!(
                "budget {:.2} {unit} is below the cost of answering every frame at the first stage ({cheapest:.2} {unit}); the stream will run over it",
                c.limit()
            );
        }
        Ok(c)
    }

    /// The controller for a profile's curve, with each point's cost computed from the share
    /// of inputs reaching each stage and `stage_costs`, the cost of one run of each stage in
    /// the budget's unit (measured latency for a time budget, measured energy for an energy
    /// budget). The curve's own `expected_cost` is not used: it is in whatever unit the
    /// profile was calibrated for, which need not be the stream's.
    pub fn from_curve(
        curve: &[CurvePoint],
        stage_costs: &[f64],
        start: f32,
        budget: Budget,
    ) -> Result<BudgetController> {
        let points = curve
            .iter()
            .map(|p| {
                if p.reach.len() != stage_costs.len() {
                    return Err(Error::InvalidArgument(format!(
                        "the profile's curve covers {} stages but it has {}",
                        p.reach.len(),
                        stage_costs.len()
                    )));
                }
                let cost = p.reach.iter().zip(stage_costs).map(|(r, c)| r * c).sum();
                Ok((shared(&p.thresholds)?, cost))
            })
            .collect::<Result<Vec<_>>>()?;
        BudgetController::new(&points, start, budget)
    }

    /// The threshold to use for the next frame (at every exit).
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Takes the cost of the frame just answered and moves the threshold.
    pub fn observe(&mut self, cost: f64) {
        if !(cost.is_finite() && cost >= 0.0) {
            log::debug!("ignoring frame cost {cost}");
            return;
        }
        self.frames += 1;
        self.total += cost;
        self.recent = if self.frames == 1 {
            cost
        } else {
            self.recent + RECENT_WEIGHT * (cost - self.recent)
        };
        self.offset = self.clamp_offset(self.offset + self.gain * (cost - self.limit()));
        self.threshold = self.threshold_for(self.limit() - self.offset);
    }

    /// The budget's value, in its unit.
    fn limit(&self) -> f64 {
        self.budget.value()
    }

    /// Keeps the aim `budget - offset` within the curve's costs, so the correction never
    /// winds up past what any threshold can do (an unreachable budget).
    fn clamp_offset(&self, offset: f64) -> f64 {
        let lo = self.curve[0].1;
        let hi = self.curve[self.curve.len() - 1].1;
        offset.clamp(self.limit() - hi, self.limit() - lo)
    }

    /// The curve's expected cost at threshold `t` (linear between points).
    pub fn cost_at(&self, t: f32) -> f64 {
        let c = &self.curve;
        match c.iter().position(|p| p.0 >= t) {
            None => c[c.len() - 1].1,
            Some(0) => c[0].1,
            Some(i) => {
                let (t0, c0) = c[i - 1];
                let (t1, c1) = c[i];
                let f = f64::from((t - t0) / (t1 - t0));
                c0 + f * (c1 - c0)
            }
        }
    }

    /// The highest threshold whose expected cost is at most `aim` (linear between points),
    /// or the lowest threshold if even that costs more.
    pub fn threshold_for(&self, aim: f64) -> f32 {
        let c = &self.curve;
        let Some(i) = c.iter().rposition(|p| p.1 <= aim) else {
            return c[0].0;
        };
        match c.get(i + 1) {
            None => c[i].0,
            Some(&(t1, c1)) => {
                let (t0, c0) = c[i];
                let f = ((aim - c0) / (c1 - c0)).clamp(0.0, 1.0) as f32;
                t0 + f * (t1 - t0)
            }
        }
    }

    /// The budget, with its unit: the cost [`BudgetController::observe`] expects.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Frames observed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Mean cost per frame over the whole stream: what the budget is held to.
    pub fn running_mean(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            self.total / self.frames as f64
        }
    }

    /// Mean cost over roughly the last 64 frames (exponentially weighted).
    pub fn recent_mean(&self) -> f64 {
        self.recent
    }
}

/// The one threshold every exit shares: the controller moves one number along the curve. A
/// profile whose exits were fitted jointly (three or more stages) has no such number.
pub fn shared(thresholds: &[f32]) -> Result<f32> {
    match thresholds {
        [first, rest @ ..] if rest.iter().all(|t| t == first) => Ok(*first),
        _ => Err(Error::InvalidArgument(format!(
            "a stream budget moves one threshold shared by every exit, but this profile's exits have their own ({}); run the stream at the profile's thresholds without --budget-ms/--budget-mj",
            crate::tune::curve::format_thresholds(thresholds)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::curve::{curve, Observation, Record, Reference};

    const C0: f64 = 10.0;
    const C1: f64 = 30.0;
    const BUDGET: f64 = 20.0;

    fn ms(v: f64) -> Budget {
        Budget::latency_ms(v).unwrap()
    }

    /// A deterministic stream of uniform numbers in [0, 1) (Numerical Recipes' LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Stage-0 confidence of a frame: easy frames are confident (0.5..1), hard ones are not
    /// (0..0.6); the ranges overlap a little, as real ones do.
    fn confidence(rng: &mut Lcg, hard_share: f64) -> f32 {
        let hard = rng.next() < hard_share;
        let u = rng.next();
        (if hard { 0.6 * u } else { 0.5 + 0.5 * u }) as f32
    }

    /// The calibrated curve: `calibrate::curve` over 400 frames with 10% hard ones.
    fn calibrated() -> Vec<(f32, f64)> {
        let mut rng = Lcg(7);
        let records: Vec<Record> = (0..400)
            .map(|_| Record {
                stages: vec![
                    Observation {
                        class: 0,
                        confidence: confidence(&mut rng, 0.1),
                        cost_ms: C0,
                    },
                    Observation {
                        class: 0,
                        confidence: 1.0,
                        cost_ms: C1,
                    },
                ],
                label: Some(0),
            })
            .collect();
        curve(&records, Reference::Labels, &[C0, C1])
            .unwrap()
            .iter()
            .map(|p| (p.thresholds[0], p.expected_cost))
            .collect()
    }

    #[test]
    fn holds_the_budget_when_hard_frames_jump_from_10_to_50_percent() {
        let curve = calibrated();
        let mut c = BudgetController::new(&curve, 0.63, ms(BUDGET)).unwrap();
        let mut rng = Lcg(2024);
        const HALF: usize = 1500;
        const SETTLE: usize = 200;
        let mut costs = Vec::new();
        let mut threshold_before_jump = 0.0;
        for i in 0..2 * HALF {
            let share = if i < HALF { 0.1 } else { 0.5 };
            if i == HALF {
                threshold_before_jump = c.threshold();
            }
            let conf = confidence(&mut rng, share);
            let cost = if conf >= c.threshold() { C0 } else { C0 + C1 };
            costs.push(cost);
            c.observe(cost);
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let whole = mean(&costs);
        let first = mean(&costs[SETTLE..HALF]);
        let second = mean(&costs[HALF + SETTLE..]);
        let second_all = mean(&costs[HALF..]);
        let within = |m: f64| (m - BUDGET).abs() <= 0.05 * BUDGET;
        assert!((whole - c.running_mean()).abs() < 1e-9);
        assert!(within(whole), "whole stream: {whole:.2} ms");
        assert!(within(first), "first half: {first:.2} ms");
        assert!(within(second), "second half after settling: {second:.2} ms");
        assert!(within(second_all), "second half: {second_all:.2} ms");
        // The controller got there by exiting more frames early: to keep a third of
        // the frames deferred with half of them hard, the threshold drops to about 0.4.
        assert!(threshold_before_jump > 0.55, "{threshold_before_jump}");
        assert!(
            (0.3..0.5).contains(&c.threshold()),
            "threshold {}",
            c.threshold()
        );
    }

    #[test]
    fn the_fixed_calibrated_threshold_would_overspend() {
        // The same drift without the controller: the point of having one.
        let curve = calibrated();
        let c = BudgetController::new(&curve, 0.63, ms(BUDGET)).unwrap();
        let mut rng = Lcg(2024);
        let costs: Vec<f64> = (0..1000)
            .map(|_| {
                if confidence(&mut rng, 0.5) >= c.threshold() {
                    C0
                } else {
                    C0 + C1
                }
            })
            .collect();
        let mean = costs.iter().sum::<f64>() / costs.len() as f64;
        assert!(mean > 1.3 * BUDGET, "{mean}");
    }

    #[test]
    fn curve_lookup_interpolates_and_clamps() {
        let curve = [(0.0, 10.0), (0.5, 20.0), (1.0, 40.0)];
        let c = BudgetController::new(&curve, 0.5, ms(20.0)).unwrap();
        assert_eq!(c.threshold(), 0.5);
        assert_eq!(c.threshold_for(15.0), 0.25);
        assert_eq!(c.threshold_for(30.0), 0.75);
        assert_eq!(c.threshold_for(5.0), 0.0);
        assert_eq!(c.threshold_for(50.0), 1.0);
        assert_eq!(c.cost_at(0.75), 30.0);
        assert_eq!(c.cost_at(2.0), 40.0);
        // A flat stretch: the highest threshold at that cost (more accuracy for free).
        let flat =
            BudgetController::new(&[(0.0, 10.0), (0.4, 10.0), (1.0, 40.0)], 0.0, ms(20.0)).unwrap();
        assert!((flat.threshold_for(10.0) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn unreachable_budget_does_not_wind_up() {
        let mut c = BudgetController::new(&[(0.0, 10.0), (1.0, 40.0)], 0.5, ms(5.0)).unwrap();
        for _ in 0..10_000 {
            c.observe(10.0);
        }
        assert_eq!(c.threshold(), 0.0);
        // Once the budget becomes reachable again (costs fall), it recovers at once.
        for _ in 0..50 {
            c.observe(1.0);
        }
        assert!(c.threshold() > 0.0);
    }

    #[test]
    fn costs_from_reach_and_stage_costs() {
        let point = |t: f32, deferral: f64| CurvePoint {
            thresholds: vec![t],
            accuracy: 0.8,
            reach: vec![1.0, deferral],
            deferral,
            expected_cost: 999.0, // in the calibration's unit: not used
        };
        let curve = [point(0.0, 0.0), point(1.0, 1.0)];
        let c = BudgetController::from_curve(&curve, &[10.0, 30.0], 0.0, ms(25.0)).unwrap();
        assert_eq!(c.cost_at(0.5), 25.0);
        assert_eq!(c.threshold_for(25.0), 0.5);
        // The same curve with per-stage energy: the budget's unit picks the stage costs.
        let mj = Budget::energy_mj(300.0).unwrap();
        let e = BudgetController::from_curve(&curve, &[100.0, 400.0], 0.0, mj).unwrap();
        assert_eq!(e.budget(), mj);
        assert_eq!(e.cost_at(0.5), 300.0);
        assert_eq!(e.threshold_for(300.0), 0.5);
        assert!(BudgetController::from_curve(&[point(0.0, 0.0)], &[10.0], 0.0, ms(25.0)).is_err());
        assert!(BudgetController::new(&[], 0.0, ms(1.0)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever the costs observed, the threshold stays on the curve, and a frame's
        /// cost moves it by a bounded step.
        #[test]
        fn the_threshold_stays_on_the_curve(
            costs in prop::collection::vec(0.0..100.0f64, 1..300),
            budget in 1.0..60.0f64,
            start in 0.0..=1.0f32,
        ) {
            let curve = [(0.0, 10.0), (0.3, 14.0), (0.6, 25.0), (1.0, 40.0)];
            let mut c = BudgetController::new(&curve, start, Budget::latency_ms(budget).unwrap()).unwrap();
            for cost in costs {
                c.observe(cost);
                prop_assert!((0.0..=1.0).contains(&c.threshold()), "{}", c.threshold());
            }
            prop_assert!(c.running_mean() >= 0.0);
        }

        /// Frames that cost what the curve says they cost at the current threshold keep
        /// the running mean at the budget, whenever the budget is within the curve.
        #[test]
        fn an_honest_stream_converges_to_a_reachable_budget(budget in 12.0..38.0f64) {
            let curve = [(0.0, 10.0), (1.0, 40.0)];
            let mut c = BudgetController::new(&curve, 0.5, Budget::latency_ms(budget).unwrap()).unwrap();
            for _ in 0..2000 {
                let cost = c.cost_at(c.threshold());
                c.observe(cost);
            }
            prop_assert!((c.running_mean() - budget).abs() < 0.05 * budget, "{} vs {budget}", c.running_mean());
        }
    }
}
