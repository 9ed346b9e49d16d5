//! What a calibration aims at: a cost budget per input (latency or energy), or an accuracy
//! to reach as cheaply as possible. Validated on construction, so a `Budget` in hand is
//! always positive and finite.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A cost limit per input: positive and finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Budget {
    LatencyMs(f64),
    EnergyMj(f64),
}

impl Budget {
    pub fn latency_ms(v: f64) -> Result<Budget> {
        positive(v, "--budget-ms").map(Budget::LatencyMs)
    }

    pub fn energy_mj(v: f64) -> Result<Budget> {
        positive(v, "--budget-mj").map(Budget::EnergyMj)
    }

    pub fn value(self) -> f64 {
        match self {
            Budget::LatencyMs(v) | Budget::EnergyMj(v) => v,
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Budget::LatencyMs(_) => "ms",
            Budget::EnergyMj(_) => "mJ",
        }
    }
}

fn positive(v: f64, what: &str) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} must be a positive number, got {v}"
        )))
    }
}

/// What the threshold is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Target {
    /// Best accuracy whose expected cost is within the budget.
    Budget(Budget),
    /// Cheapest threshold whose accuracy reaches this share (0..=1).
    MinAccuracy(f64),
}

impl Target {
    pub fn min_accuracy(v: f64) -> Result<Target> {
        if v.is_finite() && v > 0.0 && v <= 1.0 {
            Ok(Target::MinAccuracy(v))
        } else {
            Err(Error::InvalidArgument(format!(
                "--min-accuracy must be in (0, 1], got {v}"
            )))
        }
    }
}

impl Target {
    /// The unit costs are counted in for this target: the budget's, or latency.
    pub fn unit(&self) -> &'static str {
        match self {
            Target::Budget(b) => b.unit(),
            Target::MinAccuracy(_) => "ms",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Budget(b) => write!(f, "budget {:.3} {}", b.value(), b.unit()),
            Target::MinAccuracy(a) => write!(f, "accuracy >= {:.1}%", 100.0 * a),
        }
    }
}
