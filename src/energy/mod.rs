//! Energy measurement on the device, from the best meter present.
//!
//! [`detect`] picks, in order of trust:
//!
//! 1. [`PowercapMeter`]: Linux powercap (Intel/AMD RAPL) `energy_uj` counters. Hardware
//!    energy counters of the CPU package(s): exact over any span, but they exclude the rest
//!    of the board (memory, disks, fans, the PSU's own losses).
//! 2. [`HwmonMeter`]: hwmon power or energy sensors of INA219/INA226/INA3221 class shunt
//!    monitors (HATs, Jetson boards), sampled while the model runs.
//! 3. [`VcgencmdMeter`]: the Raspberry Pi 5 PMIC's rail readings from
//!    `vcgencmd pmic_read_adc`, sampled while the model runs.
//! 4. [`ModelMeter`]: the board's power model ([`crate::energy::Board`]), an *estimate*
//!    from published whole-board measurements, labeled as such.
//!
//! Every meter also includes whatever else the metered domain powers (the OS, the sampler
//! itself), so costs are reported twice: total, and above an idle baseline measured the
//! same way ([`idle_power`], [`EnergyPerRun`]).

mod background;
mod board;
mod board_model;
mod hwmon;
mod powercap;
mod vcgencmd;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use background::Background;
pub use board::{device_tree_model, Board};
pub use board_model::ModelMeter;
pub use hwmon::HwmonMeter;
pub use powercap::PowercapMeter;
pub use vcgencmd::{system_runner, vcgencmd, CommandRunner, VcgencmdMeter};

use crate::error::{Error, Result};

/// Energy of one measured span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub joules: f64,
    pub seconds: f64,
}

impl Energy {
    /// Mean power over the span, watts (0 for an empty span).
    pub fn watts(&self) -> f64 {
        if self.seconds > 0.0 {
            self.joules / self.seconds
        } else {
            0.0
        }
    }
}

/// A source of energy readings for a span of work.
pub trait EnergyMeter: Send {
    /// What is metered, e.g. `powercap intel-rapl:0 (package-0)`.
    fn name(&self) -> String;

    /// True when the figure is computed from a power model rather than measured.
    fn is_estimate(&self) -> bool;

    /// Runs `work` and returns the energy the metered domain used meanwhile, over the time
    /// `work` took. An error from `work` is returned as is.
    fn measure(&mut self, work: &mut dyn FnMut() -> Result<()>) -> Result<Energy>;

    /// [`EnergyMeter::measure`] for work that spends part of its time waiting (on a
    /// server's answer), `work` returning how long it waited. A meter measures what the
    /// board used, waiting or not; a power model charges the wait at idle power, not at
    /// the busy cores' (the default measures as [`EnergyMeter::measure`] does).
    fn measure_waiting(&mut self, work: &mut dyn FnMut() -> Result<Duration>) -> Result<Energy> {
        self.measure(&mut || work().map(|_| ()))
    }

    /// Energy used over `span` with nothing running. Meters measure a sleep; a power
    /// model returns its idle figure without sleeping.
    fn measure_idle(&mut self, span: Duration) -> Result<Energy> {
        self.measure(&mut || {
            std::thread::sleep(span);
            Ok(())
        })
    }
}

/// The best meter present under `root` (`/` normally; tests pass a folder holding a fake
/// `sys/class/...` tree), in the order of the module docs. `vcgencmd` runs
/// `vcgencmd pmic_read_adc` ([`system_runner`] for the real one). `busy_cores` (the
/// configured thread count) selects the board model's power when no meter is present.
pub fn detect(
    root: &Path,
    vcgencmd: Option<CommandRunner>,
    board: Option<&Board>,
    busy_cores: usize,
) -> Option<Box<dyn EnergyMeter>> {
    let meter: Box<dyn EnergyMeter> = if let Some(m) = PowercapMeter::detect(root) {
        Box::new(m)
    } else if let Some(m) = HwmonMeter::detect(root) {
        Box::new(m)
    } else if let Some(m) = vcgencmd.and_then(VcgencmdMeter::detect) {
        Box::new(m)
    } else if let Some(board) = board {
        Box::new(ModelMeter::new(board.clone(), busy_cores))
    } else {
        log::debug!("no energy meter found and no board given");
        return None;
    };
    log::info!("energy meter: {}", meter.name());
    Some(meter)
}

/// [`detect`] on this machine: `/`, the real `vcgencmd`.
pub fn detect_system(board: Option<&Board>, busy_cores: usize) -> Option<Box<dyn EnergyMeter>> {
    detect(Path::new("/"), Some(system_runner()), board, busy_cores)
}

/// Idle power, watts, measured by `meter` over `span` with nothing running. Measure it
/// right before the work, with the same meter, so that the difference is the work's.
pub fn idle_power(meter: &mut dyn EnergyMeter, span: Duration) -> Result<f64> {
    if span.is_zero() {
        return Err(Error::InvalidArgument(
            "idle measurement span must be positive".into(),
        ));
    }
    let energy = meter.measure_idle(span)?;
    if !(energy.seconds > 0.0 && energy.joules.is_finite()) {
        return Err(Error::Meter {
            meter: meter.name(),
            reason: format!(
                "idle measurement gave {} J over {} s",
                energy.joules, energy.seconds
            ),
        });
    }
    Ok(energy.watts())
}

/// Energy per run of some work (one inference, one image through the cascade), total and
/// above the idle baseline: the one energy figure that profiles, calibration and
/// benchmarks all report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyPerRun {
    /// [`EnergyMeter::name`] of the meter used.
    pub meter: String,
    /// True when the figures come from a board power model, not a measurement.
    pub estimate: bool,
    /// Energy per run, millijoules, everything the meter sees.
    pub total_mj: f64,
    /// Energy per run above the idle baseline, millijoules (never negative).
    pub above_idle_mj: f64,
    /// Idle baseline, watts.
    pub idle_w: f64,
}

impl EnergyPerRun {
    /// The figures for `energy` measured by `meter` over `runs` runs, with idle power
    /// `idle_w`. Above idle is `joules - idle_w * seconds`, clamped at 0 (noise can push a
    /// light workload below the baseline).
    pub fn of(meter: &dyn EnergyMeter, energy: Energy, idle_w: f64, runs: usize) -> Result<Self> {
        if runs == 0 {
            return Err(Error::InvalidArgument(
                "an energy figure per run needs at least one run".into(),
            ));
        }
        let runs = runs as f64;
        let above = (energy.joules - idle_w * energy.seconds).max(0.0);
        Ok(EnergyPerRun {
            meter: meter.name(),
            estimate: meter.is_estimate(),
            total_mj: 1e3 * energy.joules / runs,
            above_idle_mj: 1e3 * above / runs,
            idle_w,
        })
    }
}

/// Runs `work` and times it, for meters that read counters before and after.
fn timed(work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    work()?;
    Ok(start.elapsed().as_secs_f64())
}

/// One sysfs attribute holding an integer, kept open so that sampling it is a seek and a
/// read into a stack buffer, with no allocation.
#[derive(Debug)]
pub(crate) struct SysfsValue {
    path: PathBuf,
    file: File,
}

impl SysfsValue {
    /// Opens and reads once, so that an unreadable or non-numeric file is found now.
    pub(crate) fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = File::open(&path)?;
        let value = SysfsValue { path, file };
        value.read()?;
        Ok(value)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current value (sysfs regenerates the text on a read from offset 0).
    pub(crate) fn read(&self) -> std::io::Result<i64> {
        let mut buf = [0u8; 32];
        let mut file = &self.file;
        file.seek(SeekFrom::Start(0))?;
        let mut len = 0;
        while len < buf.len() {
            let n = file.read(&mut buf[len..])?;
            if n == 0 {
                break;
            }
            len += n;
        }
        parse_int(&buf[..len])
    }
}

fn parse_int(bytes: &[u8]) -> std::io::Result<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .map(str::trim)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "expected an integer, found {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            )
        })
}

/// A small text attribute (`name`, `*_label`), trimmed; `None` if absent or unreadable.
pub(crate) fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sorted entries of a folder (sorted so that detection and names are stable).
pub(crate) fn sorted_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut entries: Vec<(String, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect(),
        Err(_) => Vec::new(),
    };
    entries.sort();
    entries
}

/// Trapezoid integral of power samples over time.
#[derive(Debug, Default)]
struct Integrator {
    /// Time and power of the first sample.
    first: Option<(f64, f64)>,
    /// Time and power of the latest sample.
    last: (f64, f64),
    joules: f64,
}

impl Integrator {
    fn push(&mut self, seconds: f64, watts: f64) {
        if self.first.is_none() {
            self.first = Some((seconds, watts));
        } else {
            let (t0, w0) = self.last;
            self.joules += 0.5 * (w0 + watts) * (seconds - t0);
        }
        self.last = (seconds, watts);
    }

    /// Mean power over the sampled span (the only sample's power if there is one).
    fn mean_watts(&self) -> Option<f64> {
        let (t0, w0) = self.first?;
        let span = self.last.0 - t0;
        Some(if span > 0.0 { self.joules / span } else { w0 })
    }
}

/// Tells the sampling thread to take its last sample and finish, when dropped.
struct StopSampler<'a> {
    stop: &'a AtomicBool,
    thread: std::thread::Thread,
}

impl Drop for StopSampler<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Runs `work` while a background thread samples `read_watts` every `interval`, and returns
/// the mean sampled power times the time `work` took. Sampling starts before `work` and
/// ends after it, so the mean covers the whole span; a slow reader just samples less often.
pub(crate) fn sample_while<F>(
    meter: &str,
    interval: Duration,
    read_watts: F,
    work: &mut dyn FnMut() -> Result<()>,
) -> Result<Energy>
where
    F: FnMut() -> Result<f64> + Send,
{
    let mut read_watts = read_watts;
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let stop_flag = &stop;
        let sampler = scope.spawn(move || -> Result<f64> {
            let start = Instant::now();
            let mut integral = Integrator::default();
            integral.push(0.0, read_watts()?);
            // The receiver only goes away once we have been joined.
            let _ = ready_tx.send(());
            loop {
                // Woken early by `unpark` when the work ends.
                std::thread::park_timeout(interval);
                let last = stop_flag.load(Ordering::Acquire);
                integral.push(start.elapsed().as_secs_f64(), read_watts()?);
                if last {
                    break;
                }
            }
            integral.mean_watts().ok_or_else(|| Error::Meter {
                meter: meter.to_string(),
                reason: "no power samples".into(),
            })
        });
        // Stops the sampler however this scope is left, even by a panic in `work`
        // (the scope joins the sampler before unwinding further).
        let stopper = StopSampler {
            stop: &stop,
            thread: sampler.thread().clone(),
        };
        // A sampler that fails its first reading drops `ready_tx` without sending.
        let ran = match ready_rx.recv() {
            Ok(()) => {
                let start = Instant::now();
                let result = work();
                Some((result, start.elapsed().as_secs_f64()))
            }
            Err(_) => None,
        };
        drop(stopper);
        let sampled = sampler.join().unwrap_or_else(|_| {
            Err(Error::Meter {
                meter: meter.to_string(),
                reason: "power sampling thread panicked".into(),
            })
        });
        let Some((result, seconds)) = ran else {
            return Err(sampled.err().unwrap_or_else(|| Error::Meter {
                meter: meter.to_string(),
                reason: "power sampling did not start".into(),
            }));
        };
        result?;
        let watts = sampled?;
        Ok(Energy {
            joules: watts * seconds,
            seconds,
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `text` to `root/relative`, creating folders.
    pub(crate) fn put(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(crate) fn sleep_ms(ms: u64) -> impl FnMut() -> Result<()> {
        move || {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(())
        }
    }

    fn board() -> Board {
        Board::builtin("rpi4b").unwrap()
    }

    #[test]
    fn integrator_is_a_trapezoid_mean() {
        let mut i = Integrator::default();
        assert_eq!(i.mean_watts(), None);
        i.push(0.0, 2.0);
        assert_eq!(i.mean_watts(), Some(2.0));
        i.push(1.0, 4.0); // 3 J
        i.push(3.0, 4.0); // 8 J
        assert!((i.mean_watts().unwrap() - 11.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn sampling_integrates_a_varying_reader() {
        let mut n = 0.0;
        let reader = move || {
            n += 1.0;
            Ok(n)
        };
        let e = sample_while("test", Duration::from_millis(1), reader, &mut sleep_ms(20)).unwrap();
        assert!(e.seconds >= 0.02);
        // The reader rises from 1 W; the mean is above its first value.
        assert!(e.watts() > 1.0, "{e:?}");
    }

    #[test]
    fn sampling_reports_reader_and_work_errors() {
        let failing = || -> Result<f64> { Err(Error::InvalidArgument("sensor gone".into())) };
        let e = sample_while("t", Duration::from_millis(1), failing, &mut sleep_ms(1));
        assert!(e.unwrap_err().to_string().contains("sensor gone"));

        let mut work = || -> Result<()> { Err(Error::InvalidArgument("model failed".into())) };
        let e = sample_while("t", Duration::from_millis(1), || Ok(1.0), &mut work);
        assert!(e.unwrap_err().to_string().contains("model failed"));
    }

    #[test]
    fn panicking_work_does_not_hang_the_sampler() {
        let caught = std::panic::catch_unwind(|| {
            let mut work = || -> Result<()> { panic!("work panicked") };
            sample_while("t", Duration::from_millis(1), || Ok(1.0), &mut work)
        });
        assert!(caught.is_err());
    }

    #[test]
    fn detect_prefers_powercap_over_hwmon() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(root, "sys/class/powercap/intel-rapl:0/energy_uj", "1000\n");
        put(
            root,
            "sys/class/powercap/intel-rapl:0/max_energy_range_uj",
            "262143328850\n",
        );
        put(root, "sys/class/powercap/intel-rapl:0/name", "package-0\n");
        put(root, "sys/class/hwmon/hwmon0/name", "ina219\n");
        put(root, "sys/class/hwmon/hwmon0/power1_input", "2000000\n");
        let m = detect(root, None, Some(&board()), 4).unwrap();
        assert!(m.name().starts_with("powercap"), "{}", m.name());

        std::fs::remove_dir_all(root.join("sys/class/powercap")).unwrap();
        let m = detect(root, None, Some(&board()), 4).unwrap();
        assert!(m.name().starts_with("hwmon"), "{}", m.name());
    }

    #[test]
    fn detect_falls_back_to_vcgencmd_then_board_then_none() {
        let dir = tempfile::tempdir().unwrap();
        let runner = || -> CommandRunner {
            Box::new(|| Ok("  VDD_CORE_A current(7)=1.0A\n  VDD_CORE_V volt(15)=0.8V\n".into()))
        };
        let m = detect(dir.path(), Some(runner()), Some(&board()), 4).unwrap();
        assert!(m.name().starts_with("vcgencmd"), "{}", m.name());

        let absent: CommandRunner = Box::new(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no vcgencmd",
            ))
        });
        let m = detect(dir.path(), Some(absent), Some(&board()), 4).unwrap();
        assert!(m.is_estimate());
        assert!(m.name().contains("estimate"), "{}", m.name());

        assert!(detect(dir.path(), None, None, 4).is_none());
    }

    #[test]
    fn idle_baseline_and_report() {
        let mut meter = ModelMeter::new(board(), 4);
        let idle = idle_power(&mut meter, Duration::from_secs(10)).unwrap();
        assert_eq!(idle, 2.7);
        let energy = Energy {
            joules: 64.0,
            seconds: 10.0,
        };
        let r = EnergyPerRun::of(&meter, energy, idle, 4).unwrap();
        assert!(r.estimate);
        assert_eq!(r.total_mj, 16_000.0);
        assert!((r.above_idle_mj - 1e3 * (64.0 - 27.0) / 4.0).abs() < 1e-9);
        let low = Energy {
            joules: 1.0,
            seconds: 10.0,
        };
        assert_eq!(
            EnergyPerRun::of(&meter, low, idle, 1)
                .unwrap()
                .above_idle_mj,
            0.0
        );
        assert!(EnergyPerRun::of(&meter, energy, idle, 0).is_err());
        assert!(idle_power(&mut meter, Duration::ZERO).is_err());
    }

    #[test]
    fn sysfs_value_rereads_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "v", "42\n");
        let v = SysfsValue::open(dir.path().join("v")).unwrap();
        assert_eq!(v.read().unwrap(), 42);
        std::fs::write(dir.path().join("v"), "-7\n").unwrap();
        assert_eq!(v.read().unwrap(), -7);
        put(dir.path(), "bad", "n/a\n");
        assert!(SysfsValue::open(dir.path().join("bad")).is_err());
    }
}
