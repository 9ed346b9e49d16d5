//! The arithmetic of a benchmark report: where the cascade stands against the models
//! alone. Kept apart from measuring so it can be checked on hand-built figures.

use serde::Serialize;

/// One measured or derived configuration on the accuracy/cost plane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub name: String,
    pub accuracy: f64,
    pub cost: f64,
}

/// Whether `p` is on the Pareto front of `all`: no point is at least as accurate and at
/// most as costly while strictly better in one of the two.
pub fn on_pareto_front(p: &Point, all: &[Point]) -> bool {
    !all.iter().any(|q| {
        q.accuracy >= p.accuracy && q.cost <= p.cost && (q.accuracy > p.accuracy || q.cost < p.cost)
    })
}

/// The most accurate curve point that costs at most `max_cost` (ties: the cheaper).
pub fn accuracy_at_cost(curve: &[Point], max_cost: f64) -> Option<&Point> {
    curve.iter().filter(|p| p.cost <= max_cost).max_by(|a, b| {
        a.accuracy
            .total_cmp(&b.accuracy)
            .then(b.cost.total_cmp(&a.cost))
    })
}

/// The cheapest curve point at least `min_accuracy` accurate (ties: the more accurate).
pub fn cost_at_accuracy(curve: &[Point], min_accuracy: f64) -> Option<&Point> {
    curve
        .iter()
        .filter(|p| p.accuracy >= min_accuracy)
        .min_by(|a, b| {
            a.cost
                .total_cmp(&b.cost)
                .then(b.accuracy.total_cmp(&a.accuracy))
        })
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
        let at_cost = accuracy_at_cost(curve, large.cost).cloned();
        let at_acc = cost_at_accuracy(curve, large.accuracy).cloned();
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
    fn pareto_front_by_hand() {
        let all = vec![
            p("small", 0.80, 10.0),
            p("large", 0.90, 40.0),
            p("cascade", 0.90, 25.0),
            p("bad", 0.85, 45.0),
        ];
        assert!(on_pareto_front(&all[0], &all));
        assert!(
            !on_pareto_front(&all[1], &all),
            "cascade: same accuracy, cheaper"
        );
        assert!(on_pareto_front(&all[2], &all));
        assert!(!on_pareto_front(&all[3], &all));
        // An exact duplicate does not dominate.
        let twins = vec![p("a", 0.5, 1.0), p("b", 0.5, 1.0)];
        assert!(on_pareto_front(&twins[0], &twins));
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
