//! How sure a classifier is, computed from its logits in three passes without touching the
//! heap or sorting: softmax top-k, max probability, top-two margin and normalized entropy
//! (the entropy only when the exit metric reads it).
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
    /// `1 - H(p) / ln(C)`: 1 for a one-hot output, 0 for a uniform one. `None` when the
    /// summary was made for a metric that does not read it ([`Summary::for_metric`]).
    pub certainty: Option<f32>,
}

impl Summary {
    /// Summarizes raw logits with every confidence measure, the entropy included.
    /// Non-finite logits (NaN) are ranked last and count as impossible classes, so a broken
    /// output is never confident.
    pub fn of(logits: &[f32]) -> Summary {
        Summary::summarize(logits, true)
    }

    /// Summarizes raw logits for an exit rule under `metric`: the same as [`Summary::of`]
    /// but the entropy, which only [`Metric::Entropy`] reads, is left out (`certainty` is
    /// `None`) unless `metric` asks for it. The top classes and the margin come with the
    /// softmax's denominator at no extra cost, so they are always there.
    pub fn for_metric(logits: &[f32], metric: Metric) -> Summary {
        Summary::summarize(logits, metric == Metric::Entropy)
    }

    /// Three passes over the logits, no allocation and no sort: the largest logit, then the
    /// sum of the shifted exponentials (and, for the entropy, their weighted sum), then the
    /// best [`TOP_K`] classes. The first two run over [`LANES`] independent lanes so that
    /// the compiler vectorizes them (SSE2 on x86_64, NEON on aarch64), with [`exp_le0`],
    /// a branch-free f32 exponential, instead of the C library's.
    fn summarize(logits: &[f32], entropy: bool) -> Summary {
        let max = largest(logits);
        // No finite logit at all (every one NaN or -inf): nothing to rank, not confident.
        if max == f32::NEG_INFINITY {
            return Summary {
                top: heapless::Vec::new(),
                margin: 0.0,
                certainty: entropy.then_some(0.0),
            };
        }
        let (sum, weighted) = if entropy {
            exp_sums::<true>(logits, max)
        } else {
            exp_sums::<false>(logits, max)
        };
        // The best classes' probabilities from the exact exponential: their error is the
        // sum's alone, at most `EXP_LE0_MAX_REL_ERROR` relative (see `exp_le0`).
        let prob = |l: f32| ((f64::from(l) - f64::from(max)).exp() / sum) as f32;
        let ranked = best(logits)
            .iter()
            .map(|&(class, l)| Ranked {
                class,
                probability: prob(l),
            })
            .collect::<heapless::Vec<Ranked, TOP_K>>();
        let p1 = ranked.first().map_or(0.0, |r| r.probability);
        let p2 = ranked.get(1).map_or(0.0, |r| r.probability);
        let certainty = entropy.then(|| {
            // H = -sum p ln p = ln(sum) - sum p (l - max), with p = e^(l-max)/sum.
            let h = (sum.ln() - weighted / sum).max(0.0);
            let classes = logits.iter().filter(|l| !l.is_nan()).count();
            if classes > 1 {
                (1.0 - h / (classes as f64).ln()).clamp(0.0, 1.0) as f32
            } else {
                1.0
            }
        });
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

/// Independent accumulators per pass: eight f32 lanes fill one AVX register or two SSE2 /
/// NEON ones, and let the compiler vectorize a loop that carries a running max or sum.
const LANES: usize = 8;

/// The largest logit, NaN ignored; `-inf` when there is none.
fn largest(logits: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, &l) in lanes.iter_mut().zip(chunk) {
            // `>` is false for NaN, so a NaN never wins (one `maxps` per lane group).
            *m = if l > *m { l } else { *m };
        }
    }
    rest.iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &l| if l > m { l } else { m })
}

/// Below this, `exp` is under f32's smallest normal (`exp(-87.34) = 2^-126`): such a term,
/// a NaN or a `-inf` logit counts as 0, a class with no chance.
const EXP_FLOOR: f32 = -87.0;

/// Sum over the non-NaN logits of `e = exp(l - max)` and, when `WEIGHTED`, of
/// `e * (l - max)` (for the entropy), each exponential in f32 and each sum in f64 lanes,
/// so a thousand terms lose nothing to the summing. Written without branches (a mask
/// instead of an `if`) so that the compiler vectorizes it: with a branch it stayed scalar
/// and no faster than the C library's `expf`.
fn exp_sums<const WEIGHTED: bool>(logits: &[f32], max: f32) -> (f64, f64) {
    let term = |l: f32| {
        let d = l - max;
        // NaN (a NaN logit) and anything below the floor count as 0.
        let keep = f32::from(u8::from(d > EXP_FLOOR));
        let d = d.max(EXP_FLOOR);
        let e = exp_le0(d) * keep;
        (e, e * d)
    };
    let mut sums = [0.0f64; LANES];
    let mut weighted = [0.0f64; LANES];
    let chunks = logits.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        // The exponentials of a block first, in f32 lanes, then their sums in f64.
        let mut e = [0.0f32; LANES];
        let mut ed = [0.0f32; LANES];
        for ((e, ed), &l) in e.iter_mut().zip(ed.iter_mut()).zip(chunk) {
            (*e, *ed) = term(l);
        }
        for (s, &e) in sums.iter_mut().zip(&e) {
            *s += f64::from(e);
        }
        if WEIGHTED {
            for (w, &ed) in weighted.iter_mut().zip(&ed) {
                *w += f64::from(ed);
            }
        }
    }
    for &l in rest {
        let (e, ed) = term(l);
        sums[0] += f64::from(e);
        weighted[0] += f64::from(ed);
    }
    (sums.iter().sum(), weighted.iter().sum())
}

/// Largest relative error of [`exp_le0`] against the exact exponential over its domain.
/// Measured over every f32 in `[EXP_FLOOR, 0]` (1.1 billion values, against f64 `exp`):
/// 8.13e-8 at worst (1.4 units of f32 rounding; the C library's `expf` reaches 5.96e-8),
/// so probabilities made from these sums are within 1e-7 relative of the exact ones;
/// `tests::exp_le0_stays_within_its_error_bound` checks 5.7 million points of the domain.
#[cfg(test)]
const EXP_LE0_MAX_REL_ERROR: f64 = 1e-7;

/// `e^x` for `x` in `[EXP_FLOOR, 0]`, within `EXP_LE0_MAX_REL_ERROR` (1e-7): Cephes' `expf`
/// (S. L. Moshier), without its branches so that it vectorizes. `x = n ln 2 + r` with
/// `n` the nearest integer to `x / ln 2` (found by the round-to-nearest of adding
/// 1.5 * 2^23, no `round` call, which SSE2 lacks) and `|r| <= ln 2 / 2` (ln 2 split in two
/// for an exact `r`); `e^r = 1 + r + r^2 P(r)` with Cephes' degree-5 minimax `P`; `2^n`
/// written into the exponent bits (`n >= -126` on this domain: a normal number).
#[inline(always)]
fn exp_le0(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const SHIFTER: f32 = 12_582_912.0; // 1.5 * 2^23: the sum's last bits hold round(x/ln 2)
    const LN2_HI: f32 = 355.0 / 512.0; // 0.693359375, exact in 9 bits: n * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let t = x * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_6e-1;
    let p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    // t's low mantissa bits are n (two's complement around 0x4B40_0000).
    let n = t.to_bits().wrapping_sub(SHIFTER.to_bits()) as i32;
    let scale = f32::from_bits(((n + 127) as u32) << 23);
    er * scale
}

/// The best [`TOP_K`] classes by logit, best first, ties to the lower class index; NaN never
/// ranks. One pass keeping a sorted list of five: once it is full, a block of logits none of
/// which beats the fifth best is passed over with one vectorized comparison.
fn best(logits: &[f32]) -> heapless::Vec<(usize, f32), TOP_K> {
    let mut top: heapless::Vec<(usize, f32), TOP_K> = heapless::Vec::new();
    let mut i = 0;
    // Fill: the first non-NaN logits, ranked.
    while !top.is_full() && i < logits.len() {
        if !logits[i].is_nan() {
            insert_ranked(&mut top, i, logits[i]);
        }
        i += 1;
    }
    // `top` is full here unless the logits have run out.
    let mut floor = top.last().map_or(f32::NEG_INFINITY, |&(_, l)| l);
    let blocks = logits[i..].chunks(LANES);
    for (b, block) in blocks.enumerate() {
        if !block.iter().fold(false, |any, &l| any | (l > floor)) {
            continue;
        }
        let start = i + b * LANES;
        for (j, &l) in block.iter().enumerate() {
            // Strictly greater: an equal logit later (a higher index) ranks after.
            if l > floor {
                insert_ranked(&mut top, start + j, l);
                floor = top.last().map_or(f32::NEG_INFINITY, |&(_, l)| l);
            }
        }
    }
    top
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

    /// This metric's value for a summarized output. A summary made without the entropy
    /// (for another metric) is not confident at all under [`Metric::Entropy`].
    pub fn of(self, s: &Summary) -> f32 {
        match self {
            Metric::MaxProb => s.max_probability(),
            Metric::Margin => s.margin,
            Metric::Entropy => s.certainty.unwrap_or(0.0),
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

    fn certainty(s: &Summary) -> f32 {
        s.certainty.expect("a full summary has the entropy")
    }

    #[test]
    fn hand_computed_values_for_each_metric() {
        // softmax(0, ln 3) = (0.25, 0.75): class 1, margin 0.5,
        // H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335 nats; / ln 2 = 0.811278.
        let logits = [0.0, 3f32.ln()];
        for metric in Metric::ALL {
            let s = Summary::for_metric(&logits, metric);
            assert_eq!(s.class(), Some(1));
            let p: Vec<f32> = s.top.iter().map(|r| r.probability).collect();
            assert!(close(p[0], 0.75) && close(p[1], 0.25), "{p:?}");
            assert!(close(Metric::MaxProb.of(&s), 0.75));
            assert!(close(Metric::Margin.of(&s), 0.5));
        }
        let s = Summary::for_metric(&logits, Metric::Entropy);
        assert!(
            close(Metric::Entropy.of(&s), 1.0 - 0.811_278),
            "{:?}",
            s.certainty
        );
        // softmax(ln 1, ln 2, ln 5) = (1/8, 2/8, 5/8): margin 3/8,
        // H = 0.900256 nats; / ln 3 = 0.819448, so the certainty is 0.180552.
        let s = Summary::for_metric(&[0.0, 2f32.ln(), 5f32.ln()], Metric::Entropy);
        let classes: Vec<usize> = s.top.iter().map(|r| r.class).collect();
        assert_eq!(classes, vec![2, 1, 0]);
        assert!(close(s.top[2].probability, 0.125));
        assert!(close(s.margin, 0.375));
        assert!(close(certainty(&s), 0.180_552), "{:?}", s.certainty);
    }

    #[test]
    fn entropy_is_computed_only_for_the_entropy_metric() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let full = Summary::of(&logits);
        for metric in [Metric::MaxProb, Metric::Margin] {
            let s = Summary::for_metric(&logits, metric);
            assert_eq!(s.certainty, None);
            assert_eq!((&s.top, s.margin), (&full.top, full.margin));
            // Without the entropy, the entropy metric never lets an input exit.
            assert_eq!(Metric::Entropy.of(&s), 0.0);
        }
        assert_eq!(Summary::for_metric(&logits, Metric::Entropy), full);
    }

    #[test]
    fn matches_a_plain_f64_softmax_to_float_rounding() {
        // Logits spread like a real classifier's: one clear winner, a long tail.
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 120.0 - 3.0 + if i == 417 { 9.0 } else { 0.0 })
            .collect();
        let max = logits
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, |m, l| m.max(l as f64));
        let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|x| x / sum).collect();
        let h: f64 = -p
            .iter()
            .filter(|&&x| x > 0.0)
            .map(|x| x * x.ln())
            .sum::<f64>();
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));

        let s = Summary::of(&logits);
        let classes: Vec<usize> = s.top.iter().map(|r| r.class).collect();
        assert_eq!(classes, order[..TOP_K]);
        for r in &s.top {
            assert!((r.probability as f64 - p[r.class]).abs() < 1e-6, "{r:?}");
        }
        assert!((s.margin as f64 - (p[order[0]] - p[order[1]])).abs() < 1e-6);
        let want = 1.0 - h / 1000f64.ln();
        assert!(
            (certainty(&s) as f64 - want).abs() < 1e-6,
            "{:?} {want}",
            s.certainty
        );
    }

    #[test]
    fn hand_computed_two_class_values() {
        // logits (ln 3, 0): p = (0.75, 0.25).
        let s = Summary::of(&[3f32.ln(), 0.0]);
        assert_eq!(s.class(), Some(0));
        assert!(close(s.max_probability(), 0.75));
        assert!(close(s.margin, 0.5));
        // H = -(.75 ln .75 + .25 ln .25) = 0.562335; / ln 2 = 0.811278.
        assert!(close(certainty(&s), 1.0 - 0.811_278), "{:?}", s.certainty);
    }

    #[test]
    fn uniform_output_has_zero_confidence_everywhere() {
        let s = Summary::of(&[2.0; 4]);
        assert!(close(s.max_probability(), 0.25));
        assert!(close(s.margin, 0.0));
        assert!(close(certainty(&s), 0.0));
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
        assert!(close(certainty(&s), 1.0));

        let s = Summary::of(&[f32::MAX, f32::MAX]);
        assert!(close(s.max_probability(), 0.5));
        assert!(close(certainty(&s), 0.0));

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
    fn exp_le0_stays_within_its_error_bound() {
        // Every f32 step of 2^-16 over the domain (5.7 M points), and its ends.
        let mut worst = 0.0f64;
        let mut x = EXP_FLOOR;
        while x <= 0.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_le0(x));
            worst = worst.max((got - want).abs() / want);
            x += 1.0 / 65536.0;
        }
        for x in [
            0.0,
            -0.0,
            EXP_FLOOR,
            -f32::EPSILON,
            -0.346_573_6,
            -0.346_573_5,
        ] {
            let want = f64::from(x).exp();
            worst = worst.max((f64::from(exp_le0(x)) - want).abs() / want);
        }
        assert!(
            worst <= EXP_LE0_MAX_REL_ERROR,
            "worst relative error {worst:e}"
        );
        assert_eq!(exp_le0(0.0), 1.0);
    }

    /// The textbook summary: softmax in f64, classes sorted by probability (ties to the
    /// lower index), NaN logits left out.
    fn reference(logits: &[f32]) -> (Vec<(usize, f64)>, f64) {
        let max = logits
            .iter()
            .filter(|l| !l.is_nan())
            .fold(f64::NEG_INFINITY, |m, &l| m.max(f64::from(l)));
        let e: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i, (f64::from(l) - max).exp()))
            .collect();
        let sum: f64 = e.iter().map(|&(_, x)| x).sum();
        let mut p: Vec<(usize, f64)> = e.iter().map(|&(i, x)| (i, x / sum)).collect();
        let h = -p
            .iter()
            .filter(|&&(_, x)| x > 0.0)
            .map(|&(_, x)| x * x.ln())
            .sum::<f64>();
        let certainty = if p.len() > 1 {
            (1.0 - h / (p.len() as f64).ln()).clamp(0.0, 1.0)
        } else {
            1.0
        };
        p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (p, certainty)
    }

    proptest::proptest! {
        /// Ranks, probabilities, margin and certainty against the f64 textbook summary, on
        /// logits of any spread, some NaN or infinitely unlikely. The best classes are the
        /// same ones, in the same order; each probability is within the fast exponential's
        /// relative error (plus f32 rounding) of the exact one.
        #[test]
        fn matches_the_f64_softmax_within_the_exponentials_error(
            logits in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => -30.0f32..30.0,
                    1 => proptest::sample::select(vec![0.0f32, 1.0, -2.5]),
                    1 => proptest::sample::select(vec![f32::NAN, f32::NEG_INFINITY, -100.0]),
                ],
                1..1100,
            )
        ) {
            let (p, certainty) = reference(&logits);
            let s = Summary::of(&logits);
            if p.is_empty() || p[0].1.is_nan() {
                // No finite logit: nothing ranked.
                proptest::prop_assert!(s.top.is_empty());
                return Ok(());
            }
            // Ties in probability but not in logit (a tail below e^-745 is 0 in f64) are
            // ranked by logit here: compare classes only where the reference is strict.
            let tol = |p: f64| p * (EXP_LE0_MAX_REL_ERROR + 2.0 * f64::from(f32::EPSILON)) + 1e-30;
            for (k, r) in s.top.iter().enumerate() {
                let (class, want) = p[k];
                proptest::prop_assert!(
                    (f64::from(r.probability) - want).abs() <= tol(want),
                    "rank {k}: {} against {want}", r.probability
                );
                if want > 0.0 && p.get(k + 1).is_none_or(|n| n.1 < want) && (k == 0 || p[k - 1].1 > want) {
                    proptest::prop_assert_eq!(r.class, class, "rank {}", k);
                }
            }
            proptest::prop_assert_eq!(s.top.len(), p.len().min(TOP_K));
            let margin = p[0].1 - p.get(1).map_or(0.0, |x| x.1);
            proptest::prop_assert!((f64::from(s.margin) - margin).abs() <= tol(p[0].1) * 2.0);
            let got = f64::from(s.certainty.unwrap());
            proptest::prop_assert!((got - certainty).abs() <= 1e-6, "{got} against {certainty}");
        }
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
