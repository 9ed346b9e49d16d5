//! How sure a classifier is, computed from its logits in one or two passes without touching
//! the heap: softmax top-k, max probability, top-two margin and normalized entropy.
//!
//! Everything is computed relative to the largest logit, so logits in the thousands (or
//! `f32::MAX`) neither overflow nor produce NaN.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How many ranked classes a [`Summary`] keeps (top-5 accuracy needs five).
pub const TOP_K: usize = 5;

/// A ranked class and its softmax probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub class: usize,
    pub probability: f32,
}

/// Everything the exit decision and the report need from one output, on the stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Best classes first; ties keep the lower class index first.
    pub top: heapless::Vec<Ranked, TOP_K>,
    /// Probability of the best class minus that of the runner-up.
    pub margin: f32,
    /// `1 - H(p) / ln(C)`: 1 for a one-hot output, 0 for a uniform one.
    pub certainty: f32,
}

impl Summary {
    /// Summarizes raw logits. Non-finite logits (NaN) are ranked last and count as
    /// impossible classes, so a broken output is never confident.
    pub fn of(logits: &[f32]) -> Summary {
        let mut top: heapless::Vec<(usize, f32), TOP_K> = heapless::Vec::new();
        let mut max = f32::NEG_INFINITY;
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() {
                continue;
            }
            max = max.max(l);
            insert_ranked(&mut top, i, l);
        }
        if top.is_empty() || max == f32::NEG_INFINITY {
            return Summary {
                top: heapless::Vec::new(),
                margin: 0.0,
                certainty: 0.0,
            };
        }
        // Shifted by the max, every exponent is <= 0: no overflow, and the sum is >= 1.
        let mut sum = 0.0f64;
        let mut weighted = 0.0f64; // sum of e^(l-max) * (l-max), for the entropy
        for &l in logits {
            if l.is_nan() {
                continue;
            }
            let d = (l - max) as f64;
            let e = d.exp();
            sum += e;
            if e > 0.0 {
                weighted += e * d;
            }
        }
        let ln_sum = sum.ln();
        let prob = |l: f32| (((l - max) as f64).exp() / sum) as f32;
        let ranked = top
            .iter()
            .map(|&(class, l)| Ranked {
                class,
                probability: prob(l),
            })
            .collect::<heapless::Vec<Ranked, TOP_K>>();
        let p1 = ranked[0].probability;
        let p2 = ranked.get(1).map_or(0.0, |r| r.probability);
        // H = -sum p ln p = ln(sum) - sum p (l - max), with p = e^(l-max)/sum.
        let entropy = (ln_sum - weighted / sum).max(0.0);
        let classes = logits.iter().filter(|l| !l.is_nan()).count();
        let certainty = if classes > 1 {
            (1.0 - entropy / (classes as f64).ln()).clamp(0.0, 1.0) as f32
        } else {
            1.0
        };
        Summary {
            top: ranked,
            margin: (p1 - p2).max(0.0),
            certainty,
        }
    }

    /// The predicted class, if the output had any finite logit.
    pub fn class(&self) -> Option<usize> {
        self.top.first().map(|r| r.class)
    }

    /// Softmax probability of the predicted class.
    pub fn max_probability(&self) -> f32 {
        self.top.first().map_or(0.0, |r| r.probability)
    }

    /// Whether `class` is among the best `k` (k <= [`TOP_K`]).
    pub fn in_top(&self, class: usize, k: usize) -> bool {
        self.top.iter().take(k).any(|r| r.class == class)
    }
}

/// Keeps `top` sorted by logit, descending, with at most its capacity of entries.
fn insert_ranked<const K: usize>(top: &mut heapless::Vec<(usize, f32), K>, class: usize, l: f32) {
    // Strictly greater: an equal logit seen later (a higher index) ranks after.
    let pos = top.iter().position(|&(_, t)| l > t).unwrap_or(top.len());
    if pos >= K {
        return;
    }
    if top.is_full() {
        top.pop();
    }
    // Cannot fail: there is room after the pop, and pos <= len.
    let _ = top.insert(pos, (class, l));
}

/// The confidence measure an exit rule compares with its threshold. Each ranges over 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Softmax probability of the predicted class.
    #[default]
    MaxProb,
    /// Probability of the best class minus the runner-up's.
    Margin,
    /// One minus the entropy of the softmax, normalized by ln(classes).
    Entropy,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::MaxProb, Metric::Margin, Metric::Entropy];

    /// This metric's value for a summarized output.
    pub fn of(self, s: &Summary) -> f32 {
        match self {
            Metric::MaxProb => s.max_probability(),
            Metric::Margin => s.margin,
            Metric::Entropy => s.certainty,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::MaxProb => "max-prob",
            Metric::Margin => "margin",
            Metric::Entropy => "entropy",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown metric {s:?} (use max-prob, margin or entropy)"))
    }
}

/// A confidence level an input must reach to exit: a finite value in `0..=1`, the range
/// of every [`Metric`]. Constructed only through [`Threshold::new`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Threshold(f32);

impl Default for Threshold {
    /// [`crate::runtime::DEFAULT_THRESHOLD`].
    fn default() -> Self {
        Threshold(crate::runtime::DEFAULT_THRESHOLD)
    }
}

impl Threshold {
    pub fn new(value: f32) -> Result<Threshold> {
        if (0.0..=1.0).contains(&value) {
            Ok(Threshold(value))
        } else {
            Err(Error::InvalidArgument(format!(
                "threshold {value} is outside 0..=1, the range of every confidence metric"
            )))
        }
    }

    pub fn get(self) -> f32 {
        self.0
    }
}

impl TryFrom<f32> for Threshold {
    type Error = Error;
    fn try_from(value: f32) -> Result<Threshold> {
        Threshold::new(value)
    }
}

impl From<Threshold> for f32 {
    fn from(t: Threshold) -> f32 {
        t.0
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        Threshold::new(v).map_err(|e| e.to_string())
    }
}

/// When an input may leave the cascade at a stage: its confidence under `metric` reaches
/// `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExitRule {
    pub metric: Metric,
    pub threshold: Threshold,
}

impl ExitRule {
    /// The confidence of `s` under this rule's metric and whether it exits.
    pub fn judge(&self, s: &Summary) -> (f32, bool) {
        let c = self.metric.of(s);
        (c, c >= self.threshold.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn hand_computed_two_class_values() {
        // logits (ln 3, 0): p = (0.75, 0.25).
        let s = Summary::of(&[3f32.ln(), 0.0]);
        assert_eq!(s.class(), Some(0));
        assert!(close(s.max_probability(), 0.75));
        assert!(close(s.margin, 0.5));
        // H = -(.75 ln .75 + .25 ln .25) = 0.562335; / ln 2 = 0.811278.
        assert!(close(s.certainty, 1.0 - 0.811_278), "{}", s.certainty);
    }

    #[test]
    fn uniform_output_has_zero_confidence_everywhere() {
        let s = Summary::of(&[2.0; 4]);
        assert!(close(s.max_probability(), 0.25));
        assert!(close(s.margin, 0.0));
        assert!(close(s.certainty, 0.0));
        // Ties rank by class index.
        let classes: Vec<usize> = s.top.iter().map(|r| r.class).collect();
        assert_eq!(classes, vec![0, 1, 2, 3]);
    }

    #[test]
    fn ties_at_the_top_keep_the_lower_index() {
        let s = Summary::of(&[0.0, 5.0, 1.0, 5.0, 5.0]);
        let classes: Vec<usize> = s.top.iter().map(|r| r.class).collect();
        assert_eq!(classes, vec![1, 3, 4, 2, 0]);
        assert!(close(s.margin, 0.0));
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let s = Summary::of(&[1e30, -1e30, 0.0]);
        assert_eq!(s.class(), Some(0));
        assert!(close(s.max_probability(), 1.0));
        assert!(close(s.margin, 1.0));
        assert!(close(s.certainty, 1.0));

        let s = Summary::of(&[f32::MAX, f32::MAX]);
        assert!(close(s.max_probability(), 0.5));
        assert!(close(s.certainty, 0.0));

        let s = Summary::of(&[1000.0, 999.0]);
        // p = 1/(1+e^-1) = 0.731059
        assert!(close(s.max_probability(), 0.731_058_6));
    }

    #[test]
    fn nan_logits_are_never_confident() {
        let s = Summary::of(&[f32::NAN, f32::NAN]);
        assert_eq!(s.class(), None);
        assert_eq!(Metric::MaxProb.of(&s), 0.0);
        let s = Summary::of(&[f32::NAN, 1.0, 0.0]);
        assert_eq!(s.class(), Some(1));
    }

    #[test]
    fn top_k_keeps_the_best_five_in_order() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37) % 1000) as f32).collect();
        let s = Summary::of(&logits);
        let best: Vec<f32> = s.top.iter().map(|r| logits[r.class]).collect();
        assert_eq!(best, vec![999.0, 998.0, 997.0, 996.0, 995.0]);
        assert!(s.in_top(s.top[4].class, 5));
        assert!(!s.in_top(s.top[4].class, 1));
    }

    #[test]
    fn thresholds_are_validated() {
        assert!(Threshold::new(0.0).is_ok());
        assert!(Threshold::new(1.0).is_ok());
        for bad in [-0.1, 1.01, f32::NAN, f32::INFINITY] {
            assert!(Threshold::new(bad).is_err(), "{bad}");
        }
        assert!("1.5".parse::<Threshold>().is_err());
        assert!("x".parse::<Threshold>().is_err());
    }

    #[test]
    fn exit_rule_compares_inclusively() {
        let s = Summary::of(&[3f32.ln(), 0.0]); // max prob 0.75, margin 0.5
        let rule = |metric, t| ExitRule {
            metric,
            threshold: Threshold::new(t).unwrap(),
        };
        assert!(rule(Metric::MaxProb, 0.749).judge(&s).1);
        assert!(!rule(Metric::MaxProb, 0.76).judge(&s).1);
        assert!(rule(Metric::Margin, 0.499).judge(&s).1);
        assert!(!rule(Metric::Entropy, 0.5).judge(&s).1);
        assert_eq!("margin".parse::<Metric>(), Ok(Metric::Margin));
        assert!("foo".parse::<Metric>().is_err());
    }
}
