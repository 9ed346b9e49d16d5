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
//!
//! With three or more stages the exits have their own thresholds, and the curve is a Pareto
//! front of threshold vectors rather than one number's range. The controller does the same
//! on both: the curve's points, cheapest first, form a path, and it moves a position along
//! that path (each exit's threshold interpolated between neighbouring points); with one
//! shared threshold the path is the threshold's own axis.

use crate::error::{Error, Result};
use crate::runtime::MAX_STAGES;
use crate::tune::curve::CurvePoint;
use crate::tune::Budget;

/// Default integral gain: the threshold responds to a lasting error within about
/// `1 / gain` frames, while one frame's cost moves it by only a small step.
pub const DEFAULT_GAIN: f64 = 0.02;

/// Weight of the newest frame in the recent mean reported beside the running mean.
const RECENT_WEIGHT: f64 = 1.0 / 64.0;

/// One threshold per exit (every stage but the last), or one shared by all: a fixed
/// capacity, so reading the controller's choice for a frame allocates nothing.
pub type Thresholds = heapless::Vec<f32, MAX_STAGES>;

/// A point of the path the controller moves along: the exits' thresholds there and the
/// expected cost per frame, in the budget's unit.
pub type PathPoint = (Thresholds, f64);

/// Online threshold controller for a per-frame cost budget (see the module docs).
#[derive(Debug, Clone)]
pub struct BudgetController {
    budget: Budget,
    gain: f64,
    /// The path, cheapest first (ties: lower thresholds first); every point has as many
    /// thresholds as the first.
    curve: Vec<PathPoint>,
    /// The integral correction subtracted from the budget before the curve is asked.
    offset: f64,
    /// Where on the path the controller is: point `i` at `i`, between two points the
    /// fraction of the way from one to the next.
    position: f64,
    /// The thresholds at `position`, kept so that reading them copies nothing.
    thresholds: Thresholds,
    frames: u64,
    total: f64,
    recent: f64,
}

impl BudgetController {
    /// A controller over `curve` (thresholds, expected cost per frame in the budget's unit)
    /// that starts at the thresholds `start`. Its correction starts where the curve puts
    /// `start`, so the first frames run exactly at the calibrated thresholds.
    pub fn new(curve: &[PathPoint], start: &[f32], budget: Budget) -> Result<BudgetController> {
        let exits = curve.first().map_or(0, |p| p.0.len());
        let in_range = |t: &[f32]| t.iter().all(|v| (0.0..=1.0).contains(v));
        if !(curve.iter().all(|(t, _)| in_range(t)) && in_range(start)) {
            return Err(Error::InvalidArgument(
                "a budget curve's thresholds must lie in 0..=1, the range of every confidence metric".into(),
            ));
        }
        let mut points: Vec<PathPoint> = curve
            .iter()
            .filter(|(_, c)| c.is_finite())
            .cloned()
            .collect();
        if points.is_empty() || exits == 0 {
            return Err(Error::InvalidArgument(
                "the profile has no threshold curve to steer a budget along".into(),
            ));
        }
        if points.iter().any(|(t, _)| t.len() != exits) || start.len() != exits {
            return Err(Error::InvalidArgument(format!(
                "a budget curve's points and its start need one threshold per exit ({exits}), or one shared"
            )));
        }
        // Cheapest first: along a shared threshold that is also the threshold's order, as
        // more deferral never costs less; along a Pareto front, its own order.
        points.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| cmp_thresholds(&a.0, &b.0)));
        let mut c = BudgetController {
            budget,
            gain: DEFAULT_GAIN,
            curve: points,
            offset: 0.0,
            position: 0.0,
            thresholds: Thresholds::new(),
            frames: 0,
            total: 0.0,
            recent: 0.0,
        };
        c.move_to(c.position_of(start));
        c.offset = c.clamp_offset(c.limit() - c.cost_at_position(c.position));
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
    /// profile was calibrated for, which need not be the stream's. `start` is the profile's
    /// chosen thresholds (one per exit, or one shared).
    pub fn from_curve(
        curve: &[CurvePoint],
        stage_costs: &[f64],
        start: &[f32],
        budget: Budget,
    ) -> Result<BudgetController> {
        let exits = stage_costs.len().saturating_sub(1);
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
                Ok((per_exit(&p.thresholds, exits)?, cost))
            })
            .collect::<Result<Vec<_>>>()?;
        BudgetController::new(&points, &per_exit(start, exits)?, budget)
    }

    /// The thresholds to use for the next frame, one per exit.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Takes the cost of the frame just answered and moves the thresholds.
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
        self.move_to(self.position_for(self.limit() - self.offset));
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

    fn move_to(&mut self, position: f64) {
        self.position = position;
        self.thresholds = self.thresholds_at(position);
    }

    /// Point `i`, and the fraction of the way to point `i + 1`, at `position`.
    fn segment(&self, position: f64) -> (usize, f64) {
        let last = self.curve.len() - 1;
        let p = position.clamp(0.0, last as f64);
        let i = (p.floor() as usize).min(last);
        (i, p - i as f64)
    }

    /// Each exit's threshold at `position` (linear between points).
    pub fn thresholds_at(&self, position: f64) -> Thresholds {
        let (i, f) = self.segment(position);
        let from = &self.curve[i].0;
        let to = &self.curve.get(i + 1).map_or(from, |p| &p.0);
        from.iter()
            .zip(to.iter())
            .map(|(a, b)| a + f as f32 * (b - a))
            .collect()
    }

    /// The curve's expected cost at `position` (linear between points).
    pub fn cost_at_position(&self, position: f64) -> f64 {
        let (i, f) = self.segment(position);
        let c0 = self.curve[i].1;
        let c1 = self.curve.get(i + 1).map_or(c0, |p| p.1);
        c0 + f * (c1 - c0)
    }

    /// The position nearest to the thresholds `t` (each segment's closest point, in the
    /// largest per-exit difference): where a shared threshold lies between two points, the
    /// fraction of the way between them.
    pub fn position_of(&self, t: &[f32]) -> f64 {
        let distance = |a: &[f32]| {
            a.iter()
                .zip(t)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let mut best = (distance(&self.curve[0].0), 0.0);
        for (i, pair) in self.curve.windows(2).enumerate() {
            let (a, b) = (&pair[0].0, &pair[1].0);
            // The fraction minimizing the squared distance to the segment, then clamped.
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for ((x, y), v) in a.iter().zip(b.iter()).zip(t) {
                let d = f64::from(y - x);
                num += f64::from(v - x) * d;
                den += d * d;
            }
            let f = if den > 0.0 {
                (num / den).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let at = self.thresholds_at(i as f64 + f);
            let d = distance(&at);
            if d < best.0 {
                best = (d, i as f64 + f);
            }
        }
        best.1
    }

    /// The furthest position whose expected cost is at most `aim` (linear between points),
    /// or the cheapest point if even that costs more.
    pub fn position_for(&self, aim: f64) -> f64 {
        let c = &self.curve;
        let Some(i) = c.iter().rposition(|p| p.1 <= aim) else {
            return 0.0;
        };
        match c.get(i + 1) {
            None => i as f64,
            Some(&(_, c1)) => {
                let c0 = c[i].1;
                i as f64 + ((aim - c0) / (c1 - c0)).clamp(0.0, 1.0)
            }
        }
    }

    /// The thresholds whose expected cost is `aim` (see [`BudgetController::position_for`]).
    pub fn thresholds_for(&self, aim: f64) -> Thresholds {
        self.thresholds_at(self.position_for(aim))
    }

    /// The expected cost at the thresholds `t` (the nearest point of the path).
    pub fn cost_at(&self, t: &[f32]) -> f64 {
        self.cost_at_position(self.position_of(t))
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

/// Lexicographic order of two threshold vectors.
fn cmp_thresholds(a: &[f32], b: &[f32]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// `thresholds` as one per exit of a cascade with `exits` exits: one given is shared by all.
fn per_exit(thresholds: &[f32], exits: usize) -> Result<Thresholds> {
    let out: Option<Thresholds> = match thresholds {
        [one] if exits < MAX_STAGES => Some((0..exits).map(|_| *one).collect()),
        many if many.len() == exits => Thresholds::from_slice(many).ok(),
        _ => None,
    };
    out.filter(|t| !t.is_empty()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} thresholds for a cascade with {exits} exits: give one, or one per exit",
            thresholds.len()
        ))
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::tune::curve::{curve, Observation, Record, Reference};

    const C0: f64 = 10.0;
    const C1: f64 = 30.0;
    const BUDGET: f64 = 20.0;

    fn ms(v: f64) -> Budget {
        Budget::latency_ms(v).unwrap()
    }

    /// A path along one shared threshold.
    pub(super) fn path(curve: &[(f32, f64)]) -> Vec<PathPoint> {
        curve
            .iter()
            .map(|&(t, c)| (Thresholds::from_slice(&[t]).unwrap(), c))
            .collect()
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
    fn calibrated() -> Vec<PathPoint> {
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
            .map(|p| {
                (
                    Thresholds::from_slice(&p.thresholds).unwrap(),
                    p.expected_cost,
                )
            })
            .collect()
    }

    #[test]
    fn holds_the_budget_when_hard_frames_jump_from_10_to_50_percent() {
        let curve = calibrated();
        let mut c = BudgetController::new(&curve, &[0.63], ms(BUDGET)).unwrap();
        let mut rng = Lcg(2024);
        const HALF: usize = 1500;
        const SETTLE: usize = 200;
        let mut costs = Vec::new();
        let mut threshold_before_jump = 0.0;
        for i in 0..2 * HALF {
            let share = if i < HALF { 0.1 } else { 0.5 };
            if i == HALF {
                threshold_before_jump = c.thresholds()[0];
            }
            let conf = confidence(&mut rng, share);
            let cost = if conf >= c.thresholds()[0] {
                C0
            } else {
                C0 + C1
            };
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
            (0.3..0.5).contains(&c.thresholds()[0]),
            "threshold {:?}",
            c.thresholds()
        );
    }

    #[test]
    fn the_fixed_calibrated_threshold_would_overspend() {
        // The same drift without the controller: the point of having one.
        let curve = calibrated();
        let c = BudgetController::new(&curve, &[0.63], ms(BUDGET)).unwrap();
        let mut rng = Lcg(2024);
        let costs: Vec<f64> = (0..1000)
            .map(|_| {
                if confidence(&mut rng, 0.5) >= c.thresholds()[0] {
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
        let curve = path(&[(0.0, 10.0), (0.5, 20.0), (1.0, 40.0)]);
        let c = BudgetController::new(&curve, &[0.5], ms(20.0)).unwrap();
        assert_eq!(*c.thresholds(), [0.5]);
        assert_eq!(c.thresholds_for(15.0), [0.25]);
        assert_eq!(c.thresholds_for(30.0), [0.75]);
        assert_eq!(c.thresholds_for(5.0), [0.0]);
        assert_eq!(c.thresholds_for(50.0), [1.0]);
        assert_eq!(c.cost_at(&[0.75]), 30.0);
        assert_eq!(c.cost_at(&[2.0]), 40.0);
        // A flat stretch: the highest threshold at that cost (more accuracy for free).
        let flat = path(&[(0.0, 10.0), (0.4, 10.0), (1.0, 40.0)]);
        let flat = BudgetController::new(&flat, &[0.0], ms(20.0)).unwrap();
        assert!((flat.thresholds_for(10.0)[0] - 0.4).abs() < 1e-6);
    }

    #[test]
    fn unreachable_budget_does_not_wind_up() {
        let curve = path(&[(0.0, 10.0), (1.0, 40.0)]);
        let mut c = BudgetController::new(&curve, &[0.5], ms(5.0)).unwrap();
        for _ in 0..10_000 {
            c.observe(10.0);
        }
        assert_eq!(*c.thresholds(), [0.0]);
        // Once the budget becomes reachable again (costs fall), it recovers at once.
        for _ in 0..50 {
            c.observe(1.0);
        }
        assert!(c.thresholds()[0] > 0.0);
    }

    /// Three stages costing 10, 20 and 40 ms, exits with their own thresholds. A frame's
    /// confidence at each exit is uniform in [0, 1) (drawn anew at each), so at thresholds
    /// `(a, b)` it reaches stage 1 with probability `a` and stage 2 with `a * b`, and costs
    /// `10 + 20 a + 40 a b` on average: the path below is three points of such a front,
    /// hand-worked (cost 10 at (0, 0), 10 + 20 * 0.5 + 40 * 0.5 * 0.2 = 24 at (0.5, 0.2),
    /// 10 + 20 * 0.9 + 40 * 0.9 * 0.6 = 49.6 at (0.9, 0.6)).
    fn front() -> Vec<PathPoint> {
        [([0.0, 0.0], 10.0), ([0.5, 0.2], 24.0), ([0.9, 0.6], 49.6)]
            .iter()
            .map(|(t, c)| (Thresholds::from_slice(t).unwrap(), *c))
            .collect()
    }

    #[test]
    fn per_exit_thresholds_move_together_along_the_front() {
        let c = BudgetController::new(&front(), &[0.5, 0.2], ms(24.0)).unwrap();
        assert_eq!(*c.thresholds(), [0.5, 0.2]);
        // Halfway (in cost) between the last two points: halfway between their thresholds.
        let mid = c.thresholds_for(36.8);
        assert!(
            (mid[0] - 0.7).abs() < 1e-6 && (mid[1] - 0.4).abs() < 1e-6,
            "{mid:?}"
        );
        // A start between points is placed where it lies on the path.
        let between = BudgetController::new(&front(), &[0.7, 0.4], ms(24.0)).unwrap();
        assert!((between.cost_at_position(between.position) - 36.8).abs() < 1e-4);
        // One threshold given for every exit is read as that value at each.
        let shared = BudgetController::new(&front(), &[0.5], ms(24.0));
        assert!(
            shared.is_err(),
            "the path has two exits: a bare `new` wants both"
        );
    }

    #[test]
    fn holds_a_budget_with_per_exit_thresholds() {
        // The stream runs at the thresholds the controller gives; the frames cost what the
        // model in `front` says, drawn frame by frame, and the hard share jumps halfway (a
        // hard frame is never confident at stage 0, as if `a` were 1).
        let mut c = BudgetController::new(&front(), &[0.5, 0.2], ms(30.0)).unwrap();
        let mut rng = Lcg(99);
        let mut costs = Vec::new();
        for i in 0..4000 {
            let hard = i >= 2000 && rng.next() < 0.3;
            let [a, b] = [c.thresholds()[0], c.thresholds()[1]];
            let mut cost = 10.0;
            if hard || rng.next() < f64::from(a) {
                cost += 20.0;
                if rng.next() < f64::from(b) {
                    cost += 40.0;
                }
            }
            costs.push(cost);
            c.observe(cost);
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        for (name, part) in [("whole", &costs[..]), ("after the jump", &costs[2200..])] {
            let m = mean(part);
            assert!((m - 30.0).abs() <= 0.05 * 30.0, "{name}: {m:.2} ms");
        }
        // Both exits' thresholds stay on the path: between its first and last point.
        let t = c.thresholds();
        assert!(
            (0.0..=0.9).contains(&t[0]) && (0.0..=0.6).contains(&t[1]),
            "{t:?}"
        );
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
        let c = BudgetController::from_curve(&curve, &[10.0, 30.0], &[0.0], ms(25.0)).unwrap();
        assert_eq!(c.cost_at(&[0.5]), 25.0);
        assert_eq!(c.thresholds_for(25.0), [0.5]);
        // The same curve with per-stage energy: the budget's unit picks the stage costs.
        let mj = Budget::energy_mj(300.0).unwrap();
        let e = BudgetController::from_curve(&curve, &[100.0, 400.0], &[0.0], mj).unwrap();
        assert_eq!(e.budget(), mj);
        assert_eq!(e.cost_at(&[0.5]), 300.0);
        assert_eq!(e.thresholds_for(300.0), [0.5]);
        assert!(
            BudgetController::from_curve(&[point(0.0, 0.0)], &[10.0], &[0.0], ms(25.0)).is_err()
        );
        assert!(BudgetController::new(&[], &[0.0], ms(1.0)).is_err());
        // A threshold outside 0..=1 on the path or at the start would be steered to.
        assert!(BudgetController::from_curve(
            &[point(989.0, 1.0)],
            &[10.0, 30.0],
            &[0.0],
            ms(25.0)
        )
        .is_err());
        assert!(
            BudgetController::from_curve(&curve, &[10.0, 30.0], &[f32::NAN], ms(25.0)).is_err()
        );
        // Three stages: a profile's one shared threshold is read at both exits.
        let three = |t: f32, r1: f64, r2: f64| CurvePoint {
            thresholds: vec![t, t],
            accuracy: 0.8,
            reach: vec![1.0, r1, r2],
            deferral: r1,
            expected_cost: 0.0,
        };
        let curve = [three(0.0, 0.0, 0.0), three(1.0, 1.0, 1.0)];
        let c =
            BudgetController::from_curve(&curve, &[10.0, 20.0, 40.0], &[0.5], ms(40.0)).unwrap();
        assert_eq!(*c.thresholds(), [0.5, 0.5]);
        assert_eq!(c.cost_at(&[0.5, 0.5]), 40.0);
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
            let curve = super::tests::path(&[(0.0, 10.0), (0.3, 14.0), (0.6, 25.0), (1.0, 40.0)]);
            let mut c = BudgetController::new(&curve, &[start], Budget::latency_ms(budget).unwrap()).unwrap();
            for cost in costs {
                c.observe(cost);
                prop_assert!((0.0..=1.0).contains(&c.thresholds()[0]), "{:?}", c.thresholds());
            }
            prop_assert!(c.running_mean() >= 0.0);
        }

        /// Frames that cost what the curve says they cost at the current threshold keep
        /// the running mean at the budget, whenever the budget is within the curve.
        #[test]
        fn an_honest_stream_converges_to_a_reachable_budget(budget in 12.0..38.0f64) {
            let curve = super::tests::path(&[(0.0, 10.0), (1.0, 40.0)]);
            let mut c = BudgetController::new(&curve, &[0.5], Budget::latency_ms(budget).unwrap()).unwrap();
            for _ in 0..2000 {
                let cost = c.cost_at_position(c.position);
                c.observe(cost);
            }
            prop_assert!((c.running_mean() - budget).abs() < 0.05 * budget, "{} vs {budget}", c.running_mean());
        }
    }
}
