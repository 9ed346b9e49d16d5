//! Linux hwmon power monitors: INA219/INA226/INA3221 class shunt monitors on a HAT or on
//! the board itself (Jetson modules expose their INA3221 rails this way).
//!
//! Per device, the best reading it offers is used: cumulative `energy*_input` counters (µJ,
//! read before and after), else `power*_input` (µW), else bus voltage and current pairs
//! `in<N>_input` (mV) with `curr<N>_input` (mA), as the `ina3221` driver gives. Power
//! readings are sampled in a background thread while the work runs and integrated.
//!
//! Only shunt-monitor drivers (`ina*`) are read: other hwmon power sensors (GPUs, CPU
//! packages) meter a part of the machine, not its supply. On a Jetson the first INA3221
//! rail (`VDD_IN`, `POM_5V_IN`) is the module's input and the others are parts of it, so
//! when a rail is labeled as an input (`*_IN`) only input rails are used; otherwise all
//! rails are summed. Rails labeled `NC` (not connected) are skipped.

use std::path::Path;
use std::time::Duration;

use super::{read_text, sample_while, sorted_entries, timed, Energy, EnergyMeter, SysfsValue};
use crate::error::{Error, Result};

/// Power sampling interval unless set with [`HwmonMeter::with_interval`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug)]
enum Reading {
    /// Cumulative energy, µJ.
    Energy(SysfsValue),
    /// Power, µW.
    Power(SysfsValue),
    /// Bus voltage (mV) and current (mA) of one rail.
    VoltCurr { mv: SysfsValue, ma: SysfsValue },
}

#[derive(Debug)]
struct Channel {
    /// hwmon device name, e.g. `ina3221`.
    device: String,
    label: Option<String>,
    reading: Reading,
}

/// Sum of the power monitors' rails.
#[derive(Debug)]
pub struct HwmonMeter {
    /// Cumulative energy counters.
    counters: Vec<Channel>,
    /// Sampled power readings.
    sampled: Vec<Channel>,
    interval: Duration,
}

/// Shunt power monitor drivers (`ina2xx`, `ina3221`, `ina238`, ...).
fn is_power_monitor(device: &str) -> bool {
    device.starts_with("ina")
}

/// A rail that feeds the whole board or module (Jetson `VDD_IN`, `POM_5V_IN`).
fn is_input_rail(label: &str) -> bool {
    label.ends_with("_IN")
}

/// Channel numbers `N` of the files `<prefix>N_input` among `files`.
fn channel_numbers<'a>(
    files: &'a [(String, std::path::PathBuf)],
    prefix: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    files.iter().filter_map(move |(f, _)| {
        let n = f.strip_prefix(prefix)?.strip_suffix("_input")?;
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
    })
}

/// The channels of one device, of the best kind it offers.
fn device_channels(device: &str, dir: &Path) -> Vec<Channel> {
    let files = sorted_entries(dir);
    let open = |file: String| match SysfsValue::open(dir.join(&file)) {
        Ok(v) => Some(v),
        Err(e) => {
            log::debug!("hwmon {device}: {file} not usable: {e}");
            None
        }
    };
    let label = |prefix: &str, n: &str| read_text(&dir.join(format!("{prefix}{n}_label")));
    let channel = |label: Option<String>, reading| Channel {
        device: device.to_string(),
        label,
        reading,
    };
    let energy: Vec<Channel> = channel_numbers(&files, "energy")
        .filter_map(|n| {
            let v = open(format!("energy{n}_input"))?;
            Some(channel(label("energy", n), Reading::Energy(v)))
        })
        .collect();
    if !energy.is_empty() {
        return energy;
    }
    let power: Vec<Channel> = channel_numbers(&files, "power")
        .filter_map(|n| {
            let v = open(format!("power{n}_input"))?;
            Some(channel(label("power", n), Reading::Power(v)))
        })
        .collect();
    if !power.is_empty() {
        return power;
    }
    channel_numbers(&files, "curr")
        .filter_map(|n| {
            let ma = open(format!("curr{n}_input"))?;
            let mv = open(format!("in{n}_input"))?;
            let label = label("in", n).or_else(|| label("curr", n));
            Some(channel(label, Reading::VoltCurr { mv, ma }))
        })
        .collect()
}

impl HwmonMeter {
    /// The power monitors under `root/sys/class/hwmon`, or `None`.
    pub fn detect(root: &Path) -> Option<Self> {
        let mut channels: Vec<Channel> = Vec::new();
        for (entry, dir) in sorted_entries(&root.join("sys/class/hwmon")) {
            let Some(device) = read_text(&dir.join("name")) else {
                continue;
            };
            if !is_power_monitor(&device) {
                log::debug!("hwmon {entry} ({device}): not a power monitor");
                continue;
            }
            channels.extend(device_channels(&device, &dir));
        }
        channels.retain(|c| c.label.as_deref() != Some("NC"));
        if channels
            .iter()
            .any(|c| c.label.as_deref().is_some_and(is_input_rail))
        {
            channels.retain(|c| c.label.as_deref().is_some_and(is_input_rail));
        }
        if channels.is_empty() {
            return None;
        }
        let (counters, sampled) = channels
            .into_iter()
            .partition(|c| matches!(c.reading, Reading::Energy(_)));
        Some(HwmonMeter {
            counters,
            sampled,
            interval: DEFAULT_INTERVAL,
        })
    }

    /// Sets the power sampling interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    fn error(&self, path: &Path, e: std::io::Error) -> Error {
        Error::Meter {
            meter: self.name(),
            reason: format!("{}: {e}", path.display()),
        }
    }

    fn read(&self, value: &SysfsValue) -> Result<i64> {
        value.read().map_err(|e| self.error(value.path(), e))
    }

    /// Sum of the sampled rails' power, watts.
    fn watts(&self) -> Result<f64> {
        let mut watts = 0.0;
        for c in &self.sampled {
            watts += match &c.reading {
                Reading::Power(uw) => self.read(uw)? as f64 / 1e6,
                Reading::VoltCurr { mv, ma } => self.read(mv)? as f64 * self.read(ma)? as f64 / 1e6,
                Reading::Energy(_) => 0.0,
            };
        }
        Ok(watts)
    }

    fn counter_values(&self) -> Result<Vec<i64>> {
        self.counters
            .iter()
            .map(|c| match &c.reading {
                Reading::Energy(uj) => self.read(uj),
                _ => Ok(0),
            })
            .collect()
    }
}

impl EnergyMeter for HwmonMeter {
    fn name(&self) -> String {
        // "ina3221 (3 rails: VDD_IN, ...)", one part per device.
        let mut parts: Vec<(String, Vec<String>)> = Vec::new();
        for c in self.counters.iter().chain(&self.sampled) {
            let label = c.label.clone().unwrap_or_default();
            match parts.iter_mut().find(|(d, _)| *d == c.device) {
                Some((_, labels)) => labels.push(label),
                None => parts.push((c.device.clone(), vec![label])),
            }
        }
        let parts: Vec<String> = parts
            .into_iter()
            .map(|(device, labels)| {
                let n = labels.len();
                let rails = if n == 1 { "rail" } else { "rails" };
                let named: Vec<String> = labels.into_iter().filter(|l| !l.is_empty()).collect();
                if named.is_empty() {
                    format!("{device} ({n} {rails})")
                } else {
                    format!("{device} ({n} {rails}: {})", named.join(", "))
                }
            })
            .collect();
        format!("hwmon {}", parts.join(" + "))
    }

    fn is_estimate(&self) -> bool {
        false
    }

    fn measure(&mut self, work: &mut dyn FnMut() -> Result<()>) -> Result<Energy> {
        let before = self.counter_values()?;
        let mut energy = if self.sampled.is_empty() {
            let seconds = timed(work)?;
            Energy {
                joules: 0.0,
                seconds,
            }
        } else {
            let this = &*self;
            sample_while(&this.name(), this.interval, || this.watts(), work)?
        };
        let after = self.counter_values()?;
        for ((c, b), a) in self.counters.iter().zip(before).zip(after) {
            if a < b {
                return Err(Error::Meter {
                    meter: self.name(),
                    reason: format!(
                        "{} energy counter went backwards ({b} -> {a} µJ)",
                        c.label.as_deref().unwrap_or(&c.device)
                    ),
                });
            }
            energy.joules += (a - b) as f64 / 1e6;
        }
        Ok(energy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tests::{put, sleep_ms};

    #[test]
    fn reads_energy_counters() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        put(&root, "sys/class/hwmon/hwmon2/name", "ina238\n");
        put(&root, "sys/class/hwmon/hwmon2/energy1_input", "1000000\n");
        put(&root, "sys/class/hwmon/hwmon2/power1_input", "5000000\n");
        let mut m = HwmonMeter::detect(&root).unwrap();
        assert_eq!(m.name(), "hwmon ina238 (1 rail)");
        let e = m
            .measure(&mut || {
                let path = root.join("sys/class/hwmon/hwmon2/energy1_input");
                std::fs::write(path, "3500000\n").unwrap();
                Ok(())
            })
            .unwrap();
        assert!((e.joules - 2.5).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn samples_constant_power() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "sys/class/hwmon/hwmon0/name", "ina219\n");
        put(
            dir.path(),
            "sys/class/hwmon/hwmon0/power1_input",
            "2000000\n",
        );
        put(dir.path(), "sys/class/hwmon/hwmon0/in1_input", "5000\n");
        put(dir.path(), "sys/class/hwmon/hwmon0/curr1_input", "999\n");
        let mut m = HwmonMeter::detect(dir.path())
            .unwrap()
            .with_interval(Duration::from_millis(5));
        let e = m.measure(&mut sleep_ms(50)).unwrap();
        assert!(e.seconds >= 0.05, "{e:?}");
        assert!((e.watts() - 2.0).abs() < 1e-9, "power1_input wins: {e:?}");
        // 2 W for at least 50 ms (more if the machine is busy: no upper bound on time).
        assert!(e.joules >= 0.1 - 1e-9, "{e:?}");
    }

    #[test]
    fn sums_ina3221_volt_current_rails() {
        let dir = tempfile::tempdir().unwrap();
        let hw = "sys/class/hwmon/hwmon1";
        put(dir.path(), &format!("{hw}/name"), "ina3221\n");
        // 5 V x 1 A + 3.3 V x 0.5 A + 1.8 V x 0.25 A = 7.1 W; shunt voltages (in4..in6)
        // have no current and are ignored.
        for (n, mv, ma) in [(1, 5000, 1000), (2, 3300, 500), (3, 1800, 250)] {
            put(dir.path(), &format!("{hw}/in{n}_input"), &format!("{mv}\n"));
            put(
                dir.path(),
                &format!("{hw}/curr{n}_input"),
                &format!("{ma}\n"),
            );
        }
        put(dir.path(), &format!("{hw}/in4_input"), "12\n");
        let mut m = HwmonMeter::detect(dir.path()).unwrap();
        assert_eq!(m.name(), "hwmon ina3221 (3 rails)");
        let e = m.measure(&mut sleep_ms(30)).unwrap();
        assert!((e.watts() - 7.1).abs() < 1e-9, "{e:?}");
        assert!(e.joules >= 7.1 * 0.03 - 1e-9, "{e:?}");
    }

    #[test]
    fn jetson_input_rail_is_not_summed_with_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        let hw = "sys/class/hwmon/hwmon3";
        put(dir.path(), &format!("{hw}/name"), "ina3221\n");
        for (n, label, mv, ma) in [
            (1, "VDD_IN", 5000, 1000),
            (2, "VDD_CPU_GPU_CV", 5000, 400),
            (3, "VDD_SOC", 5000, 200),
        ] {
            put(
                dir.path(),
                &format!("{hw}/in{n}_label"),
                &format!("{label}\n"),
            );
            put(dir.path(), &format!("{hw}/in{n}_input"), &format!("{mv}\n"));
            put(
                dir.path(),
                &format!("{hw}/curr{n}_input"),
                &format!("{ma}\n"),
            );
        }
        let mut m = HwmonMeter::detect(dir.path()).unwrap();
        assert_eq!(m.name(), "hwmon ina3221 (1 rail: VDD_IN)");
        let e = m.measure(&mut sleep_ms(10)).unwrap();
        assert!((e.watts() - 5.0).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn other_sensors_and_empty_trees_are_not_a_meter() {
        let dir = tempfile::tempdir().unwrap();
        assert!(HwmonMeter::detect(dir.path()).is_none());
        put(dir.path(), "sys/class/hwmon/hwmon0/name", "amdgpu\n");
        put(
            dir.path(),
            "sys/class/hwmon/hwmon0/power1_input",
            "30000000\n",
        );
        put(dir.path(), "sys/class/hwmon/hwmon1/name", "ina219\n");
        put(dir.path(), "sys/class/hwmon/hwmon1/temp1_input", "40000\n");
        assert!(HwmonMeter::detect(dir.path()).is_none());
    }

    #[test]
    fn vanished_sensor_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "sys/class/hwmon/hwmon0/name", "ina226\n");
        put(
            dir.path(),
            "sys/class/hwmon/hwmon0/power1_input",
            "1000000\n",
        );
        let mut m = HwmonMeter::detect(dir.path()).unwrap();
        let path = dir.path().join("sys/class/hwmon/hwmon0/power1_input");
        std::fs::write(&path, "garbage\n").unwrap();
        let e = m.measure(&mut sleep_ms(1)).unwrap_err().to_string();
        assert!(e.starts_with("energy meter hwmon ina226"), "{e}");
        assert!(e.contains("power1_input"), "{e}");
    }
}
