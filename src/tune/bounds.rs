//! Finite-sample bounds: what a threshold fitted on a few hundred images can promise about
//! the next thousand, with a stated confidence.
//!
//! A cascade's accuracy is a share of inputs answered right, and its expected cost per input
//! is `sum_k reach_k * cost_k` over the shares of inputs that reach each stage. Both are
//! binomial proportions of the input population (the measured stage costs are taken as
//! known), so each gets an exact one-sided Clopper-Pearson bound (Clopper & Pearson,
//! Biometrika 1934): the accuracy a lower bound, every reach share an upper bound. The
//! failure probability `1 - confidence` is split evenly between the accuracy bound and the
//! reach bounds (a union bound), so all of a [`Bounds`] hold together at the confidence.
//!
//! Choosing a threshold *with* a guarantee uses Learn-then-Test (Angelopoulos, Bates,
//! Candès, Jordan, Lei, 2021, arXiv:2110.01052) with fixed-sequence testing: candidates are
//! put in an order fixed before the test inputs are looked at (by the fitting inputs: the
//! cheapest first for a cost budget, the most accurate first for an accuracy target), each is
//! tested in turn on the held-out inputs ("its bound meets the target"), and testing stops
//! at the first that fails. Every candidate that passed keeps the target with probability at
//! least the confidence, all at once, so the best of them may be chosen freely.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A confidence level strictly between 0 and 1 (0.95: the bounds hold for 95% of the
/// samples one could have drawn).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Confidence(f64);

impl Confidence {
    pub const DEFAULT: Confidence = Confidence(0.95);

    pub fn new(level: f64) -> Result<Confidence> {
        if level.is_finite() && level > 0.0 && level < 1.0 {
            Ok(Confidence(level))
        } else {
            Err(Error::InvalidArgument(format!(
                "a confidence is a level strictly between 0 and 1 (0.95 for 95%), got {level}"
            )))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// The probability that a bound fails: `1 - confidence`.
    pub fn risk(self) -> f64 {
        1.0 - self.0
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Confidence::DEFAULT
    }
}

impl TryFrom<f64> for Confidence {
    type Error = String;
    fn try_from(v: f64) -> std::result::Result<Self, String> {
        Confidence::new(v).map_err(|e| e.to_string())
    }
}

impl From<Confidence> for f64 {
    fn from(c: Confidence) -> f64 {
        c.0
    }
}

impl std::str::FromStr for Confidence {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        Confidence::new(v).map_err(|e| e.to_string())
    }
}

/// The smallest `p` such that `successes` or more of `n` trials succeed with probability at
/// least `risk` when each succeeds with probability `p`: a one-sided lower confidence bound
/// on the success rate that fails with probability at most `risk`. 0 when `successes` is 0.
pub fn clopper_pearson_lower(successes: usize, n: usize, risk: f64) -> f64 {
    if n == 0 || successes == 0 {
        return 0.0;
    }
    let k = successes.min(n) as f64;
    let risk = risk.clamp(f64::MIN_POSITIVE, 1.0);
    statrs::function::beta::inv_beta_reg(k, n as f64 - k + 1.0, risk)
}

/// The one-sided upper confidence bound matching [`clopper_pearson_lower`]: 1 when every
/// trial succeeded.
pub fn clopper_pearson_upper(successes: usize, n: usize, risk: f64) -> f64 {
    if n == 0 || successes >= n {
        return 1.0;
    }
    1.0 - clopper_pearson_lower(n - successes, n, risk)
}

/// What a cascade at fixed thresholds keeps, with a stated confidence, on the population
/// its inputs were drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub confidence: Confidence,
    /// Inputs the bounds were computed on (not the ones the thresholds were fitted on).
    pub inputs: usize,
    /// Accuracy (or agreement) is at least this.
    pub accuracy_at_least: f64,
    /// Expected cost per input is at most this (in the stage costs' unit).
    pub cost_at_most: f64,
}

/// Counts over a set of inputs at fixed thresholds: what the bounds are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub inputs: usize,
    /// Inputs answered right.
    pub right: usize,
    /// Inputs that reached each stage (`reached[0]` is every input).
    pub reached: Vec<usize>,
}

impl Bounds {
    /// Joint bounds at `confidence` from a tally and the cost of each stage: half the risk
    /// for the accuracy, the other half split over the reach shares of the later stages.
    pub fn of(tally: &Tally, stage_costs: &[f64], confidence: Confidence) -> Result<Bounds> {
        if tally.reached.len() != stage_costs.len() {
            return Err(Error::Internal(format!(
                "{} reach counts for {} stage costs",
                tally.reached.len(),
                stage_costs.len()
            )));
        }
        let later = stage_costs.len().saturating_sub(1);
        let risk = confidence.risk();
        let (accuracy_risk, reach_risk) = if later == 0 {
            (risk, 0.0)
        } else {
            (risk / 2.0, risk / 2.0 / later as f64)
        };
        let n = tally.inputs;
        let cost_at_most = stage_costs
            .iter()
            .zip(&tally.reached)
            .enumerate()
            .map(|(k, (&cost, &reached))| {
                let share = if k == 0 {
                    1.0
                } else {
                    clopper_pearson_upper(reached, n, reach_risk)
                };
                share * cost
            })
            .sum();
        Ok(Bounds {
            confidence,
            inputs: n,
            accuracy_at_least: clopper_pearson_lower(tally.right, n, accuracy_risk),
            cost_at_most,
        })
    }

    /// Whether these bounds promise `target`: the cost bound within a budget, or the
    /// accuracy bound at or above an accuracy target.
    pub fn meet(&self, target: crate::tune::Target) -> bool {
        use crate::tune::tradeoff::TOLERANCE;
        match target {
            crate::tune::Target::Budget(b) => self.cost_at_most <= b.value() + TOLERANCE,
            crate::tune::Target::MinAccuracy(a) => self.accuracy_at_least + TOLERANCE >= a,
        }
    }
}

/// Learn-then-Test with fixed-sequence testing (see the module docs): `candidates` in the
/// order fixed beforehand, `bounds(i)` the bounds of candidate `i` on the test inputs.
/// Returns the indices that passed (a prefix of the order), each keeping `target` with
/// the bounds' confidence, all at once.
pub fn fixed_sequence<F>(
    order: &[usize],
    mut bounds: F,
    target: crate::tune::Target,
) -> Result<Vec<usize>>
where
    F: FnMut(usize) -> Result<Bounds>,
{
    let mut passed = Vec::new();
    for &i in order {
        if !bounds(i)?.meet(target) {
            break;
        }
        passed.push(i);
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::{Budget, Target};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn clopper_pearson_matches_its_closed_forms_at_the_ends() {
        // No failure in n trials: the lower bound solves p^n = risk.
        for (n, risk) in [(10, 0.05), (100, 0.025), (500, 0.01)] {
            let expected = f64::powf(risk, 1.0 / n as f64);
            let got = clopper_pearson_lower(n, n, risk);
            assert!(close(got, expected, 1e-9), "n={n}: {got} vs {expected}");
            // No success: the upper bound solves (1-p)^n = risk.
            let got = clopper_pearson_upper(0, n, risk);
            assert!(close(got, 1.0 - expected, 1e-9), "n={n}: {got}");
        }
        assert_eq!(clopper_pearson_lower(0, 10, 0.05), 0.0);
        assert_eq!(clopper_pearson_upper(10, 10, 0.05), 1.0);
        assert_eq!(clopper_pearson_lower(3, 0, 0.05), 0.0);
    }

    #[test]
    fn clopper_pearson_matches_published_intervals() {
        // The exact 95% interval for 5 of 10 is [0.1871, 0.8129] (two-sided, 2.5% a side;
        // Clopper & Pearson's tables; also R's binom.test(5, 10)).
        assert!(close(clopper_pearson_lower(5, 10, 0.025), 0.187086, 1e-5));
        assert!(close(clopper_pearson_upper(5, 10, 0.025), 0.812914, 1e-5));
        // 0 of 20 at 95% two-sided: upper 0.168 (the "rule of three" is 3/20 = 0.15).
        assert!(close(clopper_pearson_upper(0, 20, 0.025), 0.168434, 1e-5));
    }

    #[test]
    fn a_lower_bound_is_below_the_rate_seen_and_tightens_with_more_inputs() {
        let small = clopper_pearson_lower(90, 100, 0.05);
        let large = clopper_pearson_lower(900, 1000, 0.05);
        assert!(small < large && large < 0.9, "{small} {large}");
        assert!(clopper_pearson_upper(90, 100, 0.05) > 0.9);
    }

    /// A tiny deterministic generator, so the simulation is the same on every run.
    struct SplitMix(u64);
    impl SplitMix {
        fn unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Draws `n` inputs of a two-stage cascade with known rates: an input is right with
    /// probability `accuracy` and reaches stage 1 with probability `deferral`.
    fn simulate(rng: &mut SplitMix, n: usize, accuracy: f64, deferral: f64) -> Tally {
        let mut right = 0;
        let mut deferred = 0;
        for _ in 0..n {
            right += usize::from(rng.unit() < accuracy);
            deferred += usize::from(rng.unit() < deferral);
        }
        Tally {
            inputs: n,
            right,
            reached: vec![n, deferred],
        }
    }

    #[test]
    fn the_bounds_hold_their_confidence_over_many_simulated_calibrations() {
        // True rates: 85% accuracy, 40% deferred; costs 10 + 0.4 * 30 = 22 per input.
        let (accuracy, deferral, costs) = (0.85, 0.40, [10.0, 30.0]);
        let true_cost = costs[0] + deferral * costs[1];
        let confidence = Confidence::new(0.95).unwrap();
        let mut rng = SplitMix(7);
        let runs = 1000;
        let mut violated = 0;
        let mut accuracy_violated = 0;
        let mut cost_violated = 0;
        for _ in 0..runs {
            let tally = simulate(&mut rng, 300, accuracy, deferral);
            let b = Bounds::of(&tally, &costs, confidence).unwrap();
            let acc_bad = b.accuracy_at_least > accuracy;
            let cost_bad = b.cost_at_most < true_cost;
            accuracy_violated += usize::from(acc_bad);
            cost_violated += usize::from(cost_bad);
            violated += usize::from(acc_bad || cost_bad);
        }
        // Each half holds at 97.5%, so jointly at least 95%: at most ~5% of runs may fail
        // (binomial sd of 1000 runs at 5% is 0.7 points; allow 3 sd of noise).
        assert!(violated <= 71, "bounds violated in {violated} of {runs}");
        // Exact bounds are conservative but not vacuous: each side does fail sometimes.
        assert!(
            accuracy_violated > 0 && cost_violated > 0,
            "{accuracy_violated} {cost_violated}"
        );
    }

    #[test]
    fn learn_then_test_keeps_the_budget_at_its_confidence_when_choosing_among_thresholds() {
        // Ten candidate thresholds of a two-stage cascade with known deferral rates
        // 0.05, 0.10, ... 0.50 (cheapest first), costs 10 + d * 30. Budget 20: the true
        // costs of candidates 0..=5 (d <= 0.30) fit, 6.. (d >= 0.35, 20.5 and up) do not.
        let deferrals: Vec<f64> = (1..=10).map(|i| 0.05 * i as f64).collect();
        let costs = [10.0, 30.0];
        let budget = Target::Budget(Budget::latency_ms(20.0).unwrap());
        let confidence = Confidence::new(0.95).unwrap();
        let mut rng = SplitMix(11);
        let runs = 1000;
        let mut chose_over_budget = 0;
        let mut chose_any = 0;
        let mut naive_over_budget = 0;
        for _ in 0..runs {
            let tallies: Vec<Tally> = deferrals
                .iter()
                .map(|&d| simulate(&mut rng, 300, 0.8, d))
                .collect();
            let order: Vec<usize> = (0..tallies.len()).collect();
            let passed = fixed_sequence(
                &order,
                |i| Bounds::of(&tallies[i], &costs, confidence),
                budget,
            )
            .unwrap();
            // The most expensive certified one (the most accurate, on a real curve).
            if let Some(&i) = passed.last() {
                chose_any += 1;
                let true_cost = costs[0] + deferrals[i] * costs[1];
                chose_over_budget += usize::from(true_cost > 20.0);
            }
            // The point-estimate rule this replaces: the last whose observed cost fits.
            let observed = |t: &Tally| costs[0] + t.reached[1] as f64 / t.inputs as f64 * costs[1];
            if let Some(i) = tallies.iter().rposition(|t| observed(t) <= 20.0) {
                naive_over_budget += usize::from(costs[0] + deferrals[i] * costs[1] > 20.0);
            }
        }
        // The check can fail: fitting on the same inputs breaks the budget far more often.
        assert!(
            naive_over_budget > 150,
            "naive rule over budget in {naive_over_budget}"
        );
        assert!(
            chose_over_budget <= 71,
            "over budget in {chose_over_budget} of {runs}"
        );
        // And it is not vacuous: most runs certify something (candidate 0 costs 11.5).
        assert!(
            chose_any > 900,
            "certified something in only {chose_any} of {runs}"
        );
    }

    #[test]
    fn confidence_is_checked() {
        assert!(Confidence::new(0.0).is_err());
        assert!(Confidence::new(1.0).is_err());
        assert!(Confidence::new(f64::NAN).is_err());
        assert!("0.9".parse::<Confidence>().is_ok());
        let e = "95".parse::<Confidence>().unwrap_err();
        assert!(e.contains("between 0 and 1"), "{e}");
    }
}
