//! Raspberry Pi 5 PMIC rail readings from `vcgencmd pmic_read_adc`.
//!
//! The command prints one current and one voltage per rail:
//!
//! ```text
//!      VDD_CORE_A current(7)=0.66450000A
//!      VDD_CORE_V volt(15)=0.72000000V
//!         EXT5V_V volt(24)=5.14704000V
//! ```
//!
//! Power is the sum over rails of current times voltage, pairing `X_A` with `X_V`; a
//! reading without its pair (`EXT5V_V`, the 5 V input, has no current) is skipped. The
//! PMIC's rails are the SoC, memory and I/O supplies after conversion: they leave out the
//! converters' losses, USB, Ethernet and anything else fed from 5 V directly, so this reads
//! below the power at the USB-C input (measure the idle baseline with it too and compare
//! above-idle figures).
//!
//! Each reading spawns a process and takes a few milliseconds, so it is sampled every
//! 50 ms by default; the sampler's own cost is in the idle baseline as well.

use std::process::Command;
use std::time::Duration;

use super::{sample_while, Energy, EnergyMeter};
use crate::error::{Error, Result};

/// Runs one fixed command (`vcgencmd pmic_read_adc`, `vcgencmd get_throttled`, or a
/// stand-in in tests) and returns its output.
pub type CommandRunner = Box<dyn FnMut() -> std::io::Result<String> + Send>;

/// Power sampling interval unless set with [`VcgencmdMeter::with_interval`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

/// The real `vcgencmd pmic_read_adc`. A non-zero exit is an error carrying its output.
pub fn system_runner() -> CommandRunner {
    vcgencmd("pmic_read_adc")
}

/// The real `vcgencmd <command>` (the Raspberry Pi firmware's tool). A missing tool is an
/// error of kind `NotFound`; a non-zero exit is an error carrying its output.
pub fn vcgencmd(command: &'static str) -> CommandRunner {
    Box::new(move || {
        let out = Command::new("vcgencmd").arg(command).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(std::io::Error::other(format!(
                "vcgencmd {command} failed ({}): {} {}",
                out.status,
                stdout.trim(),
                stderr.trim()
            )))
        }
    })
}

/// One reading `NAME_A current(N)=0.5A` or `NAME_V volt(N)=0.8V`: rail name without the
/// suffix, whether it is a current, and the value.
fn parse_line(line: &str) -> Option<(&str, bool, f64)> {
    let mut words = line.split_whitespace();
    let rail = words.next()?;
    let reading = words.next()?;
    let (kind, value) = reading.split_once('=')?;
    let (is_current, unit, suffix) = if kind.starts_with("current(") {
        (true, 'A', "_A")
    } else if kind.starts_with("volt(") {
        (false, 'V', "_V")
    } else {
        return None;
    };
    let value: f64 = value.strip_suffix(unit)?.parse().ok()?;
    let name = rail.strip_suffix(suffix)?;
    value.is_finite().then_some((name, is_current, value))
}

/// Total power of the rails in `pmic_read_adc` output, watts, and the number of rails
/// paired; `None` when no rail has both a current and a voltage.
pub fn parse_pmic_watts(output: &str) -> Option<(f64, usize)> {
    let readings: Vec<(&str, bool, f64)> = output.lines().filter_map(parse_line).collect();
    let mut watts = 0.0;
    let mut rails = 0;
    for &(name, _, amps) in readings.iter().filter(|r| r.1) {
        if let Some(&(_, _, volts)) = readings.iter().find(|r| !r.1 && r.0 == name) {
            watts += amps * volts;
            rails += 1;
        }
    }
    (rails > 0).then_some((watts, rails))
}

/// The Pi 5 PMIC's rails, sampled through `vcgencmd`.
pub struct VcgencmdMeter {
    run: CommandRunner,
    rails: usize,
    interval: Duration,
}

impl VcgencmdMeter {
    /// A meter if `run` works and its output has at least one rail.
    pub fn detect(mut run: CommandRunner) -> Option<Self> {
        let output = match run() {
            Ok(output) => output,
            Err(e) => {
                log::debug!("vcgencmd pmic_read_adc not usable: {e}");
                return None;
            }
        };
        let Some((_, rails)) = parse_pmic_watts(&output) else {
            log::debug!("vcgencmd pmic_read_adc output has no current/voltage pairs");
            return None;
        };
        Some(VcgencmdMeter {
            run,
            rails,
            interval: DEFAULT_INTERVAL,
        })
    }

    /// Sets the power sampling interval.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

impl EnergyMeter for VcgencmdMeter {
    fn name(&self) -> String {
        format!("vcgencmd pmic_read_adc ({} rails)", self.rails)
    }

    fn is_estimate(&self) -> bool {
        false
    }

    fn measure(&mut self, work: &mut dyn FnMut() -> Result<()>) -> Result<Energy> {
        let name = self.name();
        let run = &mut self.run;
        let read = || -> Result<f64> {
            let output = run().map_err(|e| Error::Meter {
                meter: name.clone(),
                reason: e.to_string(),
            })?;
            parse_pmic_watts(&output)
                .map(|(watts, _)| watts)
                .ok_or_else(|| Error::Meter {
                    meter: name.clone(),
                    reason: "output has no current/voltage pairs".into(),
                })
        };
        sample_while(&name, self.interval, read, work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tests::sleep_ms;

    /// Output in the format of a Raspberry Pi 5's `vcgencmd pmic_read_adc` (rail names,
    /// order and column alignment as the firmware prints them).
    const PI5_OUTPUT: &str = "\
 3V7_WL_SW_A current(0)=0.00390372A
   3V3_SYS_A current(1)=0.05660700A
   1V8_SYS_A current(2)=0.18018000A
  DDR_VDD2_A current(3)=0.02147040A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.17568200A
   0V8_SYS_A current(6)=0.31718700A
  VDD_CORE_A current(7)=0.66450000A
   3V3_DAC_A current(17)=0.00054945A
   3V3_ADC_A current(18)=0.00054945A
   0V8_AON_A current(16)=0.00538461A
      HDMI_A current(22)=0.02064000A
 3V7_WL_SW_V volt(8)=3.74096000V
   3V3_SYS_V volt(9)=3.31513000V
   1V8_SYS_V volt(10)=1.79873000V
  DDR_VDD2_V volt(11)=1.11317000V
  DDR_VDDQ_V volt(12)=0.60549000V
   1V1_SYS_V volt(13)=1.10576000V
   0V8_SYS_V volt(14)=0.80159000V
  VDD_CORE_V volt(15)=0.72000000V
   3V3_DAC_V volt(20)=3.30403000V
   3V3_ADC_V volt(21)=3.30806000V
   0V8_AON_V volt(19)=0.79845000V
      HDMI_V volt(23)=5.15088000V
     EXT5V_V volt(24)=5.14704000V
      BATT_V volt(25)=0.00000000V
";

    /// The same sum by hand, rail by rail.
    const PI5_WATTS: f64 = 0.00390372 * 3.74096
        + 0.056607 * 3.31513
        + 0.18018 * 1.79873
        + 0.0214704 * 1.11317
        + 0.0 * 0.60549
        + 0.175682 * 1.10576
        + 0.317187 * 0.80159
        + 0.6645 * 0.72
        + 0.00054945 * 3.30403
        + 0.00054945 * 3.30806
        + 0.00538461 * 0.79845
        + 0.02064 * 5.15088;

    #[test]
    fn parses_recorded_output() {
        let (watts, rails) = parse_pmic_watts(PI5_OUTPUT).unwrap();
        assert_eq!(rails, 12, "EXT5V_V and BATT_V have no current");
        assert!((watts - PI5_WATTS).abs() < 1e-9, "{watts} vs {PI5_WATTS}");
        assert!((watts - 1.5915).abs() < 1e-3, "{watts}");
    }

    #[test]
    fn skips_unparseable_lines_and_rejects_output_without_pairs() {
        let noisy = format!("garbage\nVDD_CORE_A current(7)=oops\n{PI5_OUTPUT}\n\n");
        assert_eq!(parse_pmic_watts(&noisy).unwrap().1, 12);
        assert_eq!(parse_pmic_watts(""), None);
        assert_eq!(
            parse_pmic_watts("error=1 error_msg=\"Command not registered\""),
            None
        );
        assert_eq!(parse_pmic_watts("EXT5V_V volt(24)=5.1V\n"), None);
    }

    #[test]
    fn meter_samples_the_command() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let runner: CommandRunner = Box::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(PI5_OUTPUT.to_string())
        });
        let mut m = VcgencmdMeter::detect(runner)
            .unwrap()
            .with_interval(Duration::from_millis(5));
        assert_eq!(m.name(), "vcgencmd pmic_read_adc (12 rails)");
        let e = m.measure(&mut sleep_ms(40)).unwrap();
        assert!((e.watts() - PI5_WATTS).abs() < 1e-9, "{e:?}");
        assert!(e.seconds >= 0.04);
        assert!(calls.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    }

    #[test]
    fn missing_or_failing_command_is_not_a_meter() {
        let missing: CommandRunner = Box::new(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "vcgencmd",
            ))
        });
        assert!(VcgencmdMeter::detect(missing).is_none());
        // A Pi 4's firmware does not know the command.
        let pi4: CommandRunner =
            Box::new(|| Ok("error=1 error_msg=\"Command not registered\"\n".into()));
        assert!(VcgencmdMeter::detect(pi4).is_none());
    }
}
