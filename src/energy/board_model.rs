//! The board power model as a meter of last resort: no measurement, an *estimate* from the
//! published whole-board figures in `boards/<board>.toml`.
//!
//! Energy is the board's power with `busy_cores` cores busy times the time the work took;
//! idle is the board's idle figure. The estimate cannot see what the model actually does
//! (memory-bound layers, NEON use, thermal throttling), so it ranks configurations by time
//! more than by energy, and reports say it is an estimate.

use std::time::Duration;

use super::{timed, Energy, EnergyMeter};
use crate::energy::Board;
use crate::error::Result;

/// Energy from [`Board::power_at`] and elapsed time.
#[derive(Debug, Clone)]
pub struct ModelMeter {
    board: Board,
    busy_cores: usize,
}

impl ModelMeter {
    /// `busy_cores` is the thread count the work runs with (clamped by [`Board::power_at`]).
    pub fn new(board: Board, busy_cores: usize) -> Self {
        ModelMeter { board, busy_cores }
    }
}

impl EnergyMeter for ModelMeter {
    fn name(&self) -> String {
        let cores = self.busy_cores.min(self.board.cores);
        let s = if cores == 1 { "" } else { "s" };
        format!(
            "board model {} ({cores} busy core{s}, estimate)",
            self.board.name
        )
    }

    fn is_estimate(&self) -> bool {
        true
    }

    fn measure(&mut self, work: &mut dyn FnMut() -> Result<()>) -> Result<Energy> {
        let seconds = timed(work)?;
        Ok(Energy {
            joules: self.board.power_at(self.busy_cores) * seconds,
            seconds,
        })
    }

    /// Busy power while working, idle power while waiting.
    fn measure_waiting(&mut self, work: &mut dyn FnMut() -> Result<Duration>) -> Result<Energy> {
        let mut waited = Duration::ZERO;
        let seconds = timed(&mut || {
            waited = work()?;
            Ok(())
        })?;
        let waiting = waited.as_secs_f64().min(seconds);
        Ok(Energy {
            joules: self.board.power_at(self.busy_cores) * (seconds - waiting)
                + self.board.idle_watts * waiting,
            seconds,
        })
    }

    /// The board's idle figure; nothing to wait for.
    fn measure_idle(&mut self, span: Duration) -> Result<Energy> {
        let seconds = span.as_secs_f64();
        Ok(Energy {
            joules: self.board.idle_watts * seconds,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tests::sleep_ms;

    #[test]
    fn energy_is_board_power_times_time() {
        let board = Board::builtin("rpi4b").unwrap();
        let mut m = ModelMeter::new(board.clone(), 2);
        assert!(m.is_estimate());
        assert_eq!(m.name(), "board model rpi4b (2 busy cores, estimate)");
        let e = m.measure(&mut sleep_ms(20)).unwrap();
        assert!(e.seconds >= 0.02);
        assert!((e.joules - board.active_watts[1] * e.seconds).abs() < 1e-12);

        let idle = m.measure_idle(Duration::from_secs(2)).unwrap();
        assert_eq!(idle.joules, 2.0 * board.idle_watts);

        // Waiting on a server is charged at idle power: here 15 of about 20 ms.
        let e = m
            .measure_waiting(&mut || {
                sleep_ms(20)()?;
                Ok(Duration::from_millis(15))
            })
            .unwrap();
        let busy = board.active_watts[1] * (e.seconds - 0.015) + board.idle_watts * 0.015;
        assert!((e.joules - busy).abs() < 1e-12, "{e:?}");
        assert!(e.joules < board.active_watts[1] * e.seconds);

        let mut all = ModelMeter::new(board.clone(), 16);
        assert_eq!(all.name(), "board model rpi4b (4 busy cores, estimate)");
        let e = all.measure(&mut sleep_ms(1)).unwrap();
        assert!((e.watts() - 6.4).abs() < 1e-9);
    }
}
