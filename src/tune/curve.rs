//! Choosing the exit thresholds from measured costs: per-input records of what every stage
//! answers -> the accuracy/cost curve over candidate thresholds -> the best thresholds for a
//! budget (or the cheapest for an accuracy target), checked on inputs it was not fitted on.
//!
//! Every exit has its own threshold: an input exits at the first stage whose confidence
//! reaches that stage's threshold. With two stages the curve is every threshold that changes
//! a decision; with three or more the exits are chosen jointly, over a grid of each exit's
//! confidence quantiles, and the curve is that grid's Pareto front (accuracy against cost).
//! Replay is arithmetic over the records, so any number of candidate cascades costs only
//! the inferences that made the records.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::runtime::Threshold;
use crate::tune::bounds::Tally;
use crate::tune::tradeoff::{cheapest_reaching, most_accurate_within, Tradeoff};
use crate::tune::Target;

/// Distinct candidate thresholds per exit when exits are chosen jointly (three or more
/// stages): quantiles of that stage's confidences. 32 per exit keeps a 3-stage grid at
/// about a thousand points (milliseconds of replay) while moving each exit in steps of
/// about 3% of the inputs.
pub const JOINT_GRID: usize = 32;

/// At most this many grid points for cascades of four or more stages (fewer quantiles per
/// exit), so replay stays arithmetic of seconds.
const MAX_GRID_POINTS: usize = 1 << 15;

/// What one stage answered for one input, and what it cost there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub class: usize,
    pub confidence: f32,
    /// Measured cost of this stage on this input (milliseconds).
    pub cost_ms: f64,
}

/// Every stage's observation for one input, with its label if the data has labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub stages: Vec<Observation>,
    pub label: Option<usize>,
}

/// What an answer is judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reference {
    /// The data's labels: accuracy is top-1 accuracy.
    Labels,
    /// No labels: an answer is "right" when it agrees with the last (largest) stage.
    LastStageAgreement,
}

impl Reference {
    pub(crate) fn correct(self, r: &Record, stage: usize) -> bool {
        let answer = r.stages[stage].class;
        match self {
            Reference::Labels => r.label == Some(answer),
            Reference::LastStageAgreement => r.stages.last().map(|o| o.class) == Some(answer),
        }
    }
}

/// One point of the threshold curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// One threshold per exit (every stage but the last). Profiles written before exits had
    /// their own threshold store one number, `threshold`, read as that value at every exit.
    #[serde(alias = "threshold", deserialize_with = "thresholds_in_range")]
    pub thresholds: Vec<f32>,
    pub accuracy: f64,
    /// Share of inputs that reach each stage (`reach[0]` is 1).
    pub reach: Vec<f64>,
    /// Share of inputs deferred past the first stage.
    pub deferral: f64,
    /// `sum_k reach[k] * stage_cost[k]`, in the unit of the stage costs.
    pub expected_cost: f64,
}

/// A list of thresholds, or one number standing for it (an older file's single shared
/// threshold), each checked by `T`'s conversion from a number (whose message is kept).
pub(crate) fn one_or_many<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<f32>,
    T::Error: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }
    let values = match OneOrMany::deserialize(d)? {
        OneOrMany::One(t) => vec![t],
        OneOrMany::Many(v) => v,
    };
    values
        .into_iter()
        .map(|v| T::try_from(v).map_err(serde::de::Error::custom))
        .collect()
}

/// [`one_or_many`] for a curve point read from a file: each threshold checked to lie in
/// 0..=1 as a [`Threshold`] is, then kept as a plain number for the search's arithmetic. A
/// point outside that range would steer a stream's thresholds outside it.
fn thresholds_in_range<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<f32>, D::Error> {
    Ok(one_or_many::<D, Threshold>(d)?
        .into_iter()
        .map(Threshold::get)
        .collect())
}

impl Tradeoff for CurvePoint {
    fn accuracy(&self) -> f64 {
        self.accuracy
    }
    fn cost(&self) -> f64 {
        self.expected_cost
    }
}

/// Thresholds as people read them: `0.42` for one exit, `0.42/0.61` for two.
pub fn format_thresholds(thresholds: &[f32]) -> String {
    thresholds
        .iter()
        .map(|t| {
            format!("{t:.4}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        })
        .map(|t| if t.is_empty() { "0".into() } else { t })
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes a curve as CSV: thresholds (per exit, `/`-separated), accuracy, deferral,
/// expected cost.
pub fn write_csv(curve: &[CurvePoint], path: &std::path::Path) -> Result<()> {
    crate::output::atomically(path, |out| {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(["thresholds", "accuracy", "deferral", "expected_cost"])?;
        for p in curve {
            w.write_record([
                format_thresholds(&p.thresholds),
                format!("{:.6}", p.accuracy),
                format!("{:.6}", p.deferral),
                format!("{:.6}", p.expected_cost),
            ])?;
        }
        w.flush()
    })
}

/// The threshold of each exit of an `stages`-stage cascade: one given for all, or one each.
fn per_exit(thresholds: &[f32], stages: usize) -> impl Iterator<Item = f32> + '_ {
    let shared = thresholds.len() == 1;
    (0..stages.saturating_sub(1)).map(move |k| {
        if shared {
            thresholds[0]
        } else {
            thresholds.get(k).copied().unwrap_or(1.0)
        }
    })
}

/// The stage an input exits at under `thresholds` (one per exit, or one shared).
pub fn exit_stage(r: &Record, thresholds: &[f32]) -> usize {
    let last = r.stages.len() - 1;
    per_exit(thresholds, r.stages.len())
        .zip(&r.stages)
        .position(|(t, o)| o.confidence >= t)
        .unwrap_or(last)
}

/// Counts right answers and stage reaches under `thresholds`: what [`point`] and the
/// bounds of [`crate::tune::bounds`] are computed from.
pub fn tally(records: &[Record], reference: Reference, thresholds: &[f32]) -> Tally {
    let n = records.first().map_or(0, |r| r.stages.len());
    let mut reached = vec![0usize; n];
    let mut right = 0usize;
    for r in records {
        let exit = exit_stage(r, thresholds);
        for k in reached.iter_mut().take(exit + 1) {
            *k += 1;
        }
        right += usize::from(reference.correct(r, exit));
    }
    Tally {
        inputs: records.len(),
        right,
        reached,
    }
}

/// Accuracy, reach and expected cost of `thresholds` over `records`.
pub fn point(
    records: &[Record],
    reference: Reference,
    stage_costs: &[f64],
    thresholds: &[f32],
) -> CurvePoint {
    let t = tally(records, reference, thresholds);
    let total = t.inputs.max(1) as f64;
    let mut reach: Vec<f64> = t.reached.iter().map(|&c| c as f64 / total).collect();
    reach.resize(stage_costs.len(), 0.0);
    let expected_cost = reach.iter().zip(stage_costs).map(|(r, c)| r * c).sum();
    CurvePoint {
        thresholds: per_exit(thresholds, stage_costs.len()).collect(),
        accuracy: t.right as f64 / total,
        deferral: reach.get(1).copied().unwrap_or(0.0),
        reach,
        expected_cost,
    }
}

/// The thresholds worth trying at exit `k`: 0, 1, and every distinct confidence of stage
/// `k` (at most `limit` of them, at evenly spaced quantiles), sorted.
fn candidates(records: &[Record], k: usize, limit: usize) -> Vec<f32> {
    let mut seen: Vec<f32> = records
        .iter()
        .map(|r| r.stages[k].confidence)
        .filter(|c| c.is_finite() && (0.0..=1.0).contains(c))
        .collect();
    seen.sort_by(f32::total_cmp);
    seen.dedup();
    if seen.len() > limit {
        let step = seen.len() as f64 / limit as f64;
        seen = (0..limit)
            .map(|i| seen[(i as f64 * step) as usize])
            .collect();
    }
    seen.extend([0.0, 1.0]);
    seen.sort_by(f32::total_cmp);
    seen.dedup();
    seen
}

/// The curve over the thresholds that change some decision. Two stages: every distinct
/// first-stage confidence (and 0 and 1), sorted by threshold, which is also by cost. Three
/// or more: the exits chosen jointly over a grid of [`JOINT_GRID`] quantiles each, kept to
/// the grid's Pareto front, sorted by cost.
pub fn curve(
    records: &[Record],
    reference: Reference,
    stage_costs: &[f64],
) -> Result<Vec<CurvePoint>> {
    let n = stage_costs.len();
    if n < 2 {
        return Err(Error::InvalidArgument(
            "calibration needs at least two stages".into(),
        ));
    }
    if records.is_empty() {
        return Err(Error::InvalidArgument(
            "calibration needs at least one input".into(),
        ));
    }
    if records.iter().any(|r| r.stages.len() != n) {
        return Err(Error::InvalidArgument(format!(
            "every record must observe all {n} stages"
        )));
    }
    let limit = match n {
        2 => usize::MAX,
        3 => JOINT_GRID,
        _ => (MAX_GRID_POINTS as f64).powf(1.0 / (n - 1) as f64) as usize,
    };
    let axes: Vec<Vec<f32>> = (0..n - 1).map(|k| candidates(records, k, limit)).collect();
    let mut points = Vec::new();
    let mut index = vec![0usize; n - 1];
    let mut thresholds = vec![0.0f32; n - 1];
    'grid: loop {
        for (k, &i) in index.iter().enumerate() {
            thresholds[k] = axes[k][i];
        }
        points.push(point(records, reference, stage_costs, &thresholds));
        // Next grid index, the last exit fastest.
        for k in (0..n - 1).rev() {
            index[k] += 1;
            if index[k] < axes[k].len() {
                continue 'grid;
            }
            index[k] = 0;
        }
        break;
    }
    if n > 2 {
        points = pareto_front(points);
    }
    Ok(points)
}

/// The points no other point beats (at least as accurate and at most as costly, better in
/// one), cheapest first; of equal points the first. One sort and one sweep.
pub fn pareto_front<T: Tradeoff>(mut points: Vec<T>) -> Vec<T> {
    points.sort_by(|a, b| {
        a.cost()
            .total_cmp(&b.cost())
            .then(b.accuracy().total_cmp(&a.accuracy()))
    });
    let mut best = f64::NEG_INFINITY;
    points.retain(|p| {
        let keep = p.accuracy() > best;
        best = best.max(p.accuracy());
        keep
    });
    points
}

/// Picks the point for `target` from a curve by the one rule of [`crate::tune::tradeoff`].
/// `margin` makes the pick conservative: a budget is shrunk by that share (0.1: aim at
/// 90% of it), an accuracy target raised by that many points (0.01: one point higher).
pub fn choose(curve: &[CurvePoint], target: Target, margin: f64) -> Result<CurvePoint> {
    if !(margin.is_finite() && (0.0..1.0).contains(&margin)) {
        return Err(Error::InvalidArgument(format!(
            "--margin must be in [0, 1), got {margin}"
        )));
    }
    let best = match target {
        Target::Budget(b) => most_accurate_within(curve, b.value() * (1.0 - margin)).ok_or_else(|| {
            let cheapest = curve
                .iter()
                .map(|p| p.expected_cost)
                .fold(f64::INFINITY, f64::min);
            Error::InvalidArgument(format!(
                "no threshold fits {target}{}: even exiting every input at the first stage costs {cheapest:.3} {}",
                if margin > 0.0 { format!(" less a {:.0}% margin", margin * 100.0) } else { String::new() },
                b.unit()
            ))
        })?,
        Target::MinAccuracy(a) => cheapest_reaching(curve, a + margin).ok_or_else(|| {
            let best_acc = curve.iter().map(|p| p.accuracy).fold(0.0, f64::max);
            Error::InvalidArgument(format!(
                "no threshold reaches {:.1}% accuracy; the best on this data is {:.1}%",
                100.0 * (a + margin),
                100.0 * best_acc
            ))
        })?,
    };
    Ok(best.clone())
}

/// Accuracy and mean measured cost of stage `stage` alone over `records` (every input
/// answered there): what the cascade is compared with.
pub fn stage_alone(records: &[Record], reference: Reference, stage: usize) -> (f64, f64) {
    if records.is_empty() {
        return (0.0, 0.0);
    }
    let n = records.len() as f64;
    let right = records
        .iter()
        .filter(|r| reference.correct(r, stage))
        .count() as f64;
    let cost: f64 = records.iter().map(|r| r.stages[stage].cost_ms).sum();
    (right / n, cost / n)
}

/// Mean per-input cost actually measured when the cascade with `thresholds` runs over
/// `records`: the sum of the measured costs of the stages each input reaches.
pub fn measured_mean_cost(records: &[Record], thresholds: &[f32]) -> f64 {
    if records.is_empty() {
        return 0.0;
    }
    let total: f64 = records
        .iter()
        .map(|r| {
            r.stages[..=exit_stage(r, thresholds)]
                .iter()
                .map(|o| o.cost_ms)
                .sum::<f64>()
        })
        .sum();
    total / records.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::Budget;

    /// A two-stage record: stage 0 says `c0` with confidence `conf`, stage 1 says `c1`.
    fn rec(conf: f32, c0: usize, c1: usize, label: usize) -> Record {
        Record {
            stages: vec![
                Observation {
                    class: c0,
                    confidence: conf,
                    cost_ms: 10.0,
                },
                Observation {
                    class: c1,
                    confidence: 0.5,
                    cost_ms: 30.0,
                },
            ],
            label: Some(label),
        }
    }

    /// Four inputs: confident and right (where stage 1 would be wrong), confident wrong,
    /// unsure but rescued by stage 1, unsure and right at stage 0 but wrong at stage 1.
    fn records() -> Vec<Record> {
        vec![
            rec(0.9, 1, 9, 1),
            rec(0.8, 2, 3, 3),
            rec(0.4, 5, 6, 6),
            rec(0.2, 7, 8, 7),
        ]
    }

    const COSTS: [f64; 2] = [10.0, 30.0];

    #[test]
    fn curve_has_hand_computed_points() {
        let c = curve(&records(), Reference::Labels, &COSTS).unwrap();
        let ts: Vec<f32> = c.iter().map(|p| p.thresholds[0]).collect();
        assert_eq!(ts, vec![0.0, 0.2, 0.4, 0.8, 0.9, 1.0]);
        // t = 0: nobody deferred. Right: inputs 0 and 3 -> 50%. Cost 10.
        assert_eq!(
            (c[0].accuracy, c[0].deferral, c[0].expected_cost),
            (0.5, 0.0, 10.0)
        );
        // t = 0.4: input 3 (0.2) deferred, and loses its right answer: 25%.
        assert_eq!(
            (c[2].accuracy, c[2].deferral, c[2].expected_cost),
            (0.25, 0.25, 17.5)
        );
        // t = 0.8: inputs 2, 3 deferred: right are 0, 2 -> 50%, cost 10 + 0.5*30.
        assert_eq!((c[3].accuracy, c[3].expected_cost), (0.5, 25.0));
        // t = 0.9: input 1 deferred too and rescued: 75%.
        assert_eq!(
            (c[4].accuracy, c[4].deferral, c[4].expected_cost),
            (0.75, 0.75, 32.5)
        );
        // t = 1: everything deferred: stage 1's accuracy, 50%, cost 40.
        assert_eq!(
            (c[5].accuracy, c[5].deferral, c[5].expected_cost),
            (0.5, 1.0, 40.0)
        );
    }

    #[test]
    fn budget_picks_best_accuracy_within_it() {
        let c = curve(&records(), Reference::Labels, &COSTS).unwrap();
        let pick = |ms| choose(&c, Target::Budget(Budget::latency_ms(ms).unwrap()), 0.0).unwrap();
        // Within 30 ms: 50% at cost 10 (t=0) and 50% at 25 (t=0.8) tie; the cheaper wins.
        assert_eq!(pick(30.0).thresholds[0], 0.0);
        // Above the cost of always deferring (40): the best point is still t = 0.9, which
        // beats the large model alone.
        let p = pick(100.0);
        assert_eq!((p.thresholds[0], p.accuracy), (0.9, 0.75));
        // Exactly the cost of a point is within budget.
        assert_eq!(pick(32.5).thresholds[0], 0.9);
        // A margin of 10% turns 35 ms into 31.5: t = 0.9 (32.5) no longer fits.
        let p = choose(&c, Target::Budget(Budget::latency_ms(35.0).unwrap()), 0.1).unwrap();
        assert_eq!(p.thresholds[0], 0.0);
    }

    #[test]
    fn budget_below_the_first_stage_is_an_error() {
        let c = curve(&records(), Reference::Labels, &COSTS).unwrap();
        let err = choose(&c, Target::Budget(Budget::latency_ms(5.0).unwrap()), 0.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("even exiting every input at the first stage costs 10.000 ms"),
            "{err}"
        );
    }

    #[test]
    fn accuracy_target_picks_the_cheapest_point_reaching_it() {
        let c = curve(&records(), Reference::Labels, &COSTS).unwrap();
        let p = choose(&c, Target::min_accuracy(0.5).unwrap(), 0.0).unwrap();
        assert_eq!((p.thresholds[0], p.expected_cost), (0.0, 10.0));
        let p = choose(&c, Target::min_accuracy(0.6).unwrap(), 0.0).unwrap();
        assert_eq!(p.thresholds[0], 0.9);
        assert!(choose(&c, Target::min_accuracy(0.8).unwrap(), 0.0).is_err());
    }

    #[test]
    fn agreement_with_the_last_stage_without_labels() {
        let mut rs = records();
        for r in &mut rs {
            r.label = None;
        }
        let c = curve(&rs, Reference::LastStageAgreement, &COSTS).unwrap();
        // t = 0: stage 0 never agrees with stage 1; t = 1: always (it is stage 1).
        assert_eq!(c[0].accuracy, 0.0);
        assert_eq!(c.last().unwrap().accuracy, 1.0);
    }

    #[test]
    fn three_stages_with_one_shared_threshold() {
        let o = |class, confidence, cost_ms| Observation {
            class,
            confidence,
            cost_ms,
        };
        let rs = vec![
            Record {
                stages: vec![o(1, 0.9, 1.0), o(1, 0.9, 2.0), o(1, 0.9, 4.0)],
                label: Some(1),
            },
            Record {
                stages: vec![o(2, 0.3, 1.0), o(3, 0.7, 2.0), o(3, 0.9, 4.0)],
                label: Some(3),
            },
            Record {
                stages: vec![o(4, 0.1, 1.0), o(4, 0.2, 2.0), o(5, 0.9, 4.0)],
                label: Some(5),
            },
        ];
        let p = point(&rs, Reference::Labels, &[1.0, 2.0, 4.0], &[0.5]);
        // Input 0 exits at 0, input 1 at 1, input 2 at 2: all right.
        assert_eq!(p.accuracy, 1.0);
        assert_eq!(p.reach, vec![1.0, 2.0 / 3.0, 1.0 / 3.0]);
        assert!((p.expected_cost - (1.0 + 2.0 * 2.0 / 3.0 + 4.0 / 3.0)).abs() < 1e-12);
        assert!((measured_mean_cost(&rs, &[0.5]) - (1.0 + 3.0 + 7.0) / 3.0).abs() < 1e-12);
        let (acc, cost) = stage_alone(&rs, Reference::Labels, 2);
        assert_eq!((acc, cost), (1.0, 4.0));
    }

    /// Three stages whose confidences live on different scales: stage 1 is right when only
    /// 0.3 sure, where stage 0 is wrong at 0.5.
    fn differently_scaled() -> Vec<Record> {
        let o = |class, confidence, cost_ms| Observation {
            class,
            confidence,
            cost_ms,
        };
        let r = |s0, s1, s2| Record {
            stages: vec![s0, s1, s2],
            label: Some(1),
        };
        vec![
            r(o(1, 0.9, 1.0), o(1, 0.9, 2.0), o(1, 0.9, 10.0)),
            r(o(0, 0.5, 1.0), o(1, 0.3, 2.0), o(1, 0.9, 10.0)),
            r(o(0, 0.4, 1.0), o(1, 0.35, 2.0), o(1, 0.9, 10.0)),
            r(o(0, 0.1, 1.0), o(0, 0.2, 2.0), o(1, 0.9, 10.0)),
        ]
    }

    #[test]
    fn three_stages_choose_their_exits_jointly() {
        let rs = differently_scaled();
        let costs = [1.0, 2.0, 10.0];
        let c = curve(&rs, Reference::Labels, &costs).unwrap();
        let p = choose(&c, Target::Budget(Budget::latency_ms(6.0).unwrap()), 0.0).unwrap();
        // Worked by hand: exit 0 at (0.5, 0.9] lets only input 0 out; exit 1 at (0.2, 0.3]
        // lets inputs 1 and 2 out right; input 3 reaches stage 2. All right, cost
        // 1 + 3/4 * 2 + 1/4 * 10 = 5. The grid's candidates are the seen confidences.
        assert_eq!(p.thresholds, vec![0.9, 0.3]);
        assert_eq!((p.accuracy, p.expected_cost), (1.0, 5.0));
        // One shared threshold can do no better than 50% within the same budget: any t
        // that keeps input 1 from exiting wrong at stage 0 (t > 0.5) also keeps inputs 1
        // and 2 from exiting at stage 1, and so costs 10.
        let shared_best = [0.0f32, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.9, 1.0]
            .iter()
            .map(|&t| point(&rs, Reference::Labels, &costs, &[t]))
            .filter(|p| p.expected_cost <= 6.0)
            .map(|p| p.accuracy)
            .fold(0.0, f64::max);
        assert_eq!(shared_best, 0.5);
    }

    #[test]
    fn per_exit_thresholds_at_their_extremes_are_the_single_models() {
        let rs = differently_scaled();
        let costs = [1.0, 2.0, 10.0];
        // Threshold 0 at exit k, 1 before it (no confidence here is 1): everything is
        // answered by stage k, and the cascade pays the stages up to it.
        for (k, thresholds) in [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]].iter().enumerate() {
            let p = point(&rs, Reference::Labels, &costs, thresholds);
            let (alone, _) = stage_alone(&rs, Reference::Labels, k);
            assert_eq!(p.accuracy, alone, "stage {k}");
            assert_eq!(
                p.expected_cost,
                costs[..=k].iter().sum::<f64>(),
                "stage {k}"
            );
            assert!(rs.iter().all(|r| exit_stage(r, thresholds) == k));
        }
    }

    #[test]
    fn an_old_profiles_single_threshold_reads_as_one_per_exit() {
        let old = "threshold = 0.5\naccuracy = 0.9\nreach = [1.0, 0.4]\ndeferral = 0.4\nexpected_cost = 22.0\n";
        let p: CurvePoint = toml::from_str(old).unwrap();
        assert_eq!(p.thresholds, vec![0.5]);
        let new = toml::to_string(&p).unwrap();
        assert!(new.contains("thresholds = [0.5]"), "{new}");
        assert_eq!(toml::from_str::<CurvePoint>(&new).unwrap(), p);
    }

    #[test]
    fn bad_budgets_and_margins_are_refused() {
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Budget::latency_ms(v).is_err(), "{v}");
            assert!(Budget::energy_mj(v).is_err(), "{v}");
        }
        assert!(Target::min_accuracy(1.5).is_err());
        assert!(Target::min_accuracy(0.0).is_err());
        let c = curve(&records(), Reference::Labels, &COSTS).unwrap();
        assert!(choose(&c, Target::min_accuracy(0.5).unwrap(), -0.1).is_err());
        assert!(choose(&c, Target::min_accuracy(0.5).unwrap(), f64::NAN).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::tune::budget::Budget;

    /// Records of `stages` stages over 10 classes, with labels.
    fn records(stages: usize) -> impl Strategy<Value = Vec<Record>> {
        let observation = (0..10usize, 0.0..=1.0f32).prop_map(|(class, confidence)| Observation {
            class,
            confidence,
            cost_ms: 1.0,
        });
        let record =
            (prop::collection::vec(observation, stages), 0..10usize).prop_map(|(stages, label)| {
                Record {
                    stages,
                    label: Some(label),
                }
            });
        prop::collection::vec(record, 1..60)
    }

    fn setup() -> impl Strategy<Value = (Vec<Record>, Vec<f64>)> {
        (2..=3usize).prop_flat_map(|n| (records(n), prop::collection::vec(0.1..50.0f64, n)))
    }

    proptest! {
        #[test]
        fn every_point_is_the_replay_of_its_threshold((rs, costs) in setup()) {
            let c = curve(&rs, Reference::Labels, &costs).unwrap();
            for p in &c {
                // Replayed by hand: the first stage (but the last) confident enough answers.
                let last = costs.len() - 1;
                let mut right = 0usize;
                let mut cost = 0.0;
                for r in &rs {
                    let exit = (0..last).find(|&k| r.stages[k].confidence >= p.thresholds[k]).unwrap_or(last);
                    right += usize::from(r.label == Some(r.stages[exit].class));
                    cost += costs[..=exit].iter().sum::<f64>();
                }
                let n = rs.len() as f64;
                prop_assert!((p.accuracy - right as f64 / n).abs() < 1e-12);
                prop_assert!((p.expected_cost - cost / n).abs() < 1e-9);
                prop_assert!(p.reach.windows(2).all(|w| w[0] >= w[1]));
            }
            if costs.len() == 2 {
                // Raising the threshold never defers fewer inputs.
                prop_assert!(c.windows(2).all(|w| w[0].thresholds[0] < w[1].thresholds[0] && w[0].deferral <= w[1].deferral));
            } else {
                // A front: each point costs more and is more accurate than the one before.
                prop_assert!(c.windows(2).all(|w| w[0].expected_cost <= w[1].expected_cost && w[0].accuracy < w[1].accuracy));
            }
        }

        #[test]
        fn a_budget_is_kept_by_the_point_chosen_for_it((rs, costs) in setup(), budget in 0.1..200.0f64) {
            let c = curve(&rs, Reference::Labels, &costs).unwrap();
            let target = Target::Budget(Budget::latency_ms(budget).unwrap());
            match choose(&c, target, 0.0) {
                Ok(p) => {
                    prop_assert!(p.expected_cost <= budget + 1e-9);
                    prop_assert!(c.iter().filter(|q| q.expected_cost <= budget).all(|q| q.accuracy <= p.accuracy));
                }
                Err(_) => prop_assert!(c.iter().all(|q| q.expected_cost > budget)),
            }
        }
    }
}
