//! What a calibration aims at: a cost budget per input (latency or energy), or an accuracy
//! to reach as cheaply as possible. Validated on construction, read from a profile file
//! included, so a `Budget` in hand is always positive and finite.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A cost limit per input: positive and finite.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
#[serde(try_from = "BudgetFile")]
pub enum Budget {
    LatencyMs(f64),
    EnergyMj(f64),
}

/// A budget as a file writes it, before it is checked.
#[derive(Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
enum BudgetFile {
    LatencyMs(f64),
    EnergyMj(f64),
}

impl TryFrom<BudgetFile> for Budget {
    type Error = Error;
    fn try_from(b: BudgetFile) -> Result<Budget> {
        match b {
            BudgetFile::LatencyMs(v) => positive(v, "a latency budget").map(Budget::LatencyMs),
            BudgetFile::EnergyMj(v) => positive(v, "an energy budget").map(Budget::EnergyMj),
        }
    }
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
#[serde(try_from = "TargetFile")]
pub enum Target {
    /// Best accuracy whose expected cost is within the budget.
    Budget(Budget),
    /// Cheapest threshold whose accuracy reaches this share (0..=1).
    MinAccuracy(f64),
}

/// A target as a file writes it, before it is checked.
#[derive(Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
enum TargetFile {
    Budget(Budget),
    MinAccuracy(f64),
}

impl TryFrom<TargetFile> for Target {
    type Error = Error;
    fn try_from(t: TargetFile) -> Result<Target> {
        match t {
            TargetFile::Budget(b) => Ok(Target::Budget(b)),
            TargetFile::MinAccuracy(v) => Target::min_accuracy(v),
        }
    }
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

    /// The target the command-line flags name (`--budget-ms`, `--budget-mj`,
    /// `--min-accuracy`; the first given wins), checked; `None` when none is given.
    pub fn from_flags(
        budget_ms: Option<f64>,
        budget_mj: Option<f64>,
        min_accuracy: Option<f64>,
    ) -> Result<Option<Target>> {
        Ok(match (budget_ms, budget_mj, min_accuracy) {
            (Some(ms), _, _) => Some(Target::Budget(Budget::latency_ms(ms)?)),
            (_, Some(mj), _) => Some(Target::Budget(Budget::energy_mj(mj)?)),
            (_, _, Some(a)) => Some(Target::min_accuracy(a)?),
            _ => None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `profile` fuzz target: a profile whose budget was 0 (or negative, or
    /// NaN) was read as a `Budget`, which is documented to be positive and finite.
    #[test]
    fn a_budget_read_from_a_file_is_checked_like_one_given_on_the_command_line() {
        let read = |text: &str| toml::from_str::<Target>(text).map_err(|e| e.to_string());
        let ok = read("kind = \"budget\"\nvalue = { kind = \"latency-ms\", value = 35.0 }\n");
        assert_eq!(ok, Ok(Target::Budget(Budget::latency_ms(35.0).unwrap())));
        for bad in ["0.0", "-1.0", "nan", "inf"] {
            for kind in ["latency-ms", "energy-mj"] {
                let text =
                    format!("kind = \"budget\"\nvalue = {{ kind = \"{kind}\", value = {bad} }}\n");
                let err = read(&text).unwrap_err();
                assert!(err.contains("must be a positive number"), "{err}");
            }
        }
        for bad in ["0.0", "1.5", "nan"] {
            let err = read(&format!("kind = \"min-accuracy\"\nvalue = {bad}\n")).unwrap_err();
            assert!(err.contains("must be in (0, 1]"), "{err}");
        }
        let round = toml::to_string(&ok.unwrap()).unwrap();
        assert!(read(&round).is_ok(), "{round}");
    }
}
