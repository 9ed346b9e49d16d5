//! Every cascade of up to `max_stages` candidates, replayed from per-image records: each
//! candidate ran once on every image, so a cascade's accuracy, reach and cost at any
//! thresholds is arithmetic over those records (see [`crate::tune::curve`]).

use serde::Serialize;

use crate::error::Result;
use crate::tune::curve::{self, CurvePoint, Record, Reference};
use crate::tune::tradeoff::Tradeoff;

/// A cascade (candidate indices, cheapest first) at thresholds, with what it scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CascadePoint {
    pub stages: Vec<usize>,
    #[serde(flatten)]
    pub point: CurvePoint,
}

impl Tradeoff for CascadePoint {
    fn accuracy(&self) -> f64 {
        self.point.accuracy
    }
    fn cost(&self) -> f64 {
        self.point.expected_cost
    }
}

/// The records of the cascade `stages`: each record keeps only those candidates'
/// observations, in cascade order.
pub fn project(records: &[Record], stages: &[usize]) -> Vec<Record> {
    records
        .iter()
        .map(|r| Record {
            stages: stages.iter().map(|&i| r.stages[i]).collect(),
            label: r.label,
        })
        .collect()
}

/// Every ordered choice of 1..=`max_stages` of `n` candidates kept in index order (the
/// candidates are sorted by cost, so every cascade runs its cheapest stage first).
pub fn cascades(n: usize, max_stages: usize) -> Vec<Vec<usize>> {
    fn extend(
        from: usize,
        n: usize,
        left: usize,
        prefix: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        for i in from..n {
            prefix.push(i);
            out.push(prefix.clone());
            if left > 1 {
                extend(i + 1, n, left - 1, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    extend(0, n, max_stages, &mut Vec::new(), &mut out);
    out.sort_by_key(|c| c.len());
    out
}

/// What replaying every cascade gave.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Each candidate alone.
    pub singles: Vec<CascadePoint>,
    /// The best of every cascade and threshold tried: no point beats one of these.
    pub front: Vec<CascadePoint>,
    /// Cascades evaluated (singles included).
    pub cascades: usize,
    /// Cascade-and-threshold points evaluated.
    pub points: usize,
}

/// Replays every cascade of up to `max_stages` of the candidates (whose costs are
/// `costs`, ascending) over `records`.
pub fn replay(
    records: &[Record],
    reference: Reference,
    costs: &[f64],
    max_stages: usize,
) -> Result<Replay> {
    let all = cascades(costs.len(), max_stages);
    let mut singles = Vec::new();
    let mut points = Vec::new();
    let mut evaluated = 0;
    for stages in &all {
        let projected = project(records, stages);
        let stage_costs: Vec<f64> = stages.iter().map(|&i| costs[i]).collect();
        let curve = if stages.len() == 1 {
            vec![curve::point(&projected, reference, &stage_costs, &[])]
        } else {
            curve::curve(&projected, reference, &stage_costs)?
        };
        evaluated += curve.len();
        let tagged = curve.into_iter().map(|point| CascadePoint {
            stages: stages.clone(),
            point,
        });
        if stages.len() == 1 {
            singles.extend(tagged.clone());
        }
        points.extend(tagged);
    }
    Ok(Replay {
        singles,
        front: curve::pareto_front(points),
        cascades: all.len(),
        points: evaluated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::curve::Observation;

    #[test]
    fn cascades_are_every_cost_ordered_choice_of_up_to_three() {
        let c = cascades(4, 3);
        // 4 singles, C(4,2) = 6 pairs, C(4,3) = 4 triples.
        assert_eq!(c.len(), 14);
        assert_eq!(c[..4], [vec![0], vec![1], vec![2], vec![3]]);
        assert!(c.contains(&vec![0, 2, 3]) && !c.contains(&vec![2, 0]));
        assert!(c.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
        assert_eq!(cascades(9, 3).len(), 9 + 36 + 84);
    }

    #[test]
    fn the_front_holds_the_singles_that_nothing_beats() {
        let o = |class, confidence| Observation {
            class,
            confidence,
            cost_ms: 0.0,
        };
        // Candidate 0 (cost 1) is right on input 0, candidate 1 (cost 5) on both.
        let records = vec![
            Record {
                stages: vec![o(1, 0.9), o(1, 0.9)],
                label: Some(1),
            },
            Record {
                stages: vec![o(0, 0.2), o(2, 0.9)],
                label: Some(2),
            },
        ];
        let r = replay(&records, Reference::Labels, &[1.0, 5.0], 3).unwrap();
        assert_eq!(r.cascades, 3);
        let single = |i: usize| &r.singles[i].point;
        assert_eq!((single(0).accuracy, single(0).expected_cost), (0.5, 1.0));
        assert_eq!((single(1).accuracy, single(1).expected_cost), (1.0, 5.0));
        // The pair at a threshold between 0.2 and 0.9 is right on both for 1 + 5/2 = 3.5:
        // it beats candidate 1 alone, which leaves the front.
        let front: Vec<(Vec<usize>, f64, f64)> = r
            .front
            .iter()
            .map(|p| (p.stages.clone(), p.point.accuracy, p.point.expected_cost))
            .collect();
        assert_eq!(front, [(vec![0], 0.5, 1.0), (vec![0, 1], 1.0, 3.5)]);
    }
}
