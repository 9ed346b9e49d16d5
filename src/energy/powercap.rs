//! Linux powercap energy counters (Intel and AMD RAPL): `/sys/class/powercap/<zone>/energy_uj`.
//!
//! Each zone counts microjoules since boot and wraps to 0 after `max_energy_range_uj`.
//! Top-level zones (`intel-rapl:0`, one per CPU package) are summed; their subzones
//! (`intel-rapl:0:0` core, `:1` uncore, ...) are parts of the package and are skipped so
//! nothing is counted twice. The same package is also exposed through MMIO
//! (`intel-rapl-mmio:0`), deduplicated by zone name; a `psys` zone (whole platform, on
//! some laptops) contains the packages and is used alone when present.
//!
//! Since 2020 most kernels make `energy_uj` readable by root only (the Platypus side
//! channel); without root this meter is simply not found.

use std::path::Path;

use super::{read_text, sorted_entries, timed, Energy, EnergyMeter, SysfsValue};
use crate::error::{Error, Result};

/// One top-level powercap zone.
#[derive(Debug)]
struct Zone {
    /// Folder name, e.g. `intel-rapl:0`.
    id: String,
    /// Contents of `name`, e.g. `package-0`.
    name: String,
    energy_uj: SysfsValue,
    max_energy_range_uj: u64,
}

/// Sum of the top-level powercap zones' energy counters.
#[derive(Debug)]
pub struct PowercapMeter {
    zones: Vec<Zone>,
}

impl PowercapMeter {
    /// The readable top-level zones under `root/sys/class/powercap`, or `None`.
    pub fn detect(root: &Path) -> Option<Self> {
        let dir = root.join("sys/class/powercap");
        let mut zones: Vec<Zone> = Vec::new();
        for (id, path) in sorted_entries(&dir) {
            // `intel-rapl:0` is a zone; `intel-rapl:0:0` a subzone; `intel-rapl` the
            // control type (no counter).
            if id.matches(':').count() != 1 {
                continue;
            }
            let energy_uj = match SysfsValue::open(path.join("energy_uj")) {
                Ok(v) => v,
                Err(e) => {
                    log::debug!("powercap {id}: energy_uj not usable: {e}");
                    continue;
                }
            };
            let max = read_text(&path.join("max_energy_range_uj")).and_then(|t| t.parse().ok());
            let Some(max_energy_range_uj) = max.filter(|&m: &u64| m > 0) else {
                log::debug!("powercap {id}: no valid max_energy_range_uj");
                continue;
            };
            let name = read_text(&path.join("name")).unwrap_or_else(|| id.clone());
            zones.push(Zone {
                id,
                name,
                energy_uj,
                max_energy_range_uj,
            });
        }
        // MSR zones first, so that the MMIO view of the same package is the one dropped.
        zones.sort_by(|a, b| (a.id.contains("-mmio"), &a.id).cmp(&(b.id.contains("-mmio"), &b.id)));
        let mut unique: Vec<Zone> = Vec::new();
        for zone in zones {
            if unique.iter().any(|z| z.name == zone.name) {
                log::debug!("powercap {}: duplicate of zone {}", zone.id, zone.name);
            } else {
                unique.push(zone);
            }
        }
        if unique.iter().any(|z| z.name == "psys") {
            unique.retain(|z| z.name == "psys");
        }
        if unique.is_empty() {
            None
        } else {
            Some(PowercapMeter { zones: unique })
        }
    }

    fn read(&self, zone: &Zone) -> Result<u64> {
        let value = zone.energy_uj.read().map_err(|e| Error::Meter {
            meter: self.name(),
            reason: format!("{}: {e}", zone.energy_uj.path().display()),
        })?;
        u64::try_from(value).map_err(|_| Error::Meter {
            meter: self.name(),
            reason: format!(
                "{}: negative counter {value}",
                zone.energy_uj.path().display()
            ),
        })
    }
}

/// Counter increase from `before` to `after` for a counter that wraps to 0 after `max`.
/// Only one wrap can be seen: spans must be shorter than a wrap period (about an hour for
/// a 60 W package with the usual 262 kJ range).
pub(crate) fn wrapping_delta(before: u64, after: u64, max: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        max.saturating_sub(before).saturating_add(after)
    }
}

impl EnergyMeter for PowercapMeter {
    fn name(&self) -> String {
        let zones: Vec<String> = self
            .zones
            .iter()
            .map(|z| format!("{} ({})", z.id, z.name))
            .collect();
        format!("powercap {}", zones.join(" + "))
    }

    fn is_estimate(&self) -> bool {
        false
    }

    fn measure(&mut self, work: &mut dyn FnMut() -> Result<()>) -> Result<Energy> {
        let before = self
            .zones
            .iter()
            .map(|z| self.read(z))
            .collect::<Result<Vec<u64>>>()?;
        let seconds = timed(work)?;
        let mut microjoules: u64 = 0;
        for (zone, &before) in self.zones.iter().zip(&before) {
            let after = self.read(zone)?;
            microjoules += wrapping_delta(before, after, zone.max_energy_range_uj);
        }
        Ok(Energy {
            joules: microjoules as f64 / 1e6,
            seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tests::put;

    const MAX: u64 = 262_143_328_850;

    fn zone(root: &Path, id: &str, name: &str, energy: u64) {
        let base = format!("sys/class/powercap/{id}");
        put(root, &format!("{base}/energy_uj"), &format!("{energy}\n"));
        put(
            root,
            &format!("{base}/max_energy_range_uj"),
            &format!("{MAX}\n"),
        );
        put(root, &format!("{base}/name"), &format!("{name}\n"));
    }

    fn set(root: &Path, id: &str, energy: u64) {
        let path = root.join(format!("sys/class/powercap/{id}/energy_uj"));
        std::fs::write(path, format!("{energy}\n")).unwrap();
    }

    #[test]
    fn wrapping_delta_handles_wrap() {
        assert_eq!(wrapping_delta(100, 350, MAX), 250);
        assert_eq!(wrapping_delta(MAX - 10, 5, MAX), 15);
    }

    #[test]
    fn measures_counter_delta() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        zone(&root, "intel-rapl:0", "package-0", 5_000_000);
        let mut m = PowercapMeter::detect(&root).unwrap();
        assert_eq!(m.name(), "powercap intel-rapl:0 (package-0)");
        assert!(!m.is_estimate());
        let e = m
            .measure(&mut || {
                set(&root, "intel-rapl:0", 7_500_000);
                Ok(())
            })
            .unwrap();
        assert!((e.joules - 2.5).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn measures_across_wrap_around() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let before = MAX - 1_000_000;
        zone(&root, "intel-rapl:0", "package-0", before);
        let mut m = PowercapMeter::detect(&root).unwrap();
        let after = 3_000_000;
        let e = m
            .measure(&mut || {
                set(&root, "intel-rapl:0", after);
                Ok(())
            })
            .unwrap();
        let expected = (MAX - before + after) as f64 / 1e6;
        assert!((e.joules - expected).abs() < 1e-9, "{e:?}");
        assert!((e.joules - 4.0).abs() < 1e-9);
    }

    #[test]
    fn sums_packages_without_subzones_or_mmio_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("sys/class/powercap/intel-rapl")).unwrap();
        zone(&root, "intel-rapl:0", "package-0", 0);
        zone(&root, "intel-rapl:0:0", "core", 0);
        zone(&root, "intel-rapl:0:1", "uncore", 0);
        zone(&root, "intel-rapl:1", "package-1", 0);
        zone(&root, "intel-rapl-mmio:0", "package-0", 0);
        let mut m = PowercapMeter::detect(&root).unwrap();
        assert_eq!(
            m.name(),
            "powercap intel-rapl:0 (package-0) + intel-rapl:1 (package-1)"
        );
        let e = m
            .measure(&mut || {
                for (id, uj) in [
                    ("intel-rapl:0", 1_000_000),
                    ("intel-rapl:0:0", 800_000),
                    ("intel-rapl:0:1", 100_000),
                    ("intel-rapl:1", 2_000_000),
                    ("intel-rapl-mmio:0", 1_000_000),
                ] {
                    set(&root, id, uj);
                }
                Ok(())
            })
            .unwrap();
        assert!((e.joules - 3.0).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn psys_zone_is_used_alone() {
        let dir = tempfile::tempdir().unwrap();
        zone(dir.path(), "intel-rapl:0", "package-0", 0);
        zone(dir.path(), "intel-rapl:1", "psys", 0);
        let m = PowercapMeter::detect(dir.path()).unwrap();
        assert_eq!(m.name(), "powercap intel-rapl:1 (psys)");
    }

    #[test]
    fn absent_or_invalid_zones_are_not_a_meter() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PowercapMeter::detect(dir.path()).is_none());
        put(
            dir.path(),
            "sys/class/powercap/intel-rapl:0/energy_uj",
            "12\n",
        );
        assert!(PowercapMeter::detect(dir.path()).is_none(), "no max range");
    }
}
