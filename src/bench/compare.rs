//! The arithmetic of a benchmark report: where the cascade stands against the models
//! alone, on one cost axis (latency or energy). Kept apart from measuring so it can be
//! checked on hand-built figures; points are picked by the one rule of
//! [`crate::tune::tradeoff`].

use serde::Serialize;

use crate::bench::{BenchResult, CurveRow, Figures};
use crate::tune::tradeoff::{cheapest_reaching, most_accurate_within, on_pareto_front, Tradeoff};

/// One measured or derived configuration on the accuracy/cost plane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub name: String,
    pub accuracy: f64,
    pub cost: f64,
}

impl Tradeoff for Point {
    fn accuracy(&self) -> f64 {
        self.accuracy
    }
    fn cost(&self) -> f64 {
        self.cost
    }
}

/// How the cascade compares with the largest model alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Best cascade accuracy at no more than the large model's cost.
    pub accuracy_at_large_cost: Option<Point>,
    /// Cheapest cascade point reaching the large model's accuracy ...
    pub cost_at_large_accuracy: Option<Point>,
    /// ... and the large model's cost divided by it (above 1: the cascade saves).
    pub saving_ratio: Option<f64>,
    /// Whether the measured cascade point is on the front of all measured points.
    pub cascade_on_front: bool,
}

impl Comparison {
    /// `curve`: the cascade's threshold curve; `large`: the large model alone;
    /// `cascade`: the measured cascade; `measured`: every measured point (models and cascade).
    pub fn of(curve: &[Point], large: &Point, cascade: &Point, measured: &[Point]) -> Comparison {
        let at_cost = most_accurate_within(curve, large.cost).cloned();
        let at_acc = cheapest_reaching(curve, large.accuracy).cloned();
        let saving_ratio = at_acc
            .as_ref()
            .filter(|p| p.cost > 0.0)
            .map(|p| large.cost / p.cost);
        Comparison {
            accuracy_at_large_cost: at_cost,
            cost_at_large_accuracy: at_acc,
            saving_ratio,
            cascade_on_front: on_pareto_front(cascade, measured),
        }
    }
}

/// Which cost a view of a benchmark is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cost {
    /// Mean latency per image, ms.
    Latency,
    /// Mean energy per image, mJ.
    Energy,
}

impl Cost {
    pub fn unit(self) -> &'static str {
        match self {
            Cost::Latency => "ms",
            Cost::Energy => "mJ",
        }
    }

    fn of_figures(self, f: &Figures) -> Option<f64> {
        match self {
            Cost::Latency => Some(f.latency.mean_ms),
            Cost::Energy => f.energy.as_ref().map(|e| e.total_mj),
        }
    }

    fn of_row(self, r: &CurveRow) -> Option<f64> {
        match self {
            Cost::Latency => Some(r.latency_ms),
            Cost::Energy => r.energy_mj,
        }
    }
}

/// One cost axis of a benchmark: the measured points, the threshold curve, and how the
/// cascade compares with the largest model on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Axis {
    pub cost: Cost,
    pub measured: Vec<Point>,
    pub curve: Vec<Point>,
    pub comparison: Option<Comparison>,
}

impl Axis {
    /// The axis of `cost` over a result; `None` when no configuration has that cost
    /// (energy without a meter or board model).
    pub fn of(r: &BenchResult, cost: Cost) -> Option<Axis> {
        let point = |f: &Figures| -> Option<Point> {
            Some(Point {
                name: f.name.clone(),
                accuracy: f.top1?,
                cost: cost.of_figures(f)?,
            })
        };
        let measured: Vec<Point> = r.configs.iter().filter_map(point).collect();
        let curve: Vec<Point> = r
            .curve
            .iter()
            .filter_map(|c| {
                Some(Point {
                    name: format!("t={}", crate::tune::curve::format_thresholds(&c.thresholds)),
                    accuracy: c.accuracy,
                    cost: cost.of_row(c)?,
                })
            })
            .collect();
        if curve.is_empty() {
            return None;
        }
        // configs: each model alone in stage order, then the cascade.
        let n = r.configs.len();
        let large = r.configs.get(n.wrapping_sub(2)).and_then(point);
        let cascade = r.configs.last().and_then(point);
        let comparison = match (large, cascade) {
            (Some(large), Some(cascade)) => {
                Some(Comparison::of(&curve, &large, &cascade, &measured))
            }
            _ => None,
        };
        Some(Axis {
            cost,
            measured,
            curve,
            comparison,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, accuracy: f64, cost: f64) -> Point {
        Point {
            name: name.into(),
            accuracy,
            cost,
        }
    }

    #[test]
    fn comparison_with_the_large_model() {
        let curve = vec![
            p("t=0", 0.80, 10.0),
            p("t=0.5", 0.88, 18.0),
            p("t=0.7", 0.905, 24.0),
            p("t=0.9", 0.91, 33.0),
            p("t=1", 0.90, 50.0),
        ];
        let large = p("large", 0.90, 40.0);
        let cascade = p("cascade", 0.905, 24.5);
        let measured = vec![p("small", 0.80, 10.2), large.clone(), cascade.clone()];
        let c = Comparison::of(&curve, &large, &cascade, &measured);
        assert_eq!(c.accuracy_at_large_cost.unwrap().name, "t=0.9");
        assert_eq!(c.cost_at_large_accuracy.as_ref().unwrap().name, "t=0.7");
        assert!((c.saving_ratio.unwrap() - 40.0 / 24.0).abs() < 1e-12);
        assert!(c.cascade_on_front);
        // Nothing reaches an accuracy above the curve.
        let c = Comparison::of(&curve, &p("large", 0.95, 40.0), &cascade, &measured);
        assert!(c.cost_at_large_accuracy.is_none() && c.saving_ratio.is_none());
    }
}
