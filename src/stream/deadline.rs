//! The per-frame deadline: defer a frame to the next stage only if, by that stage's
//! measured cost, the answer still comes in time.
//!
//! A frame's clock starts when it arrives (so time spent waiting for the cascade counts),
//! and a stage that is not resident also costs its measured load time.

use std::time::Duration;

use crate::error::{Error, Result};

/// Stage costs from a profile and the time each frame may take.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    limit: Duration,
    /// Mean latency of each stage (preprocessing plus inference), ms.
    stage_ms: Vec<f64>,
    /// Time to load each stage, ms.
    load_ms: Vec<f64>,
}

impl Deadline {
    pub fn new(limit_ms: f64, stage_ms: Vec<f64>, load_ms: Vec<f64>) -> Result<Deadline> {
        let limit = Duration::try_from_secs_f64(limit_ms / 1e3)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "--deadline-ms must be a positive number of milliseconds, got {limit_ms}"
                ))
            })?;
        if stage_ms.len() != load_ms.len()
            || stage_ms
                .iter()
                .chain(&load_ms)
                .any(|c| !(c.is_finite() && *c >= 0.0))
        {
            return Err(Error::InvalidArgument(
                "stage costs must be one finite, non-negative number per stage".into(),
            ));
        }
        Ok(Deadline {
            limit,
            stage_ms,
            load_ms,
        })
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Whether running stage `next` on a frame that arrived `age` ago ends by the deadline
    /// (`loaded`: whether that stage is resident). An unknown stage is never allowed.
    pub fn allows(&self, next: usize, age: Duration, loaded: bool) -> bool {
        let Some(&run) = self.stage_ms.get(next) else {
            return false;
        };
        let load = if loaded { 0.0 } else { self.load_ms[next] };
        age.as_secs_f64() * 1e3 + run + load <= self.limit.as_secs_f64() * 1e3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defers_only_when_the_next_stage_ends_in_time() {
        let d = Deadline::new(100.0, vec![20.0, 60.0], vec![50.0, 400.0]).unwrap();
        let ms = Duration::from_millis;
        assert!(d.allows(1, ms(30), true)); // 30 + 60 = 90
        assert!(d.allows(1, ms(40), true)); // exactly 100
        assert!(!d.allows(1, ms(41), true));
        // Not resident: the load time counts too.
        assert!(!d.allows(1, ms(30), false));
        assert!(!d.allows(2, ms(0), true));
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Deadline::new(0.0, vec![1.0], vec![1.0]).is_err());
        assert!(Deadline::new(f64::NAN, vec![1.0], vec![1.0]).is_err());
        assert!(Deadline::new(1e300, vec![1.0], vec![1.0]).is_err());
        assert!(Deadline::new(10.0, vec![1.0], vec![]).is_err());
        assert!(Deadline::new(10.0, vec![-1.0], vec![1.0]).is_err());
    }
}
