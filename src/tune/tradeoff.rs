//! The one rule for picking a point on an accuracy/cost curve, used by calibration (which
//! threshold to keep) and by the benchmark report (where the cascade stands against the
//! large model), so the two can never disagree about which point is "best".
//!
//! Costs and accuracies computed along different paths can differ in their last bits, so
//! a limit is met when it is met to within [`TOLERANCE`]. Among equally good points the
//! first in the caller's order wins (calibration's curve is sorted by threshold, so that
//! is the lowest threshold).

/// Slack allowed when comparing a point with a limit (a cost budget, an accuracy target).
pub const TOLERANCE: f64 = 1e-9;

/// A point with an accuracy (a share, 0..=1) and a cost (any unit, lower is better).
pub trait Tradeoff {
    fn accuracy(&self) -> f64;
    fn cost(&self) -> f64;
}

/// The most accurate point whose cost is at most `max_cost`; ties go to the cheaper, then
/// to the earlier point.
pub fn most_accurate_within<T: Tradeoff>(points: &[T], max_cost: f64) -> Option<&T> {
    points
        .iter()
        .filter(|p| p.cost() <= max_cost + TOLERANCE)
        .reduce(|best, p| {
            let better = p.accuracy() > best.accuracy()
                || (p.accuracy() == best.accuracy() && p.cost() < best.cost());
            if better {
                p
            } else {
                best
            }
        })
}

/// The cheapest point whose accuracy is at least `min_accuracy`; ties go to the more
/// accurate, then to the earlier point.
pub fn cheapest_reaching<T: Tradeoff>(points: &[T], min_accuracy: f64) -> Option<&T> {
    points
        .iter()
        .filter(|p| p.accuracy() + TOLERANCE >= min_accuracy)
        .reduce(|best, p| {
            let better = p.cost() < best.cost()
                || (p.cost() == best.cost() && p.accuracy() > best.accuracy());
            if better {
                p
            } else {
                best
            }
        })
}

/// Whether `p` is on the Pareto front of `all`: no point is at least as accurate and at
/// most as costly while strictly better in one of the two.
pub fn on_pareto_front<T: Tradeoff>(p: &T, all: &[T]) -> bool {
    !all.iter().any(|q| {
        q.accuracy() >= p.accuracy()
            && q.cost() <= p.cost()
            && (q.accuracy() > p.accuracy() || q.cost() < p.cost())
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// (accuracy, cost)
    #[derive(Debug, Clone)]
    struct P(f64, f64);
    impl Tradeoff for P {
        fn accuracy(&self) -> f64 {
            self.0
        }
        fn cost(&self) -> f64 {
            self.1
        }
    }

    #[test]
    fn ties_go_to_the_cheaper_then_the_earlier() {
        let pts = [
            P(0.5, 10.0),
            P(0.7, 30.0),
            P(0.7, 20.0),
            P(0.7, 20.0),
            P(0.9, 50.0),
        ];
        let pick = |c| most_accurate_within(&pts, c).map(|p| p as *const P);
        assert_eq!(pick(40.0), Some(&pts[2] as *const P));
        assert_eq!(pick(10.0), Some(&pts[0] as *const P));
        assert_eq!(pick(9.0), None);
        // Within the tolerance of the limit counts as within it.
        assert_eq!(pick(50.0 - 1e-12), Some(&pts[4] as *const P));
        let cheap = |a| cheapest_reaching(&pts, a).map(|p| p as *const P);
        assert_eq!(cheap(0.6), Some(&pts[2] as *const P));
        assert_eq!(cheap(0.95), None);
    }

    #[test]
    fn pareto_front_by_hand() {
        let all = [P(0.80, 10.0), P(0.90, 40.0), P(0.90, 25.0), P(0.85, 45.0)];
        assert!(on_pareto_front(&all[0], &all));
        assert!(
            !on_pareto_front(&all[1], &all),
            "same accuracy, cheaper exists"
        );
        assert!(on_pareto_front(&all[2], &all));
        assert!(!on_pareto_front(&all[3], &all));
        // An exact duplicate does not dominate.
        let twins = [P(0.5, 1.0), P(0.5, 1.0)];
        assert!(on_pareto_front(&twins[0], &twins));
    }

    fn points() -> impl Strategy<Value = Vec<P>> {
        prop::collection::vec(
            (0.0..=1.0f64, 0.0..100.0f64).prop_map(|(a, c)| P(a, c)),
            1..40,
        )
    }

    proptest! {
        #[test]
        fn the_pick_within_a_cost_is_within_it_and_none_there_is_more_accurate(
            pts in points(), limit in 0.0..120.0f64
        ) {
            match most_accurate_within(&pts, limit) {
                Some(best) => {
                    prop_assert!(best.cost() <= limit + TOLERANCE);
                    for p in pts.iter().filter(|p| p.cost() <= limit + TOLERANCE) {
                        prop_assert!(p.accuracy() <= best.accuracy());
                    }
                    // The best within a cost is never dominated by a point within it.
                    let within: Vec<P> = pts.iter().filter(|p| p.cost() <= limit + TOLERANCE).cloned().collect();
                    prop_assert!(on_pareto_front(best, &within));
                }
                None => prop_assert!(pts.iter().all(|p| p.cost() > limit + TOLERANCE)),
            }
        }

        #[test]
        fn the_cheapest_reaching_an_accuracy_reaches_it_and_none_is_cheaper(
            pts in points(), want in 0.0..=1.0f64
        ) {
            match cheapest_reaching(&pts, want) {
                Some(best) => {
                    prop_assert!(best.accuracy() + TOLERANCE >= want);
                    for p in pts.iter().filter(|p| p.accuracy() + TOLERANCE >= want) {
                        prop_assert!(p.cost() >= best.cost());
                    }
                }
                None => prop_assert!(pts.iter().all(|p| p.accuracy() + TOLERANCE < want)),
            }
        }

        #[test]
        fn some_point_is_always_on_the_front(pts in points()) {
            prop_assert!(pts.iter().any(|p| on_pareto_front(p, &pts)));
        }
    }
}
