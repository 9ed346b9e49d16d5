//! What the runtime sees of the machine it runs on: the board (from the device tree,
//! matched to a shipped board file), its cores and their kind, memory and the process's
//! budget, the energy meter the cost tools would use, the CPU frequency governor and, on a
//! Raspberry Pi, the firmware's throttling flags. `cascade info` prints a [`DeviceInfo`].
//!
//! Everything is read under a root folder (`/` normally), so tests run on fake trees, and
//! commands run through [`CommandRunner`]s. Nothing here fails: what cannot be read is
//! unknown (`None`), never an error.

mod cpu;
mod throttle;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cpu::{choose_threads, cores_in, default_threads, is_big_little, Core, ThreadChoice};
pub use throttle::{ThrottleFlags, Throttled};

use crate::energy::{self, device_tree_model, Board, CommandRunner};
use crate::memory::MemoryBudget;

/// Where to look and what to run: this machine ([`Probe::system`]) or a fake one.
pub struct Probe {
    /// The root folder holding `proc/...` and `sys/...`.
    pub root: PathBuf,
    /// `vcgencmd pmic_read_adc`, for the Pi 5's power meter; `None` to skip it.
    pub pmic_read_adc: Option<CommandRunner>,
    /// `vcgencmd get_throttled`, asked on a Raspberry Pi only; `None` to skip it.
    pub get_throttled: Option<CommandRunner>,
    /// Cores this process may use (`std::thread::available_parallelism`).
    pub available_cores: usize,
    /// The process's memory budget.
    pub memory_budget: MemoryBudget,
}

impl Probe {
    /// This machine: `/`, the real `vcgencmd`, the process's cores and memory budget.
    pub fn system() -> Probe {
        Probe {
            root: PathBuf::from("/"),
            pmic_read_adc: Some(energy::system_runner()),
            get_throttled: Some(energy::vcgencmd("get_throttled")),
            available_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_budget: MemoryBudget::current(),
        }
    }
}

/// The board: the shipped board file that matches, and what the device tree says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardInfo {
    /// The matched board's name (`rpi4b`), usable as `--board`; `None` when none matches.
    pub name: Option<String>,
    /// The matched board's description.
    pub description: Option<String>,
    /// `/proc/device-tree/model`, e.g. `Raspberry Pi 4 Model B Rev 1.4`; `None` without a
    /// device tree (x86 machines).
    pub device_tree_model: Option<String>,
}

/// Memory, megabytes (MiB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryInfo {
    /// `MemTotal` of /proc/meminfo.
    pub total_mb: Option<u64>,
    /// `MemAvailable` of /proc/meminfo: what can be had without swapping.
    pub available_mb: Option<u64>,
    /// The process's budget ([`MemoryBudget`], set with `--max-memory-mb`).
    pub budget_mb: u64,
}

/// The energy meter `calibrate` and `bench` would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeterInfo {
    /// A measuring meter's name (powercap, hwmon, vcgencmd); `None` when there is none.
    pub meter: Option<String>,
    /// Without a meter, the board whose power model gives estimates; `None` when no board
    /// matches either (then there is no energy figure at all).
    pub estimates_from_board: Option<String>,
    /// One line for people: the meter, `none; estimates from the board model (rpi4b)` or
    /// `none`.
    pub summary: String,
}

/// The Raspberry Pi firmware's throttling state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Throttling {
    /// Not a Raspberry Pi: there is nothing to ask.
    NotAPi,
    /// `vcgencmd get_throttled` is missing, failed, or printed something else.
    Unknown { reason: String },
    /// The decoded flags.
    Read(Throttled),
}

/// Everything [`DeviceInfo::gather`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInfo {
    pub board: BoardInfo,
    /// The architecture this program was built for (`aarch64`, `x86_64`).
    pub arch: String,
    /// The cores /proc/cpuinfo lists, in CPU number order.
    pub cores: Vec<Core>,
    /// Cores this process may use.
    pub available_cores: usize,
    /// The default `--threads` and why.
    pub threads: ThreadChoice,
    pub memory: MemoryInfo,
    pub energy_meter: MeterInfo,
    /// The CPU frequency governor (`scaling_governor`); the distinct ones, comma-separated,
    /// when cores differ; `None` without cpufreq (most VMs).
    pub governor: Option<String>,
    pub throttling: Throttling,
}

/// `MemTotal` and `MemAvailable` of a /proc/meminfo text, MiB.
fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb / 1024)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// The governors of `cores` (cpu0's where no core is listed), distinct, in CPU order.
fn governor_in(root: &Path, cores: &[Core]) -> Option<String> {
    let ids: Vec<usize> = if cores.is_empty() {
        vec![0]
    } else {
        cores.iter().map(|c| c.id).collect()
    };
    let mut governors: Vec<String> = Vec::new();
    for id in ids {
        let path = root.join(format!(
            "sys/devices/system/cpu/cpu{id}/cpufreq/scaling_governor"
        ));
        if let Some(g) = energy::read_text(&path).filter(|g| !g.is_empty()) {
            if !governors.contains(&g) {
                governors.push(g);
            }
        }
    }
    (!governors.is_empty()).then(|| governors.join(", "))
}

/// Whether a device-tree model is a Raspberry Pi's.
fn is_raspberry_pi(model: Option<&str>) -> bool {
    model.is_some_and(|m| m.starts_with("Raspberry Pi"))
}

fn throttling(model: Option<&str>, runner: Option<CommandRunner>) -> Throttling {
    if !is_raspberry_pi(model) {
        return Throttling::NotAPi;
    }
    let Some(mut run) = runner else {
        return Throttling::Unknown {
            reason: "not asked".into(),
        };
    };
    match run() {
        Ok(output) => match Throttled::parse(&output) {
            Some(t) => Throttling::Read(t),
            None => Throttling::Unknown {
                reason: format!(
                    "vcgencmd get_throttled printed {:?}",
                    output.trim().chars().take(80).collect::<String>()
                ),
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Throttling::Unknown {
            reason: "vcgencmd is not installed".into(),
        },
        Err(e) => Throttling::Unknown {
            reason: e.to_string(),
        },
    }
}

fn meter(
    root: &Path,
    runner: Option<CommandRunner>,
    board: Option<&Board>,
    threads: usize,
) -> MeterInfo {
    match energy::detect(root, runner, board, threads) {
        Some(m) if !m.is_estimate() => MeterInfo {
            summary: m.name(),
            meter: Some(m.name()),
            estimates_from_board: None,
        },
        _ => match board {
            Some(b) => MeterInfo {
                meter: None,
                estimates_from_board: Some(b.name.clone()),
                summary: format!("none; estimates from the board model ({})", b.name),
            },
            None => MeterInfo {
                meter: None,
                estimates_from_board: None,
                summary: "none".into(),
            },
        },
    }
}

impl DeviceInfo {
    /// Looks at the machine `probe` describes. Never fails: what cannot be read is `None`
    /// or [`Throttling::Unknown`].
    pub fn gather(probe: Probe) -> DeviceInfo {
        let root = probe.root.as_path();
        let model = device_tree_model(root);
        let board = model.as_deref().and_then(Board::matching);
        let cores = cores_in(root);
        let threads = choose_threads(&cores, board.as_ref(), probe.available_cores);
        let (total_mb, available_mb) =
            parse_meminfo(&std::fs::read_to_string(root.join("proc/meminfo")).unwrap_or_default());
        DeviceInfo {
            energy_meter: meter(root, probe.pmic_read_adc, board.as_ref(), threads.threads),
            throttling: throttling(model.as_deref(), probe.get_throttled),
            governor: governor_in(root, &cores),
            board: BoardInfo {
                name: board.as_ref().map(|b| b.name.clone()),
                description: board.as_ref().map(|b| b.description.clone()),
                device_tree_model: model,
            },
            arch: std::env::consts::ARCH.to_string(),
            available_cores: probe.available_cores,
            threads,
            memory: MemoryInfo {
                total_mb,
                available_mb,
                budget_mb: probe.memory_budget.mb(),
            },
            cores,
        }
    }

    /// [`DeviceInfo::gather`] on this machine.
    pub fn of_this_machine() -> DeviceInfo {
        DeviceInfo::gather(Probe::system())
    }

    /// One line per item, for people: `board`, `cpu`, `threads`, `memory`, `energy meter`,
    /// `governor`, `throttling`.
    pub fn report(&self) -> String {
        let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let board = match (&self.board.name, &self.board.device_tree_model) {
            (Some(name), Some(model)) => format!(
                "{name}: {} (device tree: {model})",
                self.board.description.as_deref().unwrap_or("")
            ),
            (None, Some(model)) => format!(
                "none matched (device tree: {model}; known boards: {}, or --board FILE.toml)",
                Board::builtin_names().join(", ")
            ),
            (_, None) => "none detected (no device-tree model)".into(),
        };
        let cpu = match self.cores.len() {
            0 => format!("{}, cores unknown", self.arch),
            n => format!(
                "{}, {n} core{}: {}",
                self.arch,
                if n == 1 { "" } else { "s" },
                cpu::summary(&self.cores)
            ),
        };
        let mb = |v: Option<u64>| v.map_or_else(|| "unknown".into(), |v| format!("{v} MB"));
        let memory = format!(
            "{} total, {} available; budget {} MB (--max-memory-mb)",
            mb(self.memory.total_mb),
            mb(self.memory.available_mb),
            self.memory.budget_mb
        );
        let governor = match &self.governor {
            Some(g) if g != "performance" => {
                format!("{g} (timings are steadiest with `performance`)")
            }
            g => unknown(g),
        };
        let throttling = match &self.throttling {
            Throttling::NotAPi => "n/a (not a Raspberry Pi)".to_string(),
            Throttling::Unknown { reason } => format!("unknown ({reason})"),
            Throttling::Read(t) => t.to_string(),
        };
        let meter = match &self.energy_meter {
            MeterInfo {
                meter: None,
                estimates_from_board: None,
                summary,
            } => format!(
                "{summary} (no powercap, hwmon or Pi 5 PMIC reading here, and no board model; \
                 --board NAME gives estimates)"
            ),
            m => m.summary.clone(),
        };
        let lines = [
            ("board", board),
            ("cpu", cpu),
            (
                "threads",
                format!("{} by default: {}", self.threads.threads, self.threads.rule),
            ),
            ("memory", memory),
            ("energy meter", meter),
            ("governor", governor),
            ("throttling", throttling),
        ];
        lines
            .iter()
            .map(|(key, value)| format!("{:<13} {value}\n", format!("{key}:")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::cpu::tests::{big_little_tree, pi4_tree, x86_tree};
    use super::*;
    use crate::energy::tests::put;

    fn probe(root: &Path, throttled: Option<&'static str>) -> Probe {
        Probe {
            root: root.to_path_buf(),
            pmic_read_adc: None,
            get_throttled: throttled
                .map(|out| -> CommandRunner { Box::new(move || Ok(out.into())) }),
            available_cores: 4,
            memory_budget: MemoryBudget::from_mb(1024).unwrap(),
        }
    }

    const MEMINFO: &str = "MemTotal:        3884088 kB\nMemFree:         3000000 kB\n\
                           MemAvailable:    3411456 kB\nBuffers:           41520 kB\n";

    #[test]
    fn a_pi4_is_described_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        pi4_tree(root);
        put(
            root,
            "proc/device-tree/model",
            "Raspberry Pi 4 Model B Rev 1.4\0",
        );
        put(root, "proc/meminfo", MEMINFO);
        let info = DeviceInfo::gather(probe(root, Some("throttled=0x50005\n")));
        assert_eq!(info.board.name.as_deref(), Some("rpi4b"));
        assert_eq!(
            info.board.device_tree_model.as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(info.cores.len(), 4);
        assert_eq!(info.threads.threads, 4);
        assert_eq!(
            info.memory,
            MemoryInfo {
                total_mb: Some(3793),
                available_mb: Some(3331),
                budget_mb: 1024
            }
        );
        assert_eq!(info.energy_meter.meter, None);
        assert_eq!(
            info.energy_meter.estimates_from_board.as_deref(),
            Some("rpi4b")
        );
        assert_eq!(
            info.energy_meter.summary,
            "none; estimates from the board model (rpi4b)"
        );
        assert_eq!(info.governor.as_deref(), Some("ondemand"));
        let Throttling::Read(t) = &info.throttling else {
            panic!("{:?}", info.throttling)
        };
        assert!(t.now.under_voltage && t.now.throttled && !t.now.frequency_capped);
        assert!(t.since_boot.under_voltage && t.since_boot.throttled);

        let report = info.report();
        for expected in [
            "board:        rpi4b: Raspberry Pi 4 Model B",
            "cpu:          aarch64, 4 cores: 4x Cortex-A72 (cpu0-3; capacity 1024, 1800 MHz)"
                .replace("aarch64", std::env::consts::ARCH)
                .as_str(),
            "threads:      4 by default: board rpi4b: all 4 cores",
            "memory:       3793 MB total, 3331 MB available; budget 1024 MB",
            "energy meter: none; estimates from the board model (rpi4b)",
            "governor:     ondemand",
            "throttling:   0x50005: now under-voltage, throttled; since boot under-voltage",
        ] {
            assert!(report.contains(expected), "{expected:?} not in\n{report}");
        }
        assert_eq!(report.lines().count(), 7, "{report}");

        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["board"]["name"], "rpi4b");
        assert_eq!(json["throttling"]["state"], "read");
        assert_eq!(json["throttling"]["raw"], "0x50005");
        assert_eq!(json["throttling"]["now"]["under_voltage"], true);
        assert_eq!(json["cores"][0]["kind"], "Cortex-A72");
    }

    #[test]
    fn a_pi_without_vcgencmd_has_unknown_throttling() {
        let dir = tempfile::tempdir().unwrap();
        put(
            dir.path(),
            "proc/device-tree/model",
            "Raspberry Pi 5 Model B Rev 1.0\0",
        );
        let mut p = probe(dir.path(), None);
        p.get_throttled = Some(Box::new(|| {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "vcgencmd",
            ))
        }));
        let info = DeviceInfo::gather(p);
        assert_eq!(info.board.name.as_deref(), Some("rpi5"));
        assert_eq!(
            info.throttling,
            Throttling::Unknown {
                reason: "vcgencmd is not installed".into()
            }
        );
        assert!(info
            .report()
            .contains("throttling:   unknown (vcgencmd is not installed)"));
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["throttling"]["state"], "unknown");

        let mut p = probe(
            dir.path(),
            Some("error=1 error_msg=\"Command not registered\""),
        );
        p.available_cores = 4;
        let info = DeviceInfo::gather(p);
        assert!(matches!(info.throttling, Throttling::Unknown { .. }));
    }

    #[test]
    fn a_pi5_pmic_is_its_meter() {
        let dir = tempfile::tempdir().unwrap();
        put(
            dir.path(),
            "proc/device-tree/model",
            "Raspberry Pi 5 Model B Rev 1.0\0",
        );
        let mut p = probe(dir.path(), Some("throttled=0x0"));
        p.pmic_read_adc = Some(Box::new(|| {
            Ok("  VDD_CORE_A current(7)=1.0A\n  VDD_CORE_V volt(15)=0.8V\n".into())
        }));
        let info = DeviceInfo::gather(p);
        assert_eq!(
            info.energy_meter.meter.as_deref(),
            Some("vcgencmd pmic_read_adc (1 rails)")
        );
        assert_eq!(info.energy_meter.estimates_from_board, None);
        assert!(info
            .report()
            .contains("throttling:   0x0: none, now or since boot"));
    }

    #[test]
    fn a_big_little_board_without_a_board_file() {
        let dir = tempfile::tempdir().unwrap();
        big_little_tree(dir.path());
        put(dir.path(), "proc/device-tree/model", "Radxa ROCK 5B\0");
        let mut p = probe(dir.path(), Some("throttled=0x0"));
        p.available_cores = 8;
        let info = DeviceInfo::gather(p);
        assert_eq!(info.board.name, None);
        assert_eq!(info.threads.threads, 4);
        assert_eq!(info.governor.as_deref(), Some("schedutil, performance"));
        assert_eq!(info.energy_meter.summary, "none");
        assert_eq!(info.throttling, Throttling::NotAPi);
        let report = info.report();
        assert!(
            report.contains("none matched (device tree: Radxa ROCK 5B; known boards:"),
            "{report}"
        );
        assert!(
            report.contains("threads:      4 by default: the 4 big cores (Cortex-A76)"),
            "{report}"
        );
    }

    #[test]
    fn an_x86_host_has_no_board_and_uses_all_cores() {
        let dir = tempfile::tempdir().unwrap();
        x86_tree(dir.path());
        put(dir.path(), "proc/meminfo", MEMINFO);
        let mut p = probe(dir.path(), Some("throttled=0x50005"));
        p.available_cores = 2;
        let info = DeviceInfo::gather(p);
        assert_eq!(info.board.name, None);
        assert_eq!(info.board.device_tree_model, None);
        assert_eq!(info.threads.threads, 2);
        assert_eq!(info.governor, None);
        assert_eq!(info.throttling, Throttling::NotAPi, "vcgencmd only on a Pi");
        let report = info.report();
        assert!(
            report.contains("board:        none detected (no device-tree model)"),
            "{report}"
        );
        assert!(report.contains("2x AMD EPYC"), "{report}");
        assert!(report.contains("governor:     unknown"), "{report}");
        assert!(
            report.contains("throttling:   n/a (not a Raspberry Pi)"),
            "{report}"
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["throttling"]["state"], "not_a_pi");
        assert!(json["board"]["name"].is_null());
    }

    #[test]
    fn an_empty_tree_is_all_unknown_never_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let info = DeviceInfo::gather(probe(dir.path(), None));
        assert_eq!(info.board.name, None);
        assert!(info.cores.is_empty());
        assert_eq!(info.threads.threads, 4, "the available cores");
        assert_eq!(
            (info.memory.total_mb, info.memory.available_mb),
            (None, None)
        );
        assert_eq!(info.energy_meter.summary, "none");
        assert_eq!(info.governor, None);
        assert_eq!(info.throttling, Throttling::NotAPi);
        let report = info.report();
        assert!(report.contains("cores unknown"), "{report}");
        assert!(
            report.contains("unknown total, unknown available"),
            "{report}"
        );
        // A Pi whose vcgencmd was not asked.
        put(
            dir.path(),
            "proc/device-tree/model",
            "Raspberry Pi 3 Model B Rev 1.2\0",
        );
        let info = DeviceInfo::gather(probe(dir.path(), None));
        assert_eq!(info.board.name.as_deref(), Some("rpi3b"));
        assert!(matches!(info.throttling, Throttling::Unknown { .. }));
    }

    #[test]
    fn meminfo_fields_are_read_by_name() {
        assert_eq!(parse_meminfo(MEMINFO), (Some(3793), Some(3331)));
        assert_eq!(parse_meminfo("MemTotal: lots\n"), (None, None));
        assert_eq!(parse_meminfo(""), (None, None));
    }
}
