//! Metering open-ended work, such as a camera stream, that cannot be wrapped in one call.
//!
//! [`EnergyMeter::measure`] meters a closure. A stream has no such closure: it runs until
//! its input ends or the user stops it, and the caller pulls its events one at a time. So
//! [`Background`] runs `measure` on its own thread around a closure that just waits, and
//! [`Background::finish`] ends that wait: the span measured is from `start` to `finish`.

use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::energy::{Energy, EnergyMeter};
use crate::error::{Error, Result};

/// A measurement running on its own thread until [`Background::finish`].
#[derive(Debug)]
pub struct Background {
    name: String,
    estimate: bool,
    /// Dropping it ends the span: the metered closure waits on its receiver.
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Result<Energy>>,
}

impl Background {
    /// Starts metering with `meter` now.
    pub fn start(mut meter: Box<dyn EnergyMeter>) -> Result<Background> {
        let name = meter.name();
        let estimate = meter.is_estimate();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("energy-meter".into())
            .spawn(move || {
                meter.measure(&mut || {
                    // Returns on a message or when the sender is dropped: either ends it.
                    let _ = stopped.recv();
                    Ok(())
                })
            })
            .map_err(|source| Error::Thread {
                what: "energy meter",
                source,
            })?;
        Ok(Background {
            name,
            estimate,
            stop,
            thread,
        })
    }

    /// What is metered.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a power model's estimate rather than a measurement.
    pub fn is_estimate(&self) -> bool {
        self.estimate
    }

    /// Ends the span and returns its energy.
    pub fn finish(self) -> Result<Energy> {
        drop(self.stop);
        self.thread.join().unwrap_or_else(|_| {
            Err(Error::Meter {
                meter: self.name,
                reason: "the metering thread panicked".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::energy::tests::put;
    use crate::energy::HwmonMeter;

    /// An INA219-class sensor under `root` reading a steady 2 W (hwmon power is in
    /// microwatts).
    fn steady_2w_sensor(root: &std::path::Path) -> HwmonMeter {
        put(root, "sys/class/hwmon/hwmon0/name", "ina219\n");
        put(root, "sys/class/hwmon/hwmon0/power1_input", "2000000\n");
        HwmonMeter::detect(root).unwrap()
    }

    #[test]
    fn meters_the_span_between_start_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let meter = steady_2w_sensor(dir.path());
        let outer = std::time::Instant::now();
        let live = Background::start(Box::new(meter)).unwrap();
        assert!(live.name().starts_with("hwmon"), "{}", live.name());
        assert!(!live.is_estimate());
        std::thread::sleep(Duration::from_millis(60));
        let energy = live.finish().unwrap();
        // The span opens once the thread has taken its first reading: within start..finish.
        let outer = outer.elapsed().as_secs_f64();
        assert!(
            energy.seconds > 0.0 && energy.seconds <= outer,
            "{energy:?} in {outer} s"
        );
        assert!((energy.watts() - 2.0).abs() < 1e-9, "{energy:?}");
        assert!((energy.joules - 2.0 * energy.seconds).abs() < 1e-9);
    }

    #[test]
    fn a_sensor_that_fails_is_an_error_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let meter = steady_2w_sensor(dir.path());
        let live = Background::start(Box::new(meter)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // The sensor starts reading garbage, as a driver that went away might.
        put(dir.path(), "sys/class/hwmon/hwmon0/power1_input", "gone\n");
        std::thread::sleep(Duration::from_millis(40));
        assert!(live.finish().is_err());
    }
}
